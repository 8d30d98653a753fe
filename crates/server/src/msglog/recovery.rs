//! Reading the log back: every segment, oldest first, frame by frame, into
//! [`Record`]s, with a [`RecoveryReport`] of what was found.
//!
//! A record is checked by its length, its CRC and its tag, the tag under
//! the record's place (segment number and index, [`Position`]) in the
//! current format, so a record moved, reordered or spliced in from
//! elsewhere does not open. What fails is one of two things:
//! - a **torn tail**: in the last segment, with no intact record after it
//!   (a crash mid-write). [`open_and_replay`] cuts it, as before;
//! - **damage**: anything else. Records after it would be lost by a cut,
//!   so [`open_and_replay`] refuses the log ([`LogError::Damaged`]: the
//!   segment, the record's index and offset, and what follows it) and
//!   changes nothing; [`repair`] (`relay log repair`) cuts there once told
//!   to. [`read_log`] (`relay log`, `relay log check`) only reports.
//!
//! [`open_and_index`] also gives the place of each room's messages
//! ([`LogIndex`]), for `/history` pages read from the log.
//!
//! A log whose first record does not open is under another key and refused
//! whole, and a record that opens but does not decode is refused rather
//! than cut. Segments in the previous format (no header, no associated
//! data) are still read, as they were written.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use eaxchat_proto::cipher::eax_key;
use eaxchat_proto::eax_key::EaxKey;
use eaxchat_proto::key::Key;
use eaxchat_proto::wire::{NONCE_LEN, OVERHEAD, TAG_LEN};

use super::index::{LogIndex, Place};
use super::segments::{
    MAX_SEALED_LEN, Position, RECORD_HEADER, SEGMENT_MAGIC, crc32, list_segments,
};
use super::{LogError, Record, io_error};

/// What is wrong with a record that fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailProblem {
    /// Fewer bytes than the record's header or its stated length.
    Torn,
    /// A length of zero, below a sealed record's minimum or over
    /// [`MAX_SEALED_LEN`].
    BadLength,
    /// The CRC does not match the sealed bytes.
    BadChecksum,
    /// The CRC matches but the record does not open under the key at its
    /// place: changed, moved, reordered, or spliced in.
    DoesNotOpen,
}

impl fmt::Display for TailProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TailProblem::Torn => "torn record",
            TailProblem::BadLength => "bad record length",
            TailProblem::BadChecksum => "bad checksum",
            TailProblem::DoesNotOpen => "record does not open at its place",
        })
    }
}

/// A torn tail: cut on start ([`open_and_replay`]), reported otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The segment.
    pub segment: PathBuf,
    /// Where it now ends: every record before this offset was kept.
    pub offset: u64,
    /// How many bytes after it were removed.
    pub removed: u64,
    /// What was found there.
    pub problem: TailProblem,
}

/// Damage before the tail: a record that fails with intact records after
/// it. The relay refuses to start on it; `relay log repair` cuts there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The segment.
    pub segment: PathBuf,
    /// The failing record's index in its segment, from 0.
    pub index: u64,
    /// Its byte offset in the segment.
    pub offset: u64,
    /// Bytes from it to the segment's end: what a repair cuts.
    pub bytes_after: u64,
    /// What is wrong with it.
    pub problem: TailProblem,
    /// Records after it in the same segment whose checksum holds: lost by
    /// a repair.
    pub intact_after: u64,
    /// Records in later segments (kept by a repair).
    pub later_records: u64,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: record {} at byte {}: {}; {} records after it in this segment, \
             {} records in later segments",
            self.segment.display(),
            self.index,
            self.offset,
            self.problem,
            self.intact_after,
            self.later_records
        )
    }
}

/// What reading the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// How many segments were read.
    pub segments: usize,
    /// Of them, how many in the previous format (records not bound to
    /// their place).
    pub legacy_segments: usize,
    /// How many records were kept.
    pub records: usize,
    /// The torn tails, cut by [`open_and_replay`]; empty after a clean
    /// shutdown.
    pub truncated: Vec<Truncation>,
    /// Damage before the tail, in order: [`open_and_replay`] refuses a log
    /// with any.
    pub damage: Vec<Damage>,
    /// Each segment read, in order.
    pub read: Vec<SegmentSummary>,
}

/// One segment as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    /// The segment.
    pub path: PathBuf,
    /// Its records read intact before any failure.
    pub records: u64,
    /// In the previous format: records not bound to their place.
    pub legacy: bool,
}

/// The records read, each one's place (`None`: one that does not fit an
/// index), and the report.
type Placed = (Vec<Record>, Vec<Option<Place>>, RecoveryReport);

/// Reads every record in `dir` (created, mode 0700, if missing), oldest
/// first, truncating torn or corrupt tails. See the module docs.
pub fn open_and_replay(dir: &Path, key: &Key) -> Result<(Vec<Record>, RecoveryReport), LogError> {
    let (records, _, report) = open_placed(dir, key)?;
    Ok((records, report))
}

/// [`open_and_replay`], and the index of every room's messages in the log
/// (for [`LogWriter::start_indexed`](super::LogWriter::start_indexed), so
/// `/history` pages older than memory are read from the log).
pub fn open_and_index(
    dir: &Path,
    key: &Key,
) -> Result<(Vec<Record>, RecoveryReport, LogIndex), LogError> {
    let (records, places, report) = open_placed(dir, key)?;
    let index = LogIndex::build(&records, &places);
    Ok((records, report, index))
}

fn open_placed(dir: &Path, key: &Key) -> Result<Placed, LogError> {
    let (records, places, report) = read_placed(dir, key)?;
    if let Some(damage) = report.damage.first() {
        return Err(LogError::Damaged {
            dir: dir.to_owned(),
            damage: damage.clone(),
            more: report.damage.len() - 1,
        });
    }
    // Cut only once the whole log has been read: a wrong key found in a
    // later segment must leave every file as it was.
    for cut in &report.truncated {
        cut_segment(&cut.segment, cut.offset)?;
    }
    Ok((records, places, report))
}

/// `relay log repair`: reads the log as [`read_log`] does, then cuts every
/// damaged segment at its damage and every torn tail, losing what
/// [`RecoveryReport::damage`] says. Returns what was read (the records
/// kept) and what was cut.
pub fn repair(dir: &Path, key: &Key) -> Result<(Vec<Record>, RecoveryReport), LogError> {
    let (records, report) = read_log(dir, key)?;
    for damage in &report.damage {
        cut_segment(&damage.segment, damage.offset)?;
    }
    for cut in &report.truncated {
        cut_segment(&cut.segment, cut.offset)?;
    }
    Ok((records, report))
}

fn cut_segment(segment: &Path, offset: u64) -> Result<(), LogError> {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(segment)
        .map_err(io_error(segment))?;
    file.set_len(offset).map_err(io_error(segment))?;
    file.sync_all().map_err(io_error(segment))
}

/// Reads every record in `dir` as [`open_and_replay`] does, but changes
/// nothing: torn tails and damage are reported and left on disk (`relay
/// log`, `relay log check`). The records returned are those a repair
/// keeps: every record before each damage, and every intact segment.
pub fn read_log(dir: &Path, key: &Key) -> Result<(Vec<Record>, RecoveryReport), LogError> {
    let (records, _, report) = read_placed(dir, key)?;
    Ok((records, report))
}

/// [`read_log`], with each record's place beside it.
fn read_placed(dir: &Path, key: &Key) -> Result<Placed, LogError> {
    let key = eax_key(key);
    let segments = list_segments(dir)?;
    let mut records = Vec::new();
    let mut places = Vec::new();
    let mut report = RecoveryReport {
        segments: segments.len(),
        ..RecoveryReport::default()
    };
    let mut per_segment = Vec::with_capacity(segments.len());
    for (number, path) in &segments {
        let bytes = fs::read(path).map_err(io_error(path))?;
        let before = records.len();
        let read = read_segment(&bytes, *number, &key, path, &mut records, &mut places)?;
        report.legacy_segments += usize::from(read.legacy);
        report.read.push(SegmentSummary {
            path: path.clone(),
            records: (records.len() - before) as u64,
            legacy: read.legacy,
        });
        per_segment.push(
            (records.len() - before) as u64 + read.failed.as_ref().map_or(0, |f| f.intact_after),
        );
        if let Some(failed) = read.failed {
            report.damage.push(Damage {
                segment: path.clone(),
                index: failed.index,
                offset: failed.offset as u64,
                bytes_after: (bytes.len() - failed.offset) as u64,
                problem: failed.problem,
                intact_after: failed.intact_after,
                later_records: 0,
            });
        }
    }
    // Records in later segments, now that every segment has been read.
    let mut later = 0;
    let mut damage = report.damage.iter_mut().rev().peekable();
    for ((_, path), count) in segments.iter().zip(&per_segment).rev() {
        if let Some(found) = damage.next_if(|damage| damage.segment == *path) {
            found.later_records = later;
        }
        later += count;
    }
    // A failure in the last segment with nothing intact after it is a torn
    // tail (a crash mid-write), not damage.
    if let Some(last) = report.damage.last()
        && last.intact_after == 0
        && last.later_records == 0
        && segments
            .last()
            .is_some_and(|(_, path)| *path == last.segment)
    {
        report.truncated.push(Truncation {
            segment: last.segment.clone(),
            offset: last.offset,
            removed: last.bytes_after,
            problem: last.problem,
        });
        report.damage.pop();
    }
    report.records = records.len();
    Ok((records, places, report))
}

/// What reading one segment found.
struct SegmentRead {
    /// It has no header: the previous format.
    legacy: bool,
    /// The first record that failed, if any.
    failed: Option<Failed>,
}

/// The first record of a segment that failed.
struct Failed {
    index: u64,
    offset: usize,
    problem: TailProblem,
    /// Records after it whose checksum holds.
    intact_after: u64,
}

/// Reads one segment's records into `records`, up to the first that fails.
fn read_segment(
    bytes: &[u8],
    number: u32,
    key: &EaxKey,
    path: &Path,
    records: &mut Vec<Record>,
    places: &mut Vec<Option<Place>>,
) -> Result<SegmentRead, LogError> {
    let legacy = !bytes.starts_with(&SEGMENT_MAGIC);
    if legacy && !bytes.is_empty() && SEGMENT_MAGIC.starts_with(bytes) {
        // A crash while the header itself was written.
        let failed = Failed {
            index: 0,
            offset: 0,
            problem: TailProblem::Torn,
            intact_after: 0,
        };
        return Ok(SegmentRead {
            legacy: false,
            failed: Some(failed),
        });
    }
    let mut at = if legacy { 0 } else { SEGMENT_MAGIC.len() };
    let mut index = 0u64;
    let mut plaintext = Vec::new();
    while at < bytes.len() {
        let (len, problem) = match frame_at(bytes, at) {
            Ok(len) => {
                let at_place = Position {
                    segment: number,
                    index,
                };
                if open_frame(
                    &bytes[at + RECORD_HEADER..][..len],
                    key,
                    legacy,
                    at_place,
                    &mut plaintext,
                ) {
                    (len, None)
                } else {
                    (len, Some(TailProblem::DoesNotOpen))
                }
            }
            Err(problem) => (0, Some(problem)),
        };
        if let Some(problem) = problem {
            if problem == TailProblem::DoesNotOpen && records.is_empty() && index == 0 {
                return Err(LogError::WrongKey {
                    segment: path.to_owned(),
                });
            }
            let resume = if len > 0 {
                at + RECORD_HEADER + len
            } else {
                at + 1
            };
            let failed = Failed {
                index,
                offset: at,
                problem,
                intact_after: count_intact(bytes, resume),
            };
            return Ok(SegmentRead {
                legacy,
                failed: Some(failed),
            });
        }
        let record = Record::decode(&plaintext).map_err(|problem| LogError::Undecodable {
            segment: path.to_owned(),
            offset: at as u64,
            problem,
        })?;
        records.push(record);
        places.push(Place::new(number, index, at as u64));
        index += 1;
        at += RECORD_HEADER + len;
    }
    Ok(SegmentRead {
        legacy,
        failed: None,
    })
}

/// The sealed length of the frame at `at`, if its length is plausible, it
/// is all there and its CRC holds.
pub(super) fn frame_at(bytes: &[u8], at: usize) -> Result<usize, TailProblem> {
    let rest = bytes.get(at..).unwrap_or_default();
    let Some((header, after)) = rest.split_first_chunk::<RECORD_HEADER>() else {
        return Err(TailProblem::Torn);
    };
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    if !(OVERHEAD..=MAX_SEALED_LEN).contains(&len) {
        return Err(TailProblem::BadLength);
    }
    let Some(sealed) = after.get(..len) else {
        return Err(TailProblem::Torn);
    };
    if crc32(sealed) != u32::from_le_bytes([c0, c1, c2, c3]) {
        return Err(TailProblem::BadChecksum);
    }
    Ok(len)
}

/// Opens `sealed` into `plaintext`: bound to `at` in the current format,
/// with no associated data in the previous one.
pub(super) fn open_frame(
    sealed: &[u8],
    key: &EaxKey,
    legacy: bool,
    at: Position,
    plaintext: &mut Vec<u8>,
) -> bool {
    let Some((nonce, rest)) = sealed.split_first_chunk::<NONCE_LEN>() else {
        return false;
    };
    let Some((tag, ciphertext)) = rest.split_first_chunk::<TAG_LEN>() else {
        return false;
    };
    plaintext.clear();
    plaintext.extend_from_slice(ciphertext);
    let opened = if legacy {
        key.open_in_place_detached(nonce, plaintext, tag)
    } else {
        key.open_with_header(nonce, &at.associated_data(), plaintext, tag)
    };
    opened.is_ok()
}

/// Frames whose checksum holds from `at` on, stepping over bytes that are
/// none: what a cut at a failure before them would lose.
fn count_intact(bytes: &[u8], mut at: usize) -> u64 {
    let mut intact = 0;
    while at + RECORD_HEADER + OVERHEAD <= bytes.len() {
        match frame_at(bytes, at) {
            Ok(len) => {
                intact += 1;
                at += RECORD_HEADER + len;
            }
            Err(_) => at += 1,
        }
    }
    intact
}
