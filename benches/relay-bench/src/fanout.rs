//! The one-publisher scenarios: `fanout` (1 → N as fast as the window
//! allows) and `latency` (1 → N paced at a fixed rate, open loop).
//!
//! Flow control: the publisher never gets more than `window` messages ahead
//! of its slowest subscriber, so a healthy relay never has a reason to drop
//! a consumer and the send times of every message in flight fit in a ring.
//!
//! Setup: subscribers connect, the publisher sends probes until every
//! subscriber has received one (so the relay has admitted them all), then
//! one barrier; the k-th record a subscriber reads after the barrier must
//! be message k (see [`super::inbox`]).
//!
//! Against a members relay the publisher is the members file's member 0 and
//! subscriber i is member i + 1; every connection sends the empty frame
//! that identifies it before anything else. Against a session relay the
//! members are the same, and every connection shakes hands as its member
//! before anything else (`super::sessions::connect`).

use std::io::{self, Read as _};
use std::time::Duration;

use bytes::BytesMut;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::inbox::{Checker, Ledger, StreamInbox};
use super::receiver::{ReadWith, Receiver};
use super::report::Report;
use super::scenario::{self, Measurement, PROBE_EVERY, READ_LEN, Setup};
use super::sys::{self, Ticker};
use super::wire::{BARRIER, Header, PROBE, Protocol, Wire};
use super::{Clock, LoadError, Options, Scenario, would_block};

const PUBLISHER: Token = Token(usize::MAX);

const TICKER: Token = Token(usize::MAX - 1);

/// Bytes of messages encoded before they are written.
const BATCH_BYTES: usize = 64 * 1024;
/// Most memory the ledger of messages in flight may take.
const MAX_LEDGER_BYTES: u64 = 256 << 20;
/// The shortest period the pacing timer ticks at; faster rates send
/// several messages per tick.
const MIN_TICK: Duration = Duration::from_micros(20);

/// When each message of a paced run is due.
struct Schedule {
    start_ns: u64,
    interval_ns: u64,
}

impl Schedule {
    /// How many messages are due by `now_ns`.
    fn due(&self, now_ns: u64) -> u64 {
        now_ns.saturating_sub(self.start_ns) / self.interval_ns + 1
    }

    /// When message `seq` is due.
    fn due_at(&self, seq: u64) -> u64 {
        self.start_ns + seq * self.interval_ns
    }
}

/// What the setup is waiting for every subscriber to receive.
#[derive(Clone, Copy)]
enum Stage {
    Probe,
    Barrier,
}

struct Publisher {
    stream: TcpStream,
    out: BytesMut,
    /// Data messages encoded so far; the next one's sequence number.
    sent: u64,
    open: bool,
}

/// One run's state: every socket, the shared checker and buffers.
struct Fanout<'a> {
    options: &'a Options,
    poll: Poll,
    events: Events,
    subscribers: Vec<Receiver<StreamInbox>>,
    publisher: Publisher,
    checker: Checker,
    /// Most messages the publisher may be ahead of its slowest subscriber.
    window: u64,
    ledger: Ledger,
    buf: Vec<u8>,
    clock: Clock,
    /// When the last record arrived.
    last_delivery_ns: u64,
    /// Messages to publish at most (lowered to what was sent on stopping).
    limit: u64,
    /// The pacing of the latency scenario.
    schedule: Option<Schedule>,
    ticker: Option<Ticker>,
    /// How far behind its schedule the publisher fell at worst.
    send_lag_ns: u64,
    /// Whether subscribers time deliveries by the kernel's receive stamps.
    receive_stamps: bool,
}

/// Which of `relays` relays (`--subscribe-at`, in order) subscriber
/// `index` connects to.
fn relay_of(index: usize, relays: usize) -> usize {
    index % relays
}

mod connect;
pub(crate) mod tls;

pub(super) fn run(options: &Options) -> Result<Report, LoadError> {
    let mut fanout = Fanout::connect(options)?;
    fanout.setup()?;
    fanout.measure()
}

impl<'a> Fanout<'a> {
    fn connect(options: &'a Options) -> Result<Fanout<'a>, LoadError> {
        let wire = Wire::new(&options.protocol, options.size)?;
        let mut wire = match options.web {
            Some(web) => wire.over_websocket(web)?,
            None if options.events => wire.with_events()?,
            None => wire,
        };
        let subscribe_at = |index: usize| match (options.web, &options.subscribe_at[..]) {
            (Some(web), _) => web,
            (None, []) => options.addr,
            (None, relays) => relays[relay_of(index, relays.len())],
        };
        // Subscribers spread over several relays: latencies kept apart for
        // each (subscriber `index` is on relay `relay_of(index, relays)`).
        let relays = match (options.web, options.subscribe_at.len()) {
            (None, n) if n > 1 => n,
            _ => 0,
        };
        let paced = options.scenario == Scenario::Latency;
        if paced && options.rate == 0 {
            return Err(LoadError::Options("--rate must be at least 1".into()));
        }
        // A paced publisher is bounded by its schedule; the window is only
        // a safety net there, at least one second of messages wide.
        let window = if paced {
            options.window.max(options.rate)
        } else {
            options.window
        };
        let record_len = wire.record_len();
        if window.saturating_mul(record_len as u64) > MAX_LEDGER_BYTES {
            return Err(LoadError::Options(format!(
                "a window of {window} messages of {record_len} bytes needs more than {} MiB \
                 to check; lower --window{}",
                MAX_LEDGER_BYTES >> 20,
                if paced { " or --rate" } else { "" }
            )));
        }
        let who = || {
            format!(
                "{} with {} subscribers (and the publisher)",
                options.scenario.name(),
                options.clients
            )
        };
        let members = match &options.protocol {
            Protocol::Members(roster) => roster.check_enough(options.clients + 1, &who()),
            Protocol::Sessions(roster) => roster.check_enough(options.clients + 1, &who()),
            _ => Ok(()),
        };
        members.map_err(LoadError::Options)?;
        let poll = Poll::new()?;
        let (connected, mut stream) = match &options.protocol {
            Protocol::Sessions(roster) => Fanout::connect_sessions(options, &mut wire, roster)?,
            _ => Fanout::connect_all(options, &wire, subscribe_at)?,
        };
        let mut subscribers = Vec::with_capacity(options.clients);
        for (index, (mut stream, inbox, tls)) in connected.into_iter().enumerate() {
            if paced {
                sys::enable_receive_timestamps(&stream)?;
            }
            poll.registry()
                .register(&mut stream, Token(index), Interest::READABLE)?;
            subscribers.push(Receiver::new(stream, inbox).with_tls(tls));
        }
        poll.registry().register(
            &mut stream,
            PUBLISHER,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(Fanout {
            options,
            poll,
            events: Events::with_capacity(1024),
            subscribers,
            publisher: Publisher {
                stream,
                out: BytesMut::with_capacity(BATCH_BYTES + record_len),
                sent: 0,
                open: true,
            },
            checker: Checker::new(wire).by_relay(relays),
            window,
            ledger: Ledger::new(window, record_len),
            buf: vec![0; READ_LEN + record_len],
            clock: Clock::start(),
            last_delivery_ns: 0,
            limit: u64::MAX,
            schedule: None,
            ticker: None,
            send_lag_ns: 0,
            receive_stamps: paced,
        })
    }

    /// Probes until every subscriber is served, then sends the barrier and
    /// waits until every subscriber has it.
    fn setup(&mut self) -> Result<(), LoadError> {
        let setup = Setup::start(self.options, &self.clock);
        let mut probes = 0;
        let mut next_probe = 0;
        while !self.subscribers.iter().all(|s| s.inbox.saw_probe()) {
            let now = self.clock.now_ns();
            if now >= next_probe {
                self.push(Header {
                    sender: PROBE,
                    seq: probes,
                    stamp_ns: now,
                });
                probes += 1;
                next_probe = now + PROBE_EVERY.as_nanos() as u64;
            }
            self.setup_turn(&setup, Stage::Probe)?;
        }
        let now = self.clock.now_ns();
        self.push(Header {
            sender: BARRIER,
            seq: 0,
            stamp_ns: now,
        });
        while !self.subscribers.iter().all(|s| s.inbox.ready()) {
            self.setup_turn(&setup, Stage::Barrier)?;
        }
        Ok(())
    }

    fn setup_turn(&mut self, setup: &Setup, stage: Stage) -> Result<(), LoadError> {
        self.send_pending()?;
        self.poll_once(Some(PROBE_EVERY / 4))?;
        let broken = !self.publisher.open;
        setup.check(&self.clock, self.checker.errors, broken, || {
            let (served, waiting_for) = match stage {
                Stage::Probe => (
                    self.subscribers
                        .iter()
                        .filter(|s| s.inbox.saw_probe())
                        .count(),
                    "a probe",
                ),
                Stage::Barrier => (
                    self.subscribers.iter().filter(|s| s.inbox.ready()).count(),
                    "the barrier",
                ),
            };
            format!(
                "only {served} of {} subscribers received {waiting_for}",
                self.subscribers.len()
            )
        })
    }

    /// Publishes for the run's duration (or count), then waits for the
    /// deliveries still in flight.
    fn measure(mut self) -> Result<Report, LoadError> {
        let paced = self.options.scenario == Scenario::Latency;
        if paced {
            sys::tighten_timer_slack();
            let interval_ns = (1_000_000_000 / self.options.rate.max(1)).max(1);
            let period = Duration::from_nanos(interval_ns).max(MIN_TICK);
            let mut ticker = Ticker::new(period)?;
            self.poll
                .registry()
                .register(&mut ticker, TICKER, Interest::READABLE)?;
            self.ticker = Some(ticker);
            self.schedule = Some(Schedule {
                start_ns: self.clock.now_ns(),
                interval_ns,
            });
        }
        let mut measurement = Measurement::start(self.options, &self.clock);
        let start_ns = measurement.start_ns;
        self.last_delivery_ns = start_ns;
        self.limit = self.options.max_messages.unwrap_or(u64::MAX);
        loop {
            let now = self.clock.now_ns();
            if measurement.stop_if_due(now, self.publisher.sent >= self.limit) {
                self.limit = self.publisher.sent;
            }
            self.publish()?;
            let drained = || self.publisher.out.is_empty() && self.slowest() >= self.publisher.sent;
            if measurement.over(now, self.last_delivery_ns, drained) {
                break;
            }
            let sent = self.publisher.sent;
            measurement.tick(|| {
                let secs = (now - start_ns) as f64 / 1e9;
                let deliveries = self.deliveries();
                format!(
                    "{} {secs:.1} s: {sent} messages, {deliveries} deliveries ({:.3}M/s), errors {}",
                    self.options.scenario.name(),
                    deliveries as f64 / secs.max(1e-9) / 1e6,
                    self.checker.errors.total()
                )
            });
            self.poll_once(Some(Duration::from_millis(100)))?;
        }
        let common = measurement.finish(self.options, &self.checker, self.last_delivery_ns);
        let sent = self.publisher.sent;
        let mut errors = common.errors;
        for subscriber in &self.subscribers {
            // Gaps inside the stream were counted as they were found; what
            // never arrived at the end is lost too.
            errors.lost += sent.saturating_sub(subscriber.inbox.next_seq());
        }
        Ok(Report {
            clients: self.subscribers.len(),
            window: self.window,
            rate: paced.then_some(self.options.rate),
            messages: sent,
            deliveries: self.deliveries(),
            send_lag: paced.then(|| Duration::from_nanos(self.send_lag_ns)),
            latency_by_relay: self
                .options
                .subscribe_at
                .iter()
                .zip(&self.checker.latency_by_relay)
                .map(|(addr, histogram)| (*addr, histogram.percentiles()))
                .collect(),
            errors,
            ..common
        })
    }

    /// Deliveries so far, over all subscribers.
    fn deliveries(&self) -> u64 {
        self.subscribers.iter().map(|s| s.inbox.delivered()).sum()
    }

    /// How far the slowest subscriber still connected has got.
    fn slowest(&self) -> u64 {
        self.subscribers
            .iter()
            .filter(|s| s.open)
            .map(|s| s.inbox.next_seq())
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Encodes and writes data messages while the limit, the window, the
    /// schedule and the socket allow. Each message is stamped with the time
    /// it is written; how late that is against the schedule is kept apart,
    /// as the send lag, so relay-bench's own delays are not taken for the
    /// relay's.
    fn publish(&mut self) -> Result<(), LoadError> {
        let record_len = self.checker.wire.record_len() as u64;
        let batch_max = (BATCH_BYTES as u64 / record_len).max(1);
        let window = self.window;
        loop {
            if !self.send_pending()? {
                return Ok(());
            }
            let now = self.clock.now_ns();
            let first = self.publisher.sent;
            let due = self.schedule.as_ref().map_or(u64::MAX, |s| s.due(now));
            let allowed = due.min(self.limit);
            if allowed <= first {
                return Ok(());
            }
            let allowed = allowed.min(self.slowest().saturating_add(window));
            if allowed <= first {
                return Ok(());
            }
            if let Some(schedule) = &self.schedule {
                let lag = now.saturating_sub(schedule.due_at(first));
                self.send_lag_ns = self.send_lag_ns.max(lag);
            }
            for seq in first..first + (allowed - first).min(batch_max) {
                self.ledger.sent(seq, now);
                let header = Header {
                    sender: 0,
                    seq,
                    stamp_ns: now,
                };
                self.checker.wire.encode(header, &mut self.publisher.out);
                self.publisher.sent = seq + 1;
            }
        }
    }

    /// Encodes one setup message into the publisher's buffer.
    fn push(&mut self, header: Header) {
        self.checker.wire.encode(header, &mut self.publisher.out);
    }

    /// Writes the publisher's buffer; true when it is empty.
    fn send_pending(&mut self) -> Result<bool, LoadError> {
        Ok(scenario::write_out(
            &mut self.publisher.stream,
            &mut self.publisher.out,
        )?)
    }

    fn poll_once(&mut self, timeout: Option<Duration>) -> Result<(), LoadError> {
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        scenario::poll_once(&mut self.poll, &mut events, timeout)?;
        for event in events.iter() {
            match event.token() {
                PUBLISHER if event.is_readable() || event.is_read_closed() => {
                    self.drain_publisher();
                }
                PUBLISHER => {}
                TICKER => {
                    if let Some(ticker) = &self.ticker {
                        ticker.clear();
                    }
                }
                Token(index) => {
                    self.read_subscriber(index);
                    // Reading a hundred subscribers takes a while: keep a
                    // paced publisher on time in between.
                    if self.schedule.is_some() {
                        self.publish()?;
                    }
                }
            }
        }
        self.events = events;
        Ok(())
    }

    /// Reads what the relay sent the publisher: Redis's replies to
    /// `PUBLISH`, and from any other relay nothing at all.
    fn drain_publisher(&mut self) {
        let replies_expected = self.checker.wire.publisher_gets_replies();
        loop {
            match self.publisher.stream.read(&mut self.buf) {
                Ok(0) => {
                    if self.publisher.open {
                        self.publisher.open = false;
                        self.checker.errors.disconnected += 1;
                    }
                    return;
                }
                Ok(n) if !replies_expected => self.checker.errors.unexpected += n as u64,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if would_block(&e) => return,
                Err(_) => {
                    self.publisher.open = false;
                    self.checker.errors.disconnected += 1;
                    return;
                }
            }
        }
    }

    /// Reads one subscriber until its socket is drained.
    fn read_subscriber(&mut self, index: usize) {
        let Some(subscriber) = self.subscribers.get_mut(index) else {
            return;
        };
        let relays = self.checker.latency_by_relay.len();
        if relays > 0 {
            self.checker.relay = relay_of(index, relays);
        }
        let mut with = ReadWith {
            buf: &mut self.buf,
            checker: &mut self.checker,
            against: &mut self.ledger,
            clock: &self.clock,
            stamped: self.receive_stamps,
        };
        if let Some(at) = subscriber.read_all(&mut with) {
            self.last_delivery_ns = at;
        }
    }
}
