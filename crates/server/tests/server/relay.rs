//! The real `relay` binary over real sockets on 127.0.0.1: delivery, every
//! limit, every kind of bad input, keys, signals. Every wait is bounded.

use eaxchat_test_support as util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eaxchat_test_support::sys;
use util::{RelayProcess, TestClient, WAIT, random_key};

const SHORT: Duration = Duration::from_millis(300);

/// Parses `name=value` from the relay's final stats line.
fn stat(log: &str, name: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("stats: "))
        .unwrap_or_else(|| panic!("no stats line in:\n{log}"));
    line.split_whitespace()
        .find_map(|field| field.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// Waits until the relay has logged `count` connects, so a message sent now
/// reaches all of them.
fn wait_connected(relay: &mut RelayProcess, count: usize) {
    relay.wait_for_log_count(": connected from ", count);
}

/// Two clients: each gets the other's messages in order; nobody gets their own.
#[test]
fn two_clients_exchange_messages() {
    let mut relay = RelayProcess::start(&[]);
    let mut alice = relay.connect();
    let mut bob = relay.connect();
    wait_connected(&mut relay, 2);
    for i in 0..5 {
        alice.send(format!("from alice {i}").as_bytes());
    }
    bob.send(b"from bob");
    for i in 0..5 {
        assert_eq!(bob.recv(), format!("from alice {i}").as_bytes());
    }
    assert_eq!(alice.recv(), b"from bob");
    alice.expect_silence(SHORT);
    bob.expect_silence(SHORT);
    let (status, log) = relay.terminate();
    assert!(status.success());
    assert_eq!(stat(&log, "frames_in"), 6);
    assert_eq!(stat(&log, "frames_out"), 6);
}

/// Fifty clients each send twenty messages: every client receives all 980
/// of the others' exactly once, in each sender's order, and none of its own.
#[test]
fn fifty_clients_each_receive_every_other_message_once_in_order() {
    const CLIENTS: usize = 50;
    const EACH: usize = 20;
    let mut relay = RelayProcess::start(&[]);
    let mut clients: Vec<TestClient> = (0..CLIENTS).map(|_| relay.connect()).collect();
    wait_connected(&mut relay, CLIENTS);
    for seq in 0..EACH {
        for (sender, client) in clients.iter_mut().enumerate() {
            client.send(format!("{sender}:{seq}").as_bytes());
        }
    }
    for (me, client) in clients.iter_mut().enumerate() {
        let mut next = vec![0usize; CLIENTS];
        for _ in 0..(CLIENTS - 1) * EACH {
            let message = String::from_utf8(client.recv()).unwrap();
            let (sender, seq) = message.split_once(':').unwrap();
            let (sender, seq): (usize, usize) = (sender.parse().unwrap(), seq.parse().unwrap());
            assert_ne!(sender, me, "client {me} got its own message");
            assert_eq!(
                seq, next[sender],
                "client {me}: {sender}'s messages out of order"
            );
            next[sender] += 1;
        }
        client.expect_silence(Duration::from_millis(20));
    }
    let (status, log) = relay.terminate();
    assert!(status.success());
    assert_eq!(stat(&log, "frames_in"), (CLIENTS * EACH) as u64);
    assert_eq!(
        stat(&log, "frames_out"),
        (CLIENTS * (CLIENTS - 1) * EACH) as u64
    );
}

/// Each kind of bad input closes its sender with a logged, counted reason;
/// the other clients see nothing of it and keep chatting.
#[test]
fn bad_input_closes_only_the_sender() {
    let mut relay = RelayProcess::start(&["--max-frame", "1000"]);
    let mut alice = relay.connect();
    let mut bob = relay.connect();
    let mut wrong_key = TestClient::connect(relay.addr, &random_key());
    let mut forged_line = alice.seal(b"forged");
    forged_line[45] = if forged_line[45] == b'A' { b'B' } else { b'A' };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "bad base64",
            b"this is not base64\n".to_vec(),
            "rejected frame: bad base64",
        ),
        (
            "short",
            b"QUJDRA==\n".to_vec(),
            "rejected frame: frame too short",
        ),
        (
            "forged",
            forged_line.to_vec(),
            "rejected frame: tag mismatch",
        ),
        (
            "wrong key",
            wrong_key.seal(b"hi").to_vec(),
            "rejected frame: tag mismatch",
        ),
        ("too long", vec![b'A'; 1001], "line longer than --max-frame"),
    ];
    drop(wrong_key.stream.shutdown(std::net::Shutdown::Both));
    let before = relay.log().matches(": connected from ").count();
    let mut attackers: Vec<TestClient> = cases.iter().map(|_| relay.connect()).collect();
    wait_connected(&mut relay, before + cases.len());
    for (i, ((name, bytes, reason), attacker)) in cases.iter().zip(&mut attackers).enumerate() {
        attacker.send_raw(bytes);
        assert!(attacker.closed_within(WAIT), "{name}: sender not closed");
        // Cases that share a reason each add their own log line.
        let same_reason = cases[..=i].iter().filter(|case| case.2 == *reason).count();
        relay.wait_for_log_count(&format!("closed: {reason}"), same_reason);
        alice.send(format!("still here {i}").as_bytes());
        assert_eq!(bob.recv(), format!("still here {i}").as_bytes(), "{name}");
    }
    alice.expect_silence(SHORT);
    bob.expect_silence(SHORT);
    let (status, log) = relay.terminate();
    assert!(status.success());
    assert_eq!(stat(&log, "rejected_base64"), 1);
    assert_eq!(stat(&log, "rejected_short"), 1);
    assert_eq!(stat(&log, "rejected_tag"), 2);
    assert_eq!(stat(&log, "rejected_too_long"), 1);
    assert_eq!(stat(&log, "frames_in"), cases.len() as u64);
}

/// A line that never ends is cut off at --max-frame, not buffered forever.
#[test]
fn a_line_that_never_ends_is_cut_at_max_frame() {
    let mut relay = RelayProcess::start(&["--max-frame", "4096"]);
    let mut endless = relay.connect();
    let mut sent = 0;
    let chunk = [b'A'; 1024];
    // The relay closes after 4 KiB; writes may fail from then on.
    while sent < 64 * 1024 && endless.stream.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    assert!(endless.closed_within(WAIT));
    relay.wait_for_log("closed: line longer than --max-frame");
}

/// A client that vanishes mid-frame is cleaned up; nobody else notices.
#[test]
fn a_client_vanishing_mid_frame_is_cleaned_up() {
    let mut relay = RelayProcess::start(&[]);
    let mut alice = relay.connect();
    let mut bob = relay.connect();
    let mut ghost = relay.connect();
    wait_connected(&mut relay, 3);
    let line = ghost.seal(b"never finished");
    ghost.send_raw(&line[..line.len() / 2]);
    drop(ghost);
    relay.wait_for_log("closed: peer closed");
    alice.send(b"after the ghost");
    assert_eq!(bob.recv(), b"after the ghost");
    let (_, log) = relay.terminate();
    assert_eq!(stat(&log, "connections_total"), 3);
    assert_eq!(stat(&log, "frames_in"), 1);
}

/// Past --max-clients a connection is closed at once and counted; everyone
/// already connected carries on, and a slot freed is usable again.
#[test]
fn max_clients_refuses_extra_connections() {
    let mut relay = RelayProcess::start(&["--max-clients", "3"]);
    let mut clients: Vec<TestClient> = (0..3).map(|_| relay.connect()).collect();
    wait_connected(&mut relay, 3);
    let mut extra = relay.connect();
    assert!(extra.closed_within(WAIT), "extra client not closed");
    relay.wait_for_log("--max-clients (3) reached");
    clients[0].send(b"hello");
    assert_eq!(clients[1].recv(), b"hello");
    assert_eq!(clients[2].recv(), b"hello");
    drop(clients.pop());
    relay.wait_for_log("closed: peer closed");
    let mut replacement = relay.connect();
    wait_connected(&mut relay, 4);
    clients[0].send(b"welcome");
    assert_eq!(replacement.recv(), b"welcome");
    let (_, log) = relay.terminate();
    assert_eq!(stat(&log, "clients_refused"), 1);
}

/// Sets the kernel's receive buffer; a small one means a client that stops reading
/// backs up into the relay's queue quickly.
fn set_receive_buffer(stream: &TcpStream, size: usize) {
    socket2::SockRef::from(stream)
        .set_recv_buffer_size(size)
        .unwrap();
}

/// A consumer that stops reading is dropped once past --max-queue, while a
/// consumer that keeps up receives every message.
#[test]
fn slow_consumer_is_dropped_while_fast_one_gets_everything() {
    // Enough to fill the kernel's buffers toward the slow consumer (up to
    // tcp_wmem's 4 MiB) and then --max-queue.
    const MESSAGES: usize = 8000;
    let mut relay = RelayProcess::start(&["--max-queue", "1048576"]);
    let mut sender = relay.connect();
    let mut fast = relay.connect();
    let slow = relay.connect();
    set_receive_buffer(&slow.stream, 4096);
    wait_connected(&mut relay, 3);
    // The sender stays at most one batch ahead of the fast consumer, as a
    // real conversation would; the slow one never reads at all.
    const BATCH: usize = 100;
    let (progress, batches_read) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for i in 0..MESSAGES {
            let want = format!("{i:04}").repeat(256);
            if fast.try_recv(WAIT).as_deref() != Some(want.as_bytes()) {
                return false;
            }
            if (i + 1) % BATCH == 0 && progress.send(i).is_err() {
                return false;
            }
        }
        true
    });
    for i in 0..MESSAGES {
        sender.send(format!("{i:04}").repeat(256).as_bytes());
        if (i + 1) % BATCH == 0 && batches_read.recv_timeout(WAIT).is_err() {
            break;
        }
    }
    let all = reader.join().unwrap();
    assert!(all, "fast consumer missed or reordered:\n{}", relay.log());
    relay.wait_for_log("closed: slow consumer: over --max-queue");
    let (status, log) = relay.terminate();
    assert!(status.success());
    assert_eq!(stat(&log, "slow_consumers"), 1);
    drop(slow);
}

/// The original notebook client sends each frame with no newline; while a
/// connection has never sent a newline such a frame is relayed, and once it
/// has, a frame waits for its newline.
#[test]
fn newline_less_frames_from_the_original_client() {
    let mut relay = RelayProcess::start(&[]);
    let mut legacy = relay.connect();
    let mut modern = relay.connect();
    let mut reader = relay.connect();
    wait_connected(&mut relay, 3);
    for text in ["first", "second"] {
        let line = legacy.seal(text.as_bytes());
        legacy.send_raw(&line[..line.len() - 1]);
        assert_eq!(reader.recv(), text.as_bytes());
    }
    modern.send(b"with a newline");
    assert_eq!(reader.recv(), b"with a newline");
    let line = modern.seal(b"held");
    modern.send_raw(&line[..line.len() - 1]);
    reader.expect_silence(SHORT);
    modern.send_raw(b"\n");
    assert_eq!(reader.recv(), b"held");
}

/// One client flooding the relay does not starve another.
#[test]
fn a_flooding_client_does_not_starve_others() {
    let mut relay = RelayProcess::start(&["--max-queue", "100000000"]);
    let mut flooder = relay.connect();
    let mut quiet = relay.connect();
    let mut listener = relay.connect();
    wait_connected(&mut relay, 3);
    let burst: Vec<u8> = (0..2000).flat_map(|_| flooder.seal(&[0u8; 1000])).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let flood = std::thread::spawn(move || {
        let mut rounds = 0;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) && rounds < 50 {
            if flooder.stream.write_all(&burst).is_err() {
                break;
            }
            rounds += 1;
        }
    });
    quiet.send(b"can you hear me");
    // The listener drains the flood until the quiet message shows up.
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "quiet client starved");
        if listener.recv() == b"can you hear me" {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(listener);
    flood.join().unwrap();
}

/// 10,000 clients connected at once within the defaults; a message reaches
/// every one of them.
#[test]
fn ten_thousand_concurrent_clients() {
    const CLIENTS: usize = 10_000;
    // The test and the relay (which inherits the limit) each hold one
    // descriptor per client, in their own tables.
    raise_fd_limit(CLIENTS as u64 + 1000);
    let mut relay = RelayProcess::start(&[]);
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(relay.connect());
    }
    wait_connected(&mut relay, CLIENTS);
    let mut sender = clients.pop().unwrap();
    sender.send(b"hello, everyone");
    for client in &mut clients {
        assert_eq!(client.recv(), b"hello, everyone");
    }
    drop(clients);
    let (status, log) = relay.terminate();
    assert!(status.success());
    assert_eq!(stat(&log, "clients_refused"), 0);
    assert_eq!(stat(&log, "frames_out"), CLIENTS as u64 - 1);
}

fn raise_fd_limit(wanted: u64) {
    let limit = sys::raise_open_file_limit_to(wanted).unwrap();
    assert!(limit >= wanted, "need {wanted} file descriptors");
}

/// Out of file descriptors, the relay neither dies nor spins: it logs,
/// backs off, and serves again once descriptors free up.
#[test]
fn running_out_of_descriptors_does_not_spin_or_kill_the_relay() {
    let key = random_key();
    let mut command = Command::new(util::relay_binary());
    command.args(["--listen", "127.0.0.1:0", "--key-hex", &key.to_hex()]);
    sys::limit_open_files_of(&mut command, 32);
    let mut relay = RelayProcess::spawn(command, key);
    let mut clients: Vec<TestClient> = (0..40).map(|_| relay.connect()).collect();
    relay.wait_for_log("accept failed");
    let cpu_before = cpu_ticks(relay.pid());
    std::thread::sleep(Duration::from_secs(1));
    let cpu_used = cpu_ticks(relay.pid()) - cpu_before;
    // A spinning loop burns ~100 ticks a second; backing off burns ~none.
    assert!(
        cpu_used < 50,
        "relay spun on EMFILE: {cpu_used} ticks in 1 s"
    );
    clients.truncate(5);
    // The fresh client waits in the backlog behind the dropped ones; ping
    // until it is served.
    let mut fresh = relay.connect();
    let deadline = Instant::now() + WAIT;
    let mut pings = 0;
    loop {
        assert!(Instant::now() < deadline, "fresh client never served");
        clients[0].send(format!("ping {pings}").as_bytes());
        pings += 1;
        if fresh.try_recv_line(Duration::from_millis(200)).is_some() {
            break;
        }
    }
    assert!(relay.is_running());
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    sys::process_cpu_ticks(pid).unwrap()
}

/// SIGTERM: stop accepting, write what is queued, log stats, exit 0.
#[test]
fn sigterm_flushes_queued_frames_and_exits_cleanly() {
    const MESSAGES: usize = 2000;
    let mut relay = RelayProcess::start(&["--shutdown-grace-ms", "5000"]);
    let mut sender = relay.connect();
    let mut sleeper = relay.connect();
    set_receive_buffer(&sleeper.stream, 64 * 1024);
    let text = [b'z'; 1000];
    let mut witness = relay.connect();
    wait_connected(&mut relay, 3);
    let witnessed = std::thread::spawn(move || (0..=MESSAGES).map(|_| witness.recv()).last());
    for _ in 0..MESSAGES {
        sender.send(&text);
    }
    sender.send(b"last");
    // Once the witness has "last", the relay has read everything and the
    // sleeper's share waits in its queue (and its small socket buffer).
    assert_eq!(witnessed.join().unwrap().unwrap(), b"last");
    let addr = relay.addr;
    let terminate = std::thread::spawn(move || relay.terminate());
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..MESSAGES {
        assert_eq!(sleeper.recv(), text);
    }
    assert_eq!(sleeper.recv(), b"last");
    assert!(sleeper.closed_within(WAIT));
    let (status, log) = terminate.join().unwrap();
    assert!(status.success(), "{status}");
    assert!(log.contains("shutting down"));
    assert_eq!(stat(&log, "frames_out"), 2 * (MESSAGES as u64 + 1));
    assert!(TcpStream::connect(addr).is_err(), "still accepting");
}

/// The relay listens on IPv6 too.
#[test]
fn listens_on_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let key = random_key();
    let mut command = Command::new(util::relay_binary());
    command.args(["--listen", "[::1]:0", "--key-hex", &key.to_hex()]);
    let mut relay = RelayProcess::spawn(command, key);
    assert!(relay.addr.is_ipv6());
    let mut a = relay.connect();
    let mut b = relay.connect();
    wait_connected(&mut relay, 2);
    a.send(b"over v6");
    assert_eq!(b.recv(), b"over v6");
}

fn relay_command(dir: &std::path::Path) -> Command {
    let mut command = Command::new(util::relay_binary());
    command
        .current_dir(dir)
        .env_remove("EAXCHAT_KEY")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Without a key file the relay makes one (mode 0600, 128-bit) and says
/// where; with one it uses it; a malformed one is exit status 2.
#[test]
fn key_file_is_generated_used_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = relay_command(dir.path());
    command.args(["--listen", "127.0.0.1:0"]);
    let mut relay = RelayProcess::spawn(command, random_key());
    relay.wait_for_log("generated a new AES-128 key in relay.key");
    let path = dir.path().join("relay.key");
    let text = std::fs::read_to_string(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = eaxchat_proto::key::Key::from_hex(&text).unwrap();
    assert!(!relay.log().contains(text.trim()), "key leaked to the log");
    // Clients with the file's key can talk through it.
    let mut a = TestClient::connect(relay.addr, &key);
    let mut b = TestClient::connect(relay.addr, &key);
    wait_connected(&mut relay, 2);
    a.send(b"keyed");
    assert_eq!(b.recv(), b"keyed");
    drop(relay);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut command = relay_command(dir.path());
    command.args(["--listen", "127.0.0.1:0"]);
    let mut relay = RelayProcess::spawn(command, key);
    relay.wait_for_log("readable by group or others");
    drop(relay);

    std::fs::write(&path, "0123 not hex\n").unwrap();
    let output = relay_command(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("malformed key in relay.key"), "{stderr}");

    let output = relay_command(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .env("EAXCHAT_KEY", "abc")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("EAXCHAT_KEY"));
}

/// --help documents every flag; --version prints the version.
#[test]
fn help_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let help = relay_command(dir.path()).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--listen",
        "--key-file",
        "--key-hex",
        "--max-frame",
        "--max-clients",
        "--max-queue",
        "--stats-interval",
        "--shutdown-grace-ms",
        "--version",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
    let version = relay_command(dir.path()).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    assert!(!dir.path().join("relay.key").exists());
}

/// The listener socket is only the relay's: a raw peer speaking nonsense
/// gets closed without any reply.
#[test]
fn garbage_gets_no_reply() {
    let mut relay = RelayProcess::start(&[]);
    let mut raw = TcpStream::connect(relay.addr).unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = raw.read_to_end(&mut reply);
    assert!(reply.is_empty());
    relay.wait_for_log("bad base64");
}

/// A frame captured off the wire and sent again on another connection is
/// refused: that connection is closed with a logged reason, the frame is
/// not delivered a second time, and the refusal is counted. A frame the
/// relay sent, reflected back to it, is refused the same way.
#[test]
fn a_replayed_frame_closes_its_connection() {
    let mut relay = RelayProcess::start(&[]);
    let mut alice = relay.connect();
    let mut bob = relay.connect();
    wait_connected(&mut relay, 2);
    let captured = alice.seal(b"open the door");
    alice.send_raw(&captured);
    assert_eq!(bob.recv(), b"open the door");

    let mut mallory = relay.connect();
    wait_connected(&mut relay, 3);
    mallory.send_raw(&captured);
    assert!(
        mallory.closed_within(WAIT),
        "the replaying sender stays open"
    );
    relay.wait_for_log("closed: rejected frame: replayed nonce");
    bob.expect_silence(SHORT);

    // Bob sends back what the relay sent him.
    alice.send(b"reflect me");
    let mut line = bob.recv_line();
    line.push(b'\n');
    bob.send_raw(&line);
    assert!(bob.closed_within(WAIT), "the reflecting client stays open");
    relay.wait_for_log_count("closed: rejected frame: replayed nonce", 2);

    alice.send(b"still here");
    alice.expect_silence(SHORT);
    let (status, log) = relay.terminate();
    assert!(status.success());
    assert_eq!(stat(&log, "rejected_replay"), 2);
    assert_eq!(stat(&log, "rejected_tag"), 0);
    assert_eq!(stat(&log, "frames_in"), 3);
}
