//! The `idle` scenario: open N connections that say nothing, and read what
//! they cost the relay in resident memory (`/proc/PID/status`, given the
//! relay's pid).
//!
//! The relay's RSS is read before connecting, once it holds a descriptor for
//! every connection and they have sat idle for the run's duration, and
//! again after each connection has received one message (the first client
//! sends it), which also proves every connection is being served.
//!
//! With `--events` every connection first says `/hello eaxchat/1` and joins
//! `--extra-rooms` more rooms (`bench-room-1` …, all of them shared), so
//! the memory read is that of idle connections each in that many rooms
//! more; the one message then arrives as a `msg` event.
//!
//! Against a session relay connection i shakes hands as the members file's
//! member i before it goes idle, so the memory read is that of idle
//! established sessions; the one message is sealed in the first
//! connection's session and each other opens it in its own.

use std::io::{self, Read as _, Write as _};
use std::time::Duration;

use bytes::BytesMut;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::inbox::{Checker, Inbox as _, Ledger, StreamInbox};
use super::report::{Errors, IdleMemory, Report};
use super::sessions;
use super::sys;
use super::wire::{BARRIER, Checking, Header, Protocol, Wire};
use super::{Clock, CpuMeter, LoadError, Options, Progress, connect, would_block};
use eaxchat_proto::session::Established;

const READ_LEN: usize = 64 * 1024;
const FD_POLL: Duration = Duration::from_millis(50);

pub(super) fn run(options: &Options) -> Result<Report, LoadError> {
    let mut wire = Wire::new(&options.protocol, options.size)?;
    if options.events {
        wire = wire.with_events()?;
    }
    let pid = options.relay_pid;
    if let Protocol::Sessions(roster) = &options.protocol {
        let who = format!("idle with {} connections", options.clients);
        roster
            .check_enough(options.clients, &who)
            .map_err(LoadError::Options)?;
    }
    // Connections of an earlier run may still be closing: start from a
    // relay that has settled.
    let fds_before = pid.map(settled_descriptors).transpose()?;
    let rss_before = pid.map(sys::process_rss).transpose()?;
    let cpu = CpuMeter::start(pid);
    let clock = Clock::start();
    let mut progress = Progress::new(options.progress);
    let n = options.clients;
    let mut streams = Vec::with_capacity(n);
    let mut sessions = Vec::new();
    for opened in 0..n {
        match &options.protocol {
            Protocol::Sessions(roster) => {
                let (stream, established) =
                    sessions::connect(options.addr, roster, opened, options.setup_timeout)?;
                streams.push(stream);
                sessions.push(established);
            }
            _ => {
                // With `--events`: `/hello eaxchat/1` and its `/join`s,
                // sealed anew for each (the relay refuses a replay).
                let greeting = super::events_greeting(options, &mut wire);
                streams.push(connect(options.addr, &greeting)?);
            }
        }
        progress.tick(|| format!("idle: {opened} of {n} connections open"));
    }
    let mut inboxes = inboxes(&mut wire, sessions, n)?;
    if options.events {
        inboxes = inboxes
            .into_iter()
            .map(|inbox| inbox.with_events(options.extra_rooms))
            .collect();
    }
    let wire_line_len = wire.line_len();
    if let (Some(pid), Some(before)) = (pid, fds_before) {
        wait_for_descriptors(pid, before + n, options.setup_timeout)?;
    }
    std::thread::sleep(options.duration);
    let rss_idle = pid.map(sys::process_rss).transpose()?;
    let connected_ns = clock.now_ns();
    // Redis connections would have to subscribe to receive anything, and
    // then they would not be idle connections any more.
    let (delivered, errors) = if matches!(options.protocol, Protocol::Redis) || n < 2 {
        (0, Errors::default())
    } else {
        deliver_one_message(&mut streams, inboxes, wire, options.setup_timeout)?
    };
    let run_time = Duration::from_nanos(clock.now_ns() - connected_ns);
    let rss_after_message = match (pid, delivered) {
        (Some(pid), 1..) => Some(sys::process_rss(pid)?),
        _ => None,
    };
    progress.finish();
    let (cpu_time, relay_cpu_time) = cpu.elapsed();
    let line_len = wire_line_len + 1;
    Ok(Report {
        scenario: "idle",
        protocol: options.protocol.name(),
        clients: n,
        size: options.size,
        line_len,
        window: 1,
        rate: None,
        run_time,
        messages: u64::from(delivered > 0),
        deliveries: delivered,
        verified: delivered,
        latency: None,
        latency_by_relay: Vec::new(),
        send_lag: None,
        errors,
        cpu_time,
        relay_cpu_time,
        idle: rss_before
            .zip(rss_idle)
            .map(|(rss_before, rss_idle)| IdleMemory {
                rss_before,
                rss_idle,
                rss_after_message,
            }),
        bystanders: 0,
        handshakes: None,
    })
}

/// The relay's open descriptors once the count has held still for a
/// moment (at most a few seconds).
fn settled_descriptors(pid: u32) -> Result<usize, LoadError> {
    let mut last = sys::process_open_fds(pid)?;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = sys::process_open_fds(pid)?;
        if now == last {
            break;
        }
        last = now;
    }
    Ok(last)
}

/// Waits until the relay has `want` descriptors open: it has accepted
/// every connection.
fn wait_for_descriptors(pid: u32, want: usize, timeout: Duration) -> Result<(), LoadError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let open = sys::process_open_fds(pid)?;
        if open >= want {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(LoadError::Setup(format!(
                "the relay (pid {pid}) has {open} descriptors open, expected {want} within {timeout:?}"
            )));
        }
        std::thread::sleep(FD_POLL);
    }
}

/// The inboxes of connections 1 to `n - 1`, which receive the first
/// one's message. In session mode the first connection's session goes to
/// `wire`, to seal the message in, and each other's to its inbox.
fn inboxes(
    wire: &mut Wire,
    sessions: Vec<Established>,
    n: usize,
) -> Result<Vec<StreamInbox>, LoadError> {
    let mut sessions = sessions.into_iter();
    let Some(first) = sessions.next() else {
        let inbox = || StreamInbox::new(wire.record_len(), 0, 1, false);
        return Ok((1..n).map(|_| inbox()).collect());
    };
    wire.start_session(first.session);
    sessions
        .map(|established| {
            let reader = wire
                .session_reader(established, Checking::Every)
                .ok_or_else(|| LoadError::Options("not a session relay's codec".into()))?;
            Ok(StreamInbox::for_session(
                wire.record_len(),
                1,
                true,
                reader,
                0,
            ))
        })
        .collect()
}

/// The first connection sends one message; every other one must receive
/// it into its inbox. Returns the deliveries and the errors.
fn deliver_one_message(
    streams: &mut [TcpStream],
    mut inboxes: Vec<StreamInbox>,
    wire: Wire,
    timeout: Duration,
) -> Result<(u64, Errors), LoadError> {
    let mut poll = Poll::new()?;
    for (index, stream) in streams.iter_mut().enumerate().skip(1) {
        poll.registry()
            .register(stream, Token(index), Interest::READABLE)?;
    }
    let mut checker = Checker::new(wire);
    let mut message = BytesMut::new();
    checker.wire.encode(
        Header {
            sender: BARRIER,
            seq: 0,
            stamp_ns: 0,
        },
        &mut message,
    );
    // One short line into an empty socket: a blocking-style loop is fine.
    let mut written = 0;
    while written < message.len() {
        match streams[0].write(&message[written..]) {
            Ok(n) => written += n,
            Err(e) if would_block(&e) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(LoadError::Io(e)),
        }
    }
    let mut no_ledger = Ledger::new(1, 0);
    let mut buf = vec![0; READ_LEN + checker.wire.record_len()];
    let mut events = Events::with_capacity(1024);
    let mut waiting = inboxes.len();
    let deadline = std::time::Instant::now() + timeout;
    while waiting > 0 && std::time::Instant::now() < deadline {
        match poll.poll(&mut events, Some(Duration::from_millis(100))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LoadError::Io(e)),
        }
        for event in events.iter() {
            let index = event.token().0;
            let inbox = index.checked_sub(1).and_then(|i| inboxes.get_mut(i));
            let (Some(stream), Some(inbox)) = (streams.get_mut(index), inbox) else {
                continue;
            };
            loop {
                let carry = inbox.carry().len();
                buf[..carry].copy_from_slice(inbox.carry());
                match stream.read(&mut buf[carry..]) {
                    Ok(0) => {
                        checker.errors.disconnected += 1;
                        poll.registry().deregister(stream)?;
                        break;
                    }
                    Ok(n) => {
                        let was_ready = inbox.ready();
                        inbox.absorb(&buf[..carry + n], 0, &mut checker, &mut no_ledger);
                        if inbox.ready() && !was_ready {
                            waiting -= 1;
                        }
                    }
                    Err(e) if would_block(&e) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        checker.errors.disconnected += 1;
                        poll.registry().deregister(stream)?;
                        break;
                    }
                }
            }
        }
    }
    let delivered = inboxes.iter().filter(|inbox| inbox.ready()).count() as u64;
    let mut errors = checker.errors;
    errors.lost += inboxes.len() as u64 - delivered;
    Ok((delivered, errors))
}
