//! The plain-text form of an event: what a client that never said `/hello`
//! gets from the relay, and what a client that did shows for each event it
//! parses. Each kind's line is written once, in [`Plain`]; [`Event::plain`]
//! and [`ParsedEvent::plain`] only pick the line and hand it its parts.
//!
//! Peer text goes as it came, byte for byte: making it safe to print is
//! the caller's ([`crate::sanitize`]).

use std::fmt::Write as _;

use super::{Event, GroupNotice, ParsedEvent, ParsedKind, Text};
use crate::commands::RoomName;
use crate::name::Name;

impl Event<'_> {
    /// Appends the plain-text form: what a client that never said
    /// `/hello` gets.
    pub fn plain(&self, out: &mut Vec<u8>) {
        let plain = Plain(out);
        match *self {
            Event::Welcome { name, room, .. } => {
                plain.welcome(name.map(Name::as_str), room.map(RoomName::as_str))
            }
            Event::Message {
                from,
                text,
                action,
                stamped,
                ..
            } => plain.message(from.map(Name::as_str), text, action, stamped),
            Event::Private {
                from,
                to,
                text,
                echo,
                ..
            } => plain.private(from.map(Name::as_str), to.as_str(), text, echo),
            Event::Presence {
                room,
                name,
                count,
                joined,
                ..
            } => plain.presence(room.as_str(), name.as_str(), count as u64, joined),
            Event::Nick { from, to, .. } => plain.nick(from.map(Name::as_str), to.as_str()),
            Event::HistoryStart {
                room, count, page, ..
            } => plain.history_start(room.as_str(), count as u64, page),
            Event::Who {
                room,
                names,
                unnamed,
            } => plain.who(
                room.as_str(),
                names.iter().map(|name| name.as_str()),
                unnamed as u64,
            ),
            Event::Rooms(rooms) => plain.rooms(
                rooms
                    .iter()
                    .map(|entry| (entry.room.as_str(), entry.count as u64, entry.joined)),
            ),
            Event::MyRooms { room, rooms, .. } => plain.my_rooms(
                room.map(RoomName::as_str),
                rooms.iter().map(|room| room.as_str()),
            ),
            Event::Topic {
                room, from, text, ..
            } => plain.topic(room.as_str(), from.map(Name::as_str), text),
            Event::Mls { room, from, .. } => plain.mls(room.as_str(), from.map(Name::as_str)),
            Event::Group { what, room } => match what {
                GroupNotice::Taken { epoch } => plain.mls_taken(room.as_str(), epoch),
                GroupNotice::Refused { epoch, text } => {
                    plain.mls_refused(room.as_str(), epoch, text.as_bytes());
                }
                GroupNotice::Add(name) => plain.mls_member(room.as_str(), name.as_str(), true),
                GroupNotice::Remove(name) => plain.mls_member(room.as_str(), name.as_str(), false),
            },
            Event::KeyPackages { name, packages } => {
                plain.key_packages(name.as_str(), packages.len() as u64);
            }
            Event::GroupInfo { room, epoch, .. } => plain.group_info(room.as_str(), epoch),
            Event::Notice { text, .. } | Event::Error { text, .. } => plain.text(text.as_bytes()),
        }
    }
}

impl ParsedEvent {
    /// Appends the line the relay's plain text shows for this event
    /// (unsanitised: the caller sanitises). `members` says whether
    /// messages are stamped `NAME: ` (a members relay vouches for names; a
    /// shared-key relay relays text as it came).
    pub fn plain(&self, members: bool, out: &mut Vec<u8>) {
        let plain = Plain(out);
        let from = self.from.as_deref();
        let room = self.room.as_deref().unwrap_or("");
        let text = self.text.as_bytes();
        match &self.kind {
            ParsedKind::Message => plain.message(from, text, false, members),
            ParsedKind::Action => plain.message(from, text, true, members),
            ParsedKind::Private { to, echo } => plain.private(from, to, text, *echo),
            ParsedKind::Presence {
                name,
                count,
                joined,
            } => plain.presence(room, name, *count, *joined),
            ParsedKind::Nick { to } => plain.nick(from, to),
            ParsedKind::HistoryStart { count, page, .. } => {
                plain.history_start(room, *count, *page);
            }
            ParsedKind::Who { names, unnamed } => {
                plain.who(room, names.iter().map(String::as_str), *unnamed);
            }
            ParsedKind::Rooms(rooms) => {
                plain.rooms(
                    rooms
                        .iter()
                        .map(|entry| (entry.room.as_str(), entry.count, entry.joined)),
                );
            }
            ParsedKind::MyRooms => {
                plain.my_rooms(self.room.as_deref(), self.rooms.iter().map(String::as_str));
            }
            ParsedKind::Topic => plain.topic(room, from, text),
            ParsedKind::Mls => plain.mls(room, from),
            ParsedKind::MlsTaken { epoch } => plain.mls_taken(room, *epoch),
            ParsedKind::MlsRefused { epoch } => plain.mls_refused(room, *epoch, text),
            ParsedKind::MlsAdd { name } => plain.mls_member(room, name, true),
            ParsedKind::MlsRemove { name } => plain.mls_member(room, name, false),
            ParsedKind::KeyPackages { name } => {
                plain.key_packages(name, self.packages.len() as u64);
            }
            ParsedKind::GroupInfo { epoch } => plain.group_info(room, *epoch),
            ParsedKind::Welcome { name, .. } => {
                plain.welcome(name.as_deref(), self.room.as_deref())
            }
            ParsedKind::Notice | ParsedKind::Error | ParsedKind::Other(_) => plain.text(text),
        }
    }
}

/// Writes one event's plain-text line onto a buffer. Rooms are given
/// without their `#`, names as text.
struct Plain<'a>(&'a mut Vec<u8>);

impl Plain<'_> {
    fn welcome(self, name: Option<&str>, room: Option<&str>) {
        let name = name.unwrap_or("(no name: /nick NAME takes one)");
        match room {
            Some(room) => {
                let _ = write!(Text(self.0), "* welcome, {name} in #{room}");
            }
            None => {
                let _ = write!(Text(self.0), "* welcome, {name}, in no room (/join ROOM)");
            }
        }
    }

    /// A message, or a `/me` action; `stamped` puts `NAME: ` in front of
    /// a message (members mode: the relay vouches for the name).
    fn message(self, from: Option<&str>, text: &[u8], action: bool, stamped: bool) {
        if action {
            let _ = write!(Text(self.0), "* {} ", or_someone(from));
        } else if let (true, Some(from)) = (stamped, from) {
            let _ = write!(Text(self.0), "{from}: ");
        }
        self.0.extend_from_slice(text);
    }

    /// A private message; `echo` is the sender's own copy.
    fn private(self, from: Option<&str>, to: &str, text: &[u8], echo: bool) {
        if echo {
            let _ = write!(Text(self.0), "[private to {to}] ");
        } else {
            let _ = write!(Text(self.0), "[private] {}: ", or_someone(from));
        }
        self.0.extend_from_slice(text);
    }

    fn presence(self, room: &str, name: &str, count: u64, joined: bool) {
        let verb = if joined { "joined" } else { "left" };
        let _ = write!(Text(self.0), "* {name} {verb} #{room} ({count} here)");
    }

    fn nick(self, from: Option<&str>, to: &str) {
        let _ = write!(Text(self.0), "* {} is now {to}", or_someone(from));
    }

    fn history_start(self, room: &str, count: u64, page: bool) {
        let plural = if count == 1 { "" } else { "s" };
        let which = if page { "earlier" } else { "last" };
        let _ = write!(
            Text(self.0),
            "* the {which} {count} message{plural} in #{room}:"
        );
    }

    fn who<'n>(self, room: &str, names: impl Iterator<Item = &'n str>, unnamed: u64) {
        let _ = write!(Text(self.0), "* here in #{room}:");
        let mut named = false;
        for name in names {
            let sep = if named { ", " } else { " " };
            let _ = write!(Text(self.0), "{sep}{name}");
            named = true;
        }
        if unnamed > 0 {
            let sep = if named { ", and " } else { " " };
            let _ = write!(Text(self.0), "{sep}{unnamed} with no name");
        }
    }

    /// Every room listed, the asker's marked with `*`.
    fn rooms<'r>(self, rooms: impl Iterator<Item = (&'r str, u64, bool)>) {
        self.0.extend_from_slice(b"* rooms:");
        for (i, (room, count, joined)) in rooms.enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let mark = if joined { "*" } else { "" };
            let _ = write!(Text(self.0), "{sep}{mark}#{room} ({count})");
        }
    }

    fn my_rooms<'r>(self, room: Option<&str>, rooms: impl Iterator<Item = &'r str>) {
        self.0.extend_from_slice(b"* your rooms:");
        let mut any = false;
        for room in rooms {
            let sep = if any { ", " } else { " " };
            let _ = write!(Text(self.0), "{sep}#{room}");
            any = true;
        }
        if !any {
            self.0.extend_from_slice(b" none");
        }
        if let Some(room) = room {
            let _ = write!(Text(self.0), " (now in #{room})");
        }
    }

    fn topic(self, room: &str, from: Option<&str>, text: &[u8]) {
        match (from, text.is_empty()) {
            (_, true) => {
                let _ = write!(Text(self.0), "* #{room} has no topic");
            }
            (Some(from), false) => {
                let _ = write!(Text(self.0), "* {from} set the topic of #{room}: ");
                self.0.extend_from_slice(text);
            }
            (None, false) => {
                let _ = write!(Text(self.0), "* the topic of #{room}: ");
                self.0.extend_from_slice(text);
            }
        }
    }

    fn mls(self, room: &str, from: Option<&str>) {
        let _ = write!(
            Text(self.0),
            "* an end-to-end message in #{room} from {}",
            or_someone(from)
        );
    }

    fn mls_taken(self, room: &str, epoch: u64) {
        let _ = write!(
            Text(self.0),
            "* #{room}: your commit was taken (epoch {epoch})"
        );
    }

    fn mls_refused(self, room: &str, epoch: u64, text: &[u8]) {
        let _ = write!(Text(self.0), "* #{room} (epoch {epoch}) refused: ");
        self.0.extend_from_slice(text);
    }

    fn mls_member(self, room: &str, name: &str, add: bool) {
        let verb = if add { "added to" } else { "removed from" };
        let _ = write!(
            Text(self.0),
            "* #{room}: {name}'s devices are to be {verb} the group"
        );
    }

    fn key_packages(self, name: &str, count: u64) {
        let _ = write!(Text(self.0), "* {count} key packages of {name}");
    }

    fn group_info(self, room: &str, epoch: u64) {
        let _ = write!(Text(self.0), "* the group info of #{room} (epoch {epoch})");
    }

    /// A notice, an error, or a kind this version does not know: its text.
    fn text(self, text: &[u8]) {
        self.0.extend_from_slice(text);
    }
}

fn or_someone(name: Option<&str>) -> &str {
    name.unwrap_or("someone")
}
