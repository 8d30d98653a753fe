//! The members' remembered rooms on disk: `MEMBERS.rooms` beside the
//! members file, mode 0600, one member a line:
//!
//! ```text
//! # NAME CURRENT ROOM…
//! alice #dev #lobby #dev
//! bob -
//! ```
//!
//! `CURRENT` is the room the member's plain text goes to, `-` for none;
//! then every room the member is in, in the order joined. Rooms are
//! written with their `#` (so a room named `-` is never taken for "none")
//! and read with or without it. Lines starting with `#` and blank lines
//! are comments.
//!
//! The relay reads it at start ([`read`]) and writes it whenever the core
//! says the rooms changed ([`write`]): the whole file, replaced atomically
//! (a temporary file in the same directory, synced, renamed over it), so
//! a crash at any point leaves the old file or the new one. A line that
//! does not parse is reported with its number ([`RoomsFile::bad_lines`])
//! and skipped, never fatal: the member comes back in the default room.
//! What the rooms mean (at most 32 a member, a current room not among them
//! dropped) is the core's (`Relay::restore_member_rooms`).

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use eaxchat_core::relay::MemberRooms;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::name::Name;

use super::replace_file;

/// The rooms file of the members file `members`: `MEMBERS.rooms`.
pub fn rooms_path(members: &Path) -> PathBuf {
    let mut name = members.as_os_str().to_owned();
    name.push(".rooms");
    PathBuf::from(name)
}

/// A line of the rooms file that does not parse, skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// Its number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}; skipped", self.line, self.problem)
    }
}

/// The rooms file as read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoomsFile {
    /// Each member's `(name, current, rooms)`, in the file's order.
    pub rooms: Vec<MemberRooms>,
    /// The lines skipped, and why.
    pub bad_lines: Vec<BadLine>,
}

/// Reads the rooms file at `path`; a missing file is an empty one.
pub fn read(path: &Path) -> io::Result<RoomsFile> {
    match fs::read(path) {
        Ok(bytes) => Ok(parse(&bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(RoomsFile::default()),
        Err(error) => Err(error),
    }
}

/// Parses a rooms file's bytes: every line that parses, and each that
/// does not with its number.
pub fn parse(bytes: &[u8]) -> RoomsFile {
    let mut file = RoomsFile::default();
    let mut seen = HashSet::new();
    for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_number = number + 1;
        let bad = |problem: String| BadLine {
            line: line_number,
            problem,
        };
        let Ok(line) = std::str::from_utf8(line) else {
            file.bad_lines.push(bad("not UTF-8".to_owned()));
            continue;
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Ok(member) if !seen.insert(member.0.clone()) => file
                .bad_lines
                .push(bad(format!("{} is listed again", member.0))),
            Ok(member) => file.rooms.push(member),
            Err(problem) => file.bad_lines.push(bad(problem)),
        }
    }
    file
}

fn parse_line(line: &str) -> Result<MemberRooms, String> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let name = Name::new(name).map_err(|e| format!("member name: {e}"))?;
    let current = match words.next() {
        None => return Err(format!("{name}: no current room (`-` for none)")),
        Some("-") => None,
        Some(room) => Some(
            RoomName::new(room.as_bytes())
                .map_err(|e| format!("{name}'s current room {room:?}: {e}"))?,
        ),
    };
    let rooms = words
        .map(|room| {
            RoomName::new(room.as_bytes()).map_err(|e| format!("{name}'s room {room:?}: {e}"))
        })
        .collect::<Result<Vec<RoomName>, String>>()?;
    Ok((name, current, rooms))
}

/// The rooms file's text for `rooms`.
pub fn format(rooms: &[MemberRooms]) -> String {
    let mut text = String::from(
        "# eaxchat: each member's rooms, kept by the relay (NAME CURRENT ROOM...; - for none)\n",
    );
    for (name, current, list) in rooms {
        text.push_str(name.as_str());
        match current {
            Some(room) => text.push_str(&format!(" {room}")),
            None => text.push_str(" -"),
        }
        for room in list {
            text.push_str(&format!(" {room}"));
        }
        text.push('\n');
    }
    text
}

/// Replaces the rooms file at `path` with `rooms`, atomically.
pub fn write(path: &Path, rooms: &[MemberRooms]) -> io::Result<()> {
    replace_file(path, format(rooms).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn room(name: &str) -> RoomName {
        RoomName::new(name.as_bytes()).expect("a room")
    }

    fn name(text: &str) -> Name {
        Name::new(text).expect("a name")
    }

    #[test]
    fn rooms_round_trip_through_the_file_atomically_and_0600() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let members = dir.path().join("members.txt");
        let path = rooms_path(&members);
        assert_eq!(path, dir.path().join("members.txt.rooms"));
        assert_eq!(read(&path).expect("missing is empty"), RoomsFile::default());
        let rooms = vec![
            (
                name("alice"),
                Some(room("dev")),
                vec![room("lobby"), room("dev")],
            ),
            (name("bob"), None, vec![]),
            (name("carol"), None, vec![room("-"), room("x.y_z")]),
        ];
        write(&path, &rooms).expect("written");
        let mode = fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(&path).expect("read");
        assert!(text.contains("alice #dev #lobby #dev\n"), "{text}");
        assert!(text.contains("bob -\n"), "{text}");
        assert!(text.contains("carol - #- #x.y_z\n"), "{text}");
        let back = read(&path).expect("read back");
        assert_eq!(back.rooms, rooms);
        assert!(back.bad_lines.is_empty());
        // Written again: replaced whole, no temporary file left behind.
        write(&path, &rooms[..1]).expect("written");
        assert_eq!(read(&path).expect("read back").rooms, rooms[..1]);
        let files = fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(files, 1, "only the rooms file");
    }

    #[test]
    fn bad_lines_are_skipped_with_their_numbers() {
        let text = b"# comment\n\
            alice dev lobby dev\n\
            \n\
            bad@name - lobby\n\
            bob\n\
            carol #dev #dev\n\
            dave - no/slash\n\
            alice - lobby\n\
            erin \xff\n\
            frank bad! dev\n\
            gina - #lobby\n";
        let file = parse(text);
        let names: Vec<&str> = file.rooms.iter().map(|(n, ..)| n.as_str()).collect();
        assert_eq!(names, ["alice", "carol", "gina"]);
        assert_eq!(
            file.rooms[0],
            (
                name("alice"),
                Some(room("dev")),
                vec![room("lobby"), room("dev")]
            )
        );
        let lines: Vec<usize> = file.bad_lines.iter().map(|bad| bad.line).collect();
        assert_eq!(lines, [4, 5, 7, 8, 9, 10]);
        let shown: Vec<String> = file.bad_lines.iter().map(ToString::to_string).collect();
        assert!(shown[0].starts_with("line 4: member name:"), "{shown:?}");
        assert!(shown[1].contains("no current room"), "{shown:?}");
        assert!(shown[2].contains("dave's room \"no/slash\""), "{shown:?}");
        assert!(shown[3].contains("alice is listed again"), "{shown:?}");
        assert!(shown[4].contains("not UTF-8"), "{shown:?}");
        assert!(shown[5].contains("frank's current room"), "{shown:?}");
        assert!(shown.iter().all(|s| s.ends_with("; skipped")));
    }
}
