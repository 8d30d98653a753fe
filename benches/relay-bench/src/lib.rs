//! The `relay-bench` load generator: scenarios, flow control, verification
//! and reporting, for an eaxchat relay or, as a baseline, a plain line
//! broker (`ncat --broker`) or Redis pub/sub relaying lines of the same
//! length. A package of its own beside `eaxchat`, whose wire format, cipher
//! and key it uses; its binaries are `relay-bench` and `relay-floor`.
//!
//! Each scenario runs in one thread and one `mio` poll loop: publishers and
//! subscribers are non-blocking sockets in the same loop, subscribers read
//! into one shared buffer, and nothing is allocated per message. That keeps
//! relay-bench's own cost per delivery far below the relay's, and the report
//! carries relay-bench's CPU time so a reader can tell when it is the limit.
//!
//! - [`wire`]: message encoding for each protocol.
//! - [`roster`]: the members file of a run against a members relay, and
//!   making one.
//! - [`sessions`]: the members file and identities of a run against a
//!   session relay, making them, and the client's side of a handshake.
//! - [`inbox`]: splitting, counting, timing and checking deliveries.
//! - [`e2e`]: `fanout --e2e`, 1 → N in an end-to-end (MLS) room of a
//!   session relay.
//! - `receiver`: the read loop of the scenarios that check deliveries.
//! - `scenario`: the skeleton the fanout and room scenarios share.
//! - `handshakes`: handshakes per second, against a session relay or,
//!   through `openssl s_time`, a TLS server.
//! - [`histogram`]: latency percentiles.
//! - [`report`]: results, as text and JSON.
//! - [`sys`]: CPU time, `/proc`, the open-file limit, a precise timer.
//! - [`floor`]: not a part of the load generator but a baseline for it: a
//!   relay of eaxchat's shape with no lines and no crypto (`relay-floor`).
//!
//! Only loopback addresses are accepted: this is a benchmark, not a flood
//! tool.

pub mod bystanders;
pub mod e2e;
mod fanout;
pub mod floor;
mod handshakes;
pub mod histogram;
mod idle;
pub mod inbox;
mod receiver;
pub mod report;
mod room;
pub mod roster;
mod scenario;
pub mod sessions;
pub use eaxchat_test_support::sys;
pub mod wire;

use std::fmt;
use std::io::{self, IsTerminal as _, Read as _, Write as _};
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

pub use report::{Errors, Report};
pub use wire::Protocol;
use wire::Wire;

/// What a run exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// One publisher, N subscribers, as fast as the window allows.
    Fanout,
    /// N clients each publishing to all the others.
    Room,
    /// One publisher paced at a fixed rate, N subscribers: latency at a
    /// realistic load rather than under saturation.
    Latency,
    /// N connections that say nothing: the relay's memory per connection.
    Idle,
    /// Connections that each shake hands and close, as fast as they can.
    Handshakes,
}

impl Scenario {
    /// The scenario's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Room => "room",
            Scenario::Latency => "latency",
            Scenario::Idle => "idle",
            Scenario::Handshakes => "handshakes",
        }
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Scenario, String> {
        match s {
            "fanout" => Ok(Scenario::Fanout),
            "room" => Ok(Scenario::Room),
            "latency" => Ok(Scenario::Latency),
            "idle" => Ok(Scenario::Idle),
            "handshakes" => Ok(Scenario::Handshakes),
            _ => Err(format!(
                "unknown scenario {s:?}: expected fanout, room, latency, idle or handshakes"
            )),
        }
    }
}

/// Which deliveries subscribers open and verify. Every delivery is
/// counted and sequence-checked whatever this says; see [`inbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Fan-out: open the first delivery of one message in this many and
    /// compare every other delivery with the first, byte for byte. The room
    /// opens every delivery regardless.
    Sample(u64),
    /// Open every delivery.
    All,
}

impl Verify {
    fn sample(self) -> u64 {
        match self {
            Verify::Sample(n) => n.max(1),
            Verify::All => 1,
        }
    }
}

/// How a run is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// The relay (loopback only).
    pub addr: SocketAddr,
    /// How to speak to it.
    pub protocol: Protocol,
    /// What to run.
    pub scenario: Scenario,
    /// Subscribers (fanout, latency), clients (room), connections (idle)
    /// or handshakes in flight at once (handshakes).
    pub clients: usize,
    /// Message size in bytes (plaintext for eaxchat; plain lines match the
    /// length of eaxchat's lines).
    pub size: usize,
    /// Most messages a publisher may be ahead of its slowest receiver.
    pub window: u64,
    /// How long to publish (idle: how long to hold the connections).
    pub duration: Duration,
    /// Stop publishing after this many messages (per publisher); start no
    /// more than this many handshakes.
    pub max_messages: Option<u64>,
    /// Messages per second (latency).
    pub rate: u64,
    /// Which deliveries to open.
    pub verify: Verify,
    /// The relay's pid, for its CPU time and RSS from `/proc`.
    pub relay_pid: Option<u32>,
    /// Show a progress line on stderr.
    pub progress: bool,
    /// How long clients may take to be connected and served.
    pub setup_timeout: Duration,
    /// Connections held in other rooms during the run ([`bystanders`]).
    pub bystanders: usize,
    /// How many rooms the bystanders are spread over.
    pub bystander_rooms: usize,
    /// Subscribers (idle: connections) say `/hello eaxchat/1` and count
    /// `msg` events ([`wire::EventLine`]).
    pub events: bool,
    /// With `events`, how many more rooms each joins
    /// (`bench-room-1` …), staying in the default room too.
    pub extra_rooms: usize,
    /// Subscribers read the relay's WebSocket here (`relay --web`).
    pub web: Option<SocketAddr>,
    /// Subscribers are spread over these relays (of one cluster), in turn;
    /// empty for all on `addr` with the publisher.
    pub subscribe_at: Vec<SocketAddr>,
    /// Subscribers connect with TLS: `--web` over wss, or a Redis TLS port
    /// given as `--subscribe-at`.
    pub subscribe_tls: bool,
    /// Fan-out in an end-to-end room of a session relay: MLS application
    /// messages of `size`-byte texts, sent as `/mls` ([`e2e`]).
    pub e2e: bool,
}

impl Options {
    /// Defaults for `scenario` against `addr`.
    pub fn new(scenario: Scenario, addr: SocketAddr, protocol: Protocol) -> Options {
        Options {
            addr,
            protocol,
            scenario,
            clients: 100,
            size: 64,
            window: 1000,
            duration: Duration::from_secs(5),
            max_messages: None,
            rate: 10_000,
            verify: Verify::Sample(16),
            relay_pid: None,
            progress: false,
            setup_timeout: Duration::from_secs(20),
            bystanders: 0,
            bystander_rooms: 9,
            events: false,
            extra_rooms: 0,
            web: None,
            subscribe_at: Vec::new(),
            subscribe_tls: false,
            e2e: false,
        }
    }
}

/// Why a run could not be made or finished.
#[derive(Debug)]
pub enum LoadError {
    /// The options cannot describe a run.
    Options(String),
    /// Connecting to the relay failed.
    Connect {
        /// Where.
        addr: SocketAddr,
        /// What the OS said.
        error: io::Error,
    },
    /// The relay did not serve every client in time.
    Setup(String),
    /// A socket, poll or `/proc` call failed.
    Io(io::Error),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Options(message) | LoadError::Setup(message) => f.write_str(message),
            LoadError::Connect { addr, error } => write!(f, "cannot connect to {addr}: {error}"),
            LoadError::Io(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<io::Error> for LoadError {
    fn from(error: io::Error) -> LoadError {
        LoadError::Io(error)
    }
}

impl From<wire::SizeError> for LoadError {
    fn from(error: wire::SizeError) -> LoadError {
        LoadError::Options(error.to_string())
    }
}

/// Runs one scenario and reports what it measured.
pub fn run(options: &Options) -> Result<Report, LoadError> {
    if !options.addr.ip().is_loopback() {
        return Err(LoadError::Options(format!(
            "{} is not a loopback address: relay-bench only drives relays on this machine",
            options.addr
        )));
    }
    if options.clients == 0 || options.window == 0 {
        return Err(LoadError::Options(
            "the client count and the window must be at least 1".into(),
        ));
    }
    if matches!(options.protocol, Protocol::Members(_))
        && matches!(options.scenario, Scenario::Room | Scenario::Idle)
    {
        return Err(LoadError::Options(
            "--members-file works with the fanout and latency scenarios only".into(),
        ));
    }
    let sessions = matches!(options.protocol, Protocol::Sessions(_));
    let tls = matches!(options.protocol, Protocol::Tls);
    if (sessions && options.scenario == Scenario::Room)
        || (options.scenario == Scenario::Handshakes && !sessions && !tls)
        || (tls && options.scenario != Scenario::Handshakes)
    {
        return Err(LoadError::Options(
            "--sessions-file works with the fanout, latency, idle and handshakes scenarios; \
             handshakes needs --sessions-file or --tls, and --tls handshakes"
                .into(),
        ));
    }
    if sessions && !options.subscribe_at.is_empty() {
        return Err(LoadError::Options(
            "--subscribe-at needs a shared key: each session relay has a key of its own".into(),
        ));
    }
    if options.web.is_some() && options.scenario != Scenario::Fanout {
        return Err(LoadError::Options(
            "--web works with the fanout scenario only".into(),
        ));
    }
    if options.web.is_some_and(|web| !web.ip().is_loopback()) {
        return Err(LoadError::Options(
            "--web must be a loopback address: relay-bench only drives relays on this machine"
                .into(),
        ));
    }
    if matches!(options.protocol, Protocol::Nats)
        && matches!(options.scenario, Scenario::Room | Scenario::Idle)
    {
        return Err(LoadError::Options(
            "--nats works with the fanout and latency scenarios only".into(),
        ));
    }
    if options
        .subscribe_at
        .iter()
        .any(|addr| !addr.ip().is_loopback())
    {
        return Err(LoadError::Options(
            "--subscribe-at must be loopback addresses: relay-bench only drives relays on this \
             machine"
                .into(),
        ));
    }
    if !options.subscribe_at.is_empty() && options.web.is_some() {
        return Err(LoadError::Options(
            "--subscribe-at and --web exclude each other".into(),
        ));
    }
    if options.subscribe_tls
        && (options.scenario != Scenario::Fanout
            || (options.web.is_none() && options.subscribe_at.is_empty())
            || options.subscribe_at.len() > 1
            || matches!(
                options.protocol,
                Protocol::Sessions(_) | Protocol::Members(_) | Protocol::Nats
            ))
    {
        return Err(LoadError::Options(
            "--subscribe-tls works with fanout, and --web (wss) or one --subscribe-at (a Redis \
             TLS port) of a shared-key relay or Redis"
                .into(),
        ));
    }
    if (options.events
        && (!matches!(options.protocol, Protocol::Eaxchat(_))
            || !matches!(options.scenario, Scenario::Fanout | Scenario::Idle)
            || !options.subscribe_at.is_empty()))
        || (options.extra_rooms > 0 && !options.events)
    {
        return Err(LoadError::Options(
            "--events works with fanout and idle against one shared-key eaxchat relay; \
             --extra-rooms needs --events"
                .into(),
        ));
    }
    if options.bystanders > 0 && options.scenario != Scenario::Fanout {
        return Err(LoadError::Options(
            "--bystanders works with the fanout scenario only".into(),
        ));
    }
    if options.e2e
        && (!sessions
            || options.scenario != Scenario::Fanout
            || options.web.is_some()
            || options.events
            || options.bystanders > 0)
    {
        return Err(LoadError::Options(
            "--e2e works with fanout against a session relay (--sessions-file), \
             without --web, --events or --bystanders"
                .into(),
        ));
    }
    // Each client is a descriptor; a thousand of them pass the usual 1024.
    sys::raise_open_file_limit()?;
    if options.e2e {
        return e2e::run(options);
    }
    let mut bystanders = bystanders::Bystanders::join(options)?;
    let mut report = match options.scenario {
        Scenario::Fanout | Scenario::Latency => fanout::run(options),
        Scenario::Room => room::run(options),
        Scenario::Idle => idle::run(options),
        Scenario::Handshakes => handshakes::run(options),
    }?;
    if let Some(bystanders) = &mut bystanders {
        report.bystanders = bystanders.len();
        report.errors.unexpected += bystanders.received();
    }
    Ok(report)
}

/// What an `eaxchat/1` client sends first (`--events`): `/hello eaxchat/1`,
/// then `/join bench-room-J` for each of its `extra_rooms` rooms, each
/// line sealed with `wire`. Empty without `--events`.
fn events_greeting(options: &Options, wire: &mut Wire) -> Vec<u8> {
    if !options.events {
        return Vec::new();
    }
    let mut greeting = wire.seal_command(b"/hello eaxchat/1");
    for room in 1..=options.extra_rooms {
        greeting.extend(wire.seal_command(format!("/join bench-room-{room}").as_bytes()));
    }
    greeting
}

/// Opens one client connection: blocking connect, `greeting` sent, then
/// non-blocking for the poll loop.
fn connect(addr: SocketAddr, greeting: &[u8]) -> Result<mio::net::TcpStream, LoadError> {
    connect_after(addr, greeting, false)
}

/// [`connect`], and when `greeted` (NATS) the server's first line
/// (`INFO`) read and dropped before anything is sent, and after the
/// greeting the server's first `PING` awaited and answered.
fn connect_after(
    addr: SocketAddr,
    greeting: &[u8],
    greeted: bool,
) -> Result<mio::net::TcpStream, LoadError> {
    let connect_error = |error| LoadError::Connect { addr, error };
    let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(connect_error)?;
    stream.set_nodelay(true)?;
    if greeted {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut byte = [0u8; 1];
        let mut last = 0u8;
        let mut read = 0usize;
        loop {
            (&stream).read_exact(&mut byte)?;
            read += 1;
            if last == b'\r' && byte[0] == b'\n' {
                break;
            }
            if read > 64 * 1024 {
                return Err(LoadError::Setup(
                    "the server's first line never ended".into(),
                ));
            }
            last = byte[0];
        }
    }
    if !greeting.is_empty() {
        (&stream).write_all(greeting)?;
    }
    if greeted {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"PING\r\n") {
            (&stream).read_exact(&mut byte)?;
            seen.push(byte[0]);
            if seen.len() > 64 * 1024 {
                return Err(LoadError::Setup("the server never pinged".into()));
            }
        }
        (&stream).write_all(b"PONG\r\n")?;
        stream.set_read_timeout(None)?;
    }
    stream.set_nonblocking(true)?;
    Ok(mio::net::TcpStream::from_std(stream))
}

/// Nanoseconds since the run's clock started: the unit of every stamp.
#[derive(Debug, Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn start() -> Clock {
        Clock(Instant::now())
    }

    fn now_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// CPU time of relay-bench and, when known, of the relay.
struct CpuMeter {
    own: Duration,
    relay: Option<(u32, Duration)>,
}

impl CpuMeter {
    fn start(relay_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            own: sys::own_cpu_time(),
            relay: relay_pid.and_then(|pid| Some((pid, sys::process_cpu_time(pid).ok()?))),
        }
    }

    /// CPU used since `start`: relay-bench's, and the relay's if known.
    fn elapsed(&self) -> (Duration, Option<Duration>) {
        let own = sys::own_cpu_time().saturating_sub(self.own);
        let relay = self.relay.and_then(|(pid, at_start)| {
            sys::process_cpu_time(pid)
                .ok()
                .map(|now| now.saturating_sub(at_start))
        });
        (own, relay)
    }
}

/// A progress line on stderr, rewritten in place on a terminal and
/// printed every few seconds otherwise.
struct Progress {
    enabled: bool,
    terminal: bool,
    next: Instant,
    shown: bool,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            terminal: io::stderr().is_terminal(),
            next: Instant::now() + Duration::from_secs(1),
            shown: false,
        }
    }

    fn tick(&mut self, line: impl FnOnce() -> String) {
        if !self.enabled || Instant::now() < self.next {
            return;
        }
        let mut stderr = io::stderr().lock();
        if self.terminal {
            let _ = write!(stderr, "\r{}\x1b[K", line());
            self.next += Duration::from_millis(500);
        } else {
            let _ = writeln!(stderr, "{}", line());
            self.next += Duration::from_secs(5);
        }
        self.shown = true;
    }

    fn finish(&mut self) {
        if self.shown && self.terminal {
            let _ = writeln!(io::stderr());
        }
    }
}

/// Whether an I/O error only means "not now".
fn would_block(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock
}
