//! A static-key members relay (the deprecated members mode) over real
//! sockets: `relay --members FILE` with members added (`relay members add
//! --static-keys`) and removed by `relay members`, reloads on a file change
//! and on SIGHUP, and the permissions warning. Session relays, the
//! default, are `sessions`' and `members_reload`'s.

use eaxchat_test_support as util;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use eaxchat_proto::key::Key;
use util::add_static_member as add;
use util::{RelayProcess, TestClient};

/// `relay members remove NAME --file FILE` (bounded).
fn remove(file: &Path, name: &str) {
    let dir = file.parent().unwrap();
    let file = file.to_str().unwrap();
    util::run_relay(dir, &["members", "remove", name, "--file", file]).ok("members remove");
}

/// Connects as a member, identifies with an empty frame, and waits
/// (bounded) until the relay logs the `count`th identification.
fn member(relay: &mut RelayProcess, key: &Key, count: usize) -> TestClient {
    let mut client = TestClient::connect(relay.addr, key);
    client.send(b"");
    relay.wait_for_log_count("identified as", count);
    client
}

/// Waits (bounded) until `alice` and `bob` reach each other: both
/// identified.
fn chat(alice: &mut TestClient, bob: &mut TestClient) {
    alice.send(b"bob: I am bob");
    assert_eq!(bob.recv(), b"alice: bob: I am bob");
    bob.send(b"hi");
    assert_eq!(alice.recv(), b"bob: hi");
}

/// Impersonation fails, a removed member is cut off at once and refused
/// on reconnect, and the others go on chatting.
#[test]
fn removal_by_file_change_cuts_a_member_off() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let file = dir.join("members.txt");
    let alice_key = add(&file, "alice");
    let bob_key = add(&file, "bob");
    let carol_key = add(&file, "carol");
    let mut relay = RelayProcess::start_members(&file, &[]);
    assert!(
        relay.log().contains("members mode: 3 members"),
        "{}",
        relay.log()
    );
    let mut alice = member(&mut relay, &alice_key, 1);
    let mut bob = member(&mut relay, &bob_key, 2);
    let mut carol = member(&mut relay, &carol_key, 3);
    chat(&mut alice, &mut bob);
    assert_eq!(carol.recv(), b"alice: bob: I am bob");
    assert_eq!(carol.recv(), b"bob: hi");
    let mut stranger = TestClient::connect(relay.addr, &util::random_key());
    stranger.send(b"hello");
    assert!(stranger.closed_within(util::WAIT));

    remove(&file, "bob");
    assert!(bob.closed_within(util::WAIT), "bob cut off");
    relay.wait_for_log("removed bob");
    relay.wait_for_log("member removed from the members file");
    let mut again = TestClient::connect(relay.addr, &bob_key);
    again.send(b"back");
    assert!(again.closed_within(util::WAIT), "bob refused");
    alice.send(b"still here");
    assert_eq!(carol.recv(), b"alice: still here");
    let (_, log) = relay.terminate();
    assert!(log.contains("members_removed=1"), "{log}");
    assert!(!log.contains(&bob_key.to_hex()), "no key in the log");
}

/// SIGHUP rereads the file: a changed key cuts its member off; a malformed
/// file is refused and the members are kept.
#[test]
fn sighup_reloads_and_a_malformed_file_keeps_the_members() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let file = dir.join("members.txt");
    let alice_key = add(&file, "alice");
    let bob_key = add(&file, "bob");
    let mut relay = RelayProcess::start_members(&file, &[]);
    let mut alice = member(&mut relay, &alice_key, 1);
    let mut bob = member(&mut relay, &bob_key, 2);
    chat(&mut alice, &mut bob);

    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{good}this is not a member line\n")).unwrap();
    relay.hang_up();
    relay.wait_for_log("not reloaded (SIGHUP), keeping the 2 members");
    chat(&mut alice, &mut bob);

    let new_bob = Key::generate().unwrap();
    let rekeyed = good.replace(&bob_key.to_hex(), &new_bob.to_hex());
    std::fs::write(&file, rekeyed).unwrap();
    relay.hang_up();
    assert!(bob.closed_within(util::WAIT), "old bob cut off");
    relay.wait_for_log("new key bob");
    let mut bob = member(&mut relay, &new_bob, 3);
    chat(&mut alice, &mut bob);
    relay.terminate();
}

/// A members file readable by others is warned about, and `--members`
/// with a shared key is a usage error.
#[test]
fn permissions_are_checked_and_a_shared_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let file = dir.join("members.txt");
    add(&file, "alice");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let relay = RelayProcess::start_members(&file, &[]);
    assert!(
        relay.log().contains("readable by group or others"),
        "{}",
        relay.log()
    );
    relay.terminate();
    let run = util::run_relay(
        dir,
        &[
            "--listen",
            "127.0.0.1:0",
            "--members",
            file.to_str().unwrap(),
            "--key-hex",
            "000102030405060708090a0b0c0d0e0f",
        ],
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("give no shared key"), "{}", run.stderr);
    assert!(!dir.join("relay.key").exists());
}
