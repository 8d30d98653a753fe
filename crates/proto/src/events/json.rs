//! The `eaxchat/1` form, both ways: [`Event::json`] writes one JSON object
//! by hand, every string escaped so that it stays on one line, and
//! [`ParsedEvent::parse`] reads one back with `serde_json`.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Event, GroupNotice, PROTOCOL, ParsedEvent, ParsedKind, ParsedRoom, Text, kind};
use crate::commands::RoomName;
use crate::name::Name;

impl Event<'_> {
    /// Appends the `eaxchat/1` form: one JSON object, no newline.
    pub fn json(&self, out: &mut Vec<u8>) {
        let mut json = Json::new(out);
        match *self {
            Event::Welcome {
                name,
                room,
                rooms,
                members,
            } => {
                json.kind(kind::WELCOME);
                json.str("protocol", PROTOCOL);
                json.name("name", name);
                json.room("room", room);
                json.rooms("rooms", rooms);
                json.flag("members", members);
            }
            Event::Message {
                room,
                from,
                text,
                ts,
                history,
                action,
                id,
                ..
            } => {
                json.kind(if action { kind::ACTION } else { kind::MSG });
                json.str("room", room.as_str());
                json.name("from", from);
                json.bytes("text", text);
                json.number("ts", ts);
                json.flag("history", history);
                json.number("id", id);
            }
            Event::Private {
                from,
                to,
                text,
                ts,
                echo,
            } => {
                json.kind(kind::PRIVATE);
                json.name("from", from);
                json.str("to", to.as_str());
                json.bytes("text", text);
                json.number("ts", ts);
                json.flag("echo", echo);
            }
            Event::Presence {
                room,
                name,
                count,
                ts,
                joined,
            } => {
                json.kind(if joined { kind::JOIN } else { kind::LEAVE });
                json.str("room", room.as_str());
                json.str("name", name.as_str());
                json.number("count", count as u64);
                json.number("ts", ts);
            }
            Event::Nick { room, from, to, ts } => {
                json.kind(kind::NICK);
                json.str("room", room.as_str());
                json.name("from", from);
                json.str("to", to.as_str());
                json.number("ts", ts);
            }
            Event::HistoryStart {
                room,
                count,
                page,
                first,
            } => {
                json.kind(kind::HISTORY);
                json.str("room", room.as_str());
                json.number("count", count as u64);
                json.flag("page", page);
                json.flag("first", first);
            }
            Event::Who {
                room,
                names,
                unnamed,
            } => {
                json.kind(kind::WHO);
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
                json.kind(kind::ROOMS);
                json.key("rooms");
                json.out.push(b'[');
                for (i, entry) in rooms.iter().enumerate() {
                    if i > 0 {
                        json.out.push(b',');
                    }
                    let mut object = Json::new(json.out);
                    object.str("room", entry.room.as_str());
                    object.number("count", entry.count as u64);
                    object.bytes("topic", entry.topic);
                    object.str("mode", entry.mode);
                    object.flag("joined", entry.joined);
                    object.finish();
                }
                json.out.push(b']');
            }
            Event::MyRooms { room, rooms, e2e } => {
                json.kind(kind::MY_ROOMS);
                json.room("room", room);
                json.rooms("rooms", rooms);
                json.rooms("e2e", e2e);
            }
            Event::Topic {
                room,
                from,
                text,
                ts,
            } => {
                json.kind(kind::TOPIC);
                json.str("room", room.as_str());
                json.name("from", from);
                json.bytes("text", text);
                json.number("ts", ts);
            }
            Event::Mls {
                room,
                from,
                data,
                ts,
                id,
                history,
            } => {
                json.kind(kind::MLS);
                json.str("room", room.as_str());
                json.name("from", from);
                json.bytes("data", data);
                json.number("ts", ts);
                match id {
                    Some(id) => json.number("id", id),
                    None => json.raw("id", "null"),
                }
                json.flag("history", history);
            }
            Event::Group { what, room } => {
                match what {
                    GroupNotice::Taken { .. } => json.kind(kind::MLS_OK),
                    GroupNotice::Refused { .. } => json.kind(kind::MLS_REFUSED),
                    GroupNotice::Add(_) => json.kind(kind::MLS_ADD),
                    GroupNotice::Remove(_) => json.kind(kind::MLS_REMOVE),
                }
                json.str("room", room.as_str());
                match what {
                    GroupNotice::Taken { epoch } => json.number("epoch", epoch),
                    GroupNotice::Refused { epoch, text } => {
                        json.number("epoch", epoch);
                        json.str("text", text);
                    }
                    GroupNotice::Add(name) | GroupNotice::Remove(name) => {
                        json.str("name", name.as_str());
                    }
                }
            }
            Event::KeyPackages { name, packages } => {
                json.kind(kind::KEY_PACKAGES);
                json.str("name", name.as_str());
                json.key("packages");
                json.out.push(b'[');
                for (i, package) in packages.iter().enumerate() {
                    if i > 0 {
                        json.out.push(b',');
                    }
                    string(json.out, &String::from_utf8_lossy(package));
                }
                json.out.push(b']');
            }
            Event::GroupInfo { room, epoch, data } => {
                json.kind(kind::GROUP_INFO);
                json.str("room", room.as_str());
                json.number("epoch", epoch);
                json.bytes("data", data);
            }
            Event::Notice { room, text } => {
                json.kind(kind::NOTICE);
                json.room("room", room);
                json.str("text", text);
            }
            Event::Error { room, text } => {
                json.kind(kind::ERROR);
                json.room("room", room);
                json.str("text", text);
            }
        }
        json.finish();
    }
}

impl ParsedEvent {
    /// Parses one plaintext; `None` if it is not an `eaxchat/1` event.
    pub fn parse(plaintext: &[u8]) -> Option<ParsedEvent> {
        if plaintext.first() != Some(&b'{') {
            return None;
        }
        let value: Value = serde_json::from_slice(plaintext).ok()?;
        let object = value.as_object()?;
        let kind_word = object.get("kind")?.as_str()?;
        let string = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
        let number = |key: &str| object.get(key).and_then(Value::as_u64);
        let flag = |key: &str| object.get(key).and_then(Value::as_bool).unwrap_or(false);
        let kind = match kind_word {
            kind::MSG => ParsedKind::Message,
            kind::ACTION => ParsedKind::Action,
            kind::PRIVATE => ParsedKind::Private {
                to: string("to").unwrap_or_default(),
                echo: flag("echo"),
            },
            kind::JOIN | kind::LEAVE => ParsedKind::Presence {
                name: string("name").unwrap_or_default(),
                count: number("count").unwrap_or(0),
                joined: kind_word == kind::JOIN,
            },
            kind::NICK => ParsedKind::Nick {
                to: string("to").unwrap_or_default(),
            },
            kind::HISTORY => ParsedKind::HistoryStart {
                count: number("count").unwrap_or(0),
                page: flag("page"),
                first: flag("first"),
            },
            kind::WHO => ParsedKind::Who {
                names: object
                    .get("names")
                    .and_then(Value::as_array)
                    .map(|names| {
                        names
                            .iter()
                            .filter_map(|name| name.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                unnamed: number("unnamed").unwrap_or(0),
            },
            kind::ROOMS => ParsedKind::Rooms(
                object
                    .get("rooms")
                    .and_then(Value::as_array)
                    .map(|rooms| {
                        rooms
                            .iter()
                            .filter_map(|room| {
                                let text =
                                    |key| room.get(key).and_then(Value::as_str).unwrap_or_default();
                                Some(ParsedRoom {
                                    room: room.get("room")?.as_str()?.to_owned(),
                                    count: room.get("count").and_then(Value::as_u64).unwrap_or(0),
                                    topic: text("topic").to_owned(),
                                    mode: text("mode").to_owned(),
                                    joined: room
                                        .get("joined")
                                        .and_then(Value::as_bool)
                                        .unwrap_or(false),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            kind::WELCOME => ParsedKind::Welcome {
                name: string("name"),
                members: flag("members"),
            },
            kind::MY_ROOMS => ParsedKind::MyRooms,
            kind::MLS => ParsedKind::Mls,
            kind::MLS_OK => ParsedKind::MlsTaken {
                epoch: number("epoch").unwrap_or(0),
            },
            kind::MLS_REFUSED => ParsedKind::MlsRefused {
                epoch: number("epoch").unwrap_or(0),
            },
            kind::MLS_ADD => ParsedKind::MlsAdd {
                name: string("name").unwrap_or_default(),
            },
            kind::MLS_REMOVE => ParsedKind::MlsRemove {
                name: string("name").unwrap_or_default(),
            },
            kind::KEY_PACKAGES => ParsedKind::KeyPackages {
                name: string("name").unwrap_or_default(),
            },
            kind::GROUP_INFO => ParsedKind::GroupInfo {
                epoch: number("epoch").unwrap_or(0),
            },
            kind::TOPIC => ParsedKind::Topic,
            kind::NOTICE => ParsedKind::Notice,
            kind::ERROR => ParsedKind::Error,
            other => ParsedKind::Other(other.to_owned()),
        };
        Some(ParsedEvent {
            kind,
            room: string("room"),
            from: string("from"),
            text: string("text").unwrap_or_default(),
            ts: number("ts"),
            history: flag("history"),
            id: number("id"),
            e2e: object
                .get("e2e")
                .and_then(Value::as_array)
                .map(|rooms| {
                    rooms
                        .iter()
                        .filter_map(|room| room.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            data: string("data")
                .map(|data| from_base64(&data))
                .unwrap_or_default(),
            packages: object
                .get("packages")
                .and_then(Value::as_array)
                .map(|packages| {
                    packages
                        .iter()
                        .filter_map(|package| package.as_str().map(from_base64))
                        .collect()
                })
                .unwrap_or_default(),
            rooms: object
                .get("rooms")
                .and_then(Value::as_array)
                .map(|rooms| {
                    rooms
                        .iter()
                        .filter_map(|room| room.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// Standard base64 decoded; empty if it is not base64.
fn from_base64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_default()
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
        match std::str::from_utf8(value) {
            Ok(text) => string(self.out, text),
            Err(_) => string(self.out, &String::from_utf8_lossy(value)),
        }
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

    fn flag(&mut self, key: &str, value: bool) {
        self.raw(key, if value { "true" } else { "false" });
    }

    fn room(&mut self, key: &str, room: Option<&RoomName>) {
        match room {
            Some(room) => self.str(key, room.as_str()),
            None => self.raw(key, "null"),
        }
    }

    fn rooms(&mut self, key: &str, rooms: &[&RoomName]) {
        self.key(key);
        self.out.push(b'[');
        for (i, room) in rooms.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            string(self.out, room.as_str());
        }
        self.out.push(b']');
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
/// one line whatever the text holds. Runs of bytes that need no escape
/// (most of any text, all of a base64 `data`) are copied whole.
fn string(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    let bytes = text.as_bytes();
    let (mut copied, mut at) = (0, 0);
    while let Some(offset) = bytes[at..].iter().position(|&b| may_need_escape(b)) {
        at += offset;
        out.extend_from_slice(&bytes[copied..at]);
        // A byte `may_need_escape` picks starts a character: it is ASCII
        // or 0xC2, a lead byte.
        let Some(c) = text.get(at..).and_then(|rest| rest.chars().next()) else {
            break;
        };
        escape(out, c);
        at += c.len_utf8();
        copied = at;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

/// Whether byte `b` of UTF-8 text may start a character [`string`] must
/// escape: a C0 control, `"`, `\`, DEL, or 0xC2, the lead byte of the C1
/// controls (U+0080 to U+009F) and of other characters, which are then
/// copied as they are.
fn may_need_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f || b == 0xc2
}

/// Appends character `c` of a JSON string, escaped if it must be.
fn escape(out: &mut Vec<u8>, c: char) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`string`] wrote before it copied runs: one character at a
    /// time through [`escape`].
    fn char_by_char(text: &str) -> Vec<u8> {
        let mut out = vec![b'"'];
        text.chars().for_each(|c| escape(&mut out, c));
        out.push(b'"');
        out
    }

    #[test]
    fn a_string_is_escaped_as_one_character_at_a_time_would_be() {
        let pieces = [
            "",
            "a",
            "hello, world",
            "\"",
            "\\",
            "\n",
            "\r",
            "\t",
            "\0",
            "\u{1b}[2J",
            "\u{7f}",
            "\u{80}",
            "\u{85}",
            "\u{9f}",
            "\u{a0}",
            "é",
            "\u{c2}\u{bf}",
            "€",
            "😀",
            "\u{2028}",
            "QUJD+/==",
        ];
        let mut texts: Vec<String> = pieces.iter().map(|p| p.to_string()).collect();
        for a in pieces {
            for b in pieces {
                for c in ["", "x", "é\"", "\u{85}z"] {
                    texts.push(format!("{a}{c}{b}{a}"));
                }
            }
        }
        for text in texts {
            let mut out = b"prefix".to_vec();
            string(&mut out, &text);
            assert_eq!(out[6..], char_by_char(&text), "{text:?}");
            let parsed: Value = serde_json::from_slice(&out[6..]).expect("valid JSON");
            assert_eq!(parsed.as_str(), Some(text.as_str()));
            assert!(!out.contains(&b'\n') && !out.contains(&0x85), "{text:?}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_written_as_the_replacement_character() {
        let mut out = Vec::new();
        let mut object = Json::new(&mut out);
        object.bytes("data", b"ok\xffthen\"");
        object.finish();
        assert_eq!(out, "{\"data\":\"ok\u{fffd}then\\\"\"}".as_bytes());
    }
}
