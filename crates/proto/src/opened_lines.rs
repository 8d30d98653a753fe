//! One read's lines opened side by side under one key, before a relay
//! takes them one at a time.
//!
//! A shared-key relay opens every line of a read and checks each against
//! the replay window in order, running commands between them. Opening
//! them one at a time makes each frame's CBC-MAC chain a run of dependent
//! AES blocks that the CPU cannot overlap; [`OpenedLines::open`] decodes
//! the read's complete lines first and opens them together with
//! [`EaxKey::open_frames_in_place`](crate::eax_key::EaxKey::open_frames_in_place).
//! The relay then asks, for each line it takes, whether it was opened
//! ([`OpenedLines::take`]): only a line with exactly the bytes of the next
//! line opened is, so what is taken is always what verified under the key.
//! Any other line (one that did not decode or verify, one completing
//! bytes of an earlier read, one after them) is opened the usual way, which
//! gives its error. Nothing here checks replays: that stays with the
//! relay, in order.

use crate::cipher::Cipher;
use crate::wire::{self, NONCE_LEN, OVERHEAD};

/// One line opened: where its bytes and its decoded frame lie (its body's
/// length is in [`OpenedLines`]' `body_lens`, as the opening takes them).
#[derive(Debug, Clone, Copy)]
struct Entry {
    line_start: usize,
    line_len: usize,
    frame_start: usize,
}

/// The lines of one read opened ahead; see the module's doc. Its buffers
/// are kept from one read to the next.
#[derive(Debug, Default)]
pub struct OpenedLines {
    /// The lines opened, end to end, as they came.
    lines: Vec<u8>,
    /// Their frames, end to end, decoded and then opened in place.
    frames: Vec<u8>,
    /// Where each line and frame lies, and each frame's body length.
    entries: Vec<Entry>,
    body_lens: Vec<usize>,
    /// The next entry [`OpenedLines::take`] hands out.
    next: usize,
}

impl OpenedLines {
    /// Decodes the complete lines of `data` (each ending in `\n`, a `\r`
    /// before it dropped, empty lines skipped) up to the first that does
    /// not decode, and opens them under `cipher`'s key side by side. Every
    /// line from the first that does not verify is dropped. What an
    /// earlier call opened is forgotten first.
    pub fn open(&mut self, cipher: &Cipher, data: &[u8]) {
        self.clear();
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', data) {
            let line = &data[start..end];
            start = end + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let frame_start = self.frames.len();
            let Ok(frame_len) = wire::decode_line_at(line, &mut self.frames, frame_start) else {
                self.frames.truncate(frame_start);
                break;
            };
            self.frames.truncate(frame_start + frame_len);
            self.entries.push(Entry {
                line_start: self.lines.len(),
                line_len: line.len(),
                frame_start,
            });
            self.body_lens.push(frame_len - OVERHEAD);
            self.lines.extend_from_slice(line);
        }
        let opened = cipher
            .eax_key()
            .open_frames_in_place(&mut self.frames, &self.body_lens);
        self.entries.truncate(opened);
    }

    /// If `line` has exactly the bytes of the next line opened, its nonce
    /// and its plaintext, and the next call looks at the line after;
    /// `None` otherwise (the line is to be opened the usual way).
    pub fn take(&mut self, line: &[u8]) -> Option<([u8; NONCE_LEN], &[u8])> {
        let entry = *self.entries.get(self.next)?;
        let body_len = *self.body_lens.get(self.next)?;
        let opened = self
            .lines
            .get(entry.line_start..entry.line_start + entry.line_len)?;
        if opened != line {
            return None;
        }
        self.next += 1;
        let frame = self
            .frames
            .get(entry.frame_start..entry.frame_start + OVERHEAD + body_len)?;
        let nonce = frame.first_chunk::<NONCE_LEN>()?;
        Some((*nonce, &frame[OVERHEAD..]))
    }

    /// Forgets every line opened (their memory is kept).
    pub fn clear(&mut self) {
        self.lines.clear();
        self.frames.clear();
        self.entries.clear();
        self.body_lens.clear();
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Key;
    use bytes::BytesMut;

    fn cipher() -> Cipher {
        let key = Key::from_hex("000102030405060708090a0b0c0d0e0f").expect("a key");
        Cipher::with_nonce_seed(&key, [7; 32])
    }

    fn lines(cipher: &mut Cipher, texts: &[&[u8]]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for text in texts {
            cipher.seal_into(text, &mut out);
        }
        out.to_vec()
    }

    #[test]
    fn every_line_that_opens_is_handed_out_in_order() {
        let mut sealer = cipher();
        let data = lines(&mut sealer, &[b"one", b"", b"three\xff"]);
        let mut opened = OpenedLines::default();
        opened.open(&cipher(), &data);
        let mut count = 0;
        for (line, want) in data
            .split(|&b| b == b'\n')
            .zip([&b"one"[..], b"", b"three\xff"])
        {
            let (nonce, plaintext) = opened.take(line).expect("opened");
            assert_eq!(plaintext, want);
            let mut frame = Vec::new();
            wire::decode_line(line, &mut frame).expect("a line");
            assert_eq!(nonce[..], frame[..NONCE_LEN]);
            count += 1;
        }
        assert_eq!(count, 3);
    }

    #[test]
    fn a_line_that_does_not_verify_and_those_after_it_are_not_handed_out() {
        let mut sealer = cipher();
        let mut data = lines(&mut sealer, &[b"one", b"two", b"three"]);
        // The second line's last base64 character before its padding.
        let second_end = memchr::memchr_iter(b'\n', &data).nth(1);
        let at = second_end.expect("two lines") - 3;
        data[at] = if data[at] == b'A' { b'B' } else { b'A' };
        let mut opened = OpenedLines::default();
        opened.open(&cipher(), &data);
        let mut split = data.split(|&b| b == b'\n');
        assert!(opened.take(split.next().expect("a line")).is_some());
        assert!(opened.take(split.next().expect("a line")).is_none());
        assert!(opened.take(split.next().expect("a line")).is_none());
    }

    #[test]
    fn only_the_very_bytes_opened_are_handed_out() {
        let mut sealer = cipher();
        let data = lines(&mut sealer, &[b"one", b"two"]);
        let mut opened = OpenedLines::default();
        opened.open(&cipher(), &data);
        let mut split = data.split(|&b| b == b'\n');
        let (first, second) = (split.next().expect("a line"), split.next().expect("a line"));
        // Out of order, or another line: opened the usual way.
        assert!(opened.take(second).is_none());
        let other = lines(&mut sealer, &[b"one"]);
        assert!(opened.take(&other[..other.len() - 1]).is_none());
        assert!(opened.take(first).is_some());
        assert!(opened.take(second).is_some());
        // Cleared, nothing is handed out, even the same bytes again.
        opened.clear();
        assert!(opened.take(first).is_none());
    }

    #[test]
    fn a_line_not_decoding_ends_what_is_opened_and_a_partial_line_is_not_taken() {
        let mut sealer = cipher();
        let mut data = lines(&mut sealer, &[b"one"]);
        data.extend_from_slice(b"not base64!\n");
        data.extend_from_slice(&lines(&mut sealer, &[b"three"]));
        let partial = lines(&mut sealer, &[b"four"]);
        data.extend_from_slice(&partial[..10]);
        let mut opened = OpenedLines::default();
        opened.open(&cipher(), &data);
        assert_eq!(opened.entries.len(), 1);
    }
}
