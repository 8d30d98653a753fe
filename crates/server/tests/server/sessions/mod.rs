//! A session relay over real sockets: the real `relay` with `--identity`
//! and a members file of public keys, spoken to by `chat`, by a session
//! client made of the protocol crate's handshake ([`SessionConn`]), and by
//! raw bytes. What each file proves:
//! - `chat`: `chat` with an identity and `--relay-key` chats with another
//!   member; the key request of trust on first use; an unknown key and a
//!   client that pinned another relay key are refused, naming fingerprints.
//! - `replay`: what `chat` sent, recorded on the wire, is refused in
//!   another session, after a restart, and by a second relay of the same
//!   members file.
//! - `lifecycle`: the relay's identity file, `relay key show`, the
//!   handshake deadline, a device removed on reload, a reload of the other
//!   kind of file, and the deprecation warning of static-key members.
//! - `invites`: `relay invite`, joins by link, their refusals and bounds.
//! - `invites_members`: `--members-invite`: `chat invite NAME`, refused
//!   without the flag or for a taken name, and the inviter recorded.
//! - `members_cli`: `relay members add|remove|list|migrate` on sessions
//!   files.
//!
//! Every wait is bounded; every process is stopped by its PID (on drop).

mod chat;
mod invites;
mod invites_members;
mod lifecycle;
mod members_cli;
mod replay;

use eaxchat_test_support as util;

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::BytesMut;
use eaxchat_proto::session::identity_file::generate_identity;
use eaxchat_proto::session::{Initiator, PublicKey, Session, SessionError, StaticSecret};
use util::{RelayProcess, TestClient, WAIT, random_key};

/// One test's files: the relay's identity, the members file, and the
/// members' identities, in a temporary directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub relay_identity: PathBuf,
    pub members: PathBuf,
}

impl Fixture {
    /// A members file with `members`: each a name and a device, whose
    /// identity is written to `NAME-N.identity` (N counting the name's
    /// devices from 1). The relay's identity is not made: the relay makes
    /// it on its first start.
    pub fn new(members: &[&str]) -> (Fixture, Vec<StaticSecret>) {
        let dir = tempfile::tempdir().unwrap();
        let relay_identity = dir.path().join("relay.identity");
        let file = dir.path().join("members.txt");
        let mut text = String::from("# session members\n");
        let mut secrets = Vec::new();
        for (i, name) in members.iter().enumerate() {
            let n = members[..i].iter().filter(|other| *other == name).count() + 1;
            let secret =
                generate_identity(&dir.path().join(format!("{name}-{n}.identity"))).unwrap();
            text.push_str(&format!("{name} {}\n", secret.public_key()));
            secrets.push(secret);
        }
        fs::write(&file, text).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let fixture = Fixture {
            dir,
            relay_identity,
            members: file,
        };
        (fixture, secrets)
    }

    /// A path in the fixture's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The identity file of `name`'s device `n`.
    pub fn identity_file(&self, name: &str, n: usize) -> String {
        self.path(&format!("{name}-{n}.identity"))
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Starts the relay on the members file with this identity and `extra`.
    pub fn start(&self, extra: &[&str]) -> SessionRelay {
        self.start_as(&self.relay_identity, extra)
    }

    /// Starts a relay on the members file with the identity at `identity`.
    pub fn start_as(&self, identity: &Path, extra: &[&str]) -> SessionRelay {
        let mut args = vec!["--identity", identity.to_str().unwrap()];
        args.extend_from_slice(extra);
        let relay = RelayProcess::start_members(&self.members, &args);
        let key = relay_key_from_log(&relay.log());
        SessionRelay {
            process: relay,
            key,
        }
    }
}

/// A session relay process and the public key it logged.
pub struct SessionRelay {
    pub process: RelayProcess,
    pub key: PublicKey,
}

impl SessionRelay {
    pub fn addr(&self) -> SocketAddr {
        self.process.addr
    }

    /// A session as `secret`'s device; panics if refused.
    pub fn connect(&self, secret: &StaticSecret) -> SessionConn {
        SessionConn::connect(self.addr(), secret, &self.key)
            .unwrap_or_else(|e| panic!("handshake refused: {e}"))
    }
}

/// The relay's public key, from its start-up line
/// `relay identity x25519:… (SHA256:…)`.
pub fn relay_key_from_log(log: &str) -> PublicKey {
    let line = log
        .lines()
        .find(|line| line.contains("relay identity x25519:"))
        .unwrap_or_else(|| panic!("no relay identity line:\n{log}"));
    let key = line
        .split("relay identity ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    key.parse()
        .unwrap_or_else(|e| panic!("{key:?} in {line:?}: {e}"))
}

/// A member's session over a real socket: the handshake of the protocol
/// crate, then frames sealed and opened in that session.
pub struct SessionConn {
    pub raw: TestClient,
    pub session: Session,
    /// The name the relay's welcome stamped.
    pub name: String,
}

impl SessionConn {
    /// Connects as `secret`'s device to the relay pinned as `relay`: the
    /// hello, then the welcome (or the refusal, as the error).
    pub fn connect(
        addr: SocketAddr,
        secret: &StaticSecret,
        relay: &PublicKey,
    ) -> Result<SessionConn, SessionError> {
        let mut raw = TestClient::connect(addr, &random_key());
        let (initiator, hello) = Initiator::start(secret, relay, b"").unwrap();
        raw.send_raw(&hello);
        let reply = raw.recv_line();
        let established = initiator.finish(&reply)?;
        Ok(SessionConn {
            raw,
            session: established.session,
            name: established.name,
        })
    }

    /// Seals `text` as the next frame, without sending it.
    pub fn seal(&mut self, text: &[u8]) -> Vec<u8> {
        let mut line = BytesMut::new();
        self.session.seal_into(text, &mut line).unwrap();
        line.to_vec()
    }

    /// Sends `text` as the next frame.
    pub fn send(&mut self, text: &[u8]) {
        let line = self.seal(text);
        self.raw.send_raw(&line);
    }

    /// The next frame, opened in the session (bounded wait).
    pub fn recv(&mut self) -> Vec<u8> {
        let line = self.raw.recv_line();
        self.session
            .open(&line)
            .unwrap_or_else(|e| panic!("a frame that does not open in its session: {e}"))
            .to_vec()
    }

    /// Waits (bounded) for a frame whose text contains `needle`, skipping
    /// others (notices, events).
    pub fn recv_containing(&mut self, needle: &str) -> String {
        loop {
            let text = String::from_utf8(self.recv()).unwrap();
            if text.contains(needle) {
                return text;
            }
        }
    }

    /// Nothing arrives within `wait`.
    pub fn expect_silence(&mut self, wait: Duration) {
        self.raw.expect_silence(wait);
    }
}

/// A short wait for "nothing more arrives".
pub const QUIET: Duration = Duration::from_millis(300);

/// Runs `relay ARGS` to its end (bounded); returns its exit code, stdout
/// and stderr.
pub fn relay_command(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let run = util::run_relay(dir, args);
    (run.code, run.stdout, run.stderr)
}
