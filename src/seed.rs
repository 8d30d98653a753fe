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
//! arrives, keeps the running OMAC over the ciphertext, and checks each
//! candidate end with a clone of that state finalised ([`FrameMac`]): O(1)
//! block work per quad, never a rescan from the frame's start. EAX with no
//! associated data has `tag = OMAC₀(nonce) ⊕ OMAC₁(ε) ⊕ OMAC₂(ct)`; the
//! first is computed once per frame, the second once per key. A frame found
//! this way is then opened by [`crate::cipher::Cipher`] like any line, so nothing here
//! ever yields plaintext. A padding that does not end a frame, or a byte
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

use aes::{Aes128Enc, Aes192Enc, Aes256Enc};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use cmac::{Cmac, KeyInit as _, Mac as _};
use memchr::memchr;

use crate::cipher::Seal;
use crate::key::{Key, KeyBytes};
use crate::wire::{NONCE_LEN, OVERHEAD, TAG_LEN, max_plaintext_len};

/// What the seed client reads at once: `sock.recv(4096)`.
pub const SEED_READ_LEN: usize = 4096;

/// Longest plaintext whose frame, with its `\n`, fits one seed read: 3037.
pub const MAX_SEED_PLAINTEXT: usize = max_plaintext_len(SEED_READ_LEN - 1);

/// `--seed-write-gap-ms`'s default (README: "The original notebook client").
pub const DEFAULT_WRITE_GAP: Duration = Duration::from_millis(50);

/// Quads decoded per step: a stack buffer's worth.
const PIECE_QUADS: usize = 64;

/// A `waiting` buffer larger than this is given back once it empties.
const KEEP_WAITING_CAPACITY: usize = 8 * 1024;

/// A keyed CMAC (OMAC1), one variant per AES key size.
#[derive(Clone)]
enum Omac {
    Aes128(Box<Cmac<Aes128Enc>>),
    Aes192(Box<Cmac<Aes192Enc>>),
    Aes256(Box<Cmac<Aes256Enc>>),
}

impl Omac {
    fn new(key: &Key) -> Omac {
        match key.sized() {
            KeyBytes::Aes128(bytes) => Omac::Aes128(Box::new(Cmac::new(bytes.into()))),
            KeyBytes::Aes192(bytes) => Omac::Aes192(Box::new(Cmac::new(bytes.into()))),
            KeyBytes::Aes256(bytes) => Omac::Aes256(Box::new(Cmac::new(bytes.into()))),
        }
    }

    /// EAX's `OMAC_t`: a copy of this fresh state, fed `[0; 15] ‖ t`.
    fn tweaked(&self, t: u8) -> Omac {
        let mut omac = self.clone();
        let mut block = [0u8; 16];
        block[15] = t;
        omac.update(&block);
        omac
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Omac::Aes128(mac) => mac.update(data),
            Omac::Aes192(mac) => mac.update(data),
            Omac::Aes256(mac) => mac.update(data),
        }
    }

    fn finalize(self) -> [u8; TAG_LEN] {
        match self {
            Omac::Aes128(mac) => mac.finalize().into_bytes().into(),
            Omac::Aes192(mac) => mac.finalize().into_bytes().into(),
            Omac::Aes256(mac) => mac.finalize().into_bytes().into(),
        }
    }

    /// Whether the MAC of what was fed so far is `want` (constant time).
    fn verifies(&self, want: &[u8; TAG_LEN]) -> bool {
        match self {
            Omac::Aes128(mac) => mac.as_ref().clone().verify_slice(want).is_ok(),
            Omac::Aes192(mac) => mac.as_ref().clone().verify_slice(want).is_ok(),
            Omac::Aes256(mac) => mac.as_ref().clone().verify_slice(want).is_ok(),
        }
    }
}

/// The key's part of the scan: a keyed OMAC and `OMAC₁(ε)`, the empty
/// header's term of every tag. Built once per key.
#[derive(Clone)]
pub struct SeedKey {
    omac: Omac,
    empty_header: [u8; TAG_LEN],
}

impl SeedKey {
    /// The scan state for `key`.
    pub fn new(key: &Key) -> SeedKey {
        let omac = Omac::new(key);
        let empty_header = omac.tweaked(1).finalize();
        SeedKey { omac, empty_header }
    }
}

/// One frame's tag check as its ciphertext arrives: the running
/// `OMAC₂(ct)`, and what it must come to for the frame's tag to verify.
/// The splitter's only MAC code, kept behind this type so that a faster
/// composed EAX can replace it.
#[derive(Clone)]
struct FrameMac {
    ciphertext: Omac,
    want: [u8; TAG_LEN],
}

impl FrameMac {
    fn start(key: &SeedKey, nonce: &[u8; NONCE_LEN], tag: &[u8; TAG_LEN]) -> FrameMac {
        let mut omac_nonce = key.omac.tweaked(0);
        omac_nonce.update(nonce);
        let omac_nonce = omac_nonce.finalize();
        let mut want = *tag;
        for ((w, n), h) in want.iter_mut().zip(omac_nonce).zip(key.empty_header) {
            *w ^= n ^ h;
        }
        FrameMac {
            ciphertext: key.omac.tweaked(2),
            want,
        }
    }

    fn update(&mut self, ciphertext: &[u8]) {
        self.ciphertext.update(ciphertext);
    }

    /// Whether the frame's tag verifies if its ciphertext ends here.
    fn verifies(&self) -> bool {
        self.ciphertext.verifies(&self.want)
    }
}

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
    mac: Option<FrameMac>,
    dead: bool,
}

impl Splitter {
    /// Scans the new complete quads of `buf` (the connection's unterminated
    /// bytes, of which the first calls have seen a prefix).
    pub fn next_frame(&mut self, key: &SeedKey, buf: &[u8]) -> Step {
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
            for (i, quad) in bytes[..len].chunks(3).enumerate() {
                self.take(key, quad);
                self.scanned += 4;
                if i + 1 == quads && ends_padded {
                    // A padded quad ends the frame, verified or not.
                    if self.decoded >= OVERHEAD && self.verifies() {
                        return Step::Frame(self.finish());
                    }
                    return self.give_up();
                }
                if self.decoded > OVERHEAD && self.verifies() {
                    return Step::Frame(self.finish());
                }
            }
            if then_bad {
                return self.give_up();
            }
        }
        Step::More
    }

    /// Adds one quad's decoded bytes to the current frame.
    fn take(&mut self, key: &SeedKey, mut bytes: &[u8]) {
        if let Some(head) = self.head.get_mut(self.decoded..) {
            let n = head.len().min(bytes.len());
            let (into_head, rest) = bytes.split_at(n);
            head[..n].copy_from_slice(into_head);
            self.decoded += n;
            bytes = rest;
            if n > 0 && self.decoded == OVERHEAD {
                let (nonce, tag) = self.head.split_at(NONCE_LEN);
                if let (Ok(nonce), Ok(tag)) = (nonce.try_into(), tag.try_into()) {
                    self.mac = Some(FrameMac::start(key, nonce, tag));
                }
            }
        }
        if let Some(mac) = &mut self.mac
            && !bytes.is_empty()
        {
            mac.update(bytes);
            self.decoded += bytes.len();
        }
    }

    fn verifies(&self) -> bool {
        self.mac.as_ref().is_some_and(FrameMac::verifies)
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

    fn key() -> Key {
        Key::from_hex("000102030405060708090a0b0c0d0e0f").expect("a key")
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
    fn split(key: &SeedKey, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Step) {
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
        let seed = SeedKey::new(&key());
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
        let seed = SeedKey::new(&key());
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
        let seed = SeedKey::new(&key());
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
        let seed = SeedKey::new(&key());
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
            assert_eq!(split(&SeedKey::new(&key), &[&run.concat()]).0, run);
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
