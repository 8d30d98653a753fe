//! Peers without the key, over real sockets: what they can make the relay
//! hold (`--pre-auth-budget`), for how long (`--first-frame-timeout`), and
//! how many connections one address may open (`--max-per-address`).

use eaxchat_test_support as util;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use eaxchat_test_support::sys;
use util::RelayProcess;

const WAIT: Duration = Duration::from_secs(10);

/// The relay's resident memory, in bytes.
fn rss(relay: &RelayProcess) -> u64 {
    sys::process_status_kib(relay.pid(), "VmRSS").unwrap() * 1024
}

/// The flood from the issue, scaled to CI: 400 keyless connections each
/// send 60,000 base64 letters and no newline. The relay's RSS grows by at
/// most the budget plus a stated constant, the flooders are closed as over
/// budget, and a chatting pair loses nothing meanwhile.
#[test]
fn a_keyless_flood_is_held_within_the_budget_while_a_pair_chats() {
    const BUDGET: u64 = 2 * 1024 * 1024;
    /// Room for what the relay holds besides the budget: one read buffer,
    /// the allocator's slack around freed line buffers, the connections'
    /// own state, and the pair's queues.
    const SLACK: u64 = 4 * 1024 * 1024;
    const FLOODERS: usize = 400;
    let mut relay = RelayProcess::start(&["--pre-auth-budget", &BUDGET.to_string()]);
    let mut alice = relay.connect();
    let mut bob = relay.connect();
    bob.send(b"bob is here");
    assert_eq!(alice.recv(), b"bob is here");
    let before = rss(&relay);

    let letters = vec![b'Q'; 60_000];
    let mut flooders = Vec::new();
    let mut sent = Vec::new();
    for i in 0..FLOODERS {
        let mut flooder = TcpStream::connect(relay.addr).unwrap();
        flooder.set_write_timeout(Some(WAIT)).unwrap();
        // A closed flooder's write fails: that is the relay's answer.
        let _ = flooder.write_all(&letters);
        flooders.push(flooder);
        if i % 20 == 0 {
            let text = format!("message {i}");
            alice.send(text.as_bytes());
            sent.push(text);
        }
    }
    for text in &sent {
        assert_eq!(bob.recv(), text.as_bytes());
    }
    // Each flooder holds 60,000 bytes: the budget keeps about 34 of them.
    // Wait (bounded) until the relay has read the rest and cut them.
    let log = relay.wait_for_log_count(
        "unauthenticated, holding the most past --pre-auth-budget",
        FLOODERS - 40,
    );
    let after = rss(&relay);
    let grew = after.saturating_sub(before);
    eprintln!("relay RSS {before} -> {after} bytes under a {FLOODERS}-connection flood");
    assert!(
        grew <= BUDGET + SLACK,
        "RSS grew {grew} bytes (from {before} to {after}), bound {}",
        BUDGET + SLACK
    );
    assert!(log.contains("closed: unauthenticated"), "{log}");
    drop(flooders);
    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
    let counted = log
        .lines()
        .rev()
        .find_map(|line| line.split("pre_auth_over_budget=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap();
    assert!(counted >= FLOODERS - 40, "closed {counted} of {FLOODERS}");
}

/// A connection that sends half a frame and stops is closed at the
/// deadline; one that sends nothing, and one that sent a whole frame,
/// stay open and keep chatting.
#[test]
fn the_deadline_closes_a_slow_sender_and_leaves_a_silent_listener() {
    let mut relay = RelayProcess::start(&["--first-frame-timeout", "1"]);
    let mut listener = relay.connect();
    let mut talker = relay.connect();
    talker.send(b"first");
    assert_eq!(listener.recv(), b"first");
    let mut slow = relay.connect();
    let half = slow.seal(b"never finished");
    slow.send_raw(&half[..20]);
    let started = Instant::now();
    assert!(slow.closed_within(WAIT), "the slow sender is closed");
    assert!(started.elapsed() >= Duration::from_millis(900));
    relay.wait_for_log("no authenticated frame within --first-frame-timeout");
    std::thread::sleep(Duration::from_millis(1500));
    talker.send(b"still here");
    assert_eq!(listener.recv(), b"still here", "the silent listener stays");
    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("first_frame_timeouts=1"), "{log}");
}

/// Past `--max-per-address` a connection is closed at once and counted;
/// once one closes, the address may connect again.
#[test]
fn the_per_address_limit_refuses_and_then_accepts_again() {
    let mut relay = RelayProcess::start(&["--max-per-address", "2"]);
    let mut first = relay.connect();
    let mut second = relay.connect();
    let mut third = relay.connect();
    assert!(third.closed_within(WAIT), "the third is refused");
    relay.wait_for_log("--max-per-address (2) reached");
    drop(first);
    // The relay notices the hang-up within a loop turn; retry, bounded.
    let deadline = Instant::now() + WAIT;
    let mut again = loop {
        let mut candidate = relay.connect();
        if !candidate.closed_within(Duration::from_millis(300)) {
            break candidate;
        }
        assert!(Instant::now() < deadline, "never accepted again");
    };
    again.send(b"back again");
    assert_eq!(second.recv(), b"back again");
    first = relay.connect();
    assert!(first.closed_within(WAIT), "full again");
    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains("refused_per_address=0"), "{log}");
}

/// Finding 1 of issue #29: five connections that never send a byte, to a
/// members relay and to a session relay with the default flags but a
/// short deadline, are all closed at the deadline (not before), and
/// counted.
#[test]
fn silent_connections_to_members_and_session_relays_are_closed_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let static_file = dir.path().join("static-members.txt");
    std::fs::write(
        &static_file,
        format!("alice {}\n", util::random_key().to_hex()),
    )
    .unwrap();
    let (fixture, _) = crate::sessions::Fixture::new(&["alice"]);
    let members = RelayProcess::start_members(&static_file, &["--first-frame-timeout", "1"]);
    let sessions = fixture.start(&["--first-frame-timeout", "1"]).process;
    for (mode, mut relay) in [("members", members), ("sessions", sessions)] {
        let started = Instant::now();
        let mut silent: Vec<_> = (0..5).map(|_| relay.connect()).collect();
        for (i, conn) in silent.iter_mut().enumerate() {
            assert!(conn.closed_within(WAIT), "{mode}: silent {i} still open");
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900),
            "{mode}: closed after {took:?}"
        );
        relay.wait_for_log_count("no authenticated frame within --first-frame-timeout", 5);
        let (status, log) = relay.terminate();
        assert!(status.success(), "{mode}: {log}");
        assert!(log.contains("first_frame_timeouts=5"), "{mode}: {log}");
    }
}

/// Bytes `stream` is sent within `wait`, until the relay closes it.
fn bytes_within(stream: &mut TcpStream, wait: Duration) -> usize {
    use std::io::Read;
    let deadline = Instant::now() + wait;
    let mut got = 0;
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

/// Finding 2 of issue #29: with `--require-proof` a connection that has
/// not shown it holds the key gets 0 bytes of the next frame, while one
/// whose frame opened gets it; without the flag the notebook-style
/// receiver (which never sends) gets it, and what it cost is counted.
#[test]
fn require_proof_sends_a_keyless_listener_nothing_and_the_notebook_receiver_still_works() {
    let relay = RelayProcess::start(&["--require-proof"]);
    let mut keyless = TcpStream::connect(relay.addr).unwrap();
    let mut proven = relay.connect();
    proven.send(b"");
    let mut talker = relay.connect();
    talker.send(b"");
    // The proven one takes the empty frame: proof it is in the room.
    assert_eq!(proven.recv(), b"");
    talker.send(b"the next frame");
    assert_eq!(proven.recv(), b"the next frame");
    assert_eq!(bytes_within(&mut keyless, Duration::from_millis(500)), 0);
    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("keyless_frames_out=0 "), "{log}");

    let relay = RelayProcess::start(&["--web", "127.0.0.1:0"]);
    let mut notebook = relay.connect();
    let mut talker = relay.connect();
    let line = talker.seal(b"the next frame");
    talker.send_raw(&line);
    assert_eq!(notebook.recv(), b"the next frame");
    let body = metrics(web_address(&relay));
    assert!(
        body.contains("\neaxchat_keyless_frames_out_total 1\n"),
        "{body}"
    );
    let bytes = format!("\neaxchat_keyless_bytes_out_total {}\n", line.len());
    assert!(body.contains(&bytes), "{body}");
    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("keyless_frames_out=1 "), "{log}");
}

/// `GET /metrics` on the relay's web listener (a loopback peer may): the
/// body.
fn metrics(web: std::net::SocketAddr) -> String {
    use std::io::Read;
    let mut stream = TcpStream::connect_timeout(&web, WAIT).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The web listener's address, from the line the relay logs at start.
fn web_address(relay: &RelayProcess) -> std::net::SocketAddr {
    let log = relay.log();
    let line = log
        .lines()
        .find(|line| line.contains("the chat page on http://"))
        .unwrap_or_else(|| panic!("no web line in\n{log}"));
    let rest = line.split("http://").nth(1).unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}
