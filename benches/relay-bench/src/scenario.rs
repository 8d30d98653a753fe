//! The skeleton the `fanout` (and `latency`) and `room` scenarios share:
//! their constants, the bounds of a setup, the clock work of the measuring
//! loop (when publishing stops, when waiting for what is in flight ends,
//! the progress line, CPU time), the parts of a report they fill alike,
//! and the poll and write steps of a turn. Each scenario brings what
//! differs: who probes, what "served" means, how it publishes.

use std::io::{self, Write as _};
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use mio::net::TcpStream;
use mio::{Events, Poll};

use super::inbox::Checker;
use super::report::{Errors, Report};
use super::{Clock, CpuMeter, LoadError, Options, Progress, would_block};

/// Bytes the receivers' shared buffer takes per read.
pub(super) const READ_LEN: usize = 256 * 1024;
/// How often the setup probes again.
pub(super) const PROBE_EVERY: Duration = Duration::from_millis(20);
/// How long the end of a run waits for deliveries that stopped coming.
pub(super) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The bounds of a setup: no error at all, and done by the deadline.
pub(super) struct Setup {
    deadline_ns: u64,
    timeout: Duration,
}

impl Setup {
    /// A setup allowed `options.setup_timeout` from now.
    pub fn start(options: &Options, clock: &Clock) -> Setup {
        let timeout = options.setup_timeout;
        Setup {
            deadline_ns: clock.now_ns() + timeout.as_nanos() as u64,
            timeout,
        }
    }

    /// Fails when the relay misbehaved (any error counted, or `broken`)
    /// or the deadline has passed; `shortfall` says who was not served yet
    /// ("only 3 of 8 subscribers received a probe").
    pub fn check(
        &self,
        clock: &Clock,
        errors: Errors,
        broken: bool,
        shortfall: impl FnOnce() -> String,
    ) -> Result<(), LoadError> {
        if errors.total() > 0 || broken {
            return Err(LoadError::Setup(format!(
                "the relay misbehaved during setup: {errors:?}"
            )));
        }
        if clock.now_ns() > self.deadline_ns {
            return Err(LoadError::Setup(format!(
                "{} within {:?}",
                shortfall(),
                self.timeout
            )));
        }
        Ok(())
    }
}

/// The clock work of a measuring loop.
pub(super) struct Measurement {
    progress: Progress,
    cpu: CpuMeter,
    /// When measuring began.
    pub start_ns: u64,
    end_ns: u64,
    stopped_ns: Option<u64>,
}

impl Measurement {
    /// Starts measuring now, for `options.duration`.
    pub fn start(options: &Options, clock: &Clock) -> Measurement {
        let progress = Progress::new(options.progress);
        let cpu = CpuMeter::start(options.relay_pid);
        let start_ns = clock.now_ns();
        Measurement {
            progress,
            cpu,
            start_ns,
            end_ns: start_ns + options.duration.as_nanos() as u64,
            stopped_ns: None,
        }
    }

    /// Stops publishing at `now_ns` if the run's time is up or `done`;
    /// true only on the call that stops it.
    pub fn stop_if_due(&mut self, now_ns: u64, done: bool) -> bool {
        if self.stopped_ns.is_none() && (now_ns >= self.end_ns || done) {
            self.stopped_ns = Some(now_ns);
            return true;
        }
        false
    }

    /// Whether publishing has stopped.
    pub fn stopped(&self) -> bool {
        self.stopped_ns.is_some()
    }

    /// Whether the run is over: publishing has stopped, and either
    /// everything sent has arrived (`drained`, asked only once stopped) or
    /// nothing has arrived for [`DRAIN_TIMEOUT`] since the last delivery or
    /// the stop.
    pub fn over(&self, now_ns: u64, last_delivery_ns: u64, drained: impl FnOnce() -> bool) -> bool {
        let Some(stopped_ns) = self.stopped_ns else {
            return false;
        };
        let since = stopped_ns.max(last_delivery_ns);
        now_ns.saturating_sub(since) > DRAIN_TIMEOUT.as_nanos() as u64 || drained()
    }

    /// Shows the progress line, when it is time to.
    pub fn tick(&mut self, line: impl FnOnce() -> String) {
        self.progress.tick(line);
    }

    /// Ends the progress line and returns the report's common fields; the
    /// scenario fills in the rest (`clients`, `window`, `rate`, `messages`,
    /// `deliveries`, `send_lag`) and adds to `errors` what it finds at the
    /// end.
    pub fn finish(mut self, options: &Options, checker: &Checker, last_delivery_ns: u64) -> Report {
        self.progress.finish();
        let (cpu_time, relay_cpu_time) = self.cpu.elapsed();
        Report {
            scenario: options.scenario.name(),
            protocol: options.protocol.name(),
            clients: 0,
            size: options.size,
            line_len: checker.wire.line_len() + 1,
            window: 0,
            rate: None,
            run_time: Duration::from_nanos(last_delivery_ns - self.start_ns),
            messages: 0,
            deliveries: 0,
            verified: checker.opened,
            latency: Some(checker.latency.percentiles()),
            latency_by_relay: Vec::new(),
            send_lag: None,
            errors: checker.errors,
            cpu_time,
            relay_cpu_time,
            idle: None,
            bystanders: 0,
            handshakes: None,
        }
    }
}

/// Polls once, waiting at most `timeout`; an interrupted wait is a turn
/// without events.
pub(super) fn poll_once(
    poll: &mut Poll,
    events: &mut Events,
    timeout: Option<Duration>,
) -> Result<(), LoadError> {
    match poll.poll(events, timeout) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            events.clear();
            Ok(())
        }
        Err(e) => Err(LoadError::Io(e)),
    }
}

/// Writes `out` to `stream` until it is empty (true) or the socket would
/// block (false). A write of zero bytes is an error (`WriteZero`).
pub(super) fn write_out(stream: &mut TcpStream, out: &mut BytesMut) -> io::Result<bool> {
    while !out.is_empty() {
        match stream.write(out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => out.advance(n),
            Err(e) if would_block(&e) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    out.clear();
    Ok(true)
}
