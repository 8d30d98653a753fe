//! The session relay (`relay --members FILE --identity FILE`) driven by
//! relay-bench as a session client: members made by `make-members
//! --sessions`, the fanout (sampled and `--verify-all`), latency, idle and
//! handshakes scenarios clean; a relay key that is not the relay's refused
//! at every handshake. And full TLS handshakes through `openssl s_time`
//! against `openssl s_server`, when Debian's openssl is installed.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eaxchat_proto::session::StaticSecret;

use super::util::RelayProcess;
use super::{clean_fanouts, number, relay_bench, scratch};

/// `relay-bench make-members --sessions --count N --file FILE` in `dir`:
/// the members file, the identities beside it in `FILE.identities`.
pub(super) fn make_sessions(dir: &Path, count: usize) -> String {
    let file = dir.join("sessions.txt").display().to_string();
    let status = Command::new(env!("CARGO_BIN_EXE_relay-bench"))
        .args(["make-members", "--sessions", "--count", &count.to_string()])
        .args(["--file", &file])
        .status()
        .expect("run relay-bench make-members");
    assert!(status.success(), "make-members --sessions: {status}");
    assert!(dir.join("sessions.txt.identities/m0.identity").exists());
    file
}

/// Every scenario that speaks sessions runs clean against the session
/// relay: each connection shakes hands as its member, every delivery's
/// counter is checked in its own session, and handshakes are counted.
#[test]
fn every_session_scenario_runs_clean_against_the_session_relay() {
    let dir = scratch("sessions-relay");
    let members = make_sessions(&dir, 9);
    let identity = dir.join("relay.identity").display().to_string();
    let relay = RelayProcess::start_members(Path::new(&members), &["--identity", &identity]);
    let addr = relay.addr.to_string();
    let pid = relay.pid().to_string();
    let common = [
        "--sessions-file",
        &members,
        "--relay-identity",
        &identity,
        "--addr",
        &addr,
        "--pid",
        &pid,
    ];

    for report in clean_fanouts(&common) {
        assert_eq!(report["protocol"], "eaxchat-sessions", "{report}");
    }

    let latency = ["latency", "--clients", "4", "--rate", "2000"];
    let (code, report) = relay_bench(&[&latency[..], &["--duration", "0.5"], &common].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    let messages = number(&report, "messages");
    assert!(messages >= 500.0, "{report}");
    assert_eq!(number(&report, "deliveries"), 4.0 * messages, "{report}");

    let idle = ["idle", "--clients", "9", "--duration", "0.2"];
    let (code, report) = relay_bench(&[&idle[..], &common[..]].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    assert_eq!(number(&report, "deliveries"), 8.0, "{report}");

    for in_flight in ["1", "4"] {
        let handshakes = ["handshakes", "--clients", in_flight, "--messages", "200"];
        let (code, report) = relay_bench(&[&handshakes[..], &common[..]].concat());
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(number(&report, "errors"), 0.0, "{report}");
        assert_eq!(number(&report, "handshakes"), 200.0, "{report}");
        assert!(number(&report, "handshakes_per_s") > 0.0, "{report}");
        assert!(
            number(&report, "relay_cpu_us_per_handshake") >= 0.0,
            "{report}"
        );
    }

    // Pinned to a key that is not the relay's: every hello is refused, and
    // a fanout cannot even start.
    let other = StaticSecret::generate().expect("a key");
    let other = other.public_key().to_string();
    let wrong = [
        "--sessions-file",
        &members,
        "--relay-key",
        &other,
        "--addr",
        &addr,
    ];
    let handshakes = ["handshakes", "--clients", "2", "--messages", "10"];
    let args = [&handshakes[..], &wrong[..]].concat();
    let (code, report) = relay_bench(&args);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(number(&report, "errors_refused"), 10.0, "{report}");
    assert_eq!(number(&report, "handshakes"), 0.0, "{report}");
    let output = Command::new(env!("CARGO_BIN_EXE_relay-bench"))
        .args(["fanout", "--clients", "2", "--quiet"])
        .args(wrong)
        .output()
        .expect("run relay-bench");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("handshake failed"), "{stderr}");

    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("slow_consumers=0"), "{log}");
    std::fs::remove_dir_all(dir).expect("remove scratch dir");
}

/// `openssl s_server` on a free loopback port, with a throwaway
/// self-signed P-256 certificate made in `dir`; killed by its PID when
/// dropped. `None` when openssl is not installed.
struct TlsServer {
    child: Child,
    addr: SocketAddr,
}

impl TlsServer {
    fn start(dir: &Path) -> Option<TlsServer> {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let made = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !made.is_ok_and(|status| status.success()) {
            return None;
        }
        // A port free a moment ago; s_server takes it.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        let child = Command::new("openssl")
            .args(["s_server", "-accept", &addr.to_string(), "-tls1_3", "-www"])
            .args(["-quiet", "-cert"])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = TlsServer { child, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "s_server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `handshakes --tls` runs `openssl s_time -new` for a second against
/// `openssl s_server` and reports its handshakes and the server's CPU per
/// handshake.
#[test]
fn tls_handshakes_are_counted_through_s_time() {
    let dir = scratch("tls");
    let Some(server) = TlsServer::start(&dir) else {
        eprintln!("openssl is not installed: TLS handshakes not tried");
        return;
    };
    let addr = server.addr.to_string();
    let pid = server.child.id().to_string();
    let args = [
        "handshakes",
        "--tls",
        "--duration",
        "1",
        "--addr",
        &addr,
        "--pid",
        &pid,
    ];
    let (code, report) = relay_bench(&args);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["protocol"], "tls", "{report}");
    assert!(number(&report, "handshakes") > 0.0, "{report}");
    assert!(
        number(&report, "relay_cpu_us_per_handshake") > 0.0,
        "{report}"
    );
    drop(server);
    std::fs::remove_dir_all(dir).expect("remove scratch dir");
}
