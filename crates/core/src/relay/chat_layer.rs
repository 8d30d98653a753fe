//! The chat layer inside the relay: rooms, presence, the `/` commands,
//! history on joining, flood control, and what each connection is told.
//!
//! A connection is in a room from the start: with a shared key from when
//! it is admitted (it hears the room at once), or with `require_proof`
//! from its first frame that opens; in members mode from when it
//! identifies, in session mode from its welcome. Until then it is sent
//! nothing. Its first frame that opens is its arrival: it is sent
//! the room's history from before it came, and, if it has a name (a
//! member's, or one taken with `/nick`), the room is told it joined. A
//! shared-key connection with no name is never announced.
//!
//! The commands themselves are applied in `apply/`, one file each.
//!
//! Replies, notices and private messages are sealed for each connection
//! they go to (once per form for a room with a shared key); room messages
//! take the batch path of `fanout.rs`. A connection that said `/hello
//! eaxchat/1` gets [`eaxchat_proto::events`]' JSON form, the others plain
//! text. The chat layer never reads a clock (its timestamps count from the
//! wall clock the relay was started with), and never tells a connection
//! that is closing anything.

use std::collections::HashMap;
use std::io::Write;

use bytes::{Bytes, BytesMut};

use super::batch::Batch;
use super::membership::MemberMemory;
use super::scrollback::HistoryRequest;
use super::{CloseReason, ConnId, Mode, Peer, Relay};
use crate::cluster::envelope::Change;
use crate::delivery::DeliveryService;
use crate::flood::{Bucket, Rate};
use crate::history::{Entry, EntryKind};
use crate::outbox::Frames;
use crate::record::Record;
use crate::rooms::{RoomId, Rooms, RoomsConfig};
use eaxchat_proto::commands::{self, Input, RoomName};
use eaxchat_proto::events::Event;
use eaxchat_proto::name::Name;

/// The longest text `/me` and `/msg` take, in bytes: a chat line, with
/// room to spare for its JSON form in one frame.
pub const MAX_COMMAND_TEXT: usize = 4096;

/// How the chat layer is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatConfig {
    /// Rooms and their history.
    pub rooms: RoomsConfig,
    /// Flood control, or none.
    pub rate: Option<Rate>,
    /// Whether rooms are told who joins and leaves (`--presence`).
    pub presence: bool,
    /// Whether room messages, joins and leaves are kept for the message
    /// log ([`Relay::take_log_records`]).
    pub log: bool,
}

impl ChatConfig {
    /// No history and no presence notices, the rest as default: for tests
    /// and fuzz targets whose models count every frame a client gets.
    pub fn quiet() -> ChatConfig {
        ChatConfig {
            rooms: RoomsConfig {
                history_entries: 0,
                ..RoomsConfig::default()
            },
            presence: false,
            ..ChatConfig::default()
        }
    }
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig {
            rooms: RoomsConfig::default(),
            rate: None,
            presence: true,
            log: false,
        }
    }
}

/// One connection's place in the chat.
#[derive(Debug, Default)]
pub(super) struct Chat {
    /// Its current room: where its text goes.
    pub(super) room: Option<RoomId>,
    /// Every room it is in, in the order it joined them
    /// (`membership.rs`).
    pub(super) rooms: Vec<RoomId>,
    /// The first room it entered, and the id of the first message said
    /// there after: its history before that is owed at arrival.
    pub(super) owed: Option<(RoomId, u64)>,
    /// It asked for structured events.
    pub(super) events: bool,
    /// Its first frame was handled.
    pub(super) arrived: bool,
    /// It was told it is flooding, and has not sent since.
    warned: bool,
    /// Shared-key mode: the name it took with `/nick`.
    pub(super) nick: Option<Box<Name>>,
    bucket: Option<Box<Bucket>>,
}

/// The chat layer's share of the relay.
pub(super) struct ChatState {
    pub(super) rooms: Rooms,
    rate: Option<Rate>,
    pub(super) presence: bool,
    /// Records for the message log, taken by the caller; `None` when no
    /// log is kept.
    log: Option<Vec<Record>>,
    /// Shared-key mode: the names taken with `/nick`, and by whom.
    pub(super) nicks: HashMap<Name, ConnId>,
    /// Members' remembered rooms (`membership.rs`).
    pub(super) members: MemberMemory,
    /// Whether pages older than the history are asked of the caller.
    pub(super) log_paging: bool,
    /// Pages for the caller to read from the message log.
    pub(super) history_requests: Vec<HistoryRequest>,
    /// End-to-end rooms' groups (`e2e.rs`).
    pub(super) delivery: DeliveryService,
    /// Scratch for one event's plaintext.
    pub(super) scratch: Vec<u8>,
}

impl ChatState {
    pub(super) fn new(config: ChatConfig) -> ChatState {
        ChatState {
            rooms: Rooms::new(config.rooms),
            rate: config.rate,
            presence: config.presence,
            log: config.log.then(Vec::new),
            nicks: HashMap::new(),
            members: MemberMemory::default(),
            log_paging: false,
            history_requests: Vec::new(),
            delivery: DeliveryService::default(),
            scratch: Vec::new(),
        }
    }

    fn log(&mut self, record: impl FnOnce() -> Record) {
        if let Some(log) = &mut self.log {
            log.push(record());
        }
    }
}

impl<T: Write> Relay<T> {
    /// Sets up the chat layer: rooms, flood control, and whether records
    /// are kept for the message log. Call before admitting anyone.
    pub fn set_chat(&mut self, config: ChatConfig) {
        self.chat = ChatState::new(config);
    }

    /// Puts the messages of `records` (read from the message log, oldest
    /// first) back in their rooms' history, each at the id its record
    /// carries (one of the old format, with none, takes its room's next).
    pub fn restore_history<'r>(&mut self, records: impl IntoIterator<Item = &'r Record>) {
        for record in records {
            if let Some((room, entry)) = record.history_entry() {
                // A room whose log holds group messages is end-to-end, even
                // if the Delivery Service's state was lost: it never takes
                // text.
                if entry.kind == EntryKind::Mls {
                    self.chat.delivery.make_room(room);
                }
                self.chat.rooms.restore(room, record.id(), entry);
            }
        }
    }

    /// Moves the records for the message log made since the last call
    /// into `out`.
    pub fn take_log_records(&mut self, out: &mut Vec<Record>) {
        if let Some(log) = &mut self.chat.log {
            out.append(log);
        }
    }

    /// The rooms.
    pub fn rooms(&self) -> &Rooms {
        &self.chat.rooms
    }

    /// The time as the relay's clock has it, in Unix milliseconds.
    pub(super) fn wall_millis(&self) -> u64 {
        let since = self.now.saturating_duration_since(self.epoch);
        self.epoch_wall_millis + since.as_millis() as u64
    }

    /// The name connection `id` goes by: its member's, or its `/nick`.
    pub(super) fn name_of(&self, id: ConnId) -> Option<&Name> {
        let peer = self.peers.get(id)?;
        match &self.mode {
            Mode::Members(roster) => roster.name(peer.member?),
            Mode::Sessions(roster) => roster.name(peer.member?),
            Mode::Shared(_) => peer.chat.nick.as_deref(),
        }
    }

    /// Tells room `room` that `name` joined or left, and logs it.
    pub(super) fn announce(
        &mut self,
        room: RoomId,
        name: &Name,
        joined: bool,
        except: Option<ConnId>,
    ) {
        let Some(room_name) = self.chat.rooms.get(room).map(|room| room.name().clone()) else {
            return;
        };
        let count = self.people_in(room, &room_name);
        let ts = self.wall_millis();
        let change = if joined { Change::Joined } else { Change::Left };
        self.publish_presence(&room_name, name, change);
        if self.chat.presence {
            self.tell_room(
                room,
                except,
                &Event::Presence {
                    room: &room_name,
                    name,
                    count,
                    ts,
                    joined,
                },
            );
        }
        self.chat.log(|| {
            let (room, name) = (room_name, name.clone());
            if joined {
                Record::Join {
                    room,
                    name,
                    ts_millis: ts,
                }
            } else {
                Record::Leave {
                    room,
                    name,
                    ts_millis: ts,
                }
            }
        });
    }

    /// `id`'s first frame was handled: it is sent the history it is owed
    /// in each of its rooms and, with a name, announced to them.
    pub(super) fn arrive(&mut self, id: ConnId) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        if peer.chat.arrived {
            return;
        }
        peer.chat.arrived = true;
        let (rooms, owed) = (peer.chat.rooms.clone(), peer.chat.owed);
        let name = self.name_of(id).cloned();
        for room in rooms {
            let before = match owed {
                Some((first, said)) if first == room => said,
                _ => u64::MAX,
            };
            self.send_history(id, room, before);
            if let Some(name) = &name {
                self.announce(room, name, true, Some(id));
            }
        }
    }

    /// A message `from` sent for its room, just opened (its `//` escape
    /// already undone): whether it may go. It may unless flood control
    /// holds it back; if it goes it is kept in the room's history.
    pub(super) fn take_message(&mut self, from: ConnId, text: &[u8]) -> bool {
        self.arrive(from);
        self.flood_allows(from) && self.keep_message(from, text)
    }

    /// A message `from` sent, let go by flood control: kept in its
    /// current room's history, or refused if it is in no room.
    pub(super) fn keep_message(&mut self, from: ConnId, text: &[u8]) -> bool {
        let Some(room) = self.peers.get(from).and_then(|peer| peer.chat.room) else {
            self.send_event(
                from,
                &Event::error("error: you are in no room; /join one (that message was not sent)"),
            );
            return false;
        };
        if self.refuse_in_e2e(from, room) {
            return false;
        }
        self.remember(from, text, EntryKind::Message);
        true
    }

    /// A frame `from` sent whose plaintext starts with a single `/`: the
    /// command is run, or its error sent back. `batch` holds what `from`
    /// sent before in this read: it is queued first, since a command may
    /// change where the rest goes.
    pub(super) fn take_command(&mut self, from: ConnId, text: &[u8], batch: &mut Batch) {
        let before = batch.take();
        self.queue_batch(from, &before);
        let first = !self.peers.get(from).is_some_and(|peer| peer.chat.arrived);
        if !first && !self.flood_allows(from) {
            return;
        }
        self.stats.commands += 1;
        match commands::parse(text, MAX_COMMAND_TEXT) {
            Ok(Input::Command(command)) => self.apply_command(from, command),
            Ok(Input::Text(_)) => {}
            Err(error) => self.send_event(from, &Event::error(&error.to_string())),
        }
        self.arrive(from);
    }

    /// Queues a batch of `from`'s messages for its room.
    pub(super) fn queue_batch(&mut self, from: ConnId, batch: &Batch) {
        if batch.count > 0 {
            self.stats.frames_in += batch.count as u64;
            self.queue_for_room(from, batch);
            self.publish_batch(from, batch);
        }
    }

    /// Sends `to` an error about room `room` (or none).
    pub(super) fn room_error(&mut self, to: ConnId, room: Option<&RoomName>, text: &str) {
        self.send_event(to, &Event::Error { room, text });
    }

    /// Whether `room` is end-to-end, so that `from`'s text may not go
    /// there; `from` is told why.
    pub(super) fn refuse_in_e2e(&mut self, from: ConnId, room: RoomId) -> bool {
        if !self.is_e2e(room) {
            return false;
        }
        let name = self.chat.rooms.get(room).map(|r| r.name().clone());
        let text = "error: that room is end-to-end: only your client's group messages \
                    (/mls) go there, never text the relay could read";
        self.send_event(
            from,
            &Event::Error {
                room: name.as_ref(),
                text,
            },
        );
        true
    }

    /// Takes a token from `from`'s bucket; when there is none, tells it
    /// (once until it sends again in time) and counts the frame refused.
    pub(super) fn flood_allows(&mut self, from: ConnId) -> bool {
        let Some(rate) = self.chat.rate else {
            return true;
        };
        let now = self.now;
        let Some(peer) = self.peers.get_mut(from) else {
            return false;
        };
        let bucket = peer
            .chat
            .bucket
            .get_or_insert_with(|| Box::new(Bucket::full(rate, now)));
        if bucket.take(rate, now) {
            peer.chat.warned = false;
            return true;
        }
        self.stats.flood_refused += 1;
        if !std::mem::replace(&mut peer.chat.warned, true) {
            let text = format!(
                "error: slow down: at most {} messages a second, in bursts of {}; \
                 that message was not sent",
                rate.per_second, rate.burst
            );
            self.send_event(from, &Event::error(&text));
        }
        false
    }

    /// Keeps a room message of `from`'s in its room's history and the log.
    pub(super) fn remember(&mut self, from: ConnId, text: &[u8], kind: EntryKind) {
        let Some(room) = self.peers.get(from).and_then(|peer| peer.chat.room) else {
            return;
        };
        let (sender, ts) = (self.name_of(from).cloned(), self.wall_millis());
        self.remember_in(room, sender, text, kind, ts);
    }

    /// Keeps a message `sender` said in `room` at `ts` in the room's
    /// history and the log.
    pub(super) fn remember_in(
        &mut self,
        room: RoomId,
        sender: Option<Name>,
        text: &[u8],
        kind: EntryKind,
        ts: u64,
    ) {
        let keep = self.chat.log.is_some() || self.chat.rooms.config().history_entries > 0;
        if !keep {
            self.chat.rooms.count_said(room);
            return;
        }
        let entry = Entry {
            sender,
            text: text.into(),
            ts_millis: ts,
            kind,
        };
        if let Some((room_name, said)) = self
            .chat
            .rooms
            .get(room)
            .map(|room| (room.name().clone(), room.said()))
        {
            self.chat.log(|| Record::Message {
                room: room_name,
                sender: entry.sender.clone(),
                text: entry.text.clone(),
                ts_millis: entry.ts_millis,
                kind,
                id: Some(said),
            });
        }
        self.chat.rooms.remember(room, entry);
    }

    /// Shared-key mode: lets go of `id`'s `/nick`.
    pub(super) fn drop_nick(&mut self, id: ConnId, peer: &Peer<T>) {
        if let Some(nick) = &peer.chat.nick
            && self.chat.nicks.get(&**nick) == Some(&id)
        {
            self.chat.nicks.remove(&**nick);
        }
    }

    /// Sends one event to connection `id`, in the form it asked for,
    /// sealed under its key.
    pub(super) fn send_event(&mut self, id: ConnId, event: &Event<'_>) {
        let mut plaintext = std::mem::take(&mut self.chat.scratch);
        plaintext.clear();
        if let Some(peer) = self.peers.get(id)
            && peer.closing.is_none()
        {
            if peer.chat.events {
                event.json(&mut plaintext);
            } else {
                event.plain(&mut plaintext);
            }
            self.deliver(id, &plaintext, None);
        }
        self.chat.scratch = plaintext;
    }

    /// Sends `event` to everyone in room `room` but `except`: with a
    /// shared key each form is sealed once for all.
    pub(super) fn tell_room(&mut self, room: RoomId, except: Option<ConnId>, event: &Event<'_>) {
        let Some(conns) = self.chat.rooms.get(room).map(|room| room.conns().to_vec()) else {
            return;
        };
        let (mut plain, mut json) = (Vec::new(), Vec::new());
        event.plain(&mut plain);
        event.json(&mut json);
        let (mut plain_frame, mut json_frame) = (None, None);
        for id in conns {
            if Some(id) == except {
                continue;
            }
            let Some(peer) = self.peers.get(id) else {
                continue;
            };
            if peer.closing.is_some() {
                continue;
            }
            let (text, frame) = if peer.chat.events {
                (&json, &mut json_frame)
            } else {
                (&plain, &mut plain_frame)
            };
            let shared = matches!(self.mode, Mode::Shared(_)) && peer.paced.is_none();
            if shared {
                self.deliver(id, text, Some(frame));
            } else {
                self.deliver(id, text, None);
            }
        }
    }

    /// Queues `plaintext` for `id`: pushed to its pacing if it is a seed
    /// receiver, else sealed under its key (or `shared`'s frame reused,
    /// sealed at its first use) and queued.
    fn deliver(&mut self, id: ConnId, plaintext: &[u8], shared: Option<&mut Option<Bytes>>) {
        let (now, gap, max_queue) = (self.now, self.seed_write_gap, self.limits.max_queue);
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let queued = if let Some(paced) = peer.paced.as_mut() {
            let mut joined = BytesMut::new();
            let mut lens = Vec::new();
            eaxchat_proto::seed::push_message(&mut joined, &mut lens, plaintext);
            paced.push(&joined, &lens);
            if paced.waiting_bytes() + peer.outbox.queued_bytes() > max_queue {
                self.slow_seed(id);
                return;
            }
            super::fanout::queue_paced_in(&mut self.mode, peer, now, gap)
        } else {
            let frame = match (shared, &mut self.mode) {
                (Some(slot), Mode::Shared(cipher)) => slot
                    .get_or_insert_with(|| {
                        let mut out = BytesMut::new();
                        cipher.seal_into(plaintext, &mut out);
                        out.freeze()
                    })
                    .clone(),
                (_, Mode::Shared(cipher)) => {
                    let mut out = BytesMut::new();
                    cipher.seal_into(plaintext, &mut out);
                    out.freeze()
                }
                (_, Mode::Members(roster)) => {
                    let Some(mut sealer) = peer.member.and_then(|seat| roster.sealer(seat)) else {
                        return;
                    };
                    let mut out = BytesMut::new();
                    eaxchat_proto::cipher::Seal::seal_into(&mut sealer, plaintext, &mut out);
                    out.freeze()
                }
                (_, Mode::Sessions(roster)) => {
                    let Some(session) = peer.session.established() else {
                        return;
                    };
                    let mut out = BytesMut::new();
                    if roster
                        .seal_into(&mut session.sealer, plaintext, &mut out)
                        .is_err()
                    {
                        return;
                    }
                    out.freeze()
                }
            };
            peer.outbox.push(Frames::one(frame));
            true
        };
        if queued && let Some(peer) = self.peers.get_mut(id) {
            let mut fan_out = self.sweep.fan_out();
            fan_out.queued(id, &mut peer.place);
            fan_out.finish(&self.peers);
        }
    }

    /// A seed receiver whose waiting messages passed `--max-queue`.
    pub(super) fn slow_seed(&mut self, id: ConnId) {
        if let Some(peer) = self.peers.get_mut(id) {
            peer.paced = Some(Box::default());
            peer.outbox.clear();
            self.stats.slow_consumers += 1;
            if peer.closing.is_none() {
                peer.closing = Some(CloseReason::SlowConsumer);
                self.closing.push(id);
            }
        }
    }
}
