//! The `eaxchat/1` form, both ways: [`Event::json`] writes one JSON object
//! by hand, every string escaped so that it stays on one line, and
//! [`ParsedEvent::parse`] reads one back with `serde_json`.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Event, PROTOCOL, ParsedEvent, ParsedKind, Text, kind};
use crate::name::Name;

impl Event<'_> {
    /// Appends the `eaxchat/1` form: one JSON object, no newline.
    pub fn json(&self, out: &mut Vec<u8>) {
        let mut json = Json::new(out);
        match *self {
            Event::Welcome {
                name,
                room,
                members,
            } => {
                json.kind(kind::WELCOME);
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
                json.kind(if action { kind::ACTION } else { kind::MSG });
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
                json.kind(kind::PRIVATE);
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
            Event::HistoryStart { room, count } => {
                json.kind(kind::HISTORY);
                json.str("room", room.as_str());
                json.number("count", count as u64);
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
                json.kind(kind::NOTICE);
                json.str("text", text);
            }
            Event::Error(text) => {
                json.kind(kind::ERROR);
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
                                Some((
                                    room.get("room")?.as_str()?.to_owned(),
                                    room.get("count")?.as_u64()?,
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            kind::WELCOME => ParsedKind::Welcome {
                name: string("name"),
                members: flag("members"),
            },
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
        })
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
