//! What the fuzz targets (fuzz/) found, kept as ordinary tests so it stays
//! fixed on the stable toolchain, plus the `decrypt` seeds replayed through
//! the open path so the checked-in corpus keeps meaning what it says.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use bytes::BytesMut;
use eaxchat_core::relay::{CloseReason, ConnId, Limits, Relay};
use eaxchat_proto::cipher::{Cipher, OpenError};
use eaxchat_proto::key::Key;
use eaxchat_proto::lines::LineReader;
use eaxchat_proto::wire::encoded_len;

/// The key of the fuzz targets and of the PyCryptodome vectors.
fn key() -> Key {
    Key::from_hex("000102030405060708090a0b0c0d0e0f").expect("a valid key")
}

/// A sealed line without its `\n`, under a nonce of its own: the relay
/// refuses a nonce it has accepted before, so each call seeds its cipher
/// afresh (deterministically: the calls are counted).
fn seal(plaintext: &[u8]) -> Vec<u8> {
    static SEALS: AtomicU64 = AtomicU64::new(0);
    let mut seed = [2; 32];
    seed[..8].copy_from_slice(&SEALS.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let mut line = BytesMut::new();
    Cipher::with_nonce_seed(&key(), seed).seal_into(plaintext, &mut line);
    line.truncate(line.len() - 1);
    line.to_vec()
}

/// A relay over in-memory writers, with a listener and a sender connected.
fn relay_with_two() -> (Relay<Vec<u8>>, ConnId, ConnId) {
    let mut relay = Relay::new(
        Cipher::with_nonce_seed(&key(), [1; 32]),
        Limits::default(),
        Instant::now(),
        SystemTime::now(),
    );
    let listener = relay.admit(Vec::new()).expect("room for two");
    let sender = relay.admit(Vec::new()).expect("room for two");
    (relay, listener, sender)
}

/// Writes out what is queued and returns the plaintexts `id` received and
/// the connections that are closing.
fn settle(relay: &mut Relay<Vec<u8>>, id: ConnId) -> (Vec<Vec<u8>>, Vec<ConnId>) {
    while let Some(waiting) = relay.next_waiting() {
        relay.flush(waiting);
    }
    let mut ids = Vec::new();
    relay.take_closing(&mut ids);
    let mut cipher = Cipher::with_nonce_seed(&key(), [3; 32]);
    let received = relay
        .peer(id)
        .expect("a connection")
        .io
        .split(|&b| b == b'\n');
    let opened = received
        .filter(|line| !line.is_empty())
        .map(|line| cipher.open(line).expect("relayed frames open").to_vec())
        .collect();
    (opened, ids)
}

/// Found by `relay` (crash-f01681a6): a newline client's first frame whose
/// read ended just before its `\n` was taken whole by the newline-less path,
/// and the `\n` arriving next was then an empty line, "frame too short",
/// which closed a well-behaved client. With `\r\n` too.
#[test]
fn a_first_frame_read_apart_from_its_newline_is_relayed_once_and_kept_open() {
    for terminator in [&b"\n"[..], b"\r\n"] {
        let (mut relay, listener, sender) = relay_with_two();
        let first = seal(b"first");
        relay.receive(sender, &first);
        relay.receive(sender, terminator);
        relay.receive(sender, &[seal(b"second"), terminator.to_vec()].concat());
        let (received, closing) = settle(&mut relay, listener);
        assert_eq!(received, [b"first".to_vec(), b"second".to_vec()]);
        assert_eq!(closing, Vec::<ConnId>::new());
        assert_eq!(relay.peer(sender).unwrap().closing(), None);
        assert_eq!(relay.stats().rejected.total(), 0);
    }
}

/// Found by `relay` (crash-6427bc88), the other side of the same fix: a
/// notebook client that sends one frame without a newline and then a bare
/// `\n` has ended that frame; it is now a newline client, not a bad one.
#[test]
fn a_bare_newline_after_a_newline_less_frame_ends_that_frame() {
    let (mut relay, listener, sender) = relay_with_two();
    relay.receive(sender, &seal(b"no newline"));
    let (received, _) = settle(&mut relay, listener);
    assert_eq!(received, [b"no newline".to_vec()]);
    relay.receive(sender, b"\n");
    let (_, closing) = settle(&mut relay, listener);
    assert_eq!(closing, Vec::<ConnId>::new());
    // Only one terminator is forgiven: a second empty line is bad input.
    relay.receive(sender, b"\n");
    let (received, closing) = settle(&mut relay, listener);
    assert_eq!(received, [b"no newline".to_vec()]);
    assert_eq!(closing, [sender]);
    assert_eq!(
        relay.peer(sender).unwrap().closing(),
        Some(CloseReason::BadFrame(OpenError::TooShort))
    );
}

/// The reader's side of that fix: only the one empty line right after a
/// frame taken unterminated is dropped; every other empty line is passed on.
#[test]
fn the_reader_drops_only_the_terminator_of_a_taken_frame() {
    let lines = |reader: &mut LineReader, data: &[u8]| {
        let mut lines = Vec::new();
        reader
            .feed(data, |line| {
                lines.push(line.to_vec());
                ControlFlow::Continue(())
            })
            .unwrap();
        lines
    };
    let mut reader = LineReader::new(64);
    assert_eq!(lines(&mut reader, b"framebuf"), Vec::<Vec<u8>>::new());
    assert_eq!(reader.unterminated(), Some(&b"framebuf"[..]));
    reader.consume_frame(8);
    assert_eq!(lines(&mut reader, b"\r"), Vec::<Vec<u8>>::new());
    assert_eq!(
        lines(&mut reader, b"\n\nnext\n"),
        [b"".to_vec(), b"next".to_vec()]
    );

    let mut fresh = LineReader::new(64);
    assert_eq!(lines(&mut fresh, b"\n"), [b"".to_vec()]);
}

/// Every `decrypt` seed goes through the open path as the target sends it:
/// the PyCryptodome and relay frames open to their plaintexts and reseal
/// round-trip; everything else is rejected without a panic.
#[test]
fn decrypt_seeds_open_exactly_when_they_should() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/decrypt");
    let mut cipher = Cipher::with_nonce_seed(&key(), [7; 32]);
    let mut opened = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("seed-") {
            continue;
        }
        let line = std::fs::read(&path).unwrap();
        let should_open = name.starts_with("seed-pycryptodome-")
            || name.starts_with("seed-relay-")
            || ["seed-pad-0", "seed-pad-1", "seed-pad-2"].contains(&name.as_str());
        match cipher.open(&line).map(|plaintext| plaintext.to_vec()) {
            Ok(plaintext) => {
                assert!(should_open, "{name} opened");
                assert_eq!(line.len(), encoded_len(plaintext.len()), "{name}");
                let mut resealed = BytesMut::new();
                cipher.reseal_into(&line, &mut resealed).unwrap();
                let reopened = cipher.open(&resealed[..line.len()]).unwrap();
                assert_eq!(reopened, &plaintext[..], "{name}");
                opened += 1;
            }
            Err(error) => assert!(!should_open, "{name}: {error}"),
        }
    }
    // 4 PyCryptodome frames, 4 relayed ones, 3 padding cases.
    assert_eq!(opened, 11);
}

/// Found by the `members` target: a notebook client's lone newline-less
/// first frame of 2049 or 2050 plaintext bytes has the same base64 length
/// as one of `IDENTIFY_MAX` (2048), so it passed the length check, then
/// identified as "too long" and was kept, neither identified nor closed.
/// It must close as a first frame too long to identify, as a line does.
#[test]
fn a_newline_less_first_frame_just_past_the_identification_cap_closes() {
    use eaxchat_core::members::Members;
    use eaxchat_core::roster::{IDENTIFY_MAX, Roster};
    use eaxchat_proto::nonce::Nonces;
    for len in [IDENTIFY_MAX + 1, IDENTIFY_MAX + 2] {
        assert_eq!(encoded_len(len), encoded_len(IDENTIFY_MAX));
        let text = format!("alice {}\n", key().to_hex());
        let members = Members::parse(text.as_bytes(), Path::new("members.txt")).expect("parses");
        let roster = Roster::with_nonces(&members, Nonces::from_seed([3; 32]));
        let mut relay: Relay<Vec<u8>> =
            Relay::with_members(roster, Limits::default(), Instant::now(), SystemTime::now());
        let notebook = relay.admit(Vec::new()).expect("room");
        relay.receive(notebook, &seal(&vec![b'x'; len]));
        let mut closing = Vec::new();
        relay.take_closing(&mut closing);
        assert_eq!(closing, [notebook], "plaintext of {len} bytes");
        let reason = relay.peer(notebook).and_then(|peer| peer.closing());
        assert_eq!(reason, Some(CloseReason::FirstFrameTooLong));
        assert_eq!(relay.stats().rejected.bad_tag, 1);
    }
}
