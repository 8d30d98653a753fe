//! The handshakes scenario against a TLS server (`--tls`): full TLS 1.3
//! handshakes as `openssl s_time -new` makes them, one after another, for
//! `--duration` (whole seconds, rounded up), as the anchor the relay's
//! handshakes are compared with on the same machine.
//!
//! relay-bench runs `s_time`, reads how many connections it made, and
//! times it by the wall clock; the server's CPU time comes from
//! `/proc/PID/stat` (`--pid`), as the relay's does, and the load
//! generator's (s_time's own, reported as the bench CPU) from
//! `getrusage(RUSAGE_CHILDREN)`. `s_time` prints a byte per connection,
//! so its output is drained while it runs; it is killed by its PID if it
//! runs far past its time.

use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::super::report::{Errors, Report};
use super::super::{CpuMeter, LoadError, Options};

/// How long past its own time `s_time` may run before it is killed.
const GRACE: Duration = Duration::from_secs(30);

pub(super) fn run(options: &Options) -> Result<Report, LoadError> {
    let seconds = options.duration.as_secs_f64().ceil().max(1.0) as u64;
    let server_cpu = CpuMeter::start(options.relay_pid);
    let generator_before = children_cpu_time();
    let started = Instant::now();
    let mut child = Command::new("openssl")
        .args(["s_time", "-connect", &options.addr.to_string(), "-new"])
        .args(["-time", &seconds.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LoadError::Options(format!("cannot run openssl s_time: {e}")))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = started + Duration::from_secs(seconds) + GRACE;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LoadError::Setup(format!(
                "openssl s_time ran past {:?}",
                deadline - started
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = started.elapsed();
    let generator_cpu = children_cpu_time().saturating_sub(generator_before);
    let (_, server_cpu_time) = server_cpu.elapsed();
    let stdout = joined(stdout);
    let stderr = joined(stderr);
    let handshakes = connections(&stdout).filter(|_| status.success());
    let Some(handshakes) = handshakes.filter(|&n| n > 0) else {
        let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
        return Err(LoadError::Setup(format!(
            "openssl s_time made no connections ({status}): {tail}"
        )));
    };
    Ok(Report {
        scenario: "handshakes",
        protocol: options.protocol.name(),
        clients: 1,
        size: 0,
        line_len: 0,
        window: 1,
        rate: None,
        run_time: wall,
        messages: 0,
        deliveries: 0,
        verified: handshakes,
        latency: None,
        latency_by_relay: Vec::new(),
        send_lag: None,
        errors: Errors::default(),
        cpu_time: generator_cpu,
        relay_cpu_time: server_cpu_time,
        idle: None,
        bystanders: 0,
        handshakes: Some(handshakes),
    })
}

/// Reads a child's pipe to its end on a thread of its own.
fn drain<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> Option<JoinHandle<String>> {
    let mut pipe = pipe?;
    Some(std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    }))
}

fn joined(reader: Option<JoinHandle<String>>) -> String {
    reader
        .and_then(|thread| thread.join().ok())
        .unwrap_or_default()
}

/// The count in s_time's first summary line, `N connections in 1.75s; …`.
fn connections(stdout: &str) -> Option<u64> {
    stdout.lines().find_map(|line| {
        let (count, _) = line.split_once(" connections in ")?;
        count.split_whitespace().last()?.parse().ok()
    })
}

/// CPU time (user + system) of this process's children that have been
/// waited for.
fn children_cpu_time() -> Duration {
    // SAFETY: getrusage writes one `rusage` into the zeroed value we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |tv: libc::timeval| {
        Duration::from_secs(tv.tv_sec.max(0) as u64)
            + Duration::from_micros(tv.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_comes_from_the_first_summary_line() {
        let stdout = "Collecting connection statistics for 2 seconds\n****\n\n\
                      4259 connections in 1.75s; 2433.71 connections/user sec, bytes read 0\n\
                      4259 connections in 3 real seconds, 0 bytes read per connection\n";
        assert_eq!(connections(stdout), Some(4259));
        assert_eq!(connections("ERROR\nconnect: Connection refused\n"), None);
    }
}
