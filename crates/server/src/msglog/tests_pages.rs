//! `/history` pages read back from the log: ids as the core counts them,
//! pages that walk back with no gap or duplicate across segments and a
//! restart, the oldest segments deleted, a record dropped on a full queue,
//! and a damaged record that ends a page without losing the newer ones.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use eaxchat_core::history::EntryKind;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::key::Key;
use eaxchat_proto::name::Name;

use super::{Fsync, LogConfig, LogError, LogWriter, Page, Record, open_and_index};

fn key() -> Key {
    Key::from_bytes(&[9; 16]).expect("a 16-byte key")
}

fn room(name: &str) -> RoomName {
    RoomName::new(name.as_bytes()).expect("a room")
}

/// Message `id` of `room_name`, as the core logs it: with its id.
fn said(room_name: &str, id: u64, text: &str) -> Record {
    Record::Message {
        room: room(room_name),
        sender: Some(Name::new("alice").expect("a name")),
        text: text.as_bytes().into(),
        ts_millis: 1_700_000_000_000,
        kind: EntryKind::Message,
        id: Some(id),
    }
}

fn joined(room_name: &str) -> Record {
    Record::Join {
        room: room(room_name),
        name: Name::new("bob").expect("a name"),
        ts_millis: 1_700_000_000_000,
    }
}

/// Small segments, so a page spans several.
fn config(dir: &Path) -> LogConfig {
    LogConfig {
        fsync: Fsync::No,
        segment_bytes: 1024,
        ..LogConfig::new(dir)
    }
}

/// An indexed writer on `dir`, after reading what is there.
fn start(config: LogConfig) -> LogWriter {
    let (_, _, index) = open_and_index(&config.dir, &key()).expect("the log opens");
    LogWriter::start_indexed(config, &key(), index).expect("the writer starts")
}

/// Waits (at most 10 s) until every record queued so far is written.
fn settle(writer: &LogWriter) {
    let mark = writer.queued_mark();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !writer.page_ready(mark) {
        assert!(Instant::now() < deadline, "the writer never caught up");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn texts(page: &Page) -> Vec<String> {
    page.entries
        .iter()
        .map(|(_, entry)| String::from_utf8_lossy(&entry.text).into_owned())
        .collect()
}

/// Walks `room` back in pages of `limit` from the newest; returns every
/// (id, text) seen, oldest first, and how many pages it took.
fn walk(writer: &LogWriter, room_name: &str, limit: usize) -> (Vec<(u64, String)>, usize) {
    let mut seen = Vec::new();
    let mut before = u64::MAX;
    for pages in 1..=100 {
        let page = writer.read_page(&room(room_name), before, limit);
        assert!(page.problem.is_none(), "{:?}", page.problem);
        assert!(page.entries.len() <= limit);
        let ids: Vec<u64> = page.entries.iter().map(|(id, _)| *id).collect();
        let found: Vec<(u64, String)> = ids.iter().copied().zip(texts(&page)).collect();
        seen.splice(0..0, found);
        if page.first {
            return (seen, pages);
        }
        before = ids[0];
    }
    panic!("no first page after 100 pages");
}

/// 95 messages in dev, others in lobby and joins between them.
fn chatter(writer: &mut LogWriter, from: u64, to: u64) {
    for i in from..to {
        assert!(writer.append(said("dev", i, &format!("dev {i}"))));
        if i % 3 == 0 {
            assert!(writer.append(said("lobby", i / 3, &format!("lobby {i}"))));
            assert!(writer.append(joined("dev")));
        }
    }
}

fn expected(from: u64, to: u64) -> Vec<(u64, String)> {
    (from..to).map(|i| (i, format!("dev {i}"))).collect()
}

#[test]
fn pages_walk_back_to_id_0_across_segments_and_a_restart() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut writer = start(config(dir.path()));
    chatter(&mut writer, 0, 95);
    settle(&writer);
    let (seen, pages) = walk(&writer, "dev", 20);
    assert_eq!(seen, expected(0, 95));
    assert_eq!(pages, 5);
    let page = writer.read_page(&room("dev"), 40, 500);
    assert_eq!(page.entries.len(), 40, "a page reads at most MAX_PAGE");
    assert!(page.first);
    writer.close().expect("closes");
    assert!(
        fs::read_dir(dir.path()).expect("the dir").count() > 3,
        "the log spans several segments"
    );

    // After a restart the ids go on from where the log left them.
    let mut writer = start(config(dir.path()));
    chatter(&mut writer, 95, 100);
    settle(&writer);
    let (seen, _) = walk(&writer, "dev", 20);
    assert_eq!(seen, expected(0, 100));
    let (lobby, _) = walk(&writer, "lobby", 7);
    assert_eq!(lobby.len(), 34);
    assert_eq!(lobby[0], (0, "lobby 0".to_owned()));
    assert_eq!(lobby[33], (33, "lobby 99".to_owned()));
    let none = writer.read_page(&room("nowhere"), u64::MAX, 20);
    assert!(none.entries.is_empty() && none.first);
}

#[test]
fn deleted_segments_leave_the_pages_that_remain() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut writer = start(LogConfig {
        max_bytes: 4096,
        ..config(dir.path())
    });
    chatter(&mut writer, 0, 95);
    settle(&writer);
    let (seen, _) = walk(&writer, "dev", 20);
    assert!(seen.len() < 95, "the oldest segments were deleted");
    let oldest = seen[0].0;
    assert!(oldest > 0);
    assert_eq!(seen, expected(oldest, 95), "ids keep their numbers");
}

#[test]
fn a_damaged_record_ends_the_page_keeping_the_newer() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut writer = start(LogConfig {
        segment_bytes: 1 << 20,
        ..config(dir.path())
    });
    for i in 0..10 {
        assert!(writer.append(said("dev", i, &format!("dev {i}"))));
    }
    settle(&writer);
    // Flip a byte in the middle of the one segment: one of the records
    // around the middle (all the same size) no longer opens.
    let segment = dir.path().join("00000000.log");
    let mut bytes = fs::read(&segment).expect("the segment");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    fs::write(&segment, bytes).expect("written back");
    let page = writer.read_page(&room("dev"), u64::MAX, 100);
    assert!(
        matches!(page.problem, Some(LogError::Undecodable { .. })),
        "{:?}",
        page.problem
    );
    assert!(!page.first);
    let ids: Vec<u64> = page.entries.iter().map(|(id, _)| *id).collect();
    assert!(!ids.is_empty() && ids.len() < 10, "{ids:?}");
    assert_eq!(*ids.last().expect("some"), 9, "the newest are kept");
    assert_eq!(
        ids,
        (10 - ids.len() as u64..10).collect::<Vec<u64>>(),
        "no gap"
    );
}

#[test]
fn a_record_dropped_on_a_full_queue_keeps_the_later_ids() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut writer = start(LogConfig {
        queue: 1,
        ..config(dir.path())
    });
    assert!(writer.append(said("dev", 0, "dev 0")));
    settle(&writer);
    let release = writer.hold();
    // The writer is held: one record fits in the queue, the next is
    // dropped, yet it took id 2 as the core's history counted it.
    assert!(writer.append(said("dev", 1, "dev 1")));
    assert!(!writer.append(said("dev", 2, "dev 2")));
    drop(release);
    settle(&writer);
    assert!(writer.append(said("dev", 3, "dev 3")));
    settle(&writer);
    let page = writer.read_page(&room("dev"), u64::MAX, 10);
    let ids: Vec<u64> = page.entries.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [0, 1, 3]);
    assert_eq!(texts(&page), ["dev 0", "dev 1", "dev 3"]);
    assert!(page.first);
}

/// The review's finding: ids were counted from the records read at start,
/// so after a restart every id moved down by the records lost before it
/// (a record dropped on a full queue, the oldest segments deleted) and an
/// id seen live named another message. Now each record carries its id.
#[test]
fn ids_seen_live_name_the_same_messages_after_a_restart() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let small = LogConfig {
        max_bytes: 4096,
        queue: 1,
        ..config(dir.path())
    };
    let mut writer = start(small.clone());
    for i in 0..95 {
        if i == 60 {
            // The writer is held: 60 waits in the queue, 61 is dropped.
            let release = writer.hold();
            assert!(writer.append(said("dev", 60, "dev 60")));
            assert!(!writer.append(said("dev", 61, "dev 61")));
            drop(release);
        } else if i != 61 {
            settle(&writer);
            assert!(writer.append(said("dev", i, &format!("dev {i}"))));
        }
    }
    settle(&writer);
    let (live, _) = walk(&writer, "dev", 20);
    writer.close().expect("closes");

    let writer = start(small);
    let (seen, _) = walk(&writer, "dev", 20);
    assert_eq!(seen, live, "the same ids name the same messages");
    let oldest = seen[0].0;
    assert!(oldest > 0, "the oldest segments were deleted");
    let mut wanted = expected(oldest, 95);
    wanted.retain(|(id, _)| *id != 61);
    assert_eq!(seen, wanted);
}

/// A relay upgraded in place: its log holds segments of the first format
/// (no header), segments of the second whose messages carry no id, and
/// then messages with ids. It loads, the old messages are numbered by
/// counting as the old relays numbered them, and the new go on from there.
#[test]
fn a_log_written_before_ids_were_kept_loads_and_numbers_on() {
    use super::tests_damage::{version_one_segment, without_id};
    let dir = tempfile::tempdir().expect("a temporary directory");
    let first: Vec<Record> = (0..3)
        .map(|i| said("dev", i, &format!("dev {i}")))
        .collect();
    fs::write(
        dir.path().join("00000000.log"),
        version_one_segment(&key(), &first),
    )
    .expect("written");
    let mut writer = LogWriter::start(config(dir.path()), &key()).expect("the writer starts");
    for i in 3..6 {
        assert!(writer.append(without_id(said("dev", i, &format!("dev {i}")))));
    }
    assert!(writer.append(joined("dev")));
    writer.close().expect("closes");

    let mut writer = start(config(dir.path()));
    for i in 6..9 {
        assert!(writer.append(said("dev", i, &format!("dev {i}"))));
    }
    settle(&writer);
    let (seen, _) = walk(&writer, "dev", 4);
    assert_eq!(seen, expected(0, 9));
}
