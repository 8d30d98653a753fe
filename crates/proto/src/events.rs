//! What the relay tells people, in the two forms a client can get: plain
//! text lines, which the original notebook client prints readably, and
//! the structured events of `eaxchat/1`, one-line JSON objects, for a
//! client that asked with `/hello eaxchat/1`.
//!
//! It owns both formats and nothing else: an [`Event`] borrows what it
//! shows, and [`Event::plain`] and [`Event::json`] append its plaintext to
//! a buffer for the caller to seal. The JSON form is written here, by
//! hand, with every string escaped; a text that is not UTF-8 is shown with
//! U+FFFD in place of each bad sequence.
//!
//! # `eaxchat/1`
//!
//! Every object has a `kind`; times (`ts`) are milliseconds since the Unix
//! epoch, as the relay's clock read them; rooms are shown without `#`;
//! `from` is `null` for a shared-key connection that never took a name.
//!
//! | kind | fields |
//! |---|---|
//! | `welcome` | `protocol`, `name`, `room`, `members` (whether names are vouched for by a members file) |
//! | `msg`, `action` | `room`, `from`, `text`, `ts`, `history` (true for history sent on joining) |
//! | `private` | `from`, `to`, `text`, `ts`, `echo` (true on the sender's copy) |
//! | `join`, `leave` | `room`, `name`, `count` (connections in the room after it), `ts` |
//! | `nick` | `room`, `from` (the old name or `null`), `to`, `ts` |
//! | `history` | `room`, `count`: that many `msg`/`action` events with `history: true` follow |
//! | `who` | `room`, `names`, `unnamed` (connections in it with no name) |
//! | `rooms` | `rooms`: a list of `{"room", "count"}` |
//! | `notice`, `error` | `text`: a reply to a command, or why it was refused |

use std::fmt::Write as _;

use crate::commands::RoomName;
use crate::name::Name;

/// The version a `welcome` event names.
pub const PROTOCOL: &str = crate::commands::PROTOCOL_V1;

/// Something the relay sends one connection.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The answer to `/hello`.
    Welcome {
        /// The connection's name, if it has one.
        name: Option<&'a Name>,
        /// Its room.
        room: &'a RoomName,
        /// Whether the relay serves members.
        members: bool,
    },
    /// A message or `/me` action said in a room.
    Message {
        /// Where.
        room: &'a RoomName,
        /// Who said it.
        from: Option<&'a Name>,
        /// What.
        text: &'a [u8],
        /// When.
        ts: u64,
        /// Sent as history on joining, not live.
        history: bool,
        /// A `/me` action rather than text.
        action: bool,
        /// The plain form starts `NAME: ` (members mode: the relay vouches
        /// for the name). In shared-key mode the text goes as it came.
        stamped: bool,
    },
    /// A private message.
    Private {
        /// Who sent it.
        from: Option<&'a Name>,
        /// Whom it is for.
        to: &'a Name,
        /// What it says.
        text: &'a [u8],
        /// When.
        ts: u64,
        /// The sender's own copy.
        echo: bool,
    },
    /// Someone came into a room, or went out of it.
    Presence {
        /// Which room.
        room: &'a RoomName,
        /// Who.
        name: &'a Name,
        /// Connections in the room now.
        count: usize,
        /// When.
        ts: u64,
        /// Came in (`join`) or went out (`leave`).
        joined: bool,
    },
    /// Someone took a name, or a new one.
    Nick {
        /// Where they are.
        room: &'a RoomName,
        /// Their name before, if they had one.
        from: Option<&'a Name>,
        /// Their name now.
        to: &'a Name,
        /// When.
        ts: u64,
    },
    /// History follows: `count` messages of `room`.
    HistoryStart {
        /// The room.
        room: &'a RoomName,
        /// How many messages follow.
        count: usize,
    },
    /// Who is in a room.
    Who {
        /// The room.
        room: &'a RoomName,
        /// The names of those with one.
        names: &'a [&'a Name],
        /// Connections with no name.
        unnamed: usize,
    },
    /// The rooms and how many are in each.
    Rooms(&'a [(&'a RoomName, usize)]),
    /// A reply to a command.
    Notice(&'a str),
    /// A command refused, and why.
    Error(&'a str),
}

impl Event<'_> {
    /// Appends the plain-text form: what a client that never said
    /// `/hello` gets.
    pub fn plain(&self, out: &mut Vec<u8>) {
        match *self {
            Event::Welcome { name, room, .. } => {
                let _ = write!(Text(out), "* welcome, {} in {room}", or_unnamed(name));
            }
            Event::Message {
                from,
                text,
                action,
                stamped,
                ..
            } => {
                if action {
                    let _ = write!(Text(out), "* {} ", or_someone(from));
                } else if let (true, Some(from)) = (stamped, from) {
                    let _ = write!(Text(out), "{from}: ");
                }
                out.extend_from_slice(text);
            }
            Event::Private {
                from,
                to,
                text,
                echo,
                ..
            } => {
                if echo {
                    let _ = write!(Text(out), "[private to {to}] ");
                } else {
                    let _ = write!(Text(out), "[private] {}: ", or_someone(from));
                }
                out.extend_from_slice(text);
            }
            Event::Presence {
                room,
                name,
                count,
                joined,
                ..
            } => {
                let verb = if joined { "joined" } else { "left" };
                let _ = write!(Text(out), "* {name} {verb} {room} ({count} here)");
            }
            Event::Nick { from, to, .. } => match from {
                Some(from) => {
                    let _ = write!(Text(out), "* {from} is now {to}");
                }
                None => {
                    let _ = write!(Text(out), "* someone is now {to}");
                }
            },
            Event::HistoryStart { room, count } => {
                let plural = if count == 1 { "" } else { "s" };
                let _ = write!(Text(out), "* the last {count} message{plural} in {room}:");
            }
            Event::Who {
                room,
                names,
                unnamed,
            } => {
                let _ = write!(Text(out), "* here in {room}:");
                for (i, name) in names.iter().enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    let _ = write!(Text(out), "{sep}{name}");
                }
                if unnamed > 0 {
                    let sep = if names.is_empty() { " " } else { ", and " };
                    let _ = write!(Text(out), "{sep}{unnamed} with no name");
                }
            }
            Event::Rooms(rooms) => {
                out.extend_from_slice(b"* rooms:");
                for (i, (room, count)) in rooms.iter().enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    let _ = write!(Text(out), "{sep}{room} ({count})");
                }
            }
            Event::Notice(text) | Event::Error(text) => out.extend_from_slice(text.as_bytes()),
        }
    }

    /// Appends the `eaxchat/1` form: one JSON object, no newline.
    pub fn json(&self, out: &mut Vec<u8>) {
        let mut json = Json::new(out);
        match *self {
            Event::Welcome {
                name,
                room,
                members,
            } => {
                json.kind("welcome");
                json.str("protocol", PROTOCOL);
                json.name("name", name);
                json.str("room", room.as_str());
                json.raw("members", if members { "true" } else { "false" });
            }
            Event::Message {
                room,
                from,
                text,
                ts,
                history,
                action,
                ..
            } => {
                json.kind(if action { "action" } else { "msg" });
                json.str("room", room.as_str());
                json.name("from", from);
                json.bytes("text", text);
                json.number("ts", ts);
                json.raw("history", if history { "true" } else { "false" });
            }
            Event::Private {
                from,
                to,
                text,
                ts,
                echo,
            } => {
                json.kind("private");
                json.name("from", from);
                json.str("to", to.as_str());
                json.bytes("text", text);
                json.number("ts", ts);
                json.raw("echo", if echo { "true" } else { "false" });
            }
            Event::Presence {
                room,
                name,
                count,
                ts,
                joined,
            } => {
                json.kind(if joined { "join" } else { "leave" });
                json.str("room", room.as_str());
                json.str("name", name.as_str());
                json.number("count", count as u64);
                json.number("ts", ts);
            }
            Event::Nick { room, from, to, ts } => {
                json.kind("nick");
                json.str("room", room.as_str());
                json.name("from", from);
                json.str("to", to.as_str());
                json.number("ts", ts);
            }
            Event::HistoryStart { room, count } => {
                json.kind("history");
                json.str("room", room.as_str());
                json.number("count", count as u64);
            }
            Event::Who {
                room,
                names,
                unnamed,
            } => {
                json.kind("who");
                json.str("room", room.as_str());
                json.key("names");
                json.out.push(b'[');
                for (i, name) in names.iter().enumerate() {
                    if i > 0 {
                        json.out.push(b',');
                    }
                    string(json.out, name.as_str());
                }
                json.out.push(b']');
                json.number("unnamed", unnamed as u64);
            }
            Event::Rooms(rooms) => {
                json.kind("rooms");
                json.key("rooms");
                json.out.push(b'[');
                for (i, (room, count)) in rooms.iter().enumerate() {
                    if i > 0 {
                        json.out.push(b',');
                    }
                    json.out.extend_from_slice(b"{\"room\":");
                    string(json.out, room.as_str());
                    let _ = write!(Text(json.out), ",\"count\":{count}}}");
                }
                json.out.push(b']');
            }
            Event::Notice(text) => {
                json.kind("notice");
                json.str("text", text);
            }
            Event::Error(text) => {
                json.kind("error");
                json.str("text", text);
            }
        }
        json.finish();
    }
}

fn or_unnamed(name: Option<&Name>) -> &str {
    name.map_or("(no name: /nick NAME takes one)", Name::as_str)
}

fn or_someone(name: Option<&Name>) -> &str {
    name.map_or("someone", Name::as_str)
}

/// `fmt::Write` onto a byte buffer.
struct Text<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Text<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

/// One JSON object being written.
struct Json<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Json<'a> {
    fn new(out: &'a mut Vec<u8>) -> Json<'a> {
        out.push(b'{');
        Json { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        string(self.out, key);
        self.out.push(b':');
    }

    fn kind(&mut self, kind: &str) {
        self.str("kind", kind);
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        string(self.out, value);
    }

    fn bytes(&mut self, key: &str, value: &[u8]) {
        self.key(key);
        string(self.out, &String::from_utf8_lossy(value));
    }

    fn name(&mut self, key: &str, name: Option<&Name>) {
        match name {
            Some(name) => self.str(key, name.as_str()),
            None => self.raw(key, "null"),
        }
    }

    fn number(&mut self, key: &str, value: u64) {
        self.key(key);
        let _ = write!(Text(self.out), "{value}");
    }

    fn raw(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.extend_from_slice(value.as_bytes());
    }

    fn finish(self) {
        self.out.push(b'}');
    }
}

/// Appends `text` as a JSON string: `"` and `\` escaped, and every
/// control character (C0, DEL, C1) as `\u00XX`, so the object stays on
/// one line whatever the text holds.
fn string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if c.is_control() => {
                let _ = write!(Text(out), "\\u{:04x}", u32::from(c));
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::new(text).expect("a test name")
    }

    fn room(text: &str) -> RoomName {
        RoomName::new(text.as_bytes()).expect("a test room")
    }

    fn both(event: Event<'_>) -> (String, String) {
        let (mut plain, mut json) = (Vec::new(), Vec::new());
        event.plain(&mut plain);
        event.json(&mut json);
        // Plain text goes as it came: shown here as a lossy string.
        (
            String::from_utf8_lossy(&plain).into_owned(),
            String::from_utf8(json).expect("JSON is UTF-8"),
        )
    }

    #[test]
    fn a_members_message_is_stamped_in_plain_text() {
        let (alice, lobby) = (name("alice"), room("lobby"));
        let (plain, json) = both(Event::Message {
            room: &lobby,
            from: Some(&alice),
            text: b"hi \"there\"\n\x1b[2J",
            ts: 7,
            history: true,
            action: false,
            stamped: true,
        });
        assert_eq!(plain, "alice: hi \"there\"\n\x1b[2J");
        assert_eq!(
            json,
            r#"{"kind":"msg","room":"lobby","from":"alice","text":"hi \"there\"\n\u001b[2J","ts":7,"history":true}"#
        );
    }

    #[test]
    fn a_shared_key_message_goes_as_it_came() {
        let lobby = room("lobby");
        let (plain, json) = both(Event::Message {
            room: &lobby,
            from: None,
            text: b"bob: \xff hi",
            ts: 1,
            history: false,
            action: false,
            stamped: false,
        });
        assert_eq!(plain.as_bytes(), b"bob: \xef\xbf\xbd hi".as_slice());
        assert!(json.contains(r#""from":null,"text":"bob: � hi""#), "{json}");
    }

    #[test]
    fn notices_read_as_sentences() {
        let (alice, bob, lobby, dev) = (name("alice"), name("bob"), room("Lobby"), room("dev"));
        let presence = Event::Presence {
            room: &lobby,
            name: &alice,
            count: 3,
            ts: 1,
            joined: true,
        };
        let (plain, json) = both(presence);
        assert_eq!(plain, "* alice joined #lobby (3 here)");
        assert_eq!(
            json,
            r#"{"kind":"join","room":"lobby","name":"alice","count":3,"ts":1}"#
        );
        let names = [&alice, &bob];
        let (plain, json) = both(Event::Who {
            room: &lobby,
            names: &names,
            unnamed: 2,
        });
        assert_eq!(plain, "* here in #lobby: alice, bob, and 2 with no name");
        assert_eq!(
            json,
            r#"{"kind":"who","room":"lobby","names":["alice","bob"],"unnamed":2}"#
        );
        let rooms = [(&lobby, 3), (&dev, 1)];
        let (plain, json) = both(Event::Rooms(&rooms));
        assert_eq!(plain, "* rooms: #lobby (3), #dev (1)");
        assert_eq!(
            json,
            r#"{"kind":"rooms","rooms":[{"room":"lobby","count":3},{"room":"dev","count":1}]}"#
        );
        let (plain, _) = both(Event::Message {
            room: &lobby,
            from: Some(&bob),
            text: b"waves",
            ts: 1,
            history: false,
            action: true,
            stamped: true,
        });
        assert_eq!(plain, "* bob waves");
        let (plain, json) = both(Event::Private {
            from: Some(&alice),
            to: &bob,
            text: b"psst",
            ts: 2,
            echo: false,
        });
        assert_eq!(plain, "[private] alice: psst");
        assert_eq!(
            json,
            r#"{"kind":"private","from":"alice","to":"bob","text":"psst","ts":2,"echo":false}"#
        );
    }
}
