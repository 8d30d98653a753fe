//! The message log's records and their plaintext encoding (the layout is
//! described in the server crate's `msglog` docs). It owns only what is
//! sealed: nothing here touches the disk, and the writer, recovery and
//! export are the server crate's.
//!
//! Two plaintext versions: version 2 is a room message that carries its id
//! (its number in its room, [`Record::id`]), so the id stays the same
//! whatever records around it are lost or deleted; version 1 is everything
//! else (joins, leaves) and every message written before ids were kept,
//! whose id is found by counting.

use eaxchat_proto::commands::RoomName;
use eaxchat_proto::name::Name;

use crate::history::{Entry, EntryKind};

/// The plaintext format's version byte of a message that carries its id.
pub const FORMAT_VERSION: u8 = 2;

/// The version byte of a record without an id: joins, leaves, and
/// messages written by relays before ids were kept.
pub const FORMAT_VERSION_1: u8 = 1;

const KIND_MESSAGE: u8 = 1;
const KIND_ACTION: u8 = 2;
const KIND_JOIN: u8 = 3;
const KIND_LEAVE: u8 = 4;
const KIND_MLS: u8 = 5;

/// One logged event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A message or `/me` action said in a room.
    Message {
        /// Where.
        room: RoomName,
        /// Who said it (`None`: a shared-key connection with no name).
        sender: Option<Name>,
        /// What.
        text: Box<[u8]>,
        /// When, in milliseconds since the Unix epoch.
        ts_millis: u64,
        /// A message or an action.
        kind: EntryKind,
        /// Its number in its room (the `id` of its events); `None` in a
        /// record written before ids were kept (version 1), whose id is its
        /// place among the room's messages in the log.
        id: Option<u64>,
    },
    /// Someone entered a room.
    Join {
        /// Which room.
        room: RoomName,
        /// Who.
        name: Name,
        /// When, in milliseconds since the Unix epoch.
        ts_millis: u64,
    },
    /// Someone left a room.
    Leave {
        /// Which room.
        room: RoomName,
        /// Who.
        name: Name,
        /// When, in milliseconds since the Unix epoch.
        ts_millis: u64,
    },
}

impl Record {
    /// A room message's id, if its record carries one (version 2).
    pub fn id(&self) -> Option<u64> {
        match self {
            Record::Message { id, .. } => *id,
            Record::Join { .. } | Record::Leave { .. } => None,
        }
    }

    /// For a room message, its room and the history entry it makes.
    pub fn history_entry(&self) -> Option<(&RoomName, Entry)> {
        match self {
            Record::Message {
                room,
                sender,
                text,
                ts_millis,
                kind,
                ..
            } => Some((
                room,
                Entry {
                    sender: sender.clone(),
                    text: text.clone(),
                    ts_millis: *ts_millis,
                    kind: *kind,
                },
            )),
            Record::Join { .. } | Record::Leave { .. } => None,
        }
    }

    /// Appends the plaintext of this record to `out`: version 2 for a
    /// message with an id, version 1 for anything else.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (kind, room, name, ts_millis, text, id) = match self {
            Record::Message {
                room,
                sender,
                text,
                ts_millis,
                kind,
                id,
            } => {
                let kind = match kind {
                    EntryKind::Message => KIND_MESSAGE,
                    EntryKind::Action => KIND_ACTION,
                    EntryKind::Mls => KIND_MLS,
                };
                (kind, room, sender.as_ref(), ts_millis, Some(text), *id)
            }
            Record::Join {
                room,
                name,
                ts_millis,
            } => (KIND_JOIN, room, Some(name), ts_millis, None, None),
            Record::Leave {
                room,
                name,
                ts_millis,
            } => (KIND_LEAVE, room, Some(name), ts_millis, None, None),
        };
        let version = if id.is_some() {
            FORMAT_VERSION
        } else {
            FORMAT_VERSION_1
        };
        out.extend_from_slice(&[version, kind]);
        out.extend_from_slice(&ts_millis.to_le_bytes());
        // Room names and member names are at most 32 bytes, so fit a u8; a
        // message with no sender has a name of length 0.
        for short in [room.as_str(), name.map_or("", |name| name.as_str())] {
            out.push(short.len() as u8);
            out.extend_from_slice(short.as_bytes());
        }
        if let Some(id) = id {
            out.extend_from_slice(&id.to_le_bytes());
        }
        if let Some(text) = text {
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text);
        }
    }

    /// Reads a version-1 or version-2 plaintext; `Err` says what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Record, &'static str> {
        let mut reader = Reader(bytes);
        let version = reader.u8()?;
        if version != FORMAT_VERSION && version != FORMAT_VERSION_1 {
            return Err("unsupported record version");
        }
        let kind = reader.u8()?;
        let ts_millis = u64::from_le_bytes(reader.array()?);
        let room_len = usize::from(reader.u8()?);
        let room = RoomName::new(reader.take(room_len)?).map_err(|_| "bad room name")?;
        let name_len = usize::from(reader.u8()?);
        let name = match name_len {
            0 => None,
            len => Some(
                std::str::from_utf8(reader.take(len)?)
                    .ok()
                    .and_then(|name| Name::new(name).ok())
                    .ok_or("bad name")?,
            ),
        };
        let record = match kind {
            KIND_MESSAGE | KIND_ACTION | KIND_MLS => {
                let id = match version {
                    FORMAT_VERSION => Some(u64::from_le_bytes(reader.array()?)),
                    _ => None,
                };
                let text_len = u32::from_le_bytes(reader.array()?) as usize;
                Record::Message {
                    room,
                    sender: name,
                    text: reader.take(text_len)?.into(),
                    ts_millis,
                    kind: match kind {
                        KIND_ACTION => EntryKind::Action,
                        KIND_MLS => EntryKind::Mls,
                        _ => EntryKind::Message,
                    },
                    id,
                }
            }
            KIND_JOIN | KIND_LEAVE if version != FORMAT_VERSION_1 => {
                return Err("a join or leave in version 2");
            }
            KIND_JOIN => Record::Join {
                room,
                name: name.ok_or("a join with no name")?,
                ts_millis,
            },
            KIND_LEAVE => Record::Leave {
                room,
                name: name.ok_or("a leave with no name")?,
                ts_millis,
            },
            _ => return Err("unknown record kind"),
        };
        if !reader.0.is_empty() {
            return Err("bytes after the record");
        }
        Ok(record)
    }
}

/// A cursor over a record's plaintext.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], &'static str> {
        if len > self.0.len() {
            return Err("record too short");
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.array::<1>()?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or("record too short")?;
        self.0 = rest;
        Ok(*head)
    }
}
