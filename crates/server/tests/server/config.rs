//! The config file (`relay --config FILE`): `relay config defaults` and
//! `check`, flags over keys, errors that name their line, SIGHUP applying
//! a changed limit, `relay status` over the admin socket, and the members
//! file found through the state directory.

use eaxchat_test_support as util;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use eaxchat_proto::key::Key;
use util::{RelayProcess, TestClient, WAIT, random_key, relay_binary};

/// What one run of `relay ARGS` did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `relay ARGS` in `dir` to its end (bounded by [`WAIT`]).
fn relay(dir: &Path, args: &[&str]) -> Run {
    let out = dir.join(".stdout");
    let err = dir.join(".stderr");
    let mut child = Command::new(relay_binary())
        .args(args)
        .current_dir(dir)
        .env_remove("EAXCHAT_KEY")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut child);
    Run {
        code: status.code(),
        stdout: fs::read_to_string(out).unwrap(),
        stderr: fs::read_to_string(err).unwrap(),
    }
}

/// Waits at most [`WAIT`] for `child`; kills it (by its PID) and fails if
/// it runs longer.
fn wait_bounded(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("relay (pid {}) did not exit within {WAIT:?}", child.id());
        }
        sleep(Duration::from_millis(10));
    }
}

/// Starts `relay --config FILE ARGS` in `dir` (the test harness adds its
/// usual flags: no history, presence or per-address limit).
fn serve(dir: &Path, config: &str, args: &[&str], key: Key) -> RelayProcess {
    let mut command = Command::new(relay_binary());
    command
        .current_dir(dir)
        .args(["--config", config])
        .args(args);
    RelayProcess::spawn(command, key)
}

fn hangup(relay: &RelayProcess) {
    let status = Command::new("kill")
        .args(["-HUP", &relay.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Two clients of `relay` say something to each other: it serves.
fn chat_works(relay: &RelayProcess) {
    let mut alice = relay.connect();
    let mut bob = relay.connect();
    // A frame only reaches those connected when it is read: retry until
    // bob is in.
    let deadline = Instant::now() + WAIT;
    loop {
        alice.send(b"hello");
        if bob.try_recv(Duration::from_millis(200)).as_deref() == Some(&b"hello"[..]) {
            return;
        }
        assert!(Instant::now() < deadline, "bob heard nothing");
    }
}

/// `relay config defaults` prints a file that `relay config check`
/// accepts, and that a relay runs from: its key made in the working
/// directory, as without a config file.
#[test]
fn defaults_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let defaults = relay(dir.path(), &["config", "defaults"]);
    assert_eq!(defaults.code, Some(0), "{}", defaults.stderr);
    assert!(defaults.stdout.contains("max-clients = 10000"));
    fs::write(dir.path().join("relay.toml"), &defaults.stdout).unwrap();
    let check = relay(dir.path(), &["config", "check", "relay.toml"]);
    assert_eq!(check.code, Some(0), "{}", check.stderr);
    assert!(check.stdout.contains("relay.toml: ok"), "{}", check.stdout);
    assert!(!dir.path().join("relay.key").exists(), "check made a key");

    let mut relay = serve(
        dir.path(),
        "relay.toml",
        &["--listen", "127.0.0.1:0"],
        random_key(),
    );
    relay.wait_for_log("config relay.toml: SIGHUP rereads it");
    relay.key = Key::read_file(&dir.path().join("relay.key"))
        .unwrap()
        .unwrap();
    chat_works(&relay);
    let (status, _) = relay.terminate();
    assert!(status.success());
}

/// A flag given on the command line wins over the file's key; keys with no
/// flag given are taken from the file.
#[test]
fn flags_win_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("relay.toml"),
        "listen = \"127.0.0.1:1\"\nmax-clients = 7\nmax-queue = 123456\nmax-frame = 2048\n",
    )
    .unwrap();
    let key = random_key();
    let mut relay = serve(
        dir.path(),
        "relay.toml",
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-clients",
            "9",
            "--key-hex",
            &key.to_hex(),
        ],
        key,
    );
    let line = relay.wait_for_log("listening on ");
    assert!(line.contains("max-clients=9 "), "{line}");
    assert!(line.contains("max-queue=123456 "), "{line}");
    assert!(line.contains("max-frame=2048 "), "{line}");
    assert!(!line.contains("127.0.0.1:1;"), "{line}");
    chat_works(&relay);
    let (status, _) = relay.terminate();
    assert!(status.success());
}

/// Unknown keys, values of the wrong type and values out of range are
/// refused with the line named, by `config check` and by a relay starting
/// from the file (exit 2 both); nothing is created.
#[test]
fn bad_files_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str); 5] = [
        (
            "listen = \"127.0.0.1:0\"\nmax-cleints = 5\n",
            "line 2: unknown key `max-cleints` (did you mean `max-clients`?)",
        ),
        (
            "# a comment\nhistory = 5\nmax-queue = \"lots\"\n",
            "line 3: max-queue: invalid type: string \"lots\"",
        ),
        (
            "presence = true\n",
            "line 1: presence: invalid type: boolean",
        ),
        ("\nmax-frame = 0\n", "line 2: max-frame: must be at least 1"),
        ("[server]\nlisten = 1\n", "line 1: unknown key `server`"),
    ];
    for (text, needle) in cases {
        fs::write(dir.path().join("bad.toml"), text).unwrap();
        let check = relay(dir.path(), &["config", "check", "bad.toml"]);
        assert_eq!(check.code, Some(2), "{text:?}: {}", check.stderr);
        assert!(
            check.stderr.contains(&format!("config bad.toml {needle}")),
            "{text:?}: {}",
            check.stderr
        );
        let serve = relay(
            dir.path(),
            &["--config", "bad.toml", "--listen", "127.0.0.1:0"],
        );
        assert_eq!(serve.code, Some(2), "{text:?}: {}", serve.stderr);
        assert!(serve.stderr.contains(needle), "{text:?}: {}", serve.stderr);
    }
    let check = relay(dir.path(), &["config", "check", "missing.toml"]);
    assert_eq!(check.code, Some(2));
    assert!(
        check.stderr.contains("config missing.toml:"),
        "{}",
        check.stderr
    );
    // Keys that are each fine but not together: the reason, as the flags'.
    fs::write(
        dir.path().join("both.toml"),
        "members = \"m.txt\"\nkey-hex = \"00112233445566778899aabbccddeeff\"\n",
    )
    .unwrap();
    let check = relay(dir.path(), &["config", "check", "both.toml"]);
    assert_eq!(check.code, Some(2));
    assert!(
        check.stderr.contains("give no shared key"),
        "{}",
        check.stderr
    );
    assert!(!dir.path().join("relay.key").exists());
}

/// SIGHUP rereads the file: a lowered --max-clients refuses the next
/// connection at once, a key that needs a restart is named, a file that
/// does not parse is not taken, and `relay status` shows the outcome.
#[test]
fn sighup_applies_a_changed_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    let write = |text: &str| fs::write(&config, format!("admin-socket = \"admin.sock\"\n{text}"));
    write("max-clients = 10\nmax-rooms = 10\n").unwrap();
    let key = random_key();
    let mut relay = serve(
        dir.path(),
        "relay.toml",
        &["--listen", "127.0.0.1:0", "--key-hex", &key.to_hex()],
        key,
    );
    relay.wait_for_log("admin socket admin.sock");
    let _a = relay.connect();
    let _b = relay.connect();
    wait_for_status(
        dir.path(),
        &["status", "--config", "relay.toml"],
        "connections: 2 ",
    );

    write("max-clients = 2\nmax-rooms = 3\n").unwrap();
    hangup(&relay);
    let line = relay.wait_for_log("reloaded (SIGHUP)");
    assert!(line.contains("applied max-clients=2"), "{line}");
    assert!(
        line.contains("needs a restart to change max-rooms"),
        "{line}"
    );
    let mut refused = TestClient::connect(relay.addr, &relay.key);
    assert!(refused.closed_within(WAIT), "a third client got in");
    relay.wait_for_log("--max-clients (2) reached");
    let status = wait_for_status(
        dir.path(),
        &["status", "--config", "relay.toml"],
        "max-clients=2 ",
    );
    assert!(status.contains("applied max-clients=2"), "{status}");

    write("max-clients = \"many\"\n").unwrap();
    hangup(&relay);
    relay.wait_for_log("config not reloaded (SIGHUP), keeping the settings in force");
    // The file no longer parses: name the socket instead.
    let status = wait_for_status(
        dir.path(),
        &["status", "--socket", "admin.sock"],
        "not reloaded",
    );
    assert!(
        status.contains("line 2: max-clients: invalid type"),
        "{status}"
    );
    assert!(status.contains("max-clients=2 "), "{status}");
    let (status, _) = relay.terminate();
    assert!(status.success());
    assert!(
        !dir.path().join("admin.sock").exists(),
        "socket left behind"
    );
}

/// `relay status ARGS` until it prints `needle` (bounded); what it
/// printed.
fn wait_for_status(dir: &Path, args: &[&str], needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let run = relay(dir, args);
        if run.code == Some(0) && run.stdout.contains(needle) {
            for line in [
                "connections: ",
                "rooms: ",
                "members online: ",
                "queue bytes: ",
            ] {
                assert!(run.stdout.contains(line), "{}", run.stdout);
            }
            return run.stdout;
        }
        assert!(
            Instant::now() < deadline,
            "relay status never said {needle:?}: {} {}",
            run.stdout,
            run.stderr
        );
        sleep(Duration::from_millis(50));
    }
}

/// With a state directory, `relay members` needs no --file, and the relay
/// serves members.txt from it; `relay status` counts who is online.
#[test]
fn the_state_dir_holds_the_members() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("relay.toml"),
        "state-dir = \"state\"\nmembers = \"members.txt\"\nadmin-socket = \"admin.sock\"\n",
    )
    .unwrap();
    let add = relay(
        dir.path(),
        &[
            "members",
            "add",
            "alice",
            "--config",
            "relay.toml",
            "--static-keys",
        ],
    );
    assert_eq!(add.code, Some(0), "{}", add.stderr);
    assert!(add.stdout.contains("state/members.txt"), "{}", add.stdout);
    let list = relay(dir.path(), &["--config", "relay.toml", "members", "list"]);
    assert_eq!(list.stdout, "alice\n", "{}", list.stderr);
    let none = relay(dir.path(), &["members", "list"]);
    if !Path::new("/etc/eaxchat/relay.toml").exists() {
        assert_eq!(none.code, Some(2));
        assert!(none.stderr.contains("Give --file FILE"), "{}", none.stderr);
    }

    let alice = Key::read_file(&dir.path().join("alice.key"))
        .unwrap()
        .unwrap();
    let mut command = Command::new(relay_binary());
    command
        .current_dir(dir.path())
        .args(["--config", "relay.toml", "--listen", "127.0.0.1:0"]);
    let mut relay = RelayProcess::spawn(command, alice.clone());
    let line = relay.wait_for_log("listening on ");
    assert!(
        line.contains("members mode: 1 members from state/members.txt"),
        "{line}"
    );
    let mut client = TestClient::connect(relay.addr, &alice);
    client.send(b"");
    let status = wait_for_status(
        dir.path(),
        &["status", "--config", "relay.toml"],
        "members online: 1 (of 1",
    );
    assert!(
        status.contains("connections: 1 (1 authenticated"),
        "{status}"
    );
    let (status, _) = relay.terminate();
    assert!(status.success());
}

/// Every flag of `relay --help` is a key of `relay config defaults`, and
/// every key a flag.
#[test]
fn every_flag_has_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let help = relay(dir.path(), &["--help"]).stdout;
    let mut flags: Vec<&str> = help
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("[--"))
        .map(|word| word.trim_end_matches(']'))
        .filter(|flag| !["config", "version", "help"].contains(flag))
        .collect();
    flags.sort_unstable();
    flags.dedup();
    let defaults = relay(dir.path(), &["config", "defaults"]).stdout;
    let mut keys: Vec<&str> = defaults
        .lines()
        .map(|line| line.strip_prefix("# ").unwrap_or(line))
        .filter_map(|line| line.split_once(" = ").map(|(key, _)| key))
        .filter(|key| {
            key.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        .collect();
    keys.sort_unstable();
    assert!(flags.len() > 40, "{help}");
    assert_eq!(flags, keys);
}
