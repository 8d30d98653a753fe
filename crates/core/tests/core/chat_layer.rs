//! The chat layer driven without sockets: rooms, presence, every command
//! and its bad arguments, history on arrival, flood control, structured
//! events and the records for the message log, in static-key members mode
//! and with a shared key. The scenarios every members mode shares are
//! written once ([`scenario`], over a [`Mode`]) and run here and in
//! `session_members.rs`.

use std::time::{Duration, Instant, SystemTime};

use eaxchat_core::flood::Rate;
use eaxchat_core::history::EntryKind;
use eaxchat_core::record::Record;
use eaxchat_core::relay::{ChatConfig, CloseReason, Limits, Relay};
use eaxchat_core::rooms::RoomsConfig;
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::commands::RoomName;

use crate::util::{KeyClient, Member, Pipe, member_key, members_relay as relay_of, none, seal_as};

pub const ALICE: u8 = 1;
pub const BOB: u8 = 2;
pub const CAROL: u8 = 3;
const SHARED: u8 = 9;

/// A mode the chat scenarios below run in: how its relay serving alice,
/// bob and carol (devices or keys [`ALICE`], [`BOB`], [`CAROL`]) is made,
/// and how a member connects and sends its first frame. This file runs
/// them in static-key members mode; `session_members.rs` in session mode.
pub trait Mode {
    /// The mode's member.
    type Client: Member;
    /// The relay, its chat set up as `config`.
    fn relay(config: ChatConfig) -> Relay<Pipe>;
    /// Connects member `who` and sends `first` (empty: it only arrives).
    fn member(relay: &mut Relay<Pipe>, who: u8, first: &str) -> Self::Client;
}

/// Static-key members mode.
struct StaticKeys;

impl Mode for StaticKeys {
    type Client = KeyClient;

    fn relay(config: ChatConfig) -> Relay<Pipe> {
        relay_of(&[("alice", ALICE), ("bob", BOB), ("carol", CAROL)], config)
    }

    fn member(relay: &mut Relay<Pipe>, who: u8, first: &str) -> KeyClient {
        member(relay, who, first)
    }
}

fn members_relay(config: ChatConfig) -> Relay<Pipe> {
    StaticKeys::relay(config)
}

fn shared_relay(config: ChatConfig) -> Relay<Pipe> {
    let mut relay = Relay::new(
        Cipher::with_nonce_seed(&member_key(SHARED), [4; 32]),
        Limits::default(),
        Instant::now(),
        SystemTime::now(),
    );
    relay.set_chat(config);
    relay
}

/// Admits a member and identifies it with `first` (empty: only
/// identifies).
fn member(relay: &mut Relay<Pipe>, key: u8, first: &str) -> KeyClient {
    let person = KeyClient::admit(relay, key);
    person.say(relay, first);
    person
}

fn guest(relay: &mut Relay<Pipe>) -> KeyClient {
    KeyClient::admit(relay, SHARED)
}

#[test]
fn members_are_announced_and_rooms_are_separate() {
    scenario::members_are_announced_and_rooms_are_separate::<StaticKeys>();
}

#[test]
fn every_command_replies_to_its_sender_only() {
    scenario::every_command_replies_to_its_sender_only::<StaticKeys>();
}

#[test]
fn bad_commands_get_an_error_and_change_nothing() {
    let mut relay = members_relay(ChatConfig {
        rooms: RoomsConfig {
            max_rooms: 2,
            ..RoomsConfig::default()
        },
        ..ChatConfig::default()
    });
    let alice = member(&mut relay, ALICE, "");
    let bob = member(&mut relay, BOB, "/join dev");
    alice.got(&mut relay);
    bob.got(&mut relay);
    let long = format!("/me {}", "x".repeat(5000));
    for (command, reply) in [
        ("/dance", "error: unknown command /dance (try /help)"),
        (
            "/join",
            "error: /join needs an argument: /join ROOM [--e2e]",
        ),
        ("/join no/slash", "error: bad room name"),
        ("/join #lobby", "* you are already in #lobby"),
        ("/join full", "error: the relay has its most rooms (2)"),
        ("/who everyone", "error: too many arguments: /who"),
        ("/msg nobody hi", "error: no one named nobody is here"),
        ("/msg alice hi", "error: no one named alice is here"),
        ("/msg bad*name hi", "error: bad name"),
        ("/msg bob", "error: /msg needs an argument: /msg NAME TEXT"),
        ("/nick al", "error: /nick is not for members"),
        (
            long.as_str(),
            "error: /me text too long: at most 4096 bytes",
        ),
        (
            "/hello eaxchat/9",
            "error: unknown protocol; this relay speaks eaxchat/1",
        ),
    ] {
        alice.say(&mut relay, command);
        let got = alice.got(&mut relay);
        assert_eq!(got.len(), 1, "{command}: {got:?}");
        assert!(got[0].starts_with(reply), "{command}: {got:?}");
        assert_eq!(bob.got(&mut relay), Vec::<String>::new(), "{command}");
    }
    assert_eq!(relay.room_of(alice.id).map(|r| r.as_str()), Some("lobby"));
    assert_eq!(relay.rooms().occupied_count(), 2);
}

#[test]
fn shared_key_nicks_are_unique_and_announced() {
    let mut relay = shared_relay(ChatConfig::default());
    let (one, two, listener) = (guest(&mut relay), guest(&mut relay), guest(&mut relay));
    one.say(&mut relay, "anonymous hello");
    assert_eq!(two.got(&mut relay), ["anonymous hello"]);
    one.say(&mut relay, "/nick alice");
    assert_eq!(one.got(&mut relay), ["* you are now alice"]);
    assert_eq!(two.got(&mut relay), ["* alice joined #lobby (3 here)"]);
    assert_eq!(
        listener.got(&mut relay),
        ["anonymous hello", "* alice joined #lobby (3 here)"]
    );
    two.say(&mut relay, "/nick alice");
    assert_eq!(two.got(&mut relay), ["error: the name alice is taken"]);
    two.say(&mut relay, "/who");
    assert_eq!(
        two.got(&mut relay),
        ["* here in #lobby: alice, and 2 with no name"]
    );
    one.say(&mut relay, "/nick al");
    assert_eq!(two.got(&mut relay), ["* alice is now al"]);
    // The old name is free again; the text of a named sender still goes
    // as it came (a shared key vouches for no name).
    two.say(&mut relay, "/nick alice");
    two.say(&mut relay, "bob: hi");
    assert_eq!(
        one.got(&mut relay).last().map(String::as_str),
        Some("bob: hi")
    );
    two.say(&mut relay, "/msg al hi there");
    assert_eq!(one.got(&mut relay), ["[private] alice: hi there"]);
}

#[test]
fn history_goes_to_newcomers_bounded_in_count_and_bytes() {
    let mut relay = members_relay(ChatConfig {
        rooms: RoomsConfig {
            history_entries: 3,
            history_bytes: 40,
            ..RoomsConfig::default()
        },
        ..ChatConfig::default()
    });
    let alice = member(&mut relay, ALICE, "one");
    for text in ["two", "three", "four"] {
        alice.say(&mut relay, text);
    }
    let bob = member(&mut relay, BOB, "");
    assert_eq!(
        bob.got(&mut relay),
        [
            "* the last 3 messages in #lobby:",
            "alice: two",
            "alice: three",
            "alice: four",
        ]
    );
    // 40 bytes: each entry is 5 (alice) + its text.
    alice.say(&mut relay, &"x".repeat(20));
    alice.say(&mut relay, &"y".repeat(10));
    let carol = member(&mut relay, CAROL, "");
    let got = carol.got(&mut relay);
    assert_eq!(got[0], "* the last 2 messages in #lobby:", "{got:?}");
    assert_eq!(got.len(), 3);
    // Private messages and notices never enter history.
    alice.say(&mut relay, "/msg bob secret");
    let dave_sees = relay
        .rooms()
        .find(&RoomName::new(b"lobby").expect("room"))
        .and_then(|id| relay.rooms().get(id))
        .map(|room| room.history().iter().any(|e| &*e.text == b"secret"));
    assert_eq!(dave_sees, Some(false));
}

#[test]
fn a_listener_gets_only_the_history_from_before_it_came() {
    let mut relay = shared_relay(ChatConfig::default());
    let talker = guest(&mut relay);
    talker.say(&mut relay, "before");
    let listener = guest(&mut relay);
    talker.say(&mut relay, "after");
    assert_eq!(listener.got(&mut relay), ["after"]);
    listener.say(&mut relay, "/who");
    assert_eq!(
        listener.got(&mut relay),
        [
            "* here in #lobby: 2 with no name",
            "* the last 1 message in #lobby:",
            "before",
        ]
    );
}

#[test]
fn flood_control_holds_back_the_flooder_and_no_one_else() {
    scenario::flood_control_holds_back_the_flooder_and_no_one_else::<StaticKeys>();
}

#[test]
fn structured_events_for_who_asks() {
    scenario::structured_events_for_who_asks::<StaticKeys>();
}

#[test]
fn the_log_gets_room_messages_joins_and_leaves_and_history_comes_back() {
    let config = ChatConfig {
        log: true,
        ..ChatConfig::default()
    };
    let mut relay = members_relay(config.clone());
    let alice = member(&mut relay, ALICE, "");
    let bob = member(&mut relay, BOB, "hello");
    alice.say(&mut relay, "/me waves");
    alice.say(&mut relay, "/msg bob private");
    relay.close(bob.id, CloseReason::PeerClosed);
    relay.remove(bob.id);
    let mut records = Vec::new();
    relay.take_log_records(&mut records);
    let kinds: Vec<String> = records
        .iter()
        .map(|record| match record {
            Record::Join { name, .. } => format!("join {name}"),
            Record::Leave { name, .. } => format!("leave {name}"),
            Record::Message {
                sender, text, kind, ..
            } => format!(
                "{} {} {}",
                if *kind == EntryKind::Action {
                    "action"
                } else {
                    "msg"
                },
                sender.as_ref().map_or("-", |n| n.as_str()),
                String::from_utf8_lossy(text)
            ),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "join alice",
            "join bob",
            "msg bob hello",
            "action alice waves",
            "leave bob"
        ]
    );

    let mut restarted = members_relay(config);
    restarted.restore_history(&records);
    let carol = member(&mut restarted, CAROL, "");
    assert_eq!(
        carol.got(&mut restarted),
        [
            "* the last 2 messages in #lobby:",
            "bob: hello",
            "* alice waves",
        ]
    );
}

#[test]
fn a_seed_receiver_gets_notices_as_lines() {
    // The original notebook client sends newline-less frames and reads
    // one frame per recv(): it gets notices as text of its own.
    let mut relay = members_relay(ChatConfig::default());
    let alice = member(&mut relay, ALICE, "");
    let seed = KeyClient::admit(&mut relay, BOB);
    let frame = seal_as(BOB, b"hi from the notebook");
    relay.receive(seed.id, &frame[..frame.len() - 1]);
    assert!(relay.peer(seed.id).is_some_and(|p| p.is_seed()));
    assert_eq!(
        alice.got(&mut relay),
        ["* bob joined #lobby (2 here)", "bob: hi from the notebook"]
    );
    alice.say(&mut relay, "/msg bob hello notebook");
    relay.set_now(Instant::now() + Duration::from_secs(1));
    relay.run_timers();
    assert_eq!(seed.got(&mut relay), ["[private] alice: hello notebook"]);
}

/// `--presence off` silences joins, leaves and nick changes alike (found by
/// the `relay` fuzz target: a nick change still reached the room), while
/// the commands still answer.
#[test]
fn presence_off_silences_every_notice_but_replies() {
    let mut relay = shared_relay(ChatConfig {
        presence: false,
        ..ChatConfig::default()
    });
    let (one, two) = (guest(&mut relay), guest(&mut relay));
    one.say(&mut relay, "/nick a");
    one.say(&mut relay, "/nick b");
    assert_eq!(one.got(&mut relay), ["* you are now a", "* you are now b"]);
    two.say(&mut relay, "/join dev");
    assert_eq!(two.got(&mut relay), ["* you joined #dev (1 here)"]);
    relay.close(one.id, CloseReason::PeerClosed);
    relay.remove(one.id);
    assert_eq!(two.got(&mut relay), Vec::<String>::new());
}

/// The chat scenarios each mode runs ([`Mode`]): this file in static-key
/// members mode, `session_members.rs` in session mode.
pub mod scenario {
    use super::*;

    /// Joins and leaves are told to the room they concern; a room hears only
    /// its own messages; a newcomer to a room gets its history.
    pub fn members_are_announced_and_rooms_are_separate<M: Mode>() {
        let mut relay = M::relay(ChatConfig::default());
        let mut alice = M::member(&mut relay, ALICE, "");
        assert_eq!(alice.got(&mut relay), none());
        let mut bob = M::member(&mut relay, BOB, "");
        assert_eq!(alice.got(&mut relay), ["* bob joined #lobby (2 here)"]);
        assert_eq!(bob.got(&mut relay), none());

        bob.say(&mut relay, "/join Dev");
        assert_eq!(alice.got(&mut relay), ["* bob left #lobby (1 here)"]);
        assert_eq!(bob.got(&mut relay), ["* bob joined #dev (1 here)"]);
        bob.say(&mut relay, "only for dev");
        alice.say(&mut relay, "only for the lobby");
        assert_eq!(alice.got(&mut relay), none());
        assert_eq!(bob.got(&mut relay), none());

        let mut carol = M::member(&mut relay, CAROL, "/join dev");
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

        relay.close(carol.id(), CloseReason::PeerClosed);
        relay.remove(carol.id());
        assert_eq!(bob.got(&mut relay), ["* carol left #dev (1 here)"]);
    }

    /// Every command answers its sender alone, and only what is meant for
    /// others reaches them.
    pub fn every_command_replies_to_its_sender_only<M: Mode>() {
        let mut relay = M::relay(ChatConfig::default());
        let mut alice = M::member(&mut relay, ALICE, "");
        let mut bob = M::member(&mut relay, BOB, "");
        let mut carol = M::member(&mut relay, CAROL, "/join dev");
        for person in [&mut alice, &mut bob, &mut carol] {
            person.got(&mut relay);
        }

        alice.say(&mut relay, "/rooms");
        assert_eq!(alice.got(&mut relay), ["* rooms: *#lobby (2), #dev (1)"]);
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
        alice.say(&mut relay, "/help");
        let help = alice.got(&mut relay);
        assert_eq!(help.len(), 1);
        for usage in [
            "/join ROOM [--e2e]",
            "/msg NAME TEXT",
            "/quit",
            "/hello eaxchat/1",
        ] {
            assert!(help[0].contains(usage), "{help:?}");
        }
        alice.say(&mut relay, "//etc/hosts is a path");
        assert_eq!(bob.got(&mut relay), ["alice: /etc/hosts is a path"]);
        // Nothing but the literal message reached anyone else.
        assert_eq!(carol.got(&mut relay), none());

        bob.say(&mut relay, "/quit");
        assert_eq!(
            relay.peer(bob.id()).and_then(|p| p.closing()),
            Some(CloseReason::Quit)
        );
        relay.remove(bob.id());
        assert_eq!(alice.got(&mut relay), ["* bob left #lobby (1 here)"]);
        assert_eq!(relay.stats().commands, 9);
    }

    /// A flooder's messages past its burst are refused and it is told once;
    /// everyone else loses nothing, and a second later it may speak again.
    pub fn flood_control_holds_back_the_flooder_and_no_one_else<M: Mode>() {
        let mut relay = M::relay(ChatConfig {
            rate: Rate::new(1.0, 3),
            ..ChatConfig::default()
        });
        let start = Instant::now();
        relay.set_now(start);
        let mut alice = M::member(&mut relay, ALICE, "");
        let mut bob = M::member(&mut relay, BOB, "");
        alice.got(&mut relay);
        // Ten at once from alice, three from bob between them: alice's burst
        // of 3 goes and the rest are refused, told once; bob loses nothing.
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
        let to_alice = alice.got(&mut relay);
        assert_eq!(
            to_alice,
            [
                "error: slow down: at most 1 messages a second, in bursts of 3; \
                 that message was not sent",
                "bob: calm 3",
                "bob: calm 6",
                "bob: calm 9",
            ]
        );
        assert_eq!(relay.stats().flood_refused, 7);
        assert!(relay.peer(alice.id()).and_then(|p| p.closing()).is_none());
        // A second later alice has one token again, and is warned afresh when
        // she floods again.
        relay.set_now(start + Duration::from_secs(1));
        alice.say(&mut relay, "one more");
        alice.say(&mut relay, "and another");
        assert_eq!(bob.got(&mut relay), ["alice: one more"]);
        assert_eq!(alice.got(&mut relay).len(), 1);
    }

    /// A member that said `/hello eaxchat/1` gets JSON events; the others
    /// keep plain lines.
    pub fn structured_events_for_who_asks<M: Mode>() {
        let mut relay = M::relay(ChatConfig::default());
        let mut alice = M::member(&mut relay, ALICE, "before bob");
        let mut bob = M::member(&mut relay, BOB, "/hello eaxchat/1");
        let got = bob.got(&mut relay);
        assert_eq!(
            got[0],
            r#"{"kind":"welcome","protocol":"eaxchat/1","name":"bob","room":"lobby","rooms":["lobby"],"members":true}"#
        );
        assert_eq!(
            got[1],
            r#"{"kind":"history","room":"lobby","count":1,"page":false,"first":true}"#
        );
        assert!(
            got[2].starts_with(
                r#"{"kind":"msg","room":"lobby","from":"alice","text":"before bob","ts":"#
            ) && got[2].ends_with(r#","history":true,"id":0}"#),
            "{got:?}"
        );
        assert_eq!(alice.got(&mut relay), ["* bob joined #lobby (2 here)"]);
        alice.say(&mut relay, "live \"quoted\"");
        let got = bob.got(&mut relay);
        assert!(
            got[0].starts_with(
                r#"{"kind":"msg","room":"lobby","from":"alice","text":"live \"quoted\"","#
            ) && got[0].ends_with(r#""history":false,"id":1}"#),
            "{got:?}"
        );
        alice.say(&mut relay, "/me nods");
        let got = bob.got(&mut relay);
        assert!(
            got[0].starts_with(r#"{"kind":"action","room":"lobby","from":"alice","text":"nods""#)
        );
        bob.say(&mut relay, "/who");
        assert_eq!(
            bob.got(&mut relay),
            [r#"{"kind":"who","room":"lobby","names":["alice","bob"],"unnamed":0}"#]
        );
        bob.say(&mut relay, "/bogus");
        assert_eq!(
            bob.got(&mut relay),
            [r#"{"kind":"error","room":null,"text":"error: unknown command /bogus (try /help)"}"#]
        );
        // Plain-text clients are untouched by another's /hello.
        bob.say(&mut relay, "plain for alice");
        assert_eq!(alice.got(&mut relay), ["bob: plain for alice"]);
    }
}
