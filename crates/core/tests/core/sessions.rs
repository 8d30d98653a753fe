//! A session relay driven without sockets: `Relay::with_sessions` over
//! in-memory pipes, with real handshakes from [`SessionClient`]. Names
//! stamped, every replay, gap, reorder and reflection refused, every bad
//! hello refused with a line, the deadline from admission, the pre-auth
//! budget, and removals of one device.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eaxchat_core::relay::{ChatConfig, CloseReason, FrameRefusal, HandshakeRefusal, Limits, Relay};
use eaxchat_proto::name::Name;
use eaxchat_proto::session::{Initiator, MAX_LINE, RELAY_KEY_MARK, StaticSecret};

use crate::util::{
    Pipe, SessionClient, closing, identity, key, none, refusal, relay_identity, session_members,
    sessions_relay, written,
};

const ALICE: u8 = 1;
const BOB: u8 = 2;
const CAROL: u8 = 3;
const ALICE_LAPTOP: u8 = 4;
const STRANGER: u8 = 9;

/// alice (two devices), bob and carol, quiet: these tests count every
/// frame a member gets (the chat layer's notices are in the tests below
/// that say so).
fn relay() -> Relay<Pipe> {
    sessions_relay(
        &[
            ("alice", ALICE),
            ("bob", BOB),
            ("carol", CAROL),
            ("alice", ALICE_LAPTOP),
        ],
        Limits::default(),
        ChatConfig::quiet(),
    )
}

/// Members chat after their handshakes; every message arrives under its
/// sender's name, whatever name it claims, and never back to its sender.
#[test]
fn session_members_chat_under_their_stamped_names() {
    let mut relay = relay();
    assert!(relay.is_sessions() && relay.is_members());
    assert_eq!(relay.relay_key(), Some(relay_identity().public_key()));
    assert_eq!(relay.member_count(), 3);
    let mut alice = SessionClient::connect(&mut relay, ALICE);
    let mut bob = SessionClient::connect(&mut relay, BOB);
    let mut carol = SessionClient::connect(&mut relay, CAROL);
    assert_eq!((alice.name.as_str(), bob.name.as_str()), ("alice", "bob"));
    assert_eq!(relay.member_name(carol.id).unwrap().as_str(), "carol");
    assert_eq!(
        relay.peer(alice.id).unwrap().session_key(),
        Some(identity(ALICE).public_key())
    );
    alice.say(&mut relay, "bob: hi");
    bob.say(&mut relay, "hello alice");
    assert_eq!(
        carol.got(&mut relay),
        ["alice: bob: hi", "bob: hello alice"]
    );
    assert_eq!(bob.got(&mut relay), ["alice: bob: hi"]);
    assert_eq!(alice.got(&mut relay), ["bob: hello alice"]);
    // An empty frame arrives and is never relayed.
    carol.say(&mut relay, "");
    assert_eq!(alice.got(&mut relay), none());
    let stats = relay.stats();
    assert_eq!((stats.sessions.accepted, stats.frames_in), (3, 2));
    assert_eq!(stats.sessions.rejected(), 0);
    let line = stats.to_string();
    assert!(line.contains(" handshakes_accepted=3 "), "{line}");
    assert!(line.ends_with(" session_rejected_malformed=0"), "{line}");
}

/// Two devices of one member, and two sessions of one device, each get a
/// message under their own session: the same text, different bytes.
#[test]
fn each_session_is_sealed_for_under_its_own_keys() {
    let mut relay = relay();
    let mut bob = SessionClient::connect(&mut relay, BOB);
    let mut phone = SessionClient::connect(&mut relay, ALICE);
    let mut laptop = SessionClient::connect(&mut relay, ALICE_LAPTOP);
    let mut again = SessionClient::connect(&mut relay, ALICE);
    let name = Name::new("alice").unwrap();
    assert_eq!(relay.member_name(laptop.id), Some(&name));
    bob.say(&mut relay, "one");
    while let Some(id) = relay.next_waiting() {
        relay.flush(id);
    }
    let bytes = |relay: &mut Relay<Pipe>, id| relay.io_mut(id).unwrap().received.clone();
    let (a, b) = (bytes(&mut relay, phone.id), bytes(&mut relay, again.id));
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b, "one device, two sessions, two keys");
    for device in [&mut phone, &mut laptop, &mut again] {
        assert_eq!(device.got(&mut relay), ["bob: one"]);
    }
    laptop.say(&mut relay, "from the laptop");
    assert_eq!(phone.got(&mut relay), ["alice: from the laptop"]);
    assert_eq!(bob.got(&mut relay), ["alice: from the laptop"]);
}

/// A frame sent twice on its connection is refused as a replay, and is
/// relayed once.
#[test]
fn a_frame_replayed_on_its_connection_is_refused() {
    let mut relay = relay();
    let mut alice = SessionClient::connect(&mut relay, ALICE);
    let mut bob = SessionClient::connect(&mut relay, BOB);
    let line = alice.say(&mut relay, "once");
    relay.receive(alice.id, &line);
    assert_eq!(
        closing(&mut relay),
        [(alice.id, CloseReason::SessionFrame(FrameRefusal::Replayed))]
    );
    assert_eq!(bob.got(&mut relay), ["alice: once"]);
    assert_eq!(relay.stats().sessions.rejected_replay, 1);
    assert_eq!(
        CloseReason::SessionFrame(FrameRefusal::Replayed).to_string(),
        "rejected session frame: its counter was used already (a replay or a reorder)"
    );
}

/// A frame of one session, sent on another session of the same device,
/// does not open there: every session has its own keys.
#[test]
fn a_frame_replayed_on_another_session_of_its_device_is_refused() {
    let mut relay = relay();
    let mut first = SessionClient::connect(&mut relay, ALICE);
    let second = SessionClient::connect(&mut relay, ALICE);
    let mut bob = SessionClient::connect(&mut relay, BOB);
    // Counter 0 is what `second` waits for: only the key tells them apart.
    let line = first.seal("captured");
    relay.receive(second.id, &line);
    assert_eq!(
        closing(&mut relay),
        [(second.id, CloseReason::SessionFrame(FrameRefusal::BadTag))]
    );
    assert_eq!(bob.got(&mut relay), none());
    assert_eq!(relay.stats().sessions.rejected_tag, 1);
    // The captured frame still opens where it was sealed.
    relay.receive(first.id, &line);
    assert_eq!(bob.got(&mut relay), ["alice: captured"]);
}

/// What the relay sent a member, sent back by that member, never opens:
/// the two directions have two keys.
#[test]
fn a_reflected_frame_is_refused() {
    let mut relay = relay();
    let mut alice = SessionClient::connect(&mut relay, ALICE);
    let mut bob = SessionClient::connect(&mut relay, BOB);
    alice.say(&mut relay, "reflect me");
    let sent_to_bob = written(&mut relay, bob.id);
    relay.receive(bob.id, &sent_to_bob);
    let closed = closing(&mut relay);
    assert_eq!(closed.len(), 1);
    assert!(
        matches!(closed[0], (id, CloseReason::SessionFrame(_)) if id == bob.id),
        "{closed:?}"
    );
    assert_eq!(alice.got(&mut relay), none());
    // Counter 0 both ways: refused for its tag.
    assert_eq!(relay.stats().sessions.rejected_tag, 1);
    assert_eq!(
        bob.got(&mut relay),
        none(),
        "a closing connection is sent nothing"
    );
}

/// A gap, a reorder and a replay after a later frame are each refused, and
/// each closes its connection after the frames before it were relayed.
#[test]
fn gaps_and_reorders_are_refused() {
    for (order, relayed, refusal) in [
        (&[0, 2][..], &["alice: #0"][..], FrameRefusal::Skipped),
        (&[1, 0][..], &[][..], FrameRefusal::Skipped),
        (
            &[0, 1, 0][..],
            &["alice: #0", "alice: #1"][..],
            FrameRefusal::Replayed,
        ),
    ] {
        let mut relay = relay();
        let mut alice = SessionClient::connect(&mut relay, ALICE);
        let mut bob = SessionClient::connect(&mut relay, BOB);
        let lines: Vec<Vec<u8>> = (0..3).map(|n| alice.seal(&format!("#{n}"))).collect();
        for &n in order {
            relay.receive(alice.id, &lines[n]);
        }
        assert_eq!(
            closing(&mut relay),
            [(alice.id, CloseReason::SessionFrame(refusal))],
            "{order:?}"
        );
        assert_eq!(bob.got(&mut relay), relayed, "{order:?}");
        let counts = relay.stats().sessions;
        assert_eq!(counts.rejected_gap + counts.rejected_replay, 1);
    }
}

/// An unknown key is refused with a line naming its fingerprint and what
/// the operator must do; the connection closes once that is written, and
/// never hears or says anything in the room.
#[test]
fn an_unknown_key_is_refused_naming_its_fingerprint() {
    let mut relay = relay();
    let mut alice = SessionClient::connect(&mut relay, ALICE);
    let (stranger, initiator) = SessionClient::hello(&mut relay, STRANGER);
    assert!(
        closing(&mut relay).is_empty(),
        "open until the refusal is written"
    );
    alice.say(&mut relay, "not for strangers");
    let text = refusal(&mut relay, stranger);
    let fingerprint = identity(STRANGER).public_key().fingerprint().to_string();
    assert!(
        text.contains(&format!("unknown key {fingerprint}")),
        "{text}"
    );
    assert!(text.contains("operator must add it"), "{text}");
    assert!(
        text.contains(&identity(STRANGER).public_key().to_string()),
        "{text}"
    );
    assert_eq!(
        closing(&mut relay),
        [(
            stranger,
            CloseReason::HandshakeRefused(HandshakeRefusal::UnknownKey)
        )]
    );
    assert_eq!(relay.stats().sessions.refused_unknown_key, 1);
    // The client reads the refusal as such.
    let line = STANDARD.encode([&[0x7f][..], text.as_bytes()].concat());
    assert!(initiator.finish(line.as_bytes()).is_err());
    // What it sends after its refusal is not read.
    relay.receive(stranger, b"anything\n");
    assert_eq!(alice.got(&mut relay), none());
}

/// Every kind of bad first line gets one refusal line and a close, counted,
/// without a panic; nothing is held for it afterwards.
#[test]
fn bad_hellos_are_refused_with_a_line() {
    let relay_key = *relay_identity().public_key();
    let (_, hello) = Initiator::start(&identity(ALICE), &relay_key, b"").unwrap();
    let other = StaticSecret::from_bytes(&[0x77; 32]).unwrap();
    let (_, for_another_relay) =
        Initiator::start(&identity(ALICE), other.public_key(), b"").unwrap();
    let body = &hello[..hello.len() - 1];
    let mut flipped = body.to_vec();
    flipped[40] = if flipped[40] == b'A' { b'B' } else { b'A' };
    flipped.push(b'\n');
    let welcome_kind = format!("{}\n", STANDARD.encode([0x02; 97]));
    let huge = vec![b'A'; MAX_LINE + 2];
    let cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
        (
            "garbage",
            vec![b"!!!!\n".to_vec()],
            "not padded standard base64",
        ),
        ("empty line", vec![b"\r\n".to_vec()], "empty handshake line"),
        (
            "truncated",
            vec![[&body[..100], b"\n"].concat()],
            "too short",
        ),
        (
            "cut mid-base64",
            vec![[&body[..101], b"\n"].concat()],
            "base64",
        ),
        ("damaged", vec![flipped], "did not decrypt"),
        (
            "another kind",
            vec![welcome_kind.into_bytes()],
            "expected a handshake hello",
        ),
        (
            "another relay's key",
            vec![for_another_relay],
            "did not decrypt",
        ),
        (
            "oversized in one read",
            vec![huge.clone()],
            "over the 1024-byte limit",
        ),
        (
            "oversized over reads",
            vec![huge[..600].to_vec(), huge[600..].to_vec()],
            "over the 1024-byte limit",
        ),
    ];
    for (what, reads, needle) in cases {
        let mut relay = relay();
        let mut alice = SessionClient::connect(&mut relay, ALICE);
        let id = relay.admit(Pipe::default()).unwrap();
        for read in &reads {
            relay.receive(id, read);
        }
        let text = refusal(&mut relay, id);
        assert!(text.contains(needle), "{what}: {text}");
        assert!(
            text.contains(&format!("{RELAY_KEY_MARK}{}", relay_key.fingerprint())),
            "{what}: {text}"
        );
        assert_eq!(
            closing(&mut relay),
            [(
                id,
                CloseReason::HandshakeRefused(HandshakeRefusal::BadHello)
            )],
            "{what}"
        );
        assert_eq!(relay.stats().sessions.refused_bad_hello, 1, "{what}");
        assert_eq!(relay.peer(id).unwrap().buffered(), 0, "{what}");
        assert_eq!(alice.got(&mut relay), none(), "{what}");
    }
}

/// A frame is never taken before the welcome: as a first line it is a bad
/// hello; after the hello in the same read (a second hello, or a frame the
/// client could not have sealed yet, or the start of one) it closes the
/// connection; a second hello after the welcome is a frame that does not
/// open.
#[test]
fn nothing_but_a_hello_is_read_before_the_welcome() {
    let mut relay = relay();
    let mut alice = SessionClient::connect(&mut relay, ALICE);
    let mut bob = SessionClient::connect(&mut relay, BOB);
    // alice's valid frame, sent first by another connection.
    let frame = alice.seal("smuggled");
    let early = relay.admit(Pipe::default()).unwrap();
    relay.receive(early, &frame);
    let text = refusal(&mut relay, early);
    assert!(text.contains("unknown handshake line kind 0x00"), "{text}");
    assert_eq!(
        closing(&mut relay),
        [(
            early,
            CloseReason::HandshakeRefused(HandshakeRefusal::BadHello)
        )]
    );
    assert_eq!(bob.got(&mut relay), none());

    let (_, hello) =
        Initiator::start(&identity(CAROL), relay_identity().public_key(), b"").unwrap();
    let (_, second) =
        Initiator::start(&identity(CAROL), relay_identity().public_key(), b"").unwrap();
    for after in [second.clone(), b"AAAA\n".to_vec(), b"AAAA".to_vec()] {
        let id = relay.admit(Pipe::default()).unwrap();
        relay.receive(id, &[&hello[..], &after[..]].concat());
        assert_eq!(
            closing(&mut relay),
            [(id, CloseReason::HandshakeUnfinished)]
        );
        assert_eq!(bob.got(&mut relay), none());
    }
    assert_eq!(relay.stats().sessions.unfinished, 3);
    assert_eq!(
        CloseReason::HandshakeUnfinished.to_string(),
        "sent a line before its handshake finished"
    );

    let mut carol = SessionClient::connect(&mut relay, CAROL);
    relay.receive(carol.id, &second);
    assert_eq!(
        closing(&mut relay),
        [(
            carol.id,
            CloseReason::SessionFrame(FrameRefusal::NotACounter)
        )]
    );
    assert_eq!(carol.got(&mut relay), none());
    assert_eq!(alice.got(&mut relay), none());
    assert_eq!(relay.stats().sessions.accepted, 6);
}

/// The deadline runs from admission: a connection that never sends a byte
/// is closed at it, as is one that sent half a hello late; one whose
/// handshake finished is not.
#[test]
fn the_handshake_deadline_runs_from_admission() {
    let timeout = Limits::default().first_frame_timeout;
    let mut relay = relay();
    let start = std::time::Instant::now();
    relay.set_now(start);
    let silent = relay.admit(Pipe::default()).unwrap();
    let slow = relay.admit(Pipe::default()).unwrap();
    let alice = SessionClient::connect(&mut relay, ALICE);
    assert_eq!(relay.next_timer(), Some(start + timeout));
    relay.set_now(start + timeout - Duration::from_millis(1));
    let (_, hello) = Initiator::start(&identity(BOB), relay_identity().public_key(), b"").unwrap();
    relay.receive(slow, &hello[..50]);
    relay.run_timers();
    assert!(closing(&mut relay).is_empty());
    relay.set_now(start + timeout);
    relay.run_timers();
    let mut closed = closing(&mut relay);
    closed.sort_by_key(|(id, _)| *id);
    assert_eq!(
        closed,
        [
            (silent, CloseReason::FirstFrameTimeout),
            (slow, CloseReason::FirstFrameTimeout)
        ]
    );
    assert_eq!(relay.stats().first_frame_timeouts, 2);
    assert!(relay.peer(alice.id).unwrap().closing().is_none());
}

/// Half-finished hellos count against the pre-auth budget: past it, the
/// connection holding the most is closed; a finished handshake holds
/// nothing.
#[test]
fn half_finished_hellos_count_against_the_pre_auth_budget() {
    let limits = Limits {
        pre_auth_budget: 1000,
        ..Limits::default()
    };
    let mut relay = sessions_relay(&[("alice", ALICE)], limits, ChatConfig::quiet());
    let a = relay.admit(Pipe::default()).unwrap();
    let b = relay.admit(Pipe::default()).unwrap();
    relay.receive(a, &[b'A'; 600]);
    relay.receive(b, &[b'A'; 500]);
    assert_eq!(closing(&mut relay), [(a, CloseReason::PreAuthOverBudget)]);
    assert_eq!(relay.stats().pre_auth_over_budget, 1);
    let alice = SessionClient::connect(&mut relay, ALICE);
    assert_eq!(relay.peer(alice.id).unwrap().buffered(), 0);
    relay.receive(b, &[b'A'; 400]);
    assert!(
        closing(&mut relay).is_empty(),
        "900 bytes held: within the budget"
    );
}

/// Removing one device closes its sessions within the reload and keeps
/// its member's other device; the removed device is then unknown.
#[test]
fn removing_one_device_closes_only_its_sessions() {
    let mut relay = relay();
    let mut phone = SessionClient::connect(&mut relay, ALICE);
    let laptop = SessionClient::connect(&mut relay, ALICE_LAPTOP);
    let laptop_too = SessionClient::connect(&mut relay, ALICE_LAPTOP);
    let mut bob = SessionClient::connect(&mut relay, BOB);
    let carol = SessionClient::connect(&mut relay, CAROL);
    let changes = relay
        .reload_members(&session_members(&[
            ("alice", ALICE),
            ("bob", BOB),
            ("dave", 5),
        ]))
        .unwrap();
    let names = |list: &[Name]| {
        list.iter()
            .map(|n| n.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&changes.rekeyed), ["alice"]);
    assert_eq!(names(&changes.removed), ["carol"]);
    assert_eq!(names(&changes.added), ["dave"]);
    let mut closed = closing(&mut relay);
    closed.sort_by_key(|(id, _)| *id);
    assert_eq!(
        closed,
        [
            (laptop.id, CloseReason::MemberRemoved),
            (laptop_too.id, CloseReason::MemberRemoved),
            (carol.id, CloseReason::MemberRemoved),
        ]
    );
    assert_eq!(relay.stats().members_removed, 3);
    for id in [laptop.id, laptop_too.id, carol.id] {
        relay.remove(id);
    }
    phone.say(&mut relay, "still here");
    assert_eq!(bob.got(&mut relay), ["alice: still here"]);
    assert_eq!(relay.member_name(phone.id).unwrap().as_str(), "alice");
    let name = Name::new("alice").unwrap();
    let (again, _) = SessionClient::hello(&mut relay, ALICE_LAPTOP);
    assert!(refusal(&mut relay, again).contains("unknown key"));
    // A static-key file does not reload a session relay.
    let text = format!("alice {}\n", key().to_hex());
    let statics =
        eaxchat_core::members::Members::parse(text.as_bytes(), std::path::Path::new("m")).unwrap();
    assert!(relay.reload_members(&statics).is_none());
    assert_eq!(relay.member_name(phone.id), Some(&name));
}
