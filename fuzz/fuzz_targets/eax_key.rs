//! Fuzz target `eax_key`: `eaxchat_proto::eax_key::EaxKey` against the `eax` and
//! `cmac` crates on fuzzer-chosen keys (all three AES sizes), nonces,
//! headers and data.
//!
//! Checked: seal gives the `eax` crate's ciphertext and tag, with and without
//! a header, one frame at a time and frames side by side
//! (`seal_frames_in_place`), and frames opened side by side
//! (`open_frames_in_place`: all of them, and with one byte changed exactly
//! those before it); open and `verifies` accept exactly what the
//! `eax` crate accepts, and `first_verifying` among several keys finds the
//! first key `verifies` accepts; a rejected buffer is left unchanged; any one flipped bit is refused;
//! `cmac` is the `cmac` crate's; `verified_prefix_len` over sealed frames
//! joined with garbage, and over the raw input, returns what trying every
//! candidate with the `eax` crate returns.

#![no_main]

use aead::{AeadInOut, KeyInit};
use aes::{Aes128, Aes192, Aes256};
use arbitrary::Arbitrary;
use cmac::{Cmac, Mac};
use eax::Eax;
use eaxchat_proto::eax_key::{EaxKey, TagError};
use eaxchat_proto::wire::OVERHEAD;
use libfuzzer_sys::fuzz_target;

/// Joined frames are checked against a quadratic reference: keep them short.
const MAX_JOINED: usize = 600;

/// Frames sealed and opened side by side: room for a wide group (from 32
/// frames, `WIDE_LANES / 2`) of frames up to 80 bytes.
const MAX_RUN: usize = 4096;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    key_size: u8,
    key: [u8; 32],
    nonce: [u8; 16],
    header: &'a [u8],
    flip: u16,
    /// Plaintext lengths of the frames to join, cut from `data`.
    frame_lens: Vec<u8>,
    /// Candidates are every length, or only the splitter's.
    every_candidate: bool,
    data: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let key = &input.key[..[16, 24, 32][usize::from(input.key_size % 3)]];
    let ours = EaxKey::new(key).expect("an AES key length");
    let reference = Reference::new(key);

    assert_eq!(ours.cmac(input.data), reference.cmac(input.data));
    check_seal_open(&ours, &reference, &input.nonce, &[], input.data, input.flip);
    check_seal_open(
        &ours,
        &reference,
        &input.nonce,
        input.header,
        input.data,
        input.flip,
    );

    // The input itself as a frame, and as joined frames.
    let raw_frame_ok = input.data.len() >= OVERHEAD && reference.opens_frame(input.data);
    assert_eq!(ours.verifies(input.data), raw_frame_ok);
    // Among other keys side by side (before it, and twice after it).
    let mut other_key = key.to_vec();
    other_key.reverse();
    other_key[0] ^= 1;
    let other = EaxKey::new(&other_key).expect("an AES key length");
    let keys = [&other, &other, &ours, &other, &ours];
    let want = if other.verifies(input.data) {
        Some(0)
    } else {
        raw_frame_ok.then_some(2)
    };
    assert_eq!(EaxKey::first_verifying(keys, input.data), want);
    let raw = &input.data[..input.data.len().min(MAX_JOINED)];
    check_prefix(&ours, &reference, raw, input.every_candidate);

    let mut joined = Vec::new();
    // The same frames unsealed, and their lengths, for sealing side by side.
    let (mut unsealed, mut lens) = (Vec::new(), Vec::new());
    let mut rest = input.data;
    for &len in &input.frame_lens {
        let (plaintext, after) = rest.split_at(usize::from(len).min(rest.len()));
        if joined.len() + OVERHEAD + plaintext.len() > MAX_RUN {
            break;
        }
        let mut nonce = input.nonce;
        nonce[0] ^= joined.len() as u8;
        let mut buf = plaintext.to_vec();
        let tag = ours.seal_in_place_detached(&nonce, &mut buf);
        let mut their_buf = plaintext.to_vec();
        assert_eq!(tag, reference.seal(&nonce, &[], &mut their_buf));
        assert_eq!(buf, their_buf);
        joined.extend_from_slice(&nonce);
        joined.extend_from_slice(&tag);
        joined.extend_from_slice(&buf);
        unsealed.extend_from_slice(&nonce);
        unsealed.extend_from_slice(&[0; 16]);
        unsealed.extend_from_slice(plaintext);
        lens.push(plaintext.len());
        rest = after;
    }
    // The plaintexts in place, for opening side by side.
    let plain = unsealed.clone();
    ours.seal_frames_in_place(&mut unsealed, &lens);
    assert_eq!(unsealed, joined, "frames sealed side by side");
    check_open_frames(&ours, &joined, &plain, &lens, input.nonce[1]);
    // Garbage after the frames: what is left of the input. The walk is
    // checked against the quadratic reference: its first MAX_JOINED bytes
    // only, which may end inside a frame.
    joined.truncate(MAX_JOINED);
    let room = MAX_JOINED.saturating_sub(joined.len());
    joined.extend_from_slice(&rest[..rest.len().min(room)]);
    let mut remaining = &joined[..];
    while let Some(len) = check_prefix(&ours, &reference, remaining, input.every_candidate) {
        remaining = &remaining[len..];
    }
});

/// Opens the sealed frames `joined` side by side: every one opens, to
/// `plain` (nonces and plaintexts, the tags still in place). Then with one
/// byte changed (where `at` picks): exactly the frames before the one it
/// is in open, and it and the rest are left as they were.
fn check_open_frames(ours: &EaxKey, joined: &[u8], plain: &[u8], lens: &[usize], at: u8) {
    let mut opened = joined.to_vec();
    assert_eq!(ours.open_frames_in_place(&mut opened, lens), lens.len());
    let mut want = plain.to_vec();
    let mut start = 0;
    for &len in lens {
        want[start + 16..start + OVERHEAD].copy_from_slice(&joined[start + 16..start + OVERHEAD]);
        start += OVERHEAD + len;
    }
    assert_eq!(opened, want, "frames opened side by side");
    if joined.is_empty() {
        return;
    }
    let place = usize::from(at) * 131 % joined.len();
    let (mut bad, mut bad_start, mut start) = (0, 0, 0);
    for (i, &len) in lens.iter().enumerate() {
        if place < start + OVERHEAD + len {
            (bad, bad_start) = (i, start);
            break;
        }
        start += OVERHEAD + len;
    }
    let mut spoiled = joined.to_vec();
    spoiled[place] ^= 0x01;
    let before = spoiled.clone();
    assert_eq!(ours.open_frames_in_place(&mut spoiled, lens), bad);
    assert_eq!(spoiled[..bad_start], want[..bad_start]);
    assert_eq!(spoiled[bad_start..], before[bad_start..]);
}

/// Seals `plaintext` both ways, opens it, and refuses it with one bit
/// flipped (chosen by `flip`) in the tag or the ciphertext.
fn check_seal_open(
    ours: &EaxKey,
    reference: &Reference,
    nonce: &[u8; 16],
    header: &[u8],
    plaintext: &[u8],
    flip: u16,
) {
    let mut ct = plaintext.to_vec();
    let tag = ours.seal_with_header(nonce, header, &mut ct);
    let mut their_ct = plaintext.to_vec();
    assert_eq!(tag, reference.seal(nonce, header, &mut their_ct));
    assert_eq!(ct, their_ct);

    let mut opened = ct.clone();
    assert_eq!(
        ours.open_with_header(nonce, header, &mut opened, &tag),
        Ok(())
    );
    assert_eq!(opened, plaintext);
    if header.is_empty() {
        let mut opened = ct.clone();
        assert_eq!(
            ours.open_in_place_detached(nonce, &mut opened, &tag),
            Ok(())
        );
        assert_eq!(opened, plaintext);
        assert!(ours.verifies(&[&nonce[..], &tag, &ct].concat()));
    }

    let bit = usize::from(flip) % ((16 + ct.len()) * 8);
    let (mut bad_tag, mut bad_ct) = (tag, ct.clone());
    match bit / 8 {
        byte @ 0..16 => bad_tag[byte] ^= 1 << (bit % 8),
        byte => bad_ct[byte - 16] ^= 1 << (bit % 8),
    }
    let mut buf = bad_ct.clone();
    assert_eq!(
        ours.open_with_header(nonce, header, &mut buf, &bad_tag),
        Err(TagError)
    );
    assert_eq!(buf, bad_ct, "a refused buffer changed");
    assert!(!reference.open(nonce, header, &mut bad_ct.clone(), &bad_tag));
    if header.is_empty() {
        assert!(!ours.verifies(&[&nonce[..], &bad_tag, &bad_ct].concat()));
    }
}

/// `verified_prefix_len` on `data` against the reference; returns it.
fn check_prefix(ours: &EaxKey, reference: &Reference, data: &[u8], every: bool) -> Option<usize> {
    let data_len = data.len();
    let is_candidate = |len: usize| every || len.is_multiple_of(3) || len == data_len;
    let mut last_asked = 0;
    let got = ours.verified_prefix_len(data, |len| {
        assert!(len >= OVERHEAD && len <= data_len && len > last_asked);
        last_asked = len;
        is_candidate(len)
    });
    let want =
        (OVERHEAD..=data_len).find(|&len| is_candidate(len) && reference.opens_frame(&data[..len]));
    assert_eq!(got, want);
    got
}

/// The `eax` and `cmac` crates under one key.
enum Reference {
    Aes128(Eax<Aes128>, Cmac<Aes128>),
    Aes192(Eax<Aes192>, Cmac<Aes192>),
    Aes256(Eax<Aes256>, Cmac<Aes256>),
}

macro_rules! each_size {
    ($reference:expr, |$eax:ident, $cmac:ident| $body:expr) => {
        match $reference {
            Reference::Aes128($eax, $cmac) => $body,
            Reference::Aes192($eax, $cmac) => $body,
            Reference::Aes256($eax, $cmac) => $body,
        }
    };
}

impl Reference {
    fn new(key: &[u8]) -> Reference {
        let bad = "an AES key length";
        match key.len() {
            16 => Reference::Aes128(
                Eax::new_from_slice(key).expect(bad),
                <Cmac<Aes128> as KeyInit>::new_from_slice(key).expect(bad),
            ),
            24 => Reference::Aes192(
                Eax::new_from_slice(key).expect(bad),
                <Cmac<Aes192> as KeyInit>::new_from_slice(key).expect(bad),
            ),
            _ => Reference::Aes256(
                Eax::new_from_slice(key).expect(bad),
                <Cmac<Aes256> as KeyInit>::new_from_slice(key).expect(bad),
            ),
        }
    }

    fn seal(&self, nonce: &[u8; 16], header: &[u8], buf: &mut [u8]) -> [u8; 16] {
        each_size!(self, |eax, _cmac| eax
            .encrypt_inout_detached(nonce.into(), header, buf.into())
            .expect("within EAX's limit")
            .into())
    }

    fn open(&self, nonce: &[u8; 16], header: &[u8], buf: &mut [u8], tag: &[u8; 16]) -> bool {
        each_size!(self, |eax, _cmac| eax
            .decrypt_inout_detached(nonce.into(), header, buf.into(), tag.into())
            .is_ok())
    }

    /// Whether `nonce ‖ tag ‖ ciphertext` opens (at least 32 bytes).
    fn opens_frame(&self, frame: &[u8]) -> bool {
        let nonce: [u8; 16] = frame[..16].try_into().expect("16 bytes");
        let tag: [u8; 16] = frame[16..32].try_into().expect("16 bytes");
        self.open(&nonce, &[], &mut frame[32..].to_vec(), &tag)
    }

    fn cmac(&self, data: &[u8]) -> [u8; 16] {
        each_size!(self, |_eax, cmac| {
            let mut mac = cmac.clone();
            mac.update(data);
            mac.finalize().into_bytes().into()
        })
    }
}
