//! The members file's format: who may use a members relay, as parsed from
//! the file's text. A file is one of two kinds ([`MembersKind`]):
//!
//! - **Static keys** (`NAME HEXKEY`): each member holds an AES key the
//!   relay holds too ([`Members`]). The key is 32, 48 or 64 hex digits
//!   (AES-128/192/256), parsed by [`Key::from_hex`].
//! - **Sessions** (`NAME x25519:BASE64`): each line is one device's X25519
//!   public key ([`SessionMembers`]); a name may have several lines, one
//!   per device, and a public key may appear only once. The file holds no
//!   secret.
//!
//! A file is all one kind or the other: a line of the other kind is an
//! error naming it (`relay members migrate` rewrites a static-key file).
//! [`AnyMembers::parse`] reads either kind and says which it read; a file
//! with no member lines reads as an empty sessions file.
//!
//! One member or device per line, the name and the key separated by
//! spaces or tabs. A name is 1 to
//! [`NAME_MAX`](eaxchat_proto::name::NAME_MAX) characters of
//! `A-Z a-z 0-9 _ - .`, compared exactly (so `alice` and `Alice` are two
//! names); a name of exactly 32 hex digits is refused, as it looks like a
//! key written in the wrong place. Blank lines are allowed, and so are
//! comments, which take a whole line whose first non-blank character is
//! `#`; there are no trailing comments, so anything after the key is an
//! error. Lines may end in `\n` or `\r\n`. In a static-key file a name or
//! a key that appears twice is an error; in a sessions file a key. The
//! whole file is refused on the first bad line: a members file is read
//! completely or not at all.
//!
//! This module never displays key material: errors say which file, which
//! line and what is wrong, never the text of a key (nor the text of a bad
//! name, in case a key was written where a name belongs).
//!
//! This module parses text it is handed and never reads or writes a file:
//! the server crate's `members_file` reads the file, and its `add` and
//! `remove` rewrite it atomically, keeping every other line byte for byte.

mod devices;

pub use devices::{AnyMembers, Device, MembersKind, SessionMembers};

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use eaxchat_proto::key::{Key, KeyError, KeyParseError};
use eaxchat_proto::name::{Name, NameError};
use eaxchat_proto::session::identity_file::IdentityError;
use eaxchat_proto::session::{Fingerprint, PublicKey};

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
    /// The key is not 32, 48 or 64 hex digits; the error says why, without
    /// the key.
    BadKey(KeyParseError),
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
    /// An `x25519:` key that is not the padded base64 of 32 bytes.
    BadPublicKey,
    /// A line whose kind of key differs from the file's first member line.
    MixedKinds {
        /// The file's first member line, of the other kind.
        first_line: usize,
    },
    /// An `x25519:` key in a file read for static keys only
    /// ([`Members::parse`]).
    SessionKey,
    /// A static key in a file read for sessions only
    /// ([`SessionMembers::parse`]).
    StaticKey,
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
            LineProblem::BadPublicKey => f.write_str(
                "bad key: a public key is written \"x25519:\" and the padded base64 of 32 bytes",
            ),
            LineProblem::MixedKinds { first_line } => write!(
                f,
                "the file mixes static keys and x25519 keys (line {first_line} has the other \
                 kind); see relay members migrate"
            ),
            LineProblem::SessionKey => f.write_str(
                "an x25519 key where a static key is expected: this is a sessions members file",
            ),
            LineProblem::StaticKey => f.write_str(
                "a static key where an x25519 key is expected: this is a static-key members \
                 file; see relay members migrate",
            ),
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
    /// `add` was asked for a name that is already a member.
    AlreadyMember {
        /// The members file.
        path: PathBuf,
        /// The name.
        name: Name,
        /// The line it is on.
        line: usize,
    },
    /// `remove` was asked for a name that is not a member.
    NotMember {
        /// The members file.
        path: PathBuf,
        /// The name.
        name: Name,
    },
    /// The new member's key file could not be written (for example, because
    /// it already exists).
    KeyFile(KeyError),
    /// A new identity file (a session device's secret) could not be
    /// written, for example because it already exists.
    Identity(IdentityError),
    /// A device key given to `add` is in the file already.
    AlreadyDevice {
        /// The members file.
        path: PathBuf,
        /// Whose device it is.
        name: Name,
        /// The line it is on.
        line: usize,
    },
    /// `remove` was asked for a device key that is not the member's.
    NotDevice {
        /// The members file.
        path: PathBuf,
        /// The member.
        name: Name,
        /// The key's fingerprint.
        fingerprint: Fingerprint,
    },
    /// A command that needs the other kind of members file.
    WrongKind {
        /// The members file.
        path: PathBuf,
        /// The kind it is.
        kind: MembersKind,
        /// What to do instead.
        hint: &'static str,
    },
    /// A device label that cannot be written as a comment line.
    BadLabel(&'static str),
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
            MembersError::Identity(error) => error.fmt(f),
            MembersError::AlreadyDevice { path, name, line } => write!(
                f,
                "members file {}: that key is already a device of {name} (line {line})",
                path.display()
            ),
            MembersError::NotDevice {
                path,
                name,
                fingerprint,
            } => write!(
                f,
                "members file {}: {name} has no device {fingerprint}",
                path.display()
            ),
            MembersError::WrongKind { path, kind, hint } => {
                let kind = match kind {
                    MembersKind::Static => "static-key",
                    MembersKind::Sessions => "sessions",
                };
                write!(
                    f,
                    "members file {} is a {kind} members file: {hint}",
                    path.display()
                )
            }
            MembersError::BadLabel(problem) => write!(f, "bad device label: {problem}"),
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

impl Members {
    /// Parses the text of a static-key members file; `path` only names
    /// it in errors. A sessions file is refused at its first line
    /// ([`LineProblem::SessionKey`]): read a file of either kind with
    /// [`AnyMembers::parse`].
    pub fn parse(text: &[u8], path: &Path) -> Result<Members, MembersError> {
        match AnyMembers::parse(text, path)? {
            AnyMembers::Static(members) => Ok(members),
            AnyMembers::Sessions(devices) => match devices.iter().next() {
                None => Ok(Members::default()),
                Some(first) => Err(MembersError::Line {
                    path: path.to_owned(),
                    line: first.line(),
                    problem: LineProblem::SessionKey,
                }),
            },
        }
    }

    /// Adds the member on `line`, refusing a name or a key given before.
    fn push(
        &mut self,
        line_of_key: &mut HashMap<Vec<u8>, usize>,
        name: Name,
        key: Key,
        line: usize,
    ) -> Result<(), LineProblem> {
        match line_of_key.entry(key.as_bytes().to_vec()) {
            Entry::Occupied(first) => {
                return Err(LineProblem::DuplicateKey {
                    first_line: *first.get(),
                });
            }
            Entry::Vacant(slot) => {
                slot.insert(line);
            }
        }
        if let Some(first) = self.get(name.as_str()) {
            return Err(LineProblem::DuplicateName {
                first_line: first.line,
                name,
            });
        }
        self.by_name.insert(name.clone(), self.members.len());
        self.members.push(Member { name, key, line });
        Ok(())
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

/// Splits a file into lines, each without its `\n`; a final line without a
/// newline counts, an empty tail after the last `\n` does not.
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split_inclusive(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\n").unwrap_or(line))
}

/// The key of one member line.
enum LineKey {
    /// `HEXKEY`: a static AES key.
    Static(Key),
    /// `x25519:BASE64`: a session device's public key.
    Session(PublicKey),
}

/// What marks a session device's key.
const SESSION_PREFIX: &str = "x25519:";

/// One line: `Ok(None)` for a blank line or a comment.
fn parse_line(raw: &[u8]) -> Result<Option<(Name, LineKey)>, LineProblem> {
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
    let key = if key.starts_with(SESSION_PREFIX) {
        LineKey::Session(key.parse().map_err(|_| LineProblem::BadPublicKey)?)
    } else {
        LineKey::Static(Key::from_hex(key).map_err(LineProblem::BadKey)?)
    };
    Ok(Some((name, key)))
}

#[cfg(test)]
mod tests {
    // Tests may unwrap: a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;

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
}
