//! Reading what the user types (or pipes in) as messages, one per line.
//!
//! A line ends at `\n`, with one `\r` before it dropped; the last line may
//! lack its `\n`. A line longer than the limit is not kept: its length is
//! counted and the rest of it skipped, so a runaway input (a binary file
//! piped in by mistake) costs at most `max_len` bytes of memory and is
//! reported, not sent.

use std::io::{self, BufRead};

use memchr::memchr;

/// One line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputLine {
    /// A line within the limit, without its terminator.
    Line(Vec<u8>),
    /// A line over the limit, skipped; how long it was.
    TooLong(usize),
}

/// Splits a reader into [`InputLine`]s of at most `max_len` bytes.
#[derive(Debug)]
pub struct InputLines<R> {
    reader: R,
    max_len: usize,
}

impl<R: BufRead> InputLines<R> {
    /// Lines of `reader`, each kept only if at most `max_len` bytes long.
    pub fn new(reader: R, max_len: usize) -> InputLines<R> {
        InputLines { reader, max_len }
    }

    /// The next line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<InputLine>> {
        // One byte beyond the limit is kept so that a line of exactly
        // `max_len` bytes plus `\r` is still recognised as fitting.
        let keep = self.max_len.saturating_add(1);
        let mut line = Vec::new();
        let mut len = 0usize;
        let mut last = None;
        let mut started = false;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                if !started {
                    return Ok(None);
                }
                break;
            }
            started = true;
            let (chunk, used, ended) = match memchr(b'\n', buf) {
                Some(end) => (&buf[..end], end + 1, true),
                None => (buf, buf.len(), false),
            };
            len += chunk.len();
            last = chunk.last().copied().or(last);
            let room = keep.saturating_sub(line.len());
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.reader.consume(used);
            if ended {
                break;
            }
        }
        if last == Some(b'\r') {
            len -= 1;
            line.truncate(len);
        }
        if len > self.max_len {
            return Ok(Some(InputLine::TooLong(len)));
        }
        Ok(Some(InputLine::Line(line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max_len: usize) -> Vec<InputLine> {
        // A tiny buffer makes lines cross many reads.
        let reader = io::BufReader::with_capacity(3, input);
        let mut lines = InputLines::new(reader, max_len);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().unwrap() {
            out.push(line);
        }
        out
    }

    fn line(text: &str) -> InputLine {
        InputLine::Line(text.as_bytes().to_vec())
    }

    #[test]
    fn splits_lines_and_skips_the_ones_too_long() {
        let cases: &[(&[u8], Vec<InputLine>)] = &[
            (b"", vec![]),
            (b"a\nb\n", vec![line("a"), line("b")]),
            (b"a\r\nb", vec![line("a"), line("b")]),
            (b"\n\n", vec![line(""), line("")]),
            (b"a\r\r\n", vec![line("a\r")]),
            (b"12345\n", vec![line("12345")]),
            (b"12345\r\n", vec![line("12345")]),
            (b"123456\nok\n", vec![InputLine::TooLong(6), line("ok")]),
            (b"123456\r\nok", vec![InputLine::TooLong(6), line("ok")]),
            (b"0123456789abcdef", vec![InputLine::TooLong(16)]),
        ];
        for (input, want) in cases {
            assert_eq!(
                &lines(input, 5),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn keeps_invalid_utf8_as_bytes() {
        assert_eq!(
            lines(b"\xff\xfe\n", 5),
            vec![InputLine::Line(vec![0xff, 0xfe])]
        );
    }
}
