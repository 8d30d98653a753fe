//! The AES-EAX cipher: opening and sealing frames under one key.
//!
//! Frames are sealed as PyCryptodome's `AES.new(key, AES.MODE_EAX)` +
//! `encrypt_and_digest` seal them: a 16-byte random nonce, a 16-byte tag,
//! no associated data; [`crate::wire`] says how one is written as a line.
//! This module owns the nonce generator, the frame buffer and the two
//! transformations `open` and `seal` over that line format. Its nonces
//! come from [`crate::nonce::Nonces`]: unique within a run, and marked so
//! that the relay knows a frame it sealed itself ([`Cipher::is_own_nonce`]).
//! Opening hands back the frame's nonce ([`Cipher::open_frame`]), for the
//! replay checks of [`crate::replay`]. EAX itself is
//! [`crate::eax_key::EaxKey`], whose key schedule, CMAC subkeys and
//! per-key OMAC blocks are computed once, in [`Cipher::new`]; the `eax`
//! crate is only a reference in tests, fuzzing and benches. This module
//! knows nothing about sockets or streams: callers hand it one line without
//! its terminator.
//!
//! It never reveals *why* a tag failed to verify, and never returns
//! unauthenticated plaintext: a frame whose tag fails is never decrypted.

use std::fmt;

use bytes::BytesMut;

use crate::eax_key::EaxKey;
use crate::key::{Key, KeyBytes};
use crate::nonce::Nonces;
use crate::wire::{self, LineDecodeError, NONCE_LEN, OVERHEAD, TAG_LEN};

/// Why a line could not be opened. Every variant is the peer's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenError {
    /// The line is not padded standard-alphabet base64.
    Base64,
    /// The decoded frame is shorter than nonce + tag (32 bytes).
    TooShort,
    /// The tag does not verify: wrong key, or the frame was tampered with.
    BadTag,
}

impl OpenError {
    /// A short, stable name for logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            OpenError::Base64 => "bad base64",
            OpenError::TooShort => "frame too short",
            OpenError::BadTag => "tag mismatch",
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for OpenError {}

impl From<LineDecodeError> for OpenError {
    fn from(error: LineDecodeError) -> OpenError {
        match error {
            LineDecodeError::Base64 => OpenError::Base64,
            LineDecodeError::TooShort => OpenError::TooShort,
        }
    }
}

/// A frame [`Cipher::open_frame`] opened: its nonce, and the length of the
/// frame in the cipher's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The frame's nonce, as its sender chose it.
    pub nonce: [u8; NONCE_LEN],
    len: usize,
}

/// The expanded key for `key`, whatever its AES size.
pub fn eax_key(key: &Key) -> EaxKey {
    // `Key` holds the array its AES size takes, so each constructor gets a
    // key of its own length: no length check, nothing to fail.
    match key.sized() {
        KeyBytes::Aes128(bytes) => EaxKey::aes128(bytes),
        KeyBytes::Aes192(bytes) => EaxKey::aes192(bytes),
        KeyBytes::Aes256(bytes) => EaxKey::aes256(bytes),
    }
}

/// Opens and seals frames under one key.
///
/// Holds the expanded key ([`EaxKey`]), the nonce generator and one reusable frame
/// buffer, so neither direction allocates once the buffer has grown to the
/// largest frame seen.
///
/// Nonces come from [`Nonces`], whose marker secret and counter start are
/// drawn once from the operating system: no two of one cipher repeat, and
/// they are independent of a client's (PyCryptodome draws 128 random bits
/// per nonce), so the chance that two frames sealed under one key share a
/// nonce stays below 2^-64 for the first 2^32 client messages. No syscall
/// is made per message.
///
/// ```
/// use bytes::BytesMut;
/// use eaxchat_proto::cipher::{Cipher, OpenError};
/// use eaxchat_proto::key::Key;
///
/// let key = Key::from_hex("000102030405060708090a0b0c0d0e0f")?;
/// let mut cipher = Cipher::new(&key)?;
/// let mut line = BytesMut::new();
/// cipher.seal_into(b"hello", &mut line);
/// assert_eq!(line.last(), Some(&b'\n'));
///
/// // Opened as the relay and every client open it: without its `\n`.
/// let frame = &line[..line.len() - 1];
/// assert_eq!(cipher.open(frame)?, b"hello");
///
/// // Under another key the tag does not verify; nothing is decrypted.
/// let other = Key::from_hex("ffffffffffffffffffffffffffffffff")?;
/// assert_eq!(Cipher::new(&other)?.open(frame), Err(OpenError::BadTag));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A cipher is not `Clone`: a copy would hand out its nonces a second
/// time. So this does not compile:
///
/// ```compile_fail,E0599
/// use eaxchat_proto::cipher::Cipher;
/// use eaxchat_proto::key::Key;
///
/// let key = Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
/// let cipher = Cipher::with_nonce_seed(&key, [0; 32]);
/// let twin = cipher.clone();
/// ```
pub struct Cipher {
    key: EaxKey,
    nonces: Nonces,
    frame: Vec<u8>,
}

/// Seals plaintexts as lines: what a seed receiver's paced frames need,
/// whether one key serves everybody ([`Cipher`]) or each member has their
/// own ([`KeySealer`]).
pub trait Seal {
    /// Seals `plaintext` and appends the base64 line and its `\n` to `out`.
    fn seal_into(&mut self, plaintext: &[u8], out: &mut BytesMut);

    /// Seals `\n`-joined plaintexts of lengths `lens` (each followed by
    /// its `\n` in `plaintexts`), a line each, into `out`. A length that
    /// runs past the end of `plaintexts` ends the run there.
    fn seal_joined(&mut self, plaintexts: &[u8], lens: &[usize], out: &mut BytesMut) {
        let mut start = 0;
        for &len in lens {
            let Some(plain) = plaintexts.get(start..start + len) else {
                return;
            };
            self.seal_into(plain, out);
            start += len + 1;
        }
    }
}

impl Seal for Cipher {
    fn seal_into(&mut self, plaintext: &[u8], out: &mut BytesMut) {
        Cipher::seal_into(self, plaintext, out);
    }

    /// The shared-key relay's run: one read's messages laid out in the
    /// frame buffer and sealed side by side ([`seal_lines`]), the same
    /// lines [`Seal::seal_into`] at a time would give.
    fn seal_joined(&mut self, plaintexts: &[u8], lens: &[usize], out: &mut BytesMut) {
        let Cipher { key, nonces, frame } = self;
        KeySealer { key, nonces, frame }.seal_joined(plaintexts, lens, out);
    }
}

/// One key's sealer over a shared nonce generator and frame buffer: a
/// members relay seals for each member with one of these, borrowed for
/// the call, so no member holds a generator or a buffer of its own.
pub struct KeySealer<'a> {
    /// The member's expanded key.
    pub key: &'a EaxKey,
    /// The relay's one nonce generator.
    pub nonces: &'a mut Nonces,
    /// A reusable frame buffer.
    pub frame: &'a mut Vec<u8>,
}

impl Seal for KeySealer<'_> {
    fn seal_into(&mut self, plaintext: &[u8], out: &mut BytesMut) {
        seal_line(self.key, self.nonces, self.frame, plaintext, out);
    }

    /// The members relay's fan-out: one read's messages sealed for one
    /// member, all laid out in the frame buffer first and sealed together
    /// ([`EaxKey::seal_frames_in_place`]), the same lines one
    /// [`Seal::seal_into`] at a time would give, in about half the time.
    fn seal_joined(&mut self, plaintexts: &[u8], lens: &[usize], out: &mut BytesMut) {
        let KeySealer { key, nonces, frame } = self;
        seal_lines(
            key,
            plaintexts,
            lens,
            frame,
            || Some(nonces.next_nonce()),
            out,
        );
    }
}

/// Verifies and decrypts the decoded frame `nonce ‖ tag ‖ ciphertext` in
/// place under `key`, and returns its plaintext. On a bad tag the body
/// stays ciphertext: nothing unauthenticated is ever decrypted.
pub fn open_decoded<'f>(key: &EaxKey, frame: &'f mut [u8]) -> Result<&'f mut [u8], OpenError> {
    let Some((nonce, tag, body)) = wire::split_frame(frame) else {
        return Err(OpenError::TooShort);
    };
    key.open_in_place_detached(nonce, body, tag)
        .map_err(|_| OpenError::BadTag)?;
    Ok(body)
}

/// Seals `plaintext` under `key` with a fresh nonce from `nonces`, using
/// `frame` as scratch, and appends the line and its `\n` to `out`.
pub fn seal_line(
    key: &EaxKey,
    nonces: &mut Nonces,
    frame: &mut Vec<u8>,
    plaintext: &[u8],
    out: &mut BytesMut,
) {
    let frame_len = OVERHEAD + plaintext.len();
    if frame.len() < frame_len {
        frame.resize(frame_len, 0);
    }
    frame[OVERHEAD..frame_len].copy_from_slice(plaintext);
    seal_in_frame(key, nonces, &mut frame[..frame_len], out);
}

/// Seals the `\n`-joined plaintexts of lengths `lens` (each followed by
/// its `\n` in `plaintexts`) under `key` and appends them to `out`, a line
/// each: the same lines [`seal_line`] would give one at a time with the
/// same nonces, in about half the time. The frames are laid out end to
/// end in `scratch` (grown as needed, never zeroed again), each with the
/// nonce `nonce` gives, sealed side by side
/// ([`EaxKey::seal_frames_in_place`]) and encoded together
/// ([`wire::encode_lines`]). The run ends at a length past the end of
/// `plaintexts` or where `nonce` gives none; returns how many were sealed.
pub fn seal_lines(
    key: &EaxKey,
    plaintexts: &[u8],
    lens: &[usize],
    scratch: &mut Vec<u8>,
    mut nonce: impl FnMut() -> Option<[u8; NONCE_LEN]>,
    out: &mut BytesMut,
) -> usize {
    let (mut at, mut start, mut count) = (0, 0, 0);
    for &len in lens {
        let Some(plain) = plaintexts.get(start..start + len) else {
            break;
        };
        let Some(nonce) = nonce() else {
            break;
        };
        let end = at + OVERHEAD + len;
        if scratch.len() < end {
            scratch.resize(end, 0);
        }
        scratch[at..at + NONCE_LEN].copy_from_slice(&nonce);
        scratch[at + OVERHEAD..end].copy_from_slice(plain);
        at = end;
        start += len + 1;
        count += 1;
    }
    let (frames, lens) = (&mut scratch[..at], &lens[..count]);
    key.seal_frames_in_place(frames, lens);
    wire::encode_lines(frames, lens, out);
    count
}

/// Encrypts the plaintext at `frame[OVERHEAD..]` in place under a fresh
/// nonce, fills in nonce and tag, and appends the encoded line.
fn seal_in_frame(key: &EaxKey, nonces: &mut Nonces, frame: &mut [u8], out: &mut BytesMut) {
    let nonce = nonces.next_nonce();
    let (head, body) = frame.split_at_mut(OVERHEAD);
    let tag = key.seal_in_place_detached(&nonce, body);
    head[..NONCE_LEN].copy_from_slice(&nonce);
    head[NONCE_LEN..].copy_from_slice(&tag);
    wire::encode_line(frame, out);
}

impl Cipher {
    /// Builds a cipher for `key`, seeding its nonce generator from the OS.
    pub fn new(key: &Key) -> std::io::Result<Cipher> {
        Ok(Cipher::with_nonces(key, Nonces::from_os()?))
    }

    /// Builds a cipher whose nonces (their marker secret and counter) follow
    /// `seed`: deterministic, for tests, benches and fuzzing only. Never use
    /// a fixed seed with a real key.
    pub fn with_nonce_seed(key: &Key, seed: [u8; 32]) -> Cipher {
        Cipher::with_nonces(key, Nonces::from_seed(seed))
    }

    fn with_nonces(key: &Key, nonces: Nonces) -> Cipher {
        Cipher {
            key: eax_key(key),
            nonces,
            frame: Vec::new(),
        }
    }

    /// The expanded key, for finding where newline-less frames end
    /// ([`crate::seed::Splitter`]).
    pub fn eax_key(&self) -> &EaxKey {
        &self.key
    }

    /// Opens one line (base64 text without its `\n` or `\r\n`) and returns
    /// the plaintext, which lives in this cipher's buffer until the next call.
    pub fn open(&mut self, line: &[u8]) -> Result<&mut [u8], OpenError> {
        let opened = self.open_frame(line)?;
        Ok(self.plaintext(&opened))
    }

    /// Opens one line as [`Cipher::open`] does, and returns its nonce and
    /// where its plaintext lies; the plaintext stays in this cipher's buffer
    /// until the next call that opens or seals, for [`Cipher::plaintext`]
    /// or [`Cipher::reseal_opened`].
    pub fn open_frame(&mut self, line: &[u8]) -> Result<Opened, OpenError> {
        self.decode_and_verify(line)
    }

    /// The plaintext of the frame `opened` by the last call to
    /// [`Cipher::open_frame`].
    pub fn plaintext(&mut self, opened: &Opened) -> &mut [u8] {
        self.frame.get_mut(OVERHEAD..opened.len).unwrap_or_default()
    }

    /// Seals the plaintext of the frame `opened` by the last call to
    /// [`Cipher::open_frame`] again, in place, under a fresh nonce, and
    /// appends the new line and `\n` to `out`.
    pub fn reseal_opened(&mut self, opened: &Opened, out: &mut BytesMut) {
        self.seal_frame(opened.len, out);
    }

    /// Whether `nonce` is one this cipher sealed with (or a twin of it
    /// built from the same seed): a frame of the relay's own, sent back to
    /// it. A nonce it did not make passes with probability 2^-64.
    pub fn is_own_nonce(&self, nonce: &[u8; NONCE_LEN]) -> bool {
        self.nonces.is_own(nonce)
    }

    /// Seals `plaintext` and appends the base64 line and its `\n` to `out`.
    pub fn seal_into(&mut self, plaintext: &[u8], out: &mut BytesMut) {
        let frame_len = OVERHEAD + plaintext.len();
        if self.frame.len() < frame_len {
            self.frame.resize(frame_len, 0);
        }
        self.frame[OVERHEAD..frame_len].copy_from_slice(plaintext);
        self.seal_frame(frame_len, out);
    }

    /// The relay step: opens `line` and seals its plaintext again under a
    /// fresh nonce, appending the new line and `\n` to `out`.
    ///
    /// Decrypts and re-encrypts in place in one buffer: the plaintext is
    /// never copied. On error nothing is appended.
    pub fn reseal_into(&mut self, line: &[u8], out: &mut BytesMut) -> Result<(), OpenError> {
        let opened = self.decode_and_verify(line)?;
        self.reseal_opened(&opened, out);
        Ok(())
    }

    /// The raw AEAD beneath frames: encrypts `buf` in place under `nonce`
    /// and `aad` and returns the tag. For known-answer tests and benches:
    /// the caller must never reuse a nonce under one key.
    pub fn encrypt_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        self.key.seal_with_header(nonce, aad, buf)
    }

    /// The raw AEAD beneath frames: verifies `tag` and decrypts `buf` in
    /// place. On failure `buf` is left as it was: still the ciphertext.
    pub fn decrypt_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        tag: &[u8; TAG_LEN],
        buf: &mut [u8],
    ) -> Result<(), OpenError> {
        self.key
            .open_with_header(nonce, aad, buf, tag)
            .map_err(|_| OpenError::BadTag)
    }

    /// Decodes `line` into the frame buffer, verifies and decrypts it in
    /// place, and returns its nonce and length.
    fn decode_and_verify(&mut self, line: &[u8]) -> Result<Opened, OpenError> {
        let frame_len = wire::decode_line(line, &mut self.frame)?;
        let frame = self.frame.get_mut(..frame_len).ok_or(OpenError::TooShort)?;
        open_decoded(&self.key, frame)?;
        let nonce = frame
            .first_chunk::<NONCE_LEN>()
            .copied()
            .ok_or(OpenError::TooShort)?;
        Ok(Opened {
            nonce,
            len: frame_len,
        })
    }

    /// Encrypts the plaintext at `frame[OVERHEAD..frame_len]` in place under
    /// a fresh nonce, fills in nonce and tag, and appends the encoded line.
    fn seal_frame(&mut self, frame_len: usize, out: &mut BytesMut) {
        seal_in_frame(
            &self.key,
            &mut self.nonces,
            &mut self.frame[..frame_len],
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap()
    }

    #[test]
    fn round_trips_every_size_and_key_length() {
        for hex in [
            "000102030405060708090a0b0c0d0e0f",
            "000102030405060708090a0b0c0d0e0f1011121314151617",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ] {
            let key = Key::from_hex(hex).unwrap();
            let mut cipher = Cipher::new(&key).unwrap();
            for len in [0usize, 1, 2, 3, 15, 16, 17, 64, 1000] {
                let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut out = BytesMut::new();
                cipher.seal_into(&plaintext, &mut out);
                assert_eq!(out.last(), Some(&b'\n'));
                assert_eq!(out.len(), wire::encoded_len(len) + 1);
                let line = &out[..out.len() - 1];
                assert_eq!(cipher.open(line).unwrap(), &plaintext[..]);
            }
        }
    }

    /// A member's sealer gives, sealing a read side by side, exactly the
    /// lines it gives one at a time from the same nonces; a length past
    /// the end of the plaintexts ends the run, both ways.
    #[test]
    fn seal_joined_is_seal_into_one_at_a_time() {
        let eax = eax_key(&key());
        let plaintexts: Vec<u8> = (0..30usize)
            .flat_map(|i| {
                let mut text = vec![b'a' + (i % 26) as u8; (i * 11) % 130];
                text.push(b'\n');
                text
            })
            .collect();
        let mut lens: Vec<usize> = (0..30usize).map(|i| (i * 11) % 130).collect();
        lens.push(500);
        let (mut frame_a, mut frame_b) = (Vec::new(), Vec::new());
        let (mut nonces_a, mut nonces_b) = (Nonces::from_seed([5; 32]), Nonces::from_seed([5; 32]));
        let (mut joined, mut each) = (BytesMut::new(), BytesMut::new());
        KeySealer {
            key: &eax,
            nonces: &mut nonces_a,
            frame: &mut frame_a,
        }
        .seal_joined(&plaintexts, &lens, &mut joined);
        let mut one = KeySealer {
            key: &eax,
            nonces: &mut nonces_b,
            frame: &mut frame_b,
        };
        let mut start = 0;
        for &len in &lens[..30] {
            one.seal_into(&plaintexts[start..start + len], &mut each);
            start += len + 1;
        }
        assert_eq!(joined, each);
        let mut cipher = Cipher::new(&key()).unwrap();
        for (line, &len) in joined[..].split(|&b| b == b'\n').zip(&lens[..30]) {
            assert_eq!(cipher.open(line).unwrap().len(), len);
        }
    }

    #[test]
    fn nonces_differ_between_seals() {
        let mut cipher = Cipher::new(&key()).unwrap();
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        cipher.seal_into(b"same", &mut a);
        cipher.seal_into(b"same", &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn rejects_each_kind_of_bad_line() {
        let mut cipher = Cipher::new(&key()).unwrap();
        let mut good = BytesMut::new();
        cipher.seal_into(b"hello", &mut good);
        let good = &good[..good.len() - 1];

        let mut flipped = good.to_vec();
        flipped[50] = if flipped[50] == b'A' { b'B' } else { b'A' };
        let cases: &[(&[u8], OpenError)] = &[
            (b"!!!!", OpenError::Base64),
            (b"abc", OpenError::Base64),
            (b"QUJD", OpenError::TooShort),
            (b"", OpenError::TooShort),
            (&good[..good.len() - 4], OpenError::BadTag),
            (&flipped, OpenError::BadTag),
        ];
        for (line, want) in cases {
            assert_eq!(cipher.open(line).unwrap_err(), *want, "{line:?}");
        }
        let other = Key::from_hex("ffffffffffffffffffffffffffffffff").unwrap();
        assert_eq!(
            Cipher::new(&other).unwrap().open(good).unwrap_err(),
            OpenError::BadTag
        );
    }

    #[test]
    fn reseal_yields_a_fresh_frame_with_the_same_plaintext() {
        let mut cipher = Cipher::new(&key()).unwrap();
        let mut first = BytesMut::new();
        cipher.seal_into(b"relay me", &mut first);
        let mut second = BytesMut::new();
        cipher
            .reseal_into(&first[..first.len() - 1], &mut second)
            .unwrap();
        assert_ne!(first, second);
        assert_eq!(
            cipher.open(&second[..second.len() - 1]).unwrap(),
            b"relay me"
        );
        let mut untouched = BytesMut::new();
        assert_eq!(
            cipher.reseal_into(b"QUJD", &mut untouched),
            Err(OpenError::TooShort)
        );
        assert!(untouched.is_empty());
    }
}
