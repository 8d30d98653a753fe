//! The members-mode tests (`members.rs`, and `chat_layer.rs`'s members
//! tests) carried over to session members: rooms, presence, every command,
//! flood control and structured events run as `chat_layer`'s shared
//! [`scenario`]s; history on arrival, one member's devices, lookups among
//! many members, and where session mode differs (no newline-less frames,
//! no trial identification) are this file's own.

use std::path::Path;
use std::time::{Instant, SystemTime};

use eaxchat_core::members::{Members, SessionMembers};
use eaxchat_core::relay::{ChatConfig, CloseReason, FrameRefusal, Limits, Relay};
use eaxchat_core::rooms::RoomsConfig;
use eaxchat_core::roster::Roster;
use eaxchat_proto::nonce::Nonces;
use eaxchat_proto::session::{PublicKey, StaticSecret};

use crate::chat_layer::{ALICE, BOB, CAROL, Mode, scenario};
use crate::util::{Pipe, SessionClient, closing, none, relay_identity, sessions_relay};

/// Session mode, for the chat scenarios every members mode shares.
struct Sessions;

impl Mode for Sessions {
    type Client = SessionClient;

    fn relay(config: ChatConfig) -> Relay<Pipe> {
        sessions_relay(
            &[("alice", ALICE), ("bob", BOB), ("carol", CAROL)],
            Limits::default(),
            config,
        )
    }

    fn member(relay: &mut Relay<Pipe>, who: u8, first: &str) -> SessionClient {
        member(relay, who, first)
    }
}

fn relay(config: ChatConfig) -> Relay<Pipe> {
    Sessions::relay(config)
}

/// Connects device `byte` and sends `first` (empty: it only arrives).
fn member(relay: &mut Relay<Pipe>, byte: u8, first: &str) -> SessionClient {
    let mut client = SessionClient::connect(relay, byte);
    client.say(relay, first);
    client
}

#[test]
fn members_are_announced_and_rooms_are_separate() {
    scenario::members_are_announced_and_rooms_are_separate::<Sessions>();
}

#[test]
fn every_command_replies_to_its_sender_only() {
    scenario::every_command_replies_to_its_sender_only::<Sessions>();
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
    scenario::flood_control_holds_back_the_flooder_and_no_one_else::<Sessions>();
}

#[test]
fn structured_events_for_who_asks() {
    scenario::structured_events_for_who_asks::<Sessions>();
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
