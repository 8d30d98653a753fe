//! Reading the log back: every segment, oldest first, frame by frame, into
//! [`Record`]s, with a [`RecoveryReport`] of the segments cut short.
//!
//! A short length, a bad CRC or a record that does not open ends that
//! segment; every record before it is kept and later segments are still
//! read. [`open_and_replay`] (the relay starting) then truncates each
//! segment there; [`read_log`] (`relay log`) only reports. A log whose
//! first record does not open is under another key and refused whole,
//! and a record that opens but does not decode is refused rather than
//! cut: nothing is truncated until the whole log has been read.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use eaxchat_proto::cipher::eax_key;
use eaxchat_proto::eax_key::EaxKey;
use eaxchat_proto::key::Key;
use eaxchat_proto::wire::{NONCE_LEN, OVERHEAD, TAG_LEN};

use super::segments::{MAX_SEALED_LEN, RECORD_HEADER, crc32, list_segments};
use super::{LogError, Record, io_error};

/// Why a segment was cut short on replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailProblem {
    /// Fewer bytes than the record's header or its stated length.
    Torn,
    /// A length of zero, below a sealed record's minimum or over
    /// [`MAX_SEALED_LEN`].
    BadLength,
    /// The CRC does not match the sealed bytes.
    BadChecksum,
    /// The CRC matches but the record does not open under the key.
    DoesNotOpen,
}

impl fmt::Display for TailProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TailProblem::Torn => "torn record",
            TailProblem::BadLength => "bad record length",
            TailProblem::BadChecksum => "bad checksum",
            TailProblem::DoesNotOpen => "record does not open",
        })
    }
}

/// One segment cut short on replay.
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

/// What [`open_and_replay`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// How many segments were read.
    pub segments: usize,
    /// How many records were kept.
    pub records: usize,
    /// The segments cut short, in order; empty after a clean shutdown.
    pub truncated: Vec<Truncation>,
}

/// Reads every record in `dir` (created, mode 0700, if missing), oldest
/// first, truncating torn or corrupt tails. See the module docs.
pub fn open_and_replay(dir: &Path, key: &Key) -> Result<(Vec<Record>, RecoveryReport), LogError> {
    let (records, report) = read_log(dir, key)?;
    // Cut only once the whole log has been read: a wrong key found in a
    // later segment must leave every file as it was.
    for cut in &report.truncated {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(&cut.segment)
            .map_err(io_error(&cut.segment))?;
        file.set_len(cut.offset).map_err(io_error(&cut.segment))?;
        file.sync_all().map_err(io_error(&cut.segment))?;
    }
    Ok((records, report))
}

/// Reads every record in `dir` as [`open_and_replay`] does, but changes
/// nothing: a torn tail is reported in [`RecoveryReport::truncated`] and
/// left on disk (`relay log`).
pub fn read_log(dir: &Path, key: &Key) -> Result<(Vec<Record>, RecoveryReport), LogError> {
    let key = eax_key(key);
    let segments = list_segments(dir)?;
    let mut records = Vec::new();
    let mut report = RecoveryReport {
        segments: segments.len(),
        ..RecoveryReport::default()
    };
    for (_, path) in &segments {
        let bytes = fs::read(path).map_err(io_error(path))?;
        let (end, problem) = read_segment(&bytes, &key, path, &mut records)?;
        if let Some(problem) = problem {
            report.truncated.push(Truncation {
                segment: path.clone(),
                offset: end as u64,
                removed: (bytes.len() - end) as u64,
                problem,
            });
        }
    }
    report.records = records.len();
    Ok((records, report))
}

/// Reads one segment's records into `records`; returns where the good
/// records end and, if bytes follow, what is wrong with them.
fn read_segment(
    bytes: &[u8],
    key: &EaxKey,
    path: &Path,
    records: &mut Vec<Record>,
) -> Result<(usize, Option<TailProblem>), LogError> {
    let mut at = 0;
    let mut plaintext = Vec::new();
    while at < bytes.len() {
        let rest = &bytes[at..];
        let Some((header, after)) = rest.split_first_chunk::<RECORD_HEADER>() else {
            return Ok((at, Some(TailProblem::Torn)));
        };
        let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        if !(OVERHEAD..=MAX_SEALED_LEN).contains(&len) {
            return Ok((at, Some(TailProblem::BadLength)));
        }
        let Some(sealed) = after.get(..len) else {
            return Ok((at, Some(TailProblem::Torn)));
        };
        if crc32(sealed) != u32::from_le_bytes([c0, c1, c2, c3]) {
            return Ok((at, Some(TailProblem::BadChecksum)));
        }
        let Some((nonce, rest)) = sealed.split_first_chunk::<NONCE_LEN>() else {
            return Ok((at, Some(TailProblem::BadLength)));
        };
        let Some((tag, ciphertext)) = rest.split_first_chunk::<TAG_LEN>() else {
            return Ok((at, Some(TailProblem::BadLength)));
        };
        plaintext.clear();
        plaintext.extend_from_slice(ciphertext);
        if key
            .open_in_place_detached(nonce, &mut plaintext, tag)
            .is_err()
        {
            if records.is_empty() {
                return Err(LogError::WrongKey {
                    segment: path.to_owned(),
                });
            }
            return Ok((at, Some(TailProblem::DoesNotOpen)));
        }
        let record = Record::decode(&plaintext).map_err(|problem| LogError::Undecodable {
            segment: path.to_owned(),
            offset: at as u64,
            problem,
        })?;
        records.push(record);
        at += RECORD_HEADER + len;
    }
    Ok((at, None))
}
