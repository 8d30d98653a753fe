//! The inbox of a subscriber to one publisher, and the [`Ledger`] its
//! deliveries are checked against (see [`super`]).
//!
//! Against a members relay every subscriber receives its own ciphertext of
//! each message, so deliveries cannot be compared across subscribers: each
//! subscriber opens, with its own [`MemberReader`], one record in `sample`
//! by its position (subscribers staggered, so that between them every
//! message is opened by someone) and counts the rest. A loss or a duplicate
//! shows at the next record it opens, and the count at the end.
//!
//! Against a session relay each subscriber's frames carry its session's
//! counter, one more for each frame: each subscriber checks every record's
//! counter and opens its share as in members mode (every record, with the
//! protocol's own session opener, with `open_all`), so a repeated, lost or
//! reordered frame shows at once ([`crate::wire::SessionReader`]).

use super::{Checker, Inbox, Records};
use crate::wire::{
    BARRIER, EventLine, Forged, Header, MemberReader, Misfit, PROBE, SessionReader, Wire,
};

/// What the subscribers of one publisher check deliveries against: for
/// each of the last `capacity` messages, when it was sent (or, when paced,
/// was due) and, once a subscriber has received it, its exact bytes.
pub struct Ledger {
    /// Bytes each slot holds: every record's length, or the longest line.
    record_len: usize,
    /// The length of the bytes each slot holds (a line's may be shorter).
    lens: Box<[u32]>,
    mask: u64,
    sent_at: Box<[u64]>,
    /// For each slot, 1 + the sequence number whose bytes it holds; 0 for
    /// none.
    holds: Box<[u64]>,
    /// Whether the bytes held were opened and found to be that message.
    verified: Box<[bool]>,
    records: Box<[u8]>,
}

impl Ledger {
    /// Room for at least `capacity` messages in flight of `record_len`
    /// bytes each.
    pub fn new(capacity: u64, record_len: usize) -> Ledger {
        let len = capacity.max(1).next_power_of_two();
        Ledger {
            record_len,
            mask: len - 1,
            sent_at: vec![0; len as usize].into_boxed_slice(),
            holds: vec![0; len as usize].into_boxed_slice(),
            lens: vec![0; len as usize].into_boxed_slice(),
            verified: vec![false; len as usize].into_boxed_slice(),
            records: vec![0; len as usize * record_len].into_boxed_slice(),
        }
    }

    /// How many messages it remembers.
    pub fn capacity(&self) -> u64 {
        self.mask + 1
    }

    fn slot(&self, seq: u64) -> usize {
        (seq & self.mask) as usize
    }

    /// Notes message `seq`'s send time; forgets the bytes the slot held.
    #[inline]
    pub fn sent(&mut self, seq: u64, at_ns: u64) {
        let slot = self.slot(seq);
        self.sent_at[slot] = at_ns;
        self.holds[slot] = 0;
    }

    #[inline]
    fn sent_at(&self, seq: u64) -> u64 {
        self.sent_at[self.slot(seq)]
    }

    /// The bytes kept for message `seq`, if a subscriber has received it,
    /// and whether they were verified.
    #[inline]
    fn kept(&self, seq: u64) -> Option<(&[u8], bool)> {
        let slot = self.slot(seq);
        (self.holds[slot] == seq + 1).then(|| {
            let start = slot * self.record_len;
            let bytes = &self.records[start..start + self.lens[slot] as usize];
            (bytes, self.verified[slot])
        })
    }

    /// How many whole records at the front of `data` are exactly the kept
    /// copies of messages `seq`, `seq + 1`, ... (as far as the ring runs
    /// without wrapping).
    fn matching_run(&self, seq: u64, data: &[u8]) -> usize {
        let len = self.record_len;
        let slot = self.slot(seq);
        let most = (data.len() / len).min(self.holds.len() - slot);
        let held = (0..most)
            .take_while(|&i| self.holds[slot + i] == seq + i as u64 + 1)
            .count();
        let kept = &self.records[slot * len..(slot + held) * len];
        if data[..held * len] == *kept {
            return held;
        }
        // Something differs: take the records before it.
        data.chunks_exact(len)
            .zip(kept.chunks_exact(len))
            .take_while(|(got, want)| got == want)
            .count()
    }

    fn keep(&mut self, seq: u64, record: &[u8], verified: bool) {
        let slot = self.slot(seq);
        let start = slot * self.record_len;
        self.records[start..start + record.len()].copy_from_slice(record);
        self.lens[slot] = record.len() as u32;
        self.holds[slot] = seq + 1;
        self.verified[slot] = verified;
    }
}

/// One subscriber's receive state in a one-publisher scenario. Until the
/// barrier arrives `next` is `None` and every record is a probe or the
/// barrier; after it, record k is message k.
pub struct StreamInbox {
    records: Records,
    sequence: Sequence,
}

/// Where a stream subscriber is in the publisher's sequence.
struct Sequence {
    next: Option<u64>,
    saw_probe: bool,
    delivered: u64,
    sample: u64,
    open_all: bool,
    /// Members mode: this subscriber's own key.
    own: Option<Own>,
    /// An `eaxchat/1` subscriber: the answers to its `/hello` and
    /// `/join`s still to come before a probe counts.
    setup_left: usize,
}

/// A members-mode subscriber's reader, and which records it opens: those
/// at positions `k` with `(k + phase) % sample == 0`.
struct Own {
    reader: Opener,
    phase: u64,
}

/// How a subscriber that cannot compare its records with the others'
/// opens its own.
pub enum Opener {
    /// Under its member's key (a members relay).
    Member(Box<MemberReader>),
    /// Under the shared key, but sealed by its own relay of a cluster: the
    /// same message differs in bytes from one relay to another.
    Relay(Box<Wire>),
    /// In its own session (a session relay): every record, in order.
    Session(Box<SessionReader>),
}

impl Opener {
    fn decode(&mut self, record: &[u8]) -> Result<Header, Misfit> {
        match self {
            Opener::Member(reader) => Ok(reader.decode(record)?),
            Opener::Relay(wire) => Ok(wire.decode(record)?),
            Opener::Session(reader) => reader.decode(record),
        }
    }

    /// Takes a record unopened if it looks in place: it ends where a record
    /// ends and, in a session, carries the next counter. False, taking
    /// nothing, when it needs opening.
    fn pass(&mut self, record: &[u8]) -> bool {
        match self {
            Opener::Member(_) | Opener::Relay(_) => record.last() == Some(&b'\n'),
            Opener::Session(reader) => reader.pass(record),
        }
    }
}

impl StreamInbox {
    /// Records that are WebSocket frames starting with `prefix`.
    pub fn with_frame_prefix(mut self, prefix: Option<&[u8]>) -> StreamInbox {
        if let Some(prefix) = prefix {
            self.records.set_frame_prefix(prefix.to_vec());
        }
        self
    }

    /// A subscriber of one publisher that discards `skip` bytes of preamble.
    /// It opens the first copy of one message in `sample` (every message
    /// with a sample of 1), or every delivery with `open_all`.
    pub fn new(record_len: usize, skip: usize, sample: u64, open_all: bool) -> StreamInbox {
        StreamInbox {
            records: Records::new(record_len, skip),
            sequence: Sequence {
                next: None,
                saw_probe: false,
                delivered: 0,
                sample: sample.max(1),
                open_all,
                own: None,
                setup_left: 0,
            },
        }
    }

    /// A subscriber that said `/hello eaxchat/1` and joined `joins` more
    /// rooms: its records are `msg` events, lines of any length up to
    /// `record_len`, and it is ready for the run once it has the answers
    /// to all of that ([`crate::wire::EventLine`]).
    pub fn with_events(mut self, joins: usize) -> StreamInbox {
        self.records.set_lines();
        self.sequence.setup_left = 1 + joins;
        self
    }

    /// A subscriber of a members relay that opens what it receives with
    /// `reader`: one record in `sample` (the `phase`-th of each `sample`), or
    /// every one with `open_all`.
    pub fn for_member(
        record_len: usize,
        sample: u64,
        open_all: bool,
        reader: Opener,
        phase: u64,
    ) -> StreamInbox {
        let mut inbox = StreamInbox::new(record_len, 0, sample, open_all);
        inbox.sequence.own = Some(Own { reader, phase });
        inbox
    }

    /// A subscriber of a session relay that reads what it receives with
    /// `reader`: every record's counter, and opens one record in `sample`
    /// (the `phase`-th of each `sample`), or every one with `open_all`.
    pub fn for_session(
        record_len: usize,
        sample: u64,
        open_all: bool,
        reader: SessionReader,
        phase: u64,
    ) -> StreamInbox {
        let reader = Opener::Session(Box::new(reader));
        StreamInbox::for_member(record_len, sample, open_all, reader, phase)
    }

    /// Whether the setup barrier has been seen.
    pub fn ready(&self) -> bool {
        self.sequence.next.is_some()
    }

    /// Whether a probe (or the barrier) has arrived.
    pub fn saw_probe(&self) -> bool {
        self.sequence.saw_probe || self.ready()
    }

    /// Data records received: messages delivered to this subscriber.
    pub fn delivered(&self) -> u64 {
        self.sequence.delivered
    }

    /// The sequence number the next record should carry: every earlier
    /// message has arrived or been counted lost.
    pub fn next_seq(&self) -> u64 {
        self.sequence.next.unwrap_or(0)
    }
}

impl Inbox for StreamInbox {
    type Against = Ledger;

    fn carry(&self) -> &[u8] {
        self.records.carry()
    }

    fn absorb(
        &mut self,
        data: &[u8],
        now_ns: u64,
        check: &mut Checker,
        ledger: &mut Ledger,
    ) -> usize {
        let len = self.records.record_len();
        let sequence = &mut self.sequence;
        if self.records.lines() {
            return self.records.split_lines(data, check, |line, check| {
                sequence.on_event(line, now_ns, check, ledger);
            });
        }
        self.records.split(data, check, |rest, check| {
            let run = if sequence.own.is_some() {
                sequence.unopened_run(rest, len, now_ns, check, ledger)
            } else {
                sequence.matching_run(rest, now_ns, check, ledger)
            };
            if run > 0 {
                return run;
            }
            sequence.on_record(&rest[..len], now_ns, check, ledger);
            1
        })
    }
}

impl Sequence {
    /// The fast path: how many whole records at the front of `data` are
    /// byte for byte the copies the ledger keeps of the next messages,
    /// compared in one go and taken as delivered. Zero when the next record
    /// needs a closer look.
    fn matching_run(
        &mut self,
        data: &[u8],
        now_ns: u64,
        check: &mut Checker,
        ledger: &Ledger,
    ) -> usize {
        let Some(next) = self.next.filter(|_| !self.open_all) else {
            return 0;
        };
        let run = ledger.matching_run(next, data);
        self.took(next, run, now_ns, check, ledger);
        run
    }

    /// Members and session mode's fast path: how many whole records at the
    /// front of `data` come before the next one this subscriber opens,
    /// counted as delivered unopened (a session's counters checked).
    fn unopened_run(
        &mut self,
        data: &[u8],
        len: usize,
        now_ns: u64,
        check: &mut Checker,
        ledger: &Ledger,
    ) -> usize {
        let (Some(next), Some(own)) = (self.next, &mut self.own) else {
            return 0;
        };
        if self.open_all {
            return 0;
        }
        let before_open = (self.sample - (next + own.phase) % self.sample) % self.sample;
        let run = data
            .chunks_exact(len)
            .take(before_open as usize)
            .take_while(|record| own.reader.pass(record))
            .count();
        self.took(next, run, now_ns, check, ledger);
        run
    }

    /// Takes `run` records, messages `next..next + run`, as delivered now.
    fn took(&mut self, next: u64, run: usize, now_ns: u64, check: &mut Checker, ledger: &Ledger) {
        // Messages sent in one batch share a send time: count each time
        // once, with its number of records.
        let mut same = 0;
        let mut sent_at = 0;
        for seq in next..next + run as u64 {
            let at = ledger.sent_at(seq);
            if same > 0 && at != sent_at {
                check.record_latency(now_ns.saturating_sub(sent_at), same);
                same = 0;
            }
            sent_at = at;
            same += 1;
        }
        if same > 0 {
            check.record_latency(now_ns.saturating_sub(sent_at), same);
        }
        self.next = Some(next + run as u64);
        self.delivered += run as u64;
    }

    /// Opens `record`: with this subscriber's own key or session, with
    /// the run's shared codec otherwise.
    fn decode(&mut self, record: &[u8], check: &mut Checker) -> Result<Header, Misfit> {
        match &mut self.own {
            Some(own) => own.reader.decode(record),
            None => Ok(check.wire.decode(record)?),
        }
    }

    /// One record that is not simply the kept copy of the next message.
    fn on_record(&mut self, record: &[u8], now_ns: u64, check: &mut Checker, ledger: &mut Ledger) {
        let Some(k) = self.next else {
            match self.decode(record, check) {
                Ok(header) if header.sender == PROBE => self.saw_probe = true,
                Ok(header) if header.sender == BARRIER => self.next = Some(0),
                _ => check.errors.forged += 1,
            }
            return;
        };
        check.record_latency(now_ns.saturating_sub(ledger.sent_at(k)), 1);
        if self.own.is_some() {
            // Records cannot be compared across subscribers: open it.
            check.opened += 1;
            let decoded = self.decode(record, check);
            self.place(decoded, k, check);
            return;
        }
        if !self.open_all {
            match ledger.kept(k) {
                Some((kept, _)) if kept == record => return self.delivered_next(k + 1),
                None if k % self.sample != 0 => {
                    // Not opened: every other delivery of k must match this
                    // one.
                    ledger.keep(k, record, false);
                    return self.delivered_next(k + 1);
                }
                _ => {}
            }
        }
        check.opened += 1;
        let decoded = check.wire.decode(record).map_err(Misfit::from);
        if self.place(decoded, k, check) {
            if let Some((kept, false)) = ledger.kept(k) {
                // An unopened first copy, kept by another subscriber,
                // differed from this genuine one.
                match check.wire.decode(kept) {
                    Ok(h) if h.sender == 0 => check.errors.out_of_step += 1,
                    _ => check.errors.forged += 1,
                }
            }
            ledger.keep(k, record, true);
        }
    }

    /// One line of an `eaxchat/1` subscriber's: before the barrier, the
    /// answers to its setup and the probes; after it, message `k` as a
    /// `msg` event, compared with the ledger's copy as a record is.
    fn on_event(&mut self, line: &[u8], now_ns: u64, check: &mut Checker, ledger: &mut Ledger) {
        let Some(k) = self.next else {
            match check.wire.decode_event(line) {
                Ok(EventLine::Setup) => self.setup_left = self.setup_left.saturating_sub(1),
                Ok(EventLine::Message(header)) if self.setup_left == 0 => {
                    if header.sender == PROBE {
                        self.saw_probe = true;
                    } else if header.sender == BARRIER {
                        self.next = Some(0);
                    } else {
                        check.errors.forged += 1;
                    }
                }
                // Probes before its setup was answered, and notices.
                Ok(EventLine::Message(_) | EventLine::Other) => {}
                Err(Forged) => check.errors.forged += 1,
            }
            return;
        };
        check.record_latency(now_ns.saturating_sub(ledger.sent_at(k)), 1);
        if !self.open_all {
            match ledger.kept(k) {
                Some((kept, _)) if kept == line => return self.delivered_next(k + 1),
                None if k % self.sample != 0 => {
                    ledger.keep(k, line, false);
                    return self.delivered_next(k + 1);
                }
                _ => {}
            }
        }
        check.opened += 1;
        let decoded = match check.wire.decode_event(line) {
            Ok(EventLine::Message(header)) => Ok(header),
            Ok(EventLine::Setup | EventLine::Other) | Err(Forged) => Err(Misfit::Forged),
        };
        if self.place(decoded, k, check) {
            if let Some((kept, false)) = ledger.kept(k) {
                match check.wire.decode_event(kept) {
                    Ok(EventLine::Message(h)) if h.sender == 0 => check.errors.out_of_step += 1,
                    _ => check.errors.forged += 1,
                }
            }
            ledger.keep(k, line, true);
        }
    }

    /// Places an opened record, message `k` expected, in the sequence;
    /// true when it was message `k`.
    fn place(&mut self, decoded: Result<Header, Misfit>, k: u64, check: &mut Checker) -> bool {
        match decoded {
            Ok(header) if header.sender == 0 && header.seq == k => {
                self.delivered_next(k + 1);
                true
            }
            Ok(header) if header.sender == 0 && header.seq > k => {
                check.errors.lost += header.seq - k;
                self.delivered_next(header.seq + 1);
                false
            }
            // An earlier message again: it takes no place in the sequence.
            Ok(header) if header.sender == 0 => {
                check.errors.duplicated += 1;
                false
            }
            // A session's frame repeated: it takes no place either.
            Err(Misfit::Duplicated) => {
                check.errors.duplicated += 1;
                false
            }
            // Session frames that never came, or did not come in order:
            // this record takes the place it stands in.
            Err(Misfit::Lost(skipped)) => {
                check.errors.lost += skipped;
                self.next = Some(k + skipped + 1);
                false
            }
            Err(Misfit::OutOfStep) => {
                check.errors.out_of_step += 1;
                self.next = Some(k + 1);
                false
            }
            Ok(_) | Err(Misfit::Forged) => {
                check.errors.forged += 1;
                self.next = Some(k + 1);
                false
            }
        }
    }

    /// Counts a delivery; `next` is the message expected after it.
    fn delivered_next(&mut self, next: u64) {
        self.next = Some(next);
        self.delivered += 1;
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod member_tests;

#[cfg(test)]
mod session_tests;
