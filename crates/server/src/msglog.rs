//! The encrypted message log (`--log DIR`): room messages, joins and leaves
//! appended to segment files, each record sealed under the log key, and
//! replayed on start to rebuild room history. It owns the record format,
//! the writer thread and recovery; plaintext never touches the disk, and
//! the caller (the poll loop) never waits on it.
//!
//! # On disk
//!
//! `DIR/NNNNNNNN.log`, eight decimal digits, read in numeric order; other
//! files are ignored. Each record is
//!
//! ```text
//! len (u32 LE) ‖ crc32 (u32 LE, IEEE, of the sealed bytes) ‖ sealed
//! sealed = nonce (16, random per record) ‖ tag (16) ‖ EAX ciphertext
//! ```
//!
//! The CRC finds a torn or corrupt tail; the EAX tag authenticates the
//! content under the log key ([`load_or_create_key`], a file of its own,
//! mode 0600 like `relay.key`). The plaintext, version 1:
//!
//! ```text
//! version = 1 (u8) ‖ kind (u8: 1 message, 2 action, 3 join, 4 leave)
//! ‖ ts_millis (u64 LE) ‖ room_len (u8) ‖ room ‖ name_len (u8) ‖ name
//! ‖ (message and action only) text_len (u32 LE) ‖ text
//! ```
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
//! [`open_and_replay`] reads every segment. A short length, a bad CRC or a
//! record that does not open ends that segment: the file is truncated
//! there and the cut reported ([`RecoveryReport::truncated`]); every
//! record before it is kept, and later segments are still read. If the
//! log's first record does not open, the log is under another key: it is
//! refused ([`LogError::WrongKey`]) and nothing is truncated.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng as _, SeedableRng as _};

use eaxchat_proto::cipher::eax_key;
use eaxchat_proto::eax_key::{EaxKey, NONCE_LEN, OVERHEAD, TAG_LEN};
use eaxchat_proto::key::{Key, KeyError};

pub mod export;

pub use eaxchat_core::record::{FORMAT_VERSION, Record};

/// The largest sealed record accepted, written or read: 1 MiB, far above
/// any chat frame. A length above it is corruption.
pub const MAX_SEALED_LEN: usize = 1 << 20;

/// `--log-max-bytes`'s default: 256 MiB of segments.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// The default queue between the caller and the writer thread, in records.
pub const DEFAULT_QUEUE: usize = 4096;

/// Bytes before the sealed bytes of a record: its length and CRC.
const RECORD_HEADER: usize = 8;

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

/// The segments in `dir`, by number; creates `dir` if missing.
fn list_segments(dir: &Path) -> Result<Vec<(u32, PathBuf)>, LogError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(dir))?;
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(number) = name.to_str().and_then(segment_number) else {
            continue;
        };
        segments.push((number, entry.path()));
    }
    segments.sort_unstable();
    Ok(segments)
}

fn segment_number(file_name: &str) -> Option<u32> {
    let digits = file_name.strip_suffix(".log")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn segment_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("{number:08}.log"))
}

/// CRC-32 (IEEE 802.3, as zlib's `crc32`), bytewise over a table built at
/// compile time: records are small and written at chat speed.
fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut n = 0;
        while n < 256 {
            let mut c = n as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[n] = c;
            n += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |crc, &b| {
        TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8)
    })
}

/// The writer's counters, shared with the thread.
#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
    synced: AtomicU64,
}

/// A snapshot of the writer's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    /// Records handed to the writer thread.
    pub queued: u64,
    /// Records dropped: the queue was full, the record too large, or the
    /// writer had stopped on an error.
    pub dropped: u64,
    /// Records written to a segment (in the OS's cache at least).
    pub written: u64,
    /// Records written and then synced to disk.
    pub synced: u64,
}

enum Job {
    Append(Record),
    /// Tests only: the writer says it is held, then waits until the
    /// release is dropped, so a test can fill the queue.
    #[cfg(test)]
    Hold {
        held: mpsc::Sender<()>,
        release: Receiver<()>,
    },
}

/// The handle on the writer thread. Dropping it (or [`LogWriter::close`])
/// writes what is queued, syncs, and joins the thread.
pub struct LogWriter {
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<Result<(), LogError>>>,
    counters: Arc<Counters>,
}

impl fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogWriter")
            .field("stats", &self.stats())
            .finish()
    }
}

impl LogWriter {
    /// Opens a new segment in `config.dir` (after the existing ones, which
    /// [`open_and_replay`] should have read first) and starts the writer
    /// thread.
    pub fn start(config: LogConfig, key: &Key) -> Result<LogWriter, LogError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|error| LogError::Io {
            path: config.dir.clone(),
            error: io::Error::other(error),
        })?;
        let mut segments = Segments::open(config.clone())?;
        segments.begin_next()?;
        let counters = Arc::new(Counters::default());
        let (jobs, queue) = mpsc::sync_channel(config.queue);
        let thread_counters = Arc::clone(&counters);
        let sealer = Sealer {
            key: eax_key(key),
            nonces: ChaCha20Rng::from_seed(seed),
            record: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("eaxchat-log".to_owned())
            .spawn(move || write_loop(queue, segments, sealer, &thread_counters))
            .map_err(io_error(&config.dir))?;
        Ok(LogWriter {
            jobs: Some(jobs),
            thread: Some(thread),
            counters,
        })
    }

    /// Hands `record` to the writer thread without waiting. `false` if it
    /// was dropped (and counted): the queue was full or the writer stopped.
    pub fn append(&self, record: Record) -> bool {
        let sent = match &self.jobs {
            Some(jobs) => match jobs.try_send(Job::Append(record)) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        let counter = if sent {
            &self.counters.queued
        } else {
            &self.counters.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
        sent
    }

    /// Whether the writer thread has stopped on an error (every append
    /// since is dropped); [`LogWriter::close`] returns the error.
    pub fn is_stopped(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// The counters now.
    pub fn stats(&self) -> LogStats {
        let c = &self.counters;
        LogStats {
            queued: c.queued.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Acquire),
            synced: c.synced.load(Ordering::Acquire),
        }
    }

    /// Writes what is queued, syncs, stops the thread, and returns the
    /// final counters or the error that stopped the writer.
    pub fn close(mut self) -> Result<LogStats, LogError> {
        self.stop()?;
        Ok(self.stats())
    }

    fn stop(&mut self) -> Result<(), LogError> {
        self.jobs = None;
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| LogError::WriterPanicked)?,
            None => Ok(()),
        }
    }

    #[cfg(test)]
    fn hold(&self) -> mpsc::Sender<()> {
        let (release, released) = mpsc::channel();
        let (held, holding) = mpsc::channel();
        if let Some(jobs) = &self.jobs {
            let job = Job::Hold {
                held,
                release: released,
            };
            jobs.send(job).expect("the writer is running");
            holding
                .recv_timeout(Duration::from_secs(10))
                .expect("the writer holds");
        }
        release
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            log::error!("{error}");
        }
    }
}

/// Seals records into their on-disk form.
struct Sealer {
    key: EaxKey,
    nonces: ChaCha20Rng,
    record: Vec<u8>,
}

impl Sealer {
    /// The on-disk bytes of `record`, or `None` if over [`MAX_SEALED_LEN`].
    fn seal(&mut self, record: &Record) -> Option<&[u8]> {
        let buf = &mut self.record;
        buf.clear();
        buf.resize(RECORD_HEADER + OVERHEAD, 0);
        record.encode(buf);
        let sealed_len = buf.len() - RECORD_HEADER;
        if sealed_len > MAX_SEALED_LEN {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        self.nonces.fill_bytes(&mut nonce);
        let (header, sealed) = buf.split_at_mut(RECORD_HEADER);
        let (nonce_tag, plaintext) = sealed.split_at_mut(OVERHEAD);
        let tag = self.key.seal_in_place_detached(&nonce, plaintext);
        nonce_tag[..NONCE_LEN].copy_from_slice(&nonce);
        nonce_tag[NONCE_LEN..].copy_from_slice(&tag);
        let crc = crc32(sealed);
        header[..4].copy_from_slice(&(sealed_len as u32).to_le_bytes());
        header[4..].copy_from_slice(&crc.to_le_bytes());
        Some(buf)
    }
}

/// The writer thread: takes jobs until the handle is dropped.
fn write_loop(
    queue: Receiver<Job>,
    mut segments: Segments,
    mut sealer: Sealer,
    counters: &Counters,
) -> Result<(), LogError> {
    let fsync = segments.config.fsync;
    let mut last_sync = Instant::now();
    let mut unsynced = 0u64;
    loop {
        let first = if fsync == Fsync::EverySec && unsynced > 0 {
            let wait = Duration::from_secs(1).saturating_sub(last_sync.elapsed());
            queue.recv_timeout(wait)
        } else {
            queue.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        let batch_start = match first {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Group commit: write everything already queued, then sync once.
        for job in batch_start
            .into_iter()
            .chain(std::iter::from_fn(|| queue.try_recv().ok()))
        {
            match job {
                Job::Append(record) => match sealer.seal(&record) {
                    Some(bytes) => {
                        segments.write(bytes)?;
                        counters.written.fetch_add(1, Ordering::Release);
                        unsynced += 1;
                    }
                    None => {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                },
                #[cfg(test)]
                Job::Hold { held, release } => {
                    let _ = held.send(());
                    let _ = release.recv();
                }
            }
        }
        let due = match fsync {
            Fsync::Always => true,
            Fsync::EverySec => last_sync.elapsed() >= Duration::from_secs(1),
            Fsync::No => false,
        };
        if due && unsynced > 0 {
            segments.sync()?;
            counters.synced.fetch_add(unsynced, Ordering::Release);
            unsynced = 0;
            last_sync = Instant::now();
        }
    }
    segments.sync()?;
    counters.synced.fetch_add(unsynced, Ordering::Release);
    Ok(())
}

/// The segment files as the writer sees them: their numbers and sizes,
/// and the open current one.
struct Segments {
    config: LogConfig,
    /// Every segment, oldest first, with its size; the last is current.
    sizes: std::collections::VecDeque<(u32, u64)>,
    total: u64,
    current: Option<fs::File>,
}

impl Segments {
    fn open(config: LogConfig) -> Result<Segments, LogError> {
        let mut sizes = std::collections::VecDeque::new();
        let mut total = 0;
        for (number, path) in list_segments(&config.dir)? {
            let len = fs::metadata(&path).map_err(io_error(&path))?.len();
            sizes.push_back((number, len));
            total += len;
        }
        Ok(Segments {
            config,
            sizes,
            total,
            current: None,
        })
    }

    /// Closes the current segment (synced) and creates the next.
    fn begin_next(&mut self) -> Result<(), LogError> {
        if self.current.is_some() {
            self.sync()?;
        }
        let number = self.sizes.back().map_or(0, |&(n, _)| n.saturating_add(1));
        let path = segment_path(&self.config.dir, number);
        let file = fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error(&path))?;
        // The new file's name must survive a crash as well as its bytes.
        fs::File::open(&self.config.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(&self.config.dir))?;
        self.current = Some(file);
        self.sizes.push_back((number, 0));
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        let len = bytes.len() as u64;
        let current_len = self.sizes.back().map_or(0, |&(_, size)| size);
        if current_len > 0 && current_len + len > self.config.segment_bytes {
            self.begin_next()?;
        }
        let number = self.sizes.back().map_or(0, |&(n, _)| n);
        let path = segment_path(&self.config.dir, number);
        let Some(file) = self.current.as_mut() else {
            return Err(io_error(&path)(io::Error::other("no open segment")));
        };
        file.write_all(bytes).map_err(io_error(&path))?;
        if let Some((_, size)) = self.sizes.back_mut() {
            *size += len;
        }
        self.total += len;
        while self.total > self.config.max_bytes && self.sizes.len() > 1 {
            let Some((oldest, size)) = self.sizes.pop_front() else {
                break;
            };
            let path = segment_path(&self.config.dir, oldest);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_error(&path)(error)),
            }
            self.total -= size;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), LogError> {
        match &self.current {
            Some(file) => file.sync_data().map_err(io_error(&self.config.dir)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
