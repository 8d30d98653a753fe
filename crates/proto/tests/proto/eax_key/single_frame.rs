//! One frame at a time: the published vectors through both
//! implementations, then seal, open, verify and CMAC against the `eax` and
//! `cmac` crates at every length and key size, with and without a header.

use crate::published::{Case, eax_paper, wycheproof};
use eaxchat_proto::eax_key::{EaxKey, InvalidKeyLength, TagError};

use super::{Reference, bytes, hex, keys, lengths};

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
