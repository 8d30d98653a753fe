//! End-to-end rooms with the real `relay` in session mode and two `chat`
//! processes in pipe mode, each with its own identity and MLS device:
//! alice makes an end-to-end room, bob joins and is added by alice's
//! client, they talk, bob leaves and alice's client commits his removal,
//! and the relay's message log (read back with `relay log`) holds none of
//! what they said. With alice offline, bob's `chat` joins the group by
//! itself (External Commit). Every wait is bounded; every process is
//! stopped by its PID (on drop).

use eaxchat_test_support as util;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use eaxchat_proto::session::identity_file::generate_identity;
use util::{RelayProcess, run_relay};

use super::process::ChatProcess;

/// A members file of session members `names` (identities `NAME.identity`
/// in `dir`).
fn members_file(dir: &Path, names: &[&str]) -> String {
    let mut text = String::from("# session members\n");
    for name in names {
        let secret = generate_identity(&dir.join(format!("{name}.identity"))).unwrap();
        text.push_str(&format!("{name} {}\n", secret.public_key()));
    }
    let file = dir.join("members.txt");
    fs::write(&file, text).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    file.to_str().unwrap().to_owned()
}

/// The relay's public key from its start-up line.
fn relay_key(log: &str) -> String {
    log.lines()
        .find_map(|line| line.split("relay identity x25519:").nth(1))
        .map(|rest| format!("x25519:{rest}"))
        .and_then(|rest| rest.split(' ').next().map(str::to_owned))
        .unwrap_or_else(|| panic!("no relay identity line:\n{log}"))
}

/// `chat` in pipe mode as `name`.
fn chat(dir: &Path, relay: &RelayProcess, key: &str, name: &str) -> ChatProcess {
    let identity = dir.join(format!("{name}.identity"));
    let known = dir.join(format!("{name}.known_relays"));
    let addr = relay.addr.to_string();
    ChatProcess::start_args(&[
        "--connect",
        &addr,
        "--key-file",
        identity.to_str().unwrap(),
        "--known-relays",
        known.to_str().unwrap(),
        "--relay-key",
        key,
    ])
}

/// Two members talk in an end-to-end room through the real relay; one
/// leaves and is removed from the group; the relay's log holds only
/// ciphertext.
#[test]
fn two_chats_talk_end_to_end_and_the_log_holds_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let members = members_file(dir.path(), &["alice", "bob"]);
    let identity = dir.path().join("relay.identity");
    let state = dir.path().join("state");
    let log_dir = dir.path().join("log");
    let relay = RelayProcess::start_members(
        Path::new(&members),
        &[
            "--identity",
            identity.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--log",
            log_dir.to_str().unwrap(),
            "--history",
            "100",
        ],
    );
    let key = relay_key(&relay.log());

    let mut alice = chat(dir.path(), &relay, &key, "alice");
    alice.wait_for_stdout("end-to-end rooms ready");
    alice.type_text(b"/join dev --e2e\n");
    alice.wait_for_stdout("you made its group");
    assert!(
        dir.path().join("alice.identity.e2e").is_dir(),
        "the device lives beside the identity"
    );

    // Typed at once: chat holds the join until the relay kept bob's
    // KeyPackages, so that alice's client finds one.
    let mut bob = chat(dir.path(), &relay, &key, "bob");
    bob.type_text(b"/join dev\n");
    bob.wait_for_stdout("you are in #dev's end-to-end group now");
    alice.wait_for_stdout("you added bob");

    // Both sides compute the same safety number over the keys they pinned.
    alice.type_text(b"/verify bob\n");
    bob.type_text(b"/verify alice\n");
    let number = |line: String| {
        let digits = line
            .split(": ")
            .nth(1)
            .and_then(|rest| rest.split(" —").next());
        digits.unwrap_or_else(|| panic!("{line}")).to_owned()
    };
    let seen_by_alice = number(alice.wait_for_stdout("safety number with bob"));
    let seen_by_bob = number(bob.wait_for_stdout("safety number with alice"));
    assert_eq!(seen_by_alice, seen_by_bob);
    assert_eq!(seen_by_alice.split(' ').count(), 12, "{seen_by_alice}");

    alice.type_text(b"the launch code is 0000\n");
    let line = bob.wait_for_stdout("launch code");
    assert!(line.contains("alice"), "{line}");
    bob.type_text(b"ack from bob\n");
    let line = alice.wait_for_stdout("ack from bob");
    assert!(line.contains("bob"), "{line}");

    bob.type_text(b"/part dev\n");
    alice.wait_for_stdout("you removed bob");
    alice.type_text(b"said after bob left\n");

    // Bob comes back: added anew (a new epoch), he reads what is said now,
    // and what was said while he was away only as a line saying so.
    bob.type_text(b"/join dev\n");
    alice.wait_for_stdout("you added bob to #dev's group (epoch 3)");
    bob.wait_for_stdout("you are in #dev's end-to-end group now (epoch 3)");
    bob.wait_for_stdout("alice: (sent before you joined: not readable, by design)");
    alice.type_text(b"welcome back\n");
    bob.wait_for_stdout("alice: welcome back");

    // Alice's chat restarts: her device and its group come back from its
    // state directory, and both read each other as before.
    alice.close_stdin();
    let status = alice.wait_exit();
    assert!(status.success(), "{status}: {}", alice.stderr());
    let mut alice = chat(dir.path(), &relay, &key, "alice");
    alice.wait_for_stdout("end-to-end rooms ready");
    bob.type_text(b"still there?\n");
    alice.wait_for_stdout("bob: still there?");
    alice.type_text(b"yes, after a restart\n");
    bob.wait_for_stdout("alice: yes, after a restart");

    for chat in [&mut alice, &mut bob] {
        chat.close_stdin();
        let status = chat.wait_exit();
        assert!(status.success(), "{status}: {}", chat.stderr());
    }
    let alice_out = String::from_utf8_lossy(&alice.stdout()).into_owned();
    assert!(!alice_out.contains("not sent"), "{alice_out}");
    assert!(!alice_out.contains("error"), "{alice_out}");
    let bob_out = String::from_utf8_lossy(&bob.stdout()).into_owned();
    assert!(!bob_out.contains("said after"), "{bob_out}");

    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
    let key_file = state.join("log.key");
    let read = run_relay(
        dir.path(),
        &[
            "log",
            log_dir.to_str().unwrap(),
            "--key",
            key_file.to_str().unwrap(),
        ],
    );
    assert_eq!(read.code, Some(0), "{}", read.stderr);
    let records = read.stdout;
    // The add, two messages, the removal, and the message after it: each
    // kept as ciphertext, which the log prints as its size only.
    let sealed = records
        .lines()
        .filter(|line| line.contains("#dev") && line.contains("[end-to-end"))
        .count();
    assert!(sealed >= 5, "the group's messages are logged:\n{records}");
    for said in [
        "launch",
        "0000",
        "ack from bob",
        "said after",
        "welcome back",
    ] {
        assert!(!records.contains(said), "{said:?} in the log:\n{records}");
    }
}

/// Alice makes #dev and quits; bob joins with no member online to add
/// him: after its wait his `chat` joins the group by External Commit from
/// the GroupInfo the relay keeps. Alice, back, takes his commit from the
/// room's history and reads his message; both read each other.
#[test]
fn with_no_member_online_chat_joins_the_group_by_itself() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let members = members_file(dir.path(), &["alice", "bob"]);
    let identity = dir.path().join("relay.identity");
    let state = dir.path().join("state");
    let relay = RelayProcess::start_members(
        Path::new(&members),
        &[
            "--identity",
            identity.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--history",
            "100",
        ],
    );
    let key = relay_key(&relay.log());

    let mut alice = chat(dir.path(), &relay, &key, "alice");
    alice.type_text(b"/join dev --e2e\n");
    alice.wait_for_stdout("you made its group");
    alice.type_text(b"said before bob came\n");
    alice.close_stdin();
    let status = alice.wait_exit();
    assert!(status.success(), "{status}: {}", alice.stderr());

    let mut bob = chat(dir.path(), &relay, &key, "bob");
    bob.type_text(b"/join dev\n");
    bob.wait_for_stdout("waiting to be added to its group");
    bob.wait_for_stdout(
        "this device joined #dev's group by itself (no member was online to add it): \
         you read from now on, not what was said before",
    );
    bob.wait_for_stdout("alice: (sent before you joined: not readable, by design)");
    bob.type_text(b"bob came in alone\n");

    let mut alice = chat(dir.path(), &relay, &key, "alice");
    alice.wait_for_stdout("a device of bob joined #dev's group (epoch 1)");
    alice.wait_for_stdout("bob: bob came in alone");
    alice.type_text(b"welcome, bob\n");
    bob.wait_for_stdout("alice: welcome, bob");

    for chat in [&mut alice, &mut bob] {
        chat.close_stdin();
        let status = chat.wait_exit();
        assert!(status.success(), "{status}: {}", chat.stderr());
    }
    for out in [alice.stdout(), bob.stdout()] {
        let out = String::from_utf8_lossy(&out).into_owned();
        assert!(!out.contains("not sent"), "{out}");
        assert!(!out.contains("could not"), "{out}");
        assert!(!out.contains("did not check"), "{out}");
    }
    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
