//! What a line typed in the terminal app becomes on the wire. Looking at a
//! room, its text and room commands (`/me`, `/topic`, `/history`, `/who`)
//! go as `/in ROOM …`, so the relay is told the room with every line and
//! nothing depends on what it thinks is current; a bare `/part` names the
//! room looked at. Looking at the private messages, text is a reply to
//! whoever wrote last. Other commands (`/join`, `/nick`, `/msg`, `/rooms`)
//! go as typed. A relay that keeps a connection in one room (no room list)
//! gets every line as typed.
//!
//! Pure: a line in, a [`Typed`] out.

use eaxchat_proto::commands::RoomName;

/// The commands that act on a room, sent with `/in ROOM`.
const ROOM_COMMANDS: [&str; 4] = ["me", "topic", "history", "who"];

/// Where the line is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// Looking at this room, on a relay with rooms.
    Room(&'a str),
    /// Looking at the private messages; the last one came from or went to
    /// this name.
    Private(Option<&'a str>),
    /// A relay that keeps a connection in one room.
    OneRoom,
}

/// A typed line, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typed {
    /// The plaintext for the relay.
    pub line: String,
    /// Text said in a room: shown at once as our own line (the relay
    /// sends nobody's own messages back).
    pub own_text: Option<String>,
    /// `own_text` is a `/me` action.
    pub action: bool,
    /// A `/join ROOM`: the room, to look at once the relay has us in it.
    pub join: Option<String>,
}

/// The plaintext for `line`, typed looking at `target`; `prefix` is the
/// `NAME: ` a shared-key connection with `--name` puts in front of its text.
/// An error is the reason to show instead of sending.
pub fn compose(line: &str, target: Target<'_>, prefix: Option<&str>) -> Result<Typed, String> {
    let command = line.starts_with('/') && !line.starts_with("//");
    if !command {
        // `//x` is the text `/x`; with a prefix in front it needs no escape.
        let text = line.strip_prefix('/').filter(|_| line.starts_with("//"));
        let text = text.unwrap_or(line);
        let said = match prefix {
            Some(name) => format!("{name}: {text}"),
            None => line.to_owned(),
        };
        let wire = match target {
            Target::Room(room) => format!("/in {room} {said}"),
            Target::OneRoom => said,
            Target::Private(Some(peer)) => format!("/msg {peer} {text}"),
            Target::Private(None) => {
                return Err(
                    "* nobody to answer here yet: /msg NAME TEXT, or switch to a room \
                            (Alt+1…9, Ctrl+N/Ctrl+P)"
                        .to_owned(),
                );
            }
        };
        return Ok(Typed {
            own_text: matches!(target, Target::Room(_) | Target::OneRoom).then(|| text.to_owned()),
            line: wire,
            join: None,
            action: false,
        });
    }
    let (word, rest) = match line[1..].find([' ', '\t']) {
        Some(at) => (
            &line[1..=at],
            line[at + 1..].trim_start_matches([' ', '\t']),
        ),
        None => (&line[1..], ""),
    };
    let word = word.to_ascii_lowercase();
    let mut typed = Typed {
        line: line.to_owned(),
        own_text: None,
        join: None,
        action: false,
    };
    match (word.as_str(), target) {
        ("join", _) => {
            // `/join ROOM --e2e`: the room is the first word.
            let room = rest.split_whitespace().next().unwrap_or_default();
            typed.join = RoomName::new(room.as_bytes())
                .ok()
                .map(|room| room.as_str().to_owned());
        }
        ("part", Target::Room(room)) if rest.trim().is_empty() => {
            typed.line = format!("/part {room}");
        }
        (word, Target::Room(room)) if ROOM_COMMANDS.contains(&word) => {
            typed.line = format!("/in {room} {line}");
        }
        _ => {}
    }
    if word == "me" && !rest.trim().is_empty() && !matches!(target, Target::Private(_)) {
        typed.own_text = Some(rest.to_owned());
        typed.action = true;
    }
    Ok(typed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(line: &str, target: Target<'_>) -> String {
        compose(line, target, None)
            .map(|typed| typed.line)
            .unwrap_or_else(|why| why)
    }

    #[test]
    fn a_room_line_carries_its_room() {
        let dev = Target::Room("dev");
        for (typed, sent) in [
            ("hello", "/in dev hello"),
            ("//etc", "/in dev //etc"),
            ("/me waves", "/in dev /me waves"),
            ("/TOPIC release friday", "/in dev /TOPIC release friday"),
            ("/history 120 10", "/in dev /history 120 10"),
            ("/who", "/in dev /who"),
            ("/part", "/part dev"),
            ("/part ops", "/part ops"),
            ("/join #Ops", "/join #Ops"),
            ("/nick bob", "/nick bob"),
            ("/msg carol hi", "/msg carol hi"),
            ("/rooms", "/rooms"),
        ] {
            assert_eq!(wire(typed, dev), sent, "{typed}");
        }
        let joined = compose("/join #Ops", dev, None).map(|typed| typed.join);
        assert_eq!(joined, Ok(Some("ops".to_owned())));
        let e2e = compose("/join sec --e2e", dev, None).unwrap();
        assert_eq!(
            (e2e.line.as_str(), e2e.join.as_deref()),
            ("/join sec --e2e", Some("sec"))
        );
        let own = compose("//etc", dev, None).map(|typed| typed.own_text);
        assert_eq!(own, Ok(Some("/etc".to_owned())));
        let me = compose("/me waves", dev, None).map(|typed| (typed.own_text, typed.action));
        assert_eq!(me, Ok((Some("waves".to_owned()), true)));
        let who = compose("/who", dev, None).map(|typed| typed.own_text);
        assert_eq!(who, Ok(None), "only what the room sees is shown as ours");
    }

    #[test]
    fn a_prefix_goes_inside_and_one_room_relays_get_lines_as_typed() {
        let said = compose("//etc", Target::Room("dev"), Some("alice"));
        assert_eq!(
            said.map(|typed| typed.line),
            Ok("/in dev alice: /etc".to_owned())
        );
        assert_eq!(wire("hello", Target::OneRoom), "hello");
        assert_eq!(wire("/part", Target::OneRoom), "/part");
        assert_eq!(wire("/me waves", Target::OneRoom), "/me waves");
    }

    #[test]
    fn private_text_answers_the_last_correspondent() {
        assert_eq!(
            wire("see you", Target::Private(Some("carol"))),
            "/msg carol see you"
        );
        assert!(wire("see you", Target::Private(None)).contains("/msg NAME TEXT"));
        let typed = compose("hi", Target::Private(Some("carol")), None);
        assert_eq!(
            typed.map(|typed| typed.own_text),
            Ok(None),
            "the relay echoes it"
        );
    }
}
