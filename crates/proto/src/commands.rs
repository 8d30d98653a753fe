//! The `/` commands: a pure parser from one message's plaintext to ordinary
//! text, a [`Command`], or the [`CommandError`] whose `Display` is the reply
//! the sender sees. It owns the command grammar and the room-name rules; it
//! never looks at who is connected, so "no such member" or "name taken" are
//! the relay's to decide.
//!
//! The grammar:
//!
//! - A plaintext that does not start with `/` is text, whole (a leading
//!   space makes ` /join x` text). One that starts with `//` is text with the
//!   first `/` removed: [`escape_text`] is the inverse.
//! - Otherwise the command word runs from after the `/` to the first space
//!   or tab, and is matched ignoring ASCII case (`/JOIN` is `/join`). The
//!   argument is the rest after any run of spaces and tabs.
//! - A one-word argument (a room, a name, a protocol) has trailing spaces,
//!   tabs, `\r` and `\n` ignored and must then hold no space or tab. A text
//!   argument (`/me`, `/msg`) is kept byte for byte; it must hold at least
//!   one byte other than space or tab, and at most the `max_text` bytes the
//!   caller passes (the relay passes what fits in one frame). Commands that
//!   take no argument refuse one.
//!
//! Room names ([`RoomName`]): 1 to [`ROOM_NAME_MAX`] characters of
//! `A-Z a-z 0-9 _ - .`, after an optional leading `#` which is not part of
//! the name. They are folded to lowercase, so `#Lobby` and `lobby` are one
//! room, and shown as `#lobby`. Member names follow [`Name`]'s rules and
//! are compared exactly, as the members file compares them.
//!
//! Errors never echo what the sender typed except an unknown command word
//! that is short printable ASCII: a reply must never carry bytes a terminal
//! would interpret.

use std::fmt;

use crate::name::{NAME_MAX, Name, NameError};

/// The longest room name, in characters (not counting a leading `#`).
pub const ROOM_NAME_MAX: usize = 32;

/// The longest unknown command word an error reply repeats.
const ECHO_MAX: usize = 16;

/// The only structured-events protocol there is, as `/hello` names it.
pub const PROTOCOL_V1: &str = "eaxchat/1";

/// What a plaintext is: text for the room, or a command for the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// Text to relay, with a leading `//` already unescaped to `/`.
    Text(&'a [u8]),
    /// A command, never relayed as text.
    Command(Command<'a>),
}

/// A parsed command; text arguments borrow from the plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `/join ROOM`: leave the current room and enter `ROOM`.
    Join(RoomName),
    /// `/rooms`: the rooms and their member counts.
    Rooms,
    /// `/who`: who is in the current room.
    Who,
    /// `/me ACTION`: `* NAME ACTION` to the room.
    Me(&'a [u8]),
    /// `/msg NAME TEXT`: a private message to that member's connections.
    Msg {
        /// Whom it is for.
        to: Name,
        /// What it says.
        text: &'a [u8],
    },
    /// `/nick NAME`: take a new name (shared-key mode only).
    Nick(Name),
    /// `/help`: the list of commands.
    Help,
    /// `/quit`: close this connection.
    Quit,
    /// `/hello eaxchat/1`: from now on, send this connection structured
    /// events instead of plain text.
    Hello(Protocol),
}

/// A structured-events protocol version a client may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `eaxchat/1`: one-line JSON objects.
    V1,
}

/// Which command an error is about, for its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// `/join`
    Join,
    /// `/rooms`
    Rooms,
    /// `/who`
    Who,
    /// `/me`
    Me,
    /// `/msg`
    Msg,
    /// `/nick`
    Nick,
    /// `/help`
    Help,
    /// `/quit`
    Quit,
    /// `/hello`
    Hello,
}

impl CommandKind {
    /// Every command, in the order `/help` lists them.
    pub const ALL: [CommandKind; 9] = [
        CommandKind::Join,
        CommandKind::Rooms,
        CommandKind::Who,
        CommandKind::Me,
        CommandKind::Msg,
        CommandKind::Nick,
        CommandKind::Help,
        CommandKind::Quit,
        CommandKind::Hello,
    ];

    /// The command word, without its `/`.
    pub fn word(self) -> &'static str {
        match self {
            CommandKind::Join => "join",
            CommandKind::Rooms => "rooms",
            CommandKind::Who => "who",
            CommandKind::Me => "me",
            CommandKind::Msg => "msg",
            CommandKind::Nick => "nick",
            CommandKind::Help => "help",
            CommandKind::Quit => "quit",
            CommandKind::Hello => "hello",
        }
    }

    /// How it is used, for `/help` and error replies.
    pub fn usage(self) -> &'static str {
        match self {
            CommandKind::Join => "/join ROOM",
            CommandKind::Rooms => "/rooms",
            CommandKind::Who => "/who",
            CommandKind::Me => "/me ACTION",
            CommandKind::Msg => "/msg NAME TEXT",
            CommandKind::Nick => "/nick NAME",
            CommandKind::Help => "/help",
            CommandKind::Quit => "/quit",
            CommandKind::Hello => "/hello eaxchat/1",
        }
    }

    fn from_word(word: &[u8]) -> Option<CommandKind> {
        CommandKind::ALL
            .into_iter()
            .find(|kind| kind.word().as_bytes().eq_ignore_ascii_case(word))
    }
}

/// Why a command was refused. `Display` is the reply the sender sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// No such command. Holds the word only when it is short printable
    /// ASCII, safe to repeat.
    UnknownCommand {
        /// The word after `/`, if safe to show.
        word: Option<String>,
    },
    /// The command needs an argument it was not given.
    MissingArgument(CommandKind),
    /// The command takes no argument, or fewer than it was given.
    UnexpectedArgument(CommandKind),
    /// The room name breaks [`RoomName`]'s rules.
    MalformedRoom(RoomNameError),
    /// The member name breaks [`Name`]'s rules.
    MalformedName(NameError),
    /// A text argument is longer than the limit.
    TooLong {
        /// The command.
        command: CommandKind,
        /// The limit, in bytes.
        max: usize,
    },
    /// `/hello` named a protocol this relay does not speak.
    UnsupportedProtocol,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::UnknownCommand { word: Some(word) } => {
                write!(f, "error: unknown command /{word} (try /help)")
            }
            CommandError::UnknownCommand { word: None } => {
                f.write_str("error: unknown command (try /help)")
            }
            CommandError::MissingArgument(kind) => {
                write!(
                    f,
                    "error: /{} needs an argument: {}",
                    kind.word(),
                    kind.usage()
                )
            }
            CommandError::UnexpectedArgument(kind) => {
                write!(f, "error: too many arguments: {}", kind.usage())
            }
            CommandError::MalformedRoom(problem) => write!(
                f,
                "error: bad room name: {problem}; a room name is 1 to {ROOM_NAME_MAX} \
                 of A-Z a-z 0-9 _ - . after an optional #"
            ),
            CommandError::MalformedName(problem) => write!(
                f,
                "error: bad name: {problem}; a name is 1 to {NAME_MAX} of A-Z a-z 0-9 _ - ."
            ),
            CommandError::TooLong { command, max } => write!(
                f,
                "error: /{} text too long: at most {max} bytes",
                command.word()
            ),
            CommandError::UnsupportedProtocol => {
                write!(
                    f,
                    "error: unknown protocol; this relay speaks {PROTOCOL_V1}"
                )
            }
        }
    }
}

impl std::error::Error for CommandError {}

/// A room's name: 1 to [`ROOM_NAME_MAX`] characters of `A-Z a-z 0-9 _ - .`,
/// lowercase. `Display` shows it with its `#`; [`RoomName::as_str`] without.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

/// Why a text is not a valid [`RoomName`]. Never holds the text itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomNameError {
    /// Nothing after the optional `#`.
    Empty,
    /// More than [`ROOM_NAME_MAX`] bytes after the optional `#`.
    TooLong {
        /// How many bytes it has.
        bytes: usize,
    },
    /// A byte outside `A-Z a-z 0-9 _ - .`.
    BadCharacter {
        /// The 1-based position of the first such byte, after the `#`.
        position: usize,
    },
}

impl fmt::Display for RoomNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomNameError::Empty => f.write_str("the name is empty"),
            RoomNameError::TooLong { bytes } => write!(f, "the name has {bytes} characters"),
            RoomNameError::BadCharacter { position } => {
                write!(f, "character {position} is not allowed")
            }
        }
    }
}

impl std::error::Error for RoomNameError {}

impl RoomName {
    /// Checks `text` (with or without a leading `#`) and folds it to
    /// lowercase. For `--default-room` as for `/join`.
    pub fn new(text: &[u8]) -> Result<RoomName, RoomNameError> {
        let bare = text.strip_prefix(b"#").unwrap_or(text);
        if bare.is_empty() {
            return Err(RoomNameError::Empty);
        }
        if let Some(index) = bare.iter().position(|&b| !is_name_byte(b)) {
            return Err(RoomNameError::BadCharacter {
                position: index + 1,
            });
        }
        if bare.len() > ROOM_NAME_MAX {
            return Err(RoomNameError::TooLong { bytes: bare.len() });
        }
        // Only ASCII is left, so this never replaces anything.
        Ok(RoomName(String::from_utf8_lossy(bare).to_ascii_lowercase()))
    }

    /// The name without its `#`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn is_separator(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Parses one message's plaintext. `max_text` bounds the text of `/me` and
/// `/msg`, in bytes.
pub fn parse(plaintext: &[u8], max_text: usize) -> Result<Input<'_>, CommandError> {
    let Some(after_slash) = plaintext.strip_prefix(b"/") else {
        return Ok(Input::Text(plaintext));
    };
    if after_slash.starts_with(b"/") {
        return Ok(Input::Text(after_slash));
    }
    let word_end = after_slash
        .iter()
        .position(|&b| is_separator(b))
        .unwrap_or(after_slash.len());
    let (word, rest) = after_slash.split_at(word_end);
    let (word, argument) = (trim_end(word), trim_start(rest));
    let Some(kind) = CommandKind::from_word(word) else {
        return Err(CommandError::UnknownCommand {
            word: echoable(word),
        });
    };
    let command = match kind {
        CommandKind::Join => Command::Join(
            RoomName::new(one_word(kind, argument)?).map_err(CommandError::MalformedRoom)?,
        ),
        CommandKind::Rooms => no_argument(kind, argument, Command::Rooms)?,
        CommandKind::Who => no_argument(kind, argument, Command::Who)?,
        CommandKind::Me => Command::Me(text(kind, argument, max_text)?),
        CommandKind::Msg => {
            let name_end = argument
                .iter()
                .position(|&b| is_separator(b))
                .unwrap_or(argument.len());
            let (name, rest) = argument.split_at(name_end);
            let name = trim_end(name);
            if name.is_empty() {
                return Err(CommandError::MissingArgument(kind));
            }
            Command::Msg {
                to: member_name(name)?,
                text: text(kind, trim_start(rest), max_text)?,
            }
        }
        CommandKind::Nick => Command::Nick(member_name(one_word(kind, argument)?)?),
        CommandKind::Help => no_argument(kind, argument, Command::Help)?,
        CommandKind::Quit => no_argument(kind, argument, Command::Quit)?,
        CommandKind::Hello => match one_word(kind, argument)? {
            b"eaxchat/1" => Command::Hello(Protocol::V1),
            _ => return Err(CommandError::UnsupportedProtocol),
        },
    };
    Ok(Input::Command(command))
}

/// Appends `text` as a plaintext that [`parse`] reads back as
/// `Input::Text(text)`: a leading `/` is doubled.
pub fn escape_text(text: &[u8], out: &mut Vec<u8>) {
    if text.starts_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(text);
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_separator(b))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|&b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

fn no_argument<'a>(
    kind: CommandKind,
    argument: &[u8],
    command: Command<'a>,
) -> Result<Command<'a>, CommandError> {
    if trim_end(argument).is_empty() {
        Ok(command)
    } else {
        Err(CommandError::UnexpectedArgument(kind))
    }
}

fn one_word(kind: CommandKind, argument: &[u8]) -> Result<&[u8], CommandError> {
    let word = trim_end(argument);
    if word.is_empty() {
        Err(CommandError::MissingArgument(kind))
    } else if word.iter().any(|&b| is_separator(b)) {
        Err(CommandError::UnexpectedArgument(kind))
    } else {
        Ok(word)
    }
}

fn text(kind: CommandKind, argument: &[u8], max: usize) -> Result<&[u8], CommandError> {
    if argument.iter().all(|&b| is_separator(b)) {
        Err(CommandError::MissingArgument(kind))
    } else if argument.len() > max {
        Err(CommandError::TooLong { command: kind, max })
    } else {
        Ok(argument)
    }
}

fn member_name(bytes: &[u8]) -> Result<Name, CommandError> {
    let name = match std::str::from_utf8(bytes) {
        Ok(text) => Name::new(text),
        // Every byte before the first non-name byte is ASCII, so its byte
        // position is its character position.
        Err(_) => Err(NameError::BadCharacter {
            position: bytes.iter().position(|&b| !is_name_byte(b)).unwrap_or(0) + 1,
        }),
    };
    name.map_err(CommandError::MalformedName)
}

fn echoable(word: &[u8]) -> Option<String> {
    let printable = word.iter().all(|&b| b.is_ascii_graphic());
    (printable && word.len() <= ECHO_MAX).then(|| String::from_utf8_lossy(word).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 20;

    fn name(text: &str) -> Name {
        Name::new(text).expect("a valid test name")
    }

    fn room(text: &str) -> RoomName {
        RoomName::new(text.as_bytes()).expect("a valid test room")
    }

    /// `parses! { input => expected, ... }`: each input parsed with
    /// `max_text` = [`MAX`] gives exactly the expected result.
    macro_rules! parses {
        ($($input:expr => $expected:expr),+ $(,)?) => {
            $(
                assert_eq!(parse($input, MAX), $expected, "input {:?}", String::from_utf8_lossy($input));
            )+
        };
    }

    fn cmd(command: Command<'_>) -> Result<Input<'_>, CommandError> {
        Ok(Input::Command(command))
    }

    fn text_in(text: &[u8]) -> Result<Input<'_>, CommandError> {
        Ok(Input::Text(text))
    }

    fn err(error: CommandError) -> Result<Input<'static>, CommandError> {
        Err(error)
    }

    #[test]
    fn text_and_escapes() {
        parses! {
            b"" => text_in(b""),
            b"hello" => text_in(b"hello"),
            b" /join x" => text_in(b" /join x"),
            b"//" => text_in(b"/"),
            b"//join x" => text_in(b"/join x"),
            b"///" => text_in(b"//"),
            b"\xff/x" => text_in(b"\xff/x"),
        }
    }

    #[test]
    fn every_command() {
        parses! {
            b"/join lobby" => cmd(Command::Join(room("lobby"))),
            b"/join #Lobby" => cmd(Command::Join(room("lobby"))),
            b"/JOIN \t dev.ops_1-x \r\n" => cmd(Command::Join(room("dev.ops_1-x"))),
            b"/rooms" => cmd(Command::Rooms),
            b"/rooms  " => cmd(Command::Rooms),
            b"/who" => cmd(Command::Who),
            b"/Who\r\n" => cmd(Command::Who),
            b"/me waves" => cmd(Command::Me(b"waves")),
            b"/me  waves  at  you " => cmd(Command::Me(b"waves  at  you ")),
            b"/me \xe2\x9c\x8b" => cmd(Command::Me(b"\xe2\x9c\x8b")),
            b"/msg bob hi there" => cmd(Command::Msg { to: name("bob"), text: b"hi there" }),
            b"/msg\tBob.2\t\thi" => cmd(Command::Msg { to: name("Bob.2"), text: b"hi" }),
            b"/nick carol" => cmd(Command::Nick(name("carol"))),
            b"/nick carol\n" => cmd(Command::Nick(name("carol"))),
            b"/help" => cmd(Command::Help),
            b"/quit" => cmd(Command::Quit),
            b"/hello eaxchat/1" => cmd(Command::Hello(Protocol::V1)),
        }
    }

    #[test]
    fn every_bad_argument() {
        use CommandError as E;
        use CommandKind as K;
        let twenty_one = [b'x'; MAX + 1];
        let mut long_me = b"/me ".to_vec();
        long_me.extend_from_slice(&twenty_one);
        let mut long_msg = b"/msg bob ".to_vec();
        long_msg.extend_from_slice(&twenty_one);
        parses! {
            b"/" => err(E::UnknownCommand { word: Some(String::new()) }),
            b"/ join x" => err(E::UnknownCommand { word: Some(String::new()) }),
            b"/foo" => err(E::UnknownCommand { word: Some("foo".into()) }),
            b"/joinx lobby" => err(E::UnknownCommand { word: Some("joinx".into()) }),
            b"/\x1b[2J" => err(E::UnknownCommand { word: None }),
            b"/averyveryverylongword" => err(E::UnknownCommand { word: None }),
            b"/join" => err(E::MissingArgument(K::Join)),
            b"/join   " => err(E::MissingArgument(K::Join)),
            b"/join #" => err(E::MalformedRoom(RoomNameError::Empty)),
            b"/join a b" => err(E::UnexpectedArgument(K::Join)),
            b"/join ##a" => err(E::MalformedRoom(RoomNameError::BadCharacter { position: 1 })),
            b"/join caf\xc3\xa9" => err(E::MalformedRoom(RoomNameError::BadCharacter { position: 4 })),
            b"/join abcdefghijabcdefghijabcdefghijabc" => err(E::MalformedRoom(RoomNameError::TooLong { bytes: 33 })),
            b"/rooms all" => err(E::UnexpectedArgument(K::Rooms)),
            b"/who me" => err(E::UnexpectedArgument(K::Who)),
            b"/me" => err(E::MissingArgument(K::Me)),
            b"/me \t " => err(E::MissingArgument(K::Me)),
            &long_me => err(E::TooLong { command: K::Me, max: MAX }),
            b"/msg" => err(E::MissingArgument(K::Msg)),
            b"/msg bob" => err(E::MissingArgument(K::Msg)),
            b"/msg bob   " => err(E::MissingArgument(K::Msg)),
            b"/msg b\xffb hi" => err(E::MalformedName(NameError::BadCharacter { position: 2 })),
            b"/msg b!b hi" => err(E::MalformedName(NameError::BadCharacter { position: 2 })),
            b"/msg 0123456789abcdef0123456789abcdef hi" => err(E::MalformedName(NameError::LooksLikeKey)),
            &long_msg => err(E::TooLong { command: K::Msg, max: MAX }),
            b"/nick" => err(E::MissingArgument(K::Nick)),
            b"/nick a b" => err(E::UnexpectedArgument(K::Nick)),
            b"/nick #carol" => err(E::MalformedName(NameError::BadCharacter { position: 1 })),
            b"/nick abcdefghijabcdefghijabcdefghijabc" => err(E::MalformedName(NameError::TooLong { chars: 33 })),
            b"/help me" => err(E::UnexpectedArgument(K::Help)),
            b"/quit now" => err(E::UnexpectedArgument(K::Quit)),
            b"/hello" => err(E::MissingArgument(K::Hello)),
            b"/hello eaxchat/2" => err(E::UnsupportedProtocol),
            b"/hello EAXCHAT/1" => err(E::UnsupportedProtocol),
            b"/hello eaxchat/1 json" => err(E::UnexpectedArgument(K::Hello)),
        }
    }

    #[test]
    fn text_at_the_limit_is_accepted() {
        let mut me = b"/me ".to_vec();
        me.extend_from_slice(&[b'y'; MAX]);
        assert_eq!(parse(&me, MAX), cmd(Command::Me(&[b'y'; MAX])));
    }

    #[test]
    fn replies_read_as_the_user_sees_them() {
        let replies = [
            (&b"/foo"[..], "error: unknown command /foo (try /help)"),
            (b"/\x07", "error: unknown command (try /help)"),
            (b"/join", "error: /join needs an argument: /join ROOM"),
            (b"/who x", "error: too many arguments: /who"),
            (
                b"/join a!",
                "error: bad room name: character 2 is not allowed; a room name is 1 to 32 \
                 of A-Z a-z 0-9 _ - . after an optional #",
            ),
            (b"/nick", "error: /nick needs an argument: /nick NAME"),
            (
                b"/msg x! hi",
                "error: bad name: character 2 of the name is not one of A-Z a-z 0-9 _ - .; \
                 a name is 1 to 32 of A-Z a-z 0-9 _ - .",
            ),
            (
                b"/me aaaaaaaaaaaaaaaaaaaaaaaaa",
                "error: /me text too long: at most 20 bytes",
            ),
            (
                b"/hello irc",
                "error: unknown protocol; this relay speaks eaxchat/1",
            ),
        ];
        for (input, reply) in replies {
            let error = parse(input, MAX).expect_err("an error");
            assert_eq!(error.to_string(), reply);
        }
    }

    #[test]
    fn room_names_show_with_their_hash() {
        assert_eq!(room("#Dev").to_string(), "#dev");
        assert_eq!(room("Dev").as_str(), "dev");
    }

    #[test]
    fn escaped_text_parses_back() {
        for text in [&b""[..], b"hi", b"/", b"/join x", b"//x", b" /x"] {
            let mut escaped = Vec::new();
            escape_text(text, &mut escaped);
            assert_eq!(parse(&escaped, MAX), text_in(text));
        }
    }
}
