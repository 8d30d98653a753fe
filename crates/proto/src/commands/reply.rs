//! The commands' words and usages ([`CommandKind`]) and the replies that
//! refuse a command ([`CommandError`], whose `Display` is what the sender
//! reads).
//!
//! A reply never echoes what the sender typed except an unknown command
//! word that is short printable ASCII: a reply must never carry bytes a
//! terminal would interpret.

use std::fmt;

use super::{PROTOCOL_V1, ROOM_NAME_MAX, RoomNameError};
use crate::name::{NAME_MAX, NameError};

/// The longest unknown command word an error reply repeats.
const ECHO_MAX: usize = 16;

/// Which command an error is about, for its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// `/join`
    Join,
    /// `/part`
    Part,
    /// `/in`
    In,
    /// `/topic`
    Topic,
    /// `/history`
    History,
    /// `/mls`
    Mls,
    /// `/keypackage`
    KeyPackage,
    /// `/keypackages`
    KeyPackages,
    /// `/groupinfo`
    GroupInfo,
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
    pub const ALL: [CommandKind; 17] = [
        CommandKind::Join,
        CommandKind::Part,
        CommandKind::In,
        CommandKind::Topic,
        CommandKind::History,
        CommandKind::Rooms,
        CommandKind::Who,
        CommandKind::Me,
        CommandKind::Msg,
        CommandKind::Nick,
        CommandKind::Help,
        CommandKind::Quit,
        CommandKind::Hello,
        CommandKind::Mls,
        CommandKind::KeyPackage,
        CommandKind::KeyPackages,
        CommandKind::GroupInfo,
    ];

    /// The command word, without its `/`.
    pub fn word(self) -> &'static str {
        match self {
            CommandKind::Join => "join",
            CommandKind::Part => "part",
            CommandKind::In => "in",
            CommandKind::Topic => "topic",
            CommandKind::History => "history",
            CommandKind::Mls => "mls",
            CommandKind::KeyPackage => "keypackage",
            CommandKind::KeyPackages => "keypackages",
            CommandKind::GroupInfo => "groupinfo",
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
            CommandKind::Join => "/join ROOM [--e2e]",
            CommandKind::Part => "/part [ROOM]",
            CommandKind::In => "/in ROOM [TEXT or /COMMAND]",
            CommandKind::Topic => "/topic [TEXT]",
            CommandKind::History => "/history [BEFORE-ID [LIMIT]]",
            CommandKind::Mls => "/mls ROOM BASE64",
            CommandKind::KeyPackage => "/keypackage BASE64",
            CommandKind::KeyPackages => "/keypackages NAME",
            CommandKind::GroupInfo => "/groupinfo ROOM",
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

    /// The command `word` names, ignoring ASCII case.
    pub(super) fn from_word(word: &[u8]) -> Option<CommandKind> {
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
    /// The room name breaks [`RoomName`](super::RoomName)'s rules.
    MalformedRoom(RoomNameError),
    /// The member name breaks [`Name`](crate::name::Name)'s rules.
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
    /// A number argument that is not a decimal number in range.
    BadNumber {
        /// The command.
        command: CommandKind,
        /// The largest it takes.
        max: u64,
    },
    /// `/in` inside `/in`.
    NestedIn,
    /// An argument that should be standard base64 and is not.
    BadBase64(CommandKind),
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
            CommandError::BadNumber { command, max } => write!(
                f,
                "error: /{} takes numbers from 0 to {max}: {}",
                command.word(),
                command.usage()
            ),
            CommandError::NestedIn => f.write_str("error: /in takes one room, not another /in"),
            CommandError::BadBase64(kind) => write!(
                f,
                "error: /{} takes standard base64: {}",
                kind.word(),
                kind.usage()
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

/// The unknown command `word`, if it is safe to repeat in a reply.
pub(super) fn echoable(word: &[u8]) -> Option<String> {
    let printable = word.iter().all(|&b| b.is_ascii_graphic());
    (printable && word.len() <= ECHO_MAX).then(|| String::from_utf8_lossy(word).into_owned())
}
