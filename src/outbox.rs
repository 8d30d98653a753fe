//! A connection's queue of sealed frames waiting to be written.
//!
//! Frames are shared `Bytes`: queueing one for a recipient is a reference
//! count increment, never a copy. Writing sends as many queued frames as fit
//! in one `write_vectored` call. The queue counts the bytes it holds so the
//! relay can drop a consumer that falls too far behind.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::{Buf as _, Bytes};

/// Frames gathered into one `write_vectored` call. Linux takes up to 1024;
/// 256 lines of a chat already fill a loopback socket's buffer, and the
/// array lives on the stack.
const MAX_IOVECS: usize = 256;

/// Slots a drained queue may keep; a larger one is given back so a
/// connection that once had a backlog costs nothing while idle.
const KEEP_QUEUE_CAPACITY: usize = 64;

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
    frames: VecDeque<Bytes>,
    queued: usize,
}

impl Outbox {
    /// Appends a frame.
    pub fn push(&mut self, frame: Bytes) {
        self.queued += frame.len();
        self.frames.push_back(frame);
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// Frames waiting (the first may be partly written).
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Drops everything queued and gives the memory back.
    pub fn clear(&mut self) {
        self.frames = VecDeque::new();
        self.queued = 0;
    }

    /// Writes as much of the queue as `writer` takes in one call.
    pub fn write_to(&mut self, writer: &mut impl Write) -> io::Result<Written> {
        let bytes = match self.frames.len() {
            0 => {
                return Ok(Written {
                    bytes: 0,
                    frames: 0,
                });
            }
            // One frame (the common case at low load) needs no vector.
            1 => writer.write(&self.frames[0])?,
            _ => {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for (slot, frame) in slices.iter_mut().zip(&self.frames) {
                    *slot = IoSlice::new(frame);
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
        while let Some(front) = self.frames.front_mut() {
            if written < front.len() {
                front.advance(written);
                break;
            }
            written -= front.len();
            self.frames.pop_front();
            finished += 1;
        }
        if self.frames.is_empty() && self.frames.capacity() > KEEP_QUEUE_CAPACITY {
            self.frames = VecDeque::new();
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
            outbox.push(Bytes::from_static(frame.as_bytes()));
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
        let frame = Bytes::from_static(b"x\n");
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
        outbox.push(Bytes::from_static(b"abc\n"));
        let mut full = Trickle {
            out: Vec::new(),
            room: 0,
        };
        let err = outbox.write_to(&mut full).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(outbox.queued_bytes(), 4);
    }
}
