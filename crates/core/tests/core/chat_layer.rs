//! The chat layer driven without sockets: rooms, presence, every command
//! and its bad arguments, history on arrival, flood control, structured
//! events and the records for the message log, in members mode and with a
//! shared key.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use eaxchat_core::flood::Rate;
use eaxchat_core::history::EntryKind;
use eaxchat_core::members::Members;
use eaxchat_core::record::Record;
use eaxchat_core::relay::{ChatConfig, CloseReason, ConnId, Limits, Relay};
use eaxchat_core::rooms::RoomsConfig;
use eaxchat_core::roster::Roster;
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::key::Key;
use eaxchat_proto::nonce::Nonces;

#[derive(Debug, Default)]
struct Pipe {
    received: Vec<u8>,
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.received.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const ALICE: u8 = 1;
const BOB: u8 = 2;
const CAROL: u8 = 3;
const SHARED: u8 = 9;

fn key(byte: u8) -> Key {
    Key::from_bytes(&[byte; 16]).expect("a 16-byte key")
}

fn members_relay(config: ChatConfig) -> Relay<Pipe> {
    let text: String = [("alice", ALICE), ("bob", BOB), ("carol", CAROL)]
        .iter()
        .map(|(name, byte)| format!("{name} {}\n", key(*byte).to_hex()))
        .collect();
    let members = Members::parse(text.as_bytes(), Path::new("members.txt")).expect("members");
    let roster = Roster::with_nonces(&members, Nonces::from_seed([3; 32]));
    let mut relay =
        Relay::with_members(roster, Limits::default(), Instant::now(), SystemTime::now());
    relay.set_chat(config);
    relay
}

fn shared_relay(config: ChatConfig) -> Relay<Pipe> {
    let mut relay = Relay::new(
        Cipher::with_nonce_seed(&key(SHARED), [4; 32]),
        Limits::default(),
        Instant::now(),
        SystemTime::now(),
    );
    relay.set_chat(config);
    relay
}

fn seal(byte: u8, text: &[u8]) -> Vec<u8> {
    let mut line = BytesMut::new();
    Cipher::new(&key(byte))
        .expect("cipher")
        .seal_into(text, &mut line);
    line.to_vec()
}

/// One person: a connection and the key it reads with.
#[derive(Clone, Copy)]
struct Person {
    id: ConnId,
    key: u8,
}

impl Person {
    fn say(self, relay: &mut Relay<Pipe>, text: &str) {
        relay.receive(self.id, &seal(self.key, text.as_bytes()));
    }

    /// Everything written to it since the last call, opened.
    fn got(self, relay: &mut Relay<Pipe>) -> Vec<String> {
        while let Some(other) = relay.next_waiting() {
            relay.flush(other);
        }
        let mut cipher = Cipher::new(&key(self.key)).expect("cipher");
        let received = std::mem::take(&mut relay.io_mut(self.id).expect("open").received);
        received
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| String::from_utf8_lossy(cipher.open(line).expect("opens")).into_owned())
            .collect()
    }
}

/// Admits a member and identifies it with `first` (empty: only
/// identifies).
fn member(relay: &mut Relay<Pipe>, key: u8, first: &str) -> Person {
    let person = Person {
        id: relay.admit(Pipe::default()).expect("admitted"),
        key,
    };
    person.say(relay, first);
    person
}

fn guest(relay: &mut Relay<Pipe>) -> Person {
    Person {
        id: relay.admit(Pipe::default()).expect("admitted"),
        key: SHARED,
    }
}

#[test]
fn members_are_announced_and_rooms_are_separate() {
    let mut relay = members_relay(ChatConfig::default());
    let alice = member(&mut relay, ALICE, "");
    assert_eq!(alice.got(&mut relay), Vec::<String>::new());
    let bob = member(&mut relay, BOB, "");
    assert_eq!(alice.got(&mut relay), ["* bob joined #lobby (2 here)"]);
    assert_eq!(bob.got(&mut relay), Vec::<String>::new());

    bob.say(&mut relay, "/join Dev");
    assert_eq!(alice.got(&mut relay), ["* bob left #lobby (1 here)"]);
    assert_eq!(bob.got(&mut relay), ["* bob joined #dev (1 here)"]);
    bob.say(&mut relay, "only for dev");
    alice.say(&mut relay, "only for the lobby");
    assert_eq!(alice.got(&mut relay), Vec::<String>::new());
    assert_eq!(bob.got(&mut relay), Vec::<String>::new());

    let carol = member(&mut relay, CAROL, "/join dev");
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
    assert_eq!(alice.got(&mut relay), Vec::<String>::new());

    relay.close(carol.id, CloseReason::PeerClosed);
    relay.remove(carol.id);
    assert_eq!(bob.got(&mut relay), ["* carol left #dev (1 here)"]);
}

#[test]
fn every_command_replies_to_its_sender_only() {
    let mut relay = members_relay(ChatConfig::default());
    let alice = member(&mut relay, ALICE, "");
    let bob = member(&mut relay, BOB, "");
    let carol = member(&mut relay, CAROL, "/join dev");
    for person in [alice, bob, carol] {
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
    assert_eq!(bob.got(&mut relay), Vec::<String>::new());
    alice.say(&mut relay, "/help");
    let help = alice.got(&mut relay);
    assert_eq!(help.len(), 1);
    for usage in ["/join ROOM", "/msg NAME TEXT", "/quit", "/hello eaxchat/1"] {
        assert!(help[0].contains(usage), "{help:?}");
    }
    alice.say(&mut relay, "//etc/hosts is a path");
    assert_eq!(bob.got(&mut relay), ["alice: /etc/hosts is a path"]);
    // Nothing but the literal message reached anyone else.
    assert_eq!(carol.got(&mut relay), Vec::<String>::new());

    bob.say(&mut relay, "/quit");
    assert_eq!(
        relay.peer(bob.id).and_then(|p| p.closing()),
        Some(CloseReason::Quit)
    );
    relay.remove(bob.id);
    assert_eq!(alice.got(&mut relay), ["* bob left #lobby (1 here)"]);
    assert_eq!(relay.stats().commands, 7);
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
        ("/join", "error: /join needs an argument: /join ROOM"),
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
    let mut relay = members_relay(ChatConfig {
        rate: Rate::new(1.0, 3),
        ..ChatConfig::default()
    });
    let start = Instant::now();
    relay.set_now(start);
    let alice = member(&mut relay, ALICE, "");
    let bob = member(&mut relay, BOB, "");
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
    assert!(relay.peer(alice.id).and_then(|p| p.closing()).is_none());
    // A second later alice has one token again, and is warned afresh when
    // she floods again.
    relay.set_now(start + Duration::from_secs(1));
    alice.say(&mut relay, "one more");
    alice.say(&mut relay, "and another");
    assert_eq!(bob.got(&mut relay), ["alice: one more"]);
    assert_eq!(alice.got(&mut relay).len(), 1);
}

#[test]
fn structured_events_for_who_asks() {
    let mut relay = members_relay(ChatConfig::default());
    let alice = member(&mut relay, ALICE, "before bob");
    let bob = member(&mut relay, BOB, "/hello eaxchat/1");
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
    alice.say(&mut relay, "live \"quoted\"");
    let got = bob.got(&mut relay);
    assert!(
        got[0].starts_with(
            r#"{"kind":"msg","room":"lobby","from":"alice","text":"live \"quoted\"","#
        ) && got[0].ends_with(r#""history":false}"#),
        "{got:?}"
    );
    alice.say(&mut relay, "/me nods");
    let got = bob.got(&mut relay);
    assert!(got[0].starts_with(r#"{"kind":"action","room":"lobby","from":"alice","text":"nods""#));
    bob.say(&mut relay, "/who");
    assert_eq!(
        bob.got(&mut relay),
        [r#"{"kind":"who","room":"lobby","names":["alice","bob"],"unnamed":0}"#]
    );
    bob.say(&mut relay, "/bogus");
    assert_eq!(
        bob.got(&mut relay),
        [r#"{"kind":"error","text":"error: unknown command /bogus (try /help)"}"#]
    );
    // Plain-text clients are untouched by another's /hello.
    bob.say(&mut relay, "plain for alice");
    assert_eq!(alice.got(&mut relay), ["bob: plain for alice"]);
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
    let seed = Person {
        id: relay.admit(Pipe::default()).expect("admitted"),
        key: BOB,
    };
    let frame = seal(BOB, b"hi from the notebook");
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
