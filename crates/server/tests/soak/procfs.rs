//! What the test reads from `/proc` over time or beyond one process: the
//! relay's memory sampled while it runs, and the kernel's send and receive
//! queues of a loopback connection. One reading of a process's memory is
//! [`eaxchat_test_support::sys::process_status_kib`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use eaxchat_test_support::sys;

/// How often VmRSS is read.
const EVERY: Duration = Duration::from_millis(100);

/// What the sampler saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct RssSeen {
    /// Samples taken.
    pub samples: u64,
    /// Largest VmRSS sampled, KiB.
    pub max_kib: u64,
}

/// A thread reading the relay's VmRSS every [`EVERY`] until stopped or the
/// process is gone.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<RssSeen>,
}

impl RssSampler {
    /// Starts sampling process `pid`.
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut seen = RssSeen::default();
            while !flag.load(Ordering::SeqCst) {
                let Ok(kib) = sys::process_status_kib(pid, "VmRSS") else {
                    break;
                };
                seen.samples += 1;
                seen.max_kib = seen.max_kib.max(kib);
                std::thread::sleep(EVERY);
            }
            seen
        });
        RssSampler { stop, thread }
    }

    /// Stops sampling and returns what was seen.
    pub fn finish(self) -> RssSeen {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("sampler thread")
    }
}

/// Bytes in the kernel's queues of the loopback connection between `a` and
/// `b`: (`a`'s send queue + receive queue, `b`'s send queue + receive
/// queue), from `/proc/net/tcp`; `None` for a side not found.
pub fn tcp_queued(a: SocketAddr, b: SocketAddr) -> (Option<u64>, Option<u64>) {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let hex = |addr: SocketAddr| match addr {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => String::new(),
    };
    let (a, b) = (hex(a), hex(b));
    let queued = |local: &str, remote: &str| {
        table.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(1) != Some(&local) || fields.get(2) != Some(&remote) {
                return None;
            }
            let (tx, rx) = fields.get(4)?.split_once(':')?;
            Some(u64::from_str_radix(tx, 16).ok()? + u64::from_str_radix(rx, 16).ok()?)
        })
    };
    (queued(&a, &b), queued(&b, &a))
}
