//! `relay-bench` against the real relay: every scenario runs briefly and
//! reports every delivery made and no errors. And against a line broker
//! written here that loses or corrupts one line: relay-bench must say so
//! and fail. No speed is asserted; speed is for `benches/run.sh`.

// The relay's test helpers, shared with the workspace's own tests.
use eaxchat_test_support as util;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::RelayProcess;

/// Longest any relay-bench run here may take.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Runs relay-bench with `args` (plus `--json --quiet`), killing it past
/// [`RUN_LIMIT`]; returns its exit code and its report.
fn relay_bench(args: &[&str]) -> (Option<i32>, Value) {
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

fn number(report: &Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {field} in {report}"))
}

/// Every scenario against the relay: every message reaches every
/// subscriber, and nothing is lost, duplicated, forged or malformed.
#[test]
fn every_scenario_runs_clean_against_the_relay() {
    let relay = RelayProcess::start(&[]);
    let addr = relay.addr.to_string();
    let key = relay.key.to_hex();
    let pid = relay.pid().to_string();
    let common = ["--addr", &addr, "--key-hex", &key, "--pid", &pid];

    for report in clean_fanouts(&common) {
        assert!(number(&report, "relay_cpu_s") >= 0.0, "{report}");
    }

    let room = ["room", "--clients", "6", "--messages", "300"];
    let (code, report) = relay_bench(&[&room[..], &common[..]].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    assert_eq!(number(&report, "deliveries"), 6.0 * 5.0 * 300.0, "{report}");
    assert_eq!(number(&report, "verified"), number(&report, "deliveries"));

    let latency = [
        "latency",
        "--clients",
        "4",
        "--rate",
        "2000",
        "--duration",
        "0.5",
    ];
    let (code, report) = relay_bench(&[&latency[..], &common[..]].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    let messages = number(&report, "messages");
    assert!(messages >= 500.0, "{report}");
    assert_eq!(number(&report, "deliveries"), 4.0 * messages);
    assert!(number(&report, "latency_p99_us") <= number(&report, "latency_max_us"));

    let idle = ["idle", "--clients", "50", "--duration", "0.2"];
    let (code, report) = relay_bench(&[&idle[..], &common[..]].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    assert_eq!(number(&report, "deliveries"), 49.0, "{report}");
    assert!(number(&report, "relay_rss_idle_kib") > 0.0, "{report}");

    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("slow_consumers=0"), "{log}");
}

/// Wrong settings are refused before anything is sent.
#[test]
fn refuses_what_it_cannot_measure() {
    let cases: [&[&str]; 3] = [
        &["fanout", "--addr", "192.0.2.1:8080", "--plain"],
        &[
            "fanout",
            "--addr",
            "127.0.0.1:9",
            "--key-hex",
            "00",
            "--size",
            "64",
        ],
        &["room", "--addr", "127.0.0.1:9", "--redis"],
    ];
    for args in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_relay-bench"))
            .args(args)
            .arg("--quiet")
            .env_remove("EAXCHAT_KEY")
            .output()
            .expect("run relay-bench");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
}

/// What the test broker does to one delivery.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Drop,
    Duplicate,
    Corrupt,
    SwapWithNext,
}

/// A plain line broker like `ncat --broker` (every line to every other
/// client) that applies `fault` to the `nth` line it delivers to the first
/// client that connected.
struct FaultyBroker {
    addr: String,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

type Clients = Arc<Mutex<HashMap<usize, TcpStream>>>;

impl FaultyBroker {
    fn start(fault: Fault, nth: usize) -> FaultyBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let acceptor = std::thread::spawn(move || {
            let clients: Clients = Arc::default();
            let mut next_id = 0;
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).expect("blocking");
                        let reader = stream.try_clone().expect("clone");
                        clients
                            .lock()
                            .expect("clients lock")
                            .insert(next_id, stream);
                        let clients = Arc::clone(&clients);
                        let id = next_id;
                        std::thread::spawn(move || forward(id, reader, &clients, fault, nth));
                        next_id += 1;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultyBroker {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for FaultyBroker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Forwards every line from client `from` to every other client, applying
/// the fault on the way to client 0. Ends when `from` disconnects.
fn forward(from: usize, stream: TcpStream, clients: &Clients, fault: Fault, nth: usize) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut to_first = 0;
    let mut held: Option<Vec<u8>> = None;
    while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
        let mut clients = clients.lock().expect("clients lock");
        for (&to, stream) in clients.iter_mut() {
            if to == from {
                continue;
            }
            let mut out = vec![line.clone()];
            if to == 0 {
                to_first += 1;
                if let Some(earlier) = held.take() {
                    out.push(earlier);
                }
                if to_first == nth {
                    match fault {
                        Fault::Drop => out.clear(),
                        Fault::Duplicate => out.push(line.clone()),
                        // A filler byte, past the header.
                        Fault::Corrupt => out[0][50] ^= 0x01,
                        Fault::SwapWithNext => held = out.pop(),
                    }
                }
            }
            for piece in out {
                let _ = stream.write_all(&piece);
            }
        }
        line.clear();
    }
}

/// A broker that loses, duplicates, corrupts or reorders one delivery out
/// of thousands is caught, with the fault named, and relay-bench fails.
#[test]
fn a_faulty_broker_is_caught() {
    // Which counts name a fault depends on whether the faulty subscriber or
    // a healthy one read that message first; see `relay_bench::inbox`.
    let cases: [(Fault, &[&str]); 4] = [
        (Fault::Drop, &["errors_lost"]),
        (
            Fault::Duplicate,
            &["errors_duplicated", "errors_out_of_step"],
        ),
        (Fault::Corrupt, &["errors_forged"]),
        (Fault::SwapWithNext, &["errors_out_of_step", "errors_lost"]),
    ];
    for (fault, fields) in cases {
        // Past the setup's probes and barrier, well inside the data.
        let broker = FaultyBroker::start(fault, 700);
        let args = [
            "fanout",
            "--plain",
            "--addr",
            &broker.addr,
            "--clients",
            "3",
            "--messages",
            "2000",
            "--window",
            "100",
            "--setup-timeout",
            "10",
        ];
        let (code, report) = relay_bench(&args);
        assert_eq!(code, Some(1), "{fault:?}: {report}");
        assert!(number(&report, "errors") > 0.0, "{fault:?}: {report}");
        let named: f64 = fields.iter().map(|field| number(&report, field)).sum();
        assert!(
            named > 0.0,
            "{fault:?} not reported as {fields:?}: {report}"
        );
    }
}

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

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("relay-bench-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `relay-bench make-members --count N --file FILE` in `dir`; returns the path.
fn make_members(dir: &std::path::Path, count: usize) -> String {
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

/// A members relay of the protocol's shape written here, thread per client:
/// a connection is identified by the member key its first frame opens
/// under (an empty frame, never relayed); every later message goes to every
/// other identified client as `NAME: TEXT` sealed under that client's key.
/// With `misname`, the `nth` delivery to the first subscriber is stamped
/// with another member's name.
struct MembersBroker {
    addr: String,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

/// Each identified client's socket and member; a sealer per member.
struct MembersState {
    clients: HashMap<usize, (TcpStream, usize)>,
    sealers: Vec<eaxchat_proto::cipher::Cipher>,
}

impl MembersBroker {
    fn start(members_file: &str, misname: Option<usize>) -> MembersBroker {
        let members = eaxchat_server::members_file::read(std::path::Path::new(members_file))
            .expect("members file")
            .members;
        let names: Arc<Vec<String>> =
            Arc::new(members.iter().map(|m| m.name().to_string()).collect());
        let keys: Vec<eaxchat_proto::key::Key> = members.iter().map(|m| m.key().clone()).collect();
        let sealers = keys
            .iter()
            .map(|key| eaxchat_proto::cipher::Cipher::new(key).expect("cipher"))
            .collect();
        let state = Arc::new(Mutex::new(MembersState {
            clients: HashMap::new(),
            sealers,
        }));
        let keys = Arc::new(keys);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let acceptor = std::thread::spawn(move || {
            let mut next_id = 0;
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).expect("blocking");
                        let (state, names, keys) =
                            (Arc::clone(&state), Arc::clone(&names), Arc::clone(&keys));
                        let id = next_id;
                        std::thread::spawn(move || {
                            serve_member(id, stream, &state, &names, &keys, misname)
                        });
                        next_id += 1;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        MembersBroker {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for MembersBroker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// One client of the [`MembersBroker`], until it disconnects.
fn serve_member(
    id: usize,
    stream: TcpStream,
    state: &Mutex<MembersState>,
    names: &[String],
    keys: &[eaxchat_proto::key::Key],
    misname: Option<usize>,
) {
    let writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    if !matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
        return;
    }
    let first = line.strip_suffix(b"\n").unwrap_or(&line);
    let Some(member) = keys.iter().position(|key| {
        let mut opener = eaxchat_proto::cipher::Cipher::new(key).expect("cipher");
        opener.open(first).is_ok_and(|text| text.is_empty())
    }) else {
        return;
    };
    let mut opener = eaxchat_proto::cipher::Cipher::new(&keys[member]).expect("cipher");
    state
        .lock()
        .expect("state lock")
        .clients
        .insert(id, (writer, member));
    let mut to_first = 0;
    loop {
        line.clear();
        if !matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            break;
        }
        let Ok(text) = opener.open(line.strip_suffix(b"\n").unwrap_or(&line)) else {
            break;
        };
        if text.is_empty() {
            continue;
        }
        let mut state = state.lock().expect("state lock");
        let MembersState { clients, sealers } = &mut *state;
        for (&to, (stream, recipient)) in clients.iter_mut() {
            if to == id {
                continue;
            }
            let mut name = &names[member];
            if to == 0 {
                to_first += 1;
                if misname == Some(to_first) {
                    name = &names[(member + 1) % names.len()];
                }
            }
            let mut stamped = format!("{name}: ").into_bytes();
            stamped.extend_from_slice(text);
            let mut out = bytes::BytesMut::new();
            sealers[*recipient].seal_into(&stamped, &mut out);
            let _ = stream.write_all(&out);
        }
    }
    state.lock().expect("state lock").clients.remove(&id);
}

/// Against a members relay of the protocol's shape, a members fanout runs
/// clean, every subscriber under its own key; one delivery stamped with
/// another member's name is caught as forged.
#[test]
fn a_members_fanout_reads_its_own_key_and_checks_the_name() {
    let dir = scratch("members-broker");
    let members = make_members(&dir, 5);
    let fanout = [
        "fanout",
        "--members-file",
        &members,
        "--clients",
        "4",
        "--messages",
        "2000",
        "--window",
        "100",
        "--setup-timeout",
        "10",
    ];
    let broker = MembersBroker::start(&members, None);
    for verify in [&[][..], &["--verify-all"][..]] {
        let args = [&fanout[..], verify, &["--addr", &broker.addr][..]].concat();
        let (code, report) = relay_bench(&args);
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(report["protocol"], "eaxchat-members", "{report}");
        assert_eq!(number(&report, "errors"), 0.0, "{report}");
        assert_eq!(number(&report, "deliveries"), 4.0 * 2000.0, "{report}");
        assert!(number(&report, "verified") > 0.0, "{report}");
    }
    drop(broker);

    let broker = MembersBroker::start(&members, Some(700));
    let args = [&fanout[..], &["--verify-all", "--addr", &broker.addr][..]].concat();
    let (code, report) = relay_bench(&args);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(number(&report, "errors_forged"), 1.0, "{report}");
    drop(broker);

    // Too few members for the subscribers asked for: refused.
    let args = [
        "fanout",
        "--members-file",
        &members,
        "--clients",
        "5",
        "--addr",
        "127.0.0.1:9",
    ];
    let output = Command::new(env!("CARGO_BIN_EXE_relay-bench"))
        .args(args)
        .arg("--quiet")
        .output()
        .expect("run relay-bench");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has 5 members"), "{stderr}");
    std::fs::remove_dir_all(dir).expect("remove scratch dir");
}

/// Against the real relay in members mode (`relay --members FILE`), a
/// members fanout and a latency run are clean: every subscriber identified
/// by its empty frame, every delivery opened under its own key and stamped
/// with the publisher's name.
#[test]
fn a_members_fanout_runs_clean_against_the_members_relay() {
    let dir = scratch("members-relay");
    let members = make_members(&dir, 9);
    let relay = RelayProcess::start_members(std::path::Path::new(&members), &[]);
    let addr = relay.addr.to_string();
    let pid = relay.pid().to_string();
    let common = ["--members-file", &members, "--addr", &addr, "--pid", &pid];

    clean_fanouts(&common);

    let latency = [
        "latency",
        "--clients",
        "4",
        "--rate",
        "2000",
        "--duration",
        "0.5",
    ];
    let (code, report) = relay_bench(&[&latency[..], &common[..]].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    let messages = number(&report, "messages");
    assert!(messages >= 500.0, "{report}");
    assert_eq!(number(&report, "deliveries"), 4.0 * messages, "{report}");

    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("slow_consumers=0"), "{log}");
    std::fs::remove_dir_all(dir).expect("remove scratch dir");
}

/// A fanout of 3,000 messages to 8 subscribers, with and without
/// `--verify-all`, both clean; returns the two reports.
fn clean_fanouts(common: &[&str]) -> Vec<Value> {
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

/// Subscribers on the relay's WebSocket (`--web`), the publisher on TCP:
/// every message reaches every subscriber as one text frame, opened and
/// checked; and bystanders in other rooms get nothing.
#[test]
fn websocket_subscribers_and_bystanders_run_clean() {
    let mut relay = RelayProcess::start(&["--web", "127.0.0.1:0"]);
    let line = relay.wait_for_log("web: the chat page on http://");
    let web = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("the web address")
        .to_owned();
    let addr = relay.addr.to_string();
    let key = relay.key.to_hex();
    let common = ["--addr", &addr, "--key-hex", &key];
    let ws = ["--web", &web];
    for report in clean_fanouts(&[&common[..], &ws[..]].concat()) {
        assert_eq!(report["protocol"], "eaxchat", "{report}");
    }
    let bystanders = [
        "fanout",
        "--clients",
        "4",
        "--messages",
        "500",
        "--bystanders",
        "30",
        "--bystander-rooms",
        "3",
    ];
    let (code, report) = relay_bench(&[&bystanders[..], &common[..]].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    assert_eq!(number(&report, "bystanders"), 30.0, "{report}");
    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
}
