//! What a member does with what arrives: reads with a short timeout, splits
//! lines, opens each under its key (and, in members mode, checks the
//! relay's `NAME: ` stamp), checks each sender's messages arrive as one
//! gap-free ordered run and never its own, and answers the protocol
//! (`Know`, `Ack`, fences) as `member.rs` describes. Anything that is not a
//! member's message is a violation.

use std::io::{ErrorKind, Read as _};
use std::time::{Duration, Instant};

use super::{Closed, End, Session};
use crate::wire::{Kind, Msg};
use crate::world::World;

impl Session<'_> {
    /// Reads what arrives within `wait` and handles every whole line.
    pub(super) fn pump(&mut self, wait: Duration) -> Result<(), Closed> {
        self.stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .expect("read timeout");
        match self.stream.read(&mut self.read_buf) {
            Ok(0) => self.closed(),
            Ok(n) => {
                self.inbox.extend_from_slice(&self.read_buf[..n]);
                self.handle_lines();
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
            Err(_) => self.closed(),
        }
    }

    /// The relay closed this connection.
    pub(super) fn closed(&mut self) -> Result<(), Closed> {
        self.record.end = if self.record.delivered == 0 {
            End::ClosedAtOnce
        } else {
            End::ClosedByRelay
        };
        Err(Closed)
    }

    /// Reads until the relay closes the connection, within `wait`.
    pub(super) fn read_to_end(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        let end = self.record.end;
        while Instant::now() < deadline {
            if self.pump(Duration::from_millis(50)).is_err() {
                self.record.end = end;
                return;
            }
        }
        self.world.violation(format!(
            "member conn {}: relay did not close it within {wait:?}",
            self.record.conn
        ));
    }

    /// Handles every whole line in the inbox and keeps the partial rest.
    fn handle_lines(&mut self) {
        let world = self.world;
        let mut start = 0;
        while let Some(len) = memchr::memchr(b'\n', &self.inbox[start..]) {
            let line = &self.inbox[start..start + len];
            start += len + 1;
            let msg = match self.cipher.open(line) {
                Ok(plaintext) if world.roll.is_some() => unstamp(world, plaintext),
                Ok(plaintext) => Msg::decode(plaintext),
                Err(e) => Err(format!("a line that does not open ({e})")),
            };
            match msg {
                Ok(msg) => self.on_message(msg),
                Err(why) => self.world.violation(format!(
                    "member conn {} received something no member sent: {why}",
                    self.record.conn
                )),
            }
        }
        self.inbox.drain(..start);
    }

    /// Checks one message's place in its sender's run and answers it.
    fn on_message(&mut self, msg: Msg) {
        let me = self.record.conn;
        self.record.delivered += 1;
        if msg.conn == me {
            self.world
                .violation(format!("member conn {me} received its own message {msg:?}"));
        }
        let first = match self.record.received.get_mut(&msg.conn) {
            Some((_, last)) => {
                if msg.seq != *last + 1 {
                    self.world.violation(format!(
                        "member conn {me}: from conn {} got seq {} after {}",
                        msg.conn, msg.seq, last
                    ));
                }
                *last = msg.seq;
                false
            }
            None => {
                self.record.received.insert(msg.conn, (msg.seq, msg.seq));
                true
            }
        };
        if first && !self.silent && msg.kind != Kind::Goodbye {
            self.known.insert(msg.conn);
            // A failed write shows up on the next read as well.
            let _ = self.send(Kind::Know, msg.conn, 0);
        }
        let next = self.record.sent;
        match msg.kind {
            Kind::Know if msg.target == me => {
                self.record.know_at.entry(msg.conn).or_insert(next);
            }
            Kind::Goodbye => {
                self.record.bye_at.entry(msg.conn).or_insert(next);
                self.known.remove(&msg.conn);
                self.awaiting.remove(&msg.conn);
                if !self.silent {
                    let _ = self.send(Kind::Ack, msg.conn, 0);
                }
            }
            Kind::Ack if msg.target == me => {
                self.awaiting.remove(&msg.conn);
            }
            Kind::Fence => {
                self.fences.insert(msg.conn, msg.target);
            }
            _ => {}
        }
    }
}

/// Members mode: a received plaintext must be `NAME: ` and a message whose
/// sender is the member called NAME.
fn unstamp(world: &World, plaintext: &[u8]) -> Result<Msg, String> {
    let at = memchr::memmem::find(plaintext, b": ")
        .ok_or_else(|| format!("no NAME stamp: {:?}", String::from_utf8_lossy(plaintext)))?;
    let (name, rest) = plaintext.split_at(at);
    let msg = Msg::decode(&rest[2..])?;
    match world.name_of(msg.client) {
        Some(want) if want.as_bytes() == name => Ok(msg),
        want => Err(format!(
            "{msg:?} stamped {:?}, sent by {want:?}",
            String::from_utf8_lossy(name)
        )),
    }
}
