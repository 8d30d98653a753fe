//! Frames opened side by side (`open_frames_in_place`) against the `eax`
//! crate: every run of sealed frames opens to the crate's plaintexts, and a
//! run with one frame spoiled opens exactly the frames before it and leaves
//! that frame and every later one as they were.

use eaxchat_proto::eax_key::{EaxKey, SEAL_LANES, WIDE_LANES};
use eaxchat_proto::wire::{NONCE_LEN, OVERHEAD};

use super::{Reference, bytes, keys, run_counts};

/// Lengths of ciphertext the runs use: empty, around the block
/// boundaries, some long enough to run their own CTR (over 64 blocks), and
/// the relay's own (64-byte messages and a stamp).
const PATTERNS: [fn(usize) -> usize; 6] = [
    |_| 0,
    |i| 64 + i % 7,
    |i| (i * 7) % 50,
    |i| [15, 16, 17, 31, 32, 33, 0, 1, 200][i % 9],
    |i| 113 + i % 15,
    |i| [100, 130, 1025, 127, 128, 129, 500, 1024, 1040][i % 9],
];

/// A run of frames sealed by the `eax` crate, laid end to end, and their
/// plaintexts laid out the same way (nonce and tag in place).
fn sealed_run(reference: &Reference, lens: &[usize], seed: usize) -> (Vec<u8>, Vec<u8>) {
    let (mut frames, mut plain) = (Vec::new(), Vec::new());
    for (i, &len) in lens.iter().enumerate() {
        let nonce: [u8; 16] = bytes(16, 3000 + i * 5 + seed).try_into().unwrap();
        let plaintext = bytes(len, i * 11 + len + seed);
        let mut ct = plaintext.clone();
        let tag = reference.seal(&nonce, &[], &mut ct);
        frames.extend_from_slice(&nonce);
        frames.extend_from_slice(&tag);
        frames.extend_from_slice(&ct);
        plain.extend_from_slice(&nonce);
        plain.extend_from_slice(&tag);
        plain.extend_from_slice(&plaintext);
    }
    (frames, plain)
}

/// Every count of `run_counts` (narrow and wide groups), every pattern,
/// every key size: all frames open, to the `eax` crate's plaintexts, and
/// bytes after the run are not touched.
#[test]
fn open_frames_matches_the_eax_crate() {
    for key in keys() {
        let ours = EaxKey::new(&key).unwrap();
        let reference = Reference::new(&key);
        for count in run_counts() {
            for (p, pattern) in PATTERNS.iter().enumerate() {
                let lens: Vec<usize> = (0..count).map(|i| pattern(i + count)).collect();
                let (mut frames, mut want) = sealed_run(&reference, &lens, p);
                frames.extend_from_slice(b"after");
                want.extend_from_slice(b"after");
                let opened = ours.open_frames_in_place(&mut frames, &lens);
                let what = format!("{}-byte key, {count} frames, pattern {p}", key.len());
                assert_eq!(opened, count, "{what}");
                assert_eq!(frames, want, "{what}");
            }
        }
    }
}

/// One frame of a run spoiled (a byte of its nonce, its tag, its first or
/// its last ciphertext byte changed), at every place in runs longer than
/// a group: the frames before it open, it and every frame after it are
/// left as they were.
#[test]
fn open_frames_stops_at_the_first_frame_that_does_not_verify() {
    for key in keys() {
        let ours = EaxKey::new(&key).unwrap();
        let reference = Reference::new(&key);
        for (p, pattern) in PATTERNS.iter().enumerate().take(5) {
            // A narrow run for every pattern, a wide one for the second
            // (64 to 70 bytes, lengths of stamped texts).
            let count = if p == 1 {
                WIDE_LANES + 5
            } else {
                SEAL_LANES + 5
            };
            let lens: Vec<usize> = (0..count).map(|i| pattern(i + 3)).collect();
            let (frames, plain) = sealed_run(&reference, &lens, p);
            let starts: Vec<usize> = lens
                .iter()
                .scan(0, |at, &len| {
                    let start = *at;
                    *at += OVERHEAD + len;
                    Some(start)
                })
                .collect();
            for bad in 0..count {
                let start = starts[bad];
                let mut places = vec![start + 2, start + NONCE_LEN + 5];
                if lens[bad] > 0 {
                    places.extend([start + OVERHEAD, start + OVERHEAD + lens[bad] - 1]);
                }
                for place in places {
                    let mut spoiled = frames.clone();
                    spoiled[place] ^= 0x20;
                    let before = spoiled.clone();
                    let opened = ours.open_frames_in_place(&mut spoiled, &lens);
                    let what = format!(
                        "{}-byte key, pattern {p}, frame {bad} byte {place}",
                        key.len()
                    );
                    assert_eq!(opened, bad, "{what}");
                    assert_eq!(
                        spoiled[..start],
                        plain[..start],
                        "{what}: the frames before"
                    );
                    assert_eq!(spoiled[start..], before[start..], "{what}: it and the rest");
                }
            }
        }
    }
}

/// A length that runs past the end of the bytes counts as not verifying:
/// the frames before it open, the rest is left as it was.
#[test]
fn open_frames_stops_at_a_length_past_the_end() {
    let key = keys().into_iter().next().unwrap();
    let ours = EaxKey::new(&key).unwrap();
    let reference = Reference::new(&key);
    let lens = [10, 20, 30];
    let (mut frames, plain) = sealed_run(&reference, &lens, 9);
    let cut = frames.len() - 1;
    frames.truncate(cut);
    let before = frames.clone();
    let opened = ours.open_frames_in_place(&mut frames, &lens);
    assert_eq!(opened, 2);
    let third = 2 * OVERHEAD + 30;
    assert_eq!(frames[..third], plain[..third]);
    assert_eq!(frames[third..], before[third..]);
}
