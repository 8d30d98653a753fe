//! The original notebook client's conventions: frames without newlines
//! going in, one frame per read coming out.
//!
//! The seed project's client sends each message as a bare frame,
//! `base64(nonce ‖ tag ‖ ct)` with no `\n`, and reads with one
//! `recv(4096)` per message, decrypting whatever that returned. TCP joins
//! its frames, so the relay must split a run of them ([`Splitter`]), and it
//! must never let one of its reads see two frames ([`Paced`]).
//!
//! **Splitting.** Every frame's base64 is a multiple of four characters, so
//! frames start on a quad boundary. A padded frame ends at its padding; an
//! unpadded one is a multiple of 3 decoded bytes, so a run of them decodes
//! as one byte string and a frame may end at any quad boundary: it ends
//! where its tag verifies. The scan decodes each complete quad once as it
//! arrives and feeds the ciphertext to the key's resumable tag check
//! ([`TagScan`]), which keeps the CBC-MAC chain at the last block boundary
//! and finishes it for each candidate end: one block per 16 bytes plus one
//! per quad, never a rescan from the frame's start. The key is the
//! caller's ([`EaxKey`]): the relay's, or a member's. A frame found this
//! way is then opened by [`crate::cipher::Cipher`] like any line, so nothing here ever
//! yields plaintext. A padding that does not end a frame, or a byte
//! that is not base64, ends the scan: that connection is not a notebook
//! client, and its bytes are held to newlines and `--max-frame`.
//!
//! **Pacing.** A seed receiver is sent one frame at a time: the messages
//! that arrive meanwhile wait here and go out joined as lines of one
//! plaintext, as many as fit one `recv(4096)` ([`MAX_SEED_PLAINTEXT`]).
//!
//! This module knows nothing of sockets or connections; the relay owns
//! when a frame is taken and when one is written.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use memchr::memchr;

use crate::cipher::Seal;
use crate::eax_key::{EaxKey, TagScan};
use crate::wire::{NONCE_LEN, OVERHEAD, max_plaintext_len};

/// What the seed client reads at once: `sock.recv(4096)`.
pub const SEED_READ_LEN: usize = 4096;

/// Longest plaintext whose frame, with its `\n`, fits one seed read: 3037.
pub const MAX_SEED_PLAINTEXT: usize = max_plaintext_len(SEED_READ_LEN - 1);

/// `--seed-write-gap-ms`'s default (docs/protocol.md: "The original notebook client").
pub const DEFAULT_WRITE_GAP: Duration = Duration::from_millis(50);

/// Quads decoded per step: a stack buffer's worth.
const PIECE_QUADS: usize = 64;

/// A `waiting` buffer larger than this is given back once it empties.
const KEEP_WAITING_CAPACITY: usize = 8 * 1024;

/// What the splitter found in a connection's unterminated bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The first this many bytes are a frame whose tag verifies: take
    /// them off the front before the next call.
    Frame(usize),
    /// No frame ends in the bytes so far.
    More,
    /// These bytes cannot be notebook frames; none will be found again.
    NotSeed,
}

impl std::fmt::Debug for Splitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Splitter")
            .field("scanned", &self.scanned)
            .field("decoded", &self.decoded)
            .field("dead", &self.dead)
            .finish_non_exhaustive()
    }
}

/// One connection's incremental frame splitter.
///
/// Fed the connection's unterminated bytes as they grow (the same buffer,
/// longer each time, its front dropped after each frame found), it looks
/// at each byte once.
#[derive(Clone, Default)]
pub struct Splitter {
    /// Bytes of the buffer scanned: whole quads of the current frame.
    scanned: usize,
    /// Nonce and tag of the current frame, as far as decoded.
    head: [u8; OVERHEAD],
    /// Bytes of the current frame decoded.
    decoded: usize,
    /// Its tag check, once its nonce and tag are in.
    scan: Option<TagScan>,
    dead: bool,
}

impl Splitter {
    /// Scans the new complete quads of `buf` (the connection's unterminated
    /// bytes, of which the first calls have seen a prefix) for a frame
    /// sealed under `key`.
    pub fn next_frame(&mut self, key: &EaxKey, buf: &[u8]) -> Step {
        if self.dead {
            return Step::NotSeed;
        }
        let complete = buf.len() - buf.len() % 4;
        while let Some(window) = buf.get(self.scanned..complete.min(self.scanned + PIECE_QUADS * 4))
            && !window.is_empty()
        {
            let padded_at = memchr(b'=', window);
            let piece = match padded_at {
                Some(at) => &window[..(at / 4 + 1) * 4],
                None => window,
            };
            let mut bytes = [0u8; PIECE_QUADS * 3];
            let (len, quads, ends_padded, then_bad) = match BASE64.decode_slice(piece, &mut bytes) {
                Ok(len) => (len, piece.len() / 4, padded_at.is_some(), false),
                // A frame may still end before the quad that is not base64:
                // decode the quads before it, then give up.
                Err(_) => {
                    let good = piece
                        .chunks(4)
                        .take_while(|quad| {
                            !quad.contains(&b'=')
                                && BASE64.decode_slice(quad, &mut [0u8; 3]).is_ok()
                        })
                        .count();
                    let len = BASE64
                        .decode_slice(&piece[..good * 4], &mut bytes)
                        .unwrap_or(0);
                    (len, good, false, true)
                }
            };
            if let Some(taken) = self.take(key, &bytes[..len]) {
                // A whole quad's bytes ended the frame.
                self.scanned += taken / 3 * 4;
                return Step::Frame(self.finish());
            }
            self.scanned += quads * 4;
            if ends_padded {
                // A padded quad ends the frame, verified or not.
                if self.scan.as_ref().is_some_and(|scan| scan.verifies(key)) {
                    return Step::Frame(self.finish());
                }
                return self.give_up();
            }
            if then_bad {
                return self.give_up();
            }
        }
        Step::More
    }

    /// Adds a piece's decoded bytes (whole quads' worth, from a quad
    /// boundary; the last quad's may be short) to the current frame. If the
    /// frame's tag verifies at the end of one of its whole quads, returns
    /// how many of `bytes` it took.
    fn take(&mut self, key: &EaxKey, bytes: &[u8]) -> Option<usize> {
        let mut ciphertext = bytes;
        if let Some(head) = self.head.get_mut(self.decoded..) {
            let n = head.len().min(bytes.len());
            let (into_head, rest) = bytes.split_at(n);
            head[..n].copy_from_slice(into_head);
            self.decoded += n;
            ciphertext = rest;
            if n > 0 && self.decoded == OVERHEAD {
                let (nonce, tag) = self.head.split_at(NONCE_LEN);
                if let (Ok(nonce), Ok(tag)) = (nonce.try_into(), tag.try_into()) {
                    self.scan = Some(key.start_scan(nonce, tag));
                }
            }
        }
        let scan = self.scan.as_mut()?;
        let head_taken = bytes.len() - ciphertext.len();
        let is_quad_end = |n: usize| (head_taken + n).is_multiple_of(3);
        match scan.feed_until_verified(key, ciphertext, is_quad_end) {
            Some(n) => {
                self.decoded += n;
                Some(head_taken + n)
            }
            None => {
                self.decoded += ciphertext.len();
                None
            }
        }
    }

    /// Starts over for the next frame; returns this one's base64 length.
    fn finish(&mut self) -> usize {
        let len = self.scanned;
        *self = Splitter::default();
        len
    }

    fn give_up(&mut self) -> Step {
        *self = Splitter {
            dead: true,
            ..Splitter::default()
        };
        Step::NotSeed
    }
}

/// A seed receiver's messages waiting to be sent, one frame at a time.
#[derive(Debug, Default)]
pub struct Paced {
    /// Messages waiting, each followed by `\n`.
    waiting: BytesMut,
    /// Their lengths, `\n` excluded.
    lens: VecDeque<usize>,
    /// A frame was queued and has not been written whole yet.
    in_flight: bool,
    /// When the last frame was written whole.
    last_write: Option<Instant>,
}

impl Paced {
    /// Adds messages, each followed by `\n` in `messages`, of lengths `lens`.
    pub fn push(&mut self, messages: &[u8], lens: &[usize]) {
        debug_assert_eq!(lens.iter().sum::<usize>() + lens.len(), messages.len());
        self.waiting.extend_from_slice(messages);
        self.lens.extend(lens);
    }

    /// Bytes of messages waiting.
    pub fn waiting_bytes(&self) -> usize {
        self.waiting.len()
    }

    /// When the next frame may be sealed: `None` while nothing waits or a
    /// frame is still being written; `now` if nothing was written yet.
    pub fn next_due(&self, now: Instant, gap: Duration) -> Option<Instant> {
        if self.lens.is_empty() || self.in_flight {
            return None;
        }
        Some(self.last_write.map_or(now, |at| at + gap))
    }

    /// Seals the next frame if one is due at `now`: as many whole messages
    /// as fit [`MAX_SEED_PLAINTEXT`], joined by `\n` (a longer message
    /// alone). Returns the line and the messages it carries.
    pub fn seal_due(
        &mut self,
        cipher: &mut impl Seal,
        now: Instant,
        gap: Duration,
    ) -> Option<(Bytes, usize)> {
        if self.next_due(now, gap)? > now {
            return None;
        }
        let mut count = 0;
        let mut plaintext_len = 0;
        for &len in &self.lens {
            let joined = if count == 0 {
                len
            } else {
                plaintext_len + 1 + len
            };
            if count > 0 && joined > MAX_SEED_PLAINTEXT {
                break;
            }
            plaintext_len = joined;
            count += 1;
        }
        let mut line = BytesMut::new();
        cipher.seal_into(&self.waiting[..plaintext_len], &mut line);
        self.advance(plaintext_len + 1, count);
        self.in_flight = true;
        Some((line.freeze(), count))
    }

    /// Notes that what was queued has been written whole, at `now`.
    pub fn written(&mut self, now: Instant) {
        if self.in_flight {
            self.in_flight = false;
            self.last_write = Some(now);
        }
    }

    /// Seals every waiting message as a line of its own into `out`: for a
    /// connection that turned out to be a newline client. Returns how many.
    pub fn seal_each(&mut self, cipher: &mut impl Seal, out: &mut BytesMut) -> usize {
        let count = self.lens.len();
        let mut start = 0;
        for &len in &self.lens {
            cipher.seal_into(&self.waiting[start..start + len], out);
            start += len + 1;
        }
        self.advance(start, count);
        count
    }

    fn advance(&mut self, bytes: usize, messages: usize) {
        self.waiting.advance(bytes);
        self.lens.drain(..messages);
        if self.waiting.is_empty() && self.waiting.capacity() > KEEP_WAITING_CAPACITY {
            self.waiting = BytesMut::new();
        }
    }
}

/// A frame's message boundaries as `Paced::push` takes them, for callers
/// that hold plaintexts one by one.
pub fn push_message(messages: &mut BytesMut, lens: &mut Vec<usize>, message: &[u8]) {
    messages.extend_from_slice(message);
    messages.put_u8(b'\n');
    lens.push(message.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cipher::Cipher;
    use crate::key::Key;

    fn key() -> Key {
        Key::from_hex("000102030405060708090a0b0c0d0e0f").expect("a key")
    }

    /// The key's EAX state, as the relay hands it to the splitter.
    fn eax(key: &Key) -> EaxKey {
        Cipher::with_nonce_seed(key, [0; 32]).eax_key().clone()
    }

    fn frame(cipher: &mut Cipher, len: usize) -> Vec<u8> {
        let plaintext: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let mut line = BytesMut::new();
        cipher.seal_into(&plaintext, &mut line);
        line.truncate(line.len() - 1);
        line.to_vec()
    }

    /// Feeds `chunks` as a connection's reads; returns the frames found
    /// (as base64) and the last step.
    fn split(key: &EaxKey, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Step) {
        let mut splitter = Splitter::default();
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        let mut step = Step::More;
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                step = splitter.next_frame(key, &buf);
                let Step::Frame(len) = step else { break };
                frames.push(buf.drain(..len).collect());
            }
        }
        (frames, step)
    }

    fn lengths() -> Vec<usize> {
        let mut lens: Vec<usize> = (0..=100).collect();
        for boundary in [128usize, 256, 1024] {
            lens.extend(boundary.saturating_sub(OVERHEAD + 4)..boundary + 4 - OVERHEAD);
        }
        lens.extend([3037, 4096]);
        lens
    }

    #[test]
    fn finds_each_frame_of_any_length_alone_and_joined() {
        let seed = eax(&key());
        let mut cipher = Cipher::with_nonce_seed(&key(), [4; 32]);
        for len in lengths() {
            let one = frame(&mut cipher, len);
            assert_eq!(split(&seed, &[&one]).0, vec![one.clone()], "alone, {len}");
            let run: Vec<Vec<u8>> = (0..3).map(|k| frame(&mut cipher, len + k)).collect();
            let joined = run.concat();
            assert_eq!(split(&seed, &[&joined]).0, run, "joined, {len}");
        }
    }

    #[test]
    fn a_joined_run_split_at_every_offset_gives_the_same_frames() {
        let seed = eax(&key());
        let mut cipher = Cipher::with_nonce_seed(&key(), [5; 32]);
        // Unpadded (1, 4), padded (0, 2, 5), with block boundaries in them.
        let run: Vec<Vec<u8>> = [1usize, 0, 4, 2, 16, 17, 5]
            .iter()
            .map(|&len| frame(&mut cipher, len))
            .collect();
        let joined = run.concat();
        for cut in 0..=joined.len() {
            let (a, b) = joined.split_at(cut);
            assert_eq!(split(&seed, &[a, b]).0, run, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = joined.chunks(1).collect();
        assert_eq!(split(&seed, &bytes).0, run, "a byte at a time");
    }

    #[test]
    fn garbage_and_other_keys_find_nothing() {
        let seed = eax(&key());
        let other = Key::from_hex("ffffffffffffffffffffffffffffffff").expect("a key");
        let mut foreign = Cipher::with_nonce_seed(&other, [6; 32]);
        let cases: Vec<(Vec<u8>, Step)> = vec![
            (b"GET / HTTP/1.1\r\n".to_vec(), Step::NotSeed),
            (b"!!!!".to_vec(), Step::NotSeed),
            (b"QUJD".to_vec(), Step::More),
            (b"QUI=".to_vec(), Step::NotSeed),
            (vec![b'A'; 4000], Step::More),
            (frame(&mut foreign, 0), Step::NotSeed),
            (frame(&mut foreign, 1), Step::More),
        ];
        for (bytes, want) in cases {
            assert_eq!(split(&seed, &[&bytes]), (vec![], want), "{bytes:?}");
        }
        // A frame right before bytes that are not base64 is still found.
        let mut cipher = Cipher::with_nonce_seed(&key(), [11; 32]);
        for len in [1usize, 2] {
            let good = frame(&mut cipher, len);
            let then_garbage = [good.clone(), b"!!!!AAAA".to_vec()].concat();
            assert_eq!(split(&seed, &[&then_garbage]), (vec![good], Step::NotSeed));
        }
        // Once it is not a seed frame, nothing after it is looked at.
        let mut cipher = Cipher::with_nonce_seed(&key(), [7; 32]);
        let after = [b"!!!!".to_vec(), frame(&mut cipher, 3)].concat();
        assert_eq!(split(&seed, &[&after]), (vec![], Step::NotSeed));
    }

    #[test]
    fn a_tampered_frame_is_not_taken() {
        let seed = eax(&key());
        let mut cipher = Cipher::with_nonce_seed(&key(), [8; 32]);
        for len in [0usize, 1, 30, 31] {
            let mut bad = frame(&mut cipher, len);
            bad[30] = if bad[30] == b'A' { b'B' } else { b'A' };
            assert!(split(&seed, &[&bad]).0.is_empty(), "{len}");
        }
    }

    #[test]
    fn every_key_size_verifies() {
        for hex in [
            "000102030405060708090a0b0c0d0e0f1011121314151617",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ] {
            let key = Key::from_hex(hex).expect("a key");
            let mut cipher = Cipher::with_nonce_seed(&key, [9; 32]);
            let run: Vec<Vec<u8>> = (0..4).map(|len| frame(&mut cipher, len)).collect();
            assert_eq!(split(&eax(&key), &[&run.concat()]).0, run);
        }
    }

    #[test]
    fn paced_frames_carry_whole_messages_that_fit_one_read() {
        let mut cipher = Cipher::with_nonce_seed(&key(), [10; 32]);
        let now = Instant::now();
        let gap = Duration::from_millis(20);
        let mut paced = Paced::default();
        let (mut messages, mut lens) = (BytesMut::new(), Vec::new());
        for len in [1000usize, 1000, 1000, 10, 5000, 3] {
            push_message(&mut messages, &mut lens, &vec![b'm'; len]);
        }
        paced.push(&messages, &lens);
        let mut carried = Vec::new();
        let mut at = now;
        while let Some(due) = paced.next_due(at, gap) {
            if due > at {
                assert!(
                    paced.seal_due(&mut cipher, at, gap).is_none(),
                    "gap not passed"
                );
            }
            let (line, count) = paced.seal_due(&mut cipher, due, gap).expect("due");
            assert!(
                paced.seal_due(&mut cipher, due + gap, gap).is_none(),
                "in flight"
            );
            let plaintext = cipher
                .open(&line[..line.len() - 1])
                .expect("opens")
                .to_vec();
            assert!(line.len() <= SEED_READ_LEN || count == 1);
            carried.push((plaintext.split(|&b| b == b'\n').count(), count));
            paced.written(due);
            at = due;
        }
        assert_eq!(carried, [(4, 4), (1, 1), (1, 1)]);
        assert_eq!(paced.waiting_bytes(), 0);
    }
}
