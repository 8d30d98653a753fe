//! The `chat` binary against a stand-in relay in the test, which reads
//! exactly what chat sends and sends what a real relay would not: members
//! mode (the identifying hello first, on every connection, and no name
//! prefix), a shared key's hello, a frame under another key, and a frame
//! the relay replays.

use eaxchat_test_support as util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::Key;
use util::{Lines, WAIT, random_key};

use super::process::ChatProcess;

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
        FakeConn {
            lines: Lines::new(util::accept_within(&self.listener, WAIT, "chat")),
            cipher: Cipher::new(&self.key).expect("cipher"),
        }
    }
}

/// One connection from chat to the [`FakeRelay`].
struct FakeConn {
    lines: Lines,
    cipher: Cipher,
}

impl FakeConn {
    /// The next line chat sent, within `wait`; `None` if none came.
    fn try_line(&mut self, wait: Duration) -> Option<Vec<u8>> {
        self.lines.try_line(wait)
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
    conn.lines.stream.write_all(&line).expect("write the frame");
    let status = chat.wait_exit();
    assert!(!status.success());
    let stderr = chat.stderr();
    assert!(
        stderr.contains("wrong key, or the frame was tampered with"),
        "{stderr}"
    );
    assert!(chat.stdout().is_empty());
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
    let mut stream = util::accept_within(&listener, WAIT, "chat");
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

/// Finding 6 of issue #29: a frame chat sealed itself, sent back by the
/// relay (or by anyone on the path), is dropped: never shown, and chat goes
/// on to show the next frame. The "relay" is a listener in the test.
#[test]
fn its_own_frame_reflected_back_is_not_shown() {
    let key = random_key();
    let relay = FakeRelay::start(&key);
    let mut chat = ChatProcess::start(relay.addr(), &key, &[]);
    let mut conn = relay.accept();
    assert_eq!(conn.recv(), b"/hello eaxchat/1");
    chat.type_text(b"secret plan\n");
    let mut own = conn.try_line(WAIT).expect("chat sent its line");
    own.push(b'\n');
    conn.lines.stream.write_all(&own).expect("reflect it");
    let mut line = bytes::BytesMut::new();
    Cipher::new(&key)
        .expect("cipher")
        .seal_into(b"from the relay", &mut line);
    conn.lines
        .stream
        .write_all(&line)
        .expect("a frame of the relay's");
    chat.wait_for_stdout("from the relay");
    let stdout = String::from_utf8_lossy(&chat.stdout()).into_owned();
    assert!(!stdout.contains("secret plan"), "{stdout}");
    assert!(chat.is_running(), "{}", chat.stderr());
}
