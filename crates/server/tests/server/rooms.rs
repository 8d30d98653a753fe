//! Rooms (#28) with the real `relay` in session mode, spoken to by
//! `eaxchat/1` session clients ([`crate::sessions::SessionConn`] after
//! `/hello eaxchat/1`): a member in three rooms hears exactly their
//! messages; `/part` stops delivery at once; a reconnect, a second device
//! and a relay restart (`MEMBERS.rooms`) come back in the same rooms;
//! `/history` pages walk back through the message log to id 0, also after
//! a restart; and `/in` and `/part` of rooms one is not in are refused
//! with the connection still usable.
//!
//! Nothing here waits for silence: "never arrives" is proved by a marker
//! said after it, in the same sender's order, arriving with nothing
//! between. Every wait is bounded; every relay is stopped by its PID (on
//! drop).

use std::fs;
use std::time::Instant;

use eaxchat_proto::session::StaticSecret;
use eaxchat_test_support::WAIT;
use serde_json::Value;

use crate::sessions::{Fixture, SessionConn, SessionRelay};

/// A member's `eaxchat/1` connection (`e2e.rs` speaks through it too).
pub(crate) struct Client {
    conn: SessionConn,
}

impl Client {
    /// Connects as `secret`'s device and says `/hello eaxchat/1`; returns
    /// the client and its welcome.
    pub(crate) fn connect(relay: &SessionRelay, secret: &StaticSecret) -> (Client, Value) {
        let mut client = Client {
            conn: relay.connect(secret),
        };
        client.say("/hello eaxchat/1");
        let welcome = client.wait_for("a welcome", |e| e["kind"] == "welcome");
        (client, welcome)
    }

    pub(crate) fn say(&mut self, text: &str) {
        self.conn.send(text.as_bytes());
    }

    /// The next event; plain-text frames (before the hello) are skipped.
    pub(crate) fn event(&mut self) -> Value {
        loop {
            let frame = self.conn.recv();
            if let Ok(event) = serde_json::from_slice::<Value>(&frame) {
                return event;
            }
        }
    }

    /// The first event that `wanted` takes, skipping the others (bounded).
    pub(crate) fn wait_for(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no {what} within {WAIT:?}");
            let event = self.event();
            if wanted(&event) {
                return event;
            }
        }
    }

    /// `/join ROOM`, and its `myrooms` answer.
    pub(crate) fn join(&mut self, room: &str) -> Value {
        self.say(&format!("/join {room}"));
        self.wait_for("myrooms after /join", |e| {
            e["kind"] == "myrooms" && e["room"] == room
        })
    }

    /// The room messages (`(room, text)`) that arrive until `marker`,
    /// which is included.
    fn messages_until(&mut self, marker: &str) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no {marker:?} within {WAIT:?}");
            let event = self.event();
            if event["kind"] != "msg" || event["history"] == true {
                continue;
            }
            let (room, text) = (str_of(&event["room"]), str_of(&event["text"]));
            let done = text == marker;
            seen.push((room, text));
            if done {
                return seen;
            }
        }
    }
}

pub(crate) fn str_of(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn names(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|list| list.iter().map(str_of).collect())
        .unwrap_or_default()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(room, text)| ((*room).to_owned(), (*text).to_owned()))
        .collect()
}

/// A session relay with no flood control (the tests send fast) and
/// `extra`.
pub(crate) fn start(fixture: &Fixture, extra: &[&str]) -> SessionRelay {
    let mut args = vec!["--rate", "0"];
    args.extend_from_slice(extra);
    fixture.start(&args)
}

/// A member in three rooms hears exactly each room's messages, each with
/// its room; a member of one of them hears that one only.
#[test]
fn a_member_in_three_rooms_gets_exactly_their_messages() {
    let (fixture, secrets) = Fixture::new(&["alice", "bob", "carol"]);
    let relay = start(&fixture, &[]);
    let (mut alice, welcome) = Client::connect(&relay, &secrets[0]);
    assert_eq!(names(&welcome["rooms"]), ["lobby"], "{welcome}");
    let (mut bob, _) = Client::connect(&relay, &secrets[1]);
    let (mut carol, _) = Client::connect(&relay, &secrets[2]);
    let mine = alice.join("dev");
    assert_eq!(names(&mine["rooms"]), ["lobby", "dev"], "{mine}");
    let mine = alice.join("ops");
    assert_eq!(names(&mine["rooms"]), ["lobby", "dev", "ops"], "{mine}");
    for room in ["dev", "ops", "elsewhere"] {
        bob.join(room);
    }
    carol.join("dev");
    carol.say("/part lobby");
    carol.wait_for("myrooms after /part", |e| e["kind"] == "myrooms");

    for (room, text) in [
        ("lobby", "to lobby"),
        ("dev", "to dev"),
        ("elsewhere", "to elsewhere"),
        ("ops", "to ops"),
        ("dev", "to dev again"),
        ("lobby", "end"),
        ("dev", "end"),
    ] {
        bob.say(&format!("/in {room} {text}"));
    }
    assert_eq!(
        alice.messages_until("end"),
        pairs(&[
            ("lobby", "to lobby"),
            ("dev", "to dev"),
            ("ops", "to ops"),
            ("dev", "to dev again"),
            ("lobby", "end"),
        ])
    );
    assert_eq!(
        carol.messages_until("end"),
        pairs(&[("dev", "to dev"), ("dev", "to dev again"), ("dev", "end")])
    );
}

/// After `/part`'s answer, the next message said in that room never
/// arrives, while the rooms kept go on.
#[test]
fn part_stops_delivery_at_once() {
    let (fixture, secrets) = Fixture::new(&["alice", "bob"]);
    let relay = start(&fixture, &[]);
    let (mut alice, _) = Client::connect(&relay, &secrets[0]);
    let (mut bob, _) = Client::connect(&relay, &secrets[1]);
    alice.join("dev");
    bob.join("dev");
    bob.say("/in dev before the part");
    assert_eq!(
        alice.messages_until("before the part"),
        pairs(&[("dev", "before the part")])
    );
    alice.say("/part dev");
    let mine = alice.wait_for("myrooms after /part", |e| e["kind"] == "myrooms");
    assert_eq!(names(&mine["rooms"]), ["lobby"], "{mine}");
    assert_eq!(mine["room"], "lobby", "{mine}");
    bob.say("/in dev after the part");
    bob.say("/in lobby marker");
    assert_eq!(
        alice.messages_until("marker"),
        pairs(&[("lobby", "marker")])
    );
    // Plain text now goes to lobby, the room alice is left in.
    alice.say("plain text");
    assert_eq!(
        bob.messages_until("plain text"),
        pairs(&[("lobby", "plain text")])
    );
}

/// A member's rooms follow it: a reconnect and a second device come back
/// in them, a `/join` on one device takes the other along, and a restart
/// reads them back from `MEMBERS.rooms`.
#[test]
fn a_members_rooms_survive_reconnects_devices_and_restarts() {
    let (fixture, secrets) = Fixture::new(&["alice", "alice", "bob"]);
    let relay = start(&fixture, &[]);
    let (mut first, _) = Client::connect(&relay, &secrets[0]);
    first.join("dev");
    first.join("ops");
    first.say("/in dev");
    drop(first);

    let (mut first, welcome) = Client::connect(&relay, &secrets[0]);
    assert_eq!(
        names(&welcome["rooms"]),
        ["lobby", "dev", "ops"],
        "{welcome}"
    );
    assert_eq!(welcome["room"], "dev", "{welcome}");
    let (mut second, welcome) = Client::connect(&relay, &secrets[1]);
    assert_eq!(
        names(&welcome["rooms"]),
        ["lobby", "dev", "ops"],
        "{welcome}"
    );
    let (mut bob, _) = Client::connect(&relay, &secrets[2]);
    bob.join("ops");
    bob.say("/in ops to both devices");
    for device in [&mut first, &mut second] {
        assert_eq!(
            device.messages_until("to both devices"),
            pairs(&[("ops", "to both devices")])
        );
    }
    // A join on one device takes the other along.
    first.join("extra");
    let followed = second.wait_for("myrooms with extra", |e| {
        e["kind"] == "myrooms" && names(&e["rooms"]).contains(&"extra".to_owned())
    });
    assert_eq!(
        names(&followed["rooms"]),
        ["lobby", "dev", "ops", "extra"],
        "{followed}"
    );
    bob.join("extra");
    bob.say("/in extra followed");
    assert_eq!(
        second.messages_until("followed"),
        pairs(&[("extra", "followed")])
    );
    drop((first, second, bob));

    let (_, log) = relay.process.terminate();
    let rooms_file = fixture.path("members.txt.rooms");
    let text = fs::read_to_string(&rooms_file).unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(
        text.lines()
            .any(|line| line.starts_with("alice ") && line.ends_with("#lobby #dev #ops #extra")),
        "{text}"
    );
    let relay = start(&fixture, &[]);
    assert!(
        relay
            .process
            .log()
            .contains("the rooms of 2 members restored"),
        "{}",
        relay.process.log()
    );
    let (_, welcome) = Client::connect(&relay, &secrets[1]);
    assert_eq!(
        names(&welcome["rooms"]),
        ["lobby", "dev", "ops", "extra"],
        "{welcome}"
    );
}

/// `/history` pages of 20 walk back through the message log to id 0 with
/// no gap or duplicate, `first` on the last page only; again after a
/// restart, where new messages take the next ids.
#[test]
fn history_pages_walk_back_through_the_log() {
    let (fixture, secrets) = Fixture::new(&["alice", "bob"]);
    let log_dir = fixture.path("log");
    let state = fixture.path("state");
    let flags = [
        "--log",
        log_dir.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--history",
        "10",
    ];
    let relay = start(&fixture, &flags);
    let (mut alice, _) = Client::connect(&relay, &secrets[0]);
    let (mut bob, _) = Client::connect(&relay, &secrets[1]);
    alice.join("dev");
    bob.join("dev");
    for i in 0..95 {
        alice.say(&format!("/in dev m{i}"));
        if i % 10 == 0 {
            alice.say(&format!("/in lobby other {i}"));
        }
    }
    let last = bob.wait_for("m94", |e| e["kind"] == "msg" && e["text"] == "m94");
    assert_eq!(last["id"], 94, "{last}");
    assert_eq!(walk(&mut bob), expected(95));
    // A page memory holds is answered from it.
    bob.say("/in dev /history 95 5");
    let (ids, first) = page(&mut bob);
    assert_eq!(ids, expected(95)[90..]);
    assert!(!first);
    drop((alice, bob));

    let (_, log) = relay.process.terminate();
    assert!(!log.contains("unlike the message log"), "{log}");
    let relay = start(&fixture, &flags);
    // 95 in dev and 10 in lobby.
    assert!(
        relay
            .process
            .log()
            .contains("(105 messages indexed for /history)"),
        "{}",
        relay.process.log()
    );
    let (mut bob, welcome) = Client::connect(&relay, &secrets[1]);
    assert!(
        names(&welcome["rooms"]).contains(&"dev".to_owned()),
        "{welcome}"
    );
    assert_eq!(walk(&mut bob), expected(95));
    bob.say("/in dev m95");
    let (mut alice, _) = Client::connect(&relay, &secrets[0]);
    bob.say("/in dev m96");
    let said = alice.wait_for("m96", |e| e["kind"] == "msg" && e["text"] == "m96");
    assert_eq!(said["id"], 96, "{said}");
    assert_eq!(walk(&mut bob), expected(97));
    let log = relay.process.log();
    assert!(!log.contains("unlike the message log"), "{log}");
}

/// `(id, text)` of messages `m0`…`m{n-1}`.
fn expected(n: u64) -> Vec<(u64, String)> {
    (0..n).map(|i| (i, format!("m{i}"))).collect()
}

/// One `/history` answer: its messages and its `first`.
fn page(client: &mut Client) -> (Vec<(u64, String)>, bool) {
    let start = client.wait_for("a history page", |e| {
        e["kind"] == "history" && e["page"] == true
    });
    assert_eq!(start["room"], "dev", "{start}");
    let count = start["count"].as_u64().unwrap();
    let mut entries = Vec::new();
    for _ in 0..count {
        let event = client.event();
        assert_eq!(event["history"], true, "{event}");
        assert_eq!(event["room"], "dev", "{event}");
        entries.push((event["id"].as_u64().unwrap(), str_of(&event["text"])));
    }
    (entries, start["first"] == true)
}

/// Walks dev back in pages of 20 from the newest; every (id, text) seen,
/// oldest first.
fn walk(client: &mut Client) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    let mut before = 1_000_000;
    for _ in 0..20 {
        client.say(&format!("/in dev /history {before} 20"));
        let (entries, first) = page(client);
        assert!(entries.len() <= 20, "{entries:?}");
        assert!(
            entries.windows(2).all(|w| w[0].0 + 1 == w[1].0),
            "{entries:?}"
        );
        if first {
            assert_eq!(entries.first().map(|e| e.0), Some(0), "{entries:?}");
        } else {
            assert_eq!(entries.len(), 20, "only the last page is short");
        }
        before = entries.first().map_or(0, |e| e.0);
        seen.splice(0..0, entries);
        if first {
            return seen;
        }
    }
    panic!("no first page after 20 pages: {seen:?}");
}

/// `/in` a room one is not in and `/part` of one is not in get clear
/// errors, and the connection goes on as before.
#[test]
fn rooms_one_is_not_in_are_refused_clearly() {
    let (fixture, secrets) = Fixture::new(&["alice", "bob"]);
    let relay = start(&fixture, &[]);
    let (mut alice, _) = Client::connect(&relay, &secrets[0]);
    let (mut bob, _) = Client::connect(&relay, &secrets[1]);
    bob.join("dev");
    for (command, needle) in [
        ("/in dev hello", "you are not in"),
        ("/in nowhere hello", "you are not in"),
        ("/part dev", "dev"),
        ("/in bad/room hi", "error"),
    ] {
        alice.say(command);
        let error = alice.wait_for("an error", |e| e["kind"] == "error");
        let text = str_of(&error["text"]);
        assert!(text.contains(needle), "{command}: {error}");
        if command != "/in bad/room hi" {
            let room = command.split(' ').nth(1).unwrap();
            assert!(text.contains(room), "{command}: {error}");
        }
    }
    alice.say("still here");
    assert_eq!(
        bob.messages_until("still here"),
        pairs(&[("lobby", "still here")])
    );
    bob.say("/in dev only dev");
    bob.say("/in lobby marker");
    assert_eq!(
        alice.messages_until("marker"),
        pairs(&[("lobby", "marker")])
    );
}
