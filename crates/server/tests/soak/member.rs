//! Well-behaved clients ("members") and the protocol that lets the test
//! know exactly which messages each of them must receive.
//!
//! The relay delivers a line to every connection open when it processes
//! that line. A sender cannot see that moment, so members tell each other:
//!
//! - **Joining.** A member's first message is `Hello`. When member R first
//!   receives anything from connection S, R sends `Know(S)`. When S receives
//!   `Know(S)` from R, R was connected when the relay processed it, so every
//!   message S sends from then on is processed while R is connected (R stays
//!   until S has acknowledged its leaving, below). S notes its next sequence
//!   number as `know_at[R]`.
//! - **Leaving.** R sends `Goodbye` and then nothing more. Every S that sees
//!   it notes its next sequence number as `bye_at[R]` and answers `Ack(R)`.
//!   R keeps reading until each S it sent `Know(S)` to has answered with
//!   `Ack(R)` or left itself (its `Goodbye`): everything S sent before seeing
//!   the goodbye is then already in R's stream. Only then does R half-close
//!   and read to the end.
//!
//! So S's messages with sequence numbers in `know_at[R]..bye_at[R]` (or to
//! S's last message if R never left) must reach R: that is the expected set,
//! checked in `audit.rs`. Independently, every receiver checks on the fly
//! that each sender's messages arrive as one gap-free, duplicate-free,
//! ordered run, that every line opens under the key and decodes as a
//! member's message (so no hostile byte ever reached it), and that it never
//! gets its own messages back.
//!
//! **Final phase.** Churn stops; every member (plus two late-joining
//! "witnesses" with a tiny receive buffer, the fresh clients) connects, and
//! each waits until it has exchanged `Know` with every other. The witnesses
//! then stop reading, and every member sends rounds of a last burst, each
//! ending with `Fence(round)`. Once the reading members have seen a round's
//! fences the relay has processed all of it. Rounds go on until the
//! witnesses' share no longer fits in the kernel's socket buffers and part
//! of it waits in the relay's own queues: SIGTERM must deliver it.
//!
//! **Members mode.** Each member seals under its own key and sends an empty
//! frame first (identification, never relayed, not a message); every line
//! it receives must open under its own key as `NAME: ` and a message of the
//! member called NAME. A member the test removes or re-keys is *doomed*:
//! the relay closes its connections, which is then the expected end, and
//! its peers stop waiting for its `Ack` once the relay has closed them all
//! (it is *gone*). A re-keyed member comes back with its new key.
//!
//! This file runs a member's sessions and sends; `receive` reads, checks
//! and answers what arrives.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::wire::encoded_len;

use crate::wire::{Kind, Msg, data_pad_len};
use crate::world::{Jitter, Limits, READER_RCVBUF, Role, World};

mod receive;

/// How long a leaving member waits for its acknowledgements.
const LEAVE_WAIT: Duration = Duration::from_secs(30);
/// How long a member waits for any one step of the final phase.
const FINALE_WAIT: Duration = Duration::from_secs(60);
/// Receive buffer of a witness: small, so the relay has to queue for it.
const WITNESS_RCVBUF: usize = 4096;

/// Bytes one round of the final burst puts on each witness's queue: an
/// eighth of `--max-queue`, so the relay's queue for a witness (under one
/// round when another starts, see `main.rs`) stays far from the limit.
pub fn round_bytes(limits: &Limits) -> usize {
    limits.max_queue / 8
}

/// How a member connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Closed by the relay before anything arrived: must be a refusal.
    ClosedAtOnce,
    /// Closed by the relay later: always a violation.
    ClosedByRelay,
    /// Said goodbye and left.
    Left,
    /// Stayed until the relay shut down.
    Shutdown,
    /// Gave up waiting for the protocol (a violation is recorded).
    Abandoned,
}

/// Everything one member connection did, for the audit.
#[derive(Debug, Clone)]
pub struct EpochRecord {
    /// The member's index.
    pub client: u16,
    /// This connection's number.
    pub conn: u32,
    /// Its local address (as the relay logs it).
    pub addr: SocketAddr,
    /// Whether it was a final-phase witness.
    pub witness: bool,
    /// Messages written whole; their sequence numbers are `0..sent`.
    pub sent: u32,
    /// Bytes of those messages on the wire.
    pub sent_bytes: u64,
    /// Peer connection → this one's next sequence number when the peer's
    /// `Know` for it arrived.
    pub know_at: HashMap<u32, u32>,
    /// Peer connection → this one's next sequence number when the peer's
    /// `Goodbye` arrived.
    pub bye_at: HashMap<u32, u32>,
    /// Sender connection → first and last sequence number received.
    pub received: HashMap<u32, (u32, u32)>,
    /// Messages received.
    pub delivered: u64,
    /// How it ended.
    pub end: End,
    /// Members mode: the test removed or re-keyed its member while it was
    /// open, so the relay closing it is expected.
    pub cut: bool,
}

/// Why a session stopped early.
struct Closed;

/// One member connection.
struct Session<'w> {
    world: &'w World,
    stream: TcpStream,
    cipher: Cipher,
    inbox: Vec<u8>,
    read_buf: Box<[u8]>,
    line: BytesMut,
    record: EpochRecord,
    /// Peers this connection sent `Know` to and that have not left.
    known: HashSet<u32>,
    /// While leaving: peers whose `Ack` (or `Goodbye`) is still awaited.
    awaiting: HashSet<u32>,
    /// Final phase: sender → the last round it fenced.
    fences: HashMap<u32, u32>,
    /// Nothing more may be sent (after `Goodbye` or `Fence`).
    silent: bool,
    /// Whether this session went into the final phase.
    finale_entered: bool,
    next_data: Instant,
    pace: Pace,
}

/// How a member sends its steady data.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Time between data messages.
    pub every: Duration,
    /// Bulk messages of 2–4 KiB rather than chat lines: the traffic that
    /// makes stopped consumers overflow.
    pub bulk: bool,
}

/// Runs member `client` until the end of the final phase: sessions of
/// random length separated by random pauses while the world churns, then
/// one last session through the relay's shutdown.
pub fn run(world: &World, client: u16, pace: Pace, session_ms: (u64, u64)) {
    let mut jitter = Jitter::new(u64::from(client) + 1);
    std::thread::sleep(jitter.millis(0, 500));
    loop {
        let Some(mut session) = Session::open(world, client, false, pace) else {
            return;
        };
        let result = session.live(&mut jitter, session_ms);
        // A refused connection (even in the final phase) is retried.
        let done = session.finale_entered
            && session.record.end != End::ClosedAtOnce
            && !world.is_doomed(session.record.conn);
        session.finish(result);
        if done {
            return;
        }
        if !world.is_final() {
            std::thread::sleep(jitter.millis(50, 600));
        }
    }
}

/// Runs a late-joining witness through the final phase.
pub fn run_witness(world: &World, client: u16, pace: Pace) {
    while let Some(mut session) = Session::open(world, client, true, pace) {
        session.finale_entered = true;
        let result = session.finale();
        let refused = session.record.end == End::ClosedAtOnce;
        session.finish(result);
        if !refused {
            return;
        }
    }
}

impl<'w> Session<'w> {
    fn open(world: &'w World, client: u16, witness: bool, pace: Pace) -> Option<Self> {
        let rcvbuf = if witness {
            WITNESS_RCVBUF
        } else {
            READER_RCVBUF
        };
        let (key, generation) = world.session_key(client)?;
        let stream = world.dial(Role::Member, Some(rcvbuf))?;
        stream
            .set_read_timeout(Some(Duration::from_millis(5)))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .expect("write timeout");
        let addr = stream.local_addr().expect("local address");
        let mut session = Session {
            world,
            stream,
            cipher: Cipher::new(&key).expect("cipher"),
            inbox: Vec::new(),
            read_buf: vec![0; 64 * 1024].into_boxed_slice(),
            line: BytesMut::new(),
            record: EpochRecord {
                client,
                conn: world.fresh_conn(),
                addr,
                witness,
                sent: 0,
                sent_bytes: 0,
                know_at: HashMap::new(),
                bye_at: HashMap::new(),
                received: HashMap::new(),
                delivered: 0,
                end: End::Abandoned,
                cut: false,
            },
            known: HashSet::new(),
            awaiting: HashSet::new(),
            fences: HashMap::new(),
            silent: false,
            finale_entered: false,
            next_data: Instant::now() + pace.every,
            pace,
        };
        world.register_session(session.record.conn, client, generation, addr);
        if world.roll.is_some() {
            // Identification: an empty frame, not a message.
            session.line.clear();
            session.cipher.seal_into(b"", &mut session.line);
            let _ = session.stream.write_all(&session.line);
        }
        // A refused connection shows up as a failed write or an early close.
        let _ = session.send(Kind::Hello, 0, 0);
        Some(session)
    }

    /// Chats for a random while, then leaves, unless the final phase starts
    /// first.
    fn live(&mut self, jitter: &mut Jitter, session_ms: (u64, u64)) -> Result<(), Closed> {
        if !self.world.is_final() {
            self.chat(Instant::now() + jitter.millis(session_ms.0, session_ms.1))?;
            if !self.world.is_final() {
                return self.leave();
            }
        }
        self.finale_entered = true;
        self.finale()
    }

    /// Sends steady data and answers the protocol until `until`, or until
    /// the final phase starts.
    fn chat(&mut self, until: Instant) -> Result<(), Closed> {
        while Instant::now() < until && !self.world.is_final() {
            self.pump(Duration::from_millis(5))?;
            self.send_data_when_due()?;
        }
        Ok(())
    }

    /// Says goodbye, waits for every peer it knows to acknowledge, then
    /// half-closes and reads to the end.
    fn leave(&mut self) -> Result<(), Closed> {
        self.send(Kind::Goodbye, 0, 0)?;
        self.silent = true;
        self.awaiting = self.known.clone();
        let deadline = Instant::now() + LEAVE_WAIT;
        while !self.awaiting.is_empty() {
            if Instant::now() > deadline {
                self.world.violation(format!(
                    "member conn {} waited {LEAVE_WAIT:?} for acks from {:?}",
                    self.record.conn, self.awaiting
                ));
                break;
            }
            self.pump(Duration::from_millis(20))?;
            let world = self.world;
            self.awaiting.retain(|&conn| !world.is_gone(conn));
        }
        self.record.end = End::Left;
        let _ = self.stream.shutdown(Shutdown::Write);
        self.read_to_end(Duration::from_secs(10));
        Ok(())
    }

    /// The final phase; returns once the relay has shut down.
    fn finale(&mut self) -> Result<(), Closed> {
        let finale = &self.world.finale;
        // Only admitted connections may join the roster: wait to hear from
        // someone (every member sends steadily, so this is quick).
        self.until(|s| s.record.delivered > 0, true, "first message")?;
        finale.roster.lock().expect("lock").push(self.record.conn);
        self.until(
            |s| s.world.finale.roster_complete.load(Ordering::SeqCst),
            true,
            "roster",
        )?;
        let others: Vec<u32> = finale
            .roster
            .lock()
            .expect("lock")
            .iter()
            .copied()
            .filter(|&c| c != self.record.conn)
            .collect();
        let met = |s: &Self| {
            others
                .iter()
                .all(|c| s.record.know_at.contains_key(c) && s.known.contains(c))
        };
        self.until(met, true, "Know from every member")?;
        finale.passed.fetch_add(1, Ordering::SeqCst);
        self.until(
            |s| s.world.finale.pause.load(Ordering::SeqCst),
            false,
            "pause",
        )?;
        if self.record.witness {
            finale.paused.fetch_add(1, Ordering::SeqCst);
        }
        let mut round = 0;
        loop {
            let next = |w: &World| {
                w.finale.round.load(Ordering::SeqCst) > round
                    || w.finale.done.load(Ordering::SeqCst)
            };
            if self.record.witness {
                self.idle_until(next, "round")?;
            } else {
                self.until(|s| next(s.world), false, "round")?;
            }
            if finale.round.load(Ordering::SeqCst) <= round {
                break;
            }
            round += 1;
            self.send_round(round, others.len())?;
            if !self.record.witness {
                let fenced = |s: &Self| others.iter().all(|c| s.fences.get(c) == Some(&round));
                self.until(fenced, false, "every fence")?;
                finale.fenced.fetch_add(1, Ordering::SeqCst);
            }
        }
        self.silent = true;
        // From here on the relay closing the connection is the expected end.
        self.record.end = End::Shutdown;
        finale.ready.fetch_add(1, Ordering::SeqCst);
        if self.record.witness {
            self.idle_until(|w| w.finale.sigterm_sent.load(Ordering::SeqCst), "SIGTERM")?;
        }
        self.read_to_end(FINALE_WAIT);
        Ok(())
    }

    /// One round of the last burst, then `Fence(round)`. All senders'
    /// rounds together put [`round_bytes`] on each paused witness's queue; the bytes are counted before they are sent, so that the
    /// orchestrator, once it has seen the fences, knows what each witness
    /// is owed.
    fn send_round(&mut self, round: u32, senders: usize) -> Result<(), Closed> {
        let pad: u16 = 1000;
        let line = encoded_len(19 + usize::from(pad)) + 1;
        let count = (round_bytes(&self.world.limits) / (senders.max(1) * line)).max(1);
        let bytes = (count * line + encoded_len(19) + 1) as u64;
        let finale = &self.world.finale;
        finale.burst_bytes.fetch_add(bytes, Ordering::SeqCst);
        if self.record.witness {
            *finale
                .witnesses
                .lock()
                .expect("lock")
                .entry(self.record.addr)
                .or_default() += bytes;
        }
        for _ in 0..count {
            self.send(Kind::Data, 0, pad)?;
        }
        self.send(Kind::Fence, round, 0)
    }

    /// Reads and answers until `done`, sending steady data if `chatty`.
    fn until(
        &mut self,
        done: impl Fn(&Self) -> bool,
        chatty: bool,
        what: &str,
    ) -> Result<(), Closed> {
        let deadline = Instant::now() + FINALE_WAIT;
        while !done(self) {
            if Instant::now() > deadline {
                self.world.violation(format!(
                    "member conn {}: no {what} within {FINALE_WAIT:?}",
                    self.record.conn
                ));
                return Err(Closed);
            }
            self.pump(Duration::from_millis(5))?;
            if chatty {
                self.send_data_when_due()?;
            }
        }
        Ok(())
    }

    /// Waits without reading (a witness's pause).
    fn idle_until(&mut self, done: impl Fn(&World) -> bool, what: &str) -> Result<(), Closed> {
        let deadline = Instant::now() + FINALE_WAIT;
        while !done(self.world) {
            if Instant::now() > deadline {
                self.world.violation(format!(
                    "witness conn {}: no {what} within {FINALE_WAIT:?}",
                    self.record.conn
                ));
                return Err(Closed);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    fn send_data_when_due(&mut self) -> Result<(), Closed> {
        if self.silent || Instant::now() < self.next_data {
            return Ok(());
        }
        self.next_data += self.pace.every;
        // Bulk traffic is for the chaos phase's stopped consumers only.
        let bulk = self.pace.bulk && !self.finale_entered;
        let pad = data_pad_len(self.record.conn, self.record.sent, bulk);
        self.send(Kind::Data, 0, pad)
    }

    /// Seals and writes one message; it counts as sent only once written
    /// whole (a torn line is never relayed).
    fn send(&mut self, kind: Kind, target: u32, pad_len: u16) -> Result<(), Closed> {
        let msg = Msg {
            kind,
            client: self.record.client,
            conn: self.record.conn,
            seq: self.record.sent,
            target,
            pad_len,
        };
        self.line.clear();
        self.cipher.seal_into(&msg.encode(), &mut self.line);
        if self.stream.write_all(&self.line).is_err() {
            return self.closed();
        }
        self.record.sent += 1;
        self.record.sent_bytes += self.line.len() as u64;
        Ok(())
    }

    /// Files the record; a session that stopped early says why.
    fn finish(mut self, result: Result<(), Closed>) {
        self.record.cut = self.world.is_doomed(self.record.conn);
        if result.is_err() && self.record.end == End::ClosedByRelay && !self.record.cut {
            self.world.violation(format!(
                "relay closed member conn {} ({}) after {} messages",
                self.record.conn, self.record.addr, self.record.delivered
            ));
        }
        self.world.records.lock().expect("lock").push(self.record);
    }
}
