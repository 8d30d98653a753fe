//! End-to-end rooms (#31) with the real `relay` in session mode: two
//! members' devices (eaxchat-e2e's `E2eRooms`, state in temporary
//! directories) make and join a room's group through the relay's Delivery
//! Service, talk, and keep talking after the relay is killed hard and
//! started again mid-epoch (its state kept in `MEMBERS.e2e`). While they
//! talk, nothing readable reaches the relay: its message log and its whole
//! writable memory (`/proc/PID/mem`) never hold the sentence said.
//!
//! Every wait is bounded; every relay is stopped by its PID (on drop).

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

use base64::Engine as _;
use eaxchat_e2e::{E2eRooms, Event};
use serde_json::Value;

use crate::rooms::{Client, start, str_of};
use crate::sessions::{Fixture, SessionRelay};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn data(event: &Value) -> Vec<u8> {
    B64.decode(str_of(&event["data"])).expect("base64")
}

/// Sends a group message for `room`.
fn mls(client: &mut Client, room: &str, bytes: &[u8]) {
    client.say(&format!("/mls {room} {}", B64.encode(bytes)));
}

/// The next `mls-ok` or `mls-refused` for `room`.
fn answer(client: &mut Client, room: &str) -> Value {
    client.wait_for("the relay's answer", |e| {
        (e["kind"] == "mls-ok" || e["kind"] == "mls-refused") && e["room"] == room
    })
}

/// The next application message in `room`, opened by `device`.
fn next_text(client: &mut Client, device: &mut E2eRooms, room: &str) -> (String, String) {
    loop {
        let event = client.wait_for("a group message", |e| {
            e["kind"] == "mls" && e["room"] == room
        });
        match device.process(room, &data(&event)) {
            Ok(Event::Application { from, text, .. }) => return (from, text),
            Ok(_) => continue,
            Err(e) => panic!("a group message did not open: {e}"),
        }
    }
}

/// Alice makes end-to-end room `dev` and adds bob: both at epoch 1.
fn make_room(
    relay: &SessionRelay,
    fixture: &Fixture,
    secrets: &[eaxchat_proto::session::StaticSecret],
) -> (Client, E2eRooms, Client, E2eRooms) {
    let mut alice_mls = E2eRooms::open(&fixture.path("alice-mls"), "alice").unwrap();
    let mut bob_mls = E2eRooms::open(&fixture.path("bob-mls"), "bob").unwrap();
    let (mut alice, _) = Client::connect(relay, &secrets[0]);
    let (mut bob, _) = Client::connect(relay, &secrets[1]);
    alice.say("/join dev --e2e");
    alice.wait_for("myrooms", |e| {
        e["kind"] == "myrooms" && e["e2e"][0] == "dev"
    });
    let info = alice_mls.create("dev").unwrap();
    mls(&mut alice, "dev", &info);
    assert_eq!(answer(&mut alice, "dev")["kind"], "mls-ok");
    for package in bob_mls.key_packages(2).unwrap() {
        bob.say(&format!("/keypackage {}", B64.encode(package)));
        bob.wait_for("kept", |e| {
            str_of(&e["text"]).starts_with("* KeyPackage kept")
        });
    }
    bob.join("dev");
    alice.wait_for("mls-add bob", |e| {
        e["kind"] == "mls-add" && e["name"] == "bob"
    });
    alice.say("/keypackages bob");
    let packages = alice.wait_for("bob's KeyPackages", |e| e["kind"] == "keypackages");
    let packages: Vec<Vec<u8>> = packages["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| B64.decode(p.as_str().unwrap()).unwrap())
        .collect();
    let (commit, welcome) = alice_mls.add("dev", &packages).unwrap();
    mls(&mut alice, "dev", &commit);
    assert_eq!(answer(&mut alice, "dev")["epoch"], 1);
    let info = alice_mls.accepted("dev").unwrap();
    mls(&mut alice, "dev", &welcome);
    mls(&mut alice, "dev", &info);
    let welcome = bob.wait_for("the Welcome", |e| e["kind"] == "mls" && e["id"].is_null());
    assert_eq!(
        bob_mls.join_welcome(&data(&welcome)).unwrap(),
        ("dev".into(), 1)
    );
    (alice, alice_mls, bob, bob_mls)
}

/// Whether `needle` is anywhere in the writable memory of process `pid`.
fn in_memory(pid: u32, needle: &[u8]) -> bool {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with("rw") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(start, 16).unwrap(),
            u64::from_str_radix(end, 16).unwrap(),
        );
        let mut region = vec![0; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut region).is_err() {
            continue;
        }
        if region.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    false
}

/// Whether `needle` is in any file under `dir`.
fn in_files(dir: &Path, needle: &[u8]) -> bool {
    fs::read_dir(dir).unwrap().flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            return in_files(&path, needle);
        }
        let bytes = fs::read(&path).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

#[test]
fn two_devices_talk_through_a_restart_and_the_relay_never_holds_the_text() {
    let (fixture, secrets) = Fixture::new(&["alice", "bob"]);
    let log = fixture.path("log");
    let log_arg = log.to_str().unwrap().to_owned();
    let relay = start(&fixture, &["--log", &log_arg]);
    let (mut alice, mut alice_mls, mut bob, mut bob_mls) = make_room(&relay, &fixture, &secrets);
    let secret = format!("the vault opens at {}", std::process::id());
    mls(
        &mut alice,
        "dev",
        &alice_mls.encrypt("dev", &secret).unwrap(),
    );
    assert_eq!(
        next_text(&mut bob, &mut bob_mls, "dev"),
        ("alice".to_owned(), secret.clone())
    );
    // The scan sees the relay's memory: the members' names are there.
    assert!(
        in_memory(relay.process.pid(), b"alice"),
        "the scan read nothing"
    );
    assert!(
        !in_memory(relay.process.pid(), secret.as_bytes()),
        "the text is in the relay's memory"
    );
    // Killed hard mid-epoch and started again: the group goes on.
    relay.process.kill_hard();
    let relay = start(&fixture, &["--log", &log_arg]);
    let (mut alice, _) = Client::connect(&relay, &secrets[0]);
    let (mut bob, _) = Client::connect(&relay, &secrets[1]);
    // Rooms are remembered at most 100 ms late (`MEMBERS.rooms`): a hard
    // kill may lose the last joins, so each joins again.
    alice.join("dev");
    bob.join("dev");
    mls(
        &mut bob,
        "dev",
        &bob_mls.encrypt("dev", "still here").unwrap(),
    );
    assert_eq!(next_text(&mut alice, &mut alice_mls, "dev").1, "still here");
    // A commit after the restart is for the epoch the relay kept.
    let commit = alice_mls.remove("dev", "bob").unwrap();
    mls(&mut alice, "dev", &commit);
    assert_eq!(answer(&mut alice, "dev")["epoch"], 2);
    assert!(
        !in_files(&log, secret.as_bytes()),
        "the text is in the message log"
    );
    assert!(
        !in_files(&log, b"still here"),
        "the text is in the message log"
    );
    assert!(!in_memory(relay.process.pid(), b"still here"));
}
