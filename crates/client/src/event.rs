//! The relay's `eaxchat/1` events as the client reads them: one
//! plaintext parsed into an [`Incoming`] (what kind, which room, who, what,
//! when, history or live), and shown as the one line the relay's plain
//! text would have been ([`Incoming::line`]), so that pipe mode prints what
//! it always printed while the terminal app can style each kind apart.
//!
//! A plaintext that is not an event (a relay that was never asked, or a
//! peer's raw text) is not parsed: the caller prints it as it came,
//! sanitised.

use serde_json::Value;

/// What kind of thing the relay sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Someone's message in a room.
    Message,
    /// A `/me` action.
    Action,
    /// A private message; `echo` is the sender's own copy.
    Private {
        /// Whom it was for.
        to: String,
        /// The sender's own copy.
        echo: bool,
    },
    /// Someone came into the room, or left it.
    Presence {
        /// Who.
        name: String,
        /// Connections in the room now.
        count: u64,
        /// Came in or went out.
        joined: bool,
    },
    /// Someone took a new name.
    Nick {
        /// The new name.
        to: String,
    },
    /// `count` history messages follow.
    History {
        /// How many.
        count: u64,
    },
    /// Who is in the room.
    Who {
        /// The names.
        names: Vec<String>,
        /// Connections with no name.
        unnamed: u64,
    },
    /// The rooms and how many are in each.
    Rooms(Vec<(String, u64)>),
    /// The answer to `/hello`.
    Welcome {
        /// Our name, if we have one.
        name: Option<String>,
        /// Whether the relay vouches for names (members mode).
        members: bool,
    },
    /// A reply to a command.
    Notice,
    /// A command refused.
    Error,
    /// A kind this client does not know (a newer relay's): shown by its
    /// text.
    Other(String),
}

/// One event from the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// What it is.
    pub kind: Kind,
    /// The room it concerns, if any.
    pub room: Option<String>,
    /// Who said it (`None`: nobody, or a shared-key connection with no
    /// name).
    pub from: Option<String>,
    /// What was said, or the notice's text.
    pub text: String,
    /// When, in Unix milliseconds.
    pub ts: Option<u64>,
    /// Sent as history on joining, not live.
    pub history: bool,
}

impl Incoming {
    /// Parses one plaintext; `None` if it is not an `eaxchat/1` event.
    pub fn parse(plaintext: &[u8]) -> Option<Incoming> {
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
            "msg" => Kind::Message,
            "action" => Kind::Action,
            "private" => Kind::Private {
                to: string("to").unwrap_or_default(),
                echo: flag("echo"),
            },
            "join" | "leave" => Kind::Presence {
                name: string("name").unwrap_or_default(),
                count: number("count").unwrap_or(0),
                joined: kind_word == "join",
            },
            "nick" => Kind::Nick {
                to: string("to").unwrap_or_default(),
            },
            "history" => Kind::History {
                count: number("count").unwrap_or(0),
            },
            "who" => Kind::Who {
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
            "rooms" => Kind::Rooms(
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
            "welcome" => Kind::Welcome {
                name: string("name"),
                members: flag("members"),
            },
            "notice" => Kind::Notice,
            "error" => Kind::Error,
            other => Kind::Other(other.to_owned()),
        };
        Some(Incoming {
            kind,
            room: string("room"),
            from: string("from"),
            text: string("text").unwrap_or_default(),
            ts: number("ts"),
            history: flag("history"),
        })
    }

    /// Whether someone said it (a message, an action, a private message),
    /// rather than the relay.
    pub fn is_said(&self) -> bool {
        matches!(
            self.kind,
            Kind::Message | Kind::Action | Kind::Private { .. }
        )
    }

    /// Appends the line the relay's plain text shows for this event
    /// (unsanitised: the caller sanitises). `members` says whether
    /// messages are stamped `NAME: ` (a members relay vouches for names; a
    /// shared-key relay relays text as it came).
    pub fn line(&self, members: bool, out: &mut String) {
        let who = self.from.as_deref().unwrap_or("someone");
        let room = self.room.as_deref().unwrap_or("");
        let text = &self.text;
        let line = match &self.kind {
            Kind::Message => match &self.from {
                Some(from) if members => format!("{from}: {text}"),
                _ => text.clone(),
            },
            Kind::Action => format!("* {who} {text}"),
            Kind::Private { to, echo: true } => format!("[private to {to}] {text}"),
            Kind::Private { echo: false, .. } => format!("[private] {who}: {text}"),
            Kind::Presence {
                name,
                count,
                joined,
            } => {
                let verb = if *joined { "joined" } else { "left" };
                format!("* {name} {verb} #{room} ({count} here)")
            }
            Kind::Nick { to } => format!("* {who} is now {to}"),
            Kind::History { count } => {
                let plural = if *count == 1 { "" } else { "s" };
                format!("* the last {count} message{plural} in #{room}:")
            }
            Kind::Who { names, unnamed } => {
                let mut line = format!("* here in #{room}:");
                if !names.is_empty() {
                    line.push(' ');
                    line.push_str(&names.join(", "));
                }
                if *unnamed > 0 {
                    let sep = if names.is_empty() { " " } else { ", and " };
                    line.push_str(&format!("{sep}{unnamed} with no name"));
                }
                line
            }
            Kind::Rooms(rooms) => {
                let list: Vec<String> = rooms
                    .iter()
                    .map(|(room, count)| format!("#{room} ({count})"))
                    .collect();
                format!("* rooms: {}", list.join(", "))
            }
            Kind::Welcome { name, .. } => format!(
                "* welcome, {} in #{room}",
                name.as_deref().unwrap_or("(no name: /nick NAME takes one)")
            ),
            Kind::Notice | Kind::Error | Kind::Other(_) => text.clone(),
        };
        out.push_str(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eaxchat_proto::commands::RoomName;
    use eaxchat_proto::events::Event;
    use eaxchat_proto::name::Name;

    /// The relay's JSON form, read back and shown, is its plain form.
    fn round_trip(event: Event<'_>, members: bool) {
        let (mut plain, mut json) = (Vec::new(), Vec::new());
        event.plain(&mut plain);
        event.json(&mut json);
        let incoming = Incoming::parse(&json).expect("an event");
        let mut line = String::new();
        incoming.line(members, &mut line);
        assert_eq!(line.as_bytes(), plain, "{incoming:?}");
    }

    #[test]
    fn every_event_shows_as_the_relays_plain_text() {
        let alice = Name::new("alice").expect("name");
        let bob = Name::new("bob").expect("name");
        let lobby = RoomName::new(b"lobby").expect("room");
        for (members, stamped) in [(true, true), (false, false)] {
            for action in [false, true] {
                round_trip(
                    Event::Message {
                        room: &lobby,
                        from: Some(&alice),
                        text: b"hi \"you\"",
                        ts: 5,
                        history: true,
                        action,
                        stamped,
                    },
                    members,
                );
            }
        }
        for echo in [false, true] {
            round_trip(
                Event::Private {
                    from: Some(&alice),
                    to: &bob,
                    text: b"psst",
                    ts: 1,
                    echo,
                },
                true,
            );
        }
        for joined in [false, true] {
            round_trip(
                Event::Presence {
                    room: &lobby,
                    name: &bob,
                    count: 2,
                    ts: 1,
                    joined,
                },
                true,
            );
        }
        let names = [&alice, &bob];
        let rooms = [(&lobby, 2)];
        for event in [
            Event::Nick {
                room: &lobby,
                from: Some(&alice),
                to: &bob,
                ts: 1,
            },
            Event::HistoryStart {
                room: &lobby,
                count: 1,
            },
            Event::Who {
                room: &lobby,
                names: &names,
                unnamed: 1,
            },
            Event::Rooms(&rooms),
            Event::Welcome {
                name: None,
                room: &lobby,
                members: false,
            },
            Event::Notice("* you are now bob"),
            Event::Error("error: no"),
        ] {
            round_trip(event, true);
        }
    }

    #[test]
    fn text_that_is_not_an_event_is_left_alone() {
        for text in [&b"hello"[..], b"{not json", b"{\"no\":\"kind\"}", b"[1,2]"] {
            assert_eq!(Incoming::parse(text), None);
        }
    }
}
