//! The `room` scenario: N clients, each publishing numbered messages to all
//! the others and reading everything the others publish.
//!
//! Deliveries from different senders interleave, so every one is opened and
//! checked against the next sequence number expected from its sender:
//! nothing lost, duplicated, reordered or forged goes unnoticed. Each sender
//! stays at most `window / (N - 1)` messages ahead of its slowest reader, so
//! no reader has more than `window` messages in flight towards it.
//!
//! Setup: every client sends probes until every client has received a probe
//! from every other one, so the relay has admitted them all; probes that
//! arrive later are recognised and skipped.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use mio::{Events, Interest, Poll, Token};

use super::inbox::{Checker, RoomInbox};
use super::receiver::{ReadWith, Receiver};
use super::report::Report;
use super::scenario::{self, Measurement, PROBE_EVERY, READ_LEN, Setup};
use super::wire::{Header, PROBE, Protocol, Wire};
use super::{Clock, LoadError, Options, connect};

/// Bytes of one client's messages encoded before they are written.
const BATCH_BYTES: usize = 16 * 1024;

struct Client {
    rx: Receiver<RoomInbox>,
    out: BytesMut,
    sent: u64,
}

struct Room<'a> {
    options: &'a Options,
    poll: Poll,
    events: Events,
    clients: Vec<Client>,
    checker: Checker,
    buf: Vec<u8>,
    clock: Clock,
    last_delivery_ns: u64,
}

pub(super) fn run(options: &Options) -> Result<Report, LoadError> {
    if matches!(options.protocol, Protocol::Redis) {
        return Err(LoadError::Options(
            "the room scenario needs clients that both publish and receive; \
             a subscribed Redis connection cannot publish"
                .into(),
        ));
    }
    if options.clients < 2 {
        return Err(LoadError::Options("a room needs at least 2 clients".into()));
    }
    let mut room = Room::connect(options)?;
    room.setup()?;
    room.measure()
}

impl<'a> Room<'a> {
    fn connect(options: &'a Options) -> Result<Room<'a>, LoadError> {
        let wire = Wire::new(&options.protocol, options.size)?;
        let poll = Poll::new()?;
        let n = options.clients;
        let mut clients = Vec::with_capacity(n);
        for index in 0..n {
            let mut stream = connect(options.addr, &[])?;
            poll.registry().register(
                &mut stream,
                Token(index),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            clients.push(Client {
                rx: Receiver::new(stream, RoomInbox::new(wire.record_len(), index as u32, n)),
                out: BytesMut::with_capacity(BATCH_BYTES + wire.record_len()),
                sent: 0,
            });
        }
        let record_len = wire.record_len();
        Ok(Room {
            options,
            poll,
            events: Events::with_capacity(1024),
            clients,
            checker: Checker::new(wire),
            buf: vec![0; READ_LEN + record_len],
            clock: Clock::start(),
            last_delivery_ns: 0,
        })
    }

    fn setup(&mut self) -> Result<(), LoadError> {
        let setup = Setup::start(self.options, &self.clock);
        let mut next_probe = 0;
        while !self.clients.iter().all(|c| c.rx.inbox.ready()) {
            let now = self.clock.now_ns();
            if now >= next_probe {
                for index in 0..self.clients.len() {
                    let probe = Header {
                        sender: PROBE,
                        seq: index as u64,
                        stamp_ns: now,
                    };
                    self.checker
                        .wire
                        .encode(probe, &mut self.clients[index].out);
                }
                next_probe = now + PROBE_EVERY.as_nanos() as u64;
            }
            self.send_all()?;
            self.poll_once(Some(PROBE_EVERY / 4))?;
            setup.check(&self.clock, self.checker.errors, false, || {
                let ready = self.clients.iter().filter(|c| c.rx.inbox.ready()).count();
                format!(
                    "only {ready} of {} clients heard from every other",
                    self.clients.len()
                )
            })?;
        }
        Ok(())
    }

    fn measure(mut self) -> Result<Report, LoadError> {
        let mut measurement = Measurement::start(self.options, &self.clock);
        let start_ns = measurement.start_ns;
        self.last_delivery_ns = start_ns;
        let max_messages = self.options.max_messages.unwrap_or(u64::MAX);
        loop {
            let now = self.clock.now_ns();
            let all_sent = self.clients.iter().all(|c| c.sent >= max_messages);
            measurement.stop_if_due(now, all_sent);
            if measurement.stopped() {
                let drained =
                    || self.clients.iter().all(|c| c.out.is_empty()) && self.missing() == 0;
                if measurement.over(now, self.last_delivery_ns, drained) {
                    break;
                }
            } else {
                self.publish(max_messages);
            }
            self.send_all()?;
            measurement.tick(|| {
                let secs = (now - start_ns) as f64 / 1e9;
                let deliveries = self.deliveries();
                format!(
                    "room {secs:.1} s: {deliveries} deliveries ({:.3}M/s), errors {}",
                    deliveries as f64 / secs.max(1e-9) / 1e6,
                    self.checker.errors.total()
                )
            });
            self.poll_once(Some(Duration::from_millis(100)))?;
        }
        let common = measurement.finish(self.options, &self.checker, self.last_delivery_ns);
        let mut errors = common.errors;
        errors.lost += self.missing();
        Ok(Report {
            clients: self.clients.len(),
            window: self.window(),
            messages: self.clients.iter().map(|c| c.sent).sum(),
            deliveries: self.deliveries(),
            errors,
            ..common
        })
    }

    /// Each sender's share of the window: no reader ever has more than
    /// `window` messages in flight towards it, whatever the room's size.
    fn window(&self) -> u64 {
        (self.options.window / (self.clients.len() as u64 - 1)).max(1)
    }

    fn deliveries(&self) -> u64 {
        self.clients.iter().map(|c| c.rx.inbox.delivered()).sum()
    }

    /// Messages sent but not (yet) received in order, over every pair of
    /// connected clients.
    fn missing(&self) -> u64 {
        let mut missing = 0;
        for (sender, from) in self.clients.iter().enumerate() {
            for (reader, to) in self.clients.iter().enumerate() {
                if reader != sender && to.rx.open {
                    missing += from.sent.saturating_sub(to.rx.inbox.received_from(sender));
                }
            }
        }
        missing
    }

    /// Encodes, for every client, what its window allows.
    fn publish(&mut self, max_messages: u64) {
        let window = self.window();
        let record_len = self.checker.wire.record_len() as u64;
        let batch_max = (BATCH_BYTES as u64 / record_len).max(1);
        let now = self.clock.now_ns();
        for sender in 0..self.clients.len() {
            if !self.clients[sender].out.is_empty() {
                continue;
            }
            let slowest = self
                .clients
                .iter()
                .enumerate()
                .filter(|(reader, c)| *reader != sender && c.rx.open)
                .map(|(_, c)| c.rx.inbox.received_from(sender))
                .min()
                .unwrap_or(0);
            let client = &mut self.clients[sender];
            let allowed = (slowest + window).min(max_messages);
            let last = allowed.min(client.sent + batch_max);
            for seq in client.sent..last {
                let header = Header {
                    sender: sender as u32,
                    seq,
                    stamp_ns: now,
                };
                self.checker.wire.encode(header, &mut client.out);
            }
            client.sent = client.sent.max(last);
        }
    }

    /// Writes every client's buffer as far as its socket takes it.
    fn send_all(&mut self) -> Result<(), LoadError> {
        for client in &mut self.clients {
            if !client.rx.open {
                continue;
            }
            match scenario::write_out(&mut client.rx.stream, &mut client.out) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WriteZero => return Err(LoadError::Io(e)),
                Err(_) => client.rx.lost(&mut self.checker),
            }
        }
        Ok(())
    }

    fn poll_once(&mut self, timeout: Option<Duration>) -> Result<(), LoadError> {
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        scenario::poll_once(&mut self.poll, &mut events, timeout)?;
        for event in events.iter() {
            if event.is_readable() || event.is_read_closed() {
                self.read_client(event.token().0);
            }
        }
        self.events = events;
        Ok(())
    }

    fn read_client(&mut self, index: usize) {
        let Some(client) = self.clients.get_mut(index) else {
            return;
        };
        let mut with = ReadWith {
            buf: &mut self.buf,
            checker: &mut self.checker,
            against: &mut (),
            clock: &self.clock,
            stamped: false,
        };
        if let Some(at) = client.rx.read_all(&mut with) {
            self.last_delivery_ns = at;
        }
    }
}
