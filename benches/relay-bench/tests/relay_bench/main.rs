//! `relay-bench` against the real relay: every scenario runs briefly and
//! reports every delivery made and no errors. And against brokers written
//! here that lose, corrupt or misname one line: relay-bench must say so and
//! fail. No speed is asserted; speed is for `benches/run.sh`.
//!
//! - `relay`: the shared-key relay (every scenario, WebSocket subscribers,
//!   bystanders), the members relay, and settings refused.
//! - `brokers`: a faulty line broker and a members broker written here.
//! - `floor`: `relay-floor`, the crypto-free baseline.
//! - `sessions`: the session relay (fanout, latency, idle, handshakes, a
//!   refused relay key) and TLS handshakes through `openssl s_time`.
//! - `e2e`: `fanout --e2e`, in an end-to-end room of the session relay.
//!
//! Every run is bounded ([`RUN_LIMIT`]); every process is stopped by its
//! PID.

mod brokers;
mod e2e;
mod floor;
mod relay;
mod sessions;

// The relay's test helpers, shared with the workspace's own tests.
use eaxchat_test_support as util;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest any relay-bench run here may take.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Runs relay-bench with `args` (plus `--json --quiet`), killing it past
/// [`RUN_LIMIT`]; returns its exit code and its report.
pub fn relay_bench(args: &[&str]) -> (Option<i32>, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relay-bench"))
        .args(args)
        .args(["--json", "--quiet"])
        .env_remove("EAXCHAT_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relay-bench");
    let deadline = Instant::now() + RUN_LIMIT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("relay-bench {args:?} ran past {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&stdout);
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "relay-bench {args:?} printed no report ({e}); status {status}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&stderr)
        )
    });
    (status.code(), report)
}

/// The number `field` of `report`; panics if there is none.
pub fn number(report: &Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {field} in {report}"))
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("relay-bench-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `relay-bench make-members --count N --file FILE` in `dir`; returns the path.
pub fn make_members(dir: &std::path::Path, count: usize) -> String {
    let file = dir.join("members.txt").display().to_string();
    let status = Command::new(env!("CARGO_BIN_EXE_relay-bench"))
        .args([
            "make-members",
            "--count",
            &count.to_string(),
            "--file",
            &file,
        ])
        .status()
        .expect("run relay-bench make-members");
    assert!(status.success(), "make-members: {status}");
    file
}

/// A fanout of 3,000 messages to 8 subscribers, with and without
/// `--verify-all`, both clean; returns the two reports.
pub fn clean_fanouts(common: &[&str]) -> Vec<Value> {
    let fanout = [
        "fanout",
        "--clients",
        "8",
        "--messages",
        "3000",
        "--window",
        "200",
    ];
    let mut reports = Vec::new();
    for verify in [&[][..], &["--verify-all"][..]] {
        let args = [&fanout[..], verify, common].concat();
        let (code, report) = relay_bench(&args);
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(number(&report, "errors"), 0.0, "{report}");
        assert_eq!(number(&report, "messages"), 3000.0, "{report}");
        assert_eq!(number(&report, "deliveries"), 8.0 * 3000.0, "{report}");
        assert!(number(&report, "verified") > 0.0, "{report}");
        reports.push(report);
    }
    reports
}
