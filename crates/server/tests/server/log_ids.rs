//! Message ids and the message log with the real `relay`: an id a client
//! saw live names the same message in a `/history` page after the relay
//! restarts, though the oldest log segments were deleted meanwhile
//! (`--log-max-bytes`), and new messages go on from the last id said.
//!
//! Every wait is bounded; every relay is stopped by its PID (on drop).

use serde_json::Value;

use crate::rooms::{Client, start, str_of};
use crate::sessions::Fixture;

/// One `/history` answer in `room`: its `(id, text)` and its `first`.
fn page(client: &mut Client, room: &str) -> (Vec<(u64, String)>, bool) {
    let start = client.wait_for("a history page", |e| {
        e["kind"] == "history" && e["page"] == true
    });
    assert_eq!(start["room"], room, "{start}");
    let count = start["count"].as_u64().unwrap_or(0);
    let mut entries = Vec::new();
    for _ in 0..count {
        let event = client.event();
        assert_eq!(event["history"], true, "{event}");
        entries.push((
            event["id"].as_u64().unwrap_or(u64::MAX),
            str_of(&event["text"]),
        ));
    }
    (entries, start["first"] == true)
}

/// Walks `room` back in pages of 50 from the newest: every `(id, text)`
/// the relay still has, oldest first.
fn walk(client: &mut Client, room: &str) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    let mut before = u64::MAX / 2;
    for _ in 0..40 {
        client.say(&format!("/in {room} /history {before} 50"));
        let (entries, first) = page(client, room);
        before = entries.first().map_or(0, |e| e.0);
        seen.splice(0..0, entries);
        if first || before == 0 {
            return seen;
        }
    }
    panic!("no first page after 40 pages: {seen:?}");
}

/// The review's finding: ids were recounted from what the log still held
/// at start, so once old segments were deleted an id seen live named
/// another message in a later page, and new messages took ids already
/// given.
#[test]
fn ids_seen_live_survive_deleted_segments_and_a_restart() {
    let (fixture, secrets) = Fixture::new(&["alice", "bob"]);
    let log_dir = fixture.path("log");
    let state = fixture.path("state");
    let flags = [
        "--log",
        log_dir.to_str().unwrap_or_default(),
        "--state-dir",
        state.to_str().unwrap_or_default(),
        "--log-max-bytes",
        "16384",
        "--history",
        "10",
    ];
    let relay = start(&fixture, &flags);
    let (mut alice, _) = Client::connect(&relay, &secrets[0]);
    let (mut bob, _) = Client::connect(&relay, &secrets[1]);
    alice.join("dev");
    bob.join("dev");
    let said = 400;
    let mut live = Vec::new();
    for i in 0..said {
        alice.say(&format!("/in dev m{i}"));
        let event: Value = bob.wait_for("a message", |e| e["kind"] == "msg");
        live.push((
            event["id"].as_u64().unwrap_or(u64::MAX),
            str_of(&event["text"]),
        ));
    }
    let expected: Vec<(u64, String)> = (0..said).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(live, expected, "ids live count from 0");
    let before_restart = walk(&mut bob, "dev");
    assert!(before_restart[0].0 > 0, "old segments were deleted");
    drop((alice, bob));
    let (status, _) = relay.process.terminate();
    assert!(status.success());

    let relay = start(&fixture, &flags);
    let (mut bob, welcome) = Client::connect(&relay, &secrets[1]);
    assert!(
        welcome["rooms"].to_string().contains("\"dev\""),
        "{welcome}"
    );
    let (mut alice, _) = Client::connect(&relay, &secrets[0]);
    let after = walk(&mut bob, "dev");
    assert_eq!(after, before_restart, "the same ids name the same messages");
    let oldest = after[0].0 as usize;
    assert_eq!(
        after,
        expected[oldest..],
        "each id names the message said with it"
    );
    alice.say("/in dev after the restart");
    let event = bob.wait_for("the new message", |e| {
        e["kind"] == "msg" && e["text"] == "after the restart"
    });
    assert_eq!(event["id"], said, "{event}");
}
