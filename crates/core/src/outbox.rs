//! A connection's queue of sealed frames waiting to be written.
//!
//! Frames arrive as [`Frames`]: a run of whole sealed lines held in one
//! shared `Bytes`, made once per read of a sender and queued for every
//! recipient. Queueing a run is a reference-count increment, never a copy,
//! and costs the same whether it holds one frame or hundreds. Writing sends
//! as many queued runs as fit in one `write_vectored` call. The queue counts
//! the bytes it holds so the relay can drop a consumer that falls too far
//! behind, and counts frames as they are written whole.
//!
//! It never seals, copies or looks inside a frame, and never decides who
//! gets one: the relay queues, this module only holds and writes.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::{Buf as _, Bytes};
use memchr::memchr_iter;

/// Runs gathered into one `write_vectored` call. Linux takes up to 1024;
/// a run is often many lines already, and the array lives on the stack.
const MAX_IOVECS: usize = 256;

/// Slots a drained queue may keep; a larger one is given back so a
/// connection that once had a backlog costs nothing while idle.
const KEEP_QUEUE_CAPACITY: usize = 64;

/// One or more whole frames (each ending in `\n`), back to back in one
/// shared buffer. Cloning shares the buffer.
#[derive(Debug, Clone)]
pub struct Frames {
    bytes: Bytes,
    /// Frames not yet written whole.
    count: usize,
}

impl Frames {
    /// Wraps `bytes`, which must be `count` whole frames, each ending in
    /// `\n` (as the relay's cipher writes them).
    pub fn new(bytes: Bytes, count: usize) -> Frames {
        debug_assert_eq!(memchr_iter(b'\n', &bytes).count(), count);
        debug_assert!(bytes.last().is_none_or(|&b| b == b'\n'));
        Frames { bytes, count }
    }

    /// One whole frame.
    pub fn one(frame: Bytes) -> Frames {
        Frames::new(frame, 1)
    }

    /// Bytes in the run.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the run holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// What one write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Bytes accepted by the writer.
    pub bytes: usize,
    /// Frames now written whole.
    pub frames: usize,
}

/// A queue of frames for one connection.
#[derive(Debug, Default)]
pub struct Outbox {
    runs: VecDeque<Frames>,
    queued: usize,
}

impl Outbox {
    /// Appends a run of frames.
    pub fn push(&mut self, frames: Frames) {
        self.queued += frames.len();
        self.runs.push_back(frames);
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// Runs of frames waiting (the first may be partly written).
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Drops everything queued and gives the memory back.
    pub fn clear(&mut self) {
        self.runs = VecDeque::new();
        self.queued = 0;
    }

    /// Writes as much of the queue as `writer` takes in one call.
    pub fn write_to(&mut self, writer: &mut impl Write) -> io::Result<Written> {
        let bytes = match self.runs.len() {
            0 => {
                return Ok(Written {
                    bytes: 0,
                    frames: 0,
                });
            }
            // One run (the common case) needs no vector.
            1 => writer.write(&self.runs[0].bytes)?,
            _ => {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for (slot, run) in slices.iter_mut().zip(&self.runs) {
                    *slot = IoSlice::new(&run.bytes);
                    count += 1;
                }
                writer.write_vectored(&slices[..count])?
            }
        };
        Ok(Written {
            bytes,
            frames: self.consume(bytes),
        })
    }

    /// Removes `written` bytes from the front; returns the frames finished.
    fn consume(&mut self, mut written: usize) -> usize {
        self.queued -= written;
        let mut finished = 0;
        while let Some(front) = self.runs.front_mut() {
            if written < front.bytes.len() {
                // Part of a run went out: count the lines it completed.
                let done = memchr_iter(b'\n', &front.bytes[..written]).count();
                front.bytes.advance(written);
                front.count -= done;
                finished += done;
                break;
            }
            written -= front.bytes.len();
            finished += front.count;
            self.runs.pop_front();
        }
        if self.runs.is_empty() && self.runs.capacity() > KEEP_QUEUE_CAPACITY {
            self.runs = VecDeque::new();
        }
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `room` bytes per call.
    struct Trickle {
        out: Vec<u8>,
        room: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut outbox = Outbox::default();
        for frame in ["one\n", "two\n", "three\n"] {
            outbox.push(Frames::one(Bytes::from_static(frame.as_bytes())));
        }
        assert_eq!(outbox.queued_bytes(), 14);
        let mut writer = Trickle {
            out: Vec::new(),
            room: 5,
        };
        let mut frames = 0;
        while !outbox.is_empty() {
            frames += outbox.write_to(&mut writer).unwrap().frames;
        }
        assert_eq!(writer.out, b"one\ntwo\nthree\n");
        assert_eq!(frames, 3);
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[test]
    fn one_call_gathers_many_frames() {
        let mut outbox = Outbox::default();
        let frame = Frames::one(Bytes::from_static(b"x\n"));
        for _ in 0..(MAX_IOVECS + 10) {
            outbox.push(frame.clone());
        }
        let mut out = Vec::new();
        let written = outbox.write_to(&mut out).unwrap();
        // Vec's write_vectored takes every slice it is given.
        assert_eq!(written.frames, MAX_IOVECS);
        assert_eq!(outbox.len(), 10);
        assert_eq!(outbox.write_to(&mut out).unwrap().frames, 10);
        assert_eq!(out.len(), 2 * (MAX_IOVECS + 10));
    }

    #[test]
    fn would_block_leaves_the_queue_alone() {
        let mut outbox = Outbox::default();
        outbox.push(Frames::one(Bytes::from_static(b"abc\n")));
        let mut full = Trickle {
            out: Vec::new(),
            room: 0,
        };
        let err = outbox.write_to(&mut full).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(outbox.queued_bytes(), 4);
    }

    #[test]
    fn frames_of_a_run_count_as_they_are_written_whole() {
        let mut outbox = Outbox::default();
        outbox.push(Frames::new(Bytes::from_static(b"aa\nbb\ncc\n"), 3));
        outbox.push(Frames::one(Bytes::from_static(b"dd\n")));
        let mut writer = Trickle {
            out: Vec::new(),
            room: 4,
        };
        let mut finished = Vec::new();
        while !outbox.is_empty() {
            finished.push(outbox.write_to(&mut writer).unwrap().frames);
        }
        // Writes end after "aa\nb", "b\ncc", "\n" and "dd\n".
        assert_eq!(finished, [1, 1, 1, 1]);
        assert_eq!(writer.out, b"aa\nbb\ncc\ndd\n");
    }
}
