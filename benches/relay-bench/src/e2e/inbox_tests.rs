//! The end-to-end inbox against lines sealed here as the relay seals them:
//! a clean stream counts every message and no error; a message lost,
//! repeated, swapped, changed, from another sender, or a frame repeated or
//! tampered with is counted as the error it is, sampled or not.

use bytes::BytesMut;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::eax_key::EaxKey;
use eaxchat_proto::events::Event;
use eaxchat_proto::name::Name;
use eaxchat_proto::session::counter_nonce;
use eaxchat_proto::wire::{self, OVERHEAD};

use super::*;
use crate::inbox::Checker;
use crate::wire::{Protocol, Wire};

const KEY: [u8; 32] = [9; 32];
const ROOM: &str = "e2e-test";
const FROM: &str = "m0";
/// The room id the barrier gets: the run's message k is id 101 + k.
const BARRIER_ID: u64 = 100;

/// Seals `plaintext` as the relay's frame number `counter`, with its `\n`.
fn frame(counter: u64, plaintext: &[u8]) -> Vec<u8> {
    let key = EaxKey::aes256(&KEY);
    let mut buf = vec![0u8; OVERHEAD];
    buf.extend_from_slice(plaintext);
    let nonce = counter_nonce(counter);
    let tag = key.seal_in_place_detached(&nonce, &mut buf[OVERHEAD..]);
    buf[..16].copy_from_slice(&nonce);
    buf[16..OVERHEAD].copy_from_slice(&tag);
    let mut out = BytesMut::new();
    wire::encode_line(&buf, &mut out);
    out.to_vec()
}

/// An `mls` event as the relay writes it.
fn event(from: &str, data: &[u8], id: Option<u64>) -> Vec<u8> {
    let room = RoomName::new(ROOM.as_bytes()).unwrap();
    let from = Name::new(from).unwrap();
    let mut json = Vec::new();
    Event::Mls {
        room: &room,
        from: Some(&from),
        data,
        ts: 1_750_000_000_000,
        id,
        history: false,
    }
    .json(&mut json);
    json
}

/// The run's message `seq` as the relay delivers it.
fn message(ledger: &MlsLedger, seq: u64) -> Vec<u8> {
    event(FROM, ledger.message(seq), Some(BARRIER_ID + 1 + seq))
}

fn ledger() -> MlsLedger {
    let messages = (0..4)
        .map(|i| base64(format!("message {i}").as_bytes()))
        .collect();
    MlsLedger::new(
        ROOM,
        FROM,
        messages,
        base64(b"probe"),
        base64(b"barrier"),
        64,
    )
}

/// A checker (its codec is only the report's: any will do).
fn checker() -> Checker {
    Checker::new(Wire::new(&Protocol::Plain, 64).unwrap())
}

/// The setup's lines (a notice, a commit, a probe, the barrier), then
/// `plaintexts`, each sealed with the next counter unless a counter is
/// given; fed in reads of `chunk` bytes to an inbox opening one line in
/// `sample`. Returns the inbox and the checker after `settle(sent)`.
fn run(
    plaintexts: &[(Option<u64>, Vec<u8>)],
    sample: u64,
    chunk: usize,
    sent: u64,
) -> (MlsInbox, Checker) {
    let ledger = ledger();
    let mut lines = vec![
        frame(
            0,
            br#"{"kind":"notice","text":"* KeyPackage kept (1 for this device)"}"#,
        ),
        frame(1, &event(FROM, &base64(b"a commit"), Some(7))),
        frame(2, &event(FROM, &base64(b"probe"), Some(8))),
        frame(3, &event(FROM, &base64(b"barrier"), Some(BARRIER_ID))),
    ];
    let mut counter = 4;
    for (at, plaintext) in plaintexts {
        let at = at.unwrap_or(counter);
        lines.push(frame(at, plaintext));
        counter = at + 1;
    }
    let bytes = lines.concat();
    let mut inbox = MlsInbox::new(&KEY, 0, Vec::new(), sample, 0);
    let mut check = checker();
    let mut against = ledger;
    for piece in bytes.chunks(chunk) {
        let mut data = inbox.carry().to_vec();
        data.extend_from_slice(piece);
        inbox.absorb(&data, 1, &mut check, &mut against);
    }
    assert!(inbox.ready(), "the barrier was seen");
    inbox.settle(sent, &mut check);
    (inbox, check)
}

fn stream(n: u64) -> Vec<(Option<u64>, Vec<u8>)> {
    let ledger = ledger();
    (0..n).map(|k| (None, message(&ledger, k))).collect()
}

#[test]
fn a_clean_stream_counts_every_message_and_no_error() {
    for (sample, chunk) in [(1, 7), (16, 300), (3, 100_000)] {
        let (inbox, check) = run(&stream(40), sample, chunk, 40);
        assert_eq!(
            check.errors.total(),
            0,
            "sample {sample}: {:?}",
            check.errors
        );
        assert_eq!(inbox.delivered(), 40);
        assert_eq!(check.opened, 40_u64.div_ceil(sample));
        assert!(inbox.bytes() > 40 * 100);
    }
}

#[test]
fn a_message_lost_is_counted_sampled_or_not() {
    let mut lines = stream(40);
    lines.remove(7);
    for sample in [1, 16] {
        let (_, check) = run(&lines, sample, 512, 40);
        assert_eq!(check.errors.lost, 1, "sample {sample}: {:?}", check.errors);
        assert_eq!(
            check.errors.total(),
            1,
            "sample {sample}: {:?}",
            check.errors
        );
    }
}

#[test]
fn a_message_repeated_is_counted_sampled_or_not() {
    let mut lines = stream(40);
    let again = lines[5].clone();
    lines.insert(6, again);
    for sample in [1, 16] {
        let (_, check) = run(&lines, sample, 512, 40);
        assert_eq!(
            check.errors.duplicated, 1,
            "sample {sample}: {:?}",
            check.errors
        );
        assert_eq!(
            check.errors.total(),
            1,
            "sample {sample}: {:?}",
            check.errors
        );
    }
}

#[test]
fn messages_swapped_are_errors_when_opened() {
    let mut lines = stream(40);
    lines.swap(3, 4);
    let (_, check) = run(&lines, 1, 512, 40);
    assert_eq!(check.errors.lost, 1, "{:?}", check.errors);
    assert_eq!(check.errors.duplicated, 1, "{:?}", check.errors);
}

#[test]
fn another_message_or_sender_or_room_is_forged() {
    let ledger = ledger();
    let cases = [
        // The data of another message under this number.
        event(FROM, ledger.message(3), Some(BARRIER_ID + 1 + 2)),
        // From someone else.
        event("m1", ledger.message(2), Some(BARRIER_ID + 1 + 2)),
        // Not an mls event at all.
        br#"{"kind":"notice","text":"hello"}"#.to_vec(),
    ];
    for case in cases {
        let mut lines = stream(10);
        lines[2].1 = case;
        let (_, check) = run(&lines, 1, 512, 10);
        assert_eq!(check.errors.forged, 1, "{:?}", check.errors);
        // The message that never came is lost as well.
        assert_eq!(check.errors.lost, 1, "{:?}", check.errors);
    }
    let mut bad_room = event(FROM, ledger.message(2), Some(BARRIER_ID + 3));
    let at = memmem::find(&bad_room, ROOM.as_bytes()).unwrap();
    bad_room[at] = b'x';
    let mut lines = stream(10);
    lines[2].1 = bad_room;
    let (_, check) = run(&lines, 1, 512, 10);
    assert_eq!(check.errors.forged, 1, "{:?}", check.errors);
}

#[test]
fn frames_repeated_or_tampered_with_are_errors() {
    // The relay's frame 10 sent twice, byte for byte: the counter says so.
    let mut lines = stream(20);
    lines.insert(7, (Some(10), lines[6].1.clone()));
    let (_, check) = run(&lines, 16, 512, 20);
    assert!(check.errors.total() >= 1, "{:?}", check.errors);
    assert!(check.errors.duplicated >= 1, "{:?}", check.errors);

    // A sampled frame that does not open.
    let ledger = ledger();
    let mut bytes = frame(4, &message(&ledger, 0));
    bytes[40] = if bytes[40] == b'A' { b'B' } else { b'A' };
    let mut inbox = MlsInbox::new(&KEY, 4, Vec::new(), 1, 0);
    let mut check = checker();
    inbox.first_id = Some(BARRIER_ID + 1);
    let mut against = ledger;
    inbox.absorb(&bytes, 1, &mut check, &mut against);
    assert_eq!(check.errors.forged, 1, "{:?}", check.errors);
    assert_eq!(inbox.delivered(), 0);
}

#[test]
fn the_fields_of_an_mls_event_are_read_in_any_order() {
    let json = event(FROM, b"AAEC", Some(12));
    let fields = mls_fields(&json).unwrap();
    assert_eq!(fields.room, ROOM.as_bytes());
    assert_eq!(fields.from, FROM.as_bytes());
    assert_eq!(fields.data, b"AAEC");
    assert_eq!(fields.id, Some(12));
    assert!(!fields.history);
    let welcome = event(FROM, b"AAEC", None);
    assert_eq!(mls_fields(&welcome).unwrap().id, None);
    let reordered = br#"{"id":5,"data":"QQ==","history":true,"from":"m0","room":"r","kind":"mls"}"#;
    let fields = mls_fields(reordered).unwrap();
    assert_eq!(
        (fields.id, fields.data, fields.history),
        (Some(5), &b"QQ=="[..], true)
    );
    assert!(mls_fields(br#"{"kind":"msg","room":"r","text":"x","id":1}"#).is_none());
}
