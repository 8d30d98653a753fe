//! Many frames, or many keys, at once: frames sealed side by side against
//! the `eax` crate, the first of many keys that verifies a frame against
//! `verifies` on each in turn, and joined frames split where they end
//! (`verified_prefix_len`, `TagScan`) against trying every length.

use eaxchat_proto::eax_key::{EaxKey, WIDE_LANES};
use eaxchat_proto::wire::OVERHEAD;

use super::{Reference, bytes, keys, run_counts};

/// Frames sealed side by side give, frame by frame, what the `eax` crate
/// gives: every count of `run_counts` (narrow and wide groups), equal and
/// mixed lengths around the block boundaries, every key size. Bytes after
/// the frames are not touched, and a length past the end stops the run.
/// The longer patterns fill a group's keystream buffer (128 blocks) past
/// its end, so that it is used in two goes, and give some frames more
/// than 64 blocks, which run their own CTR.
#[test]
fn seal_frames_matches_the_eax_crate() {
    let patterns: [fn(usize) -> usize; 6] = [
        |_| 0,
        |i| 64 + i % 2,
        |i| (i * 7) % 50,
        |i| [15, 16, 17, 31, 32, 33, 0, 1, 200][i % 9],
        |i| 113 + i % 15,
        |i| [100, 130, 1025, 127, 128, 129, 500, 1024, 1040][i % 9],
    ];
    for key in keys() {
        let ours = EaxKey::new(&key).unwrap();
        let reference = Reference::new(&key);
        for count in run_counts() {
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
    // The same inside a wide group: a run of WIDE_LANES frames whose 41st
    // length runs past the end seals the 40 before it, and no more.
    let lens: Vec<usize> = (0..WIDE_LANES)
        .map(|i| if i == 40 { 1000 } else { 70 })
        .collect();
    let mut frames = Vec::new();
    let mut want = Vec::new();
    for i in 0..40 {
        let nonce = [i as u8; 16];
        let mut ct = bytes(70, i);
        frames.extend_from_slice(&[&nonce[..], &[0; 16], &ct].concat());
        let tag = reference.seal(&nonce, &[], &mut ct);
        want.extend_from_slice(&[&nonce[..], &tag, &ct].concat());
    }
    let tail = bytes(OVERHEAD + 500, 99);
    frames.extend_from_slice(&tail);
    want.extend_from_slice(&tail);
    ours.seal_frames_in_place(&mut frames, &lens);
    assert_eq!(frames, want);
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
