//! A session's frames: today's wire lines, `base64(nonce ‖ tag ‖ ct)`,
//! sealed with AES-256-EAX under the session key of their direction, with
//! a counter for a nonce.
//!
//! The nonce of the n-th frame one way (n = 0, 1, …) is 8 zero bytes and
//! then n as a big-endian u64 ([`counter_nonce`]). A [`Sealer`] numbers
//! what it seals; an [`Opener`] keeps the one counter it waits for and
//! takes only a frame that carries exactly it, so a replay, a gap, a
//! reorder and a nonce of any other shape are refused before any crypto,
//! with O(1) state. The counter moves on only once a frame has opened: a
//! forged frame with the right counter changes nothing.
//!
//! A frame of another session, or of the other direction of this one
//! (reflected back to its sender), is under another key: its tag fails.
//! The EAX key is expanded once per direction when the session starts.
//!
//! [`Sealer`] and [`Opener`] borrow a scratch buffer from the caller, so a
//! relay shares one between all its sessions and an idle session holds no
//! buffer; [`Session`] owns one for a client's single session.

use std::fmt;

use bytes::BytesMut;

use crate::cipher;
use crate::eax_key::EaxKey;
use crate::wire::{self, LineDecodeError, NONCE_LEN, OVERHEAD};

use super::error::SessionError;
use super::identity::PublicKey;
use super::keys::SessionKeys;

/// The nonce of frame `counter`: 8 zero bytes, then the counter as a
/// big-endian u64.
pub fn counter_nonce(counter: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0; NONCE_LEN];
    nonce[8..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

/// The counter a nonce carries, if it is a counter nonce.
fn counter_of(nonce: &[u8; NONCE_LEN]) -> Result<u64, SessionError> {
    let (prefix, counter) = nonce.split_at(8);
    if prefix.iter().any(|&byte| byte != 0) {
        return Err(SessionError::NotACounterNonce);
    }
    let mut bytes = [0; 8];
    bytes.copy_from_slice(counter);
    Ok(u64::from_be_bytes(bytes))
}

/// Drops one trailing `\n` and one `\r` before it.
fn strip_terminator(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Seals one direction's frames, numbering them from 0.
pub struct Sealer {
    key: EaxKey,
    next: u64,
}

impl Sealer {
    pub(super) fn new(key: &[u8; 32]) -> Sealer {
        Sealer {
            key: EaxKey::aes256(key),
            next: 0,
        }
    }

    /// Seals `plaintext` as the next frame, using `scratch` as the frame
    /// buffer (grown as needed), and appends the line and its `\n` to
    /// `out`. Fails only when every counter has been used.
    pub fn seal_into(
        &mut self,
        plaintext: &[u8],
        scratch: &mut Vec<u8>,
        out: &mut BytesMut,
    ) -> Result<(), SessionError> {
        // u64::MAX is never used, so an opener's next counter always fits.
        if self.next == u64::MAX {
            return Err(SessionError::CounterExhausted);
        }
        let nonce = counter_nonce(self.next);
        let frame_len = OVERHEAD + plaintext.len();
        scratch.clear();
        scratch.resize(frame_len, 0);
        let (head, body) = scratch.split_at_mut(OVERHEAD);
        body.copy_from_slice(plaintext);
        let tag = self.key.seal_in_place_detached(&nonce, body);
        head[..NONCE_LEN].copy_from_slice(&nonce);
        head[NONCE_LEN..].copy_from_slice(&tag);
        wire::encode_line(scratch, out);
        self.next += 1;
        Ok(())
    }

    /// Seals `\n`-joined plaintexts of lengths `lens` (each followed by its
    /// `\n` in `plaintexts`) as the next frames, a line each, into `out`,
    /// using `scratch` as the frame buffer (grown as needed). A length past
    /// the end of `plaintexts` ends the run there.
    ///
    /// The lines are exactly those [`Sealer::seal_into`] would give one
    /// plaintext at a time, counters included, in about half the time
    /// ([`cipher::seal_lines`]: laid out end to end, sealed side by side,
    /// encoded together). When the counters run out mid-run, the frames
    /// before the last counter are appended and it fails, as sealing one at
    /// a time would.
    pub fn seal_joined(
        &mut self,
        plaintexts: &[u8],
        lens: &[usize],
        scratch: &mut Vec<u8>,
        out: &mut BytesMut,
    ) -> Result<(), SessionError> {
        let (mut counter, mut exhausted) = (self.next, false);
        let next_nonce = || {
            // u64::MAX is never used, so an opener's next counter always fits.
            if counter == u64::MAX {
                exhausted = true;
                return None;
            }
            counter += 1;
            Some(counter_nonce(counter - 1))
        };
        cipher::seal_lines(&self.key, plaintexts, lens, scratch, next_nonce, out);
        self.next = counter;
        if exhausted {
            return Err(SessionError::CounterExhausted);
        }
        Ok(())
    }

    /// How many frames this sealer has sealed: the next frame's counter.
    pub fn sealed(&self) -> u64 {
        self.next
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("next", &self.next).finish()
    }
}

/// Opens one direction's frames, each only once and only in order.
pub struct Opener {
    key: EaxKey,
    next: u64,
}

impl Opener {
    pub(super) fn new(key: &[u8; 32]) -> Opener {
        Opener {
            key: EaxKey::aes256(key),
            next: 0,
        }
    }

    /// Opens one line (base64, without its `\n`; a trailing `\n` or `\r\n`
    /// is dropped), decoding it into `scratch`, and returns the plaintext,
    /// which lives in `scratch`.
    pub fn open<'s>(
        &mut self,
        line: &[u8],
        scratch: &'s mut Vec<u8>,
    ) -> Result<&'s mut [u8], SessionError> {
        let len =
            wire::decode_line(strip_terminator(line), scratch).map_err(|error| match error {
                LineDecodeError::Base64 => SessionError::FrameNotBase64,
                LineDecodeError::TooShort => SessionError::FrameTooShort,
            })?;
        let frame = scratch.get_mut(..len).ok_or(SessionError::FrameTooShort)?;
        self.open_decoded(frame)
    }

    /// Opens a decoded frame, `nonce ‖ tag ‖ ciphertext`, in place, and
    /// returns its plaintext. Refuses any counter but the next before
    /// checking the tag; a frame whose tag fails is never decrypted and
    /// leaves the counter where it was.
    pub fn open_decoded<'f>(&mut self, frame: &'f mut [u8]) -> Result<&'f mut [u8], SessionError> {
        let (nonce, tag, body) = wire::split_frame(frame).ok_or(SessionError::FrameTooShort)?;
        let got = counter_of(nonce)?;
        if got < self.next {
            return Err(SessionError::Replayed {
                expected: self.next,
                got,
            });
        }
        if got > self.next {
            return Err(SessionError::Skipped {
                expected: self.next,
                got,
            });
        }
        if got == u64::MAX {
            return Err(SessionError::CounterExhausted);
        }
        self.key
            .open_in_place_detached(nonce, body, tag)
            .map_err(|_| SessionError::BadTag)?;
        self.next += 1;
        Ok(body)
    }

    /// How many frames this opener has opened: the counter it waits for.
    pub fn opened(&self) -> u64 {
        self.next
    }
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener").field("next", &self.next).finish()
    }
}

/// One side of an established session: a sealer for what this side sends,
/// an opener for what it receives, the peer's static key, and a frame
/// buffer of its own.
pub struct Session {
    sealer: Sealer,
    opener: Opener,
    peer: PublicKey,
    scratch: Vec<u8>,
}

impl Session {
    /// The client's side: seals client → relay, opens relay → client.
    pub(super) fn client(keys: &SessionKeys, relay: PublicKey) -> Session {
        Session::new(keys.client_to_relay(), keys.relay_to_client(), relay)
    }

    /// The relay's side: seals relay → client, opens client → relay.
    pub(super) fn relay(keys: &SessionKeys, client: PublicKey) -> Session {
        Session::new(keys.relay_to_client(), keys.client_to_relay(), client)
    }

    fn new(seal: &[u8; 32], open: &[u8; 32], peer: PublicKey) -> Session {
        Session {
            sealer: Sealer::new(seal),
            opener: Opener::new(open),
            peer,
            scratch: Vec::new(),
        }
    }

    /// Seals `plaintext` as this side's next frame and appends the line
    /// and its `\n` to `out`.
    pub fn seal_into(&mut self, plaintext: &[u8], out: &mut BytesMut) -> Result<(), SessionError> {
        self.sealer.seal_into(plaintext, &mut self.scratch, out)
    }

    /// Opens the peer's next frame (one line, without its `\n`) and returns
    /// its plaintext, which lives in this session's buffer until the next
    /// call.
    pub fn open(&mut self, line: &[u8]) -> Result<&mut [u8], SessionError> {
        self.opener.open(line, &mut self.scratch)
    }

    /// The peer's static public key: the relay's for a client, the
    /// member device's for the relay.
    pub fn peer_key(&self) -> &PublicKey {
        &self.peer
    }

    /// How many frames this side has sealed.
    pub fn sealed(&self) -> u64 {
        self.sealer.sealed()
    }

    /// How many of the peer's frames this side has opened.
    pub fn opened(&self) -> u64 {
        self.opener.opened()
    }

    /// The two directions apart, for a relay that keeps one scratch buffer
    /// for all its sessions.
    pub fn into_parts(self) -> (Sealer, Opener) {
        (self.sealer, self.opener)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("sealed", &self.sealer.next)
            .field("opened", &self.opener.next)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Session, Session) {
        let keys = SessionKeys::derive(&[1; 32], &[2; 32], &[3; 32]);
        let (client_key, relay_key) = (
            PublicKey::from_bytes([4; 32]),
            PublicKey::from_bytes([5; 32]),
        );
        (
            Session::client(&keys, relay_key),
            Session::relay(&keys, client_key),
        )
    }

    fn seal(session: &mut Session, text: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        session.seal_into(text, &mut out).unwrap();
        assert_eq!(out.last(), Some(&b'\n'));
        out[..out.len() - 1].to_vec()
    }

    #[test]
    fn the_nonce_is_eight_zero_bytes_and_a_big_endian_counter() {
        assert_eq!(counter_nonce(0), [0; 16]);
        let mut want = [0; 16];
        want[14..].copy_from_slice(&[1, 2]);
        assert_eq!(counter_nonce(258), want);
        assert_eq!(counter_of(&counter_nonce(u64::MAX)), Ok(u64::MAX));
        let mut prefixed = counter_nonce(3);
        prefixed[0] = 1;
        assert_eq!(counter_of(&prefixed), Err(SessionError::NotACounterNonce));
    }

    #[test]
    fn frames_open_the_other_way_in_order_and_carry_counters() {
        let (mut client, mut relay) = pair();
        for n in 0..3u64 {
            let line = seal(&mut client, format!("hi {n}").as_bytes());
            let mut frame = Vec::new();
            let len = wire::decode_line(&line, &mut frame).unwrap();
            assert_eq!(frame[..NONCE_LEN], counter_nonce(n));
            assert_eq!(len, OVERHEAD + 4);
            assert_eq!(relay.open(&line).unwrap(), format!("hi {n}").as_bytes());
        }
        let line = seal(&mut relay, b"back");
        assert_eq!(client.open(&line).unwrap(), b"back");
        assert_eq!(
            (
                client.sealed(),
                client.opened(),
                relay.sealed(),
                relay.opened()
            ),
            (3, 1, 1, 3)
        );
    }

    #[test]
    fn replays_gaps_reorders_reflections_and_forgeries_are_refused() {
        let (mut client, mut relay) = pair();
        let lines: Vec<_> = (0..4).map(|n| seal(&mut client, &[n; 5])).collect();
        assert!(relay.open(&lines[0]).is_ok());
        assert_eq!(
            relay.open(&lines[0]).unwrap_err(),
            SessionError::Replayed {
                expected: 1,
                got: 0
            }
        );
        assert_eq!(
            relay.open(&lines[2]).unwrap_err(),
            SessionError::Skipped {
                expected: 1,
                got: 2
            }
        );
        assert!(relay.open(&lines[1]).is_ok());
        assert!(relay.open(&lines[2]).is_ok());
        assert_eq!(
            relay.open(&lines[1]).unwrap_err(),
            SessionError::Replayed {
                expected: 3,
                got: 1
            }
        );
        // Reflected: the client's own frame sent back to it.
        assert_eq!(client.open(&lines[0]).unwrap_err(), SessionError::BadTag);
        // A forged frame with the right counter leaves the counter alone.
        let mut forged = Vec::new();
        let len = wire::decode_line(&lines[3], &mut forged).unwrap();
        forged[len - 1] ^= 1;
        assert_eq!(
            relay.opener.open_decoded(&mut forged[..len]).unwrap_err(),
            SessionError::BadTag
        );
        assert_eq!(relay.opened(), 3);
        assert_eq!(relay.open(&lines[3]).unwrap(), &[3; 5]);
    }

    #[test]
    fn malformed_frames_are_refused() {
        let (_, mut relay) = pair();
        let cases: &[(&[u8], SessionError)] = &[
            (b"!!!!", SessionError::FrameNotBase64),
            (b"abc", SessionError::FrameNotBase64),
            (b"", SessionError::FrameTooShort),
            (b"QUJD", SessionError::FrameTooShort),
        ];
        for (line, want) in cases {
            assert_eq!(relay.open(line).unwrap_err(), *want, "{line:?}");
        }
        let mut frame = [0u8; OVERHEAD];
        frame[0] = 9;
        assert_eq!(
            relay.opener.open_decoded(&mut frame).unwrap_err(),
            SessionError::NotACounterNonce
        );
        assert_eq!(relay.opened(), 0);
    }

    /// A run sealed side by side is, byte for byte, the same frames sealed
    /// one at a time by a twin sealer (same key, same counter), for runs of
    /// 1 to 20 frames of every length from 0 to 300; and when the counters
    /// run out mid-run both stop at the same frame with the same error.
    #[test]
    fn a_run_is_its_frames_sealed_one_at_a_time() {
        let key = [7; 32];
        let (mut batch, mut single) = (Sealer::new(&key), Sealer::new(&key));
        let mut scratch = Vec::new();
        let mut covered = [false; 301];
        for seed in 0..16 {
            for count in 1..=20usize {
                let lens: Vec<usize> = (0..count)
                    .map(|i| (seed * 89 + count * 11 + i * 23) % 301)
                    .collect();
                let mut plaintexts = Vec::new();
                for (i, &len) in lens.iter().enumerate() {
                    plaintexts.extend((0..len).map(|j| (j * 7 + i + seed) as u8));
                    plaintexts.push(b'\n');
                }
                let (mut joined, mut each) = (BytesMut::new(), BytesMut::new());
                batch
                    .seal_joined(&plaintexts, &lens, &mut scratch, &mut joined)
                    .unwrap();
                let mut start = 0;
                for &len in &lens {
                    let plain = &plaintexts[start..start + len];
                    single.seal_into(plain, &mut Vec::new(), &mut each).unwrap();
                    covered[len] = true;
                    start += len + 1;
                }
                assert_eq!(joined, each, "{lens:?}");
                assert_eq!(batch.sealed(), single.sealed());
            }
        }
        assert!(covered.iter().all(|&c| c));
        for left in [0, 1, 2, 5] {
            batch.next = u64::MAX - left;
            single.next = u64::MAX - left;
            let (mut joined, mut each) = (BytesMut::new(), BytesMut::new());
            let got = batch.seal_joined(b"a\nbb\nccc\n", &[1, 2, 3], &mut scratch, &mut joined);
            let mut want = Ok(());
            for plain in [&b"a"[..], b"bb", b"ccc"] {
                want = single.seal_into(plain, &mut Vec::new(), &mut each);
                if want.is_err() {
                    break;
                }
            }
            assert_eq!(got, want, "{left} counters left");
            assert_eq!(joined, each, "{left} counters left");
            assert_eq!(batch.next, single.next);
        }
    }

    #[test]
    fn the_last_counter_is_never_used() {
        let (mut client, mut relay) = pair();
        client.sealer.next = u64::MAX;
        let mut out = BytesMut::new();
        assert_eq!(
            client.seal_into(b"x", &mut out),
            Err(SessionError::CounterExhausted)
        );
        relay.opener.next = u64::MAX;
        let mut frame = [0u8; OVERHEAD];
        frame[..NONCE_LEN].copy_from_slice(&counter_nonce(u64::MAX));
        assert_eq!(
            relay.opener.open_decoded(&mut frame).unwrap_err(),
            SessionError::CounterExhausted
        );
    }
}
