//! The shared-key and members relays' runs (`Seal::seal_joined` of a
//! `Cipher` and of a `KeySealer`: one read's messages laid out and sealed
//! side by side under the relay's random nonces) against the same
//! plaintexts sealed one at a time (`Seal::seal_into`) by a twin built from
//! the same nonce seed: the same lines, byte for byte, for every length from
//! 0 to 300 and every key size; and every line opens under the key.

use bytes::BytesMut;
use eaxchat_proto::cipher::{Cipher, KeySealer, Seal};
use eaxchat_proto::eax_key::EaxKey;
use eaxchat_proto::key::Key;
use eaxchat_proto::nonce::Nonces;

use super::bytes;

/// Runs of 1 to 40 messages whose lengths cover 0 to 300, `\n`-joined as
/// the relay holds a read's messages: (plaintexts, lens).
fn runs() -> Vec<(Vec<u8>, Vec<usize>)> {
    let mut runs = Vec::new();
    let mut covered = [false; 301];
    for seed in 0..12 {
        for count in [1, 2, 7, 15, 16, 17, 33, 40] {
            let lens: Vec<usize> = (0..count)
                .map(|i| (seed * 89 + count * 17 + i * 31) % 301)
                .collect();
            let mut plaintexts = Vec::new();
            for (i, &len) in lens.iter().enumerate() {
                plaintexts.extend_from_slice(&bytes(len, seed * 7 + i));
                plaintexts.push(b'\n');
                covered[len] = true;
            }
            runs.push((plaintexts, lens));
        }
    }
    let missing: Vec<usize> = (0..=300).filter(|&len| !covered[len]).collect();
    for len in missing {
        let mut plaintexts = bytes(len, len);
        plaintexts.push(b'\n');
        runs.push((plaintexts, vec![len]));
    }
    runs
}

/// What sealing `plaintexts` one message at a time with `seal` gives.
fn one_at_a_time(seal: &mut impl Seal, plaintexts: &[u8], lens: &[usize]) -> BytesMut {
    let mut out = BytesMut::new();
    let mut start = 0;
    for &len in lens {
        seal.seal_into(&plaintexts[start..start + len], &mut out);
        start += len + 1;
    }
    out
}

#[test]
fn a_shared_key_run_sealed_side_by_side_is_the_lines_sealed_one_at_a_time() {
    for key_len in [16, 24, 32] {
        let key = Key::from_bytes(&bytes(key_len, key_len)).unwrap();
        let seed = [7u8; 32];
        let mut joined = Cipher::with_nonce_seed(&key, seed);
        let mut single = Cipher::with_nonce_seed(&key, seed);
        let mut opener = Cipher::with_nonce_seed(&key, [9u8; 32]);
        for (plaintexts, lens) in runs() {
            let mut out = BytesMut::new();
            joined.seal_joined(&plaintexts, &lens, &mut out);
            assert_eq!(
                out,
                one_at_a_time(&mut single, &plaintexts, &lens),
                "key {key_len}, lens {lens:?}"
            );
            let mut start = 0;
            for (line, &len) in out[..].split(|&b| b == b'\n').zip(&lens) {
                assert_eq!(opener.open(line).unwrap(), &plaintexts[start..start + len]);
                start += len + 1;
            }
        }
    }
}

#[test]
fn a_members_run_sealed_side_by_side_is_the_lines_sealed_one_at_a_time() {
    for key_len in [16, 32] {
        let key = EaxKey::new(&bytes(key_len, 3 * key_len)).unwrap();
        let (mut nonces_a, mut nonces_b) = (Nonces::from_seed([5; 32]), Nonces::from_seed([5; 32]));
        let (mut frame_a, mut frame_b) = (Vec::new(), Vec::new());
        for (plaintexts, lens) in runs() {
            let mut out = BytesMut::new();
            KeySealer {
                key: &key,
                nonces: &mut nonces_a,
                frame: &mut frame_a,
            }
            .seal_joined(&plaintexts, &lens, &mut out);
            let mut single = KeySealer {
                key: &key,
                nonces: &mut nonces_b,
                frame: &mut frame_b,
            };
            assert_eq!(
                out,
                one_at_a_time(&mut single, &plaintexts, &lens),
                "key {key_len}, lens {lens:?}"
            );
        }
    }
}

#[test]
fn a_run_ends_at_a_length_past_the_plaintexts() {
    let key = Key::from_bytes(&bytes(32, 1)).unwrap();
    let mut joined = Cipher::with_nonce_seed(&key, [1; 32]);
    let mut single = Cipher::with_nonce_seed(&key, [1; 32]);
    let mut out = BytesMut::new();
    joined.seal_joined(b"one\ntwo\n", &[3, 3, 50], &mut out);
    assert_eq!(out, one_at_a_time(&mut single, b"one\ntwo\n", &[3, 3]));
}
