//! The real `relay members` commands on sessions files, in a temporary
//! directory: a new file is a sessions file unless `--static-keys` is
//! given; devices added by public key (with a label) or generated (the
//! secret to its own 0600 file, the public key to the members file), that
//! `chat --key-file` then uses; listed by fingerprint, removed one at a
//! time or all at once; static-key files refusing the session flags; and
//! `migrate`, whose members then connect to a session relay. Every refused
//! command exits 2 and changes nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use eaxchat_proto::key::Key;
use eaxchat_proto::session::identity_file::{generate_identity, read_identity_file};
use eaxchat_test_support::{ChatProcess, RelayProcess, run_relay_line};

use super::{SessionConn, relay_key_from_log};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `relay ARGS` in `dir` (`args` split at whitespace): must succeed;
/// returns its stdout.
fn ok(dir: &Path, args: &str) -> String {
    run_relay_line(dir, args).ok(args)
}

/// `relay ARGS` in `dir` (`args` split at whitespace): must exit 2 with
/// `needle` on stderr, and leave `file` as it was (or absent).
fn refused(dir: &Path, args: &str, needle: &str, file: &Path) {
    let before = fs::read(file).ok();
    let run = run_relay_line(dir, args);
    assert_eq!(run.code, Some(2), "{args}: {} {}", run.stdout, run.stderr);
    assert!(run.stderr.contains(needle), "{args}: {}", run.stderr);
    assert_eq!(fs::read(file).ok(), before, "{args} changed the file");
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

    let out = ok(dir, "members add alice --file members.txt");
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
        &format!("members add alice --file members.txt --public-key {phone_key} --device phone"),
    );
    assert!(
        out.contains(&phone.public_key().fingerprint().to_string()),
        "{out}"
    );
    let out = ok(
        dir,
        "members add bob --file members.txt --key-out b.identity",
    );
    assert!(out.contains("b.identity"), "{out}");
    let bob = read_identity_file(&dir.join("b.identity"))
        .unwrap()
        .unwrap();

    refused(
        dir,
        "members add alice --file members.txt",
        "alice is already a member (line 1); to add another device, give its --public-key",
        &file,
    );
    refused(
        dir,
        &format!("members add carol --file members.txt --public-key {phone_key}"),
        "that key is already a device of alice",
        &file,
    );
    refused(
        dir,
        "members add carol --file members.txt --bits 256",
        "--bits is for static keys",
        &file,
    );
    refused(
        dir,
        "members add carol --file members.txt --static-keys",
        "is a sessions members file: --static-keys is for a static-key file",
        &file,
    );
    refused(
        dir,
        "members add carol --file members.txt --key-out b.identity",
        "b.identity already exists",
        &file,
    );
    assert!(!dir.join("carol.identity").exists());

    let list = ok(dir, "members list --file members.txt");
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
        &format!("members remove alice --file members.txt --public-key {phone_key}"),
    );
    assert!(
        out.contains(&format!("removed alice's device {}", fingerprint(&phone))),
        "{out}"
    );
    refused(
        dir,
        &format!("members remove alice --file members.txt --public-key {phone_key}"),
        &format!("alice has no device {}", fingerprint(&phone)),
        &file,
    );
    let out = ok(dir, "members remove alice --file members.txt");
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
    refused(
        dir,
        "members add alice --file members.txt --static-keys --sessions",
        "give one or the other",
        &file,
    );
    let run = run_relay_line(dir, "members add alice --file members.txt --static-keys");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("starts as a static-key members file (--static-keys: the deprecated"),
        "{}",
        run.stderr
    );
    assert!(Key::read_file(&dir.join("alice.key")).unwrap().is_some());
    // Once the file is a static-key file, --static-keys is not needed.
    ok(dir, "members add bob --file members.txt --bits 256");
    let key = generate_identity(&dir.join("x.identity"))
        .unwrap()
        .public_key()
        .to_string();
    for args in [
        format!("members add carol --file members.txt --public-key {key}"),
        "members add carol --file members.txt --sessions".to_owned(),
        format!("members remove alice --file members.txt --public-key {key}"),
    ] {
        refused(dir, &args, "is a static-key members file", &file);
        refused(dir, &args, "relay members migrate", &file);
    }
    assert_eq!(ok(dir, "members list --file members.txt"), "alice\nbob\n");
}

#[test]
fn migrate_converts_a_static_file_and_its_members_connect() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let file = dir.join("members.txt");
    ok(dir, "members add alice --file members.txt --static-keys");
    ok(dir, "members add bob --file members.txt --bits 256");
    let mut text = fs::read_to_string(&file).unwrap();
    text.insert_str(0, "# the team\n");
    fs::write(&file, &text).unwrap();

    fs::create_dir(dir.join("taken")).unwrap();
    fs::write(dir.join("taken/bob.identity"), "mine").unwrap();
    refused(
        dir,
        "members migrate --file members.txt --key-dir taken",
        "bob.identity already exists",
        &file,
    );
    assert!(
        !dir.join("taken/alice.identity").exists(),
        "nothing written"
    );

    let out = ok(dir, "members migrate --file members.txt --key-dir keys");
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
        "members migrate --file members.txt --key-dir keys2",
        "nothing to migrate",
        &file,
    );

    let (relay, key) = session_relay(dir, &file);
    let mut a = SessionConn::connect(relay.addr, &alice, &key).unwrap();
    let mut b = SessionConn::connect(relay.addr, &bob, &key).unwrap();
    a.send(b"migrated");
    assert_eq!(b.recv_containing("migrated"), "alice: migrated");
}

/// The default set-up without an invite: `relay members add NAME --file F
/// --key-out K` on a new file makes a sessions file holding only public
/// keys, K the member's identity (0600); `chat --connect ADDR --key-file K`
/// then chats as that member, trusting the relay's key on first use. A
/// new file is refused `--bits`, which is for static keys.
#[test]
fn a_new_members_file_is_a_sessions_file_and_chat_uses_the_key_out() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let file = dir.join("members.txt");
    refused(
        dir,
        "members add alice --file members.txt --bits 256",
        "a new members file is a sessions file (x25519 public keys) unless --static-keys",
        &file,
    );
    assert!(!file.exists());
    for name in ["alice", "bob"] {
        let key_out = format!("{name}.secret");
        let out = ok(
            dir,
            &format!("members add {name} --file members.txt --key-out {key_out}"),
        );
        assert!(out.contains(&format!("--key-file {key_out}")), "{out}");
        assert_eq!(mode(&dir.join(&key_out)), 0o600);
    }
    let alice = read_identity_file(&dir.join("alice.secret"))
        .unwrap()
        .unwrap();
    let bob = read_identity_file(&dir.join("bob.secret"))
        .unwrap()
        .unwrap();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("alice {}\nbob {}\n", alice.public_key(), bob.public_key()),
        "public keys only"
    );

    let (relay, key) = session_relay(dir, &file);
    let mut bob = SessionConn::connect(relay.addr, &bob, &key).unwrap();
    let addr = relay.addr.to_string();
    let known = dir.join("known_relays");
    let mut chat = ChatProcess::start_args(&[
        "--connect",
        &addr,
        "--key-file",
        dir.join("alice.secret").to_str().unwrap(),
        "--known-relays",
        known.to_str().unwrap(),
    ]);
    chat.wait_for_stderr(&format!("session with {} as alice", key.fingerprint()));
    chat.type_text(b"made by members add\n");
    assert_eq!(
        bob.recv_containing("members add"),
        "alice: made by members add"
    );
    bob.send(b"hello alice");
    chat.wait_for_stdout("bob: hello alice");
    chat.close_stdin();
    let status = chat.wait_exit();
    assert!(status.success(), "{status}: {}", chat.stderr());
    assert_eq!(
        fs::read_to_string(&known).unwrap(),
        format!("{addr} {key}\n"),
        "pinned on first use"
    );
}
