//! Published AES-EAX test vectors through the library's cipher: the EAX
//! paper's, Wycheproof's (both editions), and frames PyCryptodome sealed.
//!
//! Every valid case must encrypt to its ciphertext and tag and decrypt back;
//! every invalid case must be rejected. Cases whose nonce is not 16 bytes
//! cannot be expressed in the wire format (the nonce is the frame's first 16
//! bytes) and are counted, so a vector file that changes shape is noticed.

// Test helpers may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use crate::published::{Case, eax_paper, hex, load, wycheproof};
use bytes::BytesMut;
use eaxchat_proto::cipher::{Cipher, OpenError};
use eaxchat_proto::key::Key;
use eaxchat_proto::wire::{NONCE_LEN, TAG_LEN};

fn base64(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into_bytes()
}

/// What checking a set of cases found.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    valid: usize,
    invalid: usize,
    through_frames: usize,
    other_nonce_len: usize,
}

fn check(cases: impl IntoIterator<Item = Case>) -> Tally {
    let mut tally = Tally::default();
    for case in cases {
        let Ok(nonce) = <[u8; NONCE_LEN]>::try_from(&case.nonce[..]) else {
            tally.other_nonce_len += 1;
            continue;
        };
        let key = Key::from_bytes(&case.key).unwrap();
        let mut cipher = Cipher::new(&key).unwrap();
        let tag: [u8; TAG_LEN] = case.tag[..].try_into().unwrap();

        let mut buf = case.ct.clone();
        let opened = cipher.decrypt_detached(&nonce, &case.header, &tag, &mut buf);
        if case.valid {
            tally.valid += 1;
            assert_eq!(opened, Ok(()), "{}: valid case rejected", case.id);
            assert_eq!(buf, case.msg, "{}: wrong plaintext", case.id);
            let mut sealed = case.msg.clone();
            let got_tag = cipher.encrypt_detached(&nonce, &case.header, &mut sealed);
            assert_eq!(sealed, case.ct, "{}: wrong ciphertext", case.id);
            assert_eq!(&got_tag[..], &case.tag[..], "{}: wrong tag", case.id);
        } else {
            tally.invalid += 1;
            assert_eq!(
                opened,
                Err(OpenError::BadTag),
                "{}: invalid case accepted",
                case.id
            );
        }

        // Without associated data the case is also a wire frame.
        if case.header.is_empty() {
            tally.through_frames += 1;
            let frame = [&case.nonce[..], &case.tag, &case.ct].concat();
            let line = base64(&frame);
            match cipher.open(&line) {
                Ok(plaintext) => {
                    assert!(case.valid, "{}: invalid frame opened", case.id);
                    assert_eq!(plaintext, &case.msg[..], "{}", case.id);
                }
                Err(error) => {
                    assert!(!case.valid, "{}: valid frame rejected: {error}", case.id);
                    assert_eq!(error, OpenError::BadTag, "{}", case.id);
                }
            }
        }
    }
    tally
}

/// Wycheproof's current edition: 240 cases, 186 with 16-byte nonces.
#[test]
fn wycheproof_v1_vectors() {
    let tally = check(wycheproof("wycheproof_aes_eax_test.v1.json"));
    assert_eq!(
        tally,
        Tally {
            valid: 105,
            invalid: 81,
            through_frames: 128,
            other_nonce_len: 54,
        }
    );
}

/// Wycheproof's legacy edition: 171 cases.
#[test]
fn wycheproof_legacy_vectors() {
    let tally = check(wycheproof("wycheproof_aes_eax_test.legacy.json"));
    assert_eq!(tally.valid + tally.invalid + tally.other_nonce_len, 171);
    assert_eq!(tally.invalid, 81);
    assert!(tally.valid > 0 && tally.through_frames > 0);
}

/// The ten vectors from the EAX paper's appendix.
#[test]
fn eax_paper_vectors() {
    let cases = eax_paper();
    let tally = check(cases);
    assert_eq!(tally.valid, 10);
}

/// Frames sealed by PyCryptodome open to their plaintext, and the relay step
/// reseals them into frames that open the same.
#[test]
fn pycryptodome_frames_open() {
    let file = load("pycryptodome_frames.json");
    let frames = file["frames"].as_array().unwrap();
    assert!(!frames.is_empty());
    for frame in frames {
        let key = Key::from_bytes(&hex(&frame["key"])).unwrap();
        let mut cipher = Cipher::new(&key).unwrap();
        let line = frame["line"].as_str().unwrap().as_bytes();
        let line = line.strip_suffix(b"\n").unwrap();
        let want = hex(&frame["plaintext_hex"]);
        assert_eq!(cipher.open(line).unwrap(), &want[..]);

        let mut resealed = BytesMut::new();
        cipher.reseal_into(line, &mut resealed).unwrap();
        assert_eq!(resealed.len(), line.len() + 1);
        assert_ne!(&resealed[..line.len()], line, "fresh nonce");
        assert_eq!(cipher.open(&resealed[..line.len()]).unwrap(), &want[..]);
    }
}
