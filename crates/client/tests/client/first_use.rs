//! Trust on first use, like ssh's `accept-new`, against the stand-in relay
//! ([`SessionRelay`]): with no pin and no `--relay-key`, `chat` asks for
//! the relay's key (kind 0x04), says whose key it trusts, makes its hello
//! for it on the same connection and pins it only after the welcome; later
//! connections and runs use the pin and ask nothing; a changed key is
//! refused naming both fingerprints; `--no-trust-new` refuses an unknown
//! relay; an answer that is not a key is a clear error.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use eaxchat_proto::session::{
    Kind, Responder, SessionError, StaticSecret, encode_line, refusal_line,
};

use super::session_stand_in::{SessionRelay, identity_file};
use super::sessions::{Alice, known_relays, session_args, start};

/// What chat prints when it trusts `relay`'s key on first use.
fn trusting(relay: &SessionRelay) -> String {
    let key = relay.public();
    format!(
        "the relay at {} has key {} ({key}); trusting it on first use",
        relay.addr(),
        key.fingerprint()
    )
}

/// A first run asks for the key, prints its fingerprint, and pins it once
/// the handshake made for it has verified; a reconnect in that run and a
/// later run use the pin without a key request.
#[test]
fn first_use_pins_the_key_the_relay_sends_and_later_connections_use_it() {
    let alice = Alice::new();
    let relay = &alice.relay;
    let file = known_relays(alice.dir.path());
    let mut chat = alice.chat(&["--reconnect"]);
    let mut conn = relay.accept();
    assert!(conn.asked_key, "no pin and no --relay-key: chat asks");
    assert_eq!(conn.recv(), b"/hello eaxchat/1");
    chat.wait_for_stderr(&trusting(relay));
    let fingerprint = relay.public().fingerprint().to_string();
    chat.wait_for_stderr(&format!("pinned the relay key {fingerprint}"));
    let pins = format!("{} {}\n", relay.addr(), relay.public());
    assert_eq!(fs::read_to_string(&file).expect("pinned"), pins);

    drop(conn);
    chat.wait_for_stderr("relay went away");
    let mut again = relay.accept();
    assert!(!again.asked_key, "a reconnect uses the key of this run");
    assert_eq!(again.recv(), b"/hello eaxchat/1");
    chat.close_stdin();
    let _ = chat.wait_exit();
    drop(again);
    let stderr = chat.stderr();
    assert_eq!(stderr.matches("trusting it on first use").count(), 1);
    assert_eq!(stderr.matches("pinned the relay key").count(), 1);

    let mut later = alice.chat(&[]);
    let mut conn = relay.accept();
    assert!(!conn.asked_key, "a pinned relay is never asked for its key");
    assert_eq!(conn.recv(), b"/hello eaxchat/1");
    later.type_text(b"pinned\n");
    assert_eq!(conn.recv(), b"pinned");
    let stderr = later.stderr();
    assert!(!stderr.contains("trusting it on first use"), "{stderr}");
    assert!(!stderr.contains("pinned the relay key"), "{stderr}");
    assert_eq!(fs::read_to_string(&file).expect("still pinned"), pins);
}

/// The key is pinned only once a welcome proved it: a relay that sends a
/// key and then refuses the hello made for it leaves no pin.
#[test]
fn a_key_whose_handshake_fails_is_not_pinned() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (identity, public) = identity_file(dir.path(), "stranger");
    let relay = SessionRelay::start(&[]);
    let mut chat = start(&session_args(&relay, &identity, dir.path(), &[]));
    let hello = relay.accept_hello();
    assert!(hello.asked_key);
    chat.wait_for_stderr(&trusting(&relay));
    assert!(
        !Path::new(&known_relays(dir.path())).exists(),
        "not pinned before the welcome"
    );
    let responder = Responder::read_hello(&relay.secret, &hello.line).expect("line 1");
    assert_eq!(responder.initiator_key(), &public);
    hello.answer_and_close(&responder.refuse("unknown key"));
    assert_eq!(chat.wait_exit().code(), Some(1), "{}", chat.stderr());
    let stderr = chat.stderr();
    assert!(
        stderr.contains("refused the session: \"unknown key\""),
        "{stderr}"
    );
    assert!(!Path::new(&known_relays(dir.path())).exists());
}

/// A relay whose key changed after it was trusted on first use is refused:
/// chat sends no key request (it has a pin), names both fingerprints,
/// exits 1 and keeps the pin.
#[test]
fn a_changed_key_after_first_use_is_refused_and_the_pin_kept() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (identity, public) = identity_file(dir.path(), "alice");
    let mut relay = SessionRelay::start(&[(public, "alice")]);
    let file = known_relays(dir.path());
    let args = session_args(&relay, &identity, dir.path(), &[]);
    let mut first = start(&args);
    let mut conn = relay.accept();
    assert!(conn.asked_key);
    assert_eq!(conn.recv(), b"/hello eaxchat/1");
    first.wait_for_stderr("pinned the relay key");
    first.close_stdin();
    drop(conn);
    let _ = first.wait_exit();
    let pinned = relay.public();
    let pins = fs::read_to_string(&file).expect("pinned");

    relay.secret = StaticSecret::generate().expect("a new relay identity");
    let mut changed = start(&args);
    let hello = relay.accept_hello();
    assert!(!hello.asked_key, "a pinned relay is never asked");
    let error = Responder::read_hello(&relay.secret, &hello.line).unwrap_err();
    assert_eq!(error, SessionError::HelloDidNotDecrypt);
    hello.answer_and_close(&Responder::refusal_for(&error, &relay.public()));
    assert_eq!(changed.wait_exit().code(), Some(1), "{}", changed.stderr());
    let stderr = changed.stderr();
    for want in [
        pinned.fingerprint().to_string(),
        relay.public().fingerprint().to_string(),
        file.clone(),
    ] {
        assert!(stderr.contains(&want), "{want}: {stderr}");
    }
    assert!(!stderr.contains("trusting it on first use"), "{stderr}");
    assert_eq!(fs::read_to_string(&file).expect("read"), pins, "kept");
}

/// `--no-trust-new` refuses a relay with no pin before connecting, and
/// says how to give its key; with `--relay-key` it goes on as usual.
#[test]
fn no_trust_new_refuses_an_unknown_relay() {
    let alice = Alice::new();
    let relay = &alice.relay;
    let mut chat = alice.chat(&["--no-trust-new"]);
    assert_eq!(chat.wait_exit().code(), Some(2), "{}", chat.stderr());
    let stderr = chat.stderr();
    assert!(
        stderr.contains("--no-trust-new") && stderr.contains("--relay-key"),
        "{stderr}"
    );
    assert!(!relay.was_dialed(), "refused before connecting");
    assert!(!Path::new(&known_relays(alice.dir.path())).exists());

    let relay_key = relay.public().to_string();
    let mut chat = alice.chat(&["--no-trust-new", "--relay-key", &relay_key]);
    let mut conn = relay.accept();
    assert!(!conn.asked_key, "the key was given");
    assert_eq!(conn.recv(), b"/hello eaxchat/1");
    chat.wait_for_stderr("pinned the relay key");
}

/// A relay that answers the key request with anything but its key (text
/// that is no handshake line, a key of the wrong length, a refusal,
/// another kind of line, a close)
/// ends chat with exit code 1 and an error that says so and how to give
/// the key; nothing is pinned and no hello is sent.
#[test]
fn an_answer_to_the_key_request_that_is_not_a_key_is_a_clear_error() {
    let welcome = encode_line(Kind::Welcome, &[0; 48]).expect("a line");
    let cases: [(&[u8], &str); 5] = [
        (b"HTTP/1.1 400 Bad Request\r\n", "something else"),
        (b"BQEC\n", "must be 32 bytes, not 2"),
        (
            &refusal_line("no key requests here"),
            "refused to send its key (trust on first use): \"no key requests here\"",
        ),
        (&welcome, "expected the relay's key (kind 0x05)"),
        (b"", "closed the connection when asked for its key"),
    ];
    for (answer, want) in cases {
        let alice = Alice::new();
        let relay = &alice.relay;
        let mut chat = alice.chat(&[]);
        let mut first = relay.accept_first_line();
        assert_eq!(first.line, b"BA==", "the key request comes first");
        first.lines.stream.write_all(answer).expect("answer");
        // The relay closes after a refusal; a close is one of the answers.
        let _ = first.lines.stream.shutdown(std::net::Shutdown::Write);
        assert_eq!(chat.wait_exit().code(), Some(1), "{}", chat.stderr());
        let stderr = chat.stderr();
        assert!(stderr.contains(want), "{want}: {stderr}");
        assert!(stderr.contains(&relay.addr().to_string()), "{stderr}");
        assert!(stderr.contains("--relay-key"), "{stderr}");
        assert!(!stderr.contains("trusting it on first use"), "{stderr}");
        assert!(!Path::new(&known_relays(alice.dir.path())).exists());
        let hello = first.lines.try_line(std::time::Duration::from_millis(200));
        assert_eq!(hello, None, "no hello after a bad answer");
    }
}
