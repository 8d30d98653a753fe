//! What a subscriber does with the bytes it reads: split them into
//! fixed-length records, count them, time them, and check them.
//!
//! Every record of a run has the same length and ends in `\n`, so counting
//! deliveries needs one byte compare per record, not a scan. Two ways of
//! checking follow from that:
//!
//! - **Stream** (one publisher): the k-th record after the setup barrier
//!   must be message k. The first subscriber to receive message k keeps its
//!   bytes in the [`Ledger`] (opening and checking it first for one message
//!   in `sample`); every other delivery of k must be byte-for-byte the same,
//!   which costs a compare, not a decryption. Anything that differs is
//!   opened to find out what it is: a lost message (a later sequence number),
//!   a duplicate (an earlier one), a forgery (it does not open), or, when
//!   the unopened first copy was the wrong one, a delivery out of step with
//!   the other subscribers. With `open_all`, every delivery is opened.
//! - **Room** (many publishers): records from different senders interleave
//!   arbitrarily, so every record is opened and checked against the next
//!   sequence number expected from its sender.
//!
//! Nothing here allocates after construction: the partial record left at
//! the end of a read is kept in a buffer sized for one record.

use memchr::memchr;

use super::histogram::Histogram;
use super::report::Errors;
use super::wire::{BARRIER, PROBE, Wire};

/// What the subscribers of one run share: the codec, the latency
/// histogram and the error counts.
pub struct Checker {
    /// Decodes records.
    pub wire: Wire,
    /// Delivery latencies, in nanoseconds.
    pub latency: Histogram,
    /// Everything that went wrong.
    pub errors: Errors,
    /// Records opened and verified.
    pub opened: u64,
}

impl Checker {
    /// A checker with nothing counted yet.
    pub fn new(wire: Wire) -> Checker {
        Checker {
            wire,
            latency: Histogram::default(),
            errors: Errors::default(),
            opened: 0,
        }
    }
}

/// What the subscribers of one publisher check deliveries against: for
/// each of the last `capacity` messages, when it was sent (or, when paced,
/// was due) and, once a subscriber has received it, its exact bytes.
pub struct Ledger {
    record_len: usize,
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
            let bytes = &self.records[slot * self.record_len..(slot + 1) * self.record_len];
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
        self.records[slot * self.record_len..(slot + 1) * self.record_len].copy_from_slice(record);
        self.holds[slot] = seq + 1;
        self.verified[slot] = verified;
    }
}

/// One subscriber's receive state.
pub struct Inbox {
    record_len: usize,
    /// Bytes still to discard before the first record.
    skip: usize,
    /// The unfinished record at the end of the last read.
    carry: Vec<u8>,
    mode: Mode,
}

enum Mode {
    /// One publisher. Until its barrier arrives `next` is `None` and every
    /// record is a probe or the barrier; after it, record k is message k.
    Stream {
        next: Option<u64>,
        saw_probe: bool,
        delivered: u64,
        sample: u64,
        open_all: bool,
    },
    /// Many publishers: every record is opened.
    Room {
        me: u32,
        expected: Vec<u64>,
        probed_by: Vec<bool>,
        probes: usize,
        deliveries: u64,
    },
}

impl Inbox {
    /// A subscriber of one publisher that discards `skip` bytes of preamble.
    /// It opens the first copy of one message in `sample` (every message
    /// with a sample of 1), or every delivery with `open_all`.
    pub fn stream(record_len: usize, skip: usize, sample: u64, open_all: bool) -> Inbox {
        Inbox {
            record_len,
            skip,
            carry: Vec::with_capacity(record_len),
            mode: Mode::Stream {
                next: None,
                saw_probe: false,
                delivered: 0,
                sample: sample.max(1),
                open_all,
            },
        }
    }

    /// Client `me` of a room of `clients`, opening every record.
    pub fn room(record_len: usize, me: u32, clients: usize) -> Inbox {
        Inbox {
            record_len,
            skip: 0,
            carry: Vec::with_capacity(record_len),
            mode: Mode::Room {
                me,
                expected: vec![0; clients],
                probed_by: vec![false; clients],
                probes: 0,
                deliveries: 0,
            },
        }
    }

    /// The partial record the next read must be appended to.
    pub fn carry(&self) -> &[u8] {
        &self.carry
    }

    /// Whether the setup barrier has been seen (stream) or every other
    /// client has been heard from (room).
    pub fn ready(&self) -> bool {
        match &self.mode {
            Mode::Stream { next, .. } => next.is_some(),
            Mode::Room {
                probes, expected, ..
            } => *probes + 1 >= expected.len(),
        }
    }

    /// Whether a probe (or the barrier) has arrived.
    pub fn saw_probe(&self) -> bool {
        match &self.mode {
            Mode::Stream {
                saw_probe, next, ..
            } => *saw_probe || next.is_some(),
            Mode::Room { probes, .. } => *probes > 0,
        }
    }

    /// Data records received: messages delivered to this subscriber.
    pub fn delivered(&self) -> u64 {
        match &self.mode {
            Mode::Stream { delivered, .. } => *delivered,
            Mode::Room { deliveries, .. } => *deliveries,
        }
    }

    /// The sequence number the next record should carry (stream): every
    /// earlier message has arrived or been counted lost.
    pub fn next_seq(&self) -> u64 {
        match &self.mode {
            Mode::Stream { next, .. } => next.unwrap_or(0),
            Mode::Room { .. } => 0,
        }
    }

    /// The next sequence number expected from `sender` in a room: how many
    /// of its messages arrived, in order.
    pub fn received_from(&self, sender: usize) -> u64 {
        match &self.mode {
            Mode::Room { expected, .. } => expected.get(sender).copied().unwrap_or(0),
            Mode::Stream { .. } => 0,
        }
    }

    /// Takes `data`: the carry followed by what was just read, at time
    /// `now_ns`. Returns how many records completed.
    pub fn absorb(
        &mut self,
        data: &[u8],
        now_ns: u64,
        check: &mut Checker,
        ledger: &mut Ledger,
    ) -> usize {
        let mut data = data;
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
        }
        let len = self.record_len;
        let mut pos = 0;
        let mut records = 0;
        while let Some(record) = data.get(pos..pos + len) {
            let run = self.matching_run(&data[pos..], now_ns, check, ledger);
            if run > 0 {
                pos += run * len;
                records += run;
                continue;
            }
            if record[len - 1] != b'\n' {
                // Not where a record should end: count it and start again
                // after the next newline.
                check.errors.malformed += 1;
                pos = match memchr(b'\n', &data[pos..]) {
                    Some(newline) => pos + newline + 1,
                    None => data.len(),
                };
                continue;
            }
            self.on_record(record, now_ns, check, ledger);
            records += 1;
            pos += len;
        }
        self.carry.clear();
        self.carry.extend_from_slice(&data[pos..]);
        records
    }

    /// The fast path of a stream: how many whole records at the front of
    /// `data` are byte for byte the copies the ledger keeps of the next
    /// messages, compared in one go and taken as delivered. Zero when the
    /// next record needs a closer look.
    fn matching_run(
        &mut self,
        data: &[u8],
        now_ns: u64,
        check: &mut Checker,
        ledger: &Ledger,
    ) -> usize {
        let Mode::Stream {
            next: Some(next),
            delivered,
            open_all: false,
            ..
        } = &mut self.mode
        else {
            return 0;
        };
        let run = ledger.matching_run(*next, data);
        // Messages sent in one batch share a send time: count each time
        // once, with its number of records.
        let mut same = 0;
        let mut sent_at = 0;
        for seq in *next..*next + run as u64 {
            let at = ledger.sent_at(seq);
            if same > 0 && at != sent_at {
                check.latency.record_n(now_ns.saturating_sub(sent_at), same);
                same = 0;
            }
            sent_at = at;
            same += 1;
        }
        if same > 0 {
            check.latency.record_n(now_ns.saturating_sub(sent_at), same);
        }
        *next += run as u64;
        *delivered += run as u64;
        run
    }

    fn on_record(&mut self, record: &[u8], now_ns: u64, check: &mut Checker, ledger: &mut Ledger) {
        match &mut self.mode {
            Mode::Stream {
                next: Some(next),
                delivered,
                sample,
                open_all,
                ..
            } => {
                let k = *next;
                check
                    .latency
                    .record(now_ns.saturating_sub(ledger.sent_at(k)));
                if !*open_all {
                    match ledger.kept(k) {
                        Some((kept, _)) if kept == record => {
                            *next += 1;
                            *delivered += 1;
                            return;
                        }
                        None if k % *sample != 0 => {
                            // Not opened: every other delivery of k must
                            // match this one.
                            ledger.keep(k, record, false);
                            *next += 1;
                            *delivered += 1;
                            return;
                        }
                        _ => {}
                    }
                }
                check.opened += 1;
                match check.wire.decode(record) {
                    Ok(header) if header.sender == 0 && header.seq == k => {
                        if let Some((kept, false)) = ledger.kept(k) {
                            // An unopened first copy, kept by another
                            // subscriber, differed from this genuine one.
                            match check.wire.decode(kept) {
                                Ok(h) if h.sender == 0 => check.errors.out_of_step += 1,
                                _ => check.errors.forged += 1,
                            }
                        }
                        ledger.keep(k, record, true);
                        *next += 1;
                        *delivered += 1;
                    }
                    Ok(header) if header.sender == 0 && header.seq > k => {
                        check.errors.lost += header.seq - k;
                        *next = header.seq + 1;
                        *delivered += 1;
                    }
                    // An earlier message again: it takes no place in the
                    // sequence.
                    Ok(header) if header.sender == 0 => check.errors.duplicated += 1,
                    _ => {
                        check.errors.forged += 1;
                        *next += 1;
                    }
                }
            }
            Mode::Stream {
                next, saw_probe, ..
            } => match check.wire.decode(record) {
                Ok(header) if header.sender == PROBE => *saw_probe = true,
                Ok(header) if header.sender == BARRIER => *next = Some(0),
                _ => check.errors.forged += 1,
            },
            Mode::Room {
                me,
                expected,
                probed_by,
                probes,
                deliveries,
            } => {
                let Ok(header) = check.wire.decode(record) else {
                    check.errors.forged += 1;
                    return;
                };
                if header.sender == PROBE {
                    // A probe's seq is its sender's index.
                    match probed_by.get_mut(header.seq as usize) {
                        Some(seen) if header.seq != u64::from(*me) => {
                            if !*seen {
                                *seen = true;
                                *probes += 1;
                            }
                        }
                        _ => check.errors.forged += 1,
                    }
                    return;
                }
                check.opened += 1;
                let from = header.sender as usize;
                let Some(want) = expected.get_mut(from).filter(|_| header.sender != *me) else {
                    check.errors.forged += 1;
                    return;
                };
                *deliveries += 1;
                check.latency.record(now_ns.saturating_sub(header.stamp_ns));
                if header.seq > *want {
                    check.errors.lost += header.seq - *want;
                } else if header.seq < *want {
                    check.errors.duplicated += 1;
                    return;
                }
                *want = header.seq + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::wire::{Header, Protocol};
    use eaxchat::key::Key;

    const MESSAGES: u64 = 40;

    /// The records a publisher sends: probe, barrier, messages 0..MESSAGES.
    fn stream(wire: &mut Wire, ledger: &mut Ledger) -> Vec<Vec<u8>> {
        let mut records = Vec::new();
        let mut push = |wire: &mut Wire, sender, seq| {
            let mut out = BytesMut::new();
            wire.encode(
                Header {
                    sender,
                    seq,
                    stamp_ns: 0,
                },
                &mut out,
            );
            records.push(out.to_vec());
        };
        push(wire, PROBE, 0);
        push(wire, BARRIER, 0);
        for seq in 0..MESSAGES {
            ledger.sent(seq, 0);
            push(wire, 0, seq);
        }
        records
    }

    /// Feeds `records` to `inbox` in reads of `chunk` bytes.
    fn feed(
        inbox: &mut Inbox,
        records: &[Vec<u8>],
        chunk: usize,
        check: &mut Checker,
        ledger: &mut Ledger,
    ) {
        let bytes: Vec<u8> = records.concat();
        for piece in bytes.chunks(chunk) {
            let mut data = inbox.carry().to_vec();
            data.extend_from_slice(piece);
            inbox.absorb(&data, 1, check, ledger);
        }
    }

    /// What one faulty subscriber's errors are, next to a healthy one that
    /// reads first or second.
    fn errors_with(fault: impl Fn(&mut Vec<Vec<u8>>), sample: u64, faulty_first: bool) -> Errors {
        let key = Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        let mut wire = Wire::new(&Protocol::Eaxchat(key), 64).unwrap();
        let mut ledger = Ledger::new(64, wire.record_len());
        let records = stream(&mut wire, &mut ledger);
        let mut bad = records.clone();
        fault(&mut bad);
        let len = wire.record_len();
        let mut check = Checker::new(wire);
        let mut good_inbox = Inbox::stream(len, 0, sample, false);
        let mut bad_inbox = Inbox::stream(len, 0, sample, false);
        for turn in 0..2 {
            if (turn == 0) == faulty_first {
                feed(&mut bad_inbox, &bad, 97, &mut check, &mut ledger);
            } else {
                feed(&mut good_inbox, &records, 1000, &mut check, &mut ledger);
            }
        }
        assert!(good_inbox.ready() && bad_inbox.ready());
        assert_eq!(good_inbox.next_seq(), MESSAGES);
        let mut errors = check.errors;
        errors.lost += MESSAGES.saturating_sub(bad_inbox.next_seq());
        errors
    }

    #[test]
    fn a_clean_stream_has_no_errors_and_opens_one_in_sample() {
        for faulty_first in [false, true] {
            assert_eq!(errors_with(|_| {}, 16, faulty_first), Errors::default());
        }
        let key = Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        let mut wire = Wire::new(&Protocol::Eaxchat(key), 64).unwrap();
        let mut ledger = Ledger::new(64, wire.record_len());
        let records = stream(&mut wire, &mut ledger);
        let len = wire.record_len();
        let mut check = Checker::new(wire);
        let mut inboxes: Vec<Inbox> = (0..3).map(|_| Inbox::stream(len, 0, 16, false)).collect();
        for inbox in &mut inboxes {
            feed(inbox, &records, 333, &mut check, &mut ledger);
            assert_eq!(inbox.delivered(), MESSAGES);
        }
        // Two setup records per inbox, then messages 0, 16 and 32 once.
        assert_eq!(check.opened, 3);
        assert_eq!(check.errors, Errors::default());
    }

    /// Where message `seq` sits in the records `stream` returns.
    fn at(seq: usize) -> usize {
        seq + 2
    }

    #[test]
    fn every_kind_of_fault_is_counted_whoever_reads_first() {
        type Fault = fn(&mut Vec<Vec<u8>>);
        let cases: [(&str, Fault); 5] = [
            ("lost", |r| {
                r.remove(at(5));
            }),
            ("lost at the end", |r| {
                r.pop();
            }),
            ("duplicated", |r| r.insert(at(8), r[at(7)].clone())),
            ("reordered", |r| r.swap(at(3), at(4))),
            ("forged", |r| {
                let record = &mut r[at(9)];
                record[40] = if record[40] == b'A' { b'B' } else { b'A' };
            }),
        ];
        for (name, fault) in cases {
            for sample in [1, 16] {
                for faulty_first in [false, true] {
                    let errors = errors_with(fault, sample, faulty_first);
                    assert!(
                        errors.total() > 0,
                        "{name}, sample {sample}, faulty first {faulty_first}: {errors:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_record_that_does_not_end_in_newline_is_malformed() {
        let errors = errors_with(
            |r| {
                let record = &mut r[5];
                record.pop();
            },
            16,
            false,
        );
        assert!(errors.malformed > 0, "{errors:?}");
    }

    #[test]
    fn a_room_checks_each_sender_separately() {
        let mut wire = Wire::new(&Protocol::Plain, 64).unwrap();
        let len = wire.record_len();
        let mut encode = |sender, seq| {
            let mut out = BytesMut::new();
            wire.encode(
                Header {
                    sender,
                    seq,
                    stamp_ns: 0,
                },
                &mut out,
            );
            out.to_vec()
        };
        let records = [
            encode(PROBE, 1),
            encode(PROBE, 2),
            encode(1, 0),
            encode(2, 0),
            encode(1, 1),
            encode(2, 2),
            encode(1, 1),
            encode(0, 0),
        ];
        let mut check = Checker::new(Wire::new(&Protocol::Plain, 64).unwrap());
        let mut ledger = Ledger::new(1, 0);
        let mut inbox = Inbox::room(len, 0, 3);
        feed(&mut inbox, &records, 50, &mut check, &mut ledger);
        assert!(inbox.ready());
        assert_eq!(inbox.received_from(1), 2);
        assert_eq!(inbox.received_from(2), 3);
        assert_eq!(check.errors.lost, 1, "2's message 1");
        assert_eq!(check.errors.duplicated, 1, "1's message 1 again");
        assert_eq!(check.errors.forged, 1, "a message from itself");
    }
}
