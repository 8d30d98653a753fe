//! The wire format: how a sealed frame is written as one line.
//!
//! A frame on the wire is `base64(nonce(16) ‖ tag(16) ‖ ciphertext)`
//! followed by `\n`, in padded standard-alphabet base64: exactly what
//! PyCryptodome's `AES.new(key, AES.MODE_EAX)` + `encrypt_and_digest`
//! produce, encoded with `base64.b64encode`. This module owns the lengths,
//! the layout of a decoded frame and the base64 step in both directions.
//!
//! It is the lowest layer: the frame's lengths ([`NONCE_LEN`], [`TAG_LEN`],
//! [`OVERHEAD`]) are defined here once, and [`crate::eax_key`] and
//! [`crate::cipher`] build on them. It knows nothing of keys or the AEAD
//! (that is [`crate::cipher`]) nor of splitting a stream into lines (that is
//! [`crate::lines`]): it is handed one line without its terminator.
//!
//! ```
//! use bytes::BytesMut;
//! use eaxchat_proto::wire::{self, LineDecodeError, OVERHEAD};
//!
//! // A decoded frame: nonce, tag, then a 5-byte ciphertext.
//! let frame = [7u8; OVERHEAD + 5];
//! let mut line = BytesMut::new();
//! wire::encode_line(&frame, &mut line);
//! assert_eq!(line.len(), wire::encoded_len(5) + 1);
//! assert_eq!(line.last(), Some(&b'\n'));
//!
//! let mut decoded = Vec::new();
//! let len = wire::decode_line(&line[..line.len() - 1], &mut decoded)?;
//! assert_eq!(&decoded[..len], &frame[..]);
//! let (nonce, tag, ciphertext) = wire::split_frame(&mut decoded[..len]).ok_or("short")?;
//! assert_eq!((nonce.len(), tag.len(), ciphertext.len()), (16, 16, 5));
//!
//! assert_eq!(wire::decode_line(b"QUJD", &mut decoded), Err(LineDecodeError::TooShort));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use bytes::BytesMut;

/// Length of the EAX nonce carried at the front of every frame.
pub const NONCE_LEN: usize = 16;
/// Length of the EAX tag that follows the nonce.
pub const TAG_LEN: usize = 16;
/// Bytes a decoded frame carries besides the ciphertext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// The longest line the relay takes by default (`--max-frame`'s default,
/// which `chat` must match): 64 KiB.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Length of the base64 line (without `\n`) that carries `plaintext_len` bytes.
pub fn encoded_len(plaintext_len: usize) -> usize {
    (OVERHEAD + plaintext_len).div_ceil(3) * 4
}

/// Largest plaintext whose sealed line (without `\n`) fits in `max_line` bytes.
pub const fn max_plaintext_len(max_line: usize) -> usize {
    (max_line / 4 * 3).saturating_sub(OVERHEAD)
}

/// Why a line is not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineDecodeError {
    /// The line is not padded standard-alphabet base64.
    Base64,
    /// The decoded frame is shorter than nonce + tag (32 bytes).
    TooShort,
}

impl fmt::Display for LineDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LineDecodeError::Base64 => "bad base64",
            LineDecodeError::TooShort => "frame too short",
        })
    }
}

impl std::error::Error for LineDecodeError {}

/// Decodes base64 `line` into `out` (grown as needed, never shrunk) and
/// returns the decoded frame's length, at least [`OVERHEAD`].
pub fn decode_line(line: &[u8], out: &mut Vec<u8>) -> Result<usize, LineDecodeError> {
    decode_line_at(line, out, 0)
}

/// [`decode_line`] into `out` from byte `at` on, what is before it left
/// as it was: frames decoded end to end with no copy between.
pub fn decode_line_at(line: &[u8], out: &mut Vec<u8>, at: usize) -> Result<usize, LineDecodeError> {
    // Padded base64 is always a multiple of four; checking first also keeps
    // the estimate below exact.
    if !line.len().is_multiple_of(4) {
        return Err(LineDecodeError::Base64);
    }
    let end = at + line.len() / 4 * 3;
    if out.len() < end {
        out.resize(end, 0);
    }
    // `base64-simd` (AVX2 or SSSE3 where the CPU has them) accepts exactly
    // what the `base64` crate's strict decoder does (padding required,
    // trailing bits zero); `tests::decoding_agrees_with_the_base64_crate`.
    let frame_len = base64_simd::STANDARD
        .decode(line, base64_simd::Out::from_slice(&mut out[at..end]))
        .map_err(|_| LineDecodeError::Base64)?
        .len();
    if frame_len < OVERHEAD {
        return Err(LineDecodeError::TooShort);
    }
    Ok(frame_len)
}

/// Splits a decoded frame into its nonce, its tag and the ciphertext after
/// them; `None` if it is shorter than [`OVERHEAD`].
pub fn split_frame(
    frame: &mut [u8],
) -> Option<(&mut [u8; NONCE_LEN], &mut [u8; TAG_LEN], &mut [u8])> {
    let (nonce, rest) = frame.split_first_chunk_mut::<NONCE_LEN>()?;
    let (tag, body) = rest.split_first_chunk_mut::<TAG_LEN>()?;
    Some((nonce, tag, body))
}

/// Appends `base64(frame)` and `\n` to `out`.
pub fn encode_line(frame: &[u8], out: &mut BytesMut) {
    let line_len = frame.len().div_ceil(3) * 4;
    let start = out.len();
    out.resize(start + line_len + 1, b'\n');
    encode_into(frame, &mut out[start..start + line_len]);
}

/// Appends each frame of `frames` as a line: `base64(frame)` and `\n`.
/// The frames lie end to end in `frames`, frame `i` being
/// `nonce ‖ tag ‖ body` with a body of `body_lens[i]` bytes; a length that
/// runs past the end of `frames` stops there. The same bytes as
/// [`encode_line`] on each frame in turn, with `out` grown once for the
/// whole run.
pub fn encode_lines(frames: &[u8], body_lens: &[usize], out: &mut BytesMut) {
    let mut count = 0;
    let (mut frames_len, mut lines_len) = (0, 0);
    for &len in body_lens {
        if frames_len + OVERHEAD + len > frames.len() {
            break;
        }
        frames_len += OVERHEAD + len;
        lines_len += encoded_len(len) + 1;
        count += 1;
    }
    let start = out.len();
    // One fill for the run, each byte then overwritten by its line or
    // kept as a line's `\n`: no zeroing per line.
    out.resize(start + lines_len, b'\n');
    let lines = &mut out[start..];
    // Segments of the run, each ending at its first frame whose length is
    // not a multiple of 3 (or at the run's end): one encoder call each.
    let (mut at, mut line_at) = (0, 0);
    let mut rest = &body_lens[..count];
    while !rest.is_empty() {
        let ends = rest
            .iter()
            .position(|&len| !(OVERHEAD + len).is_multiple_of(3))
            .map_or(rest.len(), |last| last + 1);
        let (segment, after) = rest.split_at(ends);
        let frames_len: usize = segment.iter().map(|&len| OVERHEAD + len).sum();
        let lines_len: usize = segment.iter().map(|&len| encoded_len(len) + 1).sum();
        encode_segment(
            &frames[at..at + frames_len],
            segment,
            &mut lines[line_at..line_at + lines_len],
        );
        at += frames_len;
        line_at += lines_len;
        rest = after;
    }
}

/// Writes the lines of a segment of [`encode_lines`]'s run into `lines`
/// (already `\n` where each line ends): frames all but the last of which
/// are a multiple of 3 bytes long. Base64 then carries nothing from one
/// frame into the next and pads none but the last, so the segment's
/// encoding is its lines' encodings end to end. One call encodes it all
/// into the end of `lines` (the room of the segment's `\n`s left at the
/// front); the lines then move down into place, first to last, each onto
/// bytes already read, and get their `\n`. Short frames pay the encoder's
/// setup once per segment, not once per line.
fn encode_segment(frames: &[u8], body_lens: &[usize], lines: &mut [u8]) {
    let count = body_lens.len();
    if count == 1 {
        let line_len = lines.len() - 1;
        encode_into(frames, &mut lines[..line_len]);
        return;
    }
    encode_into(frames, &mut lines[count..]);
    let (mut from, mut to) = (count, 0);
    for &len in body_lens {
        let line_len = encoded_len(len);
        lines.copy_within(from..from + line_len, to);
        to += line_len;
        lines[to] = b'\n';
        to += 1;
        from += line_len;
    }
}

/// Writes `base64(frame)` into `line`, which is exactly its length.
///
/// With `base64-simd`: padded standard base64 is one string for one
/// input, so this is the `base64` crate's output byte for byte (the tests
/// in `tests/proto/eax_key/session_runs.rs` compare the two), only faster
/// for frames as short as the relay's: it takes SIMD steps of 12 or 24
/// bytes where `base64`'s engine runs scalar below 128.
fn encode_into(frame: &[u8], line: &mut [u8]) {
    let written = base64_simd::STANDARD
        .encode(frame, base64_simd::Out::from_slice(line))
        .len();
    debug_assert_eq!(written, line.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    #[test]
    fn a_line_round_trips_and_has_the_predicted_length() {
        for len in [0usize, 1, 2, 3, 16, 100] {
            let frame: Vec<u8> = (0..OVERHEAD + len).map(|i| i as u8).collect();
            let mut line = BytesMut::new();
            encode_line(&frame, &mut line);
            assert_eq!(line.len(), encoded_len(len) + 1);
            assert_eq!(line.last(), Some(&b'\n'));
            let mut out = Vec::new();
            let got = decode_line(&line[..line.len() - 1], &mut out).unwrap();
            assert_eq!(&out[..got], &frame[..]);
        }
    }

    #[test]
    fn rejects_lines_that_are_not_frames() {
        let cases: &[(&[u8], LineDecodeError)] = &[
            (b"!!!!", LineDecodeError::Base64),
            (b"abc", LineDecodeError::Base64),
            (b"QUJD", LineDecodeError::TooShort),
            (b"", LineDecodeError::TooShort),
        ];
        for (line, want) in cases {
            assert_eq!(decode_line(line, &mut Vec::new()), Err(*want), "{line:?}");
        }
    }

    /// `decode_line` takes and refuses what the `base64` crate's strict
    /// decoder does, with the same bytes: the encodings of every length of
    /// frame to 80 bytes, each also with one character changed (to another
    /// of the alphabet, `=`, or a character outside it), cut short, or
    /// with its last character before the padding changed (non-zero
    /// trailing bits).
    #[test]
    fn decoding_agrees_with_the_base64_crate() {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as usize
        };
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for len in 0..=80usize {
            for _ in 0..20 {
                let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                let line = BASE64.encode(&bytes).into_bytes();
                lines.push(line.clone());
                if line.is_empty() {
                    continue;
                }
                let at = next() % line.len();
                for by in [alphabet[next() % 64], b'=', b"!\n -_*\0"[next() % 7]] {
                    let mut changed = line.clone();
                    changed[at] = by;
                    lines.push(changed);
                }
                lines.push(line[..next() % line.len()].to_vec());
                let padding = line.iter().rev().take_while(|&&c| c == b'=').count();
                let mut trailing = line.clone();
                trailing[line.len() - padding - 1] = alphabet[next() % 64];
                lines.push(trailing);
            }
        }
        let (mut taken, mut refused) = (0, 0);
        for line in &lines {
            let mut ours = Vec::new();
            let ours = decode_line(line, &mut ours).map(|len| ours[..len].to_vec());
            let theirs = BASE64.decode(line);
            match (&ours, &theirs) {
                (Ok(ours), Ok(theirs)) => {
                    assert_eq!(ours, theirs, "{line:?}");
                    taken += 1;
                }
                (Err(LineDecodeError::TooShort), Ok(theirs)) => assert!(theirs.len() < OVERHEAD),
                (Err(LineDecodeError::Base64), Err(_)) => refused += 1,
                _ => panic!("{line:?}: ours {ours:?}, the base64 crate {theirs:?}"),
            }
        }
        assert!(
            taken > 1000 && refused > 2000,
            "{taken} taken, {refused} refused"
        );
    }

    #[test]
    fn a_frame_splits_into_nonce_tag_and_ciphertext() {
        let mut frame: Vec<u8> = (0..OVERHEAD as u8 + 3).collect();
        let (nonce, tag, body) = split_frame(&mut frame).unwrap();
        assert_eq!((nonce[0], tag[0], &body[..]), (0, 16, &[32, 33, 34][..]));
        assert!(split_frame(&mut frame[..OVERHEAD - 1]).is_none());
    }

    #[test]
    fn max_plaintext_fits_the_line_limit() {
        for max_line in [44usize, 45, 64, 65536, 65537] {
            let n = max_plaintext_len(max_line);
            assert!(encoded_len(n) <= max_line);
            assert!(encoded_len(n + 1) > max_line || encoded_len(n + 1) == encoded_len(n));
        }
    }
}
