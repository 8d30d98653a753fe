//! Splitting a connection's byte stream into lines.
//!
//! The relay reads each socket into one shared buffer and hands the bytes
//! here. Complete lines are passed on straight from that buffer; only the
//! unfinished tail of a read is copied into the connection's own `pending`
//! buffer, which is empty (and unallocated) while a connection is quiet.
//!
//! A line is everything before a `\n`, with one `\r` before it dropped. A
//! line longer than the limit is an error, found as soon as the limit is
//! passed: the buffer never holds more than `max_line` bytes.
//!
//! This module does not know what a line means. It does remember whether a
//! connection has ever sent a `\n`, because until then the relay also looks
//! for frames in the unterminated bytes (the original notebook client sends
//! frames without newlines; [`crate::seed`] splits them), and once it has,
//! never again. A frame taken that way may still have its `\n` on the way (a newline client
//! whose read ended just before it): an empty line right after such a frame
//! is its terminator, not a line.

use std::fmt;
use std::ops::ControlFlow;

use bytes::BytesMut;
use memchr::memchr_iter;

/// A `pending` buffer larger than this is given back once it empties, so a
/// connection that once sent a long line does not keep its memory.
const KEEP_PENDING_CAPACITY: usize = 256;

/// Why the stream cannot be split any further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// A line grew past the limit before its `\n` arrived.
    TooLong {
        /// The limit that was passed.
        limit: usize,
    },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong { limit } => write!(f, "line longer than {limit} bytes"),
        }
    }
}

impl std::error::Error for LineError {}

/// One connection's line splitter.
///
/// ```
/// use std::ops::ControlFlow;
///
/// use eaxchat_proto::lines::{LineError, LineReader};
///
/// let mut reader = LineReader::new(16);
/// let mut lines = Vec::new();
/// let mut keep = |line: &[u8]| {
///     lines.push(line.to_vec());
///     ControlFlow::Continue(())
/// };
/// // A read may end mid-line: the rest of it waits for the next read.
/// reader.feed(b"one\r\ntw", &mut keep)?;
/// reader.feed(b"o\n", &mut keep)?;
/// assert_eq!(lines, [b"one".to_vec(), b"two".to_vec()]);
///
/// let runaway = reader.feed(&[b'x'; 17], |_| ControlFlow::Continue(()));
/// assert_eq!(runaway, Err(LineError::TooLong { limit: 16 }));
/// # Ok::<(), LineError>(())
/// ```
#[derive(Debug, Default)]
pub struct LineReader {
    pending: BytesMut,
    max_line: usize,
    saw_newline: bool,
    /// A frame was just taken from unterminated bytes.
    took_frame: bool,
}

impl LineReader {
    /// A reader that accepts lines of at most `max_line` bytes (terminator
    /// excluded).
    pub fn new(max_line: usize) -> LineReader {
        LineReader {
            pending: BytesMut::new(),
            max_line,
            saw_newline: false,
            took_frame: false,
        }
    }

    /// Splits `data`, just read from the connection, into lines and calls
    /// `on_line` for each complete one, in order. `on_line` may stop the
    /// reading by returning `Break`; the rest of `data` is then dropped.
    ///
    /// Returns an error when a line passes the limit; the lines before it
    /// have been passed on, and the reader should not be fed again.
    pub fn feed(
        &mut self,
        data: &[u8],
        mut on_line: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Result<(), LineError> {
        let mut start = 0;
        for newline in memchr_iter(b'\n', data) {
            self.saw_newline = true;
            let ends_taken_frame = std::mem::take(&mut self.took_frame);
            let mut pass_on = |line: &[u8]| match strip_cr(line) {
                b"" if ends_taken_frame => ControlFlow::Continue(()),
                line => on_line(line),
            };
            let flow = if self.pending.is_empty() {
                let line = &data[start..newline];
                self.check_len(line.len())?;
                pass_on(line)
            } else {
                self.check_len(self.pending.len() + newline - start)?;
                self.pending.extend_from_slice(&data[start..newline]);
                let flow = pass_on(&self.pending);
                self.clear_pending();
                flow
            };
            start = newline + 1;
            if flow.is_break() {
                return Ok(());
            }
        }
        let tail = &data[start..];
        if !tail.is_empty() {
            self.check_len(self.pending.len() + tail.len())?;
            self.pending.extend_from_slice(tail);
        }
        Ok(())
    }

    /// Bytes buffered without a `\n`, offered to look for newline-less
    /// frames in, only while this connection has never sent a `\n`.
    pub fn unterminated(&self) -> Option<&[u8]> {
        let offer = !self.saw_newline && !self.pending.is_empty();
        offer.then_some(&self.pending[..])
    }

    /// Drops the first `len` bytes [`LineReader::unterminated`] returned,
    /// taken as a frame: a `\n` right after them only ends that frame.
    pub fn consume_frame(&mut self, len: usize) {
        use bytes::Buf as _;
        self.pending.advance(len.min(self.pending.len()));
        if self.pending.is_empty() {
            self.clear_pending();
        }
        self.took_frame = true;
    }

    /// Whether this connection has ever sent a `\n`.
    pub fn saw_newline(&self) -> bool {
        self.saw_newline
    }

    /// Bytes held for an unfinished line.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    fn check_len(&self, len: usize) -> Result<(), LineError> {
        if len > self.max_line {
            return Err(LineError::TooLong {
                limit: self.max_line,
            });
        }
        Ok(())
    }

    fn clear_pending(&mut self) {
        if self.pending.capacity() > KEEP_PENDING_CAPACITY {
            self.pending = BytesMut::new();
        } else {
            self.pending.clear();
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` in order and returns the lines, or the error.
    fn split(max_line: usize, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Option<LineError>) {
        let mut reader = LineReader::new(max_line);
        let mut lines = Vec::new();
        for chunk in chunks {
            let fed = reader.feed(chunk, |line| {
                lines.push(line.to_vec());
                ControlFlow::Continue(())
            });
            if let Err(error) = fed {
                return (lines, Some(error));
            }
            assert!(reader.buffered() <= max_line);
        }
        (lines, None)
    }

    #[test]
    fn splits_lines_across_any_read_boundaries() {
        let v = |s: &[&str]| s.iter().map(|l| l.as_bytes().to_vec()).collect::<Vec<_>>();
        type Case<'a> = (&'a [&'a [u8]], Vec<Vec<u8>>);
        let cases: &[Case] = &[
            (&[b"a\nb\n"], v(&["a", "b"])),
            (&[b"a", b"b\n"], v(&["ab"])),
            (&[b"ab\r\n", b"\r\n"], v(&["ab", ""])),
            (&[b"a\r", b"\n"], v(&["a"])),
            (&[b"a\r\r\n"], v(&["a\r"])),
            (&[b"\n\n"], v(&["", ""])),
            (&[b"x", b"y", b"z"], v(&[])),
            (&[b"x\ny", b"", b"z\n"], v(&["x", "yz"])),
        ];
        for (chunks, want) in cases {
            assert_eq!(&split(16, chunks).0, want, "{chunks:?}");
        }
    }

    #[test]
    fn a_line_over_the_limit_is_an_error_and_never_buffered_whole() {
        assert_eq!(split(4, &[b"1234\n"]), (vec![b"1234".to_vec()], None));
        let too_long = Some(LineError::TooLong { limit: 4 });
        assert_eq!(split(4, &[b"12345\n"]).1, too_long);
        assert_eq!(
            split(4, &[b"ok\n12", b"345"]),
            (vec![b"ok".to_vec()], too_long)
        );
        assert_eq!(split(4, &[b"123", b"45\n"]).1, too_long);
        assert_eq!(split(4, &[b"12345"]).1, too_long);
    }

    #[test]
    fn break_stops_at_that_line() {
        let mut reader = LineReader::new(64);
        let mut seen = Vec::new();
        reader
            .feed(b"a\nb\nc\n", |line| {
                seen.push(line.to_vec());
                if line == b"b" {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        assert_eq!(seen, vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn unterminated_bytes_are_offered_only_before_the_first_newline() {
        let mut reader = LineReader::new(64);
        let ignore = |_: &[u8]| ControlFlow::Continue(());
        reader.feed(b"abcdef", ignore).unwrap();
        assert_eq!(reader.unterminated(), Some(&b"abcdef"[..]));
        reader.consume_frame(4);
        assert_eq!(reader.unterminated(), Some(&b"ef"[..]));
        reader.consume_frame(2);
        assert_eq!(reader.unterminated(), None);
        reader.feed(b"x\ny", ignore).unwrap();
        assert!(reader.saw_newline());
        assert_eq!(reader.buffered(), 1);
        assert_eq!(reader.unterminated(), None);
    }

    #[test]
    fn a_drained_large_buffer_is_released() {
        let mut reader = LineReader::new(4096);
        let ignore = |_: &[u8]| ControlFlow::Continue(());
        reader.feed(&[b'a'; 2000], ignore).unwrap();
        reader.feed(b"\n", ignore).unwrap();
        assert_eq!(reader.pending.capacity(), 0);
    }
}
