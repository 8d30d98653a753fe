//! `eaxchat_proto::eax_key::EaxKey` against the RustCrypto crates it replaces on
//! the hot path (`eax` for EAX, `cmac` for its CBC-MAC chain) and against
//! the published vectors: the EAX paper's, both Wycheproof editions, and
//! RFC 4493's CMAC examples.
//!
//! Every comparison runs both implementations, so a vector that one of them
//! gets wrong, or a length at which they differ, fails here.

// Test helpers may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use eaxchat_test_support as util;

use aead::{AeadInOut, KeyInit};
use aes::{Aes128, Aes192, Aes256};
use cmac::{Cmac, Mac};
use eax::Eax;
use eaxchat_proto::eax_key::{EaxKey, InvalidKeyLength, OVERHEAD, TagError};
use util::vectors::{Case, eax_paper, wycheproof};

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
        match key.len() {
            16 => Reference::Aes128(
                Eax::new_from_slice(key).unwrap(),
                <Cmac<Aes128> as KeyInit>::new_from_slice(key).unwrap(),
            ),
            24 => Reference::Aes192(
                Eax::new_from_slice(key).unwrap(),
                <Cmac<Aes192> as KeyInit>::new_from_slice(key).unwrap(),
            ),
            32 => Reference::Aes256(
                Eax::new_from_slice(key).unwrap(),
                <Cmac<Aes256> as KeyInit>::new_from_slice(key).unwrap(),
            ),
            len => panic!("no AES key has {len} bytes"),
        }
    }

    fn seal(&self, nonce: &[u8; 16], header: &[u8], buf: &mut [u8]) -> [u8; 16] {
        each_size!(self, |eax, _cmac| eax
            .encrypt_inout_detached(nonce.into(), header, buf.into())
            .unwrap()
            .into())
    }

    fn open(&self, nonce: &[u8; 16], header: &[u8], buf: &mut [u8], tag: &[u8; 16]) -> bool {
        each_size!(self, |eax, _cmac| eax
            .decrypt_inout_detached(nonce.into(), header, buf.into(), tag.into())
            .is_ok())
    }

    fn cmac(&self, data: &[u8]) -> [u8; 16] {
        each_size!(self, |_eax, cmac| {
            let mut mac = cmac.clone();
            mac.update(data);
            mac.finalize().into_bytes().into()
        })
    }

    /// The reference split: every candidate length tried from the start.
    fn verified_prefix_len(
        &self,
        data: &[u8],
        is_candidate: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        (OVERHEAD..=data.len()).find(|&len| {
            is_candidate(len) && {
                let nonce: [u8; 16] = data[..16].try_into().unwrap();
                let tag: [u8; 16] = data[16..32].try_into().unwrap();
                let mut buf = data[32..len].to_vec();
                self.open(&nonce, &[], &mut buf, &tag)
            }
        })
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Deterministic bytes that differ with `seed`.
fn bytes(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 131 + seed * 71 + 17) % 251) as u8)
        .collect()
}

fn keys() -> [Vec<u8>; 3] {
    [bytes(16, 1), bytes(24, 2), bytes(32, 3)]
}

// --- published vectors --------------------------------------------------

/// RFC 4493 section 4: AES-128 key and the four example messages.
const RFC4493_KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const RFC4493_MESSAGE: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
const RFC4493: [(usize, &str); 4] = [
    (0, "bb1d6929e95937287fa37d129b756746"),
    (16, "070a16b46b4d4144f79bdd9dd04a287c"),
    (40, "dfa66747de9ae63030ca32611497c827"),
    (64, "51f0bebf7e3b9d92fc49741779363cfe"),
];

/// RFC 4493's four CMAC examples through the chain and through `cmac`.
#[test]
fn rfc4493_cmac_vectors() {
    let key = hex(RFC4493_KEY);
    let message = hex(RFC4493_MESSAGE);
    let ours = EaxKey::new(&key).unwrap();
    let reference = Reference::new(&key);
    for (len, mac) in RFC4493 {
        let mac = hex(mac);
        assert_eq!(ours.cmac(&message[..len]), &mac[..], "EaxKey, length {len}");
        assert_eq!(
            reference.cmac(&message[..len]),
            &mac[..],
            "cmac, length {len}"
        );
    }
}

/// How many cases ran through each implementation.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    valid: usize,
    invalid: usize,
    /// Cases the `eax` crate also ran: it takes only 16-byte nonces.
    through_eax_crate: usize,
    /// Cases that are also wire frames (16-byte nonce, no header), checked
    /// with `verifies` and `verified_prefix_len` too.
    as_frames: usize,
}

fn check(cases: impl IntoIterator<Item = Case>) -> Tally {
    let mut tally = Tally::default();
    for case in cases {
        let ours = EaxKey::new(&case.key).unwrap();
        let tag: [u8; 16] = case.tag[..].try_into().unwrap();
        let mut buf = case.ct.clone();
        let opened = ours.open_with_header(&case.nonce, &case.header, &mut buf, &tag);
        if case.valid {
            tally.valid += 1;
            assert_eq!(opened, Ok(()), "{}: valid case rejected", case.id);
            assert_eq!(buf, case.msg, "{}: wrong plaintext", case.id);
            let mut sealed = case.msg.clone();
            let got = ours.seal_with_header(&case.nonce, &case.header, &mut sealed);
            assert_eq!(sealed, case.ct, "{}: wrong ciphertext", case.id);
            assert_eq!(got, tag, "{}: wrong tag", case.id);
        } else {
            tally.invalid += 1;
            assert_eq!(opened, Err(TagError), "{}: invalid case accepted", case.id);
            assert_eq!(buf, case.ct, "{}: a rejected buffer changed", case.id);
        }

        let Ok(nonce) = <[u8; 16]>::try_from(&case.nonce[..]) else {
            continue;
        };
        tally.through_eax_crate += 1;
        let reference = Reference::new(&case.key);
        let mut buf = case.ct.clone();
        let theirs = reference.open(&nonce, &case.header, &mut buf, &tag);
        assert_eq!(theirs, case.valid, "{}: the eax crate disagrees", case.id);
        if case.valid {
            assert_eq!(buf, case.msg, "{}: eax crate plaintext", case.id);
            let mut sealed = case.msg.clone();
            assert_eq!(reference.seal(&nonce, &case.header, &mut sealed), tag);
            assert_eq!(sealed, case.ct, "{}: eax crate ciphertext", case.id);
        }

        if case.header.is_empty() {
            tally.as_frames += 1;
            let frame = [&case.nonce[..], &case.tag, &case.ct].concat();
            assert_eq!(ours.verifies(&frame), case.valid, "{}: verifies", case.id);
            let mut buf = case.ct.clone();
            let opened = ours.open_in_place_detached(&nonce, &mut buf, &tag);
            assert_eq!(opened.is_ok(), case.valid, "{}: open_in_place", case.id);
            if case.valid {
                // Sealed side by side with copies of itself: each lane
                // gives the vector's frame.
                let plain = [&case.nonce[..], &[0; 16], &case.msg].concat();
                let mut frames = plain.repeat(3);
                ours.seal_frames_in_place(&mut frames, &[case.msg.len(); 3]);
                assert_eq!(frames, frame.repeat(3), "{}: seal_frames", case.id);
            }
            let want = case.valid.then_some(frame.len());
            let only_whole = |len| len == frame.len();
            assert_eq!(
                ours.verified_prefix_len(&frame, only_whole),
                want,
                "{}",
                case.id
            );
        }
    }
    tally
}

/// Wycheproof's current edition, all 240 cases: EaxKey takes any nonce
/// length, so none is skipped; the `eax` crate runs the 186 with 16 bytes.
#[test]
fn wycheproof_v1_vectors() {
    let tally = check(wycheproof("wycheproof_aes_eax_test.v1.json"));
    assert_eq!(
        tally,
        Tally {
            valid: 159,
            invalid: 81,
            through_eax_crate: 186,
            as_frames: 128,
        }
    );
}

/// Wycheproof's legacy edition, all 171 cases.
#[test]
fn wycheproof_legacy_vectors() {
    let tally = check(wycheproof("wycheproof_aes_eax_test.legacy.json"));
    assert_eq!(tally.valid + tally.invalid, 171);
    assert_eq!(tally.invalid, 81);
    assert!(tally.through_eax_crate > 0 && tally.as_frames > 0);
}

/// The ten vectors of the EAX paper's appendix (all with a header).
#[test]
fn eax_paper_vectors() {
    let cases = eax_paper();
    let tally = check(cases);
    assert_eq!(tally.valid, 10);
    assert_eq!(tally.through_eax_crate, 10);
}

// --- differential --------------------------------------------------------

/// Every length from 0 to 300 (past the 128 bytes of eight blocks, the
/// AES-NI backend's parallel call, where a 113- to 127-byte message once
/// ran one block too many through its tail), and some around 1 KiB and
/// 16 KiB.
fn lengths() -> impl Iterator<Item = usize> {
    (0..=300).chain([1023, 1024, 1025, 1040, 16383, 16384, 16385, 16401])
}

/// Seal and open agree with the `eax` crate at every length and key size;
/// a changed tag or ciphertext never opens and leaves the buffer as it was.
#[test]
fn matches_the_eax_crate_at_every_length() {
    for key in keys() {
        let ours = EaxKey::new(&key).unwrap();
        let reference = Reference::new(&key);
        for len in lengths() {
            let nonce: [u8; 16] = bytes(16, len).try_into().unwrap();
            let plaintext = bytes(len, len + key.len());
            let mut ct = plaintext.clone();
            let tag = ours.seal_in_place_detached(&nonce, &mut ct);
            let mut their_ct = plaintext.clone();
            let their_tag = reference.seal(&nonce, &[], &mut their_ct);
            assert_eq!(
                ct,
                their_ct,
                "ciphertext, {}-byte key, length {len}",
                key.len()
            );
            assert_eq!(tag, their_tag, "tag, {}-byte key, length {len}", key.len());

            let mut opened = ct.clone();
            assert_eq!(
                ours.open_in_place_detached(&nonce, &mut opened, &tag),
                Ok(())
            );
            assert_eq!(opened, plaintext);
            let frame = [&nonce[..], &tag, &ct].concat();
            assert!(ours.verifies(&frame));

            let mut bad_tag = tag;
            bad_tag[len % 16] ^= 1 << (len % 8);
            let mut untouched = ct.clone();
            let refused = ours.open_in_place_detached(&nonce, &mut untouched, &bad_tag);
            assert_eq!(refused, Err(TagError), "changed tag, length {len}");
            assert_eq!(untouched, ct, "nothing decrypted on a bad tag");
            assert!(!reference.open(&nonce, &[], &mut ct.clone(), &bad_tag));
            let bad_frame = [&nonce[..], &bad_tag, &ct].concat();
            assert!(!ours.verifies(&bad_frame));

            let mut bad_nonce = nonce;
            bad_nonce[len % 16] ^= 0x40;
            assert!(
                ours.open_in_place_detached(&bad_nonce, &mut ct.clone(), &tag)
                    .is_err()
            );

            if len > 0 {
                let mut flipped = ct.clone();
                flipped[len * 7 / 8] ^= 0x80;
                let mut buf = flipped.clone();
                assert_eq!(
                    ours.open_in_place_detached(&nonce, &mut buf, &tag),
                    Err(TagError)
                );
                assert_eq!(buf, flipped);
                assert!(!reference.open(&nonce, &[], &mut flipped.clone(), &tag));
                assert!(!ours.verifies(&[&nonce[..], &tag, &flipped].concat()));
                // One byte less or more is another message.
                assert!(!ours.verifies(&frame[..frame.len() - 1]));
            }
            assert!(!ours.verifies(&[&frame[..], &[0]].concat()));
        }
    }
}

/// Frames sealed side by side give, frame by frame, what the `eax` crate
/// gives: every count from 0 to a few past two groups of lanes, equal and
/// mixed lengths around the block boundaries, every key size. Bytes after
/// the frames are not touched, and a length past the end stops the run.
#[test]
fn seal_frames_matches_the_eax_crate() {
    let patterns: [fn(usize) -> usize; 4] = [
        |_| 0,
        |i| 64 + i % 2,
        |i| (i * 7) % 50,
        |i| [15, 16, 17, 31, 32, 33, 0, 1, 200][i % 9],
    ];
    for key in keys() {
        let ours = EaxKey::new(&key).unwrap();
        let reference = Reference::new(&key);
        for count in 0..=2 * eaxchat_proto::eax_key::LANES + 3 {
            for (p, pattern) in patterns.iter().enumerate() {
                let lens: Vec<usize> = (0..count).map(|i| pattern(i + count)).collect();
                let mut frames = Vec::new();
                let mut want = Vec::new();
                for (i, &len) in lens.iter().enumerate() {
                    let nonce: [u8; 16] = bytes(16, 1000 + i * 3 + p).try_into().unwrap();
                    let plaintext = bytes(len, i + len + p);
                    frames.extend_from_slice(&nonce);
                    frames.extend_from_slice(&[0xAA; 16]);
                    frames.extend_from_slice(&plaintext);
                    let mut ct = plaintext;
                    let tag = reference.seal(&nonce, &[], &mut ct);
                    want.extend_from_slice(&nonce);
                    want.extend_from_slice(&tag);
                    want.extend_from_slice(&ct);
                }
                frames.extend_from_slice(b"after");
                want.extend_from_slice(b"after");
                ours.seal_frames_in_place(&mut frames, &lens);
                assert_eq!(
                    frames,
                    want,
                    "{}-byte key, {count} frames, pattern {p}",
                    key.len()
                );
            }
        }
    }
    // A length that runs past the end: the frames before it are sealed,
    // the rest is left as it was.
    let ours = EaxKey::new(&keys()[0]).unwrap();
    let reference = Reference::new(&keys()[0]);
    let nonce = [7u8; 16];
    let mut frames = [&nonce[..], &[0; 16], b"first"].concat();
    frames.extend_from_slice(&[1; 40]);
    let before = frames.clone();
    ours.seal_frames_in_place(&mut frames, &[5, 100]);
    let mut ct = b"first".to_vec();
    let tag = reference.seal(&nonce, &[], &mut ct);
    assert_eq!(&frames[..37], &[&nonce[..], &tag, &ct].concat()[..]);
    assert_eq!(&frames[37..], &before[37..]);
}

/// `first_verifying` answers what `verifies` on each key in turn answers:
/// 21 keys of every size (two groups of lanes and a few), frames sealed
/// under each at lengths around the block boundaries, changed frames,
/// garbage, short frames, and a key listed twice (the first wins).
#[test]
fn first_verifying_is_verifies_on_each_key_in_turn() {
    let keys: Vec<EaxKey> = (0..21)
        .map(|i| EaxKey::new(&bytes([16, 24, 32][i % 3], 500 + i)).unwrap())
        .collect();
    let position = |frame: &[u8]| keys.iter().position(|key| key.verifies(frame));
    for (j, key) in keys.iter().enumerate() {
        for len in [0, 1, 15, 16, 17, 31, 32, 33, 64, 70, 300] {
            let nonce: [u8; 16] = bytes(16, j * 1000 + len).try_into().unwrap();
            let mut ct = bytes(len, j + len);
            let tag = key.seal_in_place_detached(&nonce, &mut ct);
            let frame = [&nonce[..], &tag, &ct].concat();
            assert_eq!(
                EaxKey::first_verifying(&keys, &frame),
                Some(j),
                "key {j}, {len} bytes"
            );
            assert_eq!(position(&frame), Some(j));
            for at in [0, 16, 31, frame.len() - 1] {
                let mut changed = frame.clone();
                changed[at] ^= 4;
                assert_eq!(EaxKey::first_verifying(&keys, &changed), position(&changed));
                assert_eq!(EaxKey::first_verifying(&keys, &changed), None);
            }
            assert_eq!(EaxKey::first_verifying(&keys[..j], &frame), None);
            let twice = [&keys[j], &keys[0], &keys[j]];
            assert_eq!(EaxKey::first_verifying(twice, &frame), Some(0));
        }
    }
    for garbage in [&b""[..], &[7; 31], &[7; 32], &[9; 100]] {
        assert_eq!(EaxKey::first_verifying(&keys, garbage), None);
    }
    assert_eq!(EaxKey::first_verifying(std::iter::empty(), &[0; 48]), None);
}

/// With a header (the general path), against the `eax` crate.
#[test]
fn matches_the_eax_crate_with_headers() {
    for key in keys() {
        let ours = EaxKey::new(&key).unwrap();
        let reference = Reference::new(&key);
        for header_len in [1, 15, 16, 17, 32, 33, 100] {
            let header = bytes(header_len, 9);
            for len in 0..=40 {
                let nonce: [u8; 16] = bytes(16, len + 100).try_into().unwrap();
                let plaintext = bytes(len, len);
                let mut ct = plaintext.clone();
                let tag = ours.seal_with_header(&nonce, &header, &mut ct);
                let mut their_ct = plaintext.clone();
                assert_eq!(tag, reference.seal(&nonce, &header, &mut their_ct));
                assert_eq!(ct, their_ct);
                let mut opened = ct.clone();
                assert!(
                    ours.open_with_header(&nonce, &header, &mut opened, &tag)
                        .is_ok()
                );
                assert_eq!(opened, plaintext);
                // Without its header, or with another, it does not open.
                assert!(
                    ours.open_in_place_detached(&nonce, &mut ct.clone(), &tag)
                        .is_err()
                );
                let other = &header[..header_len - 1];
                assert!(
                    ours.open_with_header(&nonce, other, &mut ct.clone(), &tag)
                        .is_err()
                );
            }
        }
    }
}

/// The CBC-MAC chain against `cmac` at every length and key size.
#[test]
fn cmac_matches_the_cmac_crate_at_every_length() {
    for key in keys() {
        let ours = EaxKey::new(&key).unwrap();
        let reference = Reference::new(&key);
        for len in lengths() {
            let data = bytes(len, len * 3);
            assert_eq!(
                ours.cmac(&data),
                reference.cmac(&data),
                "{}-byte key, length {len}",
                key.len()
            );
        }
    }
}

/// Only 16-, 24- and 32-byte keys are AES keys.
#[test]
fn other_key_lengths_are_refused() {
    for len in [0, 1, 15, 17, 23, 25, 31, 33, 64] {
        assert_eq!(
            EaxKey::new(&vec![7; len]).err(),
            Some(InvalidKeyLength { len })
        );
    }
}

// --- splitting joined frames ----------------------------------------------

/// The splitter's candidates: a frame without base64 padding is a multiple
/// of 3 bytes; the last frame of the data may be any length.
fn splitter_candidates(data_len: usize) -> impl Fn(usize) -> bool {
    move |len| len % 3 == 0 || len == data_len
}

/// Frames sealed under `key` with the given plaintext lengths, joined.
fn joined(ours: &EaxKey, plaintext_lens: &[usize], seed: usize) -> (Vec<u8>, Vec<usize>) {
    let mut data = Vec::new();
    let mut frame_lens = Vec::new();
    for (i, &len) in plaintext_lens.iter().enumerate() {
        let nonce: [u8; 16] = bytes(16, seed * 1000 + i).try_into().unwrap();
        let mut buf = bytes(len, seed + i);
        let tag = ours.seal_in_place_detached(&nonce, &mut buf);
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&tag);
        data.extend_from_slice(&buf);
        frame_lens.push(OVERHEAD + len);
    }
    (data, frame_lens)
}

/// Splits `data` frame by frame with `verified_prefix_len`, checking each
/// step against the reference, and returns the frame lengths found.
fn split(ours: &EaxKey, reference: &Reference, mut data: &[u8], all: bool) -> Vec<usize> {
    let mut found = Vec::new();
    while !data.is_empty() {
        let data_len = data.len();
        let candidate = splitter_candidates(data_len);
        let is_candidate = |len: usize| all || candidate(len);
        let mut asked = Vec::new();
        let got = ours.verified_prefix_len(data, |len| {
            assert!(
                (OVERHEAD..=data_len).contains(&len),
                "asked about {len} of {data_len}"
            );
            asked.push(len);
            is_candidate(len)
        });
        assert_eq!(got, reference.verified_prefix_len(data, is_candidate));
        assert!(
            asked.windows(2).all(|w| w[0] < w[1]),
            "candidates asked in order"
        );
        let Some(len) = got else { break };
        found.push(len);
        data = &data[len..];
    }
    found
}

/// Joined frames of many lengths split exactly where they were joined, for
/// both candidate filters, with and without garbage after them.
#[test]
fn verified_prefix_len_matches_the_reference() {
    let sets: [&[usize]; 6] = [
        &[0],
        &[1, 2, 3, 4, 5, 6],
        &[13, 16, 17, 31, 32, 33, 47, 48, 49],
        &[64, 0, 64, 100, 1, 7],
        &[200, 3, 250, 16, 15],
        &[400, 1000, 2],
    ];
    for key in keys() {
        let ours = EaxKey::new(&key).unwrap();
        let reference = Reference::new(&key);
        for (seed, plaintext_lens) in sets.iter().enumerate() {
            let (data, frame_lens) = joined(&ours, plaintext_lens, seed);
            // Padded frames (length not a multiple of 3) are only found by
            // the splitter's filter when they are last.
            let visible: Vec<usize> = frame_lens
                .iter()
                .take_while(|&&len| len % 3 == 0)
                .copied()
                .collect();
            for all in [true, false] {
                let found = split(&ours, &reference, &data, all);
                if all {
                    assert_eq!(found, frame_lens, "every frame, {plaintext_lens:?}");
                } else {
                    assert!(found.starts_with(&visible), "{found:?} {plaintext_lens:?}");
                }
                let mut garbage = data.clone();
                garbage.extend_from_slice(&bytes(45, seed));
                let found = split(&ours, &reference, &garbage, all);
                if all {
                    assert_eq!(found, frame_lens, "then garbage, {plaintext_lens:?}");
                }
            }
        }
    }
}

/// Garbage, other keys' frames and changed frames verify at no length.
#[test]
fn verified_prefix_len_finds_nothing_in_garbage() {
    let [key, other_key, _] = keys();
    let ours = EaxKey::new(&key).unwrap();
    let reference = Reference::new(&key);
    let other = EaxKey::new(&other_key).unwrap();
    for len in [0, 31, 32, 33, 48, 64, 65, 300] {
        let garbage = bytes(len, len);
        assert_eq!(ours.verified_prefix_len(&garbage, |_| true), None);
        assert_eq!(reference.verified_prefix_len(&garbage, |_| true), None);
    }
    let (data, _) = joined(&other, &[10, 20, 30], 1);
    assert_eq!(ours.verified_prefix_len(&data, |_| true), None);
    let (mut data, _) = joined(&ours, &[10, 20, 30], 1);
    assert_eq!(
        ours.verified_prefix_len(&data, |_| true),
        Some(OVERHEAD + 10)
    );
    data[OVERHEAD + 3] ^= 1;
    assert_eq!(
        ours.verified_prefix_len(&data, |_| true),
        reference.verified_prefix_len(&data, |_| true)
    );
    assert_ne!(
        ours.verified_prefix_len(&data, |_| true),
        Some(OVERHEAD + 10)
    );
    // A frame is found only at a length the filter allows.
    let (data, _) = joined(&ours, &[10], 2);
    assert_eq!(
        ours.verified_prefix_len(&data, |len| len != OVERHEAD + 10),
        None
    );
}

/// `TagScan` fed a frame's ciphertext in pieces of every size finds the
/// same end as `verified_prefix_len` over the whole, for every candidate
/// filter, key size and frame length, and checks at a piece's end too.
#[test]
fn tag_scan_in_pieces_matches_verified_prefix_len() {
    let sets: [&[usize]; 4] = [&[0, 5], &[1, 2, 3], &[15, 16, 17, 33], &[48, 100, 7]];
    for key in keys() {
        let ours = EaxKey::new(&key).unwrap();
        for (seed, plaintext_lens) in sets.iter().enumerate() {
            let (mut data, _) = joined(&ours, plaintext_lens, seed);
            data.extend_from_slice(&bytes(20, seed));
            for all in [true, false] {
                let candidate = splitter_candidates(data.len());
                let is_candidate = |len: usize| all || candidate(len);
                let want = ours.verified_prefix_len(&data, is_candidate);
                let nonce: [u8; 16] = data[..16].try_into().unwrap();
                let tag: [u8; 16] = data[16..OVERHEAD].try_into().unwrap();
                let ciphertext = &data[OVERHEAD..];
                for piece in [1, 2, 3, 5, 16, 17, 1000] {
                    let mut scan = ours.start_scan(&nonce, &tag);
                    let mut got =
                        (is_candidate(OVERHEAD) && scan.verifies(&ours)).then_some(OVERHEAD);
                    let mut fed = 0;
                    for chunk in ciphertext.chunks(piece) {
                        if got.is_some() {
                            break;
                        }
                        let base = OVERHEAD + fed;
                        got = scan
                            .feed_until_verified(&ours, chunk, |n| is_candidate(base + n))
                            .map(|n| base + n);
                        fed += chunk.len();
                        if got.is_none() && is_candidate(OVERHEAD + fed) {
                            assert!(!scan.verifies(&ours), "verifies where feeding did not");
                        }
                    }
                    assert_eq!(
                        got, want,
                        "{plaintext_lens:?}, pieces of {piece}, all {all}"
                    );
                    if let Some(len) = got {
                        let mut resumed = ours.start_scan(&nonce, &tag);
                        resumed.feed_until_verified(&ours, &data[OVERHEAD..len], |_| false);
                        assert!(resumed.verifies(&ours), "verifies where it was found");
                    }
                }
            }
        }
    }
}
