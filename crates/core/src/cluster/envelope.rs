//! What relays say to each other through NATS, and its binary form.
//!
//! Every envelope carries its origin (a relay's random id for this run: its
//! start epoch), the origin's sequence number, the origin's wall clock, and
//! how the origin serves its people: its [`ClusterMode`] and a fingerprint
//! of its members file ([`members_print`], both in `standing.rs`); then one of the [`Body`]
//! kinds. A heartbeat (`state`) also lists the origins its sender has
//! heard: a relay takes nothing from another until that relay's heartbeat
//! names it, which proves the envelopes after it were sent after this
//! relay started. The layout is length-prefixed big-endian fields:
//!
//! ```text
//! version(1)=2  origin(8)  seq(8)  ts_millis(8)  mode(1)  members(8)  kind(1)  body
//! room     = room:str8  from:str8  count:u16  (kind:u8 text:bytes32)*count
//! private  = from:str8  to:str8  text:bytes32
//! presence = room:str8  name:str8  change:u8 (0 left, 1 joined, 2 renamed: old:str8)  here
//! here     = unnamed:u32 names:u16 (name:str8 conns:u16)*   (the room on the origin, after)
//! state    = label:str8  rooms:u32  (room:str8 unnamed:u32 names:u16 (name:str8 conns:u16)*)*
//!            heard:u16 (origin:u64)*
//! bye      = (nothing)
//! ```
//!
//! `mode` is 0 shared key, 1 static-key members, 2 session members;
//! `members` is 0 in shared-key mode. `str8` is a length byte and UTF-8; an
//! empty `from` is no name. Names and
//! rooms are checked as the relay checks its own ([`Name::new`],
//! [`RoomName::new`]) so a decoded envelope holds nothing a local client
//! could not have sent. Sealing is the cluster key's (`key.rs`): this
//! module sees plaintext only, and never decides what an envelope means.

use std::fmt;

pub use super::standing::{ClusterMode, Standing, members_print};
use crate::history::EntryKind;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::name::Name;

/// The one version of the layout (1, before modes and heard origins, is
/// refused).
pub const VERSION: u8 = 2;

/// Messages in one room envelope, at most.
pub const MAX_MESSAGES: usize = u16::MAX as usize;

/// One envelope: who sent it, when, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The relay that sent it: random, new at every start.
    pub origin: u64,
    /// The origin's count of envelopes sent, from 1.
    pub seq: u64,
    /// The origin's wall clock when it sent it, in Unix milliseconds.
    pub ts_millis: u64,
    /// The origin's mode and members.
    pub standing: Standing,
    /// What it says.
    pub body: Body,
}

/// What an envelope says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Messages said in a room, in order, by one sender.
    Room {
        /// The room.
        room: RoomName,
        /// The sender's name; `None` for an unnamed shared-key connection.
        from: Option<Name>,
        /// Each message or action, in the order it was said.
        messages: Vec<(EntryKind, Box<[u8]>)>,
    },
    /// A `/msg` to a name that is on another relay.
    Private {
        /// The sender's name, if any.
        from: Option<Name>,
        /// Who it is for.
        to: Name,
        /// What it says.
        text: Box<[u8]>,
    },
    /// Someone on the origin joined or left a room, or took a new name.
    Presence {
        /// The room.
        room: RoomName,
        /// The name that came, went, or was taken.
        name: Name,
        /// What happened.
        change: Change,
        /// Who is in the room on the origin now.
        here: RoomState,
    },
    /// Who is on the origin, room by room: sent every heartbeat.
    State {
        /// How the origin calls itself in logs (its listen address).
        label: String,
        /// Each room with someone on the origin in it.
        rooms: Vec<RoomState>,
        /// The other relays the origin has heard from (their origins):
        /// each takes the origin's envelopes from the first heartbeat that
        /// names it on.
        heard: Vec<u64>,
    },
    /// The origin is shutting down: its people left.
    Bye,
}

/// What a [`Body::Presence`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The name left the room.
    Left,
    /// The name joined the room.
    Joined,
    /// The name was taken by someone called this before.
    Renamed(Name),
}

/// One room as one relay has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomState {
    /// The room.
    pub room: RoomName,
    /// Each name in it and how many of its connections.
    pub names: Vec<(Name, u16)>,
    /// Connections in it with no name.
    pub unnamed: u32,
}

/// Why bytes are not an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not version [`VERSION`].
    Version,
    /// It ended inside a field.
    Truncated,
    /// A kind or change byte no version has.
    UnknownKind,
    /// A name or room the relay would not accept from a client.
    BadName,
    /// Bytes after the body.
    Trailing,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EnvelopeError::Version => "unknown envelope version",
            EnvelopeError::Truncated => "envelope truncated",
            EnvelopeError::UnknownKind => "unknown envelope kind",
            EnvelopeError::BadName => "invalid name or room in envelope",
            EnvelopeError::Trailing => "bytes after the envelope",
        })
    }
}

impl std::error::Error for EnvelopeError {}

const ROOM: u8 = 1;
const PRIVATE: u8 = 2;
const PRESENCE: u8 = 3;
const STATE: u8 = 4;
const BYE: u8 = 5;

impl Envelope {
    /// Appends the binary form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_head(self.origin, self.seq, self.ts_millis, self.standing, out);
        match &self.body {
            Body::Room {
                room,
                from,
                messages,
            } => {
                out.push(ROOM);
                put_str8(out, room.as_str());
                put_str8(out, from.as_ref().map_or("", Name::as_str));
                let count = messages.len().min(MAX_MESSAGES);
                out.extend_from_slice(&(count as u16).to_be_bytes());
                for (kind, text) in messages.iter().take(count) {
                    put_message(out, *kind, text);
                }
            }
            Body::Private { from, to, text } => {
                out.push(PRIVATE);
                put_str8(out, from.as_ref().map_or("", Name::as_str));
                put_str8(out, to.as_str());
                put_bytes32(out, text);
            }
            Body::Presence {
                room,
                name,
                change,
                here,
            } => {
                out.push(PRESENCE);
                put_str8(out, room.as_str());
                put_str8(out, name.as_str());
                match change {
                    Change::Left => out.push(0),
                    Change::Joined => out.push(1),
                    Change::Renamed(old) => {
                        out.push(2);
                        put_str8(out, old.as_str());
                    }
                }
                put_people(out, here);
            }
            Body::State {
                label,
                rooms,
                heard,
            } => {
                out.push(STATE);
                put_str8(out, label);
                out.extend_from_slice(&(rooms.len() as u32).to_be_bytes());
                for room in rooms {
                    put_str8(out, room.room.as_str());
                    put_people(out, room);
                }
                let count = heard.len().min(u16::MAX as usize);
                out.extend_from_slice(&(count as u16).to_be_bytes());
                for origin in heard.iter().take(count) {
                    out.extend_from_slice(&origin.to_be_bytes());
                }
            }
            Body::Bye => out.push(BYE),
        }
    }

    /// Reads an envelope, checking every name and room in it.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return Err(EnvelopeError::Version);
        }
        let (origin, seq, ts_millis) = (r.u64()?, r.u64()?, r.u64()?);
        let mode = ClusterMode::from_byte(r.u8()?)?;
        let standing = Standing {
            mode,
            members: r.u64()?,
        };
        let body = match r.u8()? {
            ROOM => {
                let room = r.room()?;
                let from = r.name_or_none()?;
                let count = r.u16()? as usize;
                let mut messages = Vec::with_capacity(count.min(r.0.len() / 5));
                for _ in 0..count {
                    let kind = match r.u8()? {
                        0 => EntryKind::Message,
                        1 => EntryKind::Action,
                        2 => EntryKind::Mls,
                        _ => return Err(EnvelopeError::UnknownKind),
                    };
                    messages.push((kind, r.bytes32()?.into()));
                }
                Body::Room {
                    room,
                    from,
                    messages,
                }
            }
            PRIVATE => Body::Private {
                from: r.name_or_none()?,
                to: r.name()?,
                text: r.bytes32()?.into(),
            },
            PRESENCE => {
                let room = r.room()?;
                let name = r.name()?;
                let change = match r.u8()? {
                    0 => Change::Left,
                    1 => Change::Joined,
                    2 => Change::Renamed(r.name()?),
                    _ => return Err(EnvelopeError::UnknownKind),
                };
                let here = r.people(room.clone())?;
                Body::Presence {
                    room,
                    name,
                    change,
                    here,
                }
            }
            STATE => {
                // Bad UTF-8 shows as U+FFFD (3 bytes each): cut back to what
                // a str8 holds, at a character, so that it encodes whole.
                let mut label = String::from_utf8_lossy(r.str8()?).into_owned();
                label.truncate(str8_len(&label));
                let count = r.u32()? as usize;
                let mut rooms = Vec::with_capacity(count.min(r.0.len() / 7));
                for _ in 0..count {
                    let room = r.room()?;
                    rooms.push(r.people(room)?);
                }
                let count = r.u16()? as usize;
                let mut heard = Vec::with_capacity(count.min(r.0.len() / 8));
                for _ in 0..count {
                    heard.push(r.u64()?);
                }
                Body::State {
                    label,
                    rooms,
                    heard,
                }
            }
            BYE => Body::Bye,
            _ => return Err(EnvelopeError::UnknownKind),
        };
        if !r.0.is_empty() {
            return Err(EnvelopeError::Trailing);
        }
        Ok(Envelope {
            origin,
            seq,
            ts_millis,
            standing,
            body,
        })
    }
}

/// Writes the fields every envelope starts with.
pub fn encode_head(origin: u64, seq: u64, ts_millis: u64, standing: Standing, out: &mut Vec<u8>) {
    out.push(VERSION);
    out.extend_from_slice(&origin.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts_millis.to_be_bytes());
    out.push(standing.mode.byte());
    out.extend_from_slice(&standing.members.to_be_bytes());
}

/// Writes the head of a room envelope whose `count` messages follow, each
/// written with [`put_message`]: the hot path encodes a read's messages
/// without gathering them first.
pub fn encode_room_head(room: &RoomName, from: Option<&Name>, count: u16, out: &mut Vec<u8>) {
    out.push(ROOM);
    put_str8(out, room.as_str());
    put_str8(out, from.map_or("", Name::as_str));
    out.extend_from_slice(&count.to_be_bytes());
}

/// Writes one message of a room envelope.
pub fn put_message(out: &mut Vec<u8>, kind: EntryKind, text: &[u8]) {
    out.push(match kind {
        EntryKind::Message => 0,
        EntryKind::Action => 1,
        EntryKind::Mls => 2,
    });
    put_bytes32(out, text);
}

/// Who is in a room: its unnamed count, then each name and its
/// connections.
fn put_people(out: &mut Vec<u8>, room: &RoomState) {
    out.extend_from_slice(&room.unnamed.to_be_bytes());
    let names = room.names.len().min(u16::MAX as usize);
    out.extend_from_slice(&(names as u16).to_be_bytes());
    for (name, conns) in room.names.iter().take(names) {
        put_str8(out, name.as_str());
        out.extend_from_slice(&conns.to_be_bytes());
    }
}

fn put_str8(out: &mut Vec<u8>, text: &str) {
    let len = str8_len(text);
    out.push(len as u8);
    out.extend_from_slice(&text.as_bytes()[..len]);
}

/// How much of `text` a str8 holds: at most 255 bytes, cut at a character.
fn str8_len(text: &str) -> usize {
    let mut len = text.len().min(u8::MAX as usize);
    while !text.is_char_boundary(len) {
        len -= 1;
    }
    len
}

fn put_bytes32(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The unread rest of an envelope.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        if self.0.len() < n {
            return Err(EnvelopeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EnvelopeError> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, EnvelopeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, EnvelopeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, EnvelopeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn str8(&mut self) -> Result<&'a [u8], EnvelopeError> {
        let len = self.u8()? as usize;
        self.take(len)
    }

    fn bytes32(&mut self) -> Result<&'a [u8], EnvelopeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn name(&mut self) -> Result<Name, EnvelopeError> {
        let text = std::str::from_utf8(self.str8()?).map_err(|_| EnvelopeError::BadName)?;
        Name::new(text).map_err(|_| EnvelopeError::BadName)
    }

    fn name_or_none(&mut self) -> Result<Option<Name>, EnvelopeError> {
        let text = self.str8()?;
        if text.is_empty() {
            return Ok(None);
        }
        let text = std::str::from_utf8(text).map_err(|_| EnvelopeError::BadName)?;
        Name::new(text)
            .map(Some)
            .map_err(|_| EnvelopeError::BadName)
    }

    fn people(&mut self, room: RoomName) -> Result<RoomState, EnvelopeError> {
        let unnamed = self.u32()?;
        let names_len = self.u16()? as usize;
        let mut names = Vec::with_capacity(names_len.min(self.0.len() / 4));
        for _ in 0..names_len {
            names.push((self.name()?, self.u16()?));
        }
        Ok(RoomState {
            room,
            names,
            unnamed,
        })
    }

    fn room(&mut self) -> Result<RoomName, EnvelopeError> {
        RoomName::new(self.str8()?).map_err(|_| EnvelopeError::BadName)
    }
}

#[cfg(test)]
#[path = "envelope_tests.rs"]
mod tests;
