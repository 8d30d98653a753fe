//! The replays, over real sockets: everything `chat` sent to a
//! session relay is recorded by a proxy on the wire, then replayed line by
//! line (the hello first, the frames once the relay answered it) into
//! another session of the same relay, into the relay after a restart, and
//! into a second relay serving the same members file with the same
//! identity. The relay answers a replayed hello (it cannot tell), but with
//! a fresh ephemeral key, so the session's keys are new and the recorded
//! frames never open: each replay is closed and nobody hears anything.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use eaxchat_proto::session::{Kind, decode_line};
use eaxchat_test_support::{ChatProcess, TestClient, WAIT, random_key};

use super::{Fixture, QUIET, SessionConn, SessionRelay};

/// A proxy for one connection to `upstream`, both ways, recording what the
/// client sent. Its threads end when either side closes, or after a
/// bounded idle time.
struct Recorder {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<u8>>>,
    thread: JoinHandle<()>,
}

impl Recorder {
    fn start(upstream: SocketAddr) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&sent);
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + WAIT;
            let client = loop {
                match listener.accept() {
                    Ok((client, _)) => break client,
                    Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("the proxy accepted nothing: {e}"),
                }
            };
            client.set_nonblocking(false).unwrap();
            let relay = TcpStream::connect(upstream).unwrap();
            let back = std::thread::spawn({
                let (from, to) = (relay.try_clone().unwrap(), client.try_clone().unwrap());
                move || pump(from, to, None)
            });
            pump(client, relay, Some(&record));
            let _ = back.join();
        });
        Recorder { addr, sent, thread }
    }

    /// What the client sent, once both sides are done.
    fn finish(self) -> Vec<u8> {
        self.thread.join().unwrap();
        self.sent.lock().unwrap().clone()
    }
}

/// Copies `from` to `to` until `from` ends, keeping a copy in `record`.
fn pump(mut from: TcpStream, mut to: TcpStream, record: Option<&Mutex<Vec<u8>>>) {
    from.set_read_timeout(Some(3 * WAIT)).unwrap();
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        if let Some(record) = record {
            record.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// `chat` as alice says one message to bob through a recording proxy;
/// returns everything alice's `chat` sent on the wire.
fn record_alice(fixture: &Fixture, relay: &SessionRelay, bob: &mut SessionConn) -> Vec<u8> {
    let recorder = Recorder::start(relay.addr());
    let addr = recorder.addr.to_string();
    let known = fixture.path("known_relays");
    let alice = fixture.identity_file("alice", 1);
    let mut chat = ChatProcess::start_args(&[
        "--connect",
        &addr,
        "--key-file",
        &alice,
        "--relay-key",
        &relay.key.to_string(),
        "--known-relays",
        known.to_str().unwrap(),
    ]);
    chat.type_text(b"pay bob 10 euros\n");
    assert_eq!(bob.recv_containing("pay bob"), "alice: pay bob 10 euros");
    chat.close_stdin();
    let status = chat.wait_exit();
    assert!(status.success(), "{status}: {}", chat.stderr());
    let recorded = recorder.finish();
    let lines: Vec<&[u8]> = recorded.split(|&b| b == b'\n').collect();
    assert_eq!(
        decode_line(lines[0]).unwrap().kind(),
        Kind::Hello,
        "the recording starts with alice's hello"
    );
    assert!(
        lines.len() >= 3,
        "a hello and frames: {} lines",
        lines.len()
    );
    recorded
}

/// Replays `recorded` into the relay at `addr` as an attacker would: the
/// hello, then (after the relay's answer) the frames. Asserts the relay
/// closes the connection.
fn replay(addr: SocketAddr, recorded: &[u8]) {
    let mut attacker = TestClient::connect(addr, &random_key());
    let end = recorded.iter().position(|&b| b == b'\n').unwrap() + 1;
    attacker.send_raw(&recorded[..end]);
    let answer = attacker.recv_line();
    assert_eq!(
        decode_line(&answer).unwrap().kind(),
        Kind::Welcome,
        "a replayed hello is answered, under a fresh ephemeral key"
    );
    attacker.send_raw(&recorded[end..]);
    assert!(
        attacker.closed_within(WAIT),
        "the relay closes a replayed frame's connection"
    );
}

/// Replayed into the same relay, in another session: refused.
#[test]
fn a_recorded_session_replayed_into_another_session_is_refused() {
    let (fixture, secrets) = Fixture::new(&["alice", "bob"]);
    let mut relay = fixture.start(&[]);
    let mut bob = relay.connect(&secrets[1]);
    let recorded = record_alice(&fixture, &relay, &mut bob);
    replay(relay.addr(), &recorded);
    relay
        .process
        .wait_for_log("closed: rejected session frame: tag mismatch");
    bob.expect_silence(QUIET);
    // The connection that was replayed never got in: bob still chats.
    let mut alice = relay.connect(&secrets[0]);
    alice.send(b"the real alice");
    assert_eq!(bob.recv_containing("real alice"), "alice: the real alice");
}

/// Replayed after the relay restarted (same identity, same members):
/// refused; the replay memory was never in the process.
#[test]
fn a_recorded_session_replayed_after_a_restart_is_refused() {
    let (fixture, secrets) = Fixture::new(&["alice", "bob"]);
    let relay = fixture.start(&[]);
    let first_key = relay.key;
    let mut bob = relay.connect(&secrets[1]);
    let recorded = record_alice(&fixture, &relay, &mut bob);
    drop(bob);
    let (status, _) = relay.process.terminate();
    assert!(status.success(), "{status}");

    let mut relay = fixture.start(&[]);
    assert_eq!(relay.key, first_key, "the same identity, read back");
    let mut bob = relay.connect(&secrets[1]);
    replay(relay.addr(), &recorded);
    relay
        .process
        .wait_for_log("closed: rejected session frame: tag mismatch");
    bob.expect_silence(QUIET);
}

/// Replayed into a second relay that serves the same members file with
/// the same identity: refused there too.
#[test]
fn a_recorded_session_replayed_into_a_second_relay_is_refused() {
    let (fixture, secrets) = Fixture::new(&["alice", "bob"]);
    let relay = fixture.start(&[]);
    let mut second = fixture.start(&[]);
    assert_eq!(second.key, relay.key);
    let mut bob = relay.connect(&secrets[1]);
    let mut bob_there = second.connect(&secrets[1]);
    let recorded = record_alice(&fixture, &relay, &mut bob);
    replay(second.addr(), &recorded);
    second
        .process
        .wait_for_log("closed: rejected session frame: tag mismatch");
    bob_there.expect_silence(QUIET);
    bob.expect_silence(QUIET);
}
