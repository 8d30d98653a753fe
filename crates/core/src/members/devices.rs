//! A sessions members file (`NAME x25519:BASE64`, one line per device),
//! and the reading of a file of either kind ([`AnyMembers`]).
//!
//! A session member is a name with one or more devices; each device is an
//! X25519 public key that only its own device holds the secret of. A key
//! appears once in the file (one device is one member's); a name may
//! appear on many lines. The file holds public keys only, so copying it
//! lets no one speak as anyone.
//!
//! This module only parses; the relay's view of the devices (which
//! connection is whose) is `crate::session_roster`'s.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

use eaxchat_proto::name::Name;
use eaxchat_proto::session::PublicKey;

use super::{LineKey, LineProblem, Members, MembersError, lines, parse_line};

/// Which kind of members file a text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MembersKind {
    /// `NAME HEXKEY` lines: static AES keys the relay holds a copy of (the
    /// members mode that sessions replace).
    Static,
    /// `NAME x25519:BASE64` lines: device public keys, served in session
    /// mode.
    Sessions,
}

/// One device of a session member: a name, and the public key the device
/// proves it holds in its handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    name: Name,
    key: PublicKey,
    line: usize,
}

impl Device {
    /// The member's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The device's public key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The 1-based line of the members file this device was read from.
    pub fn line(&self) -> usize {
        self.line
    }
}

/// The devices of a sessions members file, in file order, found by key.
#[derive(Debug, Clone, Default)]
pub struct SessionMembers {
    devices: Vec<Device>,
    by_key: HashMap<PublicKey, usize>,
}

impl SessionMembers {
    /// Parses the text of a sessions members file; `path` only names it in
    /// errors. A static-key file is refused at its first line
    /// ([`LineProblem::StaticKey`]).
    pub fn parse(text: &[u8], path: &Path) -> Result<SessionMembers, MembersError> {
        match AnyMembers::parse(text, path)? {
            AnyMembers::Sessions(devices) => Ok(devices),
            AnyMembers::Static(members) => match members.iter().next() {
                None => Ok(SessionMembers::default()),
                Some(first) => Err(MembersError::Line {
                    path: path.to_owned(),
                    line: first.line(),
                    problem: LineProblem::StaticKey,
                }),
            },
        }
    }

    /// Adds the device on `line`, refusing a key given before.
    fn push(&mut self, name: Name, key: PublicKey, line: usize) -> Result<(), LineProblem> {
        match self.by_key.entry(key) {
            Entry::Occupied(first) => {
                let first_line = self.devices.get(*first.get()).map_or(0, Device::line);
                Err(LineProblem::DuplicateKey { first_line })
            }
            Entry::Vacant(slot) => {
                slot.insert(self.devices.len());
                self.devices.push(Device { name, key, line });
                Ok(())
            }
        }
    }

    /// The device whose public key is `key`, if one is in the file.
    pub fn get(&self, key: &PublicKey) -> Option<&Device> {
        self.by_key.get(key).and_then(|&i| self.devices.get(i))
    }

    /// The devices, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Device> {
        self.devices.iter()
    }

    /// The devices of the member called `name`, in file order.
    pub fn devices_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Device> + 'a {
        self.devices
            .iter()
            .filter(move |device| device.name.as_str() == name)
    }

    /// The members' names, each once, in the order they first appear.
    pub fn names(&self) -> Vec<&Name> {
        let mut seen = std::collections::HashSet::new();
        self.devices
            .iter()
            .map(|device| &device.name)
            .filter(|name| seen.insert(*name))
            .collect()
    }

    /// How many devices there are.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// True when there are no devices.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

impl<'a> IntoIterator for &'a SessionMembers {
    type Item = &'a Device;
    type IntoIter = std::slice::Iter<'a, Device>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A members file of either kind, as parsed: what a relay reads before it
/// knows which mode to serve.
#[derive(Debug, Clone)]
pub enum AnyMembers {
    /// A static-key file.
    Static(Members),
    /// A sessions file (also what a file with no member lines reads as).
    Sessions(SessionMembers),
}

impl AnyMembers {
    /// Parses the text of a members file of either kind; `path` only names
    /// it in errors. The first member line sets the kind; a later line of
    /// the other kind is refused ([`LineProblem::MixedKinds`]).
    pub fn parse(text: &[u8], path: &Path) -> Result<AnyMembers, MembersError> {
        let mut members = Members::default();
        let mut line_of_key = HashMap::new();
        let mut devices = SessionMembers::default();
        let mut first: Option<(MembersKind, usize)> = None;
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
            let kind = match key {
                LineKey::Static(_) => MembersKind::Static,
                LineKey::Session(_) => MembersKind::Sessions,
            };
            match first {
                None => first = Some((kind, line)),
                Some((first_kind, first_line)) if first_kind != kind => {
                    return Err(error(LineProblem::MixedKinds { first_line }));
                }
                Some(_) => {}
            }
            match key {
                LineKey::Static(key) => members.push(&mut line_of_key, name, key, line),
                LineKey::Session(key) => devices.push(name, key, line),
            }
            .map_err(error)?;
        }
        Ok(match first {
            Some((MembersKind::Static, _)) => AnyMembers::Static(members),
            _ => AnyMembers::Sessions(devices),
        })
    }

    /// Which kind of file it is.
    pub fn kind(&self) -> MembersKind {
        match self {
            AnyMembers::Static(_) => MembersKind::Static,
            AnyMembers::Sessions(_) => MembersKind::Sessions,
        }
    }
}

#[cfg(test)]
mod tests {
    // Tests may unwrap: a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;

    const K128: &str = "000102030405060708090a0b0c0d0e0f";

    fn public(byte: u8) -> PublicKey {
        PublicKey::from_bytes([byte; 32])
    }

    fn parse(text: &str) -> Result<AnyMembers, MembersError> {
        AnyMembers::parse(text.as_bytes(), Path::new("members.txt"))
    }

    #[test]
    fn a_sessions_file_holds_devices_and_a_name_may_have_several() {
        let text = format!(
            "# devices\nalice {}\r\n\nbob\t{}\n  alice   {}  \n",
            public(1),
            public(2),
            public(3)
        );
        let any = parse(&text).unwrap();
        assert_eq!(any.kind(), MembersKind::Sessions);
        let AnyMembers::Sessions(devices) = any else {
            unreachable!()
        };
        assert_eq!(devices.len(), 3);
        let names: Vec<&str> = devices.names().iter().map(|n| n.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        let alice: Vec<usize> = devices.devices_of("alice").map(Device::line).collect();
        assert_eq!(alice, [2, 5]);
        let bob = devices.get(&public(2)).unwrap();
        assert_eq!((bob.name().as_str(), bob.line()), ("bob", 4));
        assert!(devices.get(&public(9)).is_none());
        assert_eq!(
            SessionMembers::parse(text.as_bytes(), Path::new("m"))
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn the_kind_is_the_first_member_lines_and_an_empty_file_is_a_sessions_file() {
        assert_eq!(
            parse(&format!("alice {K128}\n")).unwrap().kind(),
            MembersKind::Static
        );
        for text in ["", "\n# nobody yet\n"] {
            assert_eq!(parse(text).unwrap().kind(), MembersKind::Sessions);
            assert!(Members::parse(text.as_bytes(), Path::new("m")).is_ok());
        }
    }

    /// Each bad line: the line it is reported on, and a piece of the message.
    #[test]
    fn mixes_repeats_and_bad_keys_are_refused_with_their_line() {
        let (a, b) = (public(1), public(2));
        let cases: Vec<(String, usize, &str)> = vec![
            (
                format!("alice {K128}\nbob {a}\n"),
                2,
                "the file mixes static keys and x25519 keys (line 1 has the other kind); \
                 see relay members migrate",
            ),
            (
                format!("# c\nalice {a}\n\nbob {K128}\n"),
                4,
                "mixes static keys and x25519 keys (line 2",
            ),
            (
                format!("alice {a}\nbob {b}\ncarol {a}\n"),
                3,
                "the key is already used on line 1",
            ),
            ("alice x25519:AAAA\n".into(), 1, "bad key: a public key"),
            (format!("alice {a}=\n"), 1, "bad key: a public key"),
            (format!("alice {a} extra\n"), 1, "after the key"),
            (format!("al/ice {a}\n"), 1, "character 3"),
        ];
        for (text, line, needle) in &cases {
            let err = parse(text).unwrap_err();
            let MembersError::Line { line: got, .. } = &err else {
                panic!("{text:?}: {err:?}");
            };
            assert_eq!(got, line, "{text:?}: {err}");
            let message = err.to_string();
            assert!(message.contains(needle), "{text:?}: {message}");
            assert!(!message.contains(&a.to_string()[7..20]), "{message}");
        }
    }

    #[test]
    fn each_kinds_own_parser_refuses_the_other_kind() {
        let err = Members::parse(
            format!("\nalice {}\n", public(1)).as_bytes(),
            Path::new("m"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "members file m line 2: an x25519 key where a static key is expected: \
             this is a sessions members file"
        );
        let err = SessionMembers::parse(format!("alice {K128}\n").as_bytes(), Path::new("m"))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("members file m line 1: a static key where an x25519 key"),
            "{err}"
        );
        assert!(
            SessionMembers::parse(b"# none\n", Path::new("m"))
                .unwrap()
                .is_empty()
        );
    }
}
