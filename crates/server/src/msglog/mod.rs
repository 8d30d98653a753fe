//! The encrypted message log (`--log DIR`): room messages, joins and leaves
//! appended to segment files, each record sealed under the log key, and
//! replayed on start to rebuild room history. Plaintext never touches the
//! disk, and the caller (the poll loop) never waits on it.
//!
//! This file owns the settings ([`LogConfig`], [`Fsync`]), the log key and
//! the errors; the rest is split by concern:
//! - `segments`: the files on disk and the sealed record's frame in them;
//! - `writer`: the writer thread behind [`LogWriter`];
//! - `recovery`: reading the log back ([`open_and_replay`], [`read_log`],
//!   [`open_and_index`]);
//! - `index`: where each room's messages are in the log ([`LogIndex`]);
//! - `pages`: `/history` pages read back from it ([`LogWriter::read_page`]);
//! - [`export`]: `relay log`'s text.
//!
//! A record's plaintext is encoded and decoded by
//! [`eaxchat_core::record`], re-exported here as [`Record`]; its layout is
//! documented below, with the rest of the format on disk.
//!
//! # On disk
//!
//! `DIR/NNNNNNNN.log`, eight decimal digits, read in numeric order; other
//! files are ignored. Each segment opens with the 8 bytes `EAXLOG\0\x02`
//! (the format's version, 2), then its records, each
//!
//! ```text
//! len (u32 LE) ‖ crc32 (u32 LE, IEEE, of the sealed bytes) ‖ sealed
//! sealed = nonce (16, random per record) ‖ tag (16) ‖ EAX ciphertext
//! associated data = "eaxchat-log2" ‖ segment number (u32 BE) ‖ index (u64 BE)
//! ```
//!
//! The CRC finds a torn or corrupt record; the EAX tag authenticates the
//! content under the log key ([`load_or_create_key`], a file of its own,
//! mode 0600 like `relay.key`; the relay keeps it in its state directory,
//! not beside the log) and binds it to its place: the segment's number and
//! the record's index in it, so a record reordered, dropped from the
//! middle or spliced in from another segment fails. A segment with no
//! header is in the previous format (version 1: the same frames, sealed
//! with no associated data); it is still read, as written. The plaintext,
//! in either:
//!
//! ```text
//! version (u8: 2 a message with its id, 1 anything else)
//! ‖ kind (u8: 1 message, 2 action, 3 join, 4 leave, 5 MLS)
//! ‖ ts_millis (u64 LE) ‖ room_len (u8) ‖ room ‖ name_len (u8) ‖ name
//! ‖ (messages, version 2 only) id (u64 LE)
//! ‖ (messages only) text_len (u32 LE) ‖ text
//! ```
//!
//! The id is the message's number in its room as the core gave it live
//! (`index`), so it survives whatever records are lost around it. Messages
//! written before ids were kept are version 1; their ids are counted from
//! the log, as those relays counted them.
//!
//! # Writing
//!
//! [`LogWriter::append`] hands a record to a writer thread through a
//! bounded channel ([`LogConfig::queue`] records) and returns at once. When
//! the disk is slower than the chat and the queue is full, the record is
//! dropped and counted ([`LogStats::dropped`]): the chat goes on and the log
//! has a gap, never the other way round. The thread seals each record,
//! writes it straight to the current segment (no user-space buffer, so a
//! killed relay loses only what was still queued) and syncs as
//! [`Fsync`] says, as Redis's `appendfsync` does. Each start opens a new
//! segment, so nothing is ever appended after an old tail. A segment past
//! [`LogConfig::segment_bytes`] is closed and the next one begun; whenever
//! the segments pass [`LogConfig::max_bytes`] in all, the oldest are
//! deleted (never the current one).
//!
//! # Recovery
//!
//! [`open_and_replay`] reads every segment. A record that fails (a short
//! length, a bad CRC, a tag that does not open at its place) in the last
//! segment with no intact record after it is a torn tail: the segment is
//! cut there and the cut reported ([`RecoveryReport::truncated`]). Any
//! other failure is damage: the log is refused ([`LogError::Damaged`],
//! naming the segment, the record's index and offset and what follows it)
//! and nothing is changed, as Redis refuses an AOF damaged in the middle;
//! [`repair`] cuts there when the operator says so (`relay log repair`).
//! If the log's first record does not open, the log is under another key:
//! it is refused ([`LogError::WrongKey`]) and nothing is truncated.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use eaxchat_proto::key::{Key, KeyError};

pub mod export;
mod index;
mod pages;
mod recovery;
mod segments;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_damage;
#[cfg(test)]
mod tests_pages;
mod writer;

pub use eaxchat_core::record::{FORMAT_VERSION, Record};
pub use index::LogIndex;
pub use pages::{MAX_PAGE, Page};
pub use recovery::{
    Damage, RecoveryReport, SegmentSummary, TailProblem, Truncation, open_and_index,
    open_and_replay, read_log, repair,
};
pub use segments::{MAX_SEALED_LEN, SEGMENT_MAGIC};
pub use writer::{LogStats, LogWriter};

/// `--log-max-bytes`'s default: 256 MiB of segments.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// The default queue between the caller and the writer thread, in records.
pub const DEFAULT_QUEUE: usize = 4096;

/// When the writer thread syncs the segment to disk (`--log-fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every batch of records it writes: a record counted in
    /// [`LogStats::synced`] survives a crash of the machine.
    Always,
    /// At most a second after a write: a machine crash loses at most about
    /// a second of records. The default, as Redis's.
    EverySec,
    /// Only on rotation and close; the OS writes back when it will. A
    /// crash of the relay alone still loses nothing already written.
    No,
}

impl FromStr for Fsync {
    type Err = String;

    fn from_str(text: &str) -> Result<Fsync, String> {
        match text {
            "always" => Ok(Fsync::Always),
            "everysec" => Ok(Fsync::EverySec),
            "no" => Ok(Fsync::No),
            _ => Err("expected always, everysec or no".to_owned()),
        }
    }
}

impl fmt::Display for Fsync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fsync::Always => "always",
            Fsync::EverySec => "everysec",
            Fsync::No => "no",
        })
    }
}

/// How the log is written.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The log's directory, created (mode 0700) if missing.
    pub dir: PathBuf,
    /// When to sync.
    pub fsync: Fsync,
    /// The bound on all segments together, in bytes (`--log-max-bytes`).
    pub max_bytes: u64,
    /// The size past which a segment is closed and the next one begun.
    pub segment_bytes: u64,
    /// How many records may wait for the writer thread.
    pub queue: usize,
}

impl LogConfig {
    /// The defaults for `dir`: `everysec`, [`DEFAULT_MAX_BYTES`], segments
    /// of an eighth of that, a queue of [`DEFAULT_QUEUE`] records.
    pub fn new(dir: impl Into<PathBuf>) -> LogConfig {
        LogConfig {
            dir: dir.into(),
            fsync: Fsync::EverySec,
            max_bytes: DEFAULT_MAX_BYTES,
            segment_bytes: DEFAULT_MAX_BYTES / 8,
            queue: DEFAULT_QUEUE,
        }
    }
}

/// Why the log could not be opened, replayed or written.
#[derive(Debug)]
pub enum LogError {
    /// A file or the directory could not be read or written.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// The log key file could not be read or created.
    Key(KeyError),
    /// The log's first record does not open under this key.
    WrongKey {
        /// The segment holding that record.
        segment: PathBuf,
    },
    /// A record opens under the key but is not one this version reads
    /// (written by a newer relay, say). Refused rather than truncated.
    Undecodable {
        /// The segment.
        segment: PathBuf,
        /// The record's offset in it.
        offset: u64,
        /// What is wrong.
        problem: &'static str,
    },
    /// A record before the log's tail fails: cutting there would lose the
    /// records after it, so the log is refused and left as it is.
    Damaged {
        /// The log's directory.
        dir: PathBuf,
        /// The first damage.
        damage: Damage,
        /// How many more damaged segments there are.
        more: usize,
    },
    /// The writer thread panicked.
    WriterPanicked,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Io { path, error } => write!(f, "message log {}: {error}", path.display()),
            LogError::Key(error) => write!(f, "message log key: {error}"),
            LogError::WrongKey { segment } => write!(
                f,
                "message log {}: its first record does not open under this log key; \
                 refusing a log written under another key",
                segment.display()
            ),
            LogError::Undecodable {
                segment,
                offset,
                problem,
            } => write!(
                f,
                "message log {} at byte {offset}: {problem}; refusing to truncate a record \
                 that opens",
                segment.display()
            ),
            LogError::Damaged { dir, damage, more } => {
                write!(f, "message log damaged before its end: {damage}")?;
                if *more > 0 {
                    write!(f, " (and {more} more damaged segments)")?;
                }
                write!(
                    f,
                    "; refusing to start rather than cut them away. \
                     `relay log check {dir}` shows what is intact; \
                     `relay log repair {dir} --yes` cuts the damaged segments there",
                    dir = dir.display()
                )
            }
            LogError::WriterPanicked => f.write_str("message log: the writer thread panicked"),
        }
    }
}

impl std::error::Error for LogError {}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |error| LogError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Reads the log key from `path`, or creates it (a fresh random key, mode
/// 0600) if the file does not exist.
pub fn load_or_create_key(path: &Path) -> Result<Key, LogError> {
    if let Some(key) = Key::read_file(path).map_err(LogError::Key)? {
        return Ok(key);
    }
    let key = Key::generate().map_err(io_error(path))?;
    key.write_new_file(path).map_err(LogError::Key)?;
    Ok(key)
}
