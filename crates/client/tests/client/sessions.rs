//! The `chat` binary with an identity file, against a stand-in relay that
//! speaks sessions ([`SessionRelay`]): pipe mode both ways under the
//! session's keys, a new handshake on each reconnect, a refusal, a relay
//! key that is not the pinned one, pinning a `--relay-key` in the known
//! relays file, identity files that are too open, and `chat keygen`.
//! Trust on first use by key request is [`super::first_use`]'s.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use eaxchat_client::identity::read_key_file;
use eaxchat_proto::session::{PublicKey, Responder, SessionError};

use super::process::ChatProcess;
use super::session_stand_in::{SessionRelay, identity_file};

/// The arguments for a session with `relay`: its address, the identity,
/// and a known relays file in `dir`, then `extra`.
pub fn session_args(
    relay: &SessionRelay,
    identity: &str,
    dir: &Path,
    extra: &[&str],
) -> Vec<String> {
    let mut args = vec![
        "--connect".to_owned(),
        relay.addr().to_string(),
        "--key-file".to_owned(),
        identity.to_owned(),
        "--known-relays".to_owned(),
        known_relays(dir),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args
}

/// The known relays file in `dir`.
pub fn known_relays(dir: &Path) -> String {
    dir.join("known_relays")
        .to_str()
        .expect("UTF-8 path")
        .to_owned()
}

/// Starts `chat` with `args`.
pub fn start(args: &[String]) -> ChatProcess {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ChatProcess::start_args(&args)
}

/// One test's member and stand-in: alice's identity (0600) in a new
/// directory, and a stand-in relay that knows her.
pub struct Alice {
    pub dir: tempfile::TempDir,
    pub identity: String,
    pub public: PublicKey,
    pub relay: SessionRelay,
}

impl Alice {
    pub fn new() -> Alice {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (identity, public) = identity_file(dir.path(), "alice");
        let relay = SessionRelay::start(&[(public, "alice")]);
        Alice {
            dir,
            identity,
            public,
            relay,
        }
    }

    /// `chat` as alice, to the stand-in, with `extra` (and the known
    /// relays file in her directory).
    pub fn chat(&self, extra: &[&str]) -> ChatProcess {
        start(&session_args(
            &self.relay,
            &self.identity,
            self.dir.path(),
            extra,
        ))
    }

    /// As [`Alice::chat`], with the stand-in's key given (`--relay-key`).
    pub fn chat_with_relay_key(&self, extra: &[&str]) -> ChatProcess {
        let key = self.relay.public().to_string();
        self.chat(&[&["--relay-key", key.as_str()], extra].concat())
    }
}

/// Pipe mode with an identity: the handshake, then `/hello eaxchat/1` and
/// each typed line as session frames with no name prefix (the relay
/// stamps it); the relay's frames are printed; stderr names the session.
#[test]
fn pipe_mode_sends_and_receives_session_frames() {
    let alice = Alice::new();
    let relay = &alice.relay;
    let mut chat = alice.chat_with_relay_key(&["--name", "mallory"]);
    let mut conn = relay.accept();
    assert_eq!(conn.session.peer_key(), &alice.public);
    assert_eq!(conn.recv(), b"/hello eaxchat/1");
    chat.type_text(b"hi there\n");
    assert_eq!(
        conn.recv(),
        b"hi there",
        "no name prefix: the relay stamps it"
    );
    conn.send(b"bob: hello alice");
    chat.wait_for_stdout("bob: hello alice");
    let fingerprint = relay.public().fingerprint();
    chat.wait_for_stderr(&format!("session with {fingerprint} as alice"));
    chat.close_stdin();
    let status = chat.wait_exit();
    assert!(status.success(), "{status}: {}", chat.stderr());
}

/// Every connection runs its own handshake: after the relay goes away,
/// chat shakes hands again and sends what was typed meanwhile under the
/// new session, whose counters start over.
#[test]
fn a_reconnect_runs_a_new_handshake() {
    let alice = Alice::new();
    let relay = &alice.relay;
    let mut chat = alice.chat_with_relay_key(&["--reconnect"]);
    let mut first = relay.accept();
    assert_eq!(first.recv(), b"/hello eaxchat/1");
    chat.type_text(b"before\n");
    assert_eq!(first.recv(), b"before");
    drop(first);
    chat.wait_for_stderr("relay went away");
    chat.type_text(b"while away\n");
    let mut second = relay.accept();
    assert_eq!(
        second.recv(),
        b"/hello eaxchat/1",
        "the new session's first frame"
    );
    assert_eq!(second.recv(), b"while away");
    assert_eq!(second.session.opened(), 2, "its counter started over");
    second.send(b"carol: welcome back");
    chat.wait_for_stdout("carol: welcome back");
    chat.wait_for_stderr("reconnected to");
}

/// A refusal (an unknown key) is printed and ends chat with exit code 1;
/// nothing typed is sent.
#[test]
fn a_refusal_is_printed_and_ends_chat() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (identity, public) = identity_file(dir.path(), "stranger");
    let relay = SessionRelay::start(&[]);
    let relay_key = relay.public().to_string();
    let mut chat = start(&session_args(
        &relay,
        &identity,
        dir.path(),
        &["--relay-key", &relay_key],
    ));
    chat.type_text(b"must not be sent\n");
    let hello = relay.accept_hello();
    let responder = Responder::read_hello(&relay.secret, &hello.line).expect("line 1");
    assert_eq!(responder.initiator_key(), &public);
    let text = format!("unknown key {}: ask the operator", public.fingerprint());
    hello.answer_and_close(&responder.refuse(&text));
    let status = chat.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", chat.stderr());
    let stderr = chat.stderr();
    assert!(stderr.contains("refused the session"), "{stderr}");
    assert!(stderr.contains(&text), "{stderr}");
    assert!(chat.stdout().is_empty());
    assert!(
        !Path::new(&known_relays(dir.path())).exists(),
        "a refused relay is not pinned"
    );
}

/// A relay whose key is not the one pinned in known_relays cannot read
/// line 1; its refusal names its key, and chat prints both fingerprints,
/// exits 1 and leaves the pin as it was.
#[test]
fn a_relay_with_another_key_than_the_pin_is_refused_naming_both() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (identity, public) = identity_file(dir.path(), "alice");
    let relay = SessionRelay::start(&[(public, "alice")]);
    let pinned = PublicKey::from_bytes([9; 32]);
    let file = known_relays(dir.path());
    let pins = format!("{} {pinned}\n", relay.addr());
    fs::write(&file, &pins).expect("write known_relays");
    let mut chat = start(&session_args(&relay, &identity, dir.path(), &[]));
    let hello = relay.accept_hello();
    let error = Responder::read_hello(&relay.secret, &hello.line).unwrap_err();
    assert_eq!(error, SessionError::HelloDidNotDecrypt);
    hello.answer_and_close(&Responder::refusal_for(&error, &relay.public()));
    let status = chat.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", chat.stderr());
    let stderr = chat.stderr();
    assert!(
        stderr.contains(&pinned.fingerprint().to_string()),
        "{stderr}"
    );
    assert!(
        stderr.contains(&relay.public().fingerprint().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains(&file), "names the file to edit: {stderr}");
    assert_eq!(
        fs::read_to_string(&file).expect("read"),
        pins,
        "never overwritten"
    );
}

/// Pinning a given key, in the default place (`$XDG_CONFIG_HOME`): with no
/// pin, no `--relay-key` and `--no-trust-new` chat says what to do; a key
/// given once is pinned (0600, directory 0700) after its handshake; the
/// next run uses the pin; a different `--relay-key` is then refused
/// naming both.
#[test]
fn known_relays_pins_a_key_on_first_use_and_refuses_a_change() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("config");
    let env = [("XDG_CONFIG_HOME", config.as_path())];
    let (identity, public) = identity_file(dir.path(), "alice");
    let relay = SessionRelay::start(&[(public, "alice")]);
    let addr = relay.addr().to_string();
    let base = ["--connect", &addr, "--key-file", &identity];
    let file = config.join("eaxchat/known_relays");

    let strict = [&base[..], &["--no-trust-new"]].concat();
    let mut unpinned = ChatProcess::start_args_env(&strict, &env);
    assert_eq!(unpinned.wait_exit().code(), Some(2));
    assert!(
        unpinned.stderr().contains("--relay-key"),
        "{}",
        unpinned.stderr()
    );
    assert!(!file.exists());

    let relay_key = relay.public().to_string();
    let mut first =
        ChatProcess::start_args_env(&[&base[..], &["--relay-key", &relay_key]].concat(), &env);
    let mut conn = relay.accept();
    assert_eq!(conn.recv(), b"/hello eaxchat/1");
    let fingerprint = relay.public().fingerprint().to_string();
    first.wait_for_stderr(&format!("pinned the relay key {fingerprint}"));
    assert_eq!(
        fs::read_to_string(&file).expect("pinned"),
        format!("{addr} {relay_key}\n")
    );
    let mode = |path: &Path| fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().expect("its directory")), 0o700);
    first.close_stdin();
    drop(conn);
    let _ = first.wait_exit();

    let mut again = ChatProcess::start_args_env(&base, &env);
    let mut conn = relay.accept();
    assert_eq!(conn.recv(), b"/hello eaxchat/1");
    again.type_text(b"pinned\n");
    assert_eq!(conn.recv(), b"pinned");
    assert!(
        !again.stderr().contains("pinned the relay key"),
        "{}",
        again.stderr()
    );
    drop(again);

    let other = PublicKey::from_bytes([7; 32]);
    let other_text = other.to_string();
    let mut changed =
        ChatProcess::start_args_env(&[&base[..], &["--relay-key", &other_text]].concat(), &env);
    assert_eq!(changed.wait_exit().code(), Some(2));
    let stderr = changed.stderr();
    assert!(stderr.contains(&fingerprint), "{stderr}");
    assert!(
        stderr.contains(&other.fingerprint().to_string()),
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(&file).expect("still pinned"),
        format!("{addr} {relay_key}\n"),
        "the pin is never replaced"
    );
}

/// A session frame the relay sends twice is refused (the counter has
/// moved on): chat prints it once, then exits 1 naming the replay.
#[test]
fn a_replayed_session_frame_ends_chat() {
    let alice = Alice::new();
    let relay = &alice.relay;
    let mut chat = alice.chat_with_relay_key(&[]);
    let mut conn = relay.accept();
    let line = conn.send(b"said once");
    chat.wait_for_stdout("said once");
    use std::io::Write as _;
    conn.lines.stream.write_all(&line).expect("the copy");
    assert_eq!(chat.wait_exit().code(), Some(1));
    assert!(chat.stderr().contains("replay"), "{}", chat.stderr());
    let stdout = String::from_utf8_lossy(&chat.stdout()).into_owned();
    assert_eq!(stdout.matches("said once").count(), 1, "{stdout}");
}

/// An identity file that group or others can read is refused before
/// connecting, with the chmod to run; at 0600 it is used.
#[test]
fn an_identity_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (identity, public) = identity_file(dir.path(), "alice");
    let mode = fs::metadata(&identity).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "written private");
    fs::set_permissions(&identity, fs::Permissions::from_mode(0o644)).expect("chmod");
    let relay = SessionRelay::start(&[(public, "alice")]);
    let relay_key = relay.public().to_string();
    let args = session_args(&relay, &identity, dir.path(), &["--relay-key", &relay_key]);
    let mut chat = start(&args);
    assert_eq!(chat.wait_exit().code(), Some(2));
    let stderr = chat.stderr();
    assert!(stderr.contains("chmod 600"), "{stderr}");

    fs::set_permissions(&identity, fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut chat = start(&args);
    let mut conn = relay.accept();
    assert_eq!(conn.recv(), b"/hello eaxchat/1");
    chat.close_stdin();
    drop(conn);
    let _ = chat.wait_exit();
}

/// `chat keygen --key-out F` writes a 0600 identity and prints its public
/// key and fingerprint; it never overwrites a file.
#[test]
fn keygen_writes_a_private_identity_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("me.identity");
    let path_text = path.to_str().expect("UTF-8 path");
    let keygen = || {
        let mut chat = ChatProcess::start_args(&["keygen", "--key-out", path_text]);
        let status = chat.wait_exit();
        (status, chat)
    };
    let (status, made) = keygen();
    assert!(status.success(), "{status}: {}", made.stderr());
    let stdout = String::from_utf8(made.stdout()).expect("UTF-8");
    let mut lines = stdout.lines();
    let public: PublicKey = lines
        .next()
        .and_then(|line| line.parse().ok())
        .unwrap_or_else(|| panic!("no public key first: {stdout}"));
    assert_eq!(
        lines.next(),
        Some(public.fingerprint().to_string().as_str())
    );
    let mode = fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let secret = read_key_file(&path).expect("read").expect("an identity");
    assert_eq!(secret.public_key(), &public);
    let text = fs::read(&path).expect("read");

    let (status, again) = keygen();
    assert!(!status.success());
    let stderr = again.stderr();
    assert!(stderr.contains("never overwritten"), "{stderr}");
    assert_eq!(fs::read(&path).expect("read"), text, "left as it was");
}

/// A refusal on a reconnect (the member was removed meanwhile) ends chat
/// like one on the first connection: retrying would meet the same relay.
#[test]
fn a_refusal_on_reconnecting_ends_chat() {
    let alice = Alice::new();
    let relay = &alice.relay;
    let mut chat = alice.chat_with_relay_key(&["--reconnect"]);
    let mut first = relay.accept();
    assert_eq!(first.recv(), b"/hello eaxchat/1");
    drop(first);
    chat.wait_for_stderr("relay went away");
    let hello = relay.accept_hello();
    let responder = Responder::read_hello(&relay.secret, &hello.line).expect("line 1");
    hello.answer_and_close(&responder.refuse("removed key"));
    assert_eq!(chat.wait_exit().code(), Some(1), "{}", chat.stderr());
    assert!(
        chat.stderr()
            .contains("refused the session: \"removed key\""),
        "{}",
        chat.stderr()
    );
}
