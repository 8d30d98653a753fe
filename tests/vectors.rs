//! Published AES-EAX test vectors through the library's cipher: the EAX
//! paper's, Wycheproof's (both editions), and frames PyCryptodome sealed.
//!
//! Every valid case must encrypt to its ciphertext and tag and decrypt back;
//! every invalid case must be rejected. Cases whose nonce is not 16 bytes
//! cannot be expressed in the wire format (the nonce is the frame's first 16
//! bytes) and are counted, so a vector file that changes shape is noticed.

// Test helpers may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use eaxchat::cipher::{Cipher, OpenError};
use eaxchat::key::Key;
use eaxchat::wire::{NONCE_LEN, TAG_LEN};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn hex(value: &Value) -> Vec<u8> {
    let text = value.as_str().unwrap();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn base64(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into_bytes()
}

/// One known-answer case.
struct Case {
    id: String,
    key: Vec<u8>,
    nonce: Vec<u8>,
    aad: Vec<u8>,
    msg: Vec<u8>,
    ct: Vec<u8>,
    tag: Vec<u8>,
    valid: bool,
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
        let opened = cipher.decrypt_detached(&nonce, &case.aad, &tag, &mut buf);
        if case.valid {
            tally.valid += 1;
            assert_eq!(opened, Ok(()), "{}: valid case rejected", case.id);
            assert_eq!(buf, case.msg, "{}: wrong plaintext", case.id);
            let mut sealed = case.msg.clone();
            let got_tag = cipher.encrypt_detached(&nonce, &case.aad, &mut sealed);
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
        if case.aad.is_empty() {
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

fn wycheproof(name: &str) -> Vec<Case> {
    let file = load(name);
    let mut cases = Vec::new();
    for group in file["testGroups"].as_array().unwrap() {
        for test in group["tests"].as_array().unwrap() {
            let result = test["result"].as_str().unwrap();
            cases.push(Case {
                id: format!("{name} tcId {}", test["tcId"]),
                key: hex(&test["key"]),
                nonce: hex(&test["iv"]),
                aad: hex(&test["aad"]),
                msg: hex(&test["msg"]),
                ct: hex(&test["ct"]),
                tag: hex(&test["tag"]),
                // "acceptable" cases in the legacy file are all short nonces.
                valid: result != "invalid",
            });
        }
    }
    cases
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
    let file = load("eax_paper_vectors.json");
    let cases = file["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, v)| Case {
            id: format!("paper #{i}"),
            key: hex(&v["key"]),
            nonce: hex(&v["nonce"]),
            aad: hex(&v["header"]),
            msg: hex(&v["msg"]),
            ct: hex(&v["ct"]),
            tag: hex(&v["tag"]),
            valid: true,
        });
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
