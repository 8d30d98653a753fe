//! The message log's tests: the format, recovery, rotation, the fsync
//! modes, dropping when the queue is full, and a `kill -9` mid-write.

use std::fs;
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use eaxchat_core::history::EntryKind;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::key::Key;
use eaxchat_proto::name::Name;
use eaxchat_proto::wire::OVERHEAD;

use super::segments::{RECORD_HEADER, crc32, list_segments};
use super::{
    Fsync, LogConfig, LogError, LogStats, LogWriter, Record, TailProblem, Truncation,
    load_or_create_key, open_and_replay,
};

fn key(byte: u8) -> Key {
    Key::from_bytes(&[byte; 16]).expect("a 16-byte key")
}

fn message(i: u64, text: &str) -> Record {
    Record::Message {
        room: RoomName::new(b"lobby").expect("a room"),
        sender: Some(Name::new("alice").expect("a name")),
        text: text.as_bytes().into(),
        ts_millis: 1_700_000_000_000 + i,
        kind: EntryKind::Message,
        id: None,
    }
}

fn config(dir: &Path, fsync: Fsync) -> LogConfig {
    LogConfig {
        fsync,
        ..LogConfig::new(dir)
    }
}

/// Appends every record through a writer and closes it.
fn write_all(config: LogConfig, key: &Key, records: &[Record]) -> LogStats {
    let mut writer = LogWriter::start(config, key).expect("writer starts");
    for record in records {
        assert!(writer.append(record.clone()));
    }
    writer.close().expect("writer closes cleanly")
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    list_segments(dir)
        .expect("segments listed")
        .into_iter()
        .map(|(_, path)| path)
        .collect()
}

/// Waits (at most 10 s) until `done` holds.
fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn crc32_is_zlibs() {
    assert_eq!(crc32(b""), 0);
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn every_kind_of_record_round_trips() {
    let room = RoomName::new(b"#Dev").expect("a room");
    let name = Name::new("bob").expect("a name");
    let records = [
        message(1, "hello"),
        Record::Message {
            room: room.clone(),
            sender: Some(name.clone()),
            text: b"waves \xff\x00".as_slice().into(),
            ts_millis: u64::MAX,
            kind: EntryKind::Action,
            id: Some(u64::MAX),
        },
        Record::Message {
            room: room.clone(),
            sender: None,
            text: b"\x00\x01mls".as_slice().into(),
            ts_millis: 3,
            kind: EntryKind::Mls,
            id: Some(41),
        },
        Record::Message {
            room: room.clone(),
            sender: Some(name.clone()),
            text: Box::default(),
            ts_millis: 0,
            kind: EntryKind::Message,
            id: None,
        },
        Record::Join {
            room: room.clone(),
            name: name.clone(),
            ts_millis: 7,
        },
        Record::Leave {
            room,
            name,
            ts_millis: 8,
        },
    ];
    for record in &records {
        let mut bytes = Vec::new();
        record.encode(&mut bytes);
        assert_eq!(Record::decode(&bytes).as_ref(), Ok(record));
        assert!(Record::decode(&bytes[..bytes.len() - 1]).is_err());
        bytes.push(0);
        assert!(Record::decode(&bytes).is_err());
        // A message carries its id in version 2, and only then.
        let version = if record.id().is_some() { 2 } else { 1 };
        assert_eq!(bytes[0], version, "{record:?}");
        if version == 1 {
            bytes[0] = 2;
            bytes.pop();
            assert!(Record::decode(&bytes) != Ok(record.clone()));
        }
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_all(config(dir.path(), Fsync::No), &key(1), &records);
    let (replayed, report) = open_and_replay(dir.path(), &key(1)).expect("replays");
    assert_eq!(replayed, records);
    assert_eq!(report.records, records.len());
    assert!(report.truncated.is_empty());
}

#[test]
fn history_entries_come_from_messages_only() {
    let (room, entry) = message(3, "hi")
        .history_entry()
        .map(|(r, e)| (r.clone(), e))
        .expect("an entry");
    assert_eq!(room.as_str(), "lobby");
    assert_eq!(
        (&*entry.text, entry.ts_millis),
        (&b"hi"[..], 1_700_000_000_003)
    );
    let join = Record::Join {
        room,
        name: Name::new("bob").expect("a name"),
        ts_millis: 1,
    };
    assert!(join.history_entry().is_none());
}

#[test]
fn no_plaintext_on_disk() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let secret = "the eagle lands at midnight 4711";
    let record = Record::Message {
        room: RoomName::new(b"secretroomname").expect("a room"),
        sender: Some(Name::new("whistleblower").expect("a name")),
        text: secret.as_bytes().into(),
        ts_millis: 1,
        kind: EntryKind::Message,
        id: None,
    };
    write_all(
        config(dir.path(), Fsync::Always),
        &key(2),
        &[record.clone(), record],
    );
    let files = segment_files(dir.path());
    assert!(!files.is_empty());
    for path in files {
        let bytes = fs::read(&path).expect("segment read");
        assert!(bytes.len() > secret.len());
        for needle in [
            secret.as_bytes(),
            b"eagle",
            b"secretroomname",
            b"whistleblower",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds plaintext",
                path.display()
            );
        }
    }
    let (records, _) = open_and_replay(dir.path(), &key(2)).expect("replays");
    assert_eq!(records.len(), 2);
}

#[test]
fn the_log_key_is_created_0600_and_read_back() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("log.key");
    let created = load_or_create_key(&path).expect("created");
    let mode = fs::metadata(&path).expect("metadata").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(load_or_create_key(&path).expect("read back"), created);
}

/// Writes `n` records under key 3 into a fresh directory.
fn log_of(n: u64) -> (tempfile::TempDir, Vec<Record>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let records: Vec<Record> = (0..n)
        .map(|i| message(i, &format!("message {i}")))
        .collect();
    write_all(config(dir.path(), Fsync::No), &key(3), &records);
    (dir, records)
}

fn only_segment(dir: &Path) -> PathBuf {
    let files = segment_files(dir);
    assert_eq!(files.len(), 1);
    files.into_iter().next().expect("one segment")
}

#[test]
fn a_torn_tail_is_cut_and_reported() {
    let (dir, records) = log_of(5);
    let segment = only_segment(dir.path());
    let full = fs::metadata(&segment).expect("metadata").len();
    // Cut the last record in half (after the segment's 8-byte header).
    let one = (full - 8) / 5;
    let cut_at = full - one / 2;
    fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .and_then(|f| f.set_len(cut_at))
        .expect("truncated");
    let (replayed, report) = open_and_replay(dir.path(), &key(3)).expect("replays");
    assert_eq!(replayed, records[..4]);
    let expected = Truncation {
        segment: segment.clone(),
        offset: full - one,
        removed: cut_at - (full - one),
        problem: TailProblem::Torn,
    };
    assert_eq!(report.truncated, [expected]);
    assert_eq!(fs::metadata(&segment).expect("metadata").len(), full - one);
    // The cut is made once: the log now replays clean.
    let (again, report) = open_and_replay(dir.path(), &key(3)).expect("replays");
    assert_eq!(again, records[..4]);
    assert!(report.truncated.is_empty());
}

#[test]
fn garbage_after_the_last_record_is_cut() {
    // A plausible length, all 40 bytes there, and a CRC that does not match.
    let mut bad_crc = vec![40, 0, 0, 0, 1, 2, 3, 4];
    bad_crc.extend_from_slice(&[9; 40]);
    let cases = [
        (b"\x01\x02\x03".to_vec(), TailProblem::Torn),
        (vec![0; 64], TailProblem::BadLength),
        (
            b"\xff\xff\xff\x7f\0\0\0\0garbage".to_vec(),
            TailProblem::BadLength,
        ),
        (b"\x40\0\0\0\0\0\0\0short".to_vec(), TailProblem::Torn),
        (bad_crc, TailProblem::BadChecksum),
    ];
    for (garbage, problem) in cases {
        let (dir, records) = log_of(3);
        let segment = only_segment(dir.path());
        let clean = fs::metadata(&segment).expect("metadata").len();
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&segment)
            .expect("opened");
        file.write_all(&garbage).expect("garbage appended");
        let (replayed, report) = open_and_replay(dir.path(), &key(3)).expect("replays");
        assert_eq!(replayed, records);
        assert_eq!(report.truncated.len(), 1);
        assert_eq!(report.truncated[0].problem, problem);
        assert_eq!(report.truncated[0].offset, clean);
        assert_eq!(fs::metadata(&segment).expect("metadata").len(), clean);
    }
}

#[test]
fn a_flipped_bit_mid_log_is_refused_untouched() {
    let (dir, _) = log_of(6);
    let segment = only_segment(dir.path());
    let mut bytes = fs::read(&segment).expect("read");
    let one = (bytes.len() - 8) / 6;
    bytes[8 + 3 * one + RECORD_HEADER + 20] ^= 1;
    fs::write(&segment, &bytes).expect("written");
    let error = open_and_replay(dir.path(), &key(3)).expect_err("refused");
    let LogError::Damaged { damage, .. } = &error else {
        panic!("not damage: {error}");
    };
    assert_eq!(damage.problem, TailProblem::BadChecksum);
    assert_eq!(damage.offset, 8 + 3 * one as u64);
    assert_eq!((damage.index, damage.intact_after), (3, 2));
    assert_eq!(fs::read(&segment).expect("read"), bytes);
    // A repair cuts there, and says it lost those two.
    let (kept, report) = super::repair(dir.path(), &key(3)).expect("repaired");
    assert_eq!((kept.len(), report.damage.len()), (3, 1));
    let (again, report) = open_and_replay(dir.path(), &key(3)).expect("replays");
    assert_eq!((again.len(), report.damage.len()), (3, 0));
}

#[test]
fn a_log_under_another_key_is_refused_untouched() {
    let (dir, _) = log_of(4);
    let segment = only_segment(dir.path());
    // A torn tail too: it must not be cut either.
    fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .and_then(|mut f| f.write_all(b"\x05"))
        .expect("appended");
    let before = fs::read(&segment).expect("read");
    let error = open_and_replay(dir.path(), &key(9)).expect_err("refused");
    assert!(matches!(&error, LogError::WrongKey { segment: s } if *s == segment));
    assert!(
        error
            .to_string()
            .contains("does not open under this log key")
    );
    assert_eq!(fs::read(&segment).expect("read"), before);
}

#[test]
fn segments_rotate_and_the_oldest_are_dropped() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let records: Vec<Record> = (0..200)
        .map(|i| message(i, &format!("message {i:03}")))
        .collect();
    let mut one = Vec::new();
    records[0].encode(&mut one);
    let record_len = (RECORD_HEADER + OVERHEAD + one.len()) as u64;
    // Ten records and the segment's 8-byte header to a segment.
    let segment_len = record_len * 10 + 8;
    let config = LogConfig {
        fsync: Fsync::No,
        max_bytes: segment_len * 5,
        segment_bytes: segment_len,
        ..LogConfig::new(dir.path())
    };
    write_all(config, &key(4), &records);
    let files = segment_files(dir.path());
    let total: u64 = files
        .iter()
        .map(|p| fs::metadata(p).expect("metadata").len())
        .sum();
    assert!(total <= segment_len * 5, "{total} bytes kept");
    assert!(
        files
            .iter()
            .all(|p| fs::metadata(p).expect("metadata").len() <= segment_len)
    );
    let (replayed, report) = open_and_replay(dir.path(), &key(4)).expect("replays");
    // Whole segments of 10 records go, oldest first: the newest 50 remain.
    assert_eq!(replayed, records[150..]);
    assert_eq!(report.segments, files.len());
    assert_eq!(files.len(), 5);
    let numbers: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    assert_eq!(numbers[4], "00000019.log");
}

#[test]
fn each_start_appends_a_new_segment_after_the_old() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_all(
        config(dir.path(), Fsync::No),
        &key(5),
        &[message(0, "first")],
    );
    write_all(
        config(dir.path(), Fsync::No),
        &key(5),
        &[message(1, "second")],
    );
    let (replayed, report) = open_and_replay(dir.path(), &key(5)).expect("replays");
    assert_eq!(replayed, [message(0, "first"), message(1, "second")]);
    assert_eq!(report.segments, 2);
}

#[test]
fn fsync_always_syncs_every_record_before_counting_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut writer = LogWriter::start(config(dir.path(), Fsync::Always), &key(6)).expect("starts");
    for i in 0..20 {
        assert!(writer.append(message(i, "x")));
        wait_for(|| writer.stats().synced == i + 1);
    }
    let stats = writer.close().expect("closes");
    assert_eq!(
        (stats.queued, stats.written, stats.synced, stats.dropped),
        (20, 20, 20, 0)
    );
}

#[test]
fn fsync_everysec_syncs_within_about_a_second() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut writer =
        LogWriter::start(config(dir.path(), Fsync::EverySec), &key(6)).expect("starts");
    let start = Instant::now();
    for i in 0..5 {
        assert!(writer.append(message(i, "x")));
    }
    wait_for(|| writer.stats().synced == 5);
    assert!(start.elapsed() < Duration::from_secs(3));
    let stats = writer.close().expect("closes");
    assert_eq!(stats.synced, 5);
}

#[test]
fn fsync_no_writes_at_once_and_syncs_only_on_close() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut writer = LogWriter::start(config(dir.path(), Fsync::No), &key(6)).expect("starts");
    for i in 0..5 {
        assert!(writer.append(message(i, "x")));
    }
    wait_for(|| writer.stats().written == 5);
    // Written to the file, readable at once, not yet synced.
    let (records, _) = open_and_replay(dir.path(), &key(6)).expect("replays");
    assert_eq!(records.len(), 5);
    assert_eq!(writer.stats().synced, 0);
    assert_eq!(writer.close().expect("closes").synced, 5);
}

#[test]
fn fsync_parses_as_redis_spells_it() {
    assert_eq!("always".parse(), Ok(Fsync::Always));
    assert_eq!("everysec".parse(), Ok(Fsync::EverySec));
    assert_eq!("no".parse(), Ok(Fsync::No));
    assert!("sometimes".parse::<Fsync>().is_err());
    assert_eq!(Fsync::EverySec.to_string(), "everysec");
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = LogConfig {
        queue: 4,
        ..config(dir.path(), Fsync::No)
    };
    let mut writer = LogWriter::start(config, &key(7)).expect("starts");
    let release = writer.hold();
    // The writer is held: the queue takes 4, the rest are dropped at once.
    let accepted: Vec<bool> = (0..10).map(|i| writer.append(message(i, "x"))).collect();
    assert_eq!(
        accepted,
        [
            true, true, true, true, false, false, false, false, false, false
        ]
    );
    assert_eq!((writer.stats().queued, writer.stats().dropped), (4, 6));
    drop(release);
    let stats = writer.close().expect("closes");
    assert_eq!((stats.queued, stats.written, stats.dropped), (4, 4, 6));
    let (records, _) = open_and_replay(dir.path(), &key(7)).expect("replays");
    assert_eq!(records.len(), 4);
}

#[test]
fn a_writer_stopped_by_an_error_drops_and_reports_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log_dir = dir.path().join("log");
    let config = LogConfig {
        segment_bytes: 1,
        ..config(&log_dir, Fsync::No)
    };
    let mut writer = LogWriter::start(config, &key(7)).expect("starts");
    assert!(!writer.is_stopped());
    // Every record after the first needs a new segment, in a directory
    // that is gone.
    fs::remove_dir_all(&log_dir).expect("log directory removed");
    assert!(writer.append(message(0, "first")));
    assert!(writer.append(message(1, "second")));
    wait_for(|| writer.is_stopped());
    assert!(!writer.append(message(2, "third")));
    assert_eq!(writer.stats().dropped, 1);
    let error = writer.close().expect_err("the writer's error");
    assert!(matches!(error, LogError::Io { .. }), "{error}");
}

/// Environment variable naming the directory the crash child writes to.
const CRASH_DIR: &str = "EAXCHAT_MSGLOG_CRASH_DIR";

/// Not a test by itself: the child of `kill_9_keeps_every_fsynced_record`,
/// run only when that test starts this binary with [`CRASH_DIR`] set.
/// Appends with `Fsync::Always` and prints `acked N` once record N is synced.
#[test]
#[ignore = "run by kill_9_keeps_every_fsynced_record"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let mut writer = LogWriter::start(config(&dir, Fsync::Always), &key(8)).expect("starts");
    let mut stdout = io::stdout();
    for i in 0..1_000_000u64 {
        // A few records in flight at once, so the kill may land mid-write.
        wait_for(|| writer.append(message(i, &format!("crash test message {i:07}"))));
        let synced = writer.stats().synced;
        if synced > 0 {
            writeln!(stdout, "acked {}", synced - 1).expect("stdout");
            stdout.flush().expect("stdout");
        }
        if i % 4 == 3 {
            wait_for(|| writer.stats().synced > synced);
        }
    }
}

#[test]
fn kill_9_keeps_every_fsynced_record() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "msglog::tests::crash_child",
            "--ignored",
            "--nocapture",
        ])
        .env(CRASH_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (acks, acked) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line
                .strip_prefix("acked ")
                .and_then(|n| n.parse::<u64>().ok())
                && acks.send(n).is_err()
            {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_acked = None;
    while last_acked.is_none_or(|n| n < 300) {
        let left = deadline.saturating_duration_since(Instant::now());
        match acked.recv_timeout(left) {
            Ok(n) => last_acked = Some(n),
            Err(_) => break,
        }
    }
    // SIGKILL, by the child's PID.
    child.kill().expect("child killed");
    child.wait().expect("child reaped");
    reader.join().expect("reader joined");
    while let Ok(n) = acked.try_recv() {
        last_acked = last_acked.max(Some(n));
    }
    let last_acked = last_acked.expect("the child acknowledged records before the deadline");
    assert!(last_acked >= 300, "only {last_acked} acknowledged in 30 s");

    let (records, report) = open_and_replay(dir.path(), &key(8)).expect("replays");
    // A clean prefix: records 0, 1, 2, ... with none missing, and at least
    // every acknowledged one.
    assert!(
        records.len() as u64 > last_acked,
        "{} records, {last_acked} acked",
        records.len()
    );
    for (i, record) in records.iter().enumerate() {
        assert_eq!(
            record,
            &message(i as u64, &format!("crash test message {i:07}"))
        );
    }
    assert!(report.truncated.len() <= 1);
    // Whatever was cut is gone for good: a second replay is clean.
    let (again, report) = open_and_replay(dir.path(), &key(8)).expect("replays");
    assert_eq!(again.len(), records.len());
    assert!(report.truncated.is_empty());
}
