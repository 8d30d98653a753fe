//! What a subscriber does with the bytes it reads: split them into
//! fixed-length records, count them, time them, and check them.
//!
//! Every record of a run has the same length and ends in `\n`, so counting
//! deliveries needs one byte compare per record, not a scan. Two ways of
//! checking follow from that, one inbox type each:
//!
//! - [`StreamInbox`] (one publisher): the k-th record after the setup
//!   barrier must be message k. The first subscriber to receive message k
//!   keeps its bytes in the [`Ledger`] (opening and checking it first for
//!   one message in `sample`); every other delivery of k must be
//!   byte-for-byte the same, which costs a compare, not a decryption.
//!   Anything that differs is opened to find out what it is: a lost message
//!   (a later sequence number), a duplicate (an earlier one), a forgery (it
//!   does not open), or, when the unopened first copy was the wrong one, a
//!   delivery out of step with the other subscribers. With `open_all`,
//!   every delivery is opened.
//! - [`RoomInbox`] (many publishers): records from different senders
//!   interleave arbitrarily, so every record is opened and checked against
//!   the next sequence number expected from its sender.
//!
//! Both split their bytes with [`Records`]. Nothing here allocates after
//! construction: the partial record left at the end of a read is kept in a
//! buffer sized for one record.

mod room;
mod stream;

use memchr::memchr;

pub use room::RoomInbox;
pub use stream::{Ledger, Opener, StreamInbox};

use super::histogram::Histogram;
use super::report::Errors;
use super::wire::Wire;

/// What the subscribers of one run share: the codec, the latency
/// histograms and the error counts.
pub struct Checker {
    /// Decodes records.
    pub wire: Wire,
    /// Delivery latencies, in nanoseconds.
    pub latency: Histogram,
    /// The same latencies apart for each relay the subscribers are spread
    /// over (`--subscribe-at`, more than one): empty otherwise.
    pub latency_by_relay: Vec<Histogram>,
    /// Which of those the subscriber being read is connected to.
    pub relay: usize,
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
            latency_by_relay: Vec::new(),
            relay: 0,
            errors: Errors::default(),
            opened: 0,
        }
    }

    /// Keeps latencies apart for each of `relays` relays as well.
    pub fn by_relay(mut self, relays: usize) -> Checker {
        self.latency_by_relay = vec![Histogram::default(); relays];
        self
    }

    /// Counts `n` deliveries that took `ns` nanoseconds, to the subscriber
    /// being read.
    pub fn record_latency(&mut self, ns: u64, n: u64) {
        self.latency.record_n(ns, n);
        if let Some(histogram) = self.latency_by_relay.get_mut(self.relay) {
            histogram.record_n(ns, n);
        }
    }
}

/// A subscriber's receive state, as the read loop sees it.
pub trait Inbox {
    /// What deliveries are checked against besides the [`Checker`]: the
    /// publisher's [`Ledger`] for a stream, nothing for a room.
    type Against;

    /// The partial record the next read must be appended to.
    fn carry(&self) -> &[u8];

    /// Takes `data`: the carry followed by what was just read, at time
    /// `now_ns`. Returns how many records completed.
    fn absorb(
        &mut self,
        data: &[u8],
        now_ns: u64,
        check: &mut Checker,
        against: &mut Self::Against,
    ) -> usize;
}

/// Splits a subscriber's bytes into records of one length: drops the
/// preamble, counts what does not end where a record should as malformed,
/// and carries the unfinished record at the end of a read over to the next.
pub struct Records {
    len: usize,
    /// Over a WebSocket, what every record starts with (its frame header);
    /// else records end in `\n`.
    prefix: Option<Vec<u8>>,
    /// Bytes still to discard before the first record.
    skip: usize,
    /// Records are lines of any length up to `len`, each ending in `\n`
    /// (`eaxchat/1` events: [`crate::wire::EventLine`]).
    lines: bool,
    /// The unfinished record at the end of the last read.
    carry: Vec<u8>,
}

impl Records {
    /// Records of `len` bytes, after `skip` bytes of preamble.
    pub fn new(len: usize, skip: usize) -> Records {
        Records {
            len,
            prefix: None,
            skip,
            lines: false,
            carry: Vec::with_capacity(len),
        }
    }

    /// Records that are WebSocket frames: each starts with `prefix` (its
    /// header) instead of ending in `\n`.
    pub fn set_frame_prefix(&mut self, prefix: Vec<u8>) {
        self.prefix = Some(prefix);
    }

    /// Whether `record` sits where a record should: it ends in `\n`, or
    /// (frames) starts with the frame header.
    pub fn is_whole(&self, record: &[u8]) -> bool {
        match &self.prefix {
            Some(prefix) => record.starts_with(prefix),
            None => record.last() == Some(&b'\n'),
        }
    }

    /// Where the next record may start after a malformed one at `pos`.
    fn resync(&self, data: &[u8], pos: usize) -> usize {
        match &self.prefix {
            Some(prefix) => data
                .get(pos + 1..)
                .and_then(|rest| rest.windows(prefix.len()).position(|w| w == prefix))
                .map_or(data.len(), |at| pos + 1 + at),
            None => match memchr(b'\n', &data[pos..]) {
                Some(newline) => pos + newline + 1,
                None => data.len(),
            },
        }
    }

    /// Records are lines of up to [`Records::record_len`] bytes, `\n`
    /// included, not all of one length.
    pub fn set_lines(&mut self) {
        self.lines = true;
    }

    /// Whether records are lines of any length.
    pub fn lines(&self) -> bool {
        self.lines
    }

    /// Splits `data` (the carry followed by what was just read) into lines
    /// and hands each, its `\n` included, to `take`. A line longer than
    /// [`Records::record_len`] is counted malformed and skipped. Returns
    /// how many lines were taken.
    pub fn split_lines(
        &mut self,
        data: &[u8],
        check: &mut Checker,
        mut take: impl FnMut(&[u8], &mut Checker),
    ) -> usize {
        let mut pos = 0;
        let mut records = 0;
        while let Some(newline) = memchr(b'\n', &data[pos..]) {
            let line = &data[pos..pos + newline + 1];
            pos += newline + 1;
            if line.len() > self.len {
                check.errors.malformed += 1;
                continue;
            }
            take(line, check);
            records += 1;
        }
        let rest = &data[pos..];
        self.carry.clear();
        if rest.len() < self.len {
            self.carry.extend_from_slice(rest);
        } else {
            check.errors.malformed += 1;
        }
        records
    }

    /// The length of every record (of lines: the longest).
    pub fn record_len(&self) -> usize {
        self.len
    }

    /// The partial record the next read must be appended to.
    pub fn carry(&self) -> &[u8] {
        &self.carry
    }

    /// Splits `data` (the carry followed by what was just read). At each
    /// whole record that ends in a newline, `take` gets the data from that
    /// record on and returns how many whole records it took there (at least
    /// one). Returns how many records were taken in all.
    pub fn split(
        &mut self,
        data: &[u8],
        check: &mut Checker,
        mut take: impl FnMut(&[u8], &mut Checker) -> usize,
    ) -> usize {
        let mut data = data;
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
        }
        let len = self.len;
        let mut pos = 0;
        let mut records = 0;
        while let Some(record) = data.get(pos..pos + len) {
            if !self.is_whole(record) {
                // Not where a record should end: count it and start again
                // after the next newline (or frame header).
                check.errors.malformed += 1;
                pos = self.resync(data, pos);
                continue;
            }
            let taken = take(&data[pos..], check).max(1);
            pos += taken * len;
            records += taken;
        }
        self.carry.clear();
        self.carry
            .extend_from_slice(data.get(pos..).unwrap_or_default());
        records
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::wire::Header;

    /// One record from `sender`, message `seq`, stamped 0.
    pub fn record(wire: &mut Wire, sender: u32, seq: u64) -> Vec<u8> {
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
    }

    /// Feeds `records` to `inbox` in reads of `chunk` bytes.
    pub fn feed<I: Inbox>(
        inbox: &mut I,
        records: &[Vec<u8>],
        chunk: usize,
        check: &mut Checker,
        against: &mut I::Against,
    ) {
        let bytes: Vec<u8> = records.concat();
        for piece in bytes.chunks(chunk) {
            let mut data = inbox.carry().to_vec();
            data.extend_from_slice(piece);
            inbox.absorb(&data, 1, check, against);
        }
    }
}
