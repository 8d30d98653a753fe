//! The `chat` binary against the real relay: pipe mode, printing hostile
//! text safely, listen-only, each failure it must report clearly, the local
//! length limit, reconnecting to a relay that came back, and the relay's
//! `eaxchat/1` events printed as the plain lines they stand for.

use eaxchat_test_support as util;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use eaxchat_proto::wire::{DEFAULT_MAX_FRAME, max_plaintext_len};
use util::{RelayProcess, random_key};

use super::process::ChatProcess;

/// The `stats:` line's value for `field`.
fn stat(log: &str, field: &str) -> u64 {
    let line = log
        .lines()
        .rfind(|line| line.contains("stats: "))
        .unwrap_or_else(|| panic!("no stats line in\n{log}"));
    let prefix = format!("{field}=");
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&prefix))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {line}"))
}

/// A loopback address where nothing listens.
fn unused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

/// Pipes `a` and `b` into chat (key from a key file) and returns what a
/// client on the relay received.
fn pipe_two_lines(extra: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let mut relay = RelayProcess::start(&[]);
    let mut peer = relay.connect();
    relay.wait_for_log("connected from");
    let dir = tempfile::tempdir().expect("temporary directory");
    let key_file = dir.path().join("friend.key");
    std::fs::write(&key_file, format!("{}\n", relay.key.to_hex())).expect("write key file");
    let addr = relay.addr.to_string();
    let mut args = vec![
        "--connect",
        &addr,
        "--key-file",
        key_file.to_str().expect("UTF-8 path"),
    ];
    args.extend_from_slice(extra);
    let mut chat = ChatProcess::start_args(&args);
    chat.type_text(b"a\nb\n");
    chat.close_stdin();
    let status = chat.wait_exit();
    assert!(status.success(), "{status}: {}", chat.stderr());
    (peer.recv(), peer.recv())
}

/// `printf 'a\nb\n' | chat` sends both lines, then exits 0 by itself.
#[test]
fn pipe_mode_sends_every_line_and_exits_zero() {
    assert_eq!(pipe_two_lines(&[]), (b"a".to_vec(), b"b".to_vec()));
}

/// `--name` prefixes each message with `NAME: `.
#[test]
fn name_prefixes_every_message() {
    assert_eq!(
        pipe_two_lines(&["--name", "alice"]),
        (b"alice: a".to_vec(), b"alice: b".to_vec())
    );
}

/// A peer's escape sequences, carriage returns, bells, C1 controls and
/// invalid UTF-8 reach the terminal only as inert, visible characters.
#[test]
fn prints_peer_messages_with_controls_neutralised() {
    let mut relay = RelayProcess::start(&[]);
    let mut chat = ChatProcess::start(relay.addr, &relay.key, &[]);
    chat.wait_for_stderr("connected to");
    let mut peer = relay.connect();
    relay.wait_for_log_count("connected from", 2);

    peer.send("hello, wörld\tok".as_bytes());
    assert_eq!(chat.wait_for_stdout("hello"), "hello, wörld\tok");

    let hostile: &[u8] =
        b"evil\x1b[2J\x1b]0;owned\x07 fake\rline\nsplit \xc2\x9b31m \xff\xfe\x7f end";
    peer.send(hostile);
    let shown = chat.wait_for_stdout("evil");
    assert_eq!(
        shown,
        "evil␛[2J␛]0;owned␇ fake␍line␊split \u{fffd}31m \u{fffd}\u{fffd}␡ end"
    );
    let raw = chat.stdout();
    for control in [0x1b, b'\r', 0x07, 0x7f] {
        assert!(!raw.contains(&control), "{control:#x} reached stdout");
    }
    assert!(
        !raw.windows(2).any(|w| w == b"\xc2\x9b"),
        "C1 CSI reached stdout"
    );
    assert_eq!(raw.iter().filter(|&&b| b == b'\n').count(), 2);
}

/// `--listen-only` prints what arrives, sends nothing from stdin, does not
/// stop when stdin ends, and fails clearly when the relay goes away.
#[test]
fn listen_only_prints_and_never_sends() {
    let mut relay = RelayProcess::start(&[]);
    let mut chat = ChatProcess::start(relay.addr, &relay.key, &["--listen-only"]);
    chat.wait_for_stderr("connected to");
    let mut peer = relay.connect();
    relay.wait_for_log_count("connected from", 2);

    chat.type_text(b"must not be sent\n");
    chat.close_stdin();
    peer.send(b"to the listener");
    assert_eq!(chat.wait_for_stdout("listener"), "to the listener");
    peer.expect_silence(Duration::from_millis(300));
    assert!(chat.is_running(), "stdin's end stopped a listener");

    let (status, log) = relay.terminate();
    assert!(status.success());
    assert_eq!(stat(&log, "frames_in"), 1, "{log}");
    let status = chat.wait_exit();
    assert!(!status.success());
    assert!(
        chat.stderr().contains("closed the connection"),
        "{}",
        chat.stderr()
    );
}

/// A relay that is not there: one line naming the address, non-zero exit.
#[test]
fn unreachable_relay_fails_with_the_address() {
    let addr = unused_addr();
    let mut chat = ChatProcess::start(addr, &random_key(), &[]);
    let status = chat.wait_exit();
    assert!(!status.success());
    let stderr = chat.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&addr.to_string()), "{stderr}");
    assert!(stderr.contains("cannot reach the relay"), "{stderr}");
}

/// A missing or malformed key is one clear line and a non-zero exit, before
/// any connection is tried.
#[test]
fn missing_or_malformed_key_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.key");
    let malformed = dir.path().join("malformed.key");
    std::fs::write(&malformed, "not hex at all\n").unwrap();
    let addr = unused_addr().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["--key-file", missing.to_str().unwrap()], "missing.key"),
        (
            &["--key-file", malformed.to_str().unwrap()],
            "malformed.key",
        ),
        (&["--key-hex", "0123"], "--key-hex"),
    ];
    for (key_args, want) in cases {
        let mut args = vec!["--connect", &addr];
        args.extend_from_slice(key_args);
        let mut chat = ChatProcess::start_args(&args);
        let status = chat.wait_exit();
        assert!(!status.success(), "{key_args:?}");
        let stderr = chat.stderr();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
        assert!(!stderr.contains("cannot reach"), "{stderr}");
    }
}

/// Sending under another key than the relay's: the relay drops chat, and
/// chat says so with a hint at the key instead of exiting 0.
#[test]
fn sending_under_another_key_is_reported_with_a_hint() {
    let mut relay = RelayProcess::start(&[]);
    // A long linger: chat must end because the relay dropped it, not
    // because the linger ran out.
    let mut chat = ChatProcess::start(relay.addr, &random_key(), &["--linger-ms", "60000"]);
    chat.type_text(b"hello\n");
    chat.close_stdin();
    let status = chat.wait_exit();
    assert_eq!(status.code(), Some(1));
    let stderr = chat.stderr();
    assert!(stderr.contains("closed the connection"), "{stderr}");
    assert!(stderr.contains("is the key right?"), "{stderr}");
    relay.wait_for_log("tag mismatch");
}

/// A message that would make a line longer than `--max-frame` is refused by
/// chat itself: the relay never sees it, the messages around it still go,
/// and the name prefix counts toward the limit.
#[test]
fn an_oversized_message_is_refused_locally() {
    let mut relay = RelayProcess::start(&[]);
    let mut peer = relay.connect();
    relay.wait_for_log("connected from");
    let max_len = max_plaintext_len(DEFAULT_MAX_FRAME);
    let prefix = "bob: ";
    let fits = "x".repeat(max_len - prefix.len());
    let too_long = "y".repeat(max_len - prefix.len() + 1);

    let mut chat = ChatProcess::start(relay.addr, &relay.key, &["--name", "bob"]);
    chat.type_text(format!("{fits}\n{too_long}\nafter\n").as_bytes());
    chat.close_stdin();
    let status = chat.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", chat.stderr());
    let stderr = chat.stderr();
    assert!(stderr.contains("message not sent"), "{stderr}");
    assert!(
        stderr.contains(&format!("{} bytes", max_len + 1)),
        "{stderr}"
    );
    assert!(stderr.contains("1 message was not sent"), "{stderr}");

    assert_eq!(peer.recv(), format!("{prefix}{fits}").into_bytes());
    assert_eq!(peer.recv(), b"bob: after");
    let (_, log) = relay.terminate();
    assert_eq!(stat(&log, "frames_in"), 2, "{log}");
    assert_eq!(stat(&log, "rejected_too_long"), 0, "{log}");
    assert!(!log.contains("longer than"), "{log}");
}

/// With `--reconnect`, chat says the relay went away, keeps trying, and
/// chats again once a relay with the same key is back on the same port.
#[test]
fn reconnect_finds_a_relay_that_came_back() {
    let key = random_key();
    let mut first = RelayProcess::start_with_key(key.clone(), &[]);
    let addr = first.addr;
    let mut chat = ChatProcess::start(addr, &key, &["--reconnect"]);
    chat.wait_for_stderr("connected to");
    first.wait_for_log("connected from");
    drop(first);
    chat.wait_for_stderr("relay went away");
    chat.wait_for_stderr("reconnecting in");

    // The port may be taken for a moment by someone else: try a few times.
    let mut second = (0..20)
        .find_map(|_| {
            RelayProcess::try_start_on(addr, key.clone(), &[]).or_else(|| {
                std::thread::sleep(Duration::from_millis(100));
                None
            })
        })
        .unwrap_or_else(|| panic!("no relay could listen on {addr} again"));
    let mut peer = second.connect();
    chat.wait_for_stderr("reconnected to");
    second.wait_for_log_count("connected from", 2);

    chat.type_text(b"back again\n");
    assert_eq!(peer.recv(), b"back again");
    peer.send(b"welcome back");
    assert_eq!(chat.wait_for_stdout("welcome"), "welcome back");
    assert!(chat.is_running());
}

/// chat asks for structured events and prints each as the relay's plain
/// text would read: history on joining, notices, actions, private
/// messages; the welcome is not printed.
#[test]
fn events_print_as_the_plain_lines_they_stand_for() {
    let mut relay = RelayProcess::start(&["--history", "10", "--presence", "on"]);
    let mut peer = relay.connect();
    peer.send(b"/nick peer");
    assert_eq!(peer.recv(), b"* you are now peer");
    peer.send(b"said before chat came");
    let mut chat = ChatProcess::start(relay.addr, &relay.key, &[]);
    chat.wait_for_stdout("said before chat came");
    relay.wait_for_log_count("connected from", 2);
    peer.send(b"/me waves");
    chat.wait_for_stdout("* peer waves");
    chat.type_text(b"/nick chatter\n");
    chat.wait_for_stdout("* you are now chatter");
    assert_eq!(peer.recv(), b"* chatter joined #lobby (2 here)");
    peer.send(b"/msg chatter psst");
    chat.wait_for_stdout("[private] peer: psst");
    let stdout = String::from_utf8_lossy(&chat.stdout()).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "* the last 1 message in #lobby:",
            "said before chat came",
            "* peer waves",
            "* you are now chatter",
            "[private] peer: psst",
        ]
    );
}
