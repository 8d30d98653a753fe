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
//! frames where their tags verify ([`eaxchat_proto::seed`]), each opened
//! and sealed like a line. Once one is taken that way the connection is a
//! seed receiver: instead of the shared run it gets the plaintexts, joined
//! as lines into one frame of its own at a time, written only when the
//! last one was written whole and at least the seed write gap ago (the
//! clock is the caller's: [`Relay::set_now`], [`Relay::next_timer`],
//! [`Relay::run_timers`]).
//!
//! Every frame that opens passes one replay check
//! (`check_replay` in `receive.rs`): a nonce the relay sealed with
//! itself, or one accepted before under the same key within the window of
//! [`eaxchat_proto::replay`], is refused as a replay.
//!
//! In session mode ([`Relay::with_sessions`]) every connection starts with
//! a Noise handshake (`handshake.rs`): its first line is a hello, answered
//! with a welcome or a refusal, and its frames after that are opened and
//! sealed under that one session's keys, with counter nonces that refuse a
//! replay, a gap or a reflection without any window (`session.rs`). A
//! session member is a member like any other from then on: stamped, in
//! rooms, told things in the form it asked for.
//!
//! A connection that sends a line that does not open, a replay, or a line
//! too long, is marked closing and nothing more it sent is relayed. A
//! consumer whose queue passes the limit is marked closing and its queue
//! dropped. Closing connections are handed to the caller by
//! [`Relay::take_closing`], and removed with [`Relay::remove`]: a
//! connection leaves in that one place.
//!
//! The relay never touches a socket, a file, a thread or a clock: the
//! time comes from its caller, at [`Relay::new`] (the monotonic clock and
//! the wall clock, read once) and at every [`Relay::set_now`], so tests
//! and fuzz targets drive it exactly.
//!
//! The code is split by concern. This file holds the [`Relay`] and
//! [`Peer`] types, admission, the accessors and the members reload; beside
//! it are `limits.rs` (what a relay enforces, and the connections it
//! refuses), `close.rs` (why and how a connection leaves), `receive.rs`
//! (the bytes a connection sent, to frames), `batch.rs` (one read's frames,
//! sealed), `fanout.rs` (a batch queued for every other connection, and
//! the seed receivers' pacing), `trust.rs` (the pre-auth budget,
//! first-frame deadlines and the clock), `flush.rs` (the queues written
//! out), `chat_layer.rs` (rooms, presence, history on arrival, flood
//! control, and what each connection is told), `apply/` (the `/` commands
//! applied, one file each) and `cluster.rs` (what is published to, and
//! taken from, the other relays of a cluster).

mod apply;
mod arena;
mod batch;
mod chat_layer;
mod close;
mod cluster;
mod e2e;
mod fanout;
mod flush;
mod handshake;
mod invites;
mod limits;
mod membership;
mod receive;
mod scrollback;
mod session;
#[cfg(test)]
mod tests;
mod trust;

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use slab::Slab;

use crate::guard::{Deadlines, PerAddress, PreAuthBudget};
use crate::members::{AnyMembers, Members, SessionMembers};
use crate::outbox::Outbox;
use crate::roster::{Changes, Roster, Seat};
use crate::session_roster::SessionRoster;
use crate::stats::Stats;
use crate::sweep::{Place, WriteSweep};
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::lines::LineReader;
use eaxchat_proto::name::Name;
use eaxchat_proto::opened_lines::OpenedLines;
use eaxchat_proto::replay::ReplayWindow;
use eaxchat_proto::seed::{self, Paced, Splitter};
use eaxchat_proto::session::{PublicKey, StaticSecret};

pub use crate::conn_id::ConnId;
pub use chat_layer::{ChatConfig, MAX_COMMAND_TEXT};
pub use close::{CloseReason, FrameRefusal, HandshakeRefusal};
pub use fanout::{FANOUT_ARENA, MIN_READ};
pub use flush::Flush;
pub use invites::{
    Joined, MEMBER_INVITES_OPEN, PendingInvite, WRONG_PER_ADDRESS, WRONG_PER_INVITE, WRONG_TOTAL,
    WRONG_WINDOW,
};
pub use limits::{Limits, Refusal, Refused};
pub use membership::{MAX_ROOMS_PER_CONN, MemberRooms};
pub use scrollback::HistoryRequest;
use session::SessionState;
use trust::Trust;

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
    /// Members and session mode: the member it identified as.
    member: Option<Seat>,
    /// Session mode: its handshake, then its session's keys.
    session: SessionState,
    /// Members mode: reads of its unterminated bytes tried as a first frame.
    identify_tries: u8,
    /// Its room, name and flood-control bucket.
    chat: chat_layer::Chat,
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
    /// mode: whether it identified as a member; in session mode: whether
    /// its handshake finished).
    pub fn is_authenticated(&self) -> bool {
        self.trust == Trust::Authenticated
    }

    /// Session mode: the device key its session was established with.
    pub fn session_key(&self) -> Option<&PublicKey> {
        self.session.device()
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
    /// A handshake per connection, then keys per session: each message
    /// stamped with its sender's name and sealed once per recipient
    /// session.
    Sessions(SessionRoster),
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
    /// The client nonces accepted lately, for
    /// `check_replay` (in `receive.rs`).
    replays: ReplayWindow,
    /// Rooms, history, flood control and the log's records
    /// (`chat_layer.rs`).
    chat: chat_layer::ChatState,
    /// The time the relay started at, for wall-clock stamps.
    epoch: Instant,
    /// The wall clock at `epoch`, in Unix milliseconds.
    epoch_wall_millis: u64,
    /// The cluster this relay is in (`--cluster`), if any (`cluster.rs`).
    cluster: Option<Box<crate::cluster::Cluster>>,
    /// Session mode's invites and wrong-secret counts (`invites.rs`).
    invites: invites::Invites,
    /// The blocks a read's fan-out is sealed into when every recipient
    /// seals under a key of its own (members and session mode), kept from
    /// one read to the next (`arena.rs`).
    arena: arena::Arena,
    /// Shared-key mode: the lines of the read being taken, opened side by
    /// side ahead of it (`receive.rs`); empty between reads.
    opened_lines: OpenedLines,
}

impl<T: Write> Relay<T> {
    /// A shared-key relay with no connections, started at `now` on the
    /// caller's monotonic clock, when its wall clock read `wall`: the
    /// timestamps it gives messages count on from `wall` as
    /// [`Relay::set_now`] moves the time past `now`.
    pub fn new(cipher: Cipher, limits: Limits, now: Instant, wall: SystemTime) -> Relay<T> {
        Relay::with_mode(Mode::Shared(cipher), limits, now, wall)
    }

    /// A members relay with no connections, started at `now` and `wall` as
    /// [`Relay::new`]: each connection identifies as one of `roster`'s
    /// members by its first frame.
    pub fn with_members(
        roster: Roster,
        limits: Limits,
        now: Instant,
        wall: SystemTime,
    ) -> Relay<T> {
        Relay::with_mode(Mode::Members(roster), limits, now, wall)
    }

    /// A session relay with no connections, started at `now` and `wall` as
    /// [`Relay::new`], serving the devices of `members` under the relay's
    /// static `identity` (its public key is what clients pin).
    ///
    /// Every connection's first line must be a hello (a Noise IK message
    /// 1), within `limits.first_frame_timeout` of its admission; until its
    /// handshake finishes what it holds counts against
    /// `limits.pre_auth_budget`. A device key in `members` gets a welcome
    /// and is the member from then on; any other hello gets a refusal line,
    /// and the connection closes once that is written (see
    /// [`CloseReason::HandshakeRefused`]). Newline-less frames are not
    /// taken. A member arrives (is sent the room's history and announced)
    /// at its first frame that opens, as in members mode: a client that
    /// only listens sends an empty frame.
    pub fn with_sessions(
        members: &SessionMembers,
        identity: StaticSecret,
        limits: Limits,
        now: Instant,
        wall: SystemTime,
    ) -> Relay<T> {
        let roster = SessionRoster::new(members, identity);
        Relay::with_mode(Mode::Sessions(roster), limits, now, wall)
    }

    fn with_mode(mode: Mode, limits: Limits, now: Instant, wall: SystemTime) -> Relay<T> {
        Relay {
            peers: Slab::new(),
            mode,
            limits,
            stats: Stats::default(),
            sweep: WriteSweep::default(),
            closing: Vec::new(),
            now,
            pre_auth: PreAuthBudget::new(limits.pre_auth_budget),
            deadlines: Deadlines::new(limits.first_frame_timeout),
            per_address: PerAddress::new(limits.per_address()),
            seed_peers: Vec::new(),
            seed_write_gap: seed::DEFAULT_WRITE_GAP,
            replays: ReplayWindow::new(),
            arena: arena::Arena::default(),
            opened_lines: OpenedLines::default(),
            chat: chat_layer::ChatState::new(ChatConfig::default()),
            epoch: now,
            epoch_wall_millis: wall
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as u64),
            cluster: None,
            invites: invites::Invites::new(),
        }
    }

    /// Sets the least time between two frames written to a seed receiver.
    pub fn set_seed_write_gap(&mut self, gap: Duration) {
        self.seed_write_gap = gap;
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
        let id = self.peers.insert(Peer {
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
            session: SessionState::None,
            identify_tries: 0,
            chat: chat_layer::Chat::default(),
        });
        if self.is_sessions() {
            self.await_hello(id);
        } else if self.requires_proof() {
            // In a room (so sent anything) only once a frame of its opens.
            self.await_proof(id);
        } else {
            self.enter_default_room(id);
        }
        Ok(id)
    }

    /// Whether this relay serves members, each under their own key (in
    /// members mode or in session mode).
    pub fn is_members(&self) -> bool {
        matches!(self.mode, Mode::Members(_) | Mode::Sessions(_))
    }

    /// Whether this relay speaks sessions ([`Relay::with_sessions`]).
    pub fn is_sessions(&self) -> bool {
        matches!(self.mode, Mode::Sessions(_))
    }

    /// Session mode: the relay's public key, what clients pin.
    pub fn relay_key(&self) -> Option<&PublicKey> {
        match &self.mode {
            Mode::Sessions(roster) => Some(roster.public_key()),
            _ => None,
        }
    }

    /// How many members there are (0 in shared-key mode; names, not
    /// devices, in session mode).
    pub fn member_count(&self) -> usize {
        match &self.mode {
            Mode::Shared(_) => 0,
            Mode::Members(roster) => roster.len(),
            Mode::Sessions(roster) => roster.len(),
        }
    }

    /// The name of the member connection `id` identified as (in session
    /// mode: whose device's handshake it finished).
    pub fn member_name(&self, id: ConnId) -> Option<&Name> {
        let seat = self.peers.get(id)?.member?;
        match &self.mode {
            Mode::Shared(_) => None,
            Mode::Members(roster) => roster.name(seat),
            Mode::Sessions(roster) => roster.name(seat),
        }
    }

    /// Serves `members` from now on: a static-key file ([`Members`]) in
    /// members mode, a sessions file ([`SessionMembers`]) in session mode.
    /// The connections of members no longer in it, or whose key changed
    /// (in session mode: the sessions of devices no longer in it), are
    /// closed within this call ([`CloseReason::MemberRemoved`]); those of
    /// the others stay as they are. Connections not yet identified
    /// identify against `members`. Returns what changed; `None`, changing
    /// nothing, in shared-key mode (which has no members to reload) or for
    /// a file of the other kind than the relay's mode.
    pub fn reload_members<'m>(&mut self, members: impl Into<MembersRef<'m>>) -> Option<Changes> {
        let members = match (members.into(), &self.mode) {
            (MembersRef::Static(members), Mode::Members(_)) => members,
            (MembersRef::Sessions(members), Mode::Sessions(_)) => {
                let changes = self.reload_sessions(members);
                self.e2e_members_gone(&changes.removed);
                return Some(changes);
            }
            _ => return None,
        };
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
}

/// A members file to reload ([`Relay::reload_members`]), of either kind.
#[derive(Debug, Clone, Copy)]
pub enum MembersRef<'m> {
    /// A static-key file, for members mode.
    Static(&'m Members),
    /// A sessions file, for session mode.
    Sessions(&'m SessionMembers),
}

impl<'m> From<&'m Members> for MembersRef<'m> {
    fn from(members: &'m Members) -> MembersRef<'m> {
        MembersRef::Static(members)
    }
}

impl<'m> From<&'m SessionMembers> for MembersRef<'m> {
    fn from(members: &'m SessionMembers) -> MembersRef<'m> {
        MembersRef::Sessions(members)
    }
}

impl<'m> From<&'m AnyMembers> for MembersRef<'m> {
    fn from(members: &'m AnyMembers) -> MembersRef<'m> {
        match members {
            AnyMembers::Static(members) => MembersRef::Static(members),
            AnyMembers::Sessions(members) => MembersRef::Sessions(members),
        }
    }
}
