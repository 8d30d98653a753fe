//! What the shared-key relay tests have in common: an in-memory
//! connection ([`Pipe`]) that can stop taking bytes, the relay under one
//! key, a client's sealing, and reading back what a connection was sent.
//! It holds no test of its own and never opens a socket.

// Test helpers may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::{self, Write};
use std::time::{Instant, SystemTime};

use bytes::BytesMut;
use eaxchat_core::relay::{CloseReason, ConnId, Limits, Relay};
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::Key;

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
