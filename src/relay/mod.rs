//! The relay's logic, without sockets: who is connected, what each sent,
//! and what each is owed.
//!
//! [`Relay`] owns every connection's state in a slab: its line reader, its
//! queue of outgoing frames, and why it is closing. The caller moves bytes:
//! it hands what it read to [`Relay::receive`], and writes each queue out
//! with [`Relay::flush`] into the connection's `io` (a `TcpStream` in the
//! server, an in-memory writer in tests and fuzz targets).
//!
//! Each line received is opened and sealed once. The lines sealed from one
//! read of a connection are gathered in one buffer, and that one shared
//! `Bytes` is queued for every other open connection: the cost per recipient
//! is one reference-count increment per read, however many lines it held.
//! Connections with frames to write are handed out oldest first, so the
//! caller's writes sweep over them fairly ([`Relay::next_waiting`], kept
//! by the write sweep in `sweep.rs`).
//!
//! A connection that has never sent a `\n` may be the original notebook
//! client, whose frames have none: its unterminated bytes are split into
//! frames where their tags verify ([`crate::seed`]), each opened and sealed
//! like a line. Once one is taken that way the connection is a seed
//! receiver: instead of the shared run it gets the plaintexts, joined as
//! lines into one frame of its own at a time, written only when the last
//! one was written whole and at least the seed write gap ago (the clock is
//! the caller's: [`Relay::set_now`], [`Relay::next_timer`],
//! [`Relay::run_timers`]).
//!
//! Every frame that opens passes one replay check ([`check_replay`]): a
//! nonce the relay sealed with itself, or one accepted before under the same
//! key within the window of [`crate::replay`], is refused as a replay.
//!
//! A connection that sends a line that does not open, a replay, or a line
//! too long, is marked closing and nothing more it sent is relayed. A consumer whose
//! queue passes the limit is marked closing and its queue dropped. Closing
//! connections are handed to the caller by [`Relay::take_closing`], and
//! removed with [`Relay::remove`]: a connection leaves in that one place.

use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use log::{debug, info};
use memchr::memchr;
use slab::Slab;

use crate::cipher::{Cipher, KeySealer, OpenError, Seal};
use crate::guard::{Deadline, Deadlines, PerAddress, PreAuthBudget};
use crate::lines::LineReader;
use crate::members::{Members, Name};
use crate::outbox::{Frames, Outbox};
use crate::replay::{self, ReplayWindow, Replayed};
use crate::roster::{Changes, Identified, Roster, Seat};
use crate::seed::{self, Paced, Splitter, Step};
use crate::stats::Stats;
use crate::sweep::{FanOut, Place, Places, WriteSweep};
use crate::wire::{self, NONCE_LEN};

/// Most reads of an unidentified connection's unterminated bytes tried as
/// a whole first frame against the members' keys (members mode): bounds
/// the work one connection that never identifies can cost. A newline-less
/// client sends its first frame in one write, so it arrives in one or two.
const IDENTIFY_TRIES: u8 = 8;

/// The limits a relay enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line accepted, terminator excluded.
    pub max_frame: usize,
    /// Most connections open at once.
    pub max_clients: usize,
    /// Most bytes queued for one consumer before it is dropped.
    pub max_queue: usize,
    /// Most bytes held, in all, for connections that have not
    /// authenticated yet.
    pub pre_auth_budget: usize,
    /// How long a connection that has sent bytes may take to complete its
    /// first authenticated frame.
    pub first_frame_timeout: Duration,
    /// Most connections from one IPv4 address or IPv6 /64; `0` for no
    /// limit.
    pub max_per_address: usize,
}

impl Limits {
    /// `--max-frame`'s default: 64 KiB.
    pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;
    /// `--max-clients`' default.
    pub const DEFAULT_MAX_CLIENTS: usize = 10_000;
    /// `--max-queue`'s default: 4 MiB.
    pub const DEFAULT_MAX_QUEUE: usize = 4 * 1024 * 1024;
    /// `--pre-auth-budget`'s default: 4 MiB, as much as 64 unauthenticated
    /// connections each holding a whole default `--max-frame` line.
    pub const DEFAULT_PRE_AUTH_BUDGET: usize = 4 * 1024 * 1024;
    /// `--first-frame-timeout`'s default. Every client sends its first
    /// frame in one write; ten seconds leaves room for the slowest link.
    pub const DEFAULT_FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
    /// `--max-per-address`' default. A household or an office behind one
    /// NAT address rarely has more people in one chat, and filling the
    /// default `--max-clients` takes 313 addresses.
    pub const DEFAULT_MAX_PER_ADDRESS: usize = 32;
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame: Limits::DEFAULT_MAX_FRAME,
            max_clients: Limits::DEFAULT_MAX_CLIENTS,
            max_queue: Limits::DEFAULT_MAX_QUEUE,
            pre_auth_budget: Limits::DEFAULT_PRE_AUTH_BUDGET,
            first_frame_timeout: Limits::DEFAULT_FIRST_FRAME_TIMEOUT,
            max_per_address: Limits::DEFAULT_MAX_PER_ADDRESS,
        }
    }
}

/// Why the relay closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its end (or reset it).
    PeerClosed,
    /// A line did not open: bad base64, too short, or a tag that failed.
    BadFrame(OpenError),
    /// A frame opened, but its nonce was accepted before under its key, or
    /// is one the relay sealed with: a replay.
    Replay,
    /// A line grew past `--max-frame`.
    LineTooLong,
    /// More than `--max-queue` bytes were waiting for this consumer.
    SlowConsumer,
    /// Not authenticated, and holding the most when the bytes held for
    /// unauthenticated connections passed `--pre-auth-budget`.
    PreAuthOverBudget,
    /// Sent bytes, but no authenticated frame within
    /// `--first-frame-timeout`.
    FirstFrameTimeout,
    /// Reading or writing the socket failed.
    IoError(std::io::ErrorKind),
    /// The relay is shutting down.
    Shutdown,
    /// Members mode: the member was removed from the members file, or
    /// given a new key.
    MemberRemoved,
    /// Members mode: the first frame's ciphertext is longer than
    /// [`crate::roster::IDENTIFY_MAX`].
    FirstFrameTooLong,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed"),
            CloseReason::BadFrame(error) => write!(f, "rejected frame: {error}"),
            CloseReason::Replay => write!(f, "rejected frame: {Replayed}"),
            CloseReason::LineTooLong => f.write_str("line longer than --max-frame"),
            CloseReason::SlowConsumer => f.write_str("slow consumer: over --max-queue"),
            CloseReason::PreAuthOverBudget => {
                f.write_str("unauthenticated, holding the most past --pre-auth-budget")
            }
            CloseReason::FirstFrameTimeout => {
                f.write_str("no authenticated frame within --first-frame-timeout")
            }
            CloseReason::IoError(kind) => write!(f, "socket error: {kind}"),
            CloseReason::Shutdown => f.write_str("relay shutting down"),
            CloseReason::MemberRemoved => f.write_str("member removed from the members file"),
            CloseReason::FirstFrameTooLong => f.write_str("first frame too long to identify"),
        }
    }
}

/// Identifies a connection while it is open. Ids are reused after removal.
pub type ConnId = usize;

/// One connection's state.
#[derive(Debug)]
pub struct Peer<T> {
    /// The transport: what frames are written to.
    pub io: T,
    reader: LineReader,
    /// Looks for newline-less frames while no `\n` has come.
    splitter: Option<Box<Splitter>>,
    /// Messages waiting for a seed receiver; `Some` makes it one.
    paced: Option<Box<Paced>>,
    outbox: Outbox,
    closing: Option<CloseReason>,
    /// Where it stands in the write sweep: kept beside its queue, so a
    /// fan-out touches only the recipient's memory.
    place: Place,
    /// Whether it has proven it holds a key, and what it holds until then.
    trust: Trust,
    /// Its admission number: tells it from a later holder of its id.
    serial: u64,
    /// The address it is counted under for `max_per_address`, if any.
    ip: Option<IpAddr>,
    /// Members mode: the member it identified as.
    member: Option<Seat>,
    /// Members mode: reads of its unterminated bytes tried as a first frame.
    identify_tries: u8,
}

/// How far a connection has proven itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// Has sent nothing: holds nothing, and no deadline runs.
    Silent,
    /// Has sent bytes but no frame that opened: its first-frame deadline
    /// runs, and the bytes it holds count against the pre-auth budget.
    Unproven {
        /// Bytes it holds, as counted in the budget.
        held: usize,
    },
    /// A frame of its opened: no longer limited by this module's rules.
    Authenticated,
}

impl<T> Peer<T> {
    /// Bytes queued for this connection.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.queued_bytes()
    }

    /// Why this connection is closing, if it is.
    pub fn closing(&self) -> Option<CloseReason> {
        self.closing
    }

    /// Bytes held for an unfinished line from this connection.
    pub fn buffered(&self) -> usize {
        self.reader.buffered()
    }

    /// Whether this is a seed receiver: it sent a newline-less frame, and
    /// never a `\n`.
    pub fn is_seed(&self) -> bool {
        self.paced.is_some()
    }

    /// Bytes of messages waiting for this seed receiver's next frame.
    pub fn paced_bytes(&self) -> usize {
        self.paced.as_ref().map_or(0, |paced| paced.waiting_bytes())
    }

    /// Whether one of its frames has opened under the key (in members
    /// mode: whether it identified as a member).
    pub fn is_authenticated(&self) -> bool {
        self.trust == Trust::Authenticated
    }
}

/// Whose keys a relay serves.
// One per relay: the shared-key cipher stays inline, no pointer to chase
// on the hot path.
#[allow(clippy::large_enum_variant)]
enum Mode {
    /// One key for everybody: each message sealed once for all.
    Shared(Cipher),
    /// A key per member: each message stamped with its sender's name and
    /// sealed once per recipient member.
    Members(Roster),
}

/// A connection [`Relay::admit_from`] would not take, handed back.
#[derive(Debug)]
pub struct Refused<T> {
    /// The transport, to be closed.
    pub io: T,
    /// The limit it met.
    pub limit: Refusal,
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_clients` were connected.
    MaxClients,
    /// Its address had `max_per_address` connections open.
    MaxPerAddress,
}

/// What a flush left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Everything queued was written.
    Drained,
    /// The writer would block with frames still queued: write again when it
    /// is writable.
    Blocked,
    /// The connection is closing (or gone); nothing was written.
    Closed,
}

/// Every connection and the keys they use.
pub struct Relay<T> {
    peers: Slab<Peer<T>>,
    mode: Mode,
    limits: Limits,
    stats: Stats,
    sweep: WriteSweep,
    closing: Vec<ConnId>,
    /// The time as last told by [`Relay::set_now`].
    now: Instant,
    /// Bytes held for unauthenticated connections, in all.
    pre_auth: PreAuthBudget,
    /// First-frame deadlines of unproven connections.
    deadlines: Deadlines,
    per_address: PerAddress,
    /// The seed receivers: the connections whose `paced` is `Some`.
    seed_peers: Vec<ConnId>,
    seed_write_gap: Duration,
    /// The client nonces accepted lately, for [`check_replay`].
    replays: ReplayWindow,
}

impl<T: Write> Relay<T> {
    /// A shared-key relay with no connections, its clock at
    /// `Instant::now()`.
    pub fn new(cipher: Cipher, limits: Limits) -> Relay<T> {
        Relay::with_mode(Mode::Shared(cipher), limits)
    }

    /// A members relay with no connections: each connection identifies as
    /// one of `roster`'s members by its first frame.
    pub fn with_members(roster: Roster, limits: Limits) -> Relay<T> {
        Relay::with_mode(Mode::Members(roster), limits)
    }

    fn with_mode(mode: Mode, limits: Limits) -> Relay<T> {
        Relay {
            peers: Slab::new(),
            mode,
            limits,
            stats: Stats::default(),
            sweep: WriteSweep::default(),
            closing: Vec::new(),
            now: Instant::now(),
            pre_auth: PreAuthBudget::new(limits.pre_auth_budget),
            deadlines: Deadlines::new(limits.first_frame_timeout),
            per_address: PerAddress::new(limits.max_per_address),
            seed_peers: Vec::new(),
            seed_write_gap: seed::DEFAULT_WRITE_GAP,
            replays: ReplayWindow::new(),
        }
    }

    /// Sets the least time between two frames written to a seed receiver.
    pub fn set_seed_write_gap(&mut self, gap: Duration) {
        self.seed_write_gap = gap;
    }

    /// Tells the relay the time. The server calls it once per loop turn,
    /// before reading; tests and fuzz targets set it as they like.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// When timed work is next due ([`Relay::run_timers`]), if any: a
    /// first-frame deadline, or a seed receiver's next frame.
    pub fn next_timer(&self) -> Option<Instant> {
        let gap = self.seed_write_gap;
        let next_paced = self
            .seed_peers
            .iter()
            .filter_map(|&id| {
                let peer = self.peers.get(id)?;
                if peer.closing.is_some() || !peer.outbox.is_empty() {
                    return None;
                }
                peer.paced.as_ref()?.next_due(self.now, gap)
            })
            .min();
        [self.deadlines.next_due(), next_paced]
            .into_iter()
            .flatten()
            .min()
    }

    /// Does the timed work due at the time last set: closes every
    /// connection whose first-frame deadline has passed and that has not
    /// authenticated since, and queues the next frame of each seed receiver
    /// whose gap has passed.
    pub fn run_timers(&mut self) {
        while let Some(deadline) = self.deadlines.pop_due(self.now) {
            if self.is_unproven(&deadline) {
                self.stats.first_frame_timeouts += 1;
                self.close(deadline.id, CloseReason::FirstFrameTimeout);
            }
        }
        let (now, gap) = (self.now, self.seed_write_gap);
        let mut fan_out = self.sweep.fan_out();
        for &id in &self.seed_peers {
            if let Some(peer) = self.peers.get_mut(id)
                && peer.closing.is_none()
                && queue_paced_in(&mut self.mode, peer, now, gap)
            {
                fan_out.queued(id, &mut peer.place);
            }
        }
        fan_out.finish(&self.peers);
    }

    /// Whether `deadline` still names an open, unproven connection.
    fn is_unproven(&self, deadline: &Deadline) -> bool {
        self.peers.get(deadline.id).is_some_and(|peer| {
            peer.serial == deadline.serial
                && peer.closing.is_none()
                && matches!(peer.trust, Trust::Unproven { .. })
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Counts an `accept` that failed.
    pub fn count_accept_error(&mut self) {
        self.stats.accept_errors += 1;
    }

    /// Connections open (including those closing but not yet removed).
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// A connection, if `id` is open.
    pub fn peer(&self, id: ConnId) -> Option<&Peer<T>> {
        self.peers.get(id)
    }

    /// A connection's transport, if `id` is open.
    pub fn io_mut(&mut self, id: ConnId) -> Option<&mut T> {
        self.peers.get_mut(id).map(|peer| &mut peer.io)
    }

    /// Ids of every open connection.
    pub fn ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.peers.iter().map(|(id, _)| id)
    }

    /// Adds a connection with no address (in-memory transports), or hands
    /// `io` back (and counts it refused) when `max_clients` are already
    /// connected.
    pub fn admit(&mut self, io: T) -> Result<ConnId, T> {
        self.admit_from(io, None).map_err(|refused| refused.io)
    }

    /// Adds a connection from `ip`, or hands `io` back and counts it
    /// refused: when `max_clients` are already connected, or when `ip`'s
    /// address has `max_per_address` open.
    pub fn admit_from(&mut self, io: T, ip: Option<IpAddr>) -> Result<ConnId, Refused<T>> {
        if self.peers.len() >= self.limits.max_clients {
            self.stats.clients_refused += 1;
            return Err(Refused {
                io,
                limit: Refusal::MaxClients,
            });
        }
        if let Some(ip) = ip
            && !self.per_address.admit(ip)
        {
            self.stats.refused_per_address += 1;
            return Err(Refused {
                io,
                limit: Refusal::MaxPerAddress,
            });
        }
        self.stats.connections += 1;
        self.stats.connections_total += 1;
        Ok(self.peers.insert(Peer {
            io,
            reader: LineReader::new(self.limits.max_frame),
            splitter: None,
            paced: None,
            outbox: Outbox::default(),
            closing: None,
            place: Place::default(),
            trust: Trust::Silent,
            serial: self.stats.connections_total,
            ip,
            member: None,
            identify_tries: 0,
        }))
    }

    /// Takes bytes read from connection `from`: relays every complete line
    /// in them, or closes `from` on the first line that is too long, does
    /// not open or is a replay (the lines before it are still relayed). In
    /// members mode an unidentified connection's first frame identifies it
    /// first.
    pub fn receive(&mut self, from: ConnId, data: &[u8]) {
        let Some(peer) = self.peers.get_mut(from) else {
            return;
        };
        if peer.closing.is_some() {
            return;
        }
        self.stats.bytes_in += data.len() as u64;
        // The reader is taken out for the call so that sealing a line can
        // borrow the relay.
        let mut reader = std::mem::take(&mut peer.reader);
        let mut splitter = peer.splitter.take();
        let was_member = peer.member;
        let mut member = peer.member;
        let mut tries = peer.identify_tries;
        // A resealed line is as long as the line it came from (less a
        // `\r`), plus its `\n`; frames are at least 44 bytes. What this read
        // can produce is bounded by what it completes. Allocated at the
        // first line, not for a read that only adds to an unfinished one.
        let most = reader.buffered() + data.len() + (reader.buffered() + data.len()) / 44 + 1;
        let mut batch = Batch {
            keep_plaintexts: !self.seed_peers.is_empty() || matches!(self.mode, Mode::Members(_)),
            ..Batch::default()
        };
        let mut took_seed = false;
        let mut rest = data;
        let mut fed = Ok(());
        if !reader.saw_newline() {
            // Up to the first `\n`, in pieces the buffer has room for:
            // joined newline-less frames are split as they come, so they
            // never count as one line against `max_frame`.
            let (mut newline_less, after) =
                data.split_at(memchr(b'\n', data).unwrap_or(data.len()));
            rest = after;
            while !newline_less.is_empty() {
                let room = self
                    .limits
                    .max_frame
                    .saturating_sub(reader.buffered())
                    .max(1);
                let (piece, more) = newline_less.split_at(room.min(newline_less.len()));
                newline_less = more;
                fed = reader.feed(piece, |_| ControlFlow::Continue(()));
                if fed.is_err() {
                    break;
                }
                if member.is_none() && matches!(self.mode, Mode::Members(_)) {
                    match self.identify_unterminated(from, &mut reader, &mut batch, &mut tries) {
                        Some(seat) => {
                            member = Some(seat);
                            took_seed = true;
                        }
                        None => continue,
                    }
                }
                let splitter = splitter.get_or_insert_with(Box::default);
                match self.take_seed_frames(member, &mut reader, splitter, &mut batch, most) {
                    Ok(took) => took_seed |= took,
                    Err(error) => {
                        self.reject(from, error);
                        break;
                    }
                }
            }
        }
        let closed = self
            .peers
            .get(from)
            .is_none_or(|peer| peer.closing.is_some());
        if fed.is_ok() && !closed {
            fed = reader.feed(rest, |line| {
                self.take_line(from, &mut member, &mut batch, line, most)
            });
        }
        if fed.is_err() && !closed {
            self.stats.rejected.too_long += 1;
            self.close(from, CloseReason::LineTooLong);
        }
        let newline = reader.saw_newline();
        if let Some(peer) = self.peers.get_mut(from) {
            peer.reader = reader;
            peer.splitter = if newline { None } else { splitter };
            peer.identify_tries = tries;
            if was_member.is_none()
                && let (Some(seat), Mode::Members(roster)) = (member, &mut self.mode)
            {
                peer.member = Some(seat);
                roster.join(seat, from);
                if let Some(name) = roster.name(seat) {
                    info!("conn {from}: identified as {name}");
                }
            }
        }
        if took_seed && !newline {
            self.become_seed(from);
        } else if newline {
            self.stop_seed(from);
        }
        self.account_trust(from, batch.opened);
        if batch.count > 0 {
            self.stats.frames_in += batch.count as u64;
            self.queue_for_all_but(from, &batch);
        }
    }

    /// One line from `from`: opened and sealed again onto `batch` (shared
    /// key), or opened under its member's key and stamped (members mode,
    /// identifying the member by it if not yet known). Closes `from` and
    /// stops the reading if it does not open.
    fn take_line(
        &mut self,
        from: ConnId,
        member: &mut Option<Seat>,
        batch: &mut Batch,
        line: &[u8],
        most: usize,
    ) -> ControlFlow<()> {
        let taken = match &mut self.mode {
            Mode::Shared(cipher) => batch
                .reseal(cipher, &mut self.replays, replay::SHARED_KEY, line, most)
                .map_err(FrameError::reason),
            Mode::Members(roster) => {
                let seat = match *member {
                    Some(seat) => Ok(seat),
                    None => match roster.identify(line) {
                        Identified::Member(seat) => {
                            *member = Some(seat);
                            Ok(seat)
                        }
                        Identified::Nobody(error) => Err(CloseReason::BadFrame(error)),
                        Identified::TooLong => Err(CloseReason::FirstFrameTooLong),
                    },
                };
                seat.and_then(|seat| {
                    batch
                        .restamp(roster, &mut self.replays, seat, line)
                        .map_err(FrameError::reason)
                })
            }
        };
        match taken {
            Ok(()) => ControlFlow::Continue(()),
            Err(reason) => {
                match reason {
                    CloseReason::BadFrame(error) => self.stats.rejected.count(error),
                    CloseReason::Replay => self.stats.rejected.replayed += 1,
                    _ => self.stats.rejected.bad_tag += 1,
                }
                self.close(from, reason);
                ControlFlow::Break(())
            }
        }
    }

    /// Members mode, `from` not identified and no `\n` yet: tries its
    /// whole unterminated buffer as its first frame. On a match the frame
    /// is taken onto `batch` and the member returned. A buffer past the
    /// identification cap, or a padded one (so whole) that opens under no
    /// key, closes `from`; an unpadded one may still grow into a frame and
    /// is tried again on later reads, at most [`IDENTIFY_TRIES`] times.
    fn identify_unterminated(
        &mut self,
        from: ConnId,
        reader: &mut LineReader,
        batch: &mut Batch,
        tries: &mut u8,
    ) -> Option<Seat> {
        let Mode::Members(roster) = &mut self.mode else {
            return None;
        };
        let buf = reader.unterminated()?;
        if buf.len() > wire::encoded_len(crate::roster::IDENTIFY_MAX) {
            self.stats.rejected.bad_tag += 1;
            self.close(from, CloseReason::FirstFrameTooLong);
            return None;
        }
        if buf.len() < wire::encoded_len(0) || buf.len() % 4 != 0 || *tries >= IDENTIFY_TRIES {
            return None;
        }
        *tries += 1;
        match roster.identify(buf) {
            Identified::Member(seat) => {
                let len = buf.len();
                match batch.restamp(roster, &mut self.replays, seat, buf) {
                    Ok(()) => {}
                    Err(FrameError::Replayed) => {
                        self.stats.rejected.replayed += 1;
                        self.close(from, CloseReason::Replay);
                        return None;
                    }
                    Err(FrameError::Open(_)) => {
                        debug_assert!(false, "a frame that identified did not open");
                        return None;
                    }
                }
                reader.consume_frame(len);
                Some(seat)
            }
            // A whole frame whose base64 length is at the cap's but whose
            // plaintext is a byte or two past it.
            Identified::TooLong => {
                self.stats.rejected.bad_tag += 1;
                self.close(from, CloseReason::FirstFrameTooLong);
                None
            }
            Identified::Nobody(OpenError::BadTag) if buf.ends_with(b"=") => {
                self.stats.rejected.bad_tag += 1;
                self.close(from, CloseReason::BadFrame(OpenError::BadTag));
                None
            }
            _ => None,
        }
    }

    /// After a read from `from`: marks it authenticated if a frame of its
    /// opened, else counts what it now holds against the pre-auth budget
    /// (starting its first-frame deadline at its first byte), and closes
    /// the unauthenticated connections holding the most while the budget
    /// is passed.
    fn account_trust(&mut self, from: ConnId, opened: bool) {
        let Some(peer) = self.peers.get_mut(from) else {
            return;
        };
        let before = match peer.trust {
            Trust::Authenticated => return,
            Trust::Silent => {
                if peer.closing.is_none() {
                    self.deadlines.start(from, peer.serial, self.now);
                }
                0
            }
            Trust::Unproven { held } => held,
        };
        if opened {
            peer.trust = Trust::Authenticated;
            self.pre_auth.update(before, 0);
            return;
        }
        let held = if peer.closing.is_some() {
            0
        } else {
            peer.reader.buffered()
        };
        peer.trust = Trust::Unproven { held };
        self.pre_auth.update(before, held);
        while self.pre_auth.is_over() {
            let most = self
                .peers
                .iter()
                .filter(|(_, peer)| peer.closing.is_none())
                .filter_map(|(id, peer)| match peer.trust {
                    Trust::Unproven { held } if held > 0 => Some((held, id)),
                    _ => None,
                })
                .max();
            let Some((_, id)) = most else {
                break;
            };
            self.stats.pre_auth_over_budget += 1;
            self.close(id, CloseReason::PreAuthOverBudget);
        }
    }

    /// Takes every newline-less frame at the front of `reader`'s
    /// unterminated bytes onto `batch`, up to one that is a replay; returns
    /// whether it took one. In members mode the frames are split and opened
    /// with `member`'s key.
    fn take_seed_frames(
        &mut self,
        member: Option<Seat>,
        reader: &mut LineReader,
        splitter: &mut Splitter,
        batch: &mut Batch,
        most: usize,
    ) -> Result<bool, FrameError> {
        let mut took = false;
        while let Some(buf) = reader.unterminated() {
            let key = match &self.mode {
                Mode::Shared(cipher) => Some(cipher.eax_key()),
                Mode::Members(roster) => member.and_then(|seat| roster.eax_key(seat)),
            };
            let Some(Step::Frame(len)) = key.map(|key| splitter.next_frame(key, buf)) else {
                break;
            };
            // The tag verified; the frame is opened all the same, so
            // nothing is relayed that was not authenticated.
            let Some(frame) = buf.get(..len) else { break };
            let taken = match (&mut self.mode, member) {
                (Mode::Shared(cipher), _) => {
                    batch.reseal(cipher, &mut self.replays, replay::SHARED_KEY, frame, most)
                }
                (Mode::Members(roster), Some(seat)) => {
                    batch.restamp(roster, &mut self.replays, seat, frame)
                }
                (Mode::Members(_), None) => break,
            };
            match taken {
                Ok(()) => {
                    reader.consume_frame(len);
                    took = true;
                }
                Err(FrameError::Replayed) => return Err(FrameError::Replayed),
                Err(FrameError::Open(_)) => {
                    debug_assert!(false, "a frame the splitter found did not open");
                    break;
                }
            }
        }
        Ok(took)
    }

    /// Counts a frame of `from`'s refused, and closes `from`.
    fn reject(&mut self, from: ConnId, error: FrameError) {
        match error {
            FrameError::Open(error) => {
                self.stats.rejected.count(error);
                self.close(from, CloseReason::BadFrame(error));
            }
            FrameError::Replayed => {
                self.stats.rejected.replayed += 1;
                self.close(from, CloseReason::Replay);
            }
        }
    }

    /// Makes `id` a seed receiver.
    fn become_seed(&mut self, id: ConnId) {
        if let Some(peer) = self.peers.get_mut(id)
            && peer.paced.is_none()
        {
            peer.paced = Some(Box::default());
            self.seed_peers.push(id);
        }
    }

    /// `id` sent a `\n`: it is a newline client. What waited for it goes
    /// out as lines of their own.
    fn stop_seed(&mut self, id: ConnId) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let Some(mut paced) = peer.paced.take() else {
            return;
        };
        self.seed_peers.retain(|&seed| seed != id);
        let mut lines = BytesMut::new();
        let count = match &mut self.mode {
            Mode::Shared(cipher) => paced.seal_each(cipher, &mut lines),
            Mode::Members(roster) => match peer.member.and_then(|seat| roster.sealer(seat)) {
                Some(mut sealer) => paced.seal_each(&mut sealer, &mut lines),
                None => 0,
            },
        };
        if count > 0 && peer.closing.is_none() {
            peer.outbox.push(Frames::new(lines.freeze(), count));
            let mut fan_out = self.sweep.fan_out();
            fan_out.queued(id, &mut peer.place);
            fan_out.finish(&self.peers);
        }
    }

    /// Queues `batch` for every open connection except `from`.
    ///
    /// With a shared key one sealed run serves all. In members mode the
    /// stamped plaintexts are sealed once per recipient member instead, all
    /// into one arena ([`MemberFanOut`]). A seed receiver gets the
    /// plaintexts, sealed into its own frame when one is due.
    ///
    /// The `max_queue` limit is not checked here but in [`Relay::flush`],
    /// after the recipient had its chance to take this turn's frames: a
    /// relay that stalled and then read a burst from many senders at once
    /// must not blame consumers that are reading fine. A seed receiver's
    /// waiting messages are checked here: they wait for the gap, not for
    /// the socket.
    fn queue_for_all_but(&mut self, from: ConnId, batch: &Batch) {
        let (now, gap, max_queue) = (self.now, self.seed_write_gap, self.limits.max_queue);
        let cipher = match &mut self.mode {
            Mode::Shared(cipher) => cipher,
            Mode::Members(roster) => {
                let mut members = MemberFanOut {
                    peers: &mut self.peers,
                    fan_out: self.sweep.fan_out(),
                    stats: &mut self.stats,
                    closing: &mut self.closing,
                    arena: BytesMut::with_capacity(batch.sealed_len() * roster.present()),
                    from,
                    batch,
                    now,
                    gap,
                    max_queue,
                };
                roster.for_each_present(|conns, sealer| members.queue(conns, sealer));
                let MemberFanOut { peers, fan_out, .. } = members;
                fan_out.finish(&*peers);
                return;
            }
        };
        let frames = Frames::new(batch.sealed.clone().freeze(), batch.count);
        let mut fan_out = self.sweep.fan_out();
        for (id, peer) in self.peers.iter_mut() {
            if id == from || peer.closing.is_some() {
                continue;
            }
            let Some(paced) = peer.paced.as_mut().filter(|_| batch.keep_plaintexts) else {
                peer.outbox.push(frames.clone());
                fan_out.queued(id, &mut peer.place);
                continue;
            };
            paced.push(&batch.plaintexts, &batch.lens);
            if paced.waiting_bytes() + peer.outbox.queued_bytes() > max_queue {
                peer.paced = Some(Box::default());
                peer.outbox.clear();
                self.stats.slow_consumers += 1;
                peer.closing = Some(CloseReason::SlowConsumer);
                self.closing.push(id);
                continue;
            }
            if queue_paced(peer, cipher, now, gap) {
                fan_out.queued(id, &mut peer.place);
            }
        }
        fan_out.finish(&self.peers);
    }

    /// Whether this relay serves members, each under their own key.
    pub fn is_members(&self) -> bool {
        matches!(self.mode, Mode::Members(_))
    }

    /// Members mode: how many members there are (0 in shared-key mode).
    pub fn member_count(&self) -> usize {
        match &self.mode {
            Mode::Shared(_) => 0,
            Mode::Members(roster) => roster.len(),
        }
    }

    /// Members mode: the name of the member connection `id` identified as.
    pub fn member_name(&self, id: ConnId) -> Option<&Name> {
        let Mode::Members(roster) = &self.mode else {
            return None;
        };
        roster.name(self.peers.get(id)?.member?)
    }

    /// Members mode: serves `members` from now on. The connections of
    /// members no longer in it, or whose key changed, are closed
    /// ([`CloseReason::MemberRemoved`]); those of the others stay as they
    /// are. Connections not yet identified identify against `members`.
    /// Returns what changed; `None` in shared-key mode, which has no
    /// members to reload.
    pub fn reload_members(&mut self, members: &Members) -> Option<Changes> {
        let Mode::Members(roster) = &mut self.mode else {
            return None;
        };
        let (changes, moved) = roster.replace(members);
        let mut removed = Vec::new();
        for (id, peer) in self.peers.iter_mut() {
            let Some(old) = peer.member else { continue };
            peer.member = moved.get(old).copied().flatten();
            if peer.member.is_none() {
                removed.push(id);
            }
        }
        for id in removed {
            if self
                .peers
                .get(id)
                .is_some_and(|peer| peer.closing.is_none())
            {
                self.stats.members_removed += 1;
                self.close(id, CloseReason::MemberRemoved);
            }
        }
        Some(changes)
    }

    /// Marks `id` closing for `reason`. Its queue is kept (for a final
    /// flush) unless the reason is that it could not keep up.
    pub fn close(&mut self, id: ConnId, reason: CloseReason) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        if peer.closing.is_some() {
            return;
        }
        if matches!(reason, CloseReason::BadFrame(_) | CloseReason::Replay) {
            debug!("conn {id}: {reason}");
        }
        peer.closing = Some(reason);
        if let Trust::Unproven { held } = peer.trust {
            // Nothing more is read from it: what it held is let go now, not
            // at the end of the turn.
            peer.reader = LineReader::default();
            peer.trust = Trust::Unproven { held: 0 };
            self.pre_auth.update(held, 0);
        }
        self.closing.push(id);
    }

    /// The connection that has waited longest with new frames to write,
    /// taken off the waiting list: flush it next. A connection that gets
    /// more frames while waiting keeps its place; ones flushed and then
    /// given more go to the back, in the order they were flushed. Flushing
    /// a few of these per loop turn, and reading in between, makes the
    /// writes one continuous sweep: a frame read during a fan-out joins the
    /// writes to the connections the sweep has not reached yet instead of
    /// waiting for the whole fan-out.
    pub fn next_waiting(&mut self) -> Option<ConnId> {
        self.sweep.next_waiting(&mut self.peers)
    }

    /// Whether some connection may have new frames to write (the waiting
    /// list may hold only connections that left; [`Relay::next_waiting`]
    /// then returns `None`).
    pub fn has_waiting(&self) -> bool {
        self.sweep.has_waiting()
    }

    /// Moves the ids marked closing since the last call into `out`.
    pub fn take_closing(&mut self, out: &mut Vec<ConnId>) {
        out.append(&mut self.closing);
    }

    /// Writes `id`'s queue into its `io` until it drains or would block.
    /// A write error closes the connection; so does a queue still over
    /// `max_queue` when the writer blocks: a consumer that cannot keep up.
    pub fn flush(&mut self, id: ConnId) -> Flush {
        let Some(peer) = self.peers.get_mut(id) else {
            return Flush::Closed;
        };
        if peer.closing.is_some() {
            return Flush::Closed;
        }
        match write_queue(peer, &mut self.stats) {
            Ok(Flush::Drained) => {
                if let Some(paced) = &mut peer.paced {
                    paced.written(self.now);
                }
                Flush::Drained
            }
            Ok(Flush::Blocked) if peer.outbox.queued_bytes() > self.limits.max_queue => {
                peer.outbox.clear();
                self.stats.slow_consumers += 1;
                self.close(id, CloseReason::SlowConsumer);
                Flush::Closed
            }
            Ok(flush) => flush,
            Err(error) => {
                self.close(id, CloseReason::IoError(error.kind()));
                Flush::Closed
            }
        }
    }

    /// Writes what is queued for a connection that is closing, best effort
    /// and without blocking: used for a graceful shutdown.
    pub fn flush_closing(&mut self, id: ConnId) -> Flush {
        match self.peers.get_mut(id) {
            Some(peer) => write_queue(peer, &mut self.stats).unwrap_or(Flush::Closed),
            None => Flush::Closed,
        }
    }

    /// Removes a connection and returns it with the reason it closed.
    pub fn remove(&mut self, id: ConnId) -> Option<(Peer<T>, CloseReason)> {
        let peer = self.peers.try_remove(id)?;
        self.stats.connections -= 1;
        if let (Some(seat), Mode::Members(roster)) = (peer.member, &mut self.mode) {
            roster.leave(seat, id);
        }
        if peer.paced.is_some() {
            self.seed_peers.retain(|&seed| seed != id);
        }
        self.sweep.remove(peer.place, &self.peers);
        if let Some(ip) = peer.ip {
            self.per_address.release(ip);
        }
        if let Trust::Unproven { held } = peer.trust {
            self.pre_auth.update(held, 0);
        }
        let peers = &self.peers;
        self.deadlines.compact(peers.len(), |deadline| {
            peers.get(deadline.id).is_some_and(|peer| {
                peer.serial == deadline.serial && matches!(peer.trust, Trust::Unproven { .. })
            })
        });
        let reason = peer.closing.unwrap_or(CloseReason::Shutdown);
        Some((peer, reason))
    }
}

impl<T> Places for Slab<Peer<T>> {
    fn place(&self, id: ConnId) -> Option<Place> {
        self.get(id).map(|peer| peer.place)
    }

    fn place_mut(&mut self, id: ConnId) -> Option<&mut Place> {
        self.get_mut(id).map(|peer| &mut peer.place)
    }

    fn open(&self) -> usize {
        self.len()
    }
}

/// The lines sealed from one read, gathered to be queued as one run; and
/// their plaintexts, kept only while there are seed receivers.
#[derive(Default)]
struct Batch {
    sealed: BytesMut,
    count: usize,
    /// A frame opened (in members mode, maybe only an empty one).
    opened: bool,
    keep_plaintexts: bool,
    /// Each kept plaintext followed by `\n`, and their lengths.
    plaintexts: BytesMut,
    lens: Vec<usize>,
}

impl Batch {
    /// Opens `line`, refuses it if it is a replay under key index `key`
    /// ([`check_replay`]), and reseals it onto the batch; `most` is the
    /// capacity the whole read can need, reserved at the first line. A
    /// frame refused leaves the batch as it was.
    fn reseal(
        &mut self,
        cipher: &mut Cipher,
        replays: &mut ReplayWindow,
        key: u32,
        line: &[u8],
        most: usize,
    ) -> Result<(), FrameError> {
        let opened = cipher.open_frame(line).map_err(FrameError::Open)?;
        check_replay(cipher, replays, key, &opened.nonce)
            .map_err(|Replayed| FrameError::Replayed)?;
        if self.sealed.capacity() == 0 {
            self.sealed.reserve(most);
        }
        if self.keep_plaintexts {
            let start = self.plaintexts.len();
            seed::push_message(
                &mut self.plaintexts,
                &mut self.lens,
                cipher.plaintext(&opened),
            );
            let end = self.plaintexts.len() - 1;
            cipher.seal_into(&self.plaintexts[start..end], &mut self.sealed);
        } else {
            cipher.reseal_opened(&opened, &mut self.sealed);
        }
        self.count += 1;
        self.opened = true;
        Ok(())
    }

    /// Members mode: opens `line` under `seat`'s key and keeps its
    /// plaintext stamped with the member's name; an empty plaintext only
    /// identifies, and is not kept.
    /// A replay ([`check_replay`], under the member's replay key) is
    /// refused and leaves the batch as it was.
    fn restamp(
        &mut self,
        roster: &mut Roster,
        replays: &mut ReplayWindow,
        seat: Seat,
        line: &[u8],
    ) -> Result<(), FrameError> {
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
        let len = stamped.len;
        self.opened = true;
        if len > 0 {
            self.lens.push(len);
            self.count += 1;
        }
        Ok(())
    }

    /// Bytes the kept plaintexts take sealed, as lines.
    fn sealed_len(&self) -> usize {
        self.lens
            .iter()
            .map(|&len| wire::encoded_len(len) + 1)
            .sum()
    }

    /// Seals every kept plaintext, as a line each, into `out`.
    fn seal_plaintexts(&self, sealer: &mut impl Seal, out: &mut BytesMut) {
        let mut start = 0;
        for &len in &self.lens {
            if let Some(plaintext) = self.plaintexts.get(start..start + len) {
                sealer.seal_into(plaintext, out);
            }
            start += len + 1;
        }
    }
}

/// One read's fan-out in members mode: for each recipient member, the
/// stamped plaintexts sealed once under its key into the shared arena, and
/// that run queued for each of its connections (one reference count each).
struct MemberFanOut<'a, T> {
    peers: &'a mut Slab<Peer<T>>,
    fan_out: FanOut<'a>,
    stats: &'a mut Stats,
    closing: &'a mut Vec<ConnId>,
    /// Sized for every member's run at once: one allocation per read.
    arena: BytesMut,
    from: ConnId,
    batch: &'a Batch,
    now: Instant,
    gap: Duration,
    max_queue: usize,
}

impl<T> MemberFanOut<'_, T> {
    /// Queues the batch for one member's connections, `conns`.
    fn queue(&mut self, conns: &[ConnId], sealer: &mut KeySealer<'_>) {
        let mut run: Option<Frames> = None;
        for &id in conns {
            if id == self.from {
                continue;
            }
            let Some(peer) = self.peers.get_mut(id) else {
                continue;
            };
            if peer.closing.is_some() {
                continue;
            }
            if let Some(paced) = peer.paced.as_mut() {
                paced.push(&self.batch.plaintexts, &self.batch.lens);
                if paced.waiting_bytes() + peer.outbox.queued_bytes() > self.max_queue {
                    peer.paced = Some(Box::default());
                    peer.outbox.clear();
                    self.stats.slow_consumers += 1;
                    peer.closing = Some(CloseReason::SlowConsumer);
                    self.closing.push(id);
                } else if queue_paced(peer, sealer, self.now, self.gap) {
                    self.fan_out.queued(id, &mut peer.place);
                }
                continue;
            }
            let frames = run.get_or_insert_with(|| {
                self.batch.seal_plaintexts(sealer, &mut self.arena);
                Frames::new(self.arena.split().freeze(), self.batch.count)
            });
            peer.outbox.push(frames.clone());
            self.fan_out.queued(id, &mut peer.place);
        }
    }
}

/// Why a frame from a client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameError {
    /// It did not open.
    Open(OpenError),
    /// It opened, but is a replay.
    Replayed,
}

impl FrameError {
    /// The reason its sender is closed for.
    fn reason(self) -> CloseReason {
        match self {
            FrameError::Open(error) => CloseReason::BadFrame(error),
            FrameError::Replayed => CloseReason::Replay,
        }
    }
}

/// The replay check every client frame that opened passes, in both modes:
/// refuses a nonce `cipher` sealed with itself (a relay frame reflected
/// back), or one accepted before under key index `key` (0 in shared-key
/// mode, the member's index in members mode), and remembers it otherwise.
pub(crate) fn check_replay(
    cipher: &Cipher,
    replays: &mut ReplayWindow,
    key: u32,
    nonce: &[u8; NONCE_LEN],
) -> Result<(), Replayed> {
    if cipher.is_own_nonce(nonce) {
        return Err(Replayed);
    }
    replays.check_and_insert(key, nonce)
}

/// Queues a seed receiver's next frame if one is due and its queue is
/// empty (the last one written whole); returns whether it queued one.
fn queue_paced<T>(peer: &mut Peer<T>, cipher: &mut impl Seal, now: Instant, gap: Duration) -> bool {
    let Some(paced) = &mut peer.paced else {
        return false;
    };
    if !peer.outbox.is_empty() {
        return false;
    }
    let Some((line, messages)) = paced.seal_due(cipher, now, gap) else {
        return false;
    };
    debug!("seed frame of {messages} messages");
    peer.outbox.push(Frames::one(line));
    true
}

/// [`queue_paced`] with the key `peer` is sealed for: the shared one, or
/// its member's.
fn queue_paced_in<T>(mode: &mut Mode, peer: &mut Peer<T>, now: Instant, gap: Duration) -> bool {
    match mode {
        Mode::Shared(cipher) => queue_paced(peer, cipher, now, gap),
        Mode::Members(roster) => match peer.member.and_then(|seat| roster.sealer(seat)) {
            Some(mut sealer) => queue_paced(peer, &mut sealer, now, gap),
            None => false,
        },
    }
}

fn write_queue<T: Write>(peer: &mut Peer<T>, stats: &mut Stats) -> io::Result<Flush> {
    while !peer.outbox.is_empty() {
        match peer.outbox.write_to(&mut peer.io) {
            Ok(written) if written.bytes == 0 => {
                return Err(io::ErrorKind::WriteZero.into());
            }
            Ok(written) => {
                stats.bytes_out += written.bytes as u64;
                stats.frames_out += written.frames as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Flush::Drained)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Key;

    fn relay() -> Relay<Vec<u8>> {
        let key = Key::from_bytes(&[7; 16]).expect("a 16-byte key");
        Relay::new(Cipher::new(&key).expect("cipher"), Limits::default())
    }

    /// A client's cipher under the relay's key.
    fn client() -> Cipher {
        let key = Key::from_bytes(&[7; 16]).expect("a 16-byte key");
        Cipher::new(&key).expect("cipher")
    }

    /// A fresh frame of `text` (the relay refuses one sent twice).
    fn sealed(client: &mut Cipher, text: &[u8]) -> Vec<u8> {
        let mut line = BytesMut::new();
        client.seal_into(text, &mut line);
        line.to_vec()
    }

    fn sweep(relay: &mut Relay<Vec<u8>>) {
        while let Some(id) = relay.next_waiting() {
            assert_eq!(relay.flush(id), Flush::Drained);
        }
    }

    /// Connections that are served once and leave, while no connection
    /// already written gets anything, leave entries no fan-out passes: they
    /// must not pile up, and dropping them must not drop a live one.
    #[test]
    fn churned_connections_leave_no_pile_of_stale_entries() {
        let mut relay = relay();
        let mut client = client();
        // `sender` is written once, then only sends: it keeps a live entry
        // in the written list that no fan-out passes.
        let sender = relay.admit(Vec::new()).expect("admitted");
        let first = relay.admit(Vec::new()).expect("admitted");
        relay.receive(first, &sealed(&mut client, b"hello"));
        sweep(&mut relay);
        relay.close(first, CloseReason::PeerClosed);
        assert!(relay.remove(first).is_some());

        let mut newcomers = Vec::new();
        for _ in 0..10_000 {
            for _ in 0..3 {
                newcomers.push(relay.admit(Vec::new()).expect("admitted"));
            }
            relay.receive(sender, &sealed(&mut client, b"hello"));
            sweep(&mut relay);
            for id in newcomers.drain(..) {
                relay.close(id, CloseReason::PeerClosed);
                assert!(relay.remove(id).is_some());
            }
            assert!(relay.sweep.written_entries() <= 2 * relay.peers.len() + 64 + 3);
        }

        // The sender's entry survived: a frame for it is still written.
        let last = relay.admit(Vec::new()).expect("admitted");
        relay.receive(last, &sealed(&mut client, b"hello"));
        sweep(&mut relay);
        let got = relay.peers[sender]
            .io
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        assert_eq!(got, 2, "the sender got the first frame and the last");
        assert_eq!(relay.stats().frames_out, 1 + 30_000 + 1);
    }
}
