//! The real `relay members` commands on sessions files, in a temporary
//! directory: devices added by public key (with a label) or generated
//! (the secret to its own 0600 file, the public key to the members file),
//! listed by fingerprint, removed one at a time or all at once; static-key
//! files refusing the session flags; and `migrate`, whose members then
//! connect to a session relay. Every refused command exits 2 and changes
//! nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use eaxchat_proto::key::Key;
use eaxchat_proto::session::identity_file::{generate_identity, read_identity_file};
use eaxchat_test_support::RelayProcess;

use super::{SessionConn, relay_command, relay_key_from_log};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `relay ARGS` in `dir`: must succeed; returns its stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = relay_command(dir, args);
    assert_eq!(code, Some(0), "{args:?}: {stderr}");
    stdout
}

/// `relay ARGS` in `dir`: must exit 2 with `needle` on stderr, and leave
/// `file` as it was.
fn refused(dir: &Path, args: &[&str], needle: &str, file: &Path) {
    let before = fs::read(file).unwrap();
    let (code, stdout, stderr) = relay_command(dir, args);
    assert_eq!(code, Some(2), "{args:?}: {stdout} {stderr}");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert_eq!(fs::read(file).unwrap(), before, "{args:?} changed the file");
}

/// A relay serving `file` with a new identity in `dir`.
fn session_relay(dir: &Path, file: &Path) -> (RelayProcess, eaxchat_proto::session::PublicKey) {
    let identity = dir.join("relay.identity");
    let relay = RelayProcess::start_members(file, &["--identity", identity.to_str().unwrap()]);
    let key = relay_key_from_log(&relay.log());
    (relay, key)
}

#[test]
fn session_members_are_added_listed_and_removed_by_device() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let file = dir.join("members.txt");
    let m = "members.txt";

    let out = ok(dir, &["members", "add", "alice", "--file", m, "--sessions"]);
    assert!(
        out.contains("alice.identity") && out.contains("privately"),
        "{out}"
    );
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&dir.join("alice.identity")), 0o600);
    let alice = read_identity_file(&dir.join("alice.identity"))
        .unwrap()
        .unwrap();
    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(text, format!("alice {}\n", alice.public_key()));
    let secret_line = fs::read_to_string(dir.join("alice.identity")).unwrap();
    let secret_line = secret_line.lines().last().unwrap().to_owned();
    assert!(!out.contains(&secret_line), "the secret is never printed");

    let phone = generate_identity(&dir.join("phone.identity")).unwrap();
    let phone_key = phone.public_key().to_string();
    let out = ok(
        dir,
        &[
            "members",
            "add",
            "alice",
            "--file",
            m,
            "--public-key",
            &phone_key,
            "--device",
            "phone",
        ],
    );
    assert!(
        out.contains(&phone.public_key().fingerprint().to_string()),
        "{out}"
    );
    let out = ok(
        dir,
        &[
            "members",
            "add",
            "bob",
            "--file",
            m,
            "--key-out",
            "b.identity",
        ],
    );
    assert!(out.contains("b.identity"), "{out}");
    let bob = read_identity_file(&dir.join("b.identity"))
        .unwrap()
        .unwrap();

    refused(
        dir,
        &["members", "add", "alice", "--file", m],
        "alice is already a member (line 1); to add another device, give its --public-key",
        &file,
    );
    refused(
        dir,
        &[
            "members",
            "add",
            "carol",
            "--file",
            m,
            "--public-key",
            &phone_key,
        ],
        "that key is already a device of alice",
        &file,
    );
    refused(
        dir,
        &["members", "add", "carol", "--file", m, "--bits", "256"],
        "--bits is for static keys",
        &file,
    );
    refused(
        dir,
        &[
            "members",
            "add",
            "carol",
            "--file",
            m,
            "--key-out",
            "b.identity",
        ],
        "b.identity already exists",
        &file,
    );
    assert!(!dir.join("carol.identity").exists());

    let list = ok(dir, &["members", "list", "--file", m]);
    let fingerprint = |secret: &eaxchat_proto::session::StaticSecret| {
        secret.public_key().fingerprint().to_string()
    };
    assert_eq!(
        list,
        format!(
            "alice {}\nalice {} (phone)\nbob {}\n",
            fingerprint(&alice),
            fingerprint(&phone),
            fingerprint(&bob)
        )
    );

    // bob's generated identity is what the relay knows as bob.
    let (relay, key) = session_relay(dir, &file);
    let conn = SessionConn::connect(relay.addr, &bob, &key).unwrap();
    assert_eq!(conn.name, "bob");
    drop(conn);
    drop(relay);

    let out = ok(
        dir,
        &[
            "members",
            "remove",
            "alice",
            "--file",
            m,
            "--public-key",
            &phone_key,
        ],
    );
    assert!(
        out.contains(&format!("removed alice's device {}", fingerprint(&phone))),
        "{out}"
    );
    refused(
        dir,
        &[
            "members",
            "remove",
            "alice",
            "--file",
            m,
            "--public-key",
            &phone_key,
        ],
        &format!("alice has no device {}", fingerprint(&phone)),
        &file,
    );
    let out = ok(dir, &["members", "remove", "alice", "--file", m]);
    assert!(
        out.contains("removed alice from members.txt (1 devices)"),
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("bob {}\n", bob.public_key())
    );
}

#[test]
fn a_static_key_file_keeps_its_commands_and_refuses_the_session_flags() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let file = dir.join("members.txt");
    let m = "members.txt";
    let (code, _, stderr) = relay_command(dir, &["members", "add", "alice", "--file", m]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("static-key members file (deprecated"),
        "{stderr}"
    );
    assert!(Key::read_file(&dir.join("alice.key")).unwrap().is_some());
    let key = generate_identity(&dir.join("x.identity"))
        .unwrap()
        .public_key()
        .to_string();
    for args in [
        &["members", "add", "bob", "--file", m, "--public-key", &key][..],
        &["members", "add", "bob", "--file", m, "--sessions"],
        &[
            "members",
            "remove",
            "alice",
            "--file",
            m,
            "--public-key",
            &key,
        ],
    ] {
        refused(dir, args, "is a static-key members file", &file);
        refused(dir, args, "relay members migrate", &file);
    }
    assert_eq!(ok(dir, &["members", "list", "--file", m]), "alice\n");
}

#[test]
fn migrate_converts_a_static_file_and_its_members_connect() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let file = dir.join("members.txt");
    let m = "members.txt";
    ok(dir, &["members", "add", "alice", "--file", m]);
    ok(
        dir,
        &["members", "add", "bob", "--file", m, "--bits", "256"],
    );
    let mut text = fs::read_to_string(&file).unwrap();
    text.insert_str(0, "# the team\n");
    fs::write(&file, &text).unwrap();

    fs::create_dir(dir.join("taken")).unwrap();
    fs::write(dir.join("taken/bob.identity"), "mine").unwrap();
    refused(
        dir,
        &["members", "migrate", "--file", m, "--key-dir", "taken"],
        "bob.identity already exists",
        &file,
    );
    assert!(
        !dir.join("taken/alice.identity").exists(),
        "nothing written"
    );

    let out = ok(
        dir,
        &["members", "migrate", "--file", m, "--key-dir", "keys"],
    );
    assert!(out.contains("2 members"), "{out}");
    for name in ["alice", "bob"] {
        let identity = dir.join(format!("keys/{name}.identity"));
        assert_eq!(mode(&identity), 0o600);
        assert!(
            out.contains(&format!("{name}: keys/{name}.identity")),
            "{out}"
        );
    }
    assert!(
        out.contains("privately") && out.contains("Restart the relay"),
        "{out}"
    );
    let alice = read_identity_file(&dir.join("keys/alice.identity"))
        .unwrap()
        .unwrap();
    let bob = read_identity_file(&dir.join("keys/bob.identity"))
        .unwrap()
        .unwrap();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!(
            "# the team\nalice {}\nbob {}\n",
            alice.public_key(),
            bob.public_key()
        )
    );
    assert_eq!(mode(&file), 0o600);

    refused(
        dir,
        &["members", "migrate", "--file", m, "--key-dir", "keys2"],
        "nothing to migrate",
        &file,
    );

    let (relay, key) = session_relay(dir, &file);
    let mut a = SessionConn::connect(relay.addr, &alice, &key).unwrap();
    let mut b = SessionConn::connect(relay.addr, &bob, &key).unwrap();
    a.send(b"migrated");
    assert_eq!(b.recv_containing("migrated"), "alice: migrated");
}
