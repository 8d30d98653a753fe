//! Fuzz target `decrypt`: whatever a peer sends as one line goes through the
//! relay's open path (base64 decode, length checks, EAX verify, decrypt)
//! under the fixed key 00 01 .. 0f, the key of the PyCryptodome seeds.
//!
//! Nothing may panic. A line that opens must round-trip: resealing it (the
//! relay's step) and sealing its plaintext again both give lines that open
//! to the same plaintext. Because a random line essentially never opens, the
//! input is also read a second way: a header, a plaintext to seal, and bytes
//! to splice into the sealed line. A line changed in any way must not open;
//! an unchanged one must. That reading seals under a key of its own, made
//! from the plaintext (SHA-256): under the fixed key the fuzzer can write
//! out a genuine frame it saw (a seed, or one sealed in an earlier run with
//! the same nonces), and an hour's run did (`seed-crash-0c586fb4…`). Under
//! the plaintext's key, the one line ever sealed with that nonce seed is
//! the line itself, so a changed line that opens is a forgery.
//!
//! A third reading covers the split of joined newline-less frames
//! ([`eaxchat_proto::seed::Splitter`]): frames of the lengths the input names,
//! joined, maybe changed at one byte, followed by the input's tail, cut into
//! reads of the input's size. The splitter must find exactly the frames a
//! reference split finds: from each frame's start, the first end (a whole
//! number of quads) at which `Cipher::open` opens.

#![no_main]

use bytes::BytesMut;
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::Key;
use eaxchat_proto::seed::{Splitter, Step};
use eaxchat_proto::wire::encoded_len;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fuzz_target!(|data: &[u8]| {
    let key = Key::from_bytes(&KEY).expect("a 16-byte key");
    // A fixed nonce seed keeps every run of one input identical.
    let mut cipher = Cipher::with_nonce_seed(&key, [7; 32]);
    check_line(&mut cipher, data);
    check_tampered(data);
    check_split(&mut cipher, data);
});

/// Joined frames split as the relay splits them, against the reference.
fn check_split(cipher: &mut Cipher, data: &[u8]) {
    let [count, read_size, change, rest @ ..] = data else {
        return;
    };
    let count = usize::from(*count % 8);
    let (lens, tail) = rest.split_at(count.min(rest.len()));
    let mut stream = BytesMut::new();
    for &len in lens {
        // Lengths around the first blocks, padded and unpadded.
        let plaintext = vec![b'p'; usize::from(len) % 80];
        cipher.seal_into(&plaintext, &mut stream);
        stream.truncate(stream.len() - 1);
    }
    let mut stream = stream.to_vec();
    if *change != 0 && !stream.is_empty() {
        let at = usize::from(*change) * 7 % stream.len();
        stream[at] = if stream[at] == b'A' { b'B' } else { b'A' };
    }
    stream.extend_from_slice(tail);

    let mut found = Vec::new();
    let mut splitter = Splitter::default();
    let mut buf = Vec::new();
    for read in stream.chunks(1 + usize::from(*read_size)) {
        buf.extend_from_slice(read);
        while let Step::Frame(len) = splitter.next_frame(cipher.eax_key(), &buf) {
            let frame: Vec<u8> = buf.drain(..len).collect();
            assert!(cipher.open(&frame).is_ok(), "a frame found does not open");
            found.push(frame);
        }
    }
    assert_eq!(found, reference_split(cipher, &stream), "frames found");
}

/// From each frame's start, the shortest run of whole quads that opens.
fn reference_split(cipher: &mut Cipher, stream: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut start = 0;
    'frames: loop {
        let mut end = start + 4;
        while end <= stream.len() {
            if cipher.open(&stream[start..end]).is_ok() {
                frames.push(stream[start..end].to_vec());
                start = end;
                continue 'frames;
            }
            end += 4;
        }
        return frames;
    }
}

/// Opens `line` as the relay does (open, and reseal); returns the plaintext
/// if it opened, after checking both round trips.
fn check_line(cipher: &mut Cipher, line: &[u8]) -> Option<Vec<u8>> {
    let opened = cipher.open(line).map(|plaintext| plaintext.to_vec());
    let mut resealed = BytesMut::new();
    let reseal = cipher.reseal_into(line, &mut resealed);
    assert_eq!(opened.as_ref().err(), reseal.err().as_ref());
    let Ok(plaintext) = opened else {
        assert!(resealed.is_empty(), "a failed reseal appended bytes");
        return None;
    };
    // Only canonical padded base64 opens, so the line is exactly as long as
    // its plaintext's encoding, and so is the resealed line.
    assert_eq!(line.len(), encoded_len(plaintext.len()));
    assert_eq!(resealed.len(), line.len() + 1);
    assert_eq!(resealed.last(), Some(&b'\n'));
    let reopened = cipher.open(&resealed[..line.len()]).map(|p| p.to_vec());
    assert_eq!(reopened.as_deref(), Ok(&plaintext[..]));

    let mut sealed = BytesMut::new();
    cipher.seal_into(&plaintext, &mut sealed);
    assert_eq!(sealed.len(), line.len() + 1);
    let reopened = cipher.open(&sealed[..line.len()]).map(|p| p.to_vec());
    assert_eq!(reopened.as_deref(), Ok(&plaintext[..]));
    Some(plaintext)
}

/// Input read as `[op, at, plaintext_len, plaintext.., patch..]`: seals the
/// plaintext, changes the sealed line by `op` with `patch` at `at`, and
/// opens the result.
fn check_tampered(data: &[u8]) {
    let [op, at, plaintext_len, rest @ ..] = data else {
        return;
    };
    let (plaintext, patch) = rest.split_at(usize::from(*plaintext_len).min(rest.len()));
    let digest = Sha256::digest(plaintext);
    let key = Key::from_bytes(&digest[..16]).expect("a 16-byte key");
    let cipher = &mut Cipher::with_nonce_seed(&key, [7; 32]);
    let mut sealed = BytesMut::new();
    cipher.seal_into(plaintext, &mut sealed);
    let line = &sealed[..sealed.len() - 1];
    let at = usize::from(*at) % (line.len() + 1);

    let mut changed = line.to_vec();
    match op % 5 {
        0 => {}
        1 => changed.truncate(at),
        2 => {
            let end = (at + patch.len()).min(line.len());
            changed[at..end].copy_from_slice(&patch[..end - at]);
        }
        3 => {
            changed.splice(at..at, patch.iter().copied());
        }
        _ => changed.extend_from_slice(patch),
    }
    let opened = check_line(cipher, &changed);
    if changed == line {
        assert_eq!(
            opened.as_deref(),
            Some(plaintext),
            "a sealed line must open"
        );
    } else {
        assert_eq!(opened, None, "a changed line opened: {changed:?}");
    }
}
