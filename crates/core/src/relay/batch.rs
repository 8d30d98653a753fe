//! One read's messages: each frame opened and checked against replays (in
//! session mode, by its session's counter) and its plaintext kept in the
//! form plain-text clients get (stamped with its sender's name in members
//! and session mode), to be sealed again and queued as one run.
//!
//! A frame is opened into a [`Pending`] message first: the relay then
//! decides whether it is text for the room ([`Batch::commit`]), a command
//! or a refused one ([`Batch::discard`]). A batch never queues anything
//! for a connection: that is `fanout.rs`'s.

use bytes::BytesMut;

use super::FrameRefusal;
use super::receive::{FrameError, check_replay};
use crate::history::EntryKind;
use crate::roster::{Roster, Seat};
use crate::session_roster::SessionRoster;
use eaxchat_proto::cipher::{Cipher, Seal};
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::events::Event;
use eaxchat_proto::name::Name;
use eaxchat_proto::replay::{ReplayWindow, Replayed};
use eaxchat_proto::session::Opener;
use eaxchat_proto::wire;

/// The messages taken from one read of one sender, gathered to be queued
/// as one run for its room.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) count: usize,
    /// A frame opened (in members mode, maybe only an empty one).
    pub(super) opened: bool,
    /// Each message's plain form followed by `\n`, and their lengths
    /// (without the `\n`), as seed receivers take them.
    pub(super) plaintexts: BytesMut,
    pub(super) lens: Vec<usize>,
    /// Where each message's text starts in its plain form: the length of
    /// the sender's stamp (0 with a shared key).
    pub(super) text_start: usize,
    /// When the read came, for structured events and history.
    pub(super) ts: u64,
    /// What its messages are: text, or an end-to-end room's group
    /// messages (their text the base64 they came as).
    pub(super) kind: EntryKind,
}

/// A frame opened onto the end of [`Batch::plaintexts`], not yet taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pending {
    start: usize,
    /// The plain form's length, without the `\n`; 0 for a members-mode
    /// frame with an empty plaintext, which only identifies.
    len: usize,
}

impl Batch {
    /// An empty batch for a read at `ts`.
    pub(super) fn new(ts: u64) -> Batch {
        Batch {
            ts,
            ..Batch::default()
        }
    }

    /// Hands over the messages gathered so far, leaving this batch empty
    /// but still knowing a frame opened.
    pub(super) fn take(&mut self) -> Batch {
        let opened = self.opened;
        let taken = std::mem::replace(self, Batch::new(self.ts));
        self.opened = opened;
        self.text_start = taken.text_start;
        taken
    }

    /// Opens `line`, refuses it if it is a replay under key index `key`
    /// ([`check_replay`]), and appends its plaintext as pending. A frame
    /// refused leaves the batch as it was.
    pub(super) fn open_shared(
        &mut self,
        cipher: &mut Cipher,
        replays: &mut ReplayWindow,
        key: u32,
        line: &[u8],
    ) -> Result<Pending, FrameError> {
        let opened = cipher.open_frame(line).map_err(FrameError::Open)?;
        check_replay(cipher, replays, key, &opened.nonce)
            .map_err(|Replayed| FrameError::Replayed)?;
        Ok(self.push_shared(cipher.plaintext(&opened)))
    }

    /// [`Batch::open_shared`] for a line already opened ahead
    /// ([`OpenedLines`]): its `nonce` checked against replays, its
    /// `plaintext` appended as pending.
    ///
    /// [`OpenedLines`]: eaxchat_proto::opened_lines::OpenedLines
    pub(super) fn take_shared(
        &mut self,
        cipher: &Cipher,
        replays: &mut ReplayWindow,
        key: u32,
        (nonce, plaintext): ([u8; wire::NONCE_LEN], &[u8]),
    ) -> Result<Pending, FrameError> {
        check_replay(cipher, replays, key, &nonce).map_err(|Replayed| FrameError::Replayed)?;
        Ok(self.push_shared(plaintext))
    }

    /// Appends a shared-key frame's `plaintext`, opened and checked, as
    /// pending.
    fn push_shared(&mut self, plaintext: &[u8]) -> Pending {
        self.opened = true;
        let start = self.plaintexts.len();
        self.plaintexts.extend_from_slice(plaintext);
        self.plaintexts.extend_from_slice(b"\n");
        Pending {
            start,
            len: self.plaintexts.len() - 1 - start,
        }
    }

    /// Members mode: opens `line` under `seat`'s key and appends its
    /// plaintext, stamped with the member's name, as pending; an empty
    /// plaintext appends nothing (it only identifies). A replay
    /// ([`check_replay`], under the member's replay key) is refused and
    /// leaves the batch as it was.
    pub(super) fn open_member(
        &mut self,
        roster: &mut Roster,
        replays: &mut ReplayWindow,
        seat: Seat,
        line: &[u8],
    ) -> Result<Pending, FrameError> {
        let start = self.plaintexts.len();
        let stamped = roster
            .open_stamped(seat, line, &mut self.plaintexts)
            .map_err(FrameError::Open)?;
        if roster.is_own_nonce(&stamped.nonce)
            || replays
                .check_and_insert(stamped.replay_key, &stamped.nonce)
                .is_err()
        {
            self.plaintexts.truncate(start);
            return Err(FrameError::Replayed);
        }
        self.opened = true;
        self.text_start = roster.stamp_len(seat);
        Ok(Pending {
            start,
            len: stamped.len,
        })
    }

    /// Session mode: opens `line` with the sender's `opener` and appends
    /// its plaintext, stamped with member `seat`'s name, as pending; an
    /// empty plaintext appends nothing (it only arrives). The counter is
    /// the replay check. A frame refused leaves the batch as it was, and
    /// the opener's counter where it was.
    pub(super) fn open_session(
        &mut self,
        roster: &mut SessionRoster,
        opener: &mut Opener,
        seat: Seat,
        line: &[u8],
    ) -> Result<Pending, FrameError> {
        let start = self.plaintexts.len();
        let len = roster
            .open_stamped(seat, opener, line, &mut self.plaintexts)
            .map_err(|error| FrameError::Session(FrameRefusal::of(&error)))?;
        self.opened = true;
        self.text_start = roster.stamp_len(seat);
        Ok(Pending { start, len })
    }

    /// Whether `pending` only identifies: members mode, empty plaintext.
    pub(super) fn identifies_only(&self, pending: Pending) -> bool {
        pending.len == 0 && self.plaintexts.len() == pending.start
    }

    /// The text of a pending message: its plaintext, without the stamp.
    pub(super) fn text(&self, pending: Pending) -> &[u8] {
        let end = pending.start + pending.len;
        let start = (pending.start + self.text_start).min(end);
        self.plaintexts.get(start..end).unwrap_or_default()
    }

    /// Drops a pending message.
    pub(super) fn discard(&mut self, pending: Pending) {
        self.plaintexts.truncate(pending.start);
    }

    /// Drops the first byte of a pending message's text: the escape of
    /// `//`.
    pub(super) fn unescape(&mut self, pending: &mut Pending) {
        let at = pending.start + self.text_start;
        if pending.len > self.text_start {
            let end = self.plaintexts.len();
            self.plaintexts.copy_within(at + 1..end, at);
            self.plaintexts.truncate(end - 1);
            pending.len -= 1;
        }
    }

    /// Takes a pending message as one to relay.
    pub(super) fn commit(&mut self, pending: Pending) {
        self.lens.push(pending.len);
        self.count += 1;
    }

    /// A message with its stamp: `stamp` and `text` taken as one to relay,
    /// like a committed one. Every message of a batch has the same stamp
    /// ([`Batch::text_start`]).
    pub(super) fn push_stamped(&mut self, stamp: &[u8], text: &[u8]) {
        let start = self.plaintexts.len();
        self.plaintexts.extend_from_slice(stamp);
        self.plaintexts.extend_from_slice(text);
        let len = self.plaintexts.len() - start;
        self.plaintexts.extend_from_slice(b"\n");
        self.text_start = stamp.len();
        self.lens.push(len);
        self.count += 1;
    }

    /// Each message's text (its plain form without the stamp), in order,
    /// as room messages.
    pub(super) fn texts(&self) -> Vec<(EntryKind, &[u8])> {
        let mut texts = Vec::with_capacity(self.lens.len());
        let mut start = 0;
        for &len in &self.lens {
            let plain = self.plaintexts.get(start..start + len).unwrap_or_default();
            let text = plain.get(self.text_start..).unwrap_or_default();
            texts.push((EntryKind::Message, text));
            start += len + 1;
        }
        texts
    }

    /// Bytes the kept plaintexts take sealed, as lines.
    pub(super) fn sealed_len(&self) -> usize {
        self.lens
            .iter()
            .map(|&len| wire::encoded_len(len) + 1)
            .sum()
    }

    /// Seals every message's plain form, as a line each, into `out`.
    pub(super) fn seal_plaintexts(&self, sealer: &mut impl Seal, out: &mut BytesMut) {
        sealer.seal_joined(&self.plaintexts, &self.lens, out);
    }

    fn each_plain(&self, mut each: impl FnMut(&[u8])) {
        let mut start = 0;
        for &len in &self.lens {
            if let Some(plain) = self.plaintexts.get(start..start + len) {
                each(plain);
            }
            start += len + 1;
        }
    }

    /// Every message's `eaxchat/1` form (a `msg` event), as `\n`-joined
    /// plaintexts and their lengths, the shape [`Batch::plaintexts`] has.
    /// `first_id` is the first message's id in its room.
    pub(super) fn events(
        &self,
        room: &RoomName,
        from: Option<&Name>,
        first_id: u64,
    ) -> (BytesMut, Vec<usize>) {
        let mut out = Vec::new();
        let mut lens = Vec::with_capacity(self.lens.len());
        let mut id = first_id;
        self.each_plain(|plain| {
            let start = out.len();
            let text = plain.get(self.text_start..).unwrap_or_default();
            let event = match self.kind {
                EntryKind::Mls => Event::Mls {
                    room,
                    from,
                    data: text,
                    ts: self.ts,
                    id: Some(id),
                    history: false,
                },
                EntryKind::Message | EntryKind::Action => Event::Message {
                    room,
                    from,
                    text,
                    ts: self.ts,
                    history: false,
                    action: false,
                    stamped: false,
                    id,
                },
            };
            event.json(&mut out);
            id += 1;
            lens.push(out.len() - start);
            out.push(b'\n');
        });
        (BytesMut::from(&out[..]), lens)
    }
}
