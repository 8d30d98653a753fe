//! How a subscriber of an end-to-end room reads what the relay sealed for
//! it: `mls` events (`{"kind":"mls","room":…,"from":…,"data":…,"id":…}`)
//! inside its own session's frames, one line each.
//!
//! Every line's session counter is checked, as a session subscriber checks
//! it ([`crate::wire::SessionReader`]): the frame's nonce is the counter, so
//! a frame the relay repeated or skipped shows without opening. One line in
//! `sample` (the `phase`-th of each `sample`, subscribers staggered) is
//! opened under the session's relay-to-client key and its event checked:
//! an `mls` event of the run's room, from the publisher, not history, whose
//! `id` (its number in the room) is the next one this subscriber should
//! get, and whose `data` is, byte for byte, the base64 of the MLS message
//! the publisher sent under that number ([`MlsLedger`]). An `id` past the
//! next one counts the messages between as lost, an earlier one as a
//! duplicate; a line that does not open, or whose event is another
//! message, is forged. A line with another counter than the next is always
//! opened. At the end, a subscriber that counted more lines than were sent
//! has the excess counted as duplicates, fewer as lost
//! ([`MlsInbox::settle`]).
//!
//! Before the run (the setup) every line is opened: the inbox waits for a
//! probe (a message whose data is the ledger's probe) and then the barrier,
//! whose `id` fixes the number of the run's first message. Other events
//! then (the group's commits, the Welcome, notices) are let by.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eaxchat_proto::eax_key::EaxKey;
use eaxchat_proto::wire::{self, NONCE_LEN};
use memchr::{memchr, memmem};

use crate::inbox::{Checker, Inbox};
use crate::wire::counter_of;

/// The longest line a subscriber takes: a Welcome for a few dozen devices,
/// sealed, fits with room to spare.
pub const MAX_LINE: usize = 256 * 1024;

/// What every subscriber checks its deliveries against: the room, the
/// publisher's name, the base64 of each message the publisher cycles
/// through (message `k` of the run is `messages[k % len]`), the probe and
/// the barrier, and when each of the last messages in flight was sent.
pub struct MlsLedger {
    room: Vec<u8>,
    from: Vec<u8>,
    messages: Vec<Vec<u8>>,
    probe: Vec<u8>,
    barrier: Vec<u8>,
    mask: u64,
    sent_at: Box<[u64]>,
}

impl MlsLedger {
    /// A ledger for `room`'s messages from `from`, the base64 of each;
    /// room for the send times of `window` messages in flight.
    pub fn new(
        room: &str,
        from: &str,
        messages: Vec<Vec<u8>>,
        probe: Vec<u8>,
        barrier: Vec<u8>,
        window: u64,
    ) -> MlsLedger {
        let len = window.max(1).next_power_of_two();
        MlsLedger {
            room: room.as_bytes().to_vec(),
            from: from.as_bytes().to_vec(),
            messages,
            probe,
            barrier,
            mask: len - 1,
            sent_at: vec![0; len as usize].into_boxed_slice(),
        }
    }

    /// Message `seq` of the run was written at `now_ns`.
    pub fn sent(&mut self, seq: u64, now_ns: u64) {
        self.sent_at[(seq & self.mask) as usize] = now_ns;
    }

    fn sent_at(&self, seq: u64) -> u64 {
        self.sent_at[(seq & self.mask) as usize]
    }

    /// The base64 of message `seq` of the run.
    pub fn message(&self, seq: u64) -> &[u8] {
        match self.messages.len() {
            0 => &[],
            n => &self.messages[(seq % n as u64) as usize],
        }
    }
}

/// The fields of an `mls` event that a subscriber checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlsFields<'a> {
    /// The room.
    pub room: &'a [u8],
    /// The sender's name (empty for none).
    pub from: &'a [u8],
    /// The MLS message, base64, as the relay wrote it.
    pub data: &'a [u8],
    /// Its number in the room (`None`: a Welcome).
    pub id: Option<u64>,
    /// Sent as history.
    pub history: bool,
}

/// The string value of `"key":"…"` in a JSON object whose strings hold no
/// escapes (room and member names, base64).
fn string_field<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = memmem::find(json, key)? + key.len();
    let rest = json.get(at..)?.strip_prefix(b":\"")?;
    let end = memchr(b'"', rest)?;
    Some(&rest[..end])
}

/// Reads an `mls` event's fields, in whatever order they come; `None` if
/// the plaintext is not an `mls` event.
pub fn mls_fields(event: &[u8]) -> Option<MlsFields<'_>> {
    if string_field(event, br#""kind""#)? != b"mls" {
        return None;
    }
    let room = string_field(event, br#""room""#)?;
    let from = string_field(event, br#""from""#).unwrap_or_default();
    let data = string_field(event, br#""data""#)?;
    let at = memmem::find(event, br#""id":"#)? + 5;
    let digits = event[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let id = match digits {
        0 if event[at..].starts_with(b"null") => None,
        0 => return None,
        _ => Some(
            std::str::from_utf8(&event[at..at + digits])
                .ok()?
                .parse()
                .ok()?,
        ),
    };
    let history = memmem::find(event, br#""history":true"#).is_some();
    Some(MlsFields {
        room,
        from,
        data,
        id,
        history,
    })
}

/// One subscriber's receive state in an end-to-end room.
pub struct MlsInbox {
    key: Box<EaxKey>,
    /// The session counter the next frame must carry.
    next_counter: u64,
    frame: Vec<u8>,
    carry: Vec<u8>,
    sample: u64,
    phase: u64,
    saw_probe: bool,
    /// The room id of the run's first message, once the barrier came.
    first_id: Option<u64>,
    /// Lines counted as the run's messages: the next message's number.
    delivered: u64,
    /// Bytes of those lines, `\n` included.
    bytes: u64,
}

/// What an opened line turned out to be.
enum Opened {
    /// The run's message with this number, its content as sent.
    Message(u64),
    /// Setup traffic, or (after the barrier) nothing of the run's.
    Other,
}

impl MlsInbox {
    /// The inbox of a subscriber whose session opens relay-to-client
    /// frames under `key`, the next of which carries counter
    /// `next_counter`; `carry` is what it read past its last whole line.
    /// It opens one line in `sample`, at positions `k` with
    /// `(k + phase) % sample == 0` (every line with a sample of 1).
    pub fn new(key: &[u8; 32], next_counter: u64, carry: Vec<u8>, sample: u64, phase: u64) -> Self {
        MlsInbox {
            key: Box::new(EaxKey::aes256(key)),
            next_counter,
            frame: Vec::with_capacity(1024),
            carry,
            sample: sample.max(1),
            phase,
            saw_probe: false,
            first_id: None,
            delivered: 0,
            bytes: 0,
        }
    }

    /// Whether a probe (or the barrier) has arrived.
    pub fn saw_probe(&self) -> bool {
        self.saw_probe || self.ready()
    }

    /// Whether the barrier has arrived.
    pub fn ready(&self) -> bool {
        self.first_id.is_some()
    }

    /// The run's messages this subscriber has had (the next one's number).
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Bytes of the run's lines, `\n` included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// At the end of a run of `sent` messages: what never came is lost,
    /// and lines beyond `sent` were duplicates.
    pub fn settle(&self, sent: u64, check: &mut Checker) {
        check.errors.lost += sent.saturating_sub(self.delivered);
        check.errors.duplicated += self.delivered.saturating_sub(sent);
    }

    /// Takes one whole line (without its `\n`) read at `now_ns`.
    pub fn take_line(&mut self, line: &[u8], now_ns: u64, check: &mut Checker, ledger: &MlsLedger) {
        if let Some(first_id) = self.first_id {
            let k = self.delivered;
            let sampled = (k + self.phase).is_multiple_of(self.sample);
            if !sampled && counter_of(line) == Some(self.next_counter) {
                self.next_counter += 1;
                self.count(k, line.len() as u64 + 1, now_ns, check, ledger);
                return;
            }
            match self.open(line, check, ledger, Some(first_id)) {
                Some(Opened::Message(seq)) => {
                    if seq < k {
                        check.errors.duplicated += 1;
                        return;
                    }
                    check.errors.lost += seq - k;
                    check.opened += 1;
                    self.count(seq, line.len() as u64 + 1, now_ns, check, ledger);
                }
                Some(Opened::Other) => check.errors.forged += 1,
                None => {}
            }
            return;
        }
        // The setup: every line opened, nothing but the barrier counted.
        let _ = self.open(line, check, ledger, None);
    }

    /// Counts message `seq` as delivered.
    fn count(
        &mut self,
        seq: u64,
        bytes: u64,
        now_ns: u64,
        check: &mut Checker,
        ledger: &MlsLedger,
    ) {
        check.record_latency(now_ns.saturating_sub(ledger.sent_at(seq)), 1);
        self.delivered = seq + 1;
        self.bytes += bytes;
    }

    /// Opens a line and reads its event. `None` when it did not open or
    /// its counter is not the next (each counted as the error it is).
    fn open(
        &mut self,
        line: &[u8],
        check: &mut Checker,
        ledger: &MlsLedger,
        first_id: Option<u64>,
    ) -> Option<Opened> {
        let Some(got) = counter_of(line) else {
            check.errors.forged += 1;
            return None;
        };
        let opened = wire::decode_line(line, &mut self.frame)
            .ok()
            .and_then(|len| self.frame.get_mut(..len))
            .and_then(wire::split_frame)
            .and_then(|(nonce, tag, body)| {
                let nonce: &[u8; NONCE_LEN] = nonce;
                self.key.open_in_place_detached(nonce, body, tag).ok()?;
                Some(body)
            });
        let Some(body) = opened else {
            check.errors.forged += 1;
            return None;
        };
        if got < self.next_counter {
            check.errors.duplicated += 1;
            return None;
        }
        if got > self.next_counter {
            // Frames sealed and never sent: a client's session breaks here.
            check.errors.out_of_step += 1;
        }
        self.next_counter = got + 1;
        let Some(event) = mls_fields(body) else {
            return Some(Opened::Other);
        };
        let ours = event.room == ledger.room && event.from == ledger.from && !event.history;
        let Some(first_id) = first_id else {
            if ours && event.data == ledger.probe {
                self.saw_probe = true;
            } else if ours && event.data == ledger.barrier {
                let id = event.id?;
                self.first_id = Some(id + 1);
            }
            return Some(Opened::Other);
        };
        let Some(seq) = event
            .id
            .filter(|_| ours)
            .and_then(|id| id.checked_sub(first_id))
        else {
            return Some(Opened::Other);
        };
        if event.data != ledger.message(seq) {
            return Some(Opened::Other);
        }
        Some(Opened::Message(seq))
    }
}

impl Inbox for MlsInbox {
    type Against = MlsLedger;

    fn carry(&self) -> &[u8] {
        &self.carry
    }

    fn absorb(
        &mut self,
        data: &[u8],
        now_ns: u64,
        check: &mut Checker,
        against: &mut MlsLedger,
    ) -> usize {
        let before = self.delivered;
        let mut pos = 0;
        while let Some(newline) = memchr(b'\n', &data[pos..]) {
            let line = &data[pos..pos + newline];
            pos += newline + 1;
            self.take_line(line, now_ns, check, against);
        }
        let rest = &data[pos..];
        self.carry.clear();
        if rest.len() < MAX_LINE {
            self.carry.extend_from_slice(rest);
        } else {
            check.errors.malformed += 1;
        }
        (self.delivered - before) as usize
    }
}

/// The base64 of `bytes`, as the relay writes an MLS message.
pub fn base64(bytes: &[u8]) -> Vec<u8> {
    STANDARD.encode(bytes).into_bytes()
}

#[cfg(test)]
#[path = "inbox_tests.rs"]
mod tests;
