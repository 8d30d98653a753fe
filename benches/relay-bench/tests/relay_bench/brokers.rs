//! Brokers written here, thread per client, that get one delivery wrong:
//! relay-bench must catch it, name it, and fail.
//!
//! - [`FaultyBroker`]: a plain line broker like `ncat --broker` that loses,
//!   duplicates, corrupts or reorders one line.
//! - [`MembersBroker`]: a members relay of the protocol's shape that can
//!   stamp one delivery with another member's name.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{make_members, number, relay_bench, scratch};

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
