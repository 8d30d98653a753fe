//! `relay-floor`, the crypto-free baseline `benches/run.sh` measures beside
//! the relay.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use super::{number, relay_bench};

/// `relay-floor`, the crypto-free baseline `benches/run.sh` measures beside
/// the relay, forwards every plain line intact, and a reader that stalls
/// and then vanishes does not stop it: its figures are of a working relay.
#[test]
fn the_floor_relay_forwards_every_line() {
    let floor = FloorRelay::start();
    let addr = floor.addr.to_string();
    let pid = floor.child.id().to_string();
    let common = ["--addr", &addr, "--plain", "--pid", &pid];
    // Connected before the runs, never read: its queue only grows.
    let stalled = TcpStream::connect(floor.addr).expect("connect");

    let fanout = ["fanout", "--clients", "8", "--messages", "3000"];
    let (code, report) = relay_bench(&[&fanout[..], &common[..]].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    assert_eq!(number(&report, "deliveries"), 8.0 * 3000.0, "{report}");

    drop(stalled);
    let latency = ["latency", "--clients", "4", "--rate", "2000"];
    let (code, report) = relay_bench(&[&latency[..], &["--duration", "0.5"], &common[..]].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    let messages = number(&report, "messages");
    assert!(messages >= 500.0, "{report}");
    assert_eq!(number(&report, "deliveries"), 4.0 * messages, "{report}");
}

/// `relay-floor` on a free port; killed when dropped.
struct FloorRelay {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    /// Kept open: with the pipe closed, a later line on its stderr (an
    /// accept error) would fail, and `eprintln!` panics on that.
    _stderr: BufReader<std::process::ChildStderr>,
}

impl FloorRelay {
    fn start() -> FloorRelay {
        let mut child = Command::new(env!("CARGO_BIN_EXE_relay-floor"))
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn relay-floor");
        let mut line = String::new();
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        stderr.read_line(&mut line).expect("read");
        let addr = line
            .trim()
            .strip_prefix("relay-floor: forwarding on ")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("relay-floor said {line:?}"));
        FloorRelay {
            child,
            addr,
            _stderr: stderr,
        }
    }
}

impl Drop for FloorRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
