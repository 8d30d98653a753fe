//! The `handshakes` scenario: how many session handshakes a relay
//! finishes per second, and what each costs its one core.
//!
//! relay-bench keeps `--clients` connections in flight (1 makes it serial,
//! as `openssl s_time` is): each connects, sends its hello, reads the
//! relay's welcome, verifies it ([`Initiator::finish`]) and closes; its
//! slot then starts the next. Members are taken in turn from the members
//! file. It stops starting new ones when `--duration` is up or
//! `--messages` handshakes have started, and waits (bounded) for those in
//! flight. A refusal, a reply that does not verify, a line too long or a
//! connection closed before its welcome is an error, counted by kind.
//!
//! Each handshake costs the client about what it costs the relay (five
//! X25519 operations each way), so on a machine of two cores relay-bench
//! may well be the limit: the report carries the relay's CPU time per
//! handshake, which does not depend on how fast it is driven.
//!
//! With `--tls` the same scenario runs `openssl s_time -new` against a TLS
//! server instead ([`tls`]), for the comparison.

mod tls;

use std::io::{self, Read as _, Write as _};
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use eaxchat_proto::session::{Initiator, MAX_LINE, PublicKey, SessionError, StaticSecret};

use super::histogram::Histogram;
use super::report::{Errors, Report};
use super::scenario::{DRAIN_TIMEOUT, poll_once};
use super::sessions::SessionRoster;
use super::wire::Protocol;
use super::{Clock, CpuMeter, LoadError, Options, Progress, would_block};

/// Most members whose identities are read for the run: handshakes take
/// them in turn.
const MAX_IDENTITIES: usize = 1024;

pub(super) fn run(options: &Options) -> Result<Report, LoadError> {
    match &options.protocol {
        Protocol::Sessions(roster) => Handshakes::new(options, roster)?.run(),
        Protocol::Tls => tls::run(options),
        _ => Err(LoadError::Options(
            "the handshakes scenario needs a session relay (--sessions-file) or --tls".into(),
        )),
    }
}

/// One handshake in flight.
struct Attempt {
    stream: TcpStream,
    initiator: Option<Initiator>,
    hello: Vec<u8>,
    written: usize,
    reply: Vec<u8>,
    started_ns: u64,
}

/// How an attempt ended.
enum Outcome {
    Welcomed,
    Refused,
    Forged,
    Malformed,
    Closed,
}

struct Handshakes<'a> {
    options: &'a Options,
    poll: Poll,
    secrets: Vec<StaticSecret>,
    relay: PublicKey,
    slots: Vec<Option<Attempt>>,
    /// Handshakes started, and the next member to shake hands as.
    started: u64,
    welcomed: u64,
    errors: Errors,
    latency: Histogram,
    clock: Clock,
    last_done_ns: u64,
    buf: Vec<u8>,
}

impl<'a> Handshakes<'a> {
    fn new(options: &'a Options, roster: &SessionRoster) -> Result<Handshakes<'a>, LoadError> {
        let identities = roster.len().min(options.clients).min(MAX_IDENTITIES);
        let secrets = (0..identities.max(1))
            .map(|index| roster.secret(index))
            .collect::<Result<_, _>>()?;
        Ok(Handshakes {
            options,
            poll: Poll::new()?,
            secrets,
            relay: *roster.relay_key(),
            slots: (0..options.clients).map(|_| None).collect(),
            started: 0,
            welcomed: 0,
            errors: Errors::default(),
            latency: Histogram::default(),
            clock: Clock::start(),
            last_done_ns: 0,
            buf: vec![0; 4096],
        })
    }

    fn run(mut self) -> Result<Report, LoadError> {
        let cpu = CpuMeter::start(self.options.relay_pid);
        let mut progress = Progress::new(self.options.progress);
        let limit = self.options.max_messages.unwrap_or(u64::MAX);
        let start_ns = self.clock.now_ns();
        let end_ns = start_ns + self.options.duration.as_nanos() as u64;
        self.last_done_ns = start_ns;
        for slot in 0..self.slots.len() {
            if self.started < limit {
                self.start(slot)?;
            }
        }
        let mut events = Events::with_capacity(1024);
        loop {
            let now = self.clock.now_ns();
            let open = now < end_ns && self.started < limit;
            let in_flight = self.slots.iter().filter(|slot| slot.is_some()).count();
            if !open && in_flight == 0 {
                break;
            }
            if !open && now > end_ns.max(self.last_done_ns) + DRAIN_TIMEOUT.as_nanos() as u64 {
                // Never answered: counted as lost.
                self.errors.lost += in_flight as u64;
                break;
            }
            progress.tick(|| {
                let secs = (now - start_ns) as f64 / 1e9;
                format!(
                    "handshakes {secs:.1} s: {} ({:.0}/s), errors {}",
                    self.welcomed,
                    self.welcomed as f64 / secs.max(1e-9),
                    self.errors.total()
                )
            });
            poll_once(&mut self.poll, &mut events, Some(Duration::from_millis(50)))?;
            for event in events.iter() {
                let slot = event.token().0;
                if let Some(outcome) = self.advance(slot) {
                    self.finish(slot, outcome)?;
                    let open = self.clock.now_ns() < end_ns && self.started < limit;
                    if open {
                        self.start(slot)?;
                    }
                }
            }
        }
        progress.finish();
        let (cpu_time, relay_cpu_time) = cpu.elapsed();
        Ok(Report {
            scenario: "handshakes",
            protocol: self.options.protocol.name(),
            clients: self.slots.len(),
            size: 0,
            line_len: 0,
            window: self.slots.len() as u64,
            rate: None,
            run_time: Duration::from_nanos(self.last_done_ns - start_ns),
            messages: 0,
            deliveries: 0,
            verified: self.welcomed,
            latency: Some(self.latency.percentiles()),
            latency_by_relay: Vec::new(),
            send_lag: None,
            errors: self.errors,
            cpu_time,
            relay_cpu_time,
            idle: None,
            bystanders: 0,
            handshakes: Some(self.welcomed),
        })
    }

    /// Starts the next handshake in `slot`: a hello made and a connection
    /// opened.
    fn start(&mut self, slot: usize) -> Result<(), LoadError> {
        let secret = &self.secrets[self.started as usize % self.secrets.len()];
        let (initiator, hello) = Initiator::start(secret, &self.relay, b"")
            .map_err(|e| LoadError::Setup(format!("a hello: {e}")))?;
        let addr = self.options.addr;
        let mut stream =
            TcpStream::connect(addr).map_err(|error| LoadError::Connect { addr, error })?;
        self.poll.registry().register(
            &mut stream,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.started += 1;
        if let Some(place) = self.slots.get_mut(slot) {
            *place = Some(Attempt {
                stream,
                initiator: Some(initiator),
                hello,
                written: 0,
                reply: Vec::with_capacity(128),
                started_ns: self.clock.now_ns(),
            });
        }
        Ok(())
    }

    /// Takes `slot`'s attempt as far as its socket allows; its outcome once
    /// it has one.
    fn advance(&mut self, slot: usize) -> Option<Outcome> {
        let attempt = self.slots.get_mut(slot)?.as_mut()?;
        while attempt.written < attempt.hello.len() {
            match attempt.stream.write(&attempt.hello[attempt.written..]) {
                Ok(0) => return Some(Outcome::Closed),
                Ok(n) => attempt.written += n,
                // Not connected yet: its writable event comes.
                Err(e) if would_block(&e) || e.kind() == io::ErrorKind::NotConnected => {
                    return None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Some(Outcome::Closed),
            }
        }
        loop {
            match attempt.stream.read(&mut self.buf) {
                Ok(0) => return Some(Outcome::Closed),
                Ok(n) => attempt.reply.extend_from_slice(&self.buf[..n]),
                Err(e) if would_block(&e) => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Some(Outcome::Closed),
            }
            if let Some(end) = memchr::memchr(b'\n', &attempt.reply) {
                let initiator = attempt.initiator.take()?;
                return Some(match initiator.finish(&attempt.reply[..end]) {
                    Ok(_) => Outcome::Welcomed,
                    Err(SessionError::Refused { .. }) => Outcome::Refused,
                    Err(_) => Outcome::Forged,
                });
            }
            if attempt.reply.len() > MAX_LINE + 1 {
                return Some(Outcome::Malformed);
            }
        }
    }

    /// Counts `slot`'s outcome and closes its connection.
    fn finish(&mut self, slot: usize, outcome: Outcome) -> Result<(), LoadError> {
        let Some(mut attempt) = self.slots.get_mut(slot).and_then(Option::take) else {
            return Ok(());
        };
        let now = self.clock.now_ns();
        match outcome {
            Outcome::Welcomed => {
                self.welcomed += 1;
                self.latency
                    .record_n(now.saturating_sub(attempt.started_ns), 1);
                self.last_done_ns = now;
            }
            Outcome::Refused => self.errors.refused += 1,
            Outcome::Forged => self.errors.forged += 1,
            Outcome::Malformed => self.errors.malformed += 1,
            Outcome::Closed => self.errors.disconnected += 1,
        }
        self.poll.registry().deregister(&mut attempt.stream)?;
        Ok(())
    }
}
