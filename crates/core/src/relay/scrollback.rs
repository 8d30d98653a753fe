//! History on demand: the burst a connection gets when it comes into a
//! room, and the pages it asks for with `/history BEFORE LIMIT`, like
//! IRCv3's `CHATHISTORY BEFORE`.
//!
//! Every message said in a room gets the next id of that room on this
//! relay (0, 1, 2 …; `Room::said`), shown in its `eaxchat/1` form, and the
//! message log keeps that id with it; ids only go up, and may skip where
//! the log lost records or a forgotten room's count was let go. A page
//! is the newest `LIMIT` messages with an id below `BEFORE`, oldest first.
//! It is answered from the room's bounded history when that holds it. When
//! it reaches further back and the caller keeps the message log
//! ([`Relay::set_log_paging`]), it becomes a [`HistoryRequest`] for the
//! caller, which reads the log and hands the entries back
//! ([`Relay::answer_history`]): the core never touches a file. A page is
//! at most [`MAX_HISTORY_PAGE`] messages, and each request is a command,
//! so flood control counts it.

use std::io::Write;

use super::{ConnId, Relay};
use crate::history::{Entry, EntryKind};
use crate::rooms::RoomId;
use eaxchat_proto::commands::{MAX_HISTORY_PAGE, RoomName};
use eaxchat_proto::events::Event;

/// A page of history the caller is to read from the message log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    /// Who asked.
    pub conn: ConnId,
    /// Its admission number: the answer is dropped if `conn` is now
    /// someone else.
    pub serial: u64,
    /// Which room.
    pub room: RoomName,
    /// Only messages with a smaller id.
    pub before: u64,
    /// At most this many, the newest of them.
    pub limit: usize,
}

impl<T: Write> Relay<T> {
    /// Says whether the caller answers pages older than the rooms'
    /// history from the message log ([`Relay::take_history_requests`]).
    pub fn set_log_paging(&mut self, on: bool) {
        self.chat.log_paging = on;
    }

    /// Moves the pages to be read from the message log into `out`.
    pub fn take_history_requests(&mut self, out: &mut Vec<HistoryRequest>) {
        out.append(&mut self.chat.history_requests);
    }

    /// The caller's answer to `request`: `entries` are `(id, entry)`,
    /// oldest first, with ids below `request.before`; `first` when the
    /// oldest of them is the room's first message. Dropped if the
    /// connection is gone or is no longer in the room.
    pub fn answer_history(
        &mut self,
        request: &HistoryRequest,
        entries: Vec<(u64, Entry)>,
        first: bool,
    ) {
        let Some(peer) = self.peers.get(request.conn) else {
            return;
        };
        let Some(room) = self.chat.rooms.find(&request.room) else {
            return;
        };
        if peer.serial != request.serial || !self.is_in(request.conn, room) {
            return;
        }
        let mut entries: Vec<(u64, Entry)> = entries
            .into_iter()
            .filter(|(id, _)| *id < request.before)
            .collect();
        let extra = entries
            .len()
            .saturating_sub(request.limit.min(MAX_HISTORY_PAGE));
        entries.drain(..extra);
        self.send_page(request.conn, &request.room, &entries, true, first);
    }

    /// `/history`: the page of `from`'s current room before `before`.
    pub(super) fn history_page(&mut self, from: ConnId, before: Option<u64>, limit: usize) {
        let Some(room) = self.peers.get(from).and_then(|peer| peer.chat.room) else {
            self.send_event(from, &Event::error("error: you are in no room; /join one"));
            return;
        };
        let Some((name, first_kept, said)) = self
            .chat
            .rooms
            .get(room)
            .map(|r| (r.name().clone(), r.first_kept(), r.said()))
        else {
            return;
        };
        let limit = limit.min(MAX_HISTORY_PAGE);
        let before = before.unwrap_or(said).min(said);
        let start = before.saturating_sub(limit as u64);
        if start < first_kept && self.chat.log_paging && limit > 0 {
            let serial = self.peers.get(from).map_or(0, |peer| peer.serial);
            self.chat.history_requests.push(HistoryRequest {
                conn: from,
                serial,
                room: name,
                before,
                limit,
            });
            return;
        }
        let entries = self.kept_page(room, before, limit);
        let oldest = entries.first().map_or(before, |(id, _)| *id);
        let first = oldest == 0 || !self.chat.log_paging && oldest <= first_kept;
        self.send_page(from, &name, &entries, true, first);
    }

    /// Sends `id` room `room`'s history said before message `before`: the
    /// burst on coming in.
    pub(super) fn send_history(&mut self, id: ConnId, room: RoomId, before: u64) {
        let Some((name, first_kept)) = self
            .chat
            .rooms
            .get(room)
            .map(|r| (r.name().clone(), r.first_kept()))
        else {
            return;
        };
        let entries = self.kept_page(room, before, usize::MAX);
        if entries.is_empty() {
            return;
        }
        let first = first_kept == 0 || !self.chat.log_paging;
        self.send_page(id, &name, &entries, false, first);
    }

    /// The kept entries of `room` before `before`, at most `limit`, with
    /// their ids.
    fn kept_page(&self, room: RoomId, before: u64, limit: usize) -> Vec<(u64, Entry)> {
        let Some(room) = self.chat.rooms.get(room) else {
            return Vec::new();
        };
        let (start, entries) = room.page(before, limit);
        (start..).zip(entries.cloned()).collect()
    }

    /// Sends `id` a `history` event and its messages.
    fn send_page(
        &mut self,
        id: ConnId,
        room: &RoomName,
        entries: &[(u64, Entry)],
        page: bool,
        first: bool,
    ) {
        let stamped = self.is_members();
        self.send_event(
            id,
            &Event::HistoryStart {
                room,
                count: entries.len(),
                page,
                first,
            },
        );
        for (message, entry) in entries {
            if entry.kind == EntryKind::Mls {
                self.send_event(
                    id,
                    &Event::Mls {
                        room,
                        from: entry.sender.as_ref(),
                        data: &entry.text,
                        ts: entry.ts_millis,
                        id: Some(*message),
                        history: true,
                    },
                );
                continue;
            }
            self.send_event(
                id,
                &Event::Message {
                    room,
                    from: entry.sender.as_ref(),
                    text: &entry.text,
                    ts: entry.ts_millis,
                    history: true,
                    action: entry.kind == EntryKind::Action,
                    stamped,
                    id: *message,
                },
            );
        }
    }
}
