//! `fanout --e2e`: 1 → N in an end-to-end room of a session relay, the
//! publisher sending MLS application messages as `/mls ROOM BASE64`, as
//! fast as the window allows.
//!
//! The setup (`setup`) makes a real group of the publisher's device and
//! one device per subscriber through the relay's Delivery Service. Then,
//! still untimed, the publisher encrypts with its group state a probe, a
//! barrier and `MESSAGES` texts of `--size` bytes (the relay reads only an
//! application message's group and epoch, so cycling them is invisible to
//! it). The run sends message `k` as `MESSAGES[k % MESSAGES.len()]`; each
//! subscriber reads `mls` events ([`MlsInbox`]): every frame's session
//! counter checked, one in `--sample` opened and checked for its room,
//! sender, number and exact data. Errors are counted as in every other
//! scenario: lost, duplicated, out of step, forged, disconnected, and
//! anything the relay answers the publisher during the run (a refusal)
//! as unexpected.
//!
//! The report's `line_len` is the mean length of the lines delivered
//! (they vary with the message's number), so that a session fan-out of
//! lines as long can be run beside it.

mod inbox;
mod setup;

use std::io::{self, Read as _};
use std::time::Duration;

use bytes::BytesMut;
use eaxchat_proto::events::{ParsedEvent, ParsedKind};
use eaxchat_proto::session::Session;
use eaxchat_proto::wire;
use memchr::memchr;
use mio::net::TcpStream;
use mio::{Events, Poll};

pub use inbox::{MAX_LINE, MlsFields, MlsInbox, MlsLedger, base64, mls_fields};

use super::inbox::Checker;
use super::receiver::{ReadWith, Receiver};
use super::report::Report;
use super::scenario::{self, Measurement, PROBE_EVERY, READ_LEN, Setup};
use super::wire::{Protocol, Wire};
use super::{Clock, LoadError, Options, would_block};
use setup::{Group, PUBLISHER, Scratch, mls_line};

/// Distinct messages the publisher encrypts before the run and cycles
/// through.
const MESSAGES: usize = 512;
/// Bytes of messages sealed before they are written.
const BATCH_BYTES: usize = 64 * 1024;

struct Publisher {
    stream: TcpStream,
    session: Session,
    out: BytesMut,
    /// Bytes read past the last whole line.
    partial: Vec<u8>,
    sent: u64,
    open: bool,
}

/// One run's state.
struct E2eFanout<'a> {
    options: &'a Options,
    poll: Poll,
    events: Events,
    subscribers: Vec<Receiver<MlsInbox>>,
    publisher: Publisher,
    checker: Checker,
    ledger: MlsLedger,
    /// `/mls ROOM BASE64` of each message cycled through, then the probe's
    /// and the barrier's.
    lines: Vec<Vec<u8>>,
    probe: Vec<u8>,
    barrier: Vec<u8>,
    room: String,
    /// The subscribers' sessions, for what they send (their inboxes open
    /// what they receive).
    sessions: Vec<Session>,
    buf: Vec<u8>,
    clock: Clock,
    last_delivery_ns: u64,
    /// Kept until the run ends: the devices' directory.
    _scratch: Scratch,
}

/// A text of `size` bytes that says which it is.
fn text(label: &str, size: usize) -> String {
    let mut text = format!("{label} ");
    while text.len() < size {
        text.push('.');
    }
    text.truncate(size.max(1));
    text
}

pub(super) fn run(options: &Options) -> Result<Report, LoadError> {
    let Protocol::Sessions(roster) = &options.protocol else {
        return Err(LoadError::Options("--e2e needs --sessions-file".into()));
    };
    roster
        .check_enough(options.clients + 1, "fanout --e2e")
        .map_err(LoadError::Options)?;
    let mut poll = Poll::new()?;
    let group = setup::build(options, roster, &mut poll)?;
    let mut fanout = E2eFanout::new(options, group, poll)?;
    fanout.barrier()?;
    let report = fanout.measure()?;
    Ok(report)
}

impl<'a> E2eFanout<'a> {
    /// Encrypts the run's messages with the publisher's group and makes
    /// each subscriber's inbox.
    fn new(options: &'a Options, group: Group, poll: Poll) -> Result<E2eFanout<'a>, LoadError> {
        let Group {
            publisher,
            subscribers,
            mut device,
            room,
            scratch,
        } = group;
        let mut encrypt = |label: &str| {
            device
                .encrypt(&room, &text(label, options.size))
                .map_err(|e| LoadError::Setup(format!("encrypting: {e}")))
        };
        let probe = encrypt("probe")?;
        let barrier = encrypt("barrier")?;
        let mut messages = Vec::with_capacity(MESSAGES);
        for i in 0..MESSAGES {
            messages.push(encrypt(&format!("e2e {i:06}"))?);
        }
        let lines = messages.iter().map(|m| mls_line(&room, m)).collect();
        let ledger = MlsLedger::new(
            &room,
            &publisher.name,
            messages.iter().map(|m| base64(m)).collect(),
            base64(&probe),
            base64(&barrier),
            options.window,
        );
        let sample = options.verify.sample();
        let mut sessions = Vec::with_capacity(subscribers.len());
        let subscribers = subscribers
            .into_iter()
            .enumerate()
            .map(|(index, conn)| {
                let inbox = MlsInbox::new(
                    &conn.relay_to_client,
                    conn.session.opened(),
                    conn.partial,
                    sample,
                    index as u64,
                );
                sessions.push(conn.session);
                Receiver::new(conn.stream, inbox)
            })
            .collect();
        Ok(E2eFanout {
            options,
            poll,
            events: Events::with_capacity(1024),
            subscribers,
            publisher: Publisher {
                stream: publisher.stream,
                session: publisher.session,
                out: BytesMut::with_capacity(BATCH_BYTES + 4096),
                partial: publisher.partial,
                sent: 0,
                open: true,
            },
            checker: Checker::new(Wire::new(&options.protocol, options.size)?),
            ledger,
            lines,
            probe: mls_line(&room, &probe),
            barrier: mls_line(&room, &barrier),
            room,
            sessions,
            buf: vec![0; READ_LEN + MAX_LINE],
            clock: Clock::start(),
            last_delivery_ns: 0,
            _scratch: scratch,
        })
    }

    /// Probes until every subscriber has had one, then sends the barrier
    /// and waits until every subscriber has it.
    fn barrier(&mut self) -> Result<(), LoadError> {
        let setup = Setup::start(self.options, &self.clock);
        let mut next_probe = 0;
        while !self.subscribers.iter().all(|s| s.inbox.saw_probe()) {
            let now = self.clock.now_ns();
            if now >= next_probe {
                self.seal(false);
                next_probe = now + PROBE_EVERY.as_nanos() as u64;
            }
            self.setup_turn(&setup, false)?;
        }
        self.seal(true);
        while !self.subscribers.iter().all(|s| s.inbox.ready()) {
            self.setup_turn(&setup, true)?;
        }
        Ok(())
    }

    /// Seals the probe or the barrier into the publisher's buffer.
    fn seal(&mut self, barrier: bool) {
        let line = if barrier { &self.barrier } else { &self.probe };
        if self
            .publisher
            .session
            .seal_into(line, &mut self.publisher.out)
            .is_err()
        {
            self.publisher.open = false;
        }
    }

    /// One turn of the probing (or, with `barrier`, of waiting for the
    /// barrier), failing on any error or at the setup's deadline.
    fn setup_turn(&mut self, setup: &Setup, barrier: bool) -> Result<(), LoadError> {
        self.send_pending()?;
        self.poll_once(Some(PROBE_EVERY / 4))?;
        let served = self
            .subscribers
            .iter()
            .filter(|s| {
                if barrier {
                    s.inbox.ready()
                } else {
                    s.inbox.saw_probe()
                }
            })
            .count();
        let waiting_for = if barrier { "the barrier" } else { "a probe" };
        let total = self.subscribers.len();
        setup.check(
            &self.clock,
            self.checker.errors,
            !self.publisher.open,
            || format!("only {served} of {total} subscribers received {waiting_for}"),
        )
    }

    /// Publishes for the run's duration (or count), then waits for what is
    /// in flight.
    fn measure(mut self) -> Result<Report, LoadError> {
        let mut measurement = Measurement::start(self.options, &self.clock);
        let start_ns = measurement.start_ns;
        self.last_delivery_ns = start_ns;
        let mut limit = self.options.max_messages.unwrap_or(u64::MAX);
        loop {
            let now = self.clock.now_ns();
            if measurement.stop_if_due(now, self.publisher.sent >= limit) {
                limit = self.publisher.sent;
            }
            self.publish(limit)?;
            let drained = || self.publisher.out.is_empty() && self.slowest() >= self.publisher.sent;
            if measurement.over(now, self.last_delivery_ns, drained) {
                break;
            }
            let sent = self.publisher.sent;
            measurement.tick(|| {
                let secs = (now - start_ns) as f64 / 1e9;
                let deliveries = self.deliveries();
                format!(
                    "fanout --e2e {secs:.1} s: {sent} messages, {deliveries} deliveries \
                     ({:.3}M/s), errors {}",
                    deliveries as f64 / secs.max(1e-9) / 1e6,
                    self.checker.errors.total()
                )
            });
            self.poll_once(Some(Duration::from_millis(100)))?;
        }
        let common = measurement.finish(self.options, &self.checker, self.last_delivery_ns);
        let sent = self.publisher.sent;
        let mut settled = Checker::new(Wire::new(&self.options.protocol, self.options.size)?);
        settled.errors = common.errors;
        for subscriber in &self.subscribers {
            subscriber.inbox.settle(sent, &mut settled);
        }
        let bytes: u64 = self.subscribers.iter().map(|s| s.inbox.bytes()).sum();
        let deliveries = self.deliveries();
        self.leave();
        Ok(Report {
            protocol: "eaxchat-e2e",
            clients: self.subscribers.len(),
            window: self.options.window,
            messages: sent,
            deliveries,
            line_len: bytes.checked_div(deliveries).unwrap_or(0) as usize,
            errors: settled.errors,
            ..common
        })
    }

    /// Everyone leaves the room (best effort, unanswered), so that the
    /// relay does not put these members back into it at their next
    /// `/hello`.
    fn leave(&mut self) {
        let part = format!("/part {}", self.room);
        let publisher = (&mut self.publisher.stream, &mut self.publisher.session);
        let subscribers = self
            .subscribers
            .iter_mut()
            .map(|s| &mut s.stream)
            .zip(self.sessions.iter_mut());
        for (stream, session) in std::iter::once(publisher).chain(subscribers) {
            let mut out = BytesMut::new();
            if session.seal_into(part.as_bytes(), &mut out).is_ok() {
                let _ = scenario::write_out(stream, &mut out);
            }
        }
    }

    fn deliveries(&self) -> u64 {
        self.subscribers.iter().map(|s| s.inbox.delivered()).sum()
    }

    /// How far the slowest subscriber still connected has got.
    fn slowest(&self) -> u64 {
        self.subscribers
            .iter()
            .filter(|s| s.open)
            .map(|s| s.inbox.delivered())
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Seals and writes messages while the limit, the window and the
    /// socket allow.
    fn publish(&mut self, limit: u64) -> Result<(), LoadError> {
        let plaintext = self.lines.first().map_or(0, Vec::len);
        let line_len = wire::encoded_len(plaintext) as u64 + 1;
        let batch_max = (BATCH_BYTES as u64 / line_len).max(1);
        loop {
            if !self.send_pending()? {
                return Ok(());
            }
            let first = self.publisher.sent;
            let allowed = limit.min(self.slowest().saturating_add(self.options.window));
            if allowed <= first {
                return Ok(());
            }
            let now = self.clock.now_ns();
            for seq in first..first + (allowed - first).min(batch_max) {
                self.ledger.sent(seq, now);
                let line = &self.lines[(seq % self.lines.len() as u64) as usize];
                if self
                    .publisher
                    .session
                    .seal_into(line, &mut self.publisher.out)
                    .is_err()
                {
                    return Err(LoadError::Setup("the publisher's session ran out".into()));
                }
                self.publisher.sent = seq + 1;
            }
        }
    }

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
                token => self.read_subscriber(token.0),
            }
        }
        self.events = events;
        Ok(())
    }

    /// Reads what the relay sent the publisher: after the setup, a refusal
    /// or an error is unexpected (its message never reached anyone).
    fn drain_publisher(&mut self) {
        loop {
            match self.publisher.stream.read(&mut self.buf) {
                Ok(0) => {
                    if self.publisher.open {
                        self.publisher.open = false;
                        self.checker.errors.disconnected += 1;
                    }
                    return;
                }
                Ok(n) => {
                    self.publisher.partial.extend_from_slice(&self.buf[..n]);
                    let mut pos = 0;
                    while let Some(newline) = memchr(b'\n', &self.publisher.partial[pos..]) {
                        let line = &self.publisher.partial[pos..pos + newline];
                        pos += newline + 1;
                        let Ok(plaintext) = self.publisher.session.open(line) else {
                            self.checker.errors.forged += 1;
                            continue;
                        };
                        let refused = ParsedEvent::parse(plaintext).is_some_and(|e| {
                            matches!(e.kind, ParsedKind::Error | ParsedKind::MlsRefused { .. })
                        });
                        if refused {
                            self.checker.errors.unexpected += 1;
                        }
                    }
                    self.publisher.partial.drain(..pos);
                }
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

    fn read_subscriber(&mut self, index: usize) {
        let Some(subscriber) = self.subscribers.get_mut(index) else {
            return;
        };
        let mut with = ReadWith {
            buf: &mut self.buf,
            checker: &mut self.checker,
            against: &mut self.ledger,
            clock: &self.clock,
            stamped: false,
        };
        if let Some(at) = subscriber.read_all(&mut with) {
            self.last_delivery_ns = at;
        }
    }
}
