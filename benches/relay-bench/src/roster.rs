//! Who is who in a run against a members relay (`relay --members FILE`):
//! the members file's members in file order, each connection under its own
//! member's key. The publisher is member 0; subscriber i is member i + 1.
//! The file is parsed by `eaxchat_core::members`, the same code the relay runs.
//!
//! Also [`make_members_file`], which writes a members file of N members with
//! fresh random keys for `benches/run.sh`. This module never prints a key.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use eaxchat_core::members::Members;
use eaxchat_proto::key::Key;
use eaxchat_proto::name::Name;

/// The members of a members file, in file order.
#[derive(Debug, Clone)]
pub struct Roster {
    members: Vec<(Name, Key)>,
}

impl Roster {
    /// The members `members` holds, in file order.
    pub fn new(members: &Members) -> Roster {
        Roster {
            members: members
                .iter()
                .map(|m| (m.name().clone(), m.key().clone()))
                .collect(),
        }
    }

    /// Reads a members file as the relay would.
    pub fn read_file(path: &Path) -> Result<Roster, String> {
        let file = eaxchat_server::members_file::read(path).map_err(|e| e.to_string())?;
        if file.members.is_empty() {
            return Err(format!("members file {} has no members", path.display()));
        }
        Ok(Roster::new(&file.members))
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member `index`'s name and key, if there is one.
    pub fn member(&self, index: usize) -> Option<(&Name, &Key)> {
        self.members.get(index).map(|(name, key)| (name, key))
    }

    /// Fails unless there is a member for every one of `connections`.
    pub fn check_enough(&self, connections: usize, who: &str) -> Result<(), String> {
        if self.members.len() < connections {
            return Err(format!(
                "the members file has {} members; {who} needs {connections}",
                self.members.len()
            ));
        }
        Ok(())
    }
}

/// Why a members file could not be made.
#[derive(Debug)]
pub enum MakeError {
    /// No members asked for, or more than names can be made for.
    Count(usize),
    /// The file exists already, or could not be written.
    Io(io::Error),
}

impl fmt::Display for MakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MakeError::Count(count) => {
                write!(f, "cannot make {count} members: 1 to 1,000,000 are allowed")
            }
            MakeError::Io(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for MakeError {}

/// Most members [`make_members_file`] makes.
const MAKE_MAX: usize = 1_000_000;

/// The name of member `index` of `count`: `m` and the index in as many
/// digits as the largest needs, so every name has the same length (and
/// every delivery of a run the same length).
pub fn member_name(index: usize, count: usize) -> String {
    let digits = count.saturating_sub(1).max(1).to_string().len();
    format!("m{index:0digits$}")
}

/// Writes a new members file at `path` (mode 0600; never over an existing
/// file) with `count` members named by [`member_name`], each with a fresh
/// random AES-128 key.
pub fn make_members_file(path: &Path, count: usize) -> Result<(), MakeError> {
    if count == 0 || count > MAKE_MAX {
        return Err(MakeError::Count(count));
    }
    let mut text = format!("# {count} members made by relay-bench make-members\n");
    for index in 0..count {
        let key = Key::generate().map_err(MakeError::Io)?;
        text.push_str(&member_name(index, count));
        text.push(' ');
        text.push_str(&key.to_hex());
        text.push('\n');
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(MakeError::Io)?;
    file.write_all(text.as_bytes()).map_err(MakeError::Io)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::PathBuf;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("relay-bench-roster-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_made_file_parses_with_distinct_keys_names_of_one_length_and_mode_0600() {
        let dir = scratch("make");
        let path = dir.join("members.txt");
        make_members_file(&path, 101).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let roster = Roster::read_file(&path).unwrap();
        assert_eq!(roster.len(), 101);
        let (first, _) = roster.member(0).unwrap();
        assert_eq!(first.as_str(), "m000");
        let (last, _) = roster.member(100).unwrap();
        assert_eq!(last.as_str(), "m100");
        let keys: HashSet<Vec<u8>> = (0..101)
            .map(|i| roster.member(i).unwrap().1.as_bytes().to_vec())
            .collect();
        assert_eq!(keys.len(), 101);
        assert!((0..101).all(|i| roster.member(i).unwrap().0.as_str().len() == 4));
        assert!(roster.check_enough(101, "fanout").is_ok());
        assert!(roster.check_enough(102, "fanout").is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_existing_file_or_no_members_is_refused() {
        let dir = scratch("refuse");
        let path = dir.join("members.txt");
        fs::write(&path, "keep me\n").unwrap();
        assert!(matches!(
            make_members_file(&path, 3),
            Err(MakeError::Io(e)) if e.kind() == io::ErrorKind::AlreadyExists
        ));
        assert_eq!(fs::read_to_string(&path).unwrap(), "keep me\n");
        assert!(matches!(
            make_members_file(&dir.join("none.txt"), 0),
            Err(MakeError::Count(0))
        ));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn names_have_one_length_per_count() {
        assert_eq!(member_name(0, 1), "m0");
        assert_eq!(member_name(9, 10), "m9");
        assert_eq!(member_name(3, 11), "m03");
        assert_eq!(member_name(1000, 1001), "m1000");
    }
}
