//! The `/` commands: a pure parser from one message's plaintext to ordinary
//! text, a [`Command`], or the [`CommandError`] whose `Display` is the reply
//! the sender sees. It never looks at who is connected, so "no such member"
//! or "name taken" are the relay's to decide.
//!
//! This file owns the grammar; the words, usages and replies are `reply`'s
//! ([`CommandKind`], [`CommandError`]), and the room-name rules are
//! `room_name`'s ([`RoomName`]). Member names follow [`Name`]'s rules and
//! are compared exactly, as the members file compares them.
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
//! ```
//! use eaxchat_proto::commands::{self, Command, Input, RoomName};
//!
//! let max_text = 100;
//! assert_eq!(commands::parse(b"hello", max_text)?, Input::Text(b"hello"));
//! assert_eq!(commands::parse(b"//etc", max_text)?, Input::Text(b"/etc"));
//! assert_eq!(
//!     commands::parse(b"/JOIN #Lobby", max_text)?,
//!     Input::Command(Command::Join(RoomName::new(b"lobby")?)),
//! );
//! assert_eq!(
//!     commands::parse(b"/me waves", max_text)?,
//!     Input::Command(Command::Me(b"waves")),
//! );
//!
//! let refused = commands::parse(b"/nick", max_text).unwrap_err();
//! assert_eq!(refused.to_string(), "error: /nick needs an argument: /nick NAME");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod reply;
mod room_name;
#[cfg(test)]
mod tests;

pub use reply::{CommandError, CommandKind};
pub use room_name::{ROOM_NAME_MAX, RoomName, RoomNameError};

use crate::name::{Name, NameError};
use reply::echoable;
use room_name::is_name_byte;

/// The only structured-events protocol there is, as `/hello` names it.
pub const PROTOCOL_V1: &str = "eaxchat/1";

/// The most messages one `/history` page holds.
pub const MAX_HISTORY_PAGE: usize = 100;

/// A `/history` page's size when none is asked for.
pub const DEFAULT_HISTORY_PAGE: usize = 50;

/// The longest topic, in bytes.
pub const TOPIC_MAX: usize = 300;

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
    /// `/join ROOM`: enter `ROOM` and send there (a connection that never
    /// said `/hello` leaves its room for it).
    Join(RoomName),
    /// `/join ROOM --e2e`: enter `ROOM`, an end-to-end room (made one if
    /// it is new), and send there.
    JoinE2e(RoomName),
    /// `/mls ROOM BASE64`: an MLS message for `ROOM`'s group (decoded).
    Mls {
        /// The room.
        room: RoomName,
        /// The `MLSMessage`'s bytes.
        message: Vec<u8>,
    },
    /// `/keypackage BASE64`: a KeyPackage of this device (decoded).
    KeyPackage(Vec<u8>),
    /// `/keypackages NAME`: one KeyPackage of each of `NAME`'s devices.
    KeyPackages(Name),
    /// `/groupinfo ROOM`: the stored GroupInfo of `ROOM`'s group.
    GroupInfo(RoomName),
    /// `/part [ROOM]`: leave `ROOM`, or the current room.
    Part(Option<RoomName>),
    /// `/in ROOM REST`: make `ROOM` current, then take `REST` (text or a
    /// command, unparsed; empty: only switch).
    In {
        /// The room.
        room: RoomName,
        /// What follows, as a plaintext of its own.
        rest: &'a [u8],
    },
    /// `/topic [TEXT]`: set the current room's topic, or show it.
    Topic(Option<&'a [u8]>),
    /// `/history [BEFORE [LIMIT]]`: the current room's messages before id
    /// `BEFORE` (all: `None`), at most `limit`.
    History {
        /// Only messages with a smaller id.
        before: Option<u64>,
        /// At most this many ([`MAX_HISTORY_PAGE`] at most).
        limit: usize,
    },
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
        CommandKind::Join => {
            let (room, rest) = first_word(argument);
            if room.is_empty() {
                return Err(CommandError::MissingArgument(kind));
            }
            let room = RoomName::new(room).map_err(CommandError::MalformedRoom)?;
            match trim_end(trim_start(rest)) {
                b"" => Command::Join(room),
                b"--e2e" => Command::JoinE2e(room),
                _ => return Err(CommandError::UnexpectedArgument(kind)),
            }
        }
        CommandKind::Mls => {
            let (room, rest) = first_word(argument);
            if room.is_empty() {
                return Err(CommandError::MissingArgument(kind));
            }
            Command::Mls {
                room: RoomName::new(room).map_err(CommandError::MalformedRoom)?,
                message: base64_word(kind, trim_start(rest))?,
            }
        }
        CommandKind::KeyPackage => Command::KeyPackage(base64_word(kind, argument)?),
        CommandKind::KeyPackages => Command::KeyPackages(member_name(one_word(kind, argument)?)?),
        CommandKind::GroupInfo => Command::GroupInfo(
            RoomName::new(one_word(kind, argument)?).map_err(CommandError::MalformedRoom)?,
        ),
        CommandKind::Part => match trim_end(argument) {
            b"" => Command::Part(None),
            _ => Command::Part(Some(
                RoomName::new(one_word(kind, argument)?).map_err(CommandError::MalformedRoom)?,
            )),
        },
        CommandKind::In => {
            let (room, rest) = first_word(argument);
            if room.is_empty() {
                return Err(CommandError::MissingArgument(kind));
            }
            let room = RoomName::new(room).map_err(CommandError::MalformedRoom)?;
            let rest = trim_start(rest);
            let inner = rest
                .strip_prefix(b"/")
                .map(first_word)
                .map(|(word, _)| word);
            if inner.is_some_and(|word| word.eq_ignore_ascii_case(b"in")) {
                return Err(CommandError::NestedIn);
            }
            Command::In { room, rest }
        }
        CommandKind::Topic => match trim_end(argument) {
            b"" => Command::Topic(None),
            _ => Command::Topic(Some(text(kind, argument, TOPIC_MAX)?)),
        },
        CommandKind::History => {
            let (before, rest) = first_word(argument);
            let (limit, rest) = first_word(trim_start(rest));
            if !trim_end(rest).is_empty() {
                return Err(CommandError::UnexpectedArgument(kind));
            }
            let before = match before {
                b"" => None,
                word => Some(number(kind, word, u64::MAX)?),
            };
            let limit = match limit {
                b"" => DEFAULT_HISTORY_PAGE,
                word => number(kind, word, MAX_HISTORY_PAGE as u64)? as usize,
            };
            Command::History { before, limit }
        }
        CommandKind::Rooms => no_argument(kind, argument, Command::Rooms)?,
        CommandKind::Who => no_argument(kind, argument, Command::Who)?,
        CommandKind::Me => Command::Me(text(kind, argument, max_text)?),
        CommandKind::Msg => {
            let (name, rest) = first_word(argument);
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

/// The first word of `argument` (to the first space or tab, without a
/// trailing `\r` or `\n`), and what follows it.
fn first_word(argument: &[u8]) -> (&[u8], &[u8]) {
    let end = argument
        .iter()
        .position(|&b| is_separator(b))
        .unwrap_or(argument.len());
    let (word, rest) = argument.split_at(end);
    (trim_end(word), rest)
}

/// One word of standard base64 (padded), decoded.
fn base64_word(kind: CommandKind, argument: &[u8]) -> Result<Vec<u8>, CommandError> {
    use base64::Engine as _;
    let word = one_word(kind, argument)?;
    base64::engine::general_purpose::STANDARD
        .decode(word)
        .map_err(|_| CommandError::BadBase64(kind))
}

/// A decimal number from 0 to `max`.
fn number(kind: CommandKind, word: &[u8], max: u64) -> Result<u64, CommandError> {
    let bad = CommandError::BadNumber { command: kind, max };
    if word.is_empty() || word.len() > 20 || !word.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    let number = word
        .iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or(bad.clone())?;
    if number > max { Err(bad) } else { Ok(number) }
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
