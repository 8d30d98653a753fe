//! The original notebook client over real sockets: joined newline-less
//! frames are split and relayed once each, in order; a seed receiver gets a
//! burst as frames written one at a time, each whole in one read.

use eaxchat_test_support as util;

use std::io::Read;
use std::time::{Duration, Instant};

use eaxchat_proto::cipher::Cipher;
use util::{RelayProcess, TestClient, WAIT};

/// Waits (bounded) until the relay logs `count` connections.
fn wait_connected(relay: &mut RelayProcess, count: usize) {
    relay.wait_for_log_count("connected from", count);
}

/// A frame as the seed client sends it: no `\n`.
fn bare(client: &mut TestClient, plaintext: &[u8]) -> Vec<u8> {
    let line = client.seal(plaintext);
    line[..line.len() - 1].to_vec()
}

fn message(i: usize, len: usize) -> Vec<u8> {
    let mut text = format!("m{i}|").into_bytes();
    text.resize(len.max(text.len()), b'x');
    text.truncate(len);
    text
}

/// Joined newline-less frames of many lengths (padded and unpadded), in
/// one write and cut over many writes, reach a newline client once each,
/// in order.
#[test]
fn joined_newline_less_frames_are_split_and_relayed_in_order() {
    let mut relay = RelayProcess::start(&[]);
    let mut seed = relay.connect();
    let mut reader = relay.connect();
    wait_connected(&mut relay, 2);
    let lens: Vec<usize> = (0..40).chain([100, 101, 1000, 1001, 3037, 4096]).collect();
    let sent: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| message(i, len))
        .collect();
    let joined: Vec<u8> = sent.iter().flat_map(|text| bare(&mut seed, text)).collect();
    seed.send_raw(&joined);
    for text in &sent {
        assert_eq!(&reader.recv(), text);
    }
    for cut in [1usize, 7, 45, 1000] {
        let joined: Vec<u8> = sent.iter().flat_map(|text| bare(&mut seed, text)).collect();
        for piece in joined.chunks(cut) {
            seed.send_raw(piece);
        }
        for text in &sent {
            assert_eq!(&reader.recv(), text, "cut every {cut} bytes");
        }
    }
    reader.expect_silence(Duration::from_millis(100));
    assert!(!relay.log().contains("closed:"), "{}", relay.log());
}

/// Once it has sent a newline-less frame, a connection gets a burst as
/// joined messages, one frame per read: every read is exactly whole frames
/// of at most 4096 bytes, and every message arrives once, in order.
#[test]
fn a_seed_receiver_gets_a_burst_one_frame_per_read() {
    let mut relay = RelayProcess::start(&["--seed-write-gap-ms", "20"]);
    let mut seed = relay.connect();
    let mut sender = relay.connect();
    wait_connected(&mut relay, 2);
    let hello = bare(&mut seed, b"hello");
    seed.send_raw(&hello);
    assert_eq!(sender.recv(), b"hello");

    let sent: Vec<Vec<u8>> = (0..200)
        .map(|i| message(i, [5, 300, 3037][i % 3]))
        .collect();
    let burst: Vec<u8> = sent.iter().flat_map(|text| sender.seal(text)).collect();
    sender.send_raw(&burst);

    let mut cipher = Cipher::new(&relay.key).expect("cipher");
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut reads = 0;
    let deadline = Instant::now() + WAIT;
    while got.len() < sent.len() && Instant::now() < deadline {
        let mut buf = [0u8; 4096];
        let n = seed
            .stream
            .read(&mut buf)
            .expect("a read within the timeout");
        assert!(n > 0, "the relay closed the seed receiver");
        reads += 1;
        // One whole frame per read (the test reads promptly).
        let read = &buf[..n];
        assert_eq!(
            read.iter().filter(|&&b| b == b'\n').count(),
            1,
            "read {reads}"
        );
        let plaintext = cipher.open(&read[..n - 1]).expect("a whole frame");
        got.extend(plaintext.split(|&b| b == b'\n').map(<[u8]>::to_vec));
    }
    assert_eq!(got, sent);
    assert!(reads < sent.len(), "messages were joined: {reads} reads");
}
