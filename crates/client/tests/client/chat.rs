//! The `chat` binary against the real relay: pipe mode, printing hostile
//! text safely, listen-only, each failure it must report clearly, the local
//! length limit, and reconnecting to a relay that came back. Members mode
//! against a stand-in relay in the test: the identifying empty frame first,
//! on every connection, and no name prefix.

use eaxchat_test_support as util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::Key;

use eaxchat_proto::wire::{DEFAULT_MAX_FRAME, max_plaintext_len};
use util::{RelayProcess, WAIT, random_key};

/// A running `chat`, its stdout and stderr collected as they arrive.
struct ChatProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl ChatProcess {
    /// Starts `chat` connected to `addr` with `key` (as `--key-hex`).
    fn start(addr: SocketAddr, key: &Key, extra: &[&str]) -> ChatProcess {
        let addr = addr.to_string();
        let hex = key.to_hex();
        let mut args = vec!["--connect", &addr, "--key-hex", &hex];
        args.extend_from_slice(extra);
        ChatProcess::start_args(&args)
    }

    /// Starts `chat` with exactly `args`, stdin a pipe left open.
    fn start_args(args: &[&str]) -> ChatProcess {
        let mut child = Command::new(util::chat_binary())
            .args(args)
            .env_remove("EAXCHAT_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chat");
        let stdout = collect(child.stdout.take().expect("piped stdout"));
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        ChatProcess {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    /// Types `text` (lines with their `\n`).
    fn type_text(&mut self, text: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(text).expect("write to chat's stdin");
        stdin.flush().expect("flush chat's stdin");
    }

    /// Ends chat's input, as the end of a pipe does.
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().expect("stdout lock").clone()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr lock")).into_owned()
    }

    /// Waits (bounded) for a line on stdout containing `needle`.
    fn wait_for_stdout(&mut self, needle: &str) -> String {
        self.wait_for(needle, |chat| {
            String::from_utf8_lossy(&chat.stdout()).into_owned()
        })
    }

    /// Waits (bounded) for a line on stderr containing `needle`.
    fn wait_for_stderr(&mut self, needle: &str) -> String {
        self.wait_for(needle, ChatProcess::stderr)
    }

    fn wait_for(&mut self, needle: &str, text: impl Fn(&ChatProcess) -> String) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = text(self);
            if let Some(line) = all.lines().find(|line| line.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "chat did not print {needle:?} within {WAIT:?}\nstdout: {:?}\nstderr: {}",
                String::from_utf8_lossy(&self.stdout()),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (bounded) for chat to exit; returns its status once its output
    /// has been collected.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the collecting threads catch the last bytes.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "chat did not exit within {WAIT:?}\nstderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChatProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drains `pipe` on a thread into a shared buffer.
fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buffer);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("sink lock")
                .extend_from_slice(&chunk[..n]);
        }
    });
    buffer
}

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

/// A frame that does not open under chat's key ends chat with the
/// "wrong key" message and a non-zero exit; nothing of it is printed.
#[test]
fn a_frame_under_another_key_is_reported_and_ends_chat() {
    let key = random_key();
    let relay = FakeRelay::start(&key);
    let mut chat = ChatProcess::start(relay.addr(), &key, &[]);
    let mut conn = relay.accept();
    assert_eq!(conn.recv(), b"/hello eaxchat/1");
    let mut line = bytes::BytesMut::new();
    Cipher::new(&random_key())
        .expect("cipher")
        .seal_into(b"secret", &mut line);
    conn.stream.write_all(&line).expect("write the frame");
    let status = chat.wait_exit();
    assert!(!status.success());
    let stderr = chat.stderr();
    assert!(
        stderr.contains("wrong key, or the frame was tampered with"),
        "{stderr}"
    );
    assert!(chat.stdout().is_empty());
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

/// A stand-in for a members relay: a listener in the test that reads what
/// chat sends and opens it with the member's key.
struct FakeRelay {
    listener: TcpListener,
    key: Key,
}

impl FakeRelay {
    fn start(key: &Key) -> FakeRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        FakeRelay {
            listener,
            key: key.clone(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("local addr")
    }

    /// Waits (bounded) for chat to connect.
    fn accept(&self) -> FakeConn {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).expect("blocking stream");
                    return FakeConn {
                        stream,
                        cipher: Cipher::new(&self.key).expect("cipher"),
                        inbox: Vec::new(),
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "chat did not connect in {WAIT:?}"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
}

/// One connection from chat to the [`FakeRelay`].
struct FakeConn {
    stream: TcpStream,
    cipher: Cipher,
    inbox: Vec<u8>,
}

impl FakeConn {
    /// The next line chat sent, within `wait`; `None` if none came.
    fn try_line(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(end) = self.inbox.iter().position(|&b| b == b'\n') {
                let line = self.inbox[..end].to_vec();
                self.inbox.drain(..=end);
                return Some(line);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.inbox.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Opens the next message chat sent (waiting at most [`WAIT`]).
    fn recv(&mut self) -> Vec<u8> {
        let line = self
            .try_line(WAIT)
            .unwrap_or_else(|| panic!("chat sent nothing within {WAIT:?}"));
        self.cipher
            .open(&line)
            .unwrap_or_else(|e| panic!("chat sent a frame that does not open: {e}"))
            .to_vec()
    }

    /// Asserts chat sends nothing more within `wait`.
    fn expect_silence(&mut self, wait: Duration) {
        if let Some(line) = self.try_line(wait) {
            panic!("expected nothing, got {:?}", String::from_utf8_lossy(&line));
        }
    }
}

/// Writes `key` as `member`'s key file, as `relay members add` does.
fn member_key_file(dir: &Path, member: &str, key: &Key) -> String {
    let path = dir.join(format!("{member}.key"));
    key.write_new_member_file(&path, member)
        .expect("write member key file");
    path.to_str().expect("UTF-8 path").to_owned()
}

/// With a member key file, chat's first frame is `/hello eaxchat/1` (it
/// asks for structured events and identifies the member), then each typed
/// line without any prefix; no `--name` is needed.
#[test]
fn a_member_key_file_identifies_first_then_sends_plain_lines() {
    let key = random_key();
    let dir = tempfile::tempdir().expect("temporary directory");
    let key_file = member_key_file(dir.path(), "alice", &key);
    let relay = FakeRelay::start(&key);
    let addr = relay.addr().to_string();
    let mut chat = ChatProcess::start_args(&["--connect", &addr, "--key-file", &key_file]);
    let mut conn = relay.accept();
    assert_eq!(
        conn.recv(),
        b"/hello eaxchat/1",
        "the identifying frame comes first"
    );
    chat.type_text(b"hello\n");
    assert_eq!(conn.recv(), b"hello");
    chat.close_stdin();
    drop(conn);
    let _ = chat.wait_exit();
    assert!(!chat.stderr().contains("warning"), "{}", chat.stderr());
}

/// `--member` turns members mode on for a key given any other way; a
/// `--name` then only draws one warning and adds no prefix.
#[test]
fn member_switch_warns_about_name_and_adds_no_prefix() {
    let key = random_key();
    let relay = FakeRelay::start(&key);
    let mut chat = ChatProcess::start(relay.addr(), &key, &["--member", "--name", "mallory"]);
    let mut conn = relay.accept();
    assert_eq!(conn.recv(), b"/hello eaxchat/1");
    chat.type_text(b"one\ntwo\n");
    assert_eq!(conn.recv(), b"one");
    assert_eq!(conn.recv(), b"two");
    let warning = "in members mode the relay stamps your name; --name is ignored";
    chat.wait_for_stderr(warning);
    assert_eq!(
        chat.stderr().matches(warning).count(),
        1,
        "{}",
        chat.stderr()
    );
}

/// `--listen-only` in members mode sends the identifying frame (the hello)
/// and nothing else, whatever is typed.
#[test]
fn listen_only_member_sends_only_the_identifying_frame() {
    let key = random_key();
    let dir = tempfile::tempdir().expect("temporary directory");
    let key_file = member_key_file(dir.path(), "bob", &key);
    let relay = FakeRelay::start(&key);
    let addr = relay.addr().to_string();
    let mut chat =
        ChatProcess::start_args(&["--connect", &addr, "--key-file", &key_file, "--listen-only"]);
    let mut conn = relay.accept();
    assert_eq!(conn.recv(), b"/hello eaxchat/1");
    chat.type_text(b"must not be sent\n");
    conn.expect_silence(Duration::from_millis(300));
    assert!(chat.is_running());
}

/// After a reconnect, a member identifies again before anything else: the
/// hello, then the line typed while away.
#[test]
fn a_member_identifies_again_after_reconnecting() {
    let key = random_key();
    let relay = FakeRelay::start(&key);
    let mut chat = ChatProcess::start(relay.addr(), &key, &["--member", "--reconnect"]);
    let mut first = relay.accept();
    assert_eq!(first.recv(), b"/hello eaxchat/1");
    drop(first);
    chat.wait_for_stderr("relay went away");
    chat.type_text(b"while away\n");
    let mut second = relay.accept();
    assert_eq!(second.recv(), b"/hello eaxchat/1", "identified again first");
    assert_eq!(second.recv(), b"while away");
}

/// A shared key (a key file without the member line) sends no empty frame:
/// the first frame asks for structured events, the next is the first typed
/// line.
#[test]
fn a_shared_key_asks_for_events_and_sends_no_empty_frame() {
    let key = random_key();
    let dir = tempfile::tempdir().expect("temporary directory");
    let key_file = dir.path().join("relay.key");
    key.write_new_file(&key_file).expect("write key file");
    let relay = FakeRelay::start(&key);
    let addr = relay.addr().to_string();
    let mut chat = ChatProcess::start_args(&[
        "--connect",
        &addr,
        "--key-file",
        key_file.to_str().expect("UTF-8 path"),
    ]);
    let mut conn = relay.accept();
    assert_eq!(conn.recv(), b"/hello eaxchat/1");
    conn.expect_silence(Duration::from_millis(300));
    chat.type_text(b"first\n");
    assert_eq!(conn.recv(), b"first");
}

/// A frame from the relay sent twice on one connection: chat prints it
/// once, then reports the replay, closes the connection and exits 1. The
/// "relay" is a listener in the test.
#[test]
fn a_replayed_frame_from_the_relay_ends_chat() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let key = random_key();
    let mut chat = ChatProcess::start(listener.local_addr().expect("addr"), &key, &[]);
    let deadline = Instant::now() + WAIT;
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "chat did not connect");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("accept: {error}"),
        }
    };
    stream.set_nonblocking(false).expect("blocking");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut line = bytes::BytesMut::new();
    eaxchat_proto::cipher::Cipher::new(&key)
        .expect("cipher")
        .seal_into(b"said once", &mut line);
    stream.write_all(&line).expect("first copy");
    chat.wait_for_stdout("said once");
    stream.write_all(&line).expect("second copy");

    let status = chat.wait_exit();
    assert_eq!(status.code(), Some(1));
    let stderr = chat.stderr();
    assert!(stderr.contains("replayed frame from the relay"), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&chat.stdout())
            .matches("said once")
            .count(),
        1
    );
    // The connection is closed: the fake relay reads its end, after the
    // one frame chat sent (its hello).
    let mut rest = Vec::new();
    assert!(stream.read_to_end(&mut rest).is_ok());
    assert_eq!(rest.iter().filter(|&&b| b == b'\n').count(), 1);
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
