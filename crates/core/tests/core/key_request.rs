//! Trust on first use in memory: a session relay answers a connection's
//! one key request (kind 0x04) with its public key (kind 0x05) as a plain
//! line, and the connection goes on to its hello. Until then it is still
//! unproven: the deadline from admission and the pre-auth budget apply. A
//! second request, one with a body, and one after the hello are refused.

use std::time::Duration;

use eaxchat_core::relay::{ChatConfig, CloseReason, FrameRefusal, HandshakeRefusal, Limits, Relay};
use eaxchat_proto::session::{
    Initiator, RELAY_KEY_MARK, key_request_line, read_relay_key, relay_key_line,
};

use crate::util::{
    Pipe, SessionClient, closing, identity, refusal, relay_identity, sessions_relay, written,
};

const ALICE: u8 = 1;
const BOB: u8 = 2;

fn relay() -> Relay<Pipe> {
    sessions_relay(
        &[("alice", ALICE), ("bob", BOB)],
        Limits::default(),
        ChatConfig::quiet(),
    )
}

/// A key request is answered with the relay's key, and a hello made for
/// that key on the same connection is welcomed: the client then chats.
#[test]
fn a_key_request_is_answered_and_the_hello_follows_on_the_same_connection() {
    let mut relay = relay();
    let mut bob = SessionClient::connect(&mut relay, BOB);
    let id = relay.admit(Pipe::default()).unwrap();
    relay.receive(id, &key_request_line());
    let answer = written(&mut relay, id);
    assert_eq!(answer, relay_key_line(relay_identity().public_key()));
    let key = read_relay_key(&answer).unwrap();
    assert_eq!(&key, relay_identity().public_key());
    assert!(closing(&mut relay).is_empty());
    let peer = relay.peer(id).unwrap();
    assert!(!peer.is_authenticated() && relay.member_name(id).is_none());

    let (initiator, hello) = Initiator::start(&identity(ALICE), &key, b"").unwrap();
    relay.receive(id, &hello);
    let mut alice = SessionClient::finish(&mut relay, id, initiator);
    assert_eq!(alice.name, "alice");
    alice.say(&mut relay, "pinned on first use");
    assert_eq!(bob.got(&mut relay), ["alice: pinned on first use"]);
    assert_eq!(relay.stats().sessions.accepted, 2);
    assert_eq!(relay.stats().sessions.rejected(), 0);
}

/// The request may end in `\r\n` and come in pieces: it is a line like any.
#[test]
fn a_key_request_in_pieces_or_with_crlf_is_answered() {
    let mut relay = relay();
    let key_line = relay_key_line(relay_identity().public_key());
    for reads in [&[&b"BA"[..], b"==\n"][..], &[b"BA==\r\n"]] {
        let id = relay.admit(Pipe::default()).unwrap();
        for read in reads {
            relay.receive(id, read);
        }
        assert_eq!(written(&mut relay, id), key_line, "{reads:?}");
        assert!(closing(&mut relay).is_empty(), "{reads:?}");
    }
}

/// A second request, a request with a body, and a request after the
/// hello (in its read, or once welcomed) each close the connection.
#[test]
fn a_second_or_late_or_malformed_key_request_closes_the_connection() {
    let mut relay = relay();
    let relay_fingerprint = relay_identity().public_key().fingerprint();

    let twice = relay.admit(Pipe::default()).unwrap();
    relay.receive(twice, &key_request_line());
    let key_line = written(&mut relay, twice);
    assert!(read_relay_key(&key_line).is_ok());
    relay.receive(twice, &key_request_line());
    let text = refusal(&mut relay, twice);
    assert!(
        text.contains("expected a handshake hello (kind 0x01), got a key request (kind 0x04)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{RELAY_KEY_MARK}{relay_fingerprint}")),
        "{text}"
    );
    assert_eq!(
        closing(&mut relay),
        [(
            twice,
            CloseReason::HandshakeRefused(HandshakeRefusal::BadHello)
        )]
    );

    let both = relay.admit(Pipe::default()).unwrap();
    relay.receive(both, &[key_request_line(), key_request_line()].concat());
    let written = written(&mut relay, both);
    assert!(written.starts_with(&key_line), "the first is answered");
    assert_eq!(
        closing(&mut relay),
        [(
            both,
            CloseReason::HandshakeRefused(HandshakeRefusal::BadHello)
        )]
    );

    let with_body = relay.admit(Pipe::default()).unwrap();
    relay.receive(with_body, b"BAA=\n");
    let text = refusal(&mut relay, with_body);
    assert!(
        text.contains("a key request (kind 0x04) must be empty, not 1 bytes"),
        "{text}"
    );
    assert_eq!(
        closing(&mut relay),
        [(
            with_body,
            CloseReason::HandshakeRefused(HandshakeRefusal::BadHello)
        )]
    );

    let (_, hello) =
        Initiator::start(&identity(ALICE), relay_identity().public_key(), b"").unwrap();
    let early = relay.admit(Pipe::default()).unwrap();
    relay.receive(early, &[&hello[..], &key_request_line()].concat());
    assert_eq!(
        closing(&mut relay),
        [(early, CloseReason::HandshakeUnfinished)]
    );

    let alice = SessionClient::connect(&mut relay, ALICE);
    relay.receive(alice.id, &key_request_line());
    assert_eq!(
        closing(&mut relay),
        [(alice.id, CloseReason::SessionFrame(FrameRefusal::TooShort))],
        "once welcomed, every line is a frame"
    );
    assert_eq!(relay.stats().sessions.refused_bad_hello, 3);
}

/// The key request does not prove anything: the deadline still runs from
/// admission, and what the connection holds after it still counts against
/// the pre-auth budget.
#[test]
fn after_a_key_request_the_deadline_and_the_budget_still_apply() {
    let timeout = Limits::default().first_frame_timeout;
    let mut relay = relay();
    let start = std::time::Instant::now();
    relay.set_now(start);
    let asked = relay.admit(Pipe::default()).unwrap();
    relay.set_now(start + timeout - Duration::from_millis(1));
    relay.receive(asked, &key_request_line());
    relay.run_timers();
    assert!(closing(&mut relay).is_empty());
    relay.set_now(start + timeout);
    relay.run_timers();
    assert_eq!(
        closing(&mut relay),
        [(asked, CloseReason::FirstFrameTimeout)]
    );

    let limits = Limits {
        pre_auth_budget: 1000,
        ..Limits::default()
    };
    let mut relay = sessions_relay(&[("alice", ALICE)], limits, ChatConfig::quiet());
    let a = relay.admit(Pipe::default()).unwrap();
    let b = relay.admit(Pipe::default()).unwrap();
    relay.receive(a, &[&key_request_line()[..], &[b'A'; 600]].concat());
    relay.receive(b, &[b'A'; 500]);
    assert_eq!(closing(&mut relay), [(a, CloseReason::PreAuthOverBudget)]);
}
