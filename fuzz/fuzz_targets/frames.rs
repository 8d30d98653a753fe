//! Fuzz target `frames`: an arbitrary byte stream, cut into arbitrary reads,
//! fed to a connection's `LineReader` exactly as the relay feeds it,
//! including the newline-less path (after each read, bytes not yet ended by
//! a `\n` are tried as a whole frame under the key 00 01 .. 0f, and taken if
//! they open; `decrypt` checks the relay's split of joined frames).
//!
//! Input: `[max_line, stop_after, n, n read sizes.., stream..]`. A read size
//! of 0 means "the rest of the stream"; sizes repeat. `stop_after` = k > 0
//! makes the k-th line's callback stop the reading, as the relay does on a
//! line that does not open.
//!
//! Checked against a plain reference split of the stream: the lines passed
//! on are exactly its complete lines, an over-long line is an error raised
//! in the read that carries its first byte past the limit (and nothing is
//! passed on after it), the buffer never holds more than `max_line` bytes,
//! and unterminated bytes are offered exactly while no `\n` has come; an
//! empty line right after a frame taken that way is its terminator, not a
//! line.

#![no_main]

use std::ops::ControlFlow;

use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::Key;
use eaxchat_proto::lines::{LineError, LineReader};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fuzz_target!(|data: &[u8]| {
    let [max_line, stop_after, n, rest @ ..] = data else {
        return;
    };
    let (max_line, stop_after) = (usize::from(*max_line), usize::from(*stop_after));
    let (sizes, stream) = rest.split_at(usize::from(*n).min(rest.len()));
    let key = Key::from_bytes(&KEY).expect("a 16-byte key");
    let mut cipher = Cipher::with_nonce_seed(&key, [7; 32]);

    let mut reader = LineReader::new(max_line);
    let mut lines: Vec<Vec<u8>> = Vec::new();
    // Where the current run of lines starts: after the last frame taken
    // from unterminated bytes (there is no `\n` before it).
    let mut base = 0;
    let mut expected = reference(stream, max_line, false);
    let mut offset = 0;
    for size in sizes.iter().copied().cycle().chain(std::iter::once(0)) {
        if offset == stream.len() {
            break;
        }
        let size = match usize::from(size) {
            0 => stream.len() - offset,
            size => size.min(stream.len() - offset),
        };
        let read = &stream[offset..offset + size];
        let mut stopped = false;
        let fed = reader.feed(read, |line| {
            lines.push(line.to_vec());
            if lines.len() == stop_after {
                stopped = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        let (want, too_long_at) = &expected;
        if let Err(LineError::TooLong { limit }) = fed {
            assert_eq!(limit, max_line);
            let at = too_long_at.map(|at| base + at);
            assert!(
                at.is_some_and(|at| (offset..offset + size).contains(&at)),
                "too long reported in read {offset}..{}, expected at {at:?}",
                offset + size
            );
            assert_eq!(&lines, want, "lines before the over-long one");
            return;
        }
        if stopped {
            assert_eq!(
                Some(&lines[..]),
                want.get(..stop_after),
                "lines up to the stop"
            );
            return;
        }
        offset += size;
        assert!(
            too_long_at.is_none_or(|at| base + at >= offset),
            "over-long line not reported"
        );
        assert!(reader.buffered() <= max_line, "buffer over the limit");
        let newline_seen = stream[..offset].contains(&b'\n');
        assert_eq!(reader.saw_newline(), newline_seen);
        match reader.unterminated() {
            Some(bytes) => {
                assert!(!newline_seen, "unterminated bytes offered after a newline");
                assert_eq!(bytes, &stream[base..offset]);
                if cipher.open(bytes).is_ok() {
                    let len = bytes.len();
                    reader.consume_frame(len);
                    base = offset;
                    expected = reference(&stream[base..], max_line, true);
                }
            }
            None => assert!(
                newline_seen || base == offset,
                "unterminated bytes were not offered"
            ),
        }
    }
    let (want, too_long_at) = expected;
    assert_eq!(too_long_at, None);
    assert_eq!(lines, want, "every complete line, in order");
    let tail = stream[base..].rsplit(|&b| b == b'\n').next().unwrap_or(&[]);
    assert_eq!(reader.buffered(), tail.len(), "the unfinished tail is held");
});

/// The plain split: the complete lines of `stream` (one `\r` before the
/// `\n` dropped), up to the first line longer than `max_line` (its `\r`
/// counted), and the offset of that line's first byte past the limit.
/// `after_frame`: the stream follows a frame taken unterminated, so an empty
/// first line is that frame's terminator and not passed on.
fn reference(stream: &[u8], max_line: usize, after_frame: bool) -> (Vec<Vec<u8>>, Option<usize>) {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut skip_empty = after_frame;
    loop {
        let end = stream[start..].iter().position(|&b| b == b'\n');
        let len = end.unwrap_or(stream.len() - start);
        if len > max_line {
            return (lines, Some(start + max_line));
        }
        let Some(len) = end else {
            return (lines, None);
        };
        let line = &stream[start..start + len];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !(std::mem::take(&mut skip_empty) && line.is_empty()) {
            lines.push(line.to_vec());
        }
        start += len + 1;
    }
}
