//! The network side: one thread, one `mio` poll loop, moving bytes between
//! sockets and the [`Relay`].
//!
//! Each loop turn reads every readable connection once (at most 64 KiB, so
//! one flooding client cannot starve the rest), lets the relay queue what it
//! opened, then writes the next few connections with new frames, oldest
//! first, each with one vectored write of its whole queue. Writes are thus
//! one continuous sweep over the connections, interleaved with reads: what
//! arrives mid-sweep reaches the connections the sweep has not reached yet
//! in the same write. Write interest is registered only for a connection
//! whose socket buffer filled up. The relay's clock is set once per turn,
//! and its timed work (seed receivers' paced frames) run before the writes;
//! the poll waits no longer than that work's next due time. Connections the
//! relay marked closing are removed at the end of the turn, in one place
//! (`remove_closed`).
//!
//! A relay in a cluster (`--cluster`) has one more source of readiness:
//! the NATS thread ([`crate::link`]) wakes the loop when it has
//! handed envelopes over; they are given to the relay after the turn's
//! reads. What the relay has for NATS is handed to the thread, never
//! waiting, right after the reads (before the local writes, so the NATS
//! thread publishes while this one writes) and again at the end of the
//! turn (what timers and closes had).
//!
//! This file owns the [`Server`], its connections' sockets and readiness,
//! the loop turn, reads, writes and the one place a connection is removed;
//! it never looks inside a frame. The rest of the loop, by concern:
//! - `accept`: new TCP connections, a turn's worth at a time, with the
//!   back-off when descriptors run out;
//! - `members_watch`: a members or session relay's file, read again on
//!   SIGHUP or when it changes ([`MembersWatch`]);
//! - `shutdown`: the [`StopHandle`], SIGINT and SIGTERM, and the drain;
//! - `web`: `--web`'s listener, HTTP heads, the upgrade to WebSocket and
//!   the browsers' timeouts;
//! - `web_tls`: TLS on `--web` (the handshake, its deadline and limits,
//!   the certificate's reload);
//! - `metrics`: `--metrics`'s own listener for `/metrics`;
//! - `cluster` (the `nats` feature): the hand-overs to and from the NATS
//!   thread;
//! - `admin`: the config file reread on SIGHUP, and `relay status`'s
//!   socket;
//! - `log_pages`: the message log's records handed over, and `/history`
//!   pages older than memory read back from it;
//! - `member_rooms`: the members' remembered rooms in `MEMBERS.rooms`.
//! - `delivery`: the end-to-end rooms' Delivery Service in `MEMBERS.e2e`.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};
use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token};

#[cfg(feature = "nats")]
use crate::link::Link;
use crate::msglog::{LogWriter, Record};
#[cfg(feature = "nats")]
use eaxchat_core::cluster::ToNats;
use eaxchat_core::members::SessionMembers;
use eaxchat_core::relay::{ChatConfig, CloseReason, ConnId, Flush, Limits, Relay};
use eaxchat_core::roster::Roster;
use eaxchat_core::stats::Stats;
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::session::StaticSecret;

mod accept;
mod admin;
#[cfg(feature = "nats")]
mod cluster;
mod delivery;
mod invites;
mod log_pages;
mod member_rooms;
mod members_watch;
mod metrics;
mod shutdown;
mod web;
mod web_tls;

pub use accept::ACCEPTS_PER_TURN;
pub use admin::{ConfigReload, Reloaded};
pub use log_pages::PAGE_WAIT;
pub use member_rooms::WRITE_GAP;
pub use members_watch::{MEMBERS_CHECK_INTERVAL, MembersWatch, ReloadState};
pub use shutdown::StopHandle;
use web::{HTTP_BASE, WEB_LISTENER, Web, WebConn};
pub use web::{MetricsAccess, WebConfig};

const LISTENER: Token = Token(usize::MAX);
const STOP: Token = Token(usize::MAX - 1);
const RELOAD: Token = Token(usize::MAX - 2);
/// The NATS thread's waker (`--cluster`).
#[cfg(feature = "nats")]
const CLUSTER_WAKE: Token = Token(usize::MAX - 4);

/// Most hand-overs from the NATS thread taken per loop turn: the rest wait
/// for the next turn, after this turn's writes.
#[cfg(feature = "nats")]
pub const CLUSTER_PER_TURN: usize = 1024;

/// Size of the one buffer every socket is read into, and the most read from
/// one connection per loop turn. A connection with more waiting is read
/// again next turn, after this turn's writes: a fast sender's stream is
/// relayed in a pipeline of reads and writes rather than in bursts whose
/// recipients wait while the whole burst is opened and sealed, and a
/// flooding sender cannot starve the others. It also means the next turn's
/// read usually finds the next message instead of failing with WouldBlock.
/// docs/performance.md ("What changed to get here") has the figures against the
/// four reads per turn this replaced. It is the most read at once: a
/// connection whose room is large reads less
/// ([`eaxchat_core::relay::Relay::read_budget`]).
pub const READ_BUF_LEN: usize = 64 * 1024;
/// Connections written per loop turn. Between two turns' writes the loop
/// reads again, so a frame that arrives during a fan-out to many
/// connections joins the writes to those not yet reached instead of
/// waiting for the whole fan-out to finish (on loopback 100 writes take
/// 0.5–0.7 ms here). 4 to 32 measured alike for latency; fewer than the
/// connections of a small fan-out split its sweep over two turns.
pub const FLUSHES_PER_TURN: usize = 16;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Limits enforced on clients.
    pub limits: Limits,
    /// How often to log the stats line; `None` for only at exit.
    pub stats_interval: Option<Duration>,
    /// How long shutdown waits for queued frames to be written.
    pub shutdown_grace: Duration,
    /// Least time between two frames written to a seed receiver.
    pub seed_write_gap: Duration,
}

/// A client connection as the server holds it.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    write_interest: bool,
    /// The loop turn this connection was last read in.
    read_turn: u64,
    /// A browser's connection (`--web`): its WebSocket state.
    web: Option<Box<WebConn>>,
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    /// The relay's lines: as they are on the TCP port, one WebSocket text
    /// frame each for a browser.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match &mut self.web {
            Some(web) => web.write_lines(&mut self.stream, bufs),
            None => self.stream.write_vectored(bufs),
        }
    }

    /// Nothing to do: writes go straight to the socket, which has no
    /// userspace buffer to flush.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Conn {
    /// Reads what the peer sent: a browser's through its TLS, if any.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.web {
            Some(web) => web.read(&mut self.stream, buf),
            None => self.stream.read(buf),
        }
    }
}

/// The relay server: a listener, a poll, and the relay.
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    stop_rx: UnixStream,
    stop_tx: StopHandle,
    relay: Relay<Conn>,
    config: Config,
    read_buf: Box<[u8]>,
    /// Connections that gave data this turn: read again next turn, until a
    /// read would block.
    read_again: Vec<ConnId>,
    /// Scratch list reused every turn (closing ids).
    ids: Vec<ConnId>,
    accept_ready: bool,
    accept_paused_until: Option<Instant>,
    /// Loop turns so far; each connection is read at most once per turn.
    turn: u64,
    /// A members relay's file.
    members: Option<MembersWatch>,
    /// Readable when SIGHUP came ([`Server::reload_on_sighup`]).
    reload_rx: Option<UnixStream>,
    /// The message log's writer thread, if `--log` is on.
    log: Option<LogWriter>,
    /// Scratch list of records for the log, reused every turn.
    records: Vec<Record>,
    /// The web listener and its connections (`--web`).
    web: Option<Web>,
    /// `/metrics`'s own listener (`--metrics`).
    metrics: Option<metrics::Metrics>,
    /// The NATS thread (`--cluster`).
    #[cfg(feature = "nats")]
    link: Option<Link>,
    /// The last turn took [`CLUSTER_PER_TURN`] hand-overs: more may wait.
    link_busy: bool,
    /// Scratch list of hand-overs for the NATS thread, reused every turn.
    #[cfg(feature = "nats")]
    outgoing: Vec<ToNats>,
    /// The config reload and the admin socket (`admin.rs`).
    admin: admin::Admin,
    /// `/history` pages waiting for the log's writer (`log_pages.rs`).
    pages: log_pages::PendingPages,
    /// `MEMBERS.rooms` (`member_rooms.rs`).
    member_rooms: member_rooms::RoomsFile,
    /// `MEMBERS.e2e` (`delivery.rs`).
    delivery: delivery::DeliveryFile,
}

impl Server {
    /// Binds the listener of a shared-key relay. Nothing is accepted until
    /// [`Server::run`].
    pub fn bind(config: Config, cipher: Cipher) -> io::Result<Server> {
        let relay = Relay::new(cipher, config.limits, Instant::now(), SystemTime::now());
        Server::bind_relay(config, relay, None)
    }

    /// Binds the listener of a members relay serving `roster`, read from
    /// the file `watch` watches.
    pub fn bind_members(config: Config, roster: Roster, watch: MembersWatch) -> io::Result<Server> {
        let relay = Relay::with_members(roster, config.limits, Instant::now(), SystemTime::now());
        Server::bind_relay(config, relay, Some(watch))
    }

    /// Binds the listener of a session relay serving the devices of
    /// `members` (read from the file `watch` watches) as `identity`.
    pub fn bind_sessions(
        config: Config,
        members: &SessionMembers,
        identity: StaticSecret,
        watch: MembersWatch,
    ) -> io::Result<Server> {
        let relay = Relay::with_sessions(
            members,
            identity,
            config.limits,
            Instant::now(),
            SystemTime::now(),
        );
        Server::bind_relay(config, relay, Some(watch))
    }

    fn bind_relay(
        config: Config,
        mut relay: Relay<Conn>,
        members: Option<MembersWatch>,
    ) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.listen)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let (rx, tx) = StdUnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        let mut stop_rx = UnixStream::from_std(rx);
        poll.registry()
            .register(&mut stop_rx, STOP, Interest::READABLE)?;
        let mut server = Server {
            poll,
            listener: Some(listener),
            stop_rx,
            stop_tx: StopHandle::new(tx),
            relay: {
                relay.set_seed_write_gap(config.seed_write_gap);
                relay
            },
            config,
            read_buf: vec![0; READ_BUF_LEN].into_boxed_slice(),
            read_again: Vec::new(),
            ids: Vec::new(),
            accept_ready: true,
            accept_paused_until: None,
            turn: 0,
            members,
            reload_rx: None,
            log: None,
            records: Vec::new(),
            web: None,
            metrics: None,
            #[cfg(feature = "nats")]
            link: None,
            link_busy: false,
            #[cfg(feature = "nats")]
            outgoing: Vec::new(),
            admin: admin::Admin::default(),
            pages: log_pages::PendingPages::default(),
            member_rooms: member_rooms::RoomsFile::default(),
            delivery: delivery::DeliveryFile::default(),
        };
        server.read_member_rooms();
        Ok(server)
    }

    /// Opens the web listener (`--web`): the chat page, `/ws`, `/metrics`
    /// and `/healthz`, in this same loop. Returns the address bound.
    pub fn listen_web(&mut self, config: WebConfig) -> io::Result<SocketAddr> {
        let mut web = Web::bind(config)?;
        self.poll
            .registry()
            .register(web.listener_mut(), WEB_LISTENER, Interest::READABLE)?;
        let addr = web.local_addr()?;
        let reloadable = matches!(
            web.config.tls,
            Some(crate::web::tls::TlsSource::Files { .. })
        );
        self.web = Some(web);
        // The certificate is read again on SIGHUP (certbot's deploy hook).
        if reloadable {
            self.reload_on_sighup()?;
        }
        Ok(addr)
    }

    /// Sets up the chat layer (rooms, history, flood control). Call before
    /// [`Server::run`].
    pub fn set_chat(&mut self, config: ChatConfig) {
        self.relay.set_chat(config);
        self.restore_member_rooms();
        self.read_delivery();
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Some(listener) => listener.local_addr(),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// A handle that stops this server.
    pub fn stop_handle(&self) -> io::Result<StopHandle> {
        self.stop_tx.try_clone()
    }

    /// Serves until stopped, then drains queued frames for at most the
    /// shutdown grace and returns the final counters.
    pub fn run(mut self) -> io::Result<Stats> {
        if let Some(why) = self.delivery.unreadable.take() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
        let mut events = Events::with_capacity(1024);
        let mut next_stats = self.config.stats_interval.map(|i| Instant::now() + i);
        let mut retry = Vec::new();
        loop {
            self.turn += 1;
            let timeout = self.poll_timeout(next_stats);
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(e);
            }
            self.relay.set_now(Instant::now());
            self.watch_invites();
            let mut stopping = false;
            let mut hangup = false;
            std::mem::swap(&mut retry, &mut self.read_again);
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_ready = true,
                    STOP => stopping = true,
                    RELOAD => hangup = true,
                    admin::ADMIN => self.serve_admin(),
                    #[cfg(feature = "nats")]
                    CLUSTER_WAKE => {}
                    WEB_LISTENER => self.web_accept_ready(),
                    metrics::METRICS_LISTENER => self.accept_metrics(),
                    Token(key)
                        if (metrics::METRICS_BASE..metrics::METRICS_BASE + metrics::MAX_CONNS)
                            .contains(&key) =>
                    {
                        self.metrics_event(key - metrics::METRICS_BASE)
                    }
                    Token(key) if key >= HTTP_BASE => self.http_event(key - HTTP_BASE),
                    Token(id) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read_from(id);
                        }
                        if event.is_writable() {
                            self.flush_web_control(id);
                            self.write_queued(id);
                        }
                    }
                }
            }
            for id in retry.drain(..) {
                self.read_from(id);
            }
            #[cfg(feature = "nats")]
            {
                self.take_from_cluster();
                // What this turn's reads have for other relays goes to the
                // NATS thread before the local writes: it publishes on the
                // other core while this one writes to local sockets.
                self.give_to_cluster();
            }
            self.write_joined();
            self.watch_members(hangup);
            self.watch_web_tls(hangup);
            if hangup {
                self.reload_config();
            }
            self.accept_some();
            self.accept_web();
            self.check_web_idle(Instant::now());
            self.check_metrics(Instant::now());
            self.relay.run_timers();
            self.write_waiting();
            self.remove_closed();
            self.write_log();
            self.answer_pages();
            self.write_member_rooms(false);
            self.write_delivery();
            // And what the timers and closes since had (a leave, say).
            #[cfg(feature = "nats")]
            self.give_to_cluster();
            if let Some(at) = next_stats.filter(|at| Instant::now() >= *at) {
                info!("{}{}", self.relay.stats(), self.members_stats_fields());
                next_stats = self.config.stats_interval.map(|i| at + i);
            }
            if stopping {
                return self.shut_down();
            }
        }
    }

    fn poll_timeout(&self, next_stats: Option<Instant>) -> Option<Duration> {
        let accept_now = self.accept_ready && self.accept_paused_until.is_none();
        if !self.read_again.is_empty() || accept_now || self.relay.has_waiting() || self.link_busy {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        [
            next_stats,
            self.accept_paused_until,
            self.relay.next_timer(),
            self.members.as_ref().map(MembersWatch::next_check),
            self.web.as_ref().map(Web::next_idle_check),
            self.pages.next_check(),
            self.member_rooms.next_write(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.saturating_duration_since(now))
    }

    /// Reads connection `id` once this turn and hands what came to the
    /// relay. A connection that gave data is read again next turn, until a
    /// read would block: the edge-triggered poll reports it again only
    /// then.
    fn read_from(&mut self, id: ConnId) {
        if self.relay.peer(id).map(|peer| peer.closing().is_some()) != Some(false) {
            return;
        }
        let turn = self.turn;
        let budget = self.relay.read_budget(id, READ_BUF_LEN);
        let Some(conn) = self.relay.io_mut(id) else {
            return;
        };
        if conn.read_turn == turn {
            return;
        }
        conn.read_turn = turn;
        let read = loop {
            match conn.read_some(&mut self.read_buf[..budget]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                read => break read,
            }
        };
        let web = conn.web.is_some();
        match read {
            Ok(0) => self.relay.close(id, CloseReason::PeerClosed),
            Ok(n) if web => {
                // The buffer is lent out for the call: no copy of the read.
                let buf = std::mem::take(&mut self.read_buf);
                self.take_web_bytes(id, &buf[..n]);
                self.read_buf = buf;
                self.write_delivery();
                self.read_again.push(id);
            }
            Ok(n) => {
                self.relay.receive(id, &self.read_buf[..n]);
                self.write_delivery();
                self.read_again.push(id);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                if web && e.kind() == io::ErrorKind::InvalidData {
                    let addr = conn.addr;
                    self.note_tls_error(addr, &e);
                }
                let reason = match e.kind() {
                    io::ErrorKind::ConnectionReset => CloseReason::PeerClosed,
                    kind => CloseReason::IoError(kind),
                };
                self.relay.close(id, reason);
            }
        }
    }

    /// Writes the next few connections with new frames, oldest first.
    fn write_waiting(&mut self) {
        for _ in 0..FLUSHES_PER_TURN {
            let Some(id) = self.relay.next_waiting() else {
                return;
            };
            self.write_queued(id);
        }
    }

    /// Writes `id`'s queue and keeps write interest only while it is blocked.
    fn write_queued(&mut self, id: ConnId) {
        let flush = self.relay.flush(id);
        // A TLS browser's records the socket did not take wait in rustls:
        // write interest stays until they are gone.
        let tls_pending = self
            .relay
            .io_mut(id)
            .and_then(|conn| conn.web.as_ref())
            .is_some_and(|web| web.tls_pending());
        self.set_write_interest(id, flush == Flush::Blocked || tls_pending);
    }

    fn set_write_interest(&mut self, id: ConnId, wanted: bool) {
        let registry = self.poll.registry();
        let Some(conn) = self.relay.io_mut(id) else {
            return;
        };
        if conn.write_interest == wanted {
            return;
        }
        let interest = if wanted {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        match registry.reregister(&mut conn.stream, Token(id), interest) {
            Ok(()) => conn.write_interest = wanted,
            Err(e) => self.relay.close(id, CloseReason::IoError(e.kind())),
        }
    }

    /// Removes every connection the relay marked closing. The one place a
    /// connection leaves.
    fn remove_closed(&mut self) {
        let mut ids = std::mem::take(&mut self.ids);
        self.relay.take_closing(&mut ids);
        for id in ids.drain(..) {
            let Some((mut peer, reason)) = self.relay.remove(id) else {
                continue;
            };
            let _ = self.poll.registry().deregister(&mut peer.io.stream);
            if let Some(web) = peer.io.web.as_mut() {
                // The close frame, if the socket takes it now.
                if matches!(reason, CloseReason::Shutdown) {
                    web.close_for_shutdown();
                }
                let _ = web.flush_control(&mut peer.io.stream);
                web.close_tls(&mut peer.io.stream);
            }
            let addr = peer.io.addr;
            match reason {
                CloseReason::PeerClosed | CloseReason::Shutdown | CloseReason::MemberRemoved => {
                    info!("conn {id} ({addr}): closed: {reason}")
                }
                _ => warn!("conn {id} ({addr}): closed: {reason}"),
            }
        }
        self.ids = ids;
    }
}
