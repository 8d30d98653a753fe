//! Several rooms per connection, driven without sockets: each room's
//! messages reach exactly its people, `/part` stops delivery at once,
//! `/in` carries the room on the wire, a member's rooms follow it to its
//! other devices and next connection, topics and `/rooms`, and history
//! paged by id to the room's first message, from memory or through the
//! caller's message log. Plain connections still live in one room.

use eaxchat_core::history::{Entry, EntryKind};
use eaxchat_core::relay::{ChatConfig, CloseReason, HistoryRequest, MAX_ROOMS_PER_CONN, Relay};
use eaxchat_core::rooms::RoomsConfig;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::events::{ParsedEvent, ParsedKind};

use crate::chat_layer::{ALICE, BOB, CAROL};
use crate::util::{KeyClient, Pipe, SessionClient, members_relay, sessions_relay};

fn relay(config: ChatConfig) -> Relay<Pipe> {
    members_relay(&[("alice", ALICE), ("bob", BOB), ("carol", CAROL)], config)
}

/// A member that said `/hello eaxchat/1`, its welcome and history read.
pub(crate) fn speaker(relay: &mut Relay<Pipe>, key: u8) -> KeyClient {
    let client = KeyClient::admit(relay, key);
    client.say(relay, "/hello eaxchat/1");
    client.got(relay);
    client
}

/// What `client` was sent, parsed.
pub(crate) fn events(relay: &mut Relay<Pipe>, client: KeyClient) -> Vec<ParsedEvent> {
    client
        .got(relay)
        .iter()
        .map(|line| ParsedEvent::parse(line.as_bytes()).unwrap_or_else(|| panic!("{line}")))
        .collect()
}

/// The `(room, text)` of each live message in `events`.
fn said(events: &[ParsedEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e.kind == ParsedKind::Message && !e.history)
        .map(|e| (e.room.clone().unwrap_or_default(), e.text.clone()))
        .collect()
}

fn pair(room: &str, text: &str) -> (String, String) {
    (room.to_owned(), text.to_owned())
}

#[test]
fn a_member_in_three_rooms_gets_exactly_each_rooms_messages() {
    let mut relay = relay(ChatConfig::quiet());
    let alice = speaker(&mut relay, ALICE);
    let bob = speaker(&mut relay, BOB);
    let carol = speaker(&mut relay, CAROL);
    for room in ["dev", "ops"] {
        alice.say(&mut relay, &format!("/join {room}"));
    }
    bob.say(&mut relay, "/join dev");
    carol.say(&mut relay, "/join ops");
    carol.say(&mut relay, "/part lobby");
    for who in [alice, bob, carol] {
        who.got(&mut relay);
    }
    bob.say(&mut relay, "/in lobby in the lobby");
    bob.say(&mut relay, "/in dev in dev");
    carol.say(&mut relay, "/in ops //slash in ops");
    // Plain text goes to the current room: carol's is ops.
    carol.say(&mut relay, "still ops");
    assert_eq!(
        said(&events(&mut relay, alice)),
        [
            pair("lobby", "in the lobby"),
            pair("dev", "in dev"),
            pair("ops", "/slash in ops"),
            pair("ops", "still ops"),
        ]
    );
    assert_eq!(said(&events(&mut relay, bob)), []);
    assert_eq!(said(&events(&mut relay, carol)), []);
    // And the rooms they are in, as each sees them.
    alice.say(&mut relay, "/rooms");
    let listed = events(&mut relay, alice);
    let ParsedKind::Rooms(rooms) = &listed[0].kind else {
        panic!("{listed:?}");
    };
    let mine: Vec<(&str, u64, bool)> = rooms
        .iter()
        .map(|r| (r.room.as_str(), r.count, r.joined))
        .collect();
    assert_eq!(
        mine,
        [("lobby", 2, true), ("dev", 2, true), ("ops", 2, true)]
    );
}

#[test]
fn part_stops_delivery_at_once_and_in_refuses_a_room_not_joined() {
    let mut relay = relay(ChatConfig::quiet());
    let alice = speaker(&mut relay, ALICE);
    let bob = speaker(&mut relay, BOB);
    alice.say(&mut relay, "/join dev");
    bob.say(&mut relay, "/join dev");
    alice.got(&mut relay);
    bob.got(&mut relay);
    alice.say(&mut relay, "/part dev");
    let got = events(&mut relay, alice);
    assert_eq!(got[0].kind, ParsedKind::Notice, "{got:?}");
    assert_eq!(got[1].kind, ParsedKind::MyRooms, "{got:?}");
    assert_eq!(got[1].rooms, ["lobby"]);
    assert_eq!(got[1].room.as_deref(), Some("lobby"));
    bob.say(&mut relay, "/in dev anyone?");
    bob.say(&mut relay, "/in lobby here");
    assert_eq!(said(&events(&mut relay, alice)), [pair("lobby", "here")]);
    alice.say(&mut relay, "/in dev back door");
    let got = events(&mut relay, alice);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, ParsedKind::Error);
    assert_eq!(got[0].room.as_deref(), Some("dev"));
    assert_eq!(got[0].text, "error: you are not in #dev; /join #dev");
    assert_eq!(said(&events(&mut relay, bob)), []);
    alice.say(&mut relay, "/part dev");
    assert_eq!(
        events(&mut relay, alice)[0].text,
        "error: you are not in #dev"
    );
    // With no room left, text is refused, not lost silently.
    alice.say(&mut relay, "/part");
    alice.got(&mut relay);
    alice.say(&mut relay, "into the void");
    let got = events(&mut relay, alice);
    assert!(
        got[0].text.starts_with("error: you are in no room"),
        "{got:?}"
    );
    assert_eq!(said(&events(&mut relay, bob)), []);
}

#[test]
fn a_plain_connection_still_lives_in_one_room() {
    let mut relay = relay(ChatConfig::quiet());
    let alice = speaker(&mut relay, ALICE);
    let bob = KeyClient::admit(&mut relay, BOB);
    bob.say(&mut relay, "/join dev");
    bob.got(&mut relay);
    assert_eq!(relay.rooms_of(bob.id), [&RoomName::new(b"dev").unwrap()]);
    alice.say(&mut relay, "/join dev");
    alice.got(&mut relay);
    alice.say(&mut relay, "/in lobby not for bob");
    alice.say(&mut relay, "/in dev for bob");
    assert_eq!(bob.got(&mut relay), ["alice: for bob"]);
}

#[test]
fn a_members_rooms_follow_it_to_its_other_devices_and_next_connection() {
    let mut relay = relay(ChatConfig::quiet());
    let first = speaker(&mut relay, ALICE);
    let second = speaker(&mut relay, ALICE);
    let bob = speaker(&mut relay, BOB);
    first.say(&mut relay, "/join dev");
    first.say(&mut relay, "/join ops");
    first.say(&mut relay, "/in dev");
    first.got(&mut relay);
    let followed = events(&mut relay, second);
    let last = followed.last().expect("a myrooms event");
    assert_eq!(last.kind, ParsedKind::MyRooms);
    assert_eq!(last.rooms, ["lobby", "dev", "ops"]);
    bob.say(&mut relay, "/join ops");
    bob.say(&mut relay, "/in ops to both devices");
    assert_eq!(
        said(&events(&mut relay, second)),
        [pair("ops", "to both devices")]
    );
    assert!(relay.take_member_rooms_changed());
    let kept: Vec<_> = relay
        .member_rooms()
        .into_iter()
        .filter(|(name, _, _)| name.as_str() == "alice")
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].1.as_ref().map(|r| r.as_str()), Some("dev"));
    // Both go; a new connection comes back in the same rooms, sending to
    // the same one, from the relay's memory.
    for id in [first.id, second.id] {
        relay.close(id, CloseReason::PeerClosed);
        relay.remove(id);
    }
    let third = KeyClient::admit(&mut relay, ALICE);
    third.say(&mut relay, "/hello eaxchat/1");
    let welcome = events(&mut relay, third);
    assert_eq!(
        welcome[0].kind,
        ParsedKind::Welcome {
            name: Some("alice".into()),
            members: true
        }
    );
    assert_eq!(welcome[0].rooms, ["lobby", "dev", "ops"]);
    assert_eq!(welcome[0].room.as_deref(), Some("dev"));
    bob.say(&mut relay, "/in ops welcome back");
    assert_eq!(
        said(&events(&mut relay, third)),
        [pair("ops", "welcome back")]
    );
    // A relay restarted with what the caller kept does the same.
    let mut restarted = self::relay(ChatConfig::quiet());
    restarted.restore_member_rooms(kept);
    let fourth = KeyClient::admit(&mut restarted, ALICE);
    fourth.say(&mut restarted, "/hello eaxchat/1");
    let welcome = events(&mut restarted, fourth);
    assert_eq!(welcome[0].rooms, ["lobby", "dev", "ops"]);
    // A part on one device is followed by the others, and remembered.
    third.say(&mut relay, "/part lobby");
    let kept = relay.member_rooms();
    assert_eq!(kept[0].0.as_str(), "alice");
    assert_eq!(
        kept[0].2.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        ["dev", "ops"]
    );
}

#[test]
fn two_sessions_of_one_member_share_its_rooms() {
    const LAPTOP: u8 = 11;
    let mut relay = sessions_relay(
        &[("alice", ALICE), ("alice", LAPTOP), ("bob", BOB)],
        Default::default(),
        ChatConfig::quiet(),
    );
    let mut phone = SessionClient::connect(&mut relay, ALICE);
    phone.say(&mut relay, "/hello eaxchat/1");
    phone.say(&mut relay, "/join dev");
    phone.got(&mut relay);
    let mut laptop = SessionClient::connect(&mut relay, LAPTOP);
    laptop.say(&mut relay, "/hello eaxchat/1");
    let got = laptop.got(&mut relay);
    let welcome = ParsedEvent::parse(got[0].as_bytes()).expect("welcome");
    assert_eq!(welcome.rooms, ["lobby", "dev"]);
    let mut bob = SessionClient::connect(&mut relay, BOB);
    bob.say(&mut relay, "/join dev");
    bob.say(&mut relay, "hi alice");
    let got = laptop.got(&mut relay);
    assert!(
        got.iter().any(|line| line.contains(r#""text":"hi alice""#)),
        "{got:?}"
    );
}

#[test]
fn topics_are_set_told_and_listed() {
    let mut relay = relay(ChatConfig::quiet());
    let alice = speaker(&mut relay, ALICE);
    let bob = speaker(&mut relay, BOB);
    alice.say(&mut relay, "/join dev");
    alice.say(&mut relay, "/topic release on friday");
    alice.got(&mut relay);
    bob.say(&mut relay, "/join dev");
    let got = events(&mut relay, bob);
    let topic = got
        .iter()
        .find(|e| e.kind == ParsedKind::Topic)
        .expect("the topic on joining");
    assert_eq!(
        (topic.from.as_deref(), topic.text.as_str()),
        (Some("alice"), "release on friday")
    );
    bob.say(&mut relay, "/in dev /topic release on monday");
    let got = events(&mut relay, alice);
    assert_eq!(got[0].kind, ParsedKind::Topic);
    assert_eq!(got[0].text, "release on monday");
    bob.got(&mut relay);
    bob.say(&mut relay, "/in dev /topic two\nlines");
    assert!(events(&mut relay, bob)[0].text.starts_with("error"));
    bob.say(&mut relay, "/rooms");
    let got = events(&mut relay, bob);
    let ParsedKind::Rooms(rooms) = &got[0].kind else {
        panic!("{got:?}");
    };
    let dev = rooms.iter().find(|r| r.room == "dev").expect("dev");
    assert_eq!(
        (dev.topic.as_str(), dev.mode.as_str()),
        ("release on monday", "relay")
    );
}

#[test]
fn a_connection_joins_at_most_its_share_of_rooms() {
    let mut relay = relay(ChatConfig::quiet());
    let alice = speaker(&mut relay, ALICE);
    for n in 1..MAX_ROOMS_PER_CONN {
        alice.say(&mut relay, &format!("/join r{n}"));
    }
    alice.got(&mut relay);
    alice.say(&mut relay, "/join onemore");
    let got = events(&mut relay, alice);
    assert_eq!(got[0].kind, ParsedKind::Error, "{got:?}");
    assert_eq!(relay.rooms_of(alice.id).len(), MAX_ROOMS_PER_CONN);
}

/// The ids of the messages of a `/history` answer, after its header.
fn page(events: &[ParsedEvent]) -> (Vec<u64>, bool) {
    let ParsedKind::HistoryStart { count, page, first } = events[0].kind else {
        panic!("{events:?}");
    };
    assert!(page);
    let ids: Vec<u64> = events[1..].iter().filter_map(|e| e.id).collect();
    assert_eq!(ids.len() as u64, count);
    (ids, first)
}

#[test]
fn history_pages_walk_back_to_the_first_message_without_gaps() {
    let mut relay = relay(ChatConfig {
        rooms: RoomsConfig {
            history_entries: 1000,
            ..RoomsConfig::default()
        },
        presence: false,
        ..ChatConfig::default()
    });
    let alice = speaker(&mut relay, ALICE);
    let bob = speaker(&mut relay, BOB);
    for n in 0..95 {
        alice.say(&mut relay, &format!("message {n}"));
    }
    // Live messages carry their ids.
    let live = events(&mut relay, bob);
    assert_eq!(live.last().and_then(|e| e.id), Some(94));
    let mut seen = Vec::new();
    let mut before = "95".to_owned();
    loop {
        bob.say(&mut relay, &format!("/history {before} 20"));
        let (ids, first) = page(&events(&mut relay, bob));
        seen.splice(0..0, ids.iter().copied());
        if first {
            break;
        }
        before = ids[0].to_string();
    }
    assert_eq!(seen, (0..95).collect::<Vec<u64>>());
    bob.say(&mut relay, "/history 0");
    assert_eq!(page(&events(&mut relay, bob)), (vec![], true));
}

#[test]
fn pages_older_than_the_history_are_read_by_the_caller() {
    let mut relay = relay(ChatConfig {
        rooms: RoomsConfig {
            history_entries: 10,
            ..RoomsConfig::default()
        },
        presence: false,
        log: true,
        ..ChatConfig::default()
    });
    relay.set_log_paging(true);
    let alice = speaker(&mut relay, ALICE);
    let bob = speaker(&mut relay, BOB);
    for n in 0..30 {
        alice.say(&mut relay, &format!("message {n}"));
    }
    bob.got(&mut relay);
    // Within the history: answered at once.
    bob.say(&mut relay, "/history 30 5");
    assert_eq!(
        page(&events(&mut relay, bob)).0,
        (25..30).collect::<Vec<_>>()
    );
    let mut requests = Vec::new();
    relay.take_history_requests(&mut requests);
    assert!(requests.is_empty());
    // Past it: asked of the caller, which answers from its log.
    bob.say(&mut relay, "/history 12 5");
    assert_eq!(bob.got(&mut relay), Vec::<String>::new());
    relay.take_history_requests(&mut requests);
    let lobby = RoomName::new(b"lobby").unwrap();
    assert_eq!(
        requests,
        [HistoryRequest {
            conn: bob.id,
            serial: requests[0].serial,
            room: lobby,
            before: 12,
            limit: 5,
        }]
    );
    let entry = |n: u64| {
        (
            n,
            Entry {
                sender: None,
                text: format!("message {n}").into_bytes().into(),
                ts_millis: 0,
                kind: EntryKind::Message,
            },
        )
    };
    // The caller's answer is bounded by the request, whatever it gives.
    relay.answer_history(&requests[0], (5..14).map(entry).collect(), false);
    let got = events(&mut relay, bob);
    assert_eq!(page(&got).0, [7, 8, 9, 10, 11]);
    assert_eq!(got[1].text, "message 7");
    // Gone before the answer: dropped.
    relay.close(bob.id, CloseReason::PeerClosed);
    relay.remove(bob.id);
    relay.answer_history(&requests[0], vec![entry(1)], true);
}

#[test]
fn nothing_is_dropped_without_a_word() {
    let mut relay = relay(ChatConfig::quiet());
    let alice = speaker(&mut relay, ALICE);
    alice.say(&mut relay, &format!("/in lobby {}", "x".repeat(5000)));
    let got = events(&mut relay, alice);
    assert_eq!(got[0].kind, ParsedKind::Error, "{got:?}");
    alice.say(&mut relay, "/part");
    alice.got(&mut relay);
    alice.say(&mut relay, "/me waves");
    let got = events(&mut relay, alice);
    assert!(
        got[0].text.starts_with("error: you are in no room"),
        "{got:?}"
    );
}
