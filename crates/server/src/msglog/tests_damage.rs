//! The message log's damage tests: records bound to their segment and
//! index (a swap, a splice or a copied record is refused), damage before
//! the tail refused with where it is and what follows it, a torn tail
//! still cut, and logs in the previous record formats still read. The
//! records here carry their ids (the current format), except those of the
//! old formats.

use std::fs;
use std::path::{Path, PathBuf};

use eaxchat_core::history::EntryKind;
use eaxchat_proto::cipher::eax_key;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::key::Key;
use eaxchat_proto::name::Name;
use eaxchat_proto::wire::{NONCE_LEN, OVERHEAD};

use super::segments::{RECORD_HEADER, crc32, list_segments};
use super::{Fsync, LogConfig, LogWriter, Record, open_and_replay, read_log};

fn key(byte: u8) -> Key {
    Key::from_bytes(&[byte; 16]).expect("a 16-byte key")
}

fn message(i: u64) -> Record {
    Record::Message {
        room: RoomName::new(b"lobby").expect("a room"),
        sender: Some(Name::new("alice").expect("a name")),
        text: format!("message {i:02}").into_bytes().into(),
        ts_millis: 1_700_000_000_000 + i,
        kind: EntryKind::Message,
        id: Some(i),
    }
}

/// `record` as a relay before ids were kept logged it: no id.
pub(super) fn without_id(mut record: Record) -> Record {
    if let Record::Message { id, .. } = &mut record {
        *id = None;
    }
    record
}

/// Starts a writer on `dir`, appends `records`, closes it: one segment.
fn write_segment(dir: &Path, records: &[Record]) {
    let config = LogConfig {
        fsync: Fsync::No,
        ..LogConfig::new(dir)
    };
    let mut writer = LogWriter::start(config, &key(7)).expect("writer starts");
    for record in records {
        assert!(writer.append(record.clone()));
    }
    writer.close().expect("writer closes");
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    list_segments(dir)
        .expect("listed")
        .into_iter()
        .map(|(_, path)| path)
        .collect()
}

/// Each record's (offset, length with its header) in a segment's bytes.
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut at = bytes.len() % 2; // never a header of odd length: found below
    at = if bytes.starts_with(b"EAXLOG") { 8 } else { at };
    let mut out = Vec::new();
    while at + RECORD_HEADER <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        out.push((at, RECORD_HEADER + len));
        at += RECORD_HEADER + len;
    }
    out
}

#[test]
fn two_records_swapped_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records: Vec<Record> = (0..6).map(message).collect();
    write_segment(dir.path(), &records);
    let segment = &segments(dir.path())[0];
    let mut bytes = fs::read(segment).expect("read");
    let frames = frames(&bytes);
    let ((a, a_len), (b, b_len)) = (frames[2], frames[3]);
    assert_eq!(a_len, b_len);
    let first = bytes[a..a + a_len].to_vec();
    bytes.copy_within(b..b + b_len, a);
    bytes[b..b + b_len].copy_from_slice(&first);
    fs::write(segment, &bytes).expect("written");
    let error = open_and_replay(dir.path(), &key(7)).expect_err("a swap is refused");
    let text = error.to_string();
    assert!(text.contains("record 2"), "{text}");
    assert!(text.contains(&format!("byte {a}")), "{text}");
    assert_eq!(fs::read(segment).expect("read"), bytes, "nothing was cut");
}

#[test]
fn a_record_spliced_in_from_another_segment_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_segment(dir.path(), &(0..4).map(message).collect::<Vec<_>>());
    write_segment(dir.path(), &(10..14).map(message).collect::<Vec<_>>());
    let files = segments(dir.path());
    let older = fs::read(&files[0]).expect("read");
    let mut newer = fs::read(&files[1]).expect("read");
    let (from, len) = frames(&older)[1];
    let (to, to_len) = frames(&newer)[1];
    assert_eq!(len, to_len);
    newer[to..to + len].copy_from_slice(&older[from..from + len]);
    fs::write(&files[1], &newer).expect("written");
    let error = open_and_replay(dir.path(), &key(7)).expect_err("a splice is refused");
    let text = error.to_string();
    assert!(text.contains("record 1"), "{text}");
    assert!(text.contains("2 records after it"), "{text}");
}

#[test]
fn a_byte_changed_mid_log_is_refused_and_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records: Vec<Record> = (0..30).map(message).collect();
    write_segment(dir.path(), &records);
    let segment = &segments(dir.path())[0];
    let mut bytes = fs::read(segment).expect("read");
    let at = bytes.len() * 2 / 5;
    bytes[at] ^= 0x20;
    fs::write(segment, &bytes).expect("written");
    let frames = frames(&bytes);
    let index = frames
        .iter()
        .position(|&(start, len)| (start..start + len).contains(&at))
        .expect("a record holds the byte");
    let error = open_and_replay(dir.path(), &key(7)).expect_err("refused");
    let text = error.to_string();
    assert!(text.contains(&format!("record {index}")), "{text}");
    assert!(
        text.contains(&format!("byte {}", frames[index].0)),
        "{text}"
    );
    let after = 30 - index - 1;
    assert!(
        text.contains(&format!("{after} records after it")),
        "{text}"
    );
    assert_eq!(fs::read(segment).expect("read"), bytes, "nothing was cut");
    // `relay log check`'s reading says the same and changes nothing.
    let (kept, report) = read_log(dir.path(), &key(7)).expect("read");
    assert_eq!(kept, records[..index]);
    assert_eq!(report.damage.len(), 1);
    assert_eq!(report.damage[0].index, index as u64);
    assert_eq!(report.damage[0].intact_after, after as u64);
}

#[test]
fn damage_at_the_end_of_an_older_segment_is_not_a_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_segment(dir.path(), &(0..3).map(message).collect::<Vec<_>>());
    write_segment(dir.path(), &(3..6).map(message).collect::<Vec<_>>());
    let files = segments(dir.path());
    let mut bytes = fs::read(&files[0]).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&files[0], &bytes).expect("written");
    let error = open_and_replay(dir.path(), &key(7)).expect_err("refused");
    let text = error.to_string();
    assert!(text.contains("record 2"), "{text}");
    assert!(text.contains("3 records in later segments"), "{text}");
}

/// A segment in the first format: no header, records sealed with no
/// associated data (under `key`), their plaintext of version 1.
pub(super) fn version_one_segment(key: &Key, records: &[Record]) -> Vec<u8> {
    let eax = eax_key(key);
    let mut out = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let mut plain = Vec::new();
        without_id(record.clone()).encode(&mut plain);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[0] = i as u8 + 1;
        let tag = eax.seal_in_place_detached(&nonce, &mut plain);
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&tag);
        sealed.extend_from_slice(&plain);
        assert_eq!(sealed.len(), OVERHEAD + plain.len());
        out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32(&sealed).to_le_bytes());
        out.extend_from_slice(&sealed);
    }
    out
}

#[test]
fn a_log_in_the_previous_format_is_still_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old: Vec<Record> = (0..3).map(message).collect();
    let first = version_one_segment(&key(7), &old);
    fs::write(dir.path().join("00000000.log"), first).expect("written");
    // The second format's segments, with records of both plaintexts.
    let middle: Vec<Record> = (3..5).map(|i| without_id(message(i))).collect();
    write_segment(dir.path(), &middle);
    write_segment(dir.path(), &(5..7).map(message).collect::<Vec<_>>());
    let (replayed, report) = open_and_replay(dir.path(), &key(7)).expect("replays");
    let mut expected: Vec<Record> = (0..5).map(|i| without_id(message(i))).collect();
    expected.extend((5..7).map(message));
    assert_eq!(replayed, expected);
    assert_eq!(report.segments, 3);
    assert_eq!(report.legacy_segments, 1);
}
