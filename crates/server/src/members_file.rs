//! The members file on disk: reading it (with a warning for open
//! permissions), and the add / remove / list operations of `relay members`.
//! The file's format and its parser are `eaxchat_core::members`'; this
//! module owns the file: its bytes, its mode and its atomic replacement.
//! Watching it for changes is the poll loop's (`event_loop::MembersWatch`).
//!
//! A file is of one of two kinds: static keys (`NAME HEXKEY`, the members
//! mode that sessions replace: this module's [`add`], [`remove`] and
//! [`list`]) or sessions (`NAME x25519:…`, public keys only: `sessions`'
//! [`add_device`], [`add_generated`], [`remove_devices`], [`list_any`],
//! and [`migrate`] from the one to the other). [`read_any`] reads either.
//!
//! [`add`] and [`remove`] rewrite the file atomically (a private temporary
//! file in the same directory, renamed over it), so a relay reading the file
//! at any moment sees either the old file or the new one. They keep every
//! other line, comments included, byte for byte. Two management commands run
//! at the same moment on the same file can lose one of the changes; run them
//! one at a time.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use eaxchat_core::members::{AnyMembers, Member, Members, MembersError};
use eaxchat_proto::key::{Key, readable_by_others};
use eaxchat_proto::name::Name;

pub mod delivery;
pub mod invites;
pub mod rooms;
mod sessions;

pub use sessions::{
    LABEL_MAX, LABEL_PREFIX, ListedDevice, Listing, Migrated, add_device, add_generated,
    default_identity_file, kind, list_any, migrate, remove_devices,
};

/// A members file of either kind as read, and whether group or others
/// can read it.
#[derive(Debug)]
pub struct AnyMembersFile {
    /// The members: static keys or session devices.
    pub members: AnyMembers,
    /// True when the file can be read by its group or by others.
    pub readable_by_others: bool,
}

/// Reads and parses a members file of either kind, and checks its
/// permissions: what a relay reads before it knows which mode to serve.
pub fn read_any(path: &Path) -> Result<AnyMembersFile, MembersError> {
    let text = fs::read(path).map_err(|error| MembersError::Io {
        path: path.to_owned(),
        error,
    })?;
    Ok(AnyMembersFile {
        members: AnyMembers::parse(&text, path)?,
        readable_by_others: readable_by_others(path),
    })
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

/// Reads and parses a members file, and checks its permissions.
pub fn read(path: &Path) -> Result<MembersFile, MembersError> {
    let text = fs::read(path).map_err(|error| MembersError::Io {
        path: path.to_owned(),
        error,
    })?;
    Ok(MembersFile {
        members: Members::parse(&text, path)?,
        readable_by_others: readable_by_others(path),
    })
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
    type Err = KeySizeError;

    /// Parses `128`, `192` or `256`.
    fn from_str(text: &str) -> Result<KeySize, KeySizeError> {
        match text {
            "128" => Ok(KeySize::Aes128),
            "192" => Ok(KeySize::Aes192),
            "256" => Ok(KeySize::Aes256),
            _ => Err(KeySizeError {
                found: text.to_owned(),
            }),
        }
    }
}

/// A key size that is not `128`, `192` or `256` (`relay members add
/// --bits`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySizeError {
    /// What was given instead.
    pub found: String,
}

impl fmt::Display for KeySizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected 128, 192 or 256, found {:?}", self.found)
    }
}

impl std::error::Error for KeySizeError {}

/// The key file [`add`] writes for `name` when the caller names none:
/// `NAME.key` in the current directory.
pub fn default_key_file(name: &Name) -> PathBuf {
    PathBuf::from(format!("{name}.key"))
}

/// Adds a member called `name` with a fresh random key of `size`, and writes
/// that key to a new file `key_out` (mode 0600) to hand to them, as a
/// member key file: `# eaxchat member key for NAME`, then the key in hex
/// (see [`KeyFile`](eaxchat_proto::key::KeyFile)), so their client knows
/// it is a member.
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
            line: member.line(),
        });
    }
    let key = loop {
        let key = generate(size).map_err(io_error)?;
        // A repeat of a 128-bit random key will not happen, but the file
        // must never hold one, so make sure.
        if members.iter().all(|m| m.key() != &key) {
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
        .filter(|&(index, _)| index + 1 != member.line())
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
    let file = read(path)?;
    Ok(file.members.iter().map(|m| m.name().clone()).collect())
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
    use eaxchat_proto::key::KeyFile;

    const K128: &str = "000102030405060708090a0b0c0d0e0f";
    const K192: &str = "101112131415161718191a1b1c1d1e1f2021222324252627";
    const K256: &str = "303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f";

    #[test]
    fn key_sizes_parse() {
        assert_eq!("128".parse::<KeySize>().unwrap().bytes(), 16);
        assert_eq!("192".parse::<KeySize>().unwrap().bytes(), 24);
        assert_eq!("256".parse::<KeySize>().unwrap().bytes(), 32);
        assert!("512".parse::<KeySize>().is_err());
    }

    #[test]
    fn a_bad_key_size_says_what_it_expected() {
        let error = "512".parse::<KeySize>().unwrap_err();
        assert_eq!(error.found, "512");
        assert_eq!(
            error.to_string(),
            r#"expected 128, 192 or 256, found "512""#
        );
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

        let read = read(&file).unwrap();
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
        assert!(!read(&file).unwrap().readable_by_others);
        assert!(permissions_warning(&file).is_none());
        fs::set_permissions(&file, fs::Permissions::from_mode(0o604)).unwrap();
        assert!(read(&file).unwrap().readable_by_others);
    }
}
