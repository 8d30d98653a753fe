//! The members file: who may use a members relay, each under their own key,
//! and the add / remove / list operations that manage it.
//!
//! The file holds one member per line, `NAME HEXKEY`, the two separated by
//! spaces or tabs. The key is 32, 48 or 64 hex digits (AES-128/192/256),
//! parsed by [`Key::from_hex`]. A name is 1 to [`NAME_MAX`] characters of
//! `A-Z a-z 0-9 _ - .`, compared exactly (so `alice` and `Alice` are two
//! names); a name of exactly 32 hex digits is refused, as it looks like a
//! key written in the wrong place. Blank lines are allowed, and so are comments, which take a whole
//! line whose first non-blank character is `#`; there are no trailing
//! comments, so anything after the key is an error. Lines may end in `\n` or
//! `\r\n`. A name or a key that appears twice is an error, and the whole file
//! is refused on the first bad line: a members file is read completely or not
//! at all.
//!
//! This module never displays key material: errors say which file, which
//! line and what is wrong, never the text of a key (nor the text of a bad
//! name, in case a key was written where a name belongs).
//!
//! [`add`] and [`remove`] rewrite the file atomically (a private temporary
//! file in the same directory, renamed over it), so a relay reading the file
//! at any moment sees either the old file or the new one. They keep every
//! other line, comments included, byte for byte. Two management commands run
//! at the same moment on the same file can lose one of the changes; run them
//! one at a time.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::key::{Key, KeyError, readable_by_others};

/// The longest name allowed, in characters.
pub const NAME_MAX: usize = 32;

/// A member's name: 1 to [`NAME_MAX`] characters of `A-Z a-z 0-9 _ - .`,
/// and not 32 hex digits (which would look like a key).
///
/// The character set keeps names safe to print after `NAME: ` in a chat
/// line and to use as a file name (`NAME.key`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// Why a text is not a valid [`Name`]. Never holds the text itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name has more than [`NAME_MAX`] characters.
    TooLong {
        /// How many characters it has.
        chars: usize,
    },
    /// The name holds a character outside `A-Z a-z 0-9 _ - .`.
    BadCharacter {
        /// The 1-based position of the first such character.
        position: usize,
    },
    /// The name is 32 hex digits, the form of an AES-128 key. Refused so
    /// that a key written where a name belongs is never shown as a name.
    LooksLikeKey,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("the name is empty"),
            NameError::TooLong { chars } => write!(
                f,
                "the name has {chars} characters; at most {NAME_MAX} are allowed"
            ),
            NameError::BadCharacter { position } => write!(
                f,
                "character {position} of the name is not one of A-Z a-z 0-9 _ - ."
            ),
            NameError::LooksLikeKey => {
                f.write_str("the name is 32 hex digits, which looks like a key")
            }
        }
    }
}

impl std::error::Error for NameError {}

impl Name {
    /// Checks `text` is a valid name.
    pub fn new(text: &str) -> Result<Name, NameError> {
        let chars = text.chars().count();
        if chars == 0 {
            return Err(NameError::Empty);
        }
        if chars > NAME_MAX {
            return Err(NameError::TooLong { chars });
        }
        if let Some(index) = text.chars().position(|c| !is_name_char(c)) {
            return Err(NameError::BadCharacter {
                position: index + 1,
            });
        }
        if chars == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NameError::LooksLikeKey);
        }
        Ok(Name(text.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = NameError;

    fn from_str(text: &str) -> Result<Name, NameError> {
        Name::new(text)
    }
}

// A `Name` hashes and compares as its text, so maps keyed by `Name` can be
// searched with a `&str`.
impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// One member: a name and the key they, and only they, hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    name: Name,
    key: Key,
    line: usize,
}

impl Member {
    /// The member's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The member's key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The 1-based line of the members file this member was read from.
    pub fn line(&self) -> usize {
        self.line
    }
}

/// What is wrong with one line of a members file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineProblem {
    /// The line is not valid UTF-8.
    NotUtf8,
    /// The line has a name but no key.
    MissingKey,
    /// The line has something after the key.
    TrailingText,
    /// The name is not valid.
    BadName(NameError),
    /// The key is not 32, 48 or 64 hex digits; the text says why, without
    /// the key.
    BadKey(String),
    /// The name was already given on an earlier line.
    DuplicateName {
        /// The repeated name.
        name: Name,
        /// The line where it first appears.
        first_line: usize,
    },
    /// The key was already given on an earlier line.
    DuplicateKey {
        /// The line where it first appears.
        first_line: usize,
    },
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineProblem::NotUtf8 => f.write_str("the line is not valid UTF-8"),
            LineProblem::MissingKey => f.write_str("expected `NAME HEXKEY`, found no key"),
            LineProblem::TrailingText => f.write_str(
                "unexpected text after the key (comments must be on a line of their own)",
            ),
            LineProblem::BadName(error) => write!(f, "bad name: {error}"),
            LineProblem::BadKey(problem) => write!(f, "bad key: {problem}"),
            LineProblem::DuplicateName { name, first_line } => {
                write!(f, "the name {name} is already used on line {first_line}")
            }
            LineProblem::DuplicateKey { first_line } => {
                write!(f, "the key is already used on line {first_line}")
            }
        }
    }
}

/// Why a members file could not be read, or changed.
#[derive(Debug)]
pub enum MembersError {
    /// The members file could not be read or written.
    Io {
        /// The members file.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// A line of the members file is wrong.
    Line {
        /// The members file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: LineProblem,
    },
    /// A name given to a management command is not valid.
    BadName(NameError),
    /// [`add`] was asked for a name that is already a member.
    AlreadyMember {
        /// The members file.
        path: PathBuf,
        /// The name.
        name: Name,
        /// The line it is on.
        line: usize,
    },
    /// [`remove`] was asked for a name that is not a member.
    NotMember {
        /// The members file.
        path: PathBuf,
        /// The name.
        name: Name,
    },
    /// The new member's key file could not be written (for example, because
    /// it already exists).
    KeyFile(KeyError),
}

impl fmt::Display for MembersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembersError::Io { path, error } => {
                write!(f, "members file {}: {error}", path.display())
            }
            MembersError::Line {
                path,
                line,
                problem,
            } => write!(f, "members file {} line {line}: {problem}", path.display()),
            MembersError::BadName(error) => write!(f, "invalid member name: {error}"),
            MembersError::AlreadyMember { path, name, line } => write!(
                f,
                "members file {}: {name} is already a member (line {line})",
                path.display()
            ),
            MembersError::NotMember { path, name } => {
                write!(f, "members file {}: no member named {name}", path.display())
            }
            MembersError::KeyFile(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for MembersError {}

/// The members of a members file, in file order, found by name.
#[derive(Debug, Clone, Default)]
pub struct Members {
    members: Vec<Member>,
    by_name: HashMap<Name, usize>,
}

/// A members file as read: its members, and whether its permissions let
/// group or others read it (a relay should warn, as it does for a key file).
#[derive(Debug)]
pub struct MembersFile {
    /// The members.
    pub members: Members,
    /// True when the file can be read by its group or by others.
    pub readable_by_others: bool,
}

impl Members {
    /// Parses the text of a members file; `path` only names it in errors.
    pub fn parse(text: &[u8], path: &Path) -> Result<Members, MembersError> {
        let mut members = Members::default();
        let mut line_of_key: HashMap<Vec<u8>, usize> = HashMap::new();
        for (index, raw) in lines(text).enumerate() {
            let line = index + 1;
            let error = |problem| MembersError::Line {
                path: path.to_owned(),
                line,
                problem,
            };
            let Some((name, key)) = parse_line(raw).map_err(error)? else {
                continue;
            };
            match line_of_key.entry(key.as_bytes().to_vec()) {
                Entry::Occupied(first) => {
                    return Err(error(LineProblem::DuplicateKey {
                        first_line: *first.get(),
                    }));
                }
                Entry::Vacant(slot) => {
                    slot.insert(line);
                }
            }
            if let Some(first) = members.get(name.as_str()) {
                return Err(error(LineProblem::DuplicateName {
                    first_line: first.line,
                    name,
                }));
            }
            members.by_name.insert(name.clone(), members.members.len());
            members.members.push(Member { name, key, line });
        }
        Ok(members)
    }

    /// Reads and parses a members file, and checks its permissions.
    pub fn read_file(path: &Path) -> Result<MembersFile, MembersError> {
        let text = fs::read(path).map_err(|error| MembersError::Io {
            path: path.to_owned(),
            error,
        })?;
        Ok(MembersFile {
            members: Members::parse(&text, path)?,
            readable_by_others: readable_by_others(path),
        })
    }

    /// The member called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.by_name.get(name).and_then(|&i| self.members.get(i))
    }

    /// The members, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Member> {
        self.members.iter()
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl<'a> IntoIterator for &'a Members {
    type Item = &'a Member;
    type IntoIter = std::slice::Iter<'a, Member>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The warning a program should log for a members file that group or others
/// can read, or `None` when its permissions are private.
pub fn permissions_warning(path: &Path) -> Option<String> {
    readable_by_others(path).then(|| {
        format!(
            "members file {} is readable by group or others; chmod 600 it",
            path.display()
        )
    })
}

/// Splits a file into lines, each without its `\n`; a final line without a
/// newline counts, an empty tail after the last `\n` does not.
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split_inclusive(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\n").unwrap_or(line))
}

/// One line: `Ok(None)` for a blank line or a comment.
fn parse_line(raw: &[u8]) -> Result<Option<(Name, Key)>, LineProblem> {
    let text = std::str::from_utf8(raw).map_err(|_| LineProblem::NotUtf8)?;
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let mut fields = text.split_ascii_whitespace();
    let name = fields.next().unwrap_or_default();
    let key = fields.next().ok_or(LineProblem::MissingKey)?;
    if fields.next().is_some() {
        return Err(LineProblem::TrailingText);
    }
    let name = Name::new(name).map_err(LineProblem::BadName)?;
    let key = Key::from_hex(key).map_err(LineProblem::BadKey)?;
    Ok(Some((name, key)))
}

/// The size of a generated member key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeySize {
    /// AES-128: 16 bytes, 32 hex digits.
    #[default]
    Aes128,
    /// AES-192: 24 bytes, 48 hex digits.
    Aes192,
    /// AES-256: 32 bytes, 64 hex digits.
    Aes256,
}

impl KeySize {
    /// The key's length in bytes.
    pub fn bytes(self) -> usize {
        match self {
            KeySize::Aes128 => 16,
            KeySize::Aes192 => 24,
            KeySize::Aes256 => 32,
        }
    }
}

impl FromStr for KeySize {
    type Err = String;

    /// Parses `128`, `192` or `256`.
    fn from_str(text: &str) -> Result<KeySize, String> {
        match text {
            "128" => Ok(KeySize::Aes128),
            "192" => Ok(KeySize::Aes192),
            "256" => Ok(KeySize::Aes256),
            _ => Err(format!("expected 128, 192 or 256, found {text:?}")),
        }
    }
}

/// The key file [`add`] writes for `name` when the caller names none:
/// `NAME.key` in the current directory.
pub fn default_key_file(name: &Name) -> PathBuf {
    PathBuf::from(format!("{name}.key"))
}

/// Adds a member called `name` with a fresh random key of `size`, and writes
/// that key to a new file `key_out` (mode 0600) to hand to them, as a
/// member key file: `# eaxchat member key for NAME`, then the key in hex
/// (see [`KeyFile`](crate::key::KeyFile)), so their client knows it is a
/// member.
///
/// The members file is created (mode 0600) if it does not exist; otherwise
/// it must parse, must not already hold `name`, and keeps its content and
/// its mode, with the new line appended. `key_out` must not exist: a key
/// file is never overwritten. If the members file cannot be written, the
/// new key file is removed again, so a failed add leaves nothing behind.
pub fn add(path: &Path, name: &Name, key_out: &Path, size: KeySize) -> Result<Key, MembersError> {
    let io_error = |error| MembersError::Io {
        path: path.to_owned(),
        error,
    };
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(io_error(error)),
    };
    if key_out == path {
        return Err(io_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the key file cannot be the members file",
        )));
    }
    let members = Members::parse(&text, path)?;
    if let Some(member) = members.get(name.as_str()) {
        return Err(MembersError::AlreadyMember {
            path: path.to_owned(),
            name: name.clone(),
            line: member.line,
        });
    }
    let key = loop {
        let key = generate(size).map_err(io_error)?;
        // A repeat of a 128-bit random key will not happen, but the file
        // must never hold one, so make sure.
        if members.iter().all(|m| m.key != key) {
            break key;
        }
    };

    let mut new_text = text;
    if !new_text.is_empty() && !new_text.ends_with(b"\n") {
        new_text.push(b'\n');
    }
    new_text.extend_from_slice(format!("{name} {}\n", key.to_hex()).as_bytes());

    key.write_new_member_file(key_out, name.as_str())
        .map_err(MembersError::KeyFile)?;
    if let Err(error) = replace_file(path, &new_text) {
        let _ = fs::remove_file(key_out);
        return Err(io_error(error));
    }
    Ok(key)
}

/// Removes the member called `name`: the file is rewritten without that
/// member's line, every other line kept byte for byte. The file must parse.
/// Returns the removed member.
pub fn remove(path: &Path, name: &Name) -> Result<Member, MembersError> {
    let text = fs::read(path).map_err(|error| MembersError::Io {
        path: path.to_owned(),
        error,
    })?;
    let members = Members::parse(&text, path)?;
    let Some(member) = members.get(name.as_str()).cloned() else {
        return Err(MembersError::NotMember {
            path: path.to_owned(),
            name: name.clone(),
        });
    };
    let new_text: Vec<u8> = text
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
        .filter(|&(index, _)| index + 1 != member.line)
        .flat_map(|(_, line)| line.iter().copied())
        .collect();
    replace_file(path, &new_text).map_err(|error| MembersError::Io {
        path: path.to_owned(),
        error,
    })?;
    Ok(member)
}

/// The members' names, in file order; never their keys.
pub fn list(path: &Path) -> Result<Vec<Name>, MembersError> {
    let file = Members::read_file(path)?;
    Ok(file.members.iter().map(|m| m.name.clone()).collect())
}

fn generate(size: KeySize) -> io::Result<Key> {
    let mut bytes = vec![0u8; size.bytes()];
    getrandom::fill(&mut bytes).map_err(io::Error::other)?;
    Key::from_bytes(&bytes).ok_or_else(|| io::Error::other("bad generated key length"))
}

/// Replaces `path` with `contents` atomically: a new file, private while it
/// is written, in the same directory, renamed over `path`. An existing file's
/// mode is kept; a new file gets mode 0600.
fn replace_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mode = match fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(error) if error.kind() == io::ErrorKind::NotFound => 0o600,
        Err(error) => return Err(error),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = path.with_file_name(temp_name);

    let write = || -> io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(contents)?;
        if mode != 0o600 {
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        file.sync_all()?;
        fs::rename(&temp, path)
    };
    if let Err(error) = write() {
        let _ = fs::remove_file(&temp);
        return Err(error);
    }
    // Make the rename itself durable; a failure here loses nothing already
    // visible, so it is not reported.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    Ok(())
}

#[cfg(test)]
mod tests {
    // Tests may unwrap: a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::key::KeyFile;

    const K128: &str = "000102030405060708090a0b0c0d0e0f";
    const K192: &str = "101112131415161718191a1b1c1d1e1f2021222324252627";
    const K256: &str = "303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f";

    fn parse(text: &str) -> Result<Members, MembersError> {
        Members::parse(text.as_bytes(), Path::new("members.txt"))
    }

    fn names(members: &Members) -> Vec<&str> {
        members.iter().map(|m| m.name().as_str()).collect()
    }

    #[test]
    fn parses_good_files() {
        let name32 = "z".repeat(32);
        let cases: Vec<(String, Vec<&str>)> = vec![
            (String::new(), vec![]),
            ("\n\n   \n".into(), vec![]),
            ("# only a comment\n".into(), vec![]),
            (format!("alice {K128}\n"), vec!["alice"]),
            (format!("alice {K128}"), vec!["alice"]),
            (format!("alice {K192}\n"), vec!["alice"]),
            (format!("alice {K256}\n"), vec!["alice"]),
            (
                format!("# team\n\nalice {K128}\n  # bob next\nbob\t{K256}\n\n"),
                vec!["alice", "bob"],
            ),
            (
                format!("alice {K128}\r\nbob {K192}\r\n# c\r\n\r\n"),
                vec!["alice", "bob"],
            ),
            (
                format!("  alice   {}  \n", K128.to_uppercase()),
                vec!["alice"],
            ),
            (format!("x {K128}\n"), vec!["x"]),
            (format!("{name32} {K128}\n"), vec![name32.as_str()]),
            (format!("A-z_0.9 {K128}\n"), vec!["A-z_0.9"]),
            (
                format!("alice {K128}\nAlice {K192}\n"),
                vec!["alice", "Alice"],
            ),
        ];
        for (text, want) in &cases {
            let members = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(names(&members), *want, "{text:?}");
            assert_eq!(members.len(), want.len());
        }
    }

    #[test]
    fn keys_lines_and_lookup() {
        let members = parse(&format!("# c\nalice {K128}\n\nbob {K256}\n")).unwrap();
        let alice = members.get("alice").unwrap();
        assert_eq!(alice.key().to_hex(), K128);
        assert_eq!(alice.line(), 2);
        let bob = members.get("bob").unwrap();
        assert_eq!(bob.key().as_bytes().len(), 32);
        assert_eq!(bob.line(), 4);
        assert!(members.get("carol").is_none());
        assert!(members.get("not a name").is_none());
        assert!(!members.is_empty());
    }

    /// Each kind of bad line: the line number it is reported on, and a piece
    /// of the message.
    #[test]
    fn rejects_each_kind_of_bad_line_with_its_number() {
        let name33 = "a".repeat(33);
        let cases: Vec<(String, usize, &str)> = vec![
            ("alice\n".into(), 1, "no key"),
            (format!("# c\n\nalice {K128} extra\n"), 3, "after the key"),
            (format!("alice {K128} # comment\n"), 1, "after the key"),
            (format!("{name33} {K128}\n"), 1, "33 characters"),
            (format!("al/ice {K128}\n"), 1, "character 3"),
            (format!("al:ice {K128}\n"), 1, "character 3"),
            (format!("élise {K128}\n"), 1, "character 1"),
            (format!("ok {K128}\nbob 0011\n"), 2, "found 4 characters"),
            (format!("bob {}\n", &K128[1..]), 1, "found 31 characters"),
            (format!("bob {K128}00\n"), 1, "found 34 characters"),
            (format!("bob {}g\n", &K128[1..]), 1, "not a hex digit"),
            (
                format!("alice {K128}\nbob {K192}\nalice {K256}\n"),
                3,
                "name alice is already used on line 1",
            ),
            (
                format!("alice {K128}\n\nbob {}\n", K128.to_uppercase()),
                3,
                "key is already used on line 1",
            ),
            ("alice\u{0}x\n".into(), 1, "no key"),
            (format!("{K128} {K192}\n"), 1, "looks like a key"),
        ];
        for (text, line, needle) in &cases {
            let err = parse(text).unwrap_err();
            let MembersError::Line { line: got, .. } = &err else {
                panic!("{text:?}: {err:?}");
            };
            assert_eq!(got, line, "{text:?}: {err}");
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("members file members.txt line {line}: ")),
                "{message}"
            );
            assert!(message.contains(needle), "{text:?}: {message}");
        }
        let err =
            Members::parse(format!("ok {K128}\n\u{1}").as_bytes(), Path::new("m")).unwrap_err();
        assert!(matches!(err, MembersError::Line { line: 2, .. }), "{err}");
        let err = Members::parse(b"# ok\n\xff\xfe x\n", Path::new("m")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "members file m line 2: the line is not valid UTF-8"
        );
    }

    /// Whatever is wrong, and wherever a key was written, no error shows it.
    #[test]
    fn errors_never_contain_key_material() {
        let keys = [K128, K192, K256];
        let texts = [
            format!("alice {K128}\nbob {K128}\n"),
            format!("alice {K192}\nalice {K256}\n"),
            format!("{K128}\n"),
            format!("{K128} {K192}\n{K128} {K256}\n"),
            format!("{K128}{K128} {K192}\n"),
            format!("alice {K192} {K256}\n"),
            format!("alice {K256}0\n"),
            format!("alice {K128}:\n"),
            format!("alice:{K128} {K192}\n"),
        ];
        for text in &texts {
            let message = parse(text).unwrap_err().to_string();
            for key in keys {
                let upper = key.to_uppercase();
                for part in [key, &upper[..]] {
                    assert!(!message.contains(&part[..16]), "{message}");
                    assert!(!message.contains(&part[16..32]), "{message}");
                }
            }
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(Name::new("").unwrap_err(), NameError::Empty);
        assert_eq!(Name::new("b").unwrap().as_str(), "b");
        assert!(Name::new(&"z".repeat(32)).is_ok());
        assert_eq!(
            Name::new(&"z".repeat(33)).unwrap_err(),
            NameError::TooLong { chars: 33 }
        );
        for (bad, position) in [("a b", 2), ("a\tb", 2), ("ab#", 3), ("x/y", 2), ("ü", 1)] {
            assert_eq!(
                Name::new(bad).unwrap_err(),
                NameError::BadCharacter { position },
                "{bad:?}"
            );
        }
        assert_eq!("Bob.2".parse::<Name>().unwrap().to_string(), "Bob.2");
        assert_eq!(Name::new(K128).unwrap_err(), NameError::LooksLikeKey);
        assert_eq!(
            Name::new(&K128.to_uppercase()).unwrap_err(),
            NameError::LooksLikeKey
        );
        assert!(Name::new(&K128[..31]).is_ok());
        assert!(Name::new(&format!("{}g", &K128[..31])).is_ok());
    }

    #[test]
    fn key_sizes_parse() {
        assert_eq!("128".parse::<KeySize>().unwrap().bytes(), 16);
        assert_eq!("192".parse::<KeySize>().unwrap().bytes(), 24);
        assert_eq!("256".parse::<KeySize>().unwrap().bytes(), 32);
        assert!("512".parse::<KeySize>().is_err());
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn name(text: &str) -> Name {
        Name::new(text).unwrap()
    }

    #[test]
    fn add_list_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("members.txt");
        let alice_key = dir.path().join("alice.key");
        let bob_key = dir.path().join("bob.key");

        let alice = add(&file, &name("alice"), &alice_key, KeySize::Aes128).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&alice_key), 0o600);
        assert_eq!(Key::read_file(&alice_key).unwrap(), Some(alice.clone()));
        assert_eq!(
            fs::read_to_string(&alice_key).unwrap(),
            format!("# eaxchat member key for alice\n{}\n", alice.to_hex())
        );
        let read_back = KeyFile::read(&alice_key).unwrap().unwrap();
        assert_eq!(read_back.key, alice);
        assert_eq!(read_back.member.as_deref(), Some("alice"));
        let bob = add(&file, &name("bob"), &bob_key, KeySize::Aes256).unwrap();
        assert_eq!(bob.as_bytes().len(), 32);
        assert_ne!(alice, bob);

        let read = Members::read_file(&file).unwrap();
        assert!(!read.readable_by_others);
        assert_eq!(read.members.get("alice").unwrap().key(), &alice);
        assert_eq!(read.members.get("bob").unwrap().key(), &bob);
        assert_eq!(list(&file).unwrap(), vec![name("alice"), name("bob")]);

        let removed = remove(&file, &name("alice")).unwrap();
        assert_eq!(removed.key(), &alice);
        assert_eq!(list(&file).unwrap(), vec![name("bob")]);
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!("bob {}\n", bob.to_hex())
        );
        let no_temp_left = fs::read_dir(dir.path())
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp"));
        assert!(no_temp_left);
    }

    #[test]
    fn add_refuses_a_member_already_there_and_an_existing_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("members.txt");
        let key_out = dir.path().join("alice.key");
        add(&file, &name("alice"), &key_out, KeySize::Aes128).unwrap();
        let before = fs::read(&file).unwrap();

        let err = add(
            &file,
            &name("alice"),
            &dir.path().join("a2.key"),
            KeySize::Aes128,
        )
        .unwrap_err();
        assert!(
            matches!(err, MembersError::AlreadyMember { line: 1, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("alice is already a member"),
            "{err}"
        );
        assert!(!dir.path().join("a2.key").exists());

        let err = add(&file, &name("bob"), &key_out, KeySize::Aes128).unwrap_err();
        assert!(matches!(err, MembersError::KeyFile(_)), "{err}");
        assert_eq!(fs::read(&file).unwrap(), before, "nothing added");

        let err = add(&file, &name("bob"), &file, KeySize::Aes128).unwrap_err();
        assert!(matches!(err, MembersError::Io { .. }), "{err}");
        assert_eq!(fs::read(&file).unwrap(), before);
    }

    #[test]
    fn add_and_remove_keep_other_lines_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("members.txt");
        let head = format!("# our team\r\n\r\nalice  {K128}\r\n   # bob below\n");
        let tail = format!("\n\tcarol\t{K256}   \n# end");
        let original = format!("{head}bob {K192}\n{tail}");
        fs::write(&file, &original).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();

        remove(&file, &name("bob")).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), format!("{head}{tail}"));
        assert_eq!(mode(&file), 0o640, "an existing file keeps its mode");
        assert!(permissions_warning(&file).unwrap().contains("chmod 600"));

        let dave = add(
            &file,
            &name("dave"),
            &dir.path().join("d.key"),
            KeySize::Aes192,
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!("{head}{tail}\ndave {}\n", dave.to_hex())
        );
        assert_eq!(
            list(&file).unwrap(),
            vec![name("alice"), name("carol"), name("dave")]
        );

        remove(&file, &name("alice")).unwrap();
        remove(&file, &name("dave")).unwrap();
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!("# our team\r\n\r\n   # bob below\n{tail}\n")
        );
    }

    #[test]
    fn remove_and_list_report_problems() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("members.txt");
        let err = list(&file).unwrap_err();
        assert!(matches!(err, MembersError::Io { .. }), "{err}");
        let err = remove(&file, &name("alice")).unwrap_err();
        assert!(matches!(err, MembersError::Io { .. }), "{err}");

        fs::write(&file, format!("alice {K128}\n")).unwrap();
        let err = remove(&file, &name("bob")).unwrap_err();
        assert!(err.to_string().ends_with("no member named bob"), "{err}");

        let malformed = format!("alice {K128}\nbob\n");
        fs::write(&file, &malformed).unwrap();
        for err in [
            list(&file).unwrap_err(),
            remove(&file, &name("alice")).unwrap_err(),
            add(
                &file,
                &name("carol"),
                &dir.path().join("c.key"),
                KeySize::Aes128,
            )
            .unwrap_err(),
        ] {
            assert!(matches!(err, MembersError::Line { line: 2, .. }), "{err}");
        }
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            malformed,
            "left as it was"
        );
        assert!(!dir.path().join("c.key").exists());
    }

    #[test]
    fn read_file_reports_open_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("members.txt");
        fs::write(&file, format!("alice {K128}\n")).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(!Members::read_file(&file).unwrap().readable_by_others);
        assert!(permissions_warning(&file).is_none());
        fs::set_permissions(&file, fs::Permissions::from_mode(0o604)).unwrap();
        assert!(Members::read_file(&file).unwrap().readable_by_others);
    }
}
