//! `chat` and the session client against the real session relay: members
//! chat under their stamped names, trust on first use's key request, and
//! the refusals a user sees (an unknown key, another relay's key pinned).

use std::fs;

use eaxchat_proto::session::identity_file::generate_identity;
use eaxchat_proto::session::{Initiator, PublicKey, key_request_line, read_relay_key};
use eaxchat_test_support::{ChatProcess, TestClient, random_key};

use super::{Fixture, QUIET, SessionConn};

/// `chat` with an identity and `--relay-key` chats with another session
/// member both ways, under the names the relay stamps, and pins the key
/// once its handshake proved it.
#[test]
fn chat_with_an_identity_chats_with_another_session_member() {
    let (fixture, secrets) = Fixture::new(&["alice", "bob"]);
    let relay = fixture.start(&[]);
    let mut bob = relay.connect(&secrets[1]);
    assert_eq!(bob.name, "bob");
    let addr = relay.addr().to_string();
    let key = relay.key.to_string();
    let known = fixture.path("known_relays");
    let alice = fixture.identity_file("alice", 1);
    let mut chat = ChatProcess::start_args(&[
        "--connect",
        &addr,
        "--key-file",
        &alice,
        "--relay-key",
        &key,
        "--known-relays",
        known.to_str().unwrap(),
    ]);
    chat.wait_for_stderr(&format!(
        "session with {} as alice",
        relay.key.fingerprint()
    ));
    chat.type_text(b"hi bob, alice here\n");
    assert_eq!(bob.recv_containing("hi bob"), "alice: hi bob, alice here");
    bob.send(b"hello alice");
    chat.wait_for_stdout("bob: hello alice");
    let pins = fs::read_to_string(&known).unwrap();
    assert_eq!(pins, format!("{addr} {key}\n"));
    chat.close_stdin();
    let status = chat.wait_exit();
    assert!(status.success(), "{status}: {}", chat.stderr());
    let log = relay.process.log();
    assert!(
        log.contains(&format!(
            "session as alice ({})",
            secrets[0].public_key().fingerprint()
        )),
        "{log}"
    );
}

/// Trust on first use: a client with no pin asks for the relay's key (kind
/// 0x04) and gets it (kind 0x05) as a plain line, then shakes hands for
/// it on the same connection and chats.
#[test]
fn a_key_request_gets_the_relays_key_and_the_hello_follows() {
    let (fixture, secrets) = Fixture::new(&["alice", "bob"]);
    let relay = fixture.start(&[]);
    let mut bob = relay.connect(&secrets[1]);
    let mut raw = TestClient::connect(relay.addr(), &random_key());
    raw.send_raw(&key_request_line());
    let key = read_relay_key(&raw.recv_line()).unwrap();
    assert_eq!(key, relay.key, "the key it logged");
    let (initiator, hello) = Initiator::start(&secrets[0], &key, b"").unwrap();
    raw.send_raw(&hello);
    let established = initiator.finish(&raw.recv_line()).unwrap();
    let mut alice = SessionConn {
        raw,
        session: established.session,
        name: established.name,
    };
    assert_eq!(alice.name, "alice");
    alice.send(b"first use");
    assert_eq!(bob.recv_containing("first use"), "alice: first use");
    bob.expect_silence(QUIET);
}

/// A key in no member's line is refused: `chat` prints the refusal, which
/// names its key's fingerprint, and exits 1; nothing is pinned.
#[test]
fn an_unknown_key_is_refused_naming_its_fingerprint() {
    let (fixture, _) = Fixture::new(&["alice"]);
    let mut relay = fixture.start(&[]);
    let stranger_file = fixture.path("stranger.identity");
    let stranger = generate_identity(&stranger_file).unwrap();
    let fingerprint = stranger.public_key().fingerprint();
    let addr = relay.addr().to_string();
    let key = relay.key.to_string();
    let known = fixture.path("known_relays");
    let mut chat = ChatProcess::start_args(&[
        "--connect",
        &addr,
        "--key-file",
        stranger_file.to_str().unwrap(),
        "--relay-key",
        &key,
        "--known-relays",
        known.to_str().unwrap(),
    ]);
    let status = chat.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", chat.stderr());
    let stderr = chat.stderr();
    assert!(stderr.contains("refused the session"), "{stderr}");
    assert!(
        stderr.contains(&format!("unknown key {fingerprint}")),
        "{stderr}"
    );
    assert!(!known.exists(), "a refused relay is not pinned");
    relay
        .process
        .wait_for_log(&format!("handshake refused: unknown key {fingerprint}"));
}

/// A client that pinned another relay key cannot make a hello this relay
/// reads: the refusal names the relay's fingerprint, and `chat` names
/// both, exits 1 and pins nothing.
#[test]
fn a_client_pinning_another_relay_key_is_told_both_fingerprints() {
    let (fixture, _) = Fixture::new(&["alice"]);
    let relay = fixture.start(&[]);
    let other = PublicKey::from_bytes([9; 32]);
    let addr = relay.addr().to_string();
    let known = fixture.path("known_relays");
    let alice = fixture.identity_file("alice", 1);
    let mut chat = ChatProcess::start_args(&[
        "--connect",
        &addr,
        "--key-file",
        &alice,
        "--relay-key",
        &other.to_string(),
        "--known-relays",
        known.to_str().unwrap(),
    ]);
    let status = chat.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", chat.stderr());
    let stderr = chat.stderr();
    assert!(
        stderr.contains(&other.fingerprint().to_string()),
        "{stderr}"
    );
    assert!(
        stderr.contains(&relay.key.fingerprint().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("--relay-key"), "what to check: {stderr}");
    assert!(!known.exists());
}
