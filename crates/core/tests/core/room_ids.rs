//! Message ids, driven without sockets: a room forgotten and made again
//! goes on numbering where it stopped (with or without the message log),
//! and the history read back from the log keeps the ids its records carry,
//! whatever records are missing between them, so new messages go on after
//! the last id given.

use eaxchat_core::history::EntryKind;
use eaxchat_core::record::Record;
use eaxchat_core::relay::{ChatConfig, Relay};
use eaxchat_core::rooms::RoomsConfig;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::events::{ParsedEvent, ParsedKind};

use crate::chat_layer::{ALICE, BOB, CAROL};
use crate::rooms::{events, speaker};
use crate::util::{Pipe, members_relay};

fn relay(history_entries: usize, log: bool) -> Relay<Pipe> {
    members_relay(
        &[("alice", ALICE), ("bob", BOB), ("carol", CAROL)],
        ChatConfig {
            rooms: RoomsConfig {
                history_entries,
                ..RoomsConfig::default()
            },
            presence: false,
            log,
            ..ChatConfig::default()
        },
    )
}

/// `(id, text, history)` of each message in `events`.
fn messages(events: &[ParsedEvent]) -> Vec<(Option<u64>, String, bool)> {
    events
        .iter()
        .filter(|e| e.kind == ParsedKind::Message)
        .map(|e| (e.id, e.text.clone(), e.history))
        .collect()
}

/// The review's finding, in memory-only mode: a room forgotten (emptied
/// with no history kept) and made again numbered from 0 again, so an id a
/// client had seen named another message.
#[test]
fn a_forgotten_room_goes_on_numbering_without_a_log() {
    let mut relay = relay(0, false);
    let (alice, bob) = (speaker(&mut relay, ALICE), speaker(&mut relay, BOB));
    for client in [alice, bob] {
        client.say(&mut relay, "/join tmp");
    }
    for n in 0..3 {
        alice.say(&mut relay, &format!("/in tmp m{n}"));
    }
    let ids: Vec<Option<u64>> = messages(&events(&mut relay, bob))
        .into_iter()
        .map(|(id, ..)| id)
        .collect();
    assert_eq!(ids, [Some(0), Some(1), Some(2)]);
    for client in [alice, bob] {
        client.say(&mut relay, "/part tmp");
    }
    let tmp = RoomName::new(b"tmp").expect("a room");
    assert_eq!(relay.rooms().find(&tmp), None, "forgotten");
    for client in [alice, bob] {
        client.say(&mut relay, "/join tmp");
    }
    bob.got(&mut relay);
    alice.say(&mut relay, "/in tmp m3");
    let got = messages(&events(&mut relay, bob));
    assert_eq!(got, [(Some(3), "m3".to_owned(), false)]);
}

fn record(room: &str, id: Option<u64>, text: &str) -> Record {
    Record::Message {
        room: RoomName::new(room.as_bytes()).expect("a room"),
        sender: None,
        text: text.as_bytes().into(),
        ts_millis: 0,
        kind: EntryKind::Message,
        id,
    }
}

/// Records read back from the log keep their ids: 7 and 8 were dropped
/// or deleted, so memory holds 9 on (the log pages the rest), and the next
/// message is 10, logged with its id.
#[test]
fn history_from_the_log_keeps_the_ids_its_records_carry() {
    let mut relay = relay(100, true);
    let records = [
        record("dev", Some(5), "five"),
        record("dev", Some(6), "six"),
        record("dev", Some(9), "nine"),
    ];
    relay.restore_history(&records);
    let dev = RoomName::new(b"dev").expect("a room");
    let room = relay.rooms().find(&dev).expect("restored");
    let room = relay.rooms().get(room).expect("restored");
    assert_eq!((room.first_kept(), room.said()), (9, 10));
    let (alice, bob) = (speaker(&mut relay, ALICE), speaker(&mut relay, BOB));
    alice.say(&mut relay, "/join dev");
    bob.say(&mut relay, "/join dev");
    let burst = messages(&events(&mut relay, bob));
    assert_eq!(burst, [(Some(9), "nine".to_owned(), true)]);
    alice.say(&mut relay, "/in dev ten");
    let got = messages(&events(&mut relay, bob));
    assert_eq!(got, [(Some(10), "ten".to_owned(), false)]);
    let mut logged = Vec::new();
    relay.take_log_records(&mut logged);
    let ids: Vec<Option<u64>> = logged
        .iter()
        .filter(|r| matches!(r, Record::Message { .. }))
        .map(Record::id)
        .collect();
    assert_eq!(ids, [Some(10)]);
}
