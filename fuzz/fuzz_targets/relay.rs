//! Fuzz target `relay`: a script of client actions (connect, send valid
//! frames, send garbage, stall mid-line, read slowly, wait, break,
//! disconnect) driven against the sans-io `Relay` the server runs, with
//! in-memory sockets that take only as many bytes as their reader has room
//! for, and a fake clock the script moves.
//!
//! After every action the harness does what the server's loop does (tell
//! the relay the time, run its timers, flush connections with new frames,
//! remove those marked closing) and checks the relay against a model: every
//! valid frame from a well-behaved client reaches every other connected
//! client exactly once and in order; nothing else reaches anyone; every
//! close has the reason the model predicts; a connection over
//! `max_clients` is refused.
//!
//! A newline client gets one message per line. After each turn's flush its
//! queue holds exactly the bytes not yet read and never more than
//! `max_queue`, and it is dropped as slow exactly when that flush leaves
//! more than `max_queue` unread (the relay judges after the flush, so a
//! consumer that keeps up is never blamed for a burst).
//!
//! A notebook client (no `\n`, its frames joined in one send) that had a
//! frame taken is a seed receiver: each frame it is sent is split on `\n`
//! into the messages it carries, which must be the ones owed, in order. A
//! frame carrying more than one message fits one `recv(4096)`; each frame's
//! first byte is written at least the seed write gap after the last byte of
//! the one before; nothing waits for it once it has received all it is
//! owed; its queue and its waiting messages stay within `max_queue`, and it
//! is dropped as slow only when what it is owed, sealed, passes
//! `max_queue`. (The first-frame deadline is set beyond any script's
//! clock: it is the `preauth` tests' concern.)

#![no_main]

use std::cell::Cell;
use std::collections::HashSet;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use arbitrary::Arbitrary;
use bytes::BytesMut;
use eaxchat_core::relay::{ChatConfig, CloseReason, ConnId, Limits, Relay};
use eaxchat_proto::cipher::{Cipher, OpenError};
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::key::Key;
use eaxchat_proto::name::Name;
use eaxchat_proto::seed::SEED_READ_LEN;
use eaxchat_proto::wire::encoded_len;
use libfuzzer_sys::fuzz_target;

// What a client sends, and what the model expects of it: the half of the
// harness that plans bytes (kept apart so each file reads in one sitting).
#[path = "relay/send.rs"]
mod send;
// The rooms each client is in, and what it is told in them.
#[path = "relay/rooms.rs"]
mod rooms;
// The `/` commands a script sends, and what each does.
#[path = "relay/commands.rs"]
mod commands;
// What a client read, checked against what it is owed.
#[path = "relay/received.rs"]
mod received;
use received::check_received;

const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

/// Base64 characters that carry only nonce bits: 21 × 6 = 126 of its 128.
const NONCE_CHARS: usize = 21;

#[derive(Arbitrary, Debug)]
struct Script {
    max_frame: u16,
    max_queue: u16,
    max_clients: u8,
    pre_auth_budget: u16,
    seed_write_gap_ms: u8,
    actions: Vec<Action>,
}

/// What one client does. `client` picks one of the connected clients.
#[derive(Arbitrary, Debug)]
enum Action {
    /// Connects; `newline: false` is the notebook client, whose frames never
    /// end in `\n`; an `eager` client reads everything at once.
    Connect { newline: bool, eager: bool },
    /// Sends frames, all in two reads.
    Send(Burst),
    /// Sends one line (`line` up to its first `\n`) that does not open.
    Garbage { client: u8, line: Vec<u8> },
    /// Sends bytes without a `\n` and never finishes the line.
    Stall { client: u8, bytes: Vec<u8> },
    /// Reads up to `bytes` more: the relay may write that much.
    Read { client: u8, bytes: u16 },
    /// The socket breaks: every later write fails.
    Reset { client: u8 },
    /// Sends `/` command lines (`which` picks them, `arg` their room or
    /// number; `commands.rs`): an unknown command, `/me`, a `//` escaped
    /// text, `/nick`, `/hello eaxchat/1`, `/join`, `/part [ROOM]`,
    /// `/in ROOM` with text or a command after it, `/topic [TEXT]`,
    /// `/history BEFORE LIMIT`, or a run of joins past the cap on rooms.
    /// Only a newline client in good standing sends them.
    Command { client: u8, which: u8, arg: u8 },
    /// Hangs up.
    Disconnect { client: u8 },
    /// The clock moves on.
    Wait { ms: u8 },
}

/// Up to 8 valid frames with about `len` bytes of payload each (joined,
/// without terminators, for a notebook client), the last one changed if
/// `bad_last`, all sent in two reads cut at `split`.
#[derive(Arbitrary, Debug)]
struct Burst {
    client: u8,
    frames: u8,
    len: u16,
    crlf: bool,
    split: u16,
    bad_last: bool,
}

fuzz_target!(|script: Script| {
    let limits = Limits {
        max_frame: 16 + usize::from(script.max_frame) % 2048,
        max_queue: usize::from(script.max_queue) % 4096,
        max_clients: 1 + usize::from(script.max_clients) % 8,
        pre_auth_budget: 1 + usize::from(script.pre_auth_budget) % 8192,
        first_frame_timeout: Duration::from_secs(365 * 24 * 3600),
        ..Limits::default()
    };
    let gap = Duration::from_millis(1 + u64::from(script.seed_write_gap_ms) % 64);
    // Half the scripts run with `--max-rooms` 1 to 16, the others with
    // the default.
    let max_rooms = match script.max_clients / 8 {
        n @ 16.. => usize::from(n) - 15,
        _ => eaxchat_core::rooms::DEFAULT_MAX_ROOMS,
    };
    let mut harness = Harness::new(limits, gap, max_rooms);
    for action in script.actions {
        harness.apply(action);
        harness.end_turn();
    }
    harness.drain();
});

/// A client's socket as the relay sees it: takes at most `room` more bytes
/// (what its reader has caught up on), then would block. Remembers when
/// each write happened, on the harness's clock.
struct Sink {
    bytes: Vec<u8>,
    room: usize,
    broken: bool,
    clock: Rc<Cell<Instant>>,
    /// Where each write began in `bytes`, and when.
    writes: Vec<(usize, Instant)>,
}

impl Sink {
    /// When the byte at `at` was written.
    fn written_at(&self, at: usize) -> Instant {
        let later = self.writes.partition_point(|&(start, _)| start <= at);
        self.writes[later - 1].1
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let wanted: usize = bufs.iter().map(|buf| buf.len()).sum();
        if wanted > 0 && self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let start = self.bytes.len();
        for buf in bufs {
            let take = buf.len().min(self.room - (self.bytes.len() - start));
            self.bytes.extend_from_slice(&buf[..take]);
        }
        let written = self.bytes.len() - start;
        self.room -= written;
        if written > 0 {
            self.writes.push((start, self.clock.get()));
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the model says about a client's connection after this turn.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Open,
    Closed(CloseReason),
    /// It sent bytes the model does not follow: open, or closed for them.
    Hostile,
}

/// The model's view of one connected client.
struct Client {
    id: ConnId,
    serial: u32,
    newline: bool,
    /// Whether it has sent a `\n`, and whether its last frame was taken
    /// unterminated (so a `\n` right after it ends that frame).
    sent_newline: bool,
    took_frame: bool,
    next_seq: u32,
    /// Sent bytes that are not valid frames: nothing it sends is relayed.
    hostile: bool,
    /// A frame of its was taken: the pre-auth budget no longer applies.
    authenticated: bool,
    /// The relay holds it for a seed receiver now; and once did.
    seed: bool,
    was_seed: bool,
    /// Where its paced frames begin in its sink, while it is a seed
    /// receiver; and when the last one's last byte was written.
    paced_from: Option<usize>,
    last_paced: Option<Instant>,
    broken: bool,
    fate: Fate,
    /// Plaintexts it must receive, in order, and how many it has.
    expected: Vec<Vec<u8>>,
    received: usize,
    /// Bytes of frames queued for it, and of its sink already checked.
    queued_total: usize,
    parsed: usize,
    nonces: HashSet<[u8; NONCE_CHARS]>,
    /// The name it took with `/nick`.
    nick: Option<Name>,
    /// It said `/hello eaxchat/1`: it gets JSON events, and may sit in
    /// several rooms.
    events: bool,
    /// Its rooms, in the order it joined them, and where its text goes.
    rooms: Vec<RoomName>,
    current: Option<RoomName>,
}

struct Harness {
    relay: Relay<Sink>,
    limits: Limits,
    clients: Vec<Client>,
    next_serial: u32,
    /// Frames the relay must have taken, and frames written whole.
    frames_in: u64,
    frames_out: u64,
    /// Seals the clients' frames and opens what the relay sent.
    cipher: Cipher,
    clock: Rc<Cell<Instant>>,
    /// The relay's epoch: its wall clock there is `rooms::EPOCH_MILLIS`.
    start: Instant,
    seed_write_gap: Duration,
    rooms: rooms::RoomsModel,
}

impl Harness {
    fn new(limits: Limits, seed_write_gap: Duration, max_rooms: usize) -> Harness {
        let key = Key::from_bytes(&KEY).expect("a 16-byte key");
        let start = Instant::now();
        let mut relay = Relay::new(
            Cipher::with_nonce_seed(&key, [1; 32]),
            limits,
            start,
            SystemTime::UNIX_EPOCH + Duration::from_millis(rooms::EPOCH_MILLIS),
        );
        relay.set_seed_write_gap(seed_write_gap);
        // The model counts every frame: no history or join notices (the
        // commands a script sends are modelled one by one).
        let mut chat = ChatConfig::quiet();
        chat.rooms.max_rooms = max_rooms;
        relay.set_chat(chat);
        let clock = Rc::new(Cell::new(start));
        relay.set_now(clock.get());
        Harness {
            relay,
            limits,
            clients: Vec::new(),
            next_serial: 0,
            frames_in: 0,
            frames_out: 0,
            cipher: Cipher::with_nonce_seed(&key, [2; 32]),
            clock,
            start,
            seed_write_gap,
            rooms: rooms::RoomsModel::new(max_rooms),
        }
    }

    /// Moves the clock on by `by`, the relay's with it.
    fn wait(&mut self, by: Duration) {
        self.clock.set(self.clock.get() + by);
        self.relay.set_now(self.clock.get());
    }

    fn pick(&self, client: u8) -> Option<usize> {
        (!self.clients.is_empty()).then(|| usize::from(client) % self.clients.len())
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Connect { newline, eager } => self.connect(newline, eager),
            Action::Send(burst) => {
                if let Some(i) = self.pick(burst.client) {
                    self.send(i, burst);
                }
            }
            Action::Garbage { client, mut line } => {
                let Some(i) = self.pick(client) else { return };
                if let Some(end) = line.iter().position(|&b| b == b'\n') {
                    line.truncate(end);
                }
                let text = line.strip_suffix(b"\r").unwrap_or(&line);
                let sender = &mut self.clients[i];
                if text.is_empty() && sender.took_frame && !sender.hostile {
                    // The `\n` of the frame it just sent unterminated: from
                    // now on it is a newline client, what waited for it
                    // sent as lines.
                    (sender.newline, sender.sent_newline, sender.took_frame) = (true, true, false);
                    (sender.seed, sender.paced_from) = (false, None);
                    line.push(b'\n');
                    self.relay.receive(sender.id, &line);
                    return;
                }
                // Garbage is a line that does not open, by definition.
                let Err(error) = self.cipher.open(text) else {
                    return;
                };
                let fate = if line.len() > self.limits.max_frame {
                    Fate::Closed(CloseReason::LineTooLong)
                } else {
                    Fate::Closed(CloseReason::BadFrame(error))
                };
                line.push(b'\n');
                self.hostile_bytes(i, &line, fate);
            }
            Action::Stall { client, mut bytes } => {
                let Some(i) = self.pick(client) else { return };
                bytes.retain(|&b| b != b'\n');
                if bytes.is_empty() || self.cipher.open(&bytes).is_ok() {
                    return;
                }
                let fate = if bytes.len() > self.limits.max_frame {
                    Fate::Closed(CloseReason::LineTooLong)
                } else {
                    Fate::Open
                };
                self.hostile_bytes(i, &bytes, fate);
            }
            Action::Read { client, bytes } => {
                let Some(i) = self.pick(client) else { return };
                let id = self.clients[i].id;
                if let Some(sink) = self.relay.io_mut(id) {
                    sink.room = sink.room.saturating_add(usize::from(bytes));
                }
                // The socket became writable.
                self.relay.flush(id);
            }
            Action::Reset { client } => {
                let Some(i) = self.pick(client) else { return };
                self.clients[i].broken = true;
                if let Some(sink) = self.relay.io_mut(self.clients[i].id) {
                    sink.broken = true;
                }
            }
            Action::Disconnect { client } => {
                let Some(i) = self.pick(client) else { return };
                self.relay
                    .close(self.clients[i].id, CloseReason::PeerClosed);
                self.clients[i].fate = Fate::Closed(CloseReason::PeerClosed);
            }
            Action::Wait { ms } => self.wait(Duration::from_millis(u64::from(ms))),
            Action::Command { client, which, arg } => {
                if let Some(i) = self.pick(client) {
                    self.command(i, which, arg);
                }
            }
        }
    }

    fn connect(&mut self, newline: bool, eager: bool) {
        let sink = Sink {
            bytes: Vec::new(),
            room: if eager { usize::MAX } else { 0 },
            broken: false,
            clock: Rc::clone(&self.clock),
            writes: Vec::new(),
        };
        let open = self.clients.len();
        match self.relay.admit(sink) {
            Ok(id) => {
                assert!(open < self.limits.max_clients, "admitted over max_clients");
                self.next_serial += 1;
                self.clients.push(Client {
                    id,
                    serial: self.next_serial,
                    newline,
                    sent_newline: false,
                    took_frame: false,
                    next_seq: 0,
                    hostile: false,
                    authenticated: false,
                    seed: false,
                    was_seed: false,
                    paced_from: None,
                    last_paced: None,
                    broken: false,
                    fate: Fate::Open,
                    expected: Vec::new(),
                    received: 0,
                    nick: None,
                    queued_total: 0,
                    parsed: 0,
                    nonces: HashSet::new(),
                    events: false,
                    rooms: Vec::new(),
                    current: None,
                });
                // In the default room from the start, unless the relay
                // has its most rooms and that one is not among them.
                let lobby = rooms::room_name(0);
                if self.find_or_make(&lobby) {
                    self.enter(open, &lobby);
                }
            }
            Err(_) => assert_eq!(open, self.limits.max_clients, "refused under max_clients"),
        }
    }

    /// What the server does at the end of a loop turn, checked.
    fn end_turn(&mut self) {
        self.check_rooms();
        self.relay.run_timers();
        while let Some(id) = self.relay.next_waiting() {
            self.relay.flush(id);
        }
        let mut ids = Vec::new();
        self.relay.take_closing(&mut ids);
        let limits = self.limits;
        for client in &mut self.clients {
            let peer = self
                .relay
                .peer(client.id)
                .expect("a client not yet removed");
            self.frames_out +=
                check_received(client, &peer.io, &mut self.cipher, self.seed_write_gap);
            assert!(peer.buffered() <= limits.max_frame);
            let closing = peer.closing();
            assert_eq!(closing.is_some(), ids.contains(&client.id));
            match (client.fate, closing) {
                (Fate::Closed(want), Some(got)) => assert_eq!(want, got),
                (Fate::Hostile, Some(CloseReason::BadFrame(_) | CloseReason::LineTooLong)) => {}
                (_, Some(CloseReason::IoError(io::ErrorKind::BrokenPipe))) if client.broken => {}
                (Fate::Open | Fate::Hostile, Some(CloseReason::SlowConsumer)) => {
                    // What the relay held for it, as lines or waiting, was
                    // at most what it is owed, sealed one line each.
                    let unread = if client.was_seed {
                        client.expected[client.received..]
                            .iter()
                            .map(|message| encoded_len(message.len()) + 1)
                            .sum()
                    } else {
                        client.queued_total - peer.io.bytes.len()
                    };
                    assert!(unread > limits.max_queue, "dropped with {unread} unread");
                    assert_eq!(peer.queued_bytes(), 0, "a slow consumer's queue is dropped");
                    assert_eq!(
                        peer.paced_bytes(),
                        0,
                        "a slow consumer's messages are dropped"
                    );
                }
                (Fate::Open | Fate::Hostile, None) => {
                    assert!(peer.queued_bytes() <= limits.max_queue);
                    if client.was_seed {
                        assert!(peer.paced_bytes() <= limits.max_queue);
                        if peer.queued_bytes() == 0 && peer.paced_bytes() == 0 {
                            assert_eq!(
                                client.received,
                                client.expected.len(),
                                "nothing waits, yet a seed receiver is owed messages"
                            );
                        }
                    } else {
                        let unread = client.queued_total - peer.io.bytes.len();
                        assert_eq!(peer.queued_bytes(), unread, "queue holds the unread bytes");
                        assert_eq!(peer.paced_bytes(), 0);
                    }
                    if !client.hostile {
                        assert_eq!(peer.is_seed(), client.seed, "seed receiver or not");
                    }
                    client.fate = Fate::Open;
                }
                (fate, closing) => panic!("client {}: {fate:?}, relay: {closing:?}", client.id),
            }
        }
        for &id in &ids {
            let (peer, _) = self
                .relay
                .remove(id)
                .expect("a closing peer is removed once");
            assert!(self.relay.peer(id).is_none());
            drop(peer);
        }
        self.clients.retain(|client| !ids.contains(&client.id));
        self.prune();
        self.check_rooms();
        assert_eq!(self.relay.len(), self.clients.len());
        let stats = self.relay.stats();
        assert_eq!(stats.connections as usize, self.clients.len());
        assert_eq!(stats.frames_in, self.frames_in, "frames taken");
        assert_eq!(stats.frames_out, self.frames_out, "frames written whole");
    }

    /// Every client left reads everything, while the clock moves on a
    /// write gap at a time until no seed receiver has messages waiting;
    /// each must then have received exactly what it was owed.
    fn drain(&mut self) {
        for client in &self.clients {
            if let Some(sink) = self.relay.io_mut(client.id) {
                sink.room = usize::MAX;
            }
            self.relay.flush(client.id);
        }
        // Each round writes a frame to each seed receiver with messages
        // waiting, so one round per message owed is always enough.
        let owed: usize = self
            .clients
            .iter()
            .map(|client| client.expected.len())
            .sum();
        for _ in 0..=owed {
            let waiting = self.clients.iter().any(|client| {
                self.relay
                    .peer(client.id)
                    .is_some_and(|peer| peer.closing().is_none() && peer.paced_bytes() > 0)
            });
            if !waiting {
                break;
            }
            self.wait(self.seed_write_gap);
            self.relay.run_timers();
            while let Some(id) = self.relay.next_waiting() {
                self.relay.flush(id);
            }
        }
        for client in &mut self.clients {
            let peer = self.relay.peer(client.id).expect("a connected client");
            self.frames_out +=
                check_received(client, &peer.io, &mut self.cipher, self.seed_write_gap);
            if peer.closing().is_some() {
                assert!(client.broken, "closed while draining");
                continue;
            }
            assert_eq!(peer.queued_bytes(), 0);
            assert_eq!(peer.paced_bytes(), 0, "messages still waiting");
            assert_eq!(client.received, client.expected.len(), "frames lost");
        }
        assert_eq!(self.relay.stats().frames_out, self.frames_out);
    }
}
