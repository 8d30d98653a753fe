//! Relays in one cluster are one chat: every message reaches every member
//! of its room on every relay, exactly once and in its sender's order;
//! `/who` and `/rooms` count everyone; private messages, rooms and members
//! work across relays; and relays under another cluster key read nothing.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use eaxchat_proto::key::Key;
use eaxchat_test_support::{self as util, RelayProcess, TestClient, WAIT, random_key};

use super::{
    Nats, cluster_key, named, recv_until, relay, stat, wait_for_who, wait_for_who_without,
};

#[test]
fn three_relays_are_one_chat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(None);
    let ckey = cluster_key(dir.path(), "cluster.key");
    let key = random_key();
    let relays: Vec<RelayProcess> = (0..3).map(|_| relay(&key, &nats, &ckey, &[])).collect();
    let names = ["a1", "a2", "b1", "b2", "c1", "c2"];
    let mut clients: Vec<TestClient> = names
        .iter()
        .enumerate()
        .map(|(i, name)| named(&relays[i / 2], name))
        .collect();
    // Every relay's /who names all six before anyone speaks.
    for i in [0, 2, 4] {
        let who = wait_for_who(&mut clients[i], &names);
        assert!(!who.contains("with no name"), "{who}");
    }
    const EACH: usize = 40;
    for round in 0..EACH {
        for (i, client) in clients.iter_mut().enumerate() {
            client.send(format!("{} says {round}", names[i]).as_bytes());
        }
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let mut next: HashMap<&str, usize> = HashMap::new();
        let mut got = 0;
        while got < EACH * (names.len() - 1) {
            let line = client
                .try_recv(WAIT)
                .unwrap_or_else(|| panic!("{} got {got} messages only", names[i]));
            let line = String::from_utf8_lossy(&line).into_owned();
            let Some((from, round)) = line.split_once(" says ") else {
                panic!("{}: unexpected {line:?}", names[i]);
            };
            let from = names.iter().find(|name| **name == from).expect("a sender");
            assert_ne!(*from, names[i], "its own message came back");
            let expected = next.entry(from).or_default();
            assert_eq!(
                round.parse::<usize>().ok(),
                Some(*expected),
                "{line} out of order"
            );
            *expected += 1;
            got += 1;
        }
        client.expect_silence(Duration::from_millis(300));
        assert!(next.values().all(|&n| n == EACH));
    }
    // /rooms counts the lobby's six on every relay.
    clients[3].send(b"/rooms");
    let rooms = recv_until(&mut clients[3], "/rooms reply", |line| {
        line.contains("lobby")
    });
    assert!(rooms.contains("#lobby (6)"), "{rooms}");
    for relay in relays {
        let (_, log) = relay.terminate();
        assert_eq!(stat(&log, "cluster_rejected"), 0, "{log}");
        assert_eq!(stat(&log, "cluster_replayed"), 0, "{log}");
    }
}

#[test]
fn a_private_message_reaches_another_relay_and_a_room_stays_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(None);
    let ckey = cluster_key(dir.path(), "cluster.key");
    let key = random_key();
    let (a, b) = (
        relay(&key, &nats, &ckey, &[]),
        relay(&key, &nats, &ckey, &[]),
    );
    let mut alice = named(&a, "alice");
    let mut bob = named(&b, "bob");
    wait_for_who(&mut alice, &["alice", "bob"]);
    alice.send(b"/msg bob across");
    let private = recv_until(&mut bob, "the private message", |line| {
        line.contains("across")
    });
    assert!(private.contains("alice"), "{private}");
    recv_until(&mut alice, "the /msg echo", |line| line.contains("across"));
    // A room of its own on b: alice, in the lobby on a, hears nothing of it.
    bob.send(b"/join #side");
    recv_until(&mut bob, "the /join reply", |line| line.contains("#side"));
    let mut carol = named(&a, "carol");
    carol.send(b"/join #side");
    recv_until(&mut carol, "the /join reply", |line| line.contains("#side"));
    wait_for_who(&mut carol, &["bob", "carol"]);
    // Relay a's subscription to the room can reach NATS a moment after
    // carol's `/who` names bob: what bob says before it is not a's to see.
    // Bob says it again until carol hears it (bounded).
    let deadline = Instant::now() + WAIT;
    let heard = loop {
        assert!(
            Instant::now() < deadline,
            "no side room message within {WAIT:?}"
        );
        bob.send(b"only for the side room");
        if let Some(line) = carol.try_recv(Duration::from_millis(500)) {
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.contains("only for") {
                break line;
            }
        }
    };
    assert_eq!(heard, "only for the side room");
    alice.expect_silence(Duration::from_millis(300));
}

#[test]
fn relays_under_other_cluster_keys_exchange_nothing_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(None);
    let key = random_key();
    let a = relay(&key, &nats, &cluster_key(dir.path(), "one.key"), &[]);
    let b = relay(&key, &nats, &cluster_key(dir.path(), "two.key"), &[]);
    let mut alice = named(&a, "alice");
    let mut bob = named(&b, "bob");
    alice.send(b"/who");
    std::thread::sleep(Duration::from_millis(1500));
    alice.send(b"for relay one only");
    bob.expect_silence(Duration::from_millis(500));
    bob.send(b"/who");
    let who = recv_until(&mut bob, "/who reply", |line| line.starts_with("* here in"));
    assert!(!who.contains("alice"), "{who}");
    let (_, log) = b.terminate();
    // a's heartbeats reached b on the shared state subject and were refused.
    assert!(stat(&log, "cluster_rejected") >= 1, "{log}");
    assert_eq!(stat(&log, "cluster_in"), 0, "{log}");
    drop(a);
}

/// `relay members add NAME --file FILE --static-keys`; returns the
/// member's key.
pub(super) fn add_member(file: &Path, name: &str) -> Key {
    let key_out = file.with_file_name(format!("{name}.key"));
    let output = Command::new(util::relay_binary())
        .args(["members", "add", name, "--file"])
        .arg(file)
        .arg("--key-out")
        .arg(&key_out)
        .arg("--static-keys")
        .output()
        .expect("run relay members add");
    assert!(output.status.success(), "{output:?}");
    let text = std::fs::read_to_string(&key_out).expect("the key file");
    let hex = text
        .lines()
        .find(|line| !line.starts_with('#') && !line.trim().is_empty())
        .expect("a key line");
    Key::from_hex(hex.trim()).expect("a hex key")
}

#[test]
fn members_are_stamped_across_relays_and_removal_reaches_each_relay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(None);
    let ckey = cluster_key(dir.path(), "cluster.key");
    // Each relay has its own copy of the same members file.
    let (file_a, file_b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    let alice_key = add_member(&file_a, "alice");
    let bob_key = add_member(&file_a, "bob");
    std::fs::copy(&file_a, &file_b).expect("copy the members file");
    let start = |file: &Path| {
        let ckey = ckey.display().to_string();
        let nats_url = nats.url();
        let flags = [
            "--cluster",
            &nats_url,
            "--cluster-key-file",
            &ckey,
            "--rate",
            "0",
        ];
        let mut relay = RelayProcess::start_members(file, &flags);
        relay.wait_for_log("cluster: connected to NATS");
        relay
    };
    let (mut a, mut b) = (start(&file_a), start(&file_b));
    let mut alice = TestClient::connect(a.addr, &alice_key);
    alice.send(b"");
    a.wait_for_log("identified as alice");
    let mut bob = TestClient::connect(b.addr, &bob_key);
    bob.send(b"");
    b.wait_for_log("identified as bob");
    wait_for_who(&mut alice, &["alice", "bob"]);
    // A message from alice reaches bob on the other relay under bob's key,
    // stamped by alice's relay; what she typed cannot change the name.
    alice.send(b"bob: I am bob");
    let heard = recv_until(&mut bob, "alice's message", |line| {
        line.contains("I am bob")
    });
    assert_eq!(heard, "alice: bob: I am bob");
    bob.send(b"/msg alice psst");
    let private = recv_until(&mut alice, "bob's private message", |line| {
        line.contains("psst")
    });
    assert!(private.contains("bob"), "{private}");
    // Removed on a only: alice is cut off there; b still knows her key.
    let output = Command::new(util::relay_binary())
        .args(["members", "remove", "alice", "--file"])
        .arg(&file_a)
        .output()
        .expect("run relay members remove");
    assert!(output.status.success(), "{output:?}");
    a.wait_for_log("member removed from the members file");
    assert!(alice.closed_within(WAIT));
    let who = wait_for_who_without(&mut bob, "alice");
    assert!(who.contains("bob"), "{who}");
}
