//! What the relay tells people, in the two forms a client can get: plain
//! text lines, which the original notebook client prints readably, and
//! the structured events of `eaxchat/1`, one-line JSON objects, for a
//! client that asked with `/hello eaxchat/1`.
//!
//! This module owns both forms in both directions. The relay writes an
//! [`Event`], which borrows what it shows: [`Event::plain`] and
//! [`Event::json`] append its plaintext to a buffer for the caller to seal.
//! A client reads the JSON back into a [`ParsedEvent`]
//! ([`ParsedEvent::parse`]) and shows it as the plain text the relay would
//! have sent ([`ParsedEvent::plain`]). The kind words are written and
//! matched from one table (`kind`) and the plain text is rendered in one
//! place (`plain`), so the two directions cannot drift apart; `json` holds
//! the JSON form both ways.
//!
//! The JSON form is written by hand, with every string escaped; a text that
//! is not UTF-8 is shown with U+FFFD in place of each bad sequence. Parsing
//! is lenient: a missing field reads as empty, and a kind this version does
//! not know is kept ([`ParsedKind::Other`]) and shown by its text.
//!
//! # `eaxchat/1`
//!
//! Every object has a `kind`; times (`ts`) are milliseconds since the Unix
//! epoch, as the relay's clock read them; rooms are shown without `#`;
//! `from` is `null` for a shared-key connection that never took a name.
//!
//! | kind | fields |
//! |---|---|
//! | `welcome` | `protocol`, `name`, `room` (the current room, or `null`), `rooms` (every room the connection is in, join order), `members` (whether names are vouched for by a members file) |
//! | `msg`, `action` | `room`, `from`, `text`, `ts`, `history` (true for history, on joining or paged), `id` (the message's number in its room on this relay, from 0) |
//! | `private` | `from`, `to`, `text`, `ts`, `echo` (true on the sender's copy) |
//! | `join`, `leave` | `room`, `name`, `count` (connections in the room after it), `ts` |
//! | `nick` | `room`, `from` (the old name or `null`), `to`, `ts` |
//! | `history` | `room`, `count`: that many `msg`/`action` events with `history: true` follow; `page` (an answer to `/history`, not the burst on joining), `first` (the oldest that follows is the oldest the relay has) |
//! | `who` | `room`, `names`, `unnamed` (connections in it with no name) |
//! | `rooms` | `rooms`: a list of `{"room", "count", "topic", "mode", "joined"}`: the connection's rooms (`joined: true`) first |
//! | `myrooms` | `room` (the current room, or `null`), `rooms`: the connection's rooms after a `/join` or `/part`; `e2e`: those that are end-to-end |
//! | `topic` | `room`, `from` (who set it, or `null`), `text` (empty: none), `ts` |
//! | `mls` | `room`, `from`, `data` (an MLS message, base64), `ts`, `id` (`null` for a Welcome), `history`: an end-to-end room's group message, as its sender's device sealed it |
//! | `mls-ok` | `room`, `epoch`: your commit was taken; the group is at `epoch` |
//! | `mls-refused` | `room`, `epoch`, `text`: your group message was refused; the group is at `epoch` |
//! | `mls-add`, `mls-remove` | `room`, `name`: that member's devices are to be added to, or removed from, the group by the next member to commit |
//! | `keypackages` | `name`, `packages`: one KeyPackage (base64) of each of its devices |
//! | `groupinfo` | `room`, `epoch`, `data`: the group's GroupInfo (base64) |
//! | `notice`, `error` | `text`: a reply to a command, or why it was refused; `room`: the room it concerns, or `null` |
//!
//! ```
//! use eaxchat_proto::commands::RoomName;
//! use eaxchat_proto::events::{Event, ParsedEvent, ParsedKind};
//! use eaxchat_proto::name::Name;
//!
//! let (alice, lobby) = (Name::new("alice")?, RoomName::new(b"lobby")?);
//! let event = Event::Message {
//!     room: &lobby,
//!     from: Some(&alice),
//!     text: b"hi",
//!     ts: 7,
//!     history: false,
//!     action: false,
//!     stamped: true,
//!     id: 3,
//! };
//! let (mut plain, mut json) = (Vec::new(), Vec::new());
//! event.plain(&mut plain);
//! event.json(&mut json);
//! assert_eq!(plain, b"alice: hi");
//! assert_eq!(
//!     json,
//!     br#"{"kind":"msg","room":"lobby","from":"alice","text":"hi","ts":7,"history":false,"id":3}"#
//! );
//!
//! // A client reads it back, and shows it as the relay's plain text.
//! let parsed = ParsedEvent::parse(&json).ok_or("not an event")?;
//! assert_eq!(parsed.kind, ParsedKind::Message);
//! assert_eq!(parsed.from.as_deref(), Some("alice"));
//! let mut shown = Vec::new();
//! parsed.plain(true, &mut shown);
//! assert_eq!(shown, plain);
//!
//! // Text that is not an event is not parsed: it is shown as it came.
//! assert_eq!(ParsedEvent::parse(b"hello"), None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod json;
mod plain;
#[cfg(test)]
mod tests;

use crate::commands::RoomName;
use crate::name::Name;

/// The version a `welcome` event names.
pub const PROTOCOL: &str = crate::commands::PROTOCOL_V1;

/// The `kind` of each event in its JSON form: written by [`Event::json`]
/// and matched by [`ParsedEvent::parse`], from here only.
mod kind {
    pub(super) const WELCOME: &str = "welcome";
    pub(super) const MSG: &str = "msg";
    pub(super) const ACTION: &str = "action";
    pub(super) const PRIVATE: &str = "private";
    pub(super) const JOIN: &str = "join";
    pub(super) const LEAVE: &str = "leave";
    pub(super) const NICK: &str = "nick";
    pub(super) const HISTORY: &str = "history";
    pub(super) const WHO: &str = "who";
    pub(super) const ROOMS: &str = "rooms";
    pub(super) const MY_ROOMS: &str = "myrooms";
    pub(super) const TOPIC: &str = "topic";
    pub(super) const MLS: &str = "mls";
    pub(super) const MLS_OK: &str = "mls-ok";
    pub(super) const MLS_REFUSED: &str = "mls-refused";
    pub(super) const MLS_ADD: &str = "mls-add";
    pub(super) const MLS_REMOVE: &str = "mls-remove";
    pub(super) const KEY_PACKAGES: &str = "keypackages";
    pub(super) const GROUP_INFO: &str = "groupinfo";
    pub(super) const NOTICE: &str = "notice";
    pub(super) const ERROR: &str = "error";
}

/// Something the relay sends one connection, borrowing what it shows; a
/// client reads it back as a [`ParsedEvent`].
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The answer to `/hello`.
    Welcome {
        /// The connection's name, if it has one.
        name: Option<&'a Name>,
        /// Its current room, if it is in one.
        room: Option<&'a RoomName>,
        /// Every room it is in, in the order it joined them.
        rooms: &'a [&'a RoomName],
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
        /// Its number in its room on this relay, from 0.
        id: u64,
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
        /// An answer to `/history`, not the burst on joining.
        page: bool,
        /// The oldest that follows is the oldest the relay has.
        first: bool,
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
    /// The rooms: the asker's first, then the others with people in them.
    Rooms(&'a [RoomEntry<'a>]),
    /// The connection's rooms, after it joined or left one.
    MyRooms {
        /// Where its text goes now, if anywhere.
        room: Option<&'a RoomName>,
        /// Every room it is in, in the order it joined them.
        rooms: &'a [&'a RoomName],
        /// Those of them that are end-to-end.
        e2e: &'a [&'a RoomName],
    },
    /// A room's topic, as set or as asked for.
    Topic {
        /// The room.
        room: &'a RoomName,
        /// Who set it, if known.
        from: Option<&'a Name>,
        /// The topic (empty: none).
        text: &'a [u8],
        /// When it was set.
        ts: u64,
    },
    /// A group message of an end-to-end room, as it came (base64).
    Mls {
        /// The room.
        room: &'a RoomName,
        /// Who sent it.
        from: Option<&'a Name>,
        /// The MLS message, base64.
        data: &'a [u8],
        /// When.
        ts: u64,
        /// Its number in the room (`None`: a Welcome, kept in no history).
        id: Option<u64>,
        /// Sent as history.
        history: bool,
    },
    /// What the Delivery Service says of a group: `mls-ok` (a commit was
    /// taken), `mls-refused` (with why), `mls-add` or `mls-remove` (with
    /// whom).
    Group {
        /// Which of the four.
        what: GroupNotice<'a>,
        /// The room.
        room: &'a RoomName,
    },
    /// One KeyPackage of each of a member's devices.
    KeyPackages {
        /// Whose.
        name: &'a Name,
        /// Each, base64.
        packages: &'a [&'a [u8]],
    },
    /// A group's GroupInfo.
    GroupInfo {
        /// The room.
        room: &'a RoomName,
        /// Its epoch.
        epoch: u64,
        /// The GroupInfo, base64.
        data: &'a [u8],
    },
    /// A reply to a command.
    Notice {
        /// The room it concerns, if one.
        room: Option<&'a RoomName>,
        /// What it says.
        text: &'a str,
    },
    /// A command refused, and why.
    Error {
        /// The room it concerns, if one.
        room: Option<&'a RoomName>,
        /// Why.
        text: &'a str,
    },
}

impl<'a> Event<'a> {
    /// A notice about no room in particular.
    pub fn notice(text: &'a str) -> Event<'a> {
        Event::Notice { room: None, text }
    }

    /// An error about no room in particular.
    pub fn error(text: &'a str) -> Event<'a> {
        Event::Error { room: None, text }
    }
}

/// What the Delivery Service tells a member of its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupNotice<'a> {
    /// Your commit was taken: the group is at `epoch` now.
    Taken {
        /// The group's epoch now.
        epoch: u64,
    },
    /// Your message was refused, and why; the group is at `epoch`.
    Refused {
        /// The group's epoch.
        epoch: u64,
        /// Why.
        text: &'a str,
    },
    /// `name`'s devices are to be added by the next member to commit.
    Add(&'a Name),
    /// `name`'s devices are to be removed by the next member to commit.
    Remove(&'a Name),
}

/// One room in a [`Event::Rooms`] list.
#[derive(Debug, Clone, Copy)]
pub struct RoomEntry<'a> {
    /// Its name.
    pub room: &'a RoomName,
    /// Connections in it, here and on the cluster's other relays.
    pub count: usize,
    /// Its topic (empty: none).
    pub topic: &'a [u8],
    /// How its messages are protected: [`MODE_RELAY`].
    pub mode: &'a str,
    /// Whether the asker is in it.
    pub joined: bool,
}

/// A room whose messages the relay opens and seals again for each hop.
pub const MODE_RELAY: &str = "relay";

/// An end-to-end room: its members' devices encrypt for the group, and the
/// relay forwards what it cannot open.
pub const MODE_E2E: &str = "e2e";

/// One room in a parsed `rooms` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRoom {
    /// Its name, without `#`.
    pub room: String,
    /// Connections in it.
    pub count: u64,
    /// Its topic (empty: none).
    pub topic: String,
    /// How its messages are protected (`relay`).
    pub mode: String,
    /// Whether we are in it.
    pub joined: bool,
}

/// What kind of event a client read, with the fields only that kind has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedKind {
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
    HistoryStart {
        /// How many.
        count: u64,
        /// An answer to `/history`.
        page: bool,
        /// Nothing older is kept.
        first: bool,
    },
    /// Who is in the room.
    Who {
        /// The names.
        names: Vec<String>,
        /// Connections with no name.
        unnamed: u64,
    },
    /// The rooms: ours first.
    Rooms(Vec<ParsedRoom>),
    /// Our rooms changed (the current one is [`ParsedEvent::room`], all
    /// of them [`ParsedEvent::rooms`]).
    MyRooms,
    /// A room's topic ([`ParsedEvent::text`]; empty: none).
    Topic,
    /// An end-to-end room's group message ([`ParsedEvent::data`]).
    Mls,
    /// Our commit was taken; the group is at `epoch`.
    MlsTaken {
        /// The group's epoch.
        epoch: u64,
    },
    /// Our group message was refused ([`ParsedEvent::text`] says why).
    MlsRefused {
        /// The group's epoch.
        epoch: u64,
    },
    /// `name`'s devices are to be added to the group.
    MlsAdd {
        /// Whose.
        name: String,
    },
    /// `name`'s devices are to be removed from the group.
    MlsRemove {
        /// Whose.
        name: String,
    },
    /// One KeyPackage of each of `name`'s devices (in
    /// [`ParsedEvent::packages`]).
    KeyPackages {
        /// Whose.
        name: String,
    },
    /// A group's GroupInfo ([`ParsedEvent::data`]).
    GroupInfo {
        /// Its epoch.
        epoch: u64,
    },
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

/// An `eaxchat/1` event as a client reads it back: owned, and lenient
/// about what is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    /// What it is.
    pub kind: ParsedKind,
    /// The room it concerns, if any.
    pub room: Option<String>,
    /// Who said it (`None`: nobody, or a shared-key connection with no
    /// name).
    pub from: Option<String>,
    /// What was said, or the notice's text.
    pub text: String,
    /// When, in Unix milliseconds.
    pub ts: Option<u64>,
    /// Sent as history (on joining, or paged), not live.
    pub history: bool,
    /// A message's number in its room on this relay.
    pub id: Option<u64>,
    /// `welcome`, `myrooms`: every room we are in, in join order.
    pub rooms: Vec<String>,
    /// `myrooms`: those of them that are end-to-end.
    pub e2e: Vec<String>,
    /// `mls`, `groupinfo`: the MLS message, decoded from base64 (empty if
    /// it was not base64).
    pub data: Vec<u8>,
    /// `keypackages`: each, decoded from base64.
    pub packages: Vec<Vec<u8>>,
}

/// `fmt::Write` onto a byte buffer.
struct Text<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Text<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}
