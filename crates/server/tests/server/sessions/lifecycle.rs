//! A session relay's life: its identity file (made once, 0600, logged,
//! refused when others can read it), `relay key show`, the handshake
//! deadline, a device removed on reload, a reload of the other kind of
//! file, and the warning that static-key members mode is deprecated.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use eaxchat_proto::key::Key;
use eaxchat_proto::session::identity_file::read_identity_file;
use eaxchat_proto::session::key_request_line;
use eaxchat_test_support::{RelayProcess, TestClient, WAIT, random_key, relay_binary};

use super::{Fixture, QUIET, SessionConn, relay_command, relay_key_from_log};

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The relay run in `dir` with the members file and no `--identity`.
fn start_in(dir: &std::path::Path, members: &std::path::Path) -> RelayProcess {
    let mut command = Command::new(relay_binary());
    command
        .current_dir(dir)
        .args(["--listen", "127.0.0.1:0", "--members"])
        .arg(members);
    RelayProcess::spawn(command, random_key())
}

/// On its first start a session relay makes `relay.identity` (0600) in
/// its working directory and logs its key and fingerprint; later starts
/// read it back; `relay key show` prints the same; a file others can read
/// is refused by both.
#[test]
fn the_relay_makes_its_identity_once_logs_it_and_key_show_prints_it() {
    let (fixture, _) = Fixture::new(&["alice"]);
    let dir = fixture.dir.path();
    let path = dir.join("relay.identity");
    let relay = start_in(dir, &fixture.members);
    let log = relay.log();
    let key = relay_key_from_log(&log);
    assert!(
        log.contains(&format!("relay identity {key} ({})", key.fingerprint())),
        "{log}"
    );
    assert!(log.contains("generated a new relay identity"), "{log}");
    assert!(log.contains("session mode: 1 members (1 devices)"), "{log}");
    assert_eq!(mode(&path), 0o600);
    let secret = read_identity_file(&path).unwrap().unwrap();
    assert_eq!(secret.public_key(), &key);
    let (status, _) = relay.terminate();
    assert!(status.success());

    let relay = start_in(dir, &fixture.members);
    let log = relay.log();
    assert_eq!(relay_key_from_log(&log), key, "read back, not replaced");
    assert!(!log.contains("generated a new relay identity"), "{log}");
    drop(relay);

    for args in [
        &["key", "show"][..],
        &["key", "show", "--identity", "relay.identity"],
    ] {
        let (code, stdout, stderr) = relay_command(dir, args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(stdout.contains(&key.to_string()), "{stdout}");
        assert!(stdout.contains(&key.fingerprint().to_string()), "{stdout}");
        assert!(stdout.contains("--relay-key"), "how to use it: {stdout}");
    }

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, stderr) = relay_command(dir, &["key", "show"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    let (code, _, stderr) = relay_command(
        dir,
        &["--listen", "127.0.0.1:0", "--members", "members.txt"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("readable by group or others"), "{stderr}");

    let (code, _, stderr) = relay_command(dir, &["key", "show", "--identity", "none"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("none"), "{stderr}");
    assert!(!dir.join("none").exists(), "key show makes no identity");
}

/// A connection that sends nothing is closed at the handshake deadline,
/// as is one that only asked for the relay's key.
#[test]
fn a_silent_connection_is_closed_at_the_deadline() {
    let (fixture, _) = Fixture::new(&["alice"]);
    let mut relay = fixture.start(&["--first-frame-timeout", "1"]);
    let mut silent = TestClient::connect(relay.addr(), &random_key());
    let mut asked = TestClient::connect(relay.addr(), &random_key());
    asked.send_raw(&key_request_line());
    assert!(!asked.recv_line().is_empty(), "the relay's key");
    assert!(silent.closed_within(WAIT), "closed at the deadline");
    assert!(asked.closed_within(WAIT), "closed at the deadline");
    relay.process.wait_for_log_count(
        "closed: no authenticated frame within --first-frame-timeout",
        2,
    );
}

/// Removing one device (`relay members remove NAME --public-key`) closes
/// that device's session on the reload; the member's other device and the
/// others chat on; the removed device is then an unknown key.
#[test]
fn removing_a_device_closes_its_session_on_reload() {
    let (fixture, secrets) = Fixture::new(&["alice", "alice", "bob"]);
    let mut relay = fixture.start(&[]);
    let mut phone = relay.connect(&secrets[0]);
    let mut laptop = relay.connect(&secrets[1]);
    let mut bob = relay.connect(&secrets[2]);
    let laptop_key = secrets[1].public_key().to_string();
    let (code, stdout, stderr) = relay_command(
        fixture.dir.path(),
        &[
            "members",
            "remove",
            "alice",
            "--file",
            "members.txt",
            "--public-key",
            &laptop_key,
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&secrets[1].public_key().fingerprint().to_string()),
        "{stdout}"
    );
    assert!(
        laptop.raw.closed_within(WAIT),
        "the removed device's session"
    );
    relay
        .process
        .wait_for_log("closed: member removed from the members file");
    relay
        .process
        .wait_for_log("2 members (2 devices); added none; removed none; new key alice");
    phone.send(b"still here");
    assert_eq!(bob.recv_containing("still here"), "alice: still here");
    bob.send(b"hi");
    assert_eq!(phone.recv_containing("hi"), "bob: hi");
    let again = SessionConn::connect(relay.addr(), &secrets[1], &relay.key);
    let error = again.err().expect("refused").to_string();
    assert!(error.contains("unknown key"), "{error}");
}

/// A session relay never takes a static-key file on reload: it says why
/// and keeps its members; its sessions carry on.
#[test]
fn a_static_key_file_does_not_reload_a_session_relay() {
    let (fixture, secrets) = Fixture::new(&["alice", "bob"]);
    let mut relay = fixture.start(&[]);
    let mut alice = relay.connect(&secrets[0]);
    let mut bob = relay.connect(&secrets[1]);
    let key = Key::generate().unwrap();
    fs::write(&fixture.members, format!("alice {}\n", key.to_hex())).unwrap();
    relay.process.wait_for_log(
        "keeping the 2 members: it is now a static-key file, but this relay serves sessions \
         mode; restart the relay to change modes",
    );
    alice.send(b"after the bad reload");
    assert_eq!(
        bob.recv_containing("bad reload"),
        "alice: after the bad reload"
    );
    alice.expect_silence(QUIET);
}

/// A static-key members file still serves members mode, unchanged, with
/// one warning at start naming the migration; it makes no identity.
#[test]
fn a_static_key_members_file_warns_that_it_is_deprecated() {
    let dir = tempfile::tempdir().unwrap();
    let members = dir.path().join("members.txt");
    let key = Key::generate().unwrap();
    fs::write(&members, format!("alice {}\n", key.to_hex())).unwrap();
    fs::set_permissions(&members, fs::Permissions::from_mode(0o600)).unwrap();
    let relay = start_in(dir.path(), &members);
    let log = relay.log();
    assert!(log.contains("members mode: 1 members"), "{log}");
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("deprecated")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("relay members migrate"), "{log}");
    assert!(!dir.path().join("relay.identity").exists());
    let mut alice = TestClient::connect(relay.addr, &key);
    alice.send(b"");
    alice.send(b"members mode as before");
    alice.expect_silence(QUIET);
}

/// `relay config check` takes a config serving a sessions file, says it
/// is session mode, and refuses an identity others can read.
#[test]
fn config_check_takes_a_sessions_members_file() {
    let (fixture, _) = Fixture::new(&["alice"]);
    let dir = fixture.dir.path();
    fs::write(
        dir.join("relay.toml"),
        "members = \"members.txt\"\nidentity = \"relay.identity\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = relay_command(dir, &["config", "check", "relay.toml"]);
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    let said = format!("{stdout}{stderr}");
    assert!(
        said.contains("session mode, members from members.txt, identity relay.identity"),
        "{said}"
    );
    assert!(!dir.join("relay.identity").exists(), "check makes nothing");
    fs::write(dir.join("relay.identity"), "# eaxchat identity\n").unwrap();
    fs::set_permissions(
        dir.join("relay.identity"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let (code, _, stderr) = relay_command(dir, &["config", "check", "relay.toml"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("malformed identity file"), "{stderr}");
}
