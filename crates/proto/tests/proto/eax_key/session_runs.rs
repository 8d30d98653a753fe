//! A session's runs of frames sealed side by side (`Sealer::seal_joined`,
//! what the relay's fan-out uses) against the `eax` crate with the
//! session's counter nonces and against `Sealer::seal_into` one frame at a
//! time, in one counter sequence; and the wire's lines of a run
//! (`wire::encode_lines`) against the `base64` crate's encoder, line by
//! line.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::BytesMut;
use eaxchat_proto::session::{Established, Initiator, Responder, StaticSecret, counter_nonce};
use eaxchat_proto::wire::{self, OVERHEAD};

use super::{Reference, bytes};

/// A finished handshake: (client side, relay side).
fn session() -> (Established, Established) {
    let client = StaticSecret::generate().unwrap();
    let relay = StaticSecret::generate().unwrap();
    let (initiator, hello) = Initiator::start(&client, relay.public_key(), b"").unwrap();
    let responder = Responder::read_hello(&relay, &hello).unwrap();
    let (welcome, at_relay) = responder.accept("alice").unwrap();
    (initiator.finish(&welcome).unwrap(), at_relay)
}

/// The relay → client line of plaintext `plain` under counter `counter`,
/// from the `eax` crate and the `base64` crate alone.
fn reference_line(reference: &Reference, counter: u64, plain: &[u8]) -> Vec<u8> {
    let nonce = counter_nonce(counter);
    let mut ct = plain.to_vec();
    let tag = reference.seal(&nonce, &[], &mut ct);
    let mut line = STANDARD
        .encode([&nonce[..], &tag, &ct].concat())
        .into_bytes();
    line.push(b'\n');
    line
}

/// Plaintexts of lengths `lens`, `\n`-joined as the relay holds a read's
/// messages.
fn joined(lens: &[usize], seed: usize) -> Vec<u8> {
    let mut plaintexts = Vec::new();
    for (i, &len) in lens.iter().enumerate() {
        plaintexts.extend_from_slice(&bytes(len, seed * 31 + i));
        plaintexts.push(b'\n');
    }
    plaintexts
}

/// Runs of 1 to 20 frames, their lengths covering every length from 0 to
/// 300, sealed side by side with one frame sealed one at a time between
/// runs: every line is the `eax` crate's under the next counter, and the
/// client opens them all, in order.
#[test]
fn a_run_sealed_side_by_side_is_the_frames_sealed_one_at_a_time() {
    let (mut at_client, at_relay) = session();
    let reference = Reference::new(at_relay.keys.relay_to_client());
    let (mut sealer, _) = at_relay.session.into_parts();
    let mut scratch = Vec::new();
    let mut counter = 0u64;
    let mut covered = [false; 301];
    for seed in 0..16 {
        for count in 1..=20 {
            let lens: Vec<usize> = (0..count)
                .map(|i| (seed * 97 + count * 13 + i * 29) % 301)
                .collect();
            let plaintexts = joined(&lens, seed + count);
            let mut out = BytesMut::new();
            sealer
                .seal_joined(&plaintexts, &lens, &mut scratch, &mut out)
                .unwrap();
            let mut want = Vec::new();
            let mut start = 0;
            for &len in &lens {
                want.extend(reference_line(
                    &reference,
                    counter,
                    &plaintexts[start..start + len],
                ));
                covered[len] = true;
                counter += 1;
                start += len + 1;
            }
            assert_eq!(&out[..], &want[..], "run of {count}: {lens:?}");
            let mut start = 0;
            for (line, &len) in out[..].split(|&b| b == b'\n').zip(&lens) {
                let plain = &plaintexts[start..start + len];
                assert_eq!(at_client.session.open(line).unwrap(), plain);
                start += len + 1;
            }
            // One at a time, between runs: the next counter, the same key.
            let single = bytes(seed * 20 + count, count);
            let mut one = BytesMut::new();
            sealer.seal_into(&single, &mut scratch, &mut one).unwrap();
            assert_eq!(&one[..], &reference_line(&reference, counter, &single)[..]);
            assert_eq!(
                at_client.session.open(&one[..one.len() - 1]).unwrap(),
                single
            );
            counter += 1;
        }
    }
    assert_eq!(sealer.sealed(), counter);
    assert!(covered.iter().all(|&c| c), "every length from 0 to 300");
}

/// A run whose last length runs past the plaintexts stops there, and an
/// empty run seals nothing and uses no counter.
#[test]
fn a_run_stops_at_the_end_of_its_plaintexts() {
    let (mut at_client, at_relay) = session();
    let reference = Reference::new(at_relay.keys.relay_to_client());
    let (mut sealer, _) = at_relay.session.into_parts();
    let mut scratch = Vec::new();
    let mut out = BytesMut::new();
    sealer
        .seal_joined(b"", &[], &mut scratch, &mut out)
        .unwrap();
    assert!(out.is_empty());
    assert_eq!(sealer.sealed(), 0);
    sealer
        .seal_joined(b"one\ntwo\n", &[3, 3, 50], &mut scratch, &mut out)
        .unwrap();
    let want = [
        reference_line(&reference, 0, b"one"),
        reference_line(&reference, 1, b"two"),
    ]
    .concat();
    assert_eq!(&out[..], &want[..]);
    assert_eq!(sealer.sealed(), 2);
    for (line, text) in out[..].split(|&b| b == b'\n').zip([b"one", b"two"]) {
        assert_eq!(at_client.session.open(line).unwrap(), text);
    }
}

/// The lines of a run are the `base64` crate's encoding of each frame, a
/// line each: every body length from 0 to 300 (every padding, every tail
/// a SIMD encoder handles apart), in runs of 1 to 20, appended after what
/// `out` already held.
#[test]
fn encode_lines_is_the_base64_crate_line_by_line() {
    let mut covered = [false; 301];
    for seed in 0..16 {
        for count in 1..=20 {
            let lens: Vec<usize> = (0..count)
                .map(|i| (seed * 53 + count * 7 + i * 41) % 301)
                .collect();
            let frames: Vec<u8> = lens
                .iter()
                .enumerate()
                .flat_map(|(i, &len)| bytes(OVERHEAD + len, seed + i))
                .collect();
            let mut out = BytesMut::from(&b"held\n"[..]);
            wire::encode_lines(&frames, &lens, &mut out);
            let mut want = b"held\n".to_vec();
            let mut at = 0;
            for &len in &lens {
                want.extend(STANDARD.encode(&frames[at..at + OVERHEAD + len]).bytes());
                want.push(b'\n');
                at += OVERHEAD + len;
                covered[len] = true;
            }
            assert_eq!(&out[..], &want[..], "{lens:?}");
            let mut one_by_one = BytesMut::from(&b"held\n"[..]);
            let mut at = 0;
            for &len in &lens {
                wire::encode_line(&frames[at..at + OVERHEAD + len], &mut one_by_one);
                at += OVERHEAD + len;
            }
            assert_eq!(out, one_by_one);
        }
    }
    assert!(covered.iter().all(|&c| c), "every length from 0 to 300");
    // Long bodies, whose lines take many SIMD steps.
    let lens = [717, 718, 719, 2000, 5, 16384];
    let frames: Vec<u8> = lens
        .iter()
        .enumerate()
        .flat_map(|(i, &len)| bytes(OVERHEAD + len, i))
        .collect();
    let mut out = BytesMut::new();
    wire::encode_lines(&frames, &lens, &mut out);
    let mut want = Vec::new();
    let mut at = 0;
    for &len in &lens {
        want.extend(STANDARD.encode(&frames[at..at + OVERHEAD + len]).bytes());
        want.push(b'\n');
        at += OVERHEAD + len;
    }
    assert_eq!(&out[..], &want[..]);
    // A length past the end of the frames stops the run there.
    let frames = bytes(OVERHEAD + 5, 1);
    let mut out = BytesMut::new();
    wire::encode_lines(&frames, &[5, 1], &mut out);
    let mut want = STANDARD.encode(&frames).into_bytes();
    want.push(b'\n');
    assert_eq!(&out[..], &want[..]);
}

/// Segments of a run whose frames, all but the last, are a multiple of 3
/// bytes long are encoded in one call and then split into lines
/// (`wire::encode_lines`'s segments): still the `base64` crate's encoding,
/// a line each, for every last length (every padding), runs of 2 to 40 in
/// one segment or split in the middle, and bodies long enough for many
/// SIMD steps.
#[test]
fn encode_lines_of_a_whole_run_is_the_base64_crate_line_by_line() {
    for first in [1, 4, 37, 70, 301, 2002] {
        assert!((OVERHEAD + first).is_multiple_of(3));
        for count in [2, 3, 16, 40] {
            for last in 0..9 {
                let mut lens: Vec<usize> = (0..count - 1).map(|i| first + 3 * (i % 4)).collect();
                lens.push(first + last);
                if last % 2 == 1 {
                    // A frame in the middle ends a segment there.
                    lens[count / 2] += last;
                }
                let frames: Vec<u8> = lens
                    .iter()
                    .enumerate()
                    .flat_map(|(i, &len)| bytes(OVERHEAD + len, count + i))
                    .collect();
                let mut out = BytesMut::from(&b"held\n"[..]);
                wire::encode_lines(&frames, &lens, &mut out);
                let mut want = b"held\n".to_vec();
                let mut at = 0;
                for &len in &lens {
                    want.extend(STANDARD.encode(&frames[at..at + OVERHEAD + len]).bytes());
                    want.push(b'\n');
                    at += OVERHEAD + len;
                }
                assert_eq!(&out[..], &want[..], "{lens:?}");
            }
        }
    }
}
