//! The encrypted message log with a real relay process: no plaintext on
//! disk, history rebuilt on start, a `kill -9` and a torn tail survived,
//! a log under another key refused, damage mid-log refused and then
//! checked and repaired with `relay log check`/`repair`, the key kept in
//! the state directory, and `relay log` printing it.

use eaxchat_test_support as util;

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{RelayProcess, random_key, relay_binary};

const WAIT: Duration = Duration::from_secs(10);

/// The state directory of the relay logging to `dir`: beside it.
fn state_dir(dir: &Path) -> PathBuf {
    dir.with_file_name("state")
}

/// The flags of a logging relay with history on, as a user runs it.
fn log_flags(dir: &Path, fsync: &str) -> Vec<String> {
    vec![
        "--state-dir".into(),
        state_dir(dir).display().to_string(),
        "--log".into(),
        dir.display().to_string(),
        "--log-fsync".into(),
        fsync.into(),
        "--history".into(),
        "100".into(),
        "--presence".into(),
        "on".into(),
    ]
}

fn start(key: &eaxchat_proto::key::Key, flags: &[String]) -> RelayProcess {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    RelayProcess::start_with_key(key.clone(), &flags)
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in fs::read_dir(dir).expect("read the log dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            bytes.extend(fs::read(&path).expect("read a segment"));
        }
    }
    bytes
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read the log dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    paths.sort();
    paths
}

/// `relay log DIR`: its exit status, stdout and stderr.
fn relay_log(dir: &Path) -> (bool, String, String) {
    relay_log_with(dir, &[])
}

/// `relay --state-dir STATE log ARGS… DIR`, bounded: its exit status,
/// stdout and stderr.
fn relay_log_with(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut child = Command::new(relay_binary())
        .arg("--state-dir")
        .arg(state_dir(dir))
        .arg("log")
        .args(args)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relay log");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("relay log did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("output");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Waits (bounded) until `relay log` shows at least `count` messages.
fn wait_for_logged(dir: &Path, count: usize) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (ok, out, err) = relay_log(dir);
        assert!(ok, "relay log failed: {err}");
        if out.lines().filter(|line| line.contains(": msg ")).count() >= count {
            return out;
        }
        assert!(Instant::now() < deadline, "only logged:\n{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_log_holds_no_plaintext_and_brings_history_back() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("chatlog");
    let key = random_key();
    let relay = start(&key, &log_flags(&dir, "always"));
    let mut alice = relay.connect();
    alice.send(b"/nick alice");
    assert_eq!(alice.recv(), b"* you are now alice");
    let mut bob = relay.connect();
    bob.send(b"/nick bob");
    assert_eq!(bob.recv(), b"* you are now bob");
    assert_eq!(alice.recv(), b"* bob joined #lobby (2 here)");
    let secret = "msg the eagle lands at noon";
    alice.send(secret.as_bytes());
    assert_eq!(bob.recv(), secret.as_bytes());
    let logged = wait_for_logged(&dir, 1);
    assert!(
        logged.contains(&format!("#lobby alice: {secret}")),
        "{logged}"
    );
    assert!(logged.contains("#lobby -> bob joined"), "{logged}");

    let key_file = scratch.path().join("state").join("log.key");
    let mode = fs::metadata(&key_file)
        .expect("the log key file")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let on_disk = all_bytes(&dir);
    assert!(!on_disk.is_empty());
    for needle in [secret.as_bytes(), b"eagle", b"alice", b"lobby"] {
        assert!(
            !on_disk.windows(needle.len()).any(|w| w == needle),
            "{:?} is on disk in the clear",
            String::from_utf8_lossy(needle)
        );
    }
    let (status, _) = relay.terminate();
    assert!(status.success());

    // A restart under the same log key: a newcomer gets the history.
    let relay = start(&key, &log_flags(&dir, "everysec"));
    let mut carol = relay.connect();
    carol.send(b"/who");
    assert_eq!(carol.recv(), b"* here in #lobby: 1 with no name");
    assert_eq!(carol.recv(), b"* the last 1 message in #lobby:");
    assert_eq!(carol.recv(), secret.as_bytes());
    let (status, _) = relay.terminate();
    assert!(status.success());
}

#[test]
fn a_kill_and_a_torn_tail_keep_every_synced_record() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("chatlog");
    let key = random_key();
    let mut relay = start(&key, &log_flags(&dir, "always"));
    let mut talker = relay.connect();
    let mut listener = relay.connect();
    // Both in the room before the talker is announced.
    relay.wait_for_log_count("connected from", 2);
    talker.send(b"/nick talker");
    assert_eq!(talker.recv(), b"* you are now talker");
    assert_eq!(listener.recv(), b"* talker joined #lobby (2 here)");
    for n in 0..50 {
        talker.send(format!("msg synced {n}").as_bytes());
    }
    for n in 0..50 {
        assert_eq!(listener.recv(), format!("msg synced {n}").as_bytes());
    }
    // With --log-fsync always, what `relay log` reads was synced.
    wait_for_logged(&dir, 50);
    // More messages in flight, then SIGKILL in the middle of them.
    for n in 0..500 {
        talker.send(format!("msg in flight {n}").as_bytes());
    }
    let _ = listener.try_recv(Duration::from_millis(20));
    assert!(!relay.kill_hard().success());

    // A crash mid-write: half a record at the end of the last segment.
    let last = segments(&dir).pop().expect("a segment");
    let good_len = fs::metadata(&last).expect("segment").len();
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .expect("open the last segment");
    file.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7])
        .expect("tear the tail");
    drop(file);

    // `relay log` reports the torn tail and changes nothing.
    let (ok, out, err) = relay_log(&dir);
    assert!(ok, "{err}");
    assert!(err.contains("left as they are"), "{err}");
    assert_eq!(fs::metadata(&last).expect("segment").len(), good_len + 11);
    for n in 0..50 {
        assert!(out.contains(&format!("talker: msg synced {n}\n")), "{out}");
    }

    // The relay cuts it on start, keeps every record before it, and says so.
    let mut relay = start(&key, &log_flags(&dir, "always"));
    relay.wait_for_log("cut 11 bytes there, every record before kept");
    assert_eq!(fs::metadata(&last).expect("segment").len(), good_len);
    let mut newcomer = relay.connect();
    newcomer.send(b"/nick newcomer");
    assert_eq!(newcomer.recv(), b"* you are now newcomer");
    // Every synced message at least; of those in flight, whatever the
    // relay had read before the kill.
    let header = String::from_utf8(newcomer.recv()).expect("text");
    let count: usize = header
        .strip_prefix("* the last ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a history notice: {header}"));
    assert!((50..=100).contains(&count), "{header}");
    let (status, _) = relay.terminate();
    assert!(status.success());
    let (ok, out, _) = relay_log(&dir);
    assert!(ok);
    for n in 0..50 {
        assert!(out.contains(&format!("talker: msg synced {n}\n")));
    }
}

#[test]
fn a_log_under_another_key_is_refused() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("chatlog");
    let key = random_key();
    let relay = start(&key, &log_flags(&dir, "always"));
    let mut alice = relay.connect();
    let _bob = relay.connect();
    alice.send(b"msg hello");
    wait_for_logged(&dir, 1);
    let (status, _) = relay.terminate();
    assert!(status.success());

    let other_key = scratch.path().join("other.key");
    let mut child = Command::new(relay_binary())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--key-hex",
            &key.to_hex(),
            "--log",
        ])
        .arg(&dir)
        .arg("--log-key")
        .arg(&other_key)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relay");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a relay given the wrong log key kept running");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("does not open under this log key"),
        "{stderr}"
    );
    // Nothing was cut: the right key still reads everything.
    let (ok, out, _) = relay_log(&dir);
    assert!(ok);
    assert!(out.contains(": msg hello"), "{out}");
}

/// Runs `relay FLAGS` expecting it to refuse to start: waits (bounded)
/// for its exit, and returns its exit code and stderr.
fn refused_start(flags: &[String], key: &eaxchat_proto::key::Key) -> (Option<i32>, String) {
    let mut child = Command::new(relay_binary())
        .args(["--listen", "127.0.0.1:0", "--key-hex", &key.to_hex()])
        .args(flags)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relay");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the relay started on a damaged log");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = child.wait_with_output().expect("output");
    (
        status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The reproduction: one byte changed at 40% of a segment of 30
/// records. The relay refuses to start and names the damage; `relay log
/// check` says what a repair loses; `relay log repair` changes nothing
/// without `--yes`, cuts with it; the relay then starts on what is left.
#[test]
fn a_byte_changed_mid_log_stops_the_relay_until_repaired() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("chatlog");
    let key = random_key();
    let relay = start(&key, &log_flags(&dir, "always"));
    let mut alice = relay.connect();
    let _bob = relay.connect();
    for n in 0..30 {
        alice.send(format!("msg number {n:02}").as_bytes());
    }
    wait_for_logged(&dir, 30);
    let (status, _) = relay.terminate();
    assert!(status.success());

    let segment = segments(&dir).into_iter().next().expect("a segment");
    let mut bytes = fs::read(&segment).expect("read the segment");
    let at = bytes.len() * 2 / 5;
    bytes[at] ^= 0x01;
    fs::write(&segment, &bytes).expect("write the segment");
    let name = segment
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a name");

    let (code, stderr) = refused_start(&log_flags(&dir, "always"), &key);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("damaged before its end"), "{stderr}");
    assert!(stderr.contains(name), "{stderr}");
    assert!(
        stderr.contains("records after it in this segment"),
        "{stderr}"
    );
    assert!(stderr.contains("relay log repair"), "{stderr}");
    assert_eq!(fs::read(&segment).expect("read"), bytes, "nothing was cut");

    let (ok, out, err) = relay_log_with(&dir, &["check"]);
    assert!(!ok, "check passes a damaged log: {out}");
    assert!(out.contains("DAMAGE at record"), "{out}");
    assert!(out.contains("a repair would lose"), "{out}{err}");
    let (ok, out, err) = relay_log_with(&dir, &["repair"]);
    assert!(!ok, "{out}");
    assert!(err.contains("nothing changed"), "{err}");
    assert_eq!(fs::read(&segment).expect("read"), bytes, "nothing was cut");
    let (ok, out, err) = relay_log_with(&dir, &["repair", "--yes"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("cut "), "{out}");
    assert!(fs::metadata(&segment).expect("segment").len() < at as u64);
    let (ok, out, _) = relay_log_with(&dir, &["check"]);
    assert!(ok, "{out}");

    let relay = start(&key, &log_flags(&dir, "always"));
    let (ok, out, _) = relay_log(&dir);
    assert!(ok);
    assert!(
        out.contains("alice: msg number 00") || out.contains(": msg number 00"),
        "{out}"
    );
    let (status, _) = relay.terminate();
    assert!(status.success());
}

/// The log key is made in the state directory, not beside the log; a key
/// an older relay left beside the log is still used, with a line saying
/// how to move it.
#[test]
fn the_log_key_lives_in_the_state_directory() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("chatlog");
    let key = random_key();
    let relay = start(&key, &log_flags(&dir, "always"));
    let mut alice = relay.connect();
    let _bob = relay.connect();
    alice.send(b"msg kept");
    wait_for_logged(&dir, 1);
    let (status, _) = relay.terminate();
    assert!(status.success());
    let in_state = scratch.path().join("state").join("log.key");
    assert!(in_state.is_file(), "no key in the state directory");
    assert!(!scratch.path().join("chatlog.key").exists());

    // As an older relay left it: the key beside the log.
    let beside = scratch.path().join("chatlog.key");
    fs::rename(&in_state, &beside).expect("move the key");
    let mut relay = start(&key, &log_flags(&dir, "always"));
    let line = relay.wait_for_log("sits beside the log");
    assert!(line.contains("mv "), "{line}");
    let mut carol = relay.connect();
    carol.send(b"/who");
    assert_eq!(carol.recv(), b"* here in #lobby: 1 with no name");
    assert_eq!(carol.recv(), b"* the last 1 message in #lobby:");
    assert_eq!(carol.recv(), b"msg kept");
    let (status, _) = relay.terminate();
    assert!(status.success());
    assert!(!in_state.exists(), "a second key was made");
}
