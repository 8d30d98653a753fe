//! The members-mode tests (`members.rs`, and `chat_layer.rs`'s members
//! tests) carried over to session members: rooms, presence, every command,
//! history on arrival, flood control, structured events, one member's
//! devices, lookups among many members, and where session mode differs
//! (no newline-less frames, no trial identification).

use std::path::Path;
use std::time::{Instant, SystemTime};

use eaxchat_core::flood::Rate;
use eaxchat_core::members::{Members, SessionMembers};
use eaxchat_core::relay::{ChatConfig, CloseReason, FrameRefusal, Limits, Relay};
use eaxchat_core::rooms::RoomsConfig;
use eaxchat_core::roster::Roster;
use eaxchat_proto::nonce::Nonces;
use eaxchat_proto::session::{PublicKey, StaticSecret};

use crate::util::{Pipe, SessionClient, closing, relay_identity, sessions_relay};

const ALICE: u8 = 1;
const BOB: u8 = 2;
const CAROL: u8 = 3;

fn relay(config: ChatConfig) -> Relay<Pipe> {
    sessions_relay(
        &[("alice", ALICE), ("bob", BOB), ("carol", CAROL)],
        Limits::default(),
        config,
    )
}

/// Connects device `byte` and sends `first` (empty: it only arrives).
fn member(relay: &mut Relay<Pipe>, byte: u8, first: &str) -> SessionClient {
    let mut client = SessionClient::connect(relay, byte);
    client.say(relay, first);
    client
}

fn none() -> Vec<String> {
    Vec::new()
}

#[test]
fn members_are_announced_and_rooms_are_separate() {
    let mut relay = relay(ChatConfig::default());
    let mut alice = member(&mut relay, ALICE, "");
    assert_eq!(alice.got(&mut relay), none());
    let mut bob = member(&mut relay, BOB, "");
    assert_eq!(alice.got(&mut relay), ["* bob joined #lobby (2 here)"]);
    assert_eq!(bob.got(&mut relay), none());

    bob.say(&mut relay, "/join Dev");
    assert_eq!(alice.got(&mut relay), ["* bob left #lobby (1 here)"]);
    assert_eq!(bob.got(&mut relay), ["* bob joined #dev (1 here)"]);
    bob.say(&mut relay, "only for dev");
    alice.say(&mut relay, "only for the lobby");
    assert_eq!(alice.got(&mut relay), none());
    assert_eq!(bob.got(&mut relay), none());

    let mut carol = member(&mut relay, CAROL, "/join dev");
    assert_eq!(
        carol.got(&mut relay),
        [
            "* carol joined #dev (2 here)",
            "* the last 1 message in #dev:",
            "bob: only for dev",
        ]
    );
    assert_eq!(bob.got(&mut relay), ["* carol joined #dev (2 here)"]);
    carol.say(&mut relay, "hi bob");
    assert_eq!(bob.got(&mut relay), ["carol: hi bob"]);
    assert_eq!(alice.got(&mut relay), none());

    relay.close(carol.id, CloseReason::PeerClosed);
    relay.remove(carol.id);
    assert_eq!(bob.got(&mut relay), ["* carol left #dev (1 here)"]);
}

#[test]
fn every_command_replies_to_its_sender_only() {
    let mut relay = relay(ChatConfig::default());
    let mut alice = member(&mut relay, ALICE, "");
    let mut bob = member(&mut relay, BOB, "");
    let mut carol = member(&mut relay, CAROL, "/join dev");
    for person in [&mut alice, &mut bob, &mut carol] {
        person.got(&mut relay);
    }

    alice.say(&mut relay, "/rooms");
    assert_eq!(alice.got(&mut relay), ["* rooms: #lobby (2), #dev (1)"]);
    alice.say(&mut relay, "/who");
    assert_eq!(alice.got(&mut relay), ["* here in #lobby: alice, bob"]);
    alice.say(&mut relay, "/me waves");
    assert_eq!(bob.got(&mut relay), ["* alice waves"]);
    alice.say(&mut relay, "/msg carol psst");
    assert_eq!(carol.got(&mut relay), ["[private] alice: psst"]);
    assert_eq!(alice.got(&mut relay), ["[private to carol] psst"]);
    assert_eq!(bob.got(&mut relay), none());
    alice.say(&mut relay, "/msg nobody hi");
    assert_eq!(
        alice.got(&mut relay),
        ["error: no one named nobody is here"]
    );
    alice.say(&mut relay, "/nick al");
    let got = alice.got(&mut relay);
    assert!(
        got[0].starts_with("error: /nick is not for members"),
        "{got:?}"
    );
    alice.say(&mut relay, "//etc/hosts is a path");
    assert_eq!(bob.got(&mut relay), ["alice: /etc/hosts is a path"]);
    assert_eq!(carol.got(&mut relay), none());

    bob.say(&mut relay, "/quit");
    assert_eq!(
        relay.peer(bob.id).and_then(|p| p.closing()),
        Some(CloseReason::Quit)
    );
    relay.remove(bob.id);
    assert_eq!(alice.got(&mut relay), ["* bob left #lobby (1 here)"]);
    assert_eq!(relay.stats().commands, 8);
}

/// A private message reaches every session of its recipient's devices,
/// each sealed under its own session.
#[test]
fn a_private_message_reaches_every_session_of_its_recipient() {
    let mut relay = sessions_relay(
        &[("alice", ALICE), ("bob", BOB), ("bob", 5)],
        Limits::default(),
        ChatConfig::quiet(),
    );
    let mut alice = member(&mut relay, ALICE, "");
    let mut phone = member(&mut relay, BOB, "");
    let mut laptop = member(&mut relay, 5, "");
    alice.say(&mut relay, "/msg bob both of you");
    for device in [&mut phone, &mut laptop] {
        assert_eq!(device.got(&mut relay), ["[private] alice: both of you"]);
    }
    assert_eq!(alice.got(&mut relay), ["[private to bob] both of you"]);
}

#[test]
fn history_goes_to_newcomers_at_their_first_frame() {
    let mut relay = relay(ChatConfig {
        rooms: RoomsConfig {
            history_entries: 3,
            ..RoomsConfig::default()
        },
        ..ChatConfig::default()
    });
    let mut alice = member(&mut relay, ALICE, "one");
    for text in ["two", "three", "four"] {
        alice.say(&mut relay, text);
    }
    // Welcomed, but not arrived: it hears the room, and is owed history.
    let mut bob = SessionClient::connect(&mut relay, BOB);
    alice.say(&mut relay, "five");
    assert_eq!(bob.got(&mut relay), ["alice: five"]);
    bob.say(&mut relay, "");
    // Only what was said before its welcome and is still kept ("two" has
    // made room for "five").
    assert_eq!(
        bob.got(&mut relay),
        [
            "* the last 2 messages in #lobby:",
            "alice: three",
            "alice: four",
        ]
    );
    assert_eq!(alice.got(&mut relay), ["* bob joined #lobby (2 here)"]);
}

#[test]
fn flood_control_holds_back_the_flooder_and_no_one_else() {
    let mut relay = relay(ChatConfig {
        rate: Rate::new(1.0, 3),
        ..ChatConfig::default()
    });
    let start = Instant::now();
    relay.set_now(start);
    let mut alice = member(&mut relay, ALICE, "");
    let mut bob = member(&mut relay, BOB, "");
    alice.got(&mut relay);
    for n in 0..10 {
        alice.say(&mut relay, &format!("flood {n}"));
        if n % 3 == 0 && n > 0 {
            bob.say(&mut relay, &format!("calm {n}"));
        }
    }
    assert_eq!(
        bob.got(&mut relay),
        ["alice: flood 0", "alice: flood 1", "alice: flood 2"]
    );
    assert_eq!(
        alice.got(&mut relay),
        [
            "error: slow down: at most 1 messages a second, in bursts of 3; \
             that message was not sent",
            "bob: calm 3",
            "bob: calm 6",
            "bob: calm 9",
        ]
    );
    assert_eq!(relay.stats().flood_refused, 7);
    assert!(relay.peer(alice.id).and_then(|p| p.closing()).is_none());
}

#[test]
fn structured_events_for_who_asks() {
    let mut relay = relay(ChatConfig::default());
    let mut alice = member(&mut relay, ALICE, "before bob");
    let mut bob = member(&mut relay, BOB, "/hello eaxchat/1");
    let got = bob.got(&mut relay);
    assert_eq!(
        got[0],
        r#"{"kind":"welcome","protocol":"eaxchat/1","name":"bob","room":"lobby","members":true}"#
    );
    assert_eq!(got[1], r#"{"kind":"history","room":"lobby","count":1}"#);
    assert!(
        got[2].starts_with(
            r#"{"kind":"msg","room":"lobby","from":"alice","text":"before bob","ts":"#
        ) && got[2].ends_with(r#","history":true}"#),
        "{got:?}"
    );
    assert_eq!(alice.got(&mut relay), ["* bob joined #lobby (2 here)"]);
    alice.say(&mut relay, "live");
    let got = bob.got(&mut relay);
    assert!(
        got[0].starts_with(r#"{"kind":"msg","room":"lobby","from":"alice","text":"live","#),
        "{got:?}"
    );
    bob.say(&mut relay, "/who");
    assert_eq!(
        bob.got(&mut relay),
        [r#"{"kind":"who","room":"lobby","names":["alice","bob"],"unnamed":0}"#]
    );
    bob.say(&mut relay, "plain for alice");
    assert_eq!(alice.got(&mut relay), ["bob: plain for alice"]);
}

/// Once established, a frame of another member's session is a bad tag,
/// and a connection awaiting its hello hears nothing of the room.
#[test]
fn a_frame_of_another_members_session_is_refused() {
    let mut relay = relay(ChatConfig::quiet());
    let alice = member(&mut relay, ALICE, "");
    let mut bob = member(&mut relay, BOB, "");
    let mut carol = member(&mut relay, CAROL, "");
    let waiting = relay.admit(Pipe::default()).unwrap();
    carol.say(&mut relay, "hello");
    assert_eq!(bob.got(&mut relay), ["carol: hello"]);
    assert!(crate::util::written(&mut relay, waiting).is_empty());
    // bob's frame 1, where alice's frame 1 is due: only the key differs.
    let as_bob = bob.seal("as bob");
    relay.receive(alice.id, &as_bob);
    assert_eq!(
        closing(&mut relay),
        [(alice.id, CloseReason::SessionFrame(FrameRefusal::BadTag))]
    );
    assert_eq!(bob.got(&mut relay), none());
    assert_eq!(carol.got(&mut relay), none());
}

/// A frame without its `\n` is a line still to come, bounded by
/// `max_frame`: session mode takes no newline-less frames.
#[test]
fn an_unterminated_frame_waits_for_its_newline() {
    let mut relay = sessions_relay(
        &[("alice", ALICE), ("bob", BOB)],
        Limits {
            max_frame: 200,
            ..Limits::default()
        },
        ChatConfig::quiet(),
    );
    let mut alice = member(&mut relay, ALICE, "");
    let mut bob = member(&mut relay, BOB, "");
    let line = alice.seal("in two reads");
    relay.receive(alice.id, &line[..line.len() - 1]);
    assert_eq!(bob.got(&mut relay), none());
    assert!(!relay.peer(alice.id).unwrap().is_seed());
    relay.receive(alice.id, b"\n");
    assert_eq!(bob.got(&mut relay), ["alice: in two reads"]);
    relay.receive(alice.id, &[b'A'; 201]);
    assert_eq!(closing(&mut relay), [(alice.id, CloseReason::LineTooLong)]);
}

/// With 10,000 devices in the file, the last one's hello is found by one
/// lookup, and a members-mode relay does not take a sessions file.
#[test]
fn the_last_of_ten_thousand_devices_is_welcomed() {
    let last = StaticSecret::from_bytes(&[0x42; 32]).unwrap();
    let mut text: String = (0..9_999u32)
        .map(|i| {
            let mut bytes = [0xa5; 32];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            format!("m{i} {}\n", PublicKey::from_bytes(bytes))
        })
        .collect();
    text.push_str(&format!("m9999 {}\n", last.public_key()));
    let all = SessionMembers::parse(text.as_bytes(), Path::new("members.txt")).unwrap();
    let mut relay: Relay<Pipe> = Relay::with_sessions(
        &all,
        relay_identity(),
        Limits::default(),
        Instant::now(),
        SystemTime::now(),
    );
    assert_eq!(relay.member_count(), 10_000);
    let client = SessionClient::connect(&mut relay, 0x42);
    assert_eq!(client.name, "m9999");
    let mut members: Relay<Pipe> = Relay::with_members(
        Roster::with_nonces(&Members::default(), Nonces::from_seed([1; 32])),
        Limits::default(),
        Instant::now(),
        SystemTime::now(),
    );
    assert!(members.reload_members(&all).is_none());
    assert!(!members.is_sessions());
}
