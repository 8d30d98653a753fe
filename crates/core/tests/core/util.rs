//! What the relay tests have in common: an in-memory connection
//! ([`Pipe`]) that can stop taking bytes, the relay under one key, a
//! client's sealing, and reading back what a connection was sent; for
//! static-key members mode, member keys, a members relay and a member
//! ([`KeyClient`]); for session mode, device identities, a session relay,
//! and an in-memory session client ([`SessionClient`]). Both kinds of
//! client are a [`Member`], so one chat scenario runs in either mode. It
//! holds no test of its own and never opens a socket.

// Test helpers may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::{self, Write};
use std::path::Path;
use std::time::{Instant, SystemTime};

use bytes::BytesMut;
use eaxchat_core::members::{Members, SessionMembers};
use eaxchat_core::relay::{ChatConfig, CloseReason, ConnId, Limits, Relay};
use eaxchat_core::roster::Roster;
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::Key;
use eaxchat_proto::nonce::Nonces;
use eaxchat_proto::session::{Initiator, Kind, Session, StaticSecret, decode_line};

/// An in-memory connection that takes at most `room` more bytes.
#[derive(Debug, Default)]
pub struct Pipe {
    pub received: Vec<u8>,
    pub room: Option<usize>,
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match self.room {
            Some(0) => return Err(io::ErrorKind::WouldBlock.into()),
            Some(room) => buf.len().min(room),
            None => buf.len(),
        };
        if let Some(room) = &mut self.room {
            *room -= n;
        }
        self.received.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub fn key() -> Key {
    Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap()
}

pub fn relay(limits: Limits) -> Relay<Pipe> {
    Relay::new(
        Cipher::new(&key()).unwrap(),
        limits,
        Instant::now(),
        SystemTime::now(),
    )
}

pub fn seal(text: &[u8]) -> Vec<u8> {
    let mut line = BytesMut::new();
    Cipher::new(&key()).unwrap().seal_into(text, &mut line);
    line.to_vec()
}

/// Flushes every waiting connection and returns the plaintexts `id` has
/// received.
pub fn delivered(relay: &mut Relay<Pipe>, id: ConnId) -> Vec<Vec<u8>> {
    while let Some(other) = relay.next_waiting() {
        relay.flush(other);
    }
    let mut cipher = Cipher::new(&key()).unwrap();
    let received = &relay.io_mut(id).unwrap().received;
    received
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| cipher.open(line).unwrap().to_vec())
        .collect()
}

pub fn closing(relay: &mut Relay<Pipe>) -> Vec<(ConnId, CloseReason)> {
    let mut ids = Vec::new();
    relay.take_closing(&mut ids);
    ids.into_iter()
        .map(|id| (id, relay.peer(id).unwrap().closing().unwrap()))
        .collect()
}

/// What a client that got nothing got: for `assert_eq!(client.got(..),
/// none())`.
pub fn none() -> Vec<String> {
    Vec::new()
}

/// A member's static AES-128 key: the same `byte` always gives the same
/// key.
pub fn member_key(byte: u8) -> Key {
    Key::from_bytes(&[byte; 16]).unwrap()
}

/// `text` sealed as one line under [`member_key`]`(byte)`.
pub fn seal_as(byte: u8, text: &[u8]) -> Vec<u8> {
    let mut line = BytesMut::new();
    Cipher::new(&member_key(byte))
        .unwrap()
        .seal_into(text, &mut line);
    line.to_vec()
}

/// Flushes every waiting connection, and opens what `id` was written
/// since the last call under [`member_key`]`(byte)`.
pub fn opened(relay: &mut Relay<Pipe>, id: ConnId, byte: u8) -> Vec<String> {
    let mut cipher = Cipher::new(&member_key(byte)).unwrap();
    written(relay, id)
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| String::from_utf8_lossy(cipher.open(line).unwrap()).into_owned())
        .collect()
}

/// A static-key members file: one `NAME HEXKEY` line per `(name, key
/// byte)`.
pub fn static_members(list: &[(&str, u8)]) -> Members {
    let text: String = list
        .iter()
        .map(|(name, byte)| format!("{name} {}\n", member_key(*byte).to_hex()))
        .collect();
    Members::parse(text.as_bytes(), Path::new("members.txt")).unwrap()
}

/// A static-key members relay serving `list`, its chat set up as
/// `config`.
pub fn members_relay(list: &[(&str, u8)], config: ChatConfig) -> Relay<Pipe> {
    let roster = Roster::with_nonces(&static_members(list), Nonces::from_seed([3; 32]));
    let mut relay =
        Relay::with_members(roster, Limits::default(), Instant::now(), SystemTime::now());
    relay.set_chat(config);
    relay
}

/// A member as the chat scenarios see one, in either mode: its
/// connection, what it says, and what it was sent.
pub trait Member {
    /// Its connection.
    fn id(&self) -> ConnId;
    /// Sends `text` as its next frame.
    fn say(&mut self, relay: &mut Relay<Pipe>, text: &str);
    /// Everything written to it since the last call, opened.
    fn got(&mut self, relay: &mut Relay<Pipe>) -> Vec<String>;
}

/// A client under a static key ([`member_key`]`(key)`): a member in
/// static-key members mode, or anyone under a shared key.
#[derive(Debug, Clone, Copy)]
pub struct KeyClient {
    pub id: ConnId,
    pub key: u8,
}

impl KeyClient {
    /// Admits a connection under key `key`, sending nothing.
    pub fn admit(relay: &mut Relay<Pipe>, key: u8) -> KeyClient {
        KeyClient {
            id: relay.admit(Pipe::default()).unwrap(),
            key,
        }
    }

    /// Sends `text` as one frame under its key.
    pub fn say(self, relay: &mut Relay<Pipe>, text: &str) {
        relay.receive(self.id, &seal_as(self.key, text.as_bytes()));
    }

    /// Everything written to it since the last call, opened.
    pub fn got(self, relay: &mut Relay<Pipe>) -> Vec<String> {
        opened(relay, self.id, self.key)
    }
}

impl Member for KeyClient {
    fn id(&self) -> ConnId {
        self.id
    }

    fn say(&mut self, relay: &mut Relay<Pipe>, text: &str) {
        KeyClient::say(*self, relay, text);
    }

    fn got(&mut self, relay: &mut Relay<Pipe>) -> Vec<String> {
        KeyClient::got(*self, relay)
    }
}

/// A device's identity: the same `byte` always gives the same key.
pub fn identity(byte: u8) -> StaticSecret {
    StaticSecret::from_bytes(&[byte; 32]).unwrap()
}

/// The session relays' own identity.
pub fn relay_identity() -> StaticSecret {
    identity(0xee)
}

/// A sessions members file: one line per `(name, device byte)`.
pub fn session_members(devices: &[(&str, u8)]) -> SessionMembers {
    let text: String = devices
        .iter()
        .map(|(name, byte)| format!("{name} {}\n", identity(*byte).public_key()))
        .collect();
    SessionMembers::parse(text.as_bytes(), Path::new("members.txt")).unwrap()
}

/// A session relay serving `devices`, its chat set up as `config`.
pub fn sessions_relay(devices: &[(&str, u8)], limits: Limits, config: ChatConfig) -> Relay<Pipe> {
    let mut relay = Relay::with_sessions(
        &session_members(devices),
        relay_identity(),
        limits,
        Instant::now(),
        SystemTime::now(),
    );
    relay.set_chat(config);
    relay
}

/// Flushes every waiting connection, and takes what `id` was written
/// since the last call.
pub fn written(relay: &mut Relay<Pipe>, id: ConnId) -> Vec<u8> {
    while let Some(other) = relay.next_waiting() {
        relay.flush(other);
    }
    relay
        .io_mut(id)
        .map(|pipe| std::mem::take(&mut pipe.received))
        .unwrap_or_default()
}

/// The text of the refusal `id` was written (its one line), and checks
/// that it was written nothing else.
pub fn refusal(relay: &mut Relay<Pipe>, id: ConnId) -> String {
    let bytes = written(relay, id);
    assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
    let line = decode_line(&bytes).unwrap();
    assert_eq!(line.kind(), Kind::Refusal);
    String::from_utf8(line.body().to_vec()).unwrap()
}

/// A session client in memory: its connection, and its side of the
/// session once the relay welcomed it.
pub struct SessionClient {
    pub id: ConnId,
    /// The name the relay's welcome stamped.
    pub name: String,
    session: Session,
}

impl SessionClient {
    /// Admits a connection and sends the hello of device `byte` (for the
    /// relay's key): returns the connection and the handshake to finish.
    pub fn hello(relay: &mut Relay<Pipe>, byte: u8) -> (ConnId, Initiator) {
        let id = relay.admit(Pipe::default()).unwrap();
        let (initiator, hello) =
            Initiator::start(&identity(byte), relay_identity().public_key(), b"").unwrap();
        relay.receive(id, &hello);
        (id, initiator)
    }

    /// Connects device `byte` and finishes its handshake.
    pub fn connect(relay: &mut Relay<Pipe>, byte: u8) -> SessionClient {
        let (id, initiator) = SessionClient::hello(relay, byte);
        SessionClient::finish(relay, id, initiator)
    }

    /// Finishes the handshake of `id` with the welcome it was written.
    pub fn finish(relay: &mut Relay<Pipe>, id: ConnId, initiator: Initiator) -> SessionClient {
        let welcome = written(relay, id);
        assert_eq!(welcome.iter().filter(|&&b| b == b'\n').count(), 1);
        let established = initiator.finish(&welcome).unwrap();
        assert!(relay.peer(id).unwrap().is_authenticated());
        SessionClient {
            id,
            name: established.name,
            session: established.session,
        }
    }

    /// Seals `text` as this client's next frame, without sending it.
    pub fn seal(&mut self, text: &str) -> Vec<u8> {
        let mut line = BytesMut::new();
        self.session.seal_into(text.as_bytes(), &mut line).unwrap();
        line.to_vec()
    }

    /// Sends `text` as this client's next frame, and returns the line.
    pub fn say(&mut self, relay: &mut Relay<Pipe>, text: &str) -> Vec<u8> {
        let line = self.seal(text);
        relay.receive(self.id, &line);
        line
    }

    /// Everything written to it since the last call, each line opened in
    /// order in its session.
    pub fn got(&mut self, relay: &mut Relay<Pipe>) -> Vec<String> {
        let bytes = written(relay, self.id);
        assert!(bytes.is_empty() || bytes.ends_with(b"\n"), "whole lines");
        bytes
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| String::from_utf8(self.session.open(line).unwrap().to_vec()).unwrap())
            .collect()
    }
}

impl Member for SessionClient {
    fn id(&self) -> ConnId {
        self.id
    }

    fn say(&mut self, relay: &mut Relay<Pipe>, text: &str) {
        SessionClient::say(self, relay, text);
    }

    fn got(&mut self, relay: &mut Relay<Pipe>) -> Vec<String> {
        SessionClient::got(self, relay)
    }
}
