//! The writer thread, as Redis's `bio.c` keeps its background writes: the
//! poll loop hands records to [`LogWriter::append`], which puts them on a
//! bounded channel and never waits; the thread seals each, appends it to
//! the current segment, and syncs as [`Fsync`] says, one sync per batch of
//! what was queued (group commit).
//!
//! A full queue drops the record and counts it: the chat goes on and the
//! log has a gap, never the other way round. An error on the thread stops
//! it; every append after is dropped and counted, and
//! [`LogWriter::close`] returns the error.
//!
//! A writer started with an index ([`LogWriter::start_indexed`]) puts the
//! place of each room message it writes in the index (`index`), by the id
//! its record carries, so `/history` pages can be read back from the log
//! (`pages`). A record dropped leaves no place, and every other message
//! keeps its id.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng as _;

use eaxchat_proto::cipher::eax_key;
use eaxchat_proto::key::Key;

use super::index::{LogIndex, Place};
use super::pages::Pages;
use super::segments::{Sealer, Segments};
use super::{Fsync, LogConfig, LogError, Record, io_error};

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
    /// A record.
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
    /// Reading `/history` pages back ([`LogWriter::start_indexed`]).
    pub(super) pages: Option<Pages>,
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
    /// [`open_and_replay`](super::open_and_replay) should have read first)
    /// and starts the writer thread.
    pub fn start(config: LogConfig, key: &Key) -> Result<LogWriter, LogError> {
        LogWriter::spawn(config, key, None)
    }

    /// [`LogWriter::start`], keeping `index` (from
    /// [`open_and_index`](super::open_and_index)) up to date as messages
    /// are written, so [`LogWriter::read_page`] can read them back.
    pub fn start_indexed(
        config: LogConfig,
        key: &Key,
        index: LogIndex,
    ) -> Result<LogWriter, LogError> {
        let pages = Pages::new(config.dir.clone(), key, index);
        LogWriter::spawn(config, key, Some(pages))
    }

    fn spawn(config: LogConfig, key: &Key, pages: Option<Pages>) -> Result<LogWriter, LogError> {
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
        let sealer = Sealer::new(eax_key(key), ChaCha20Rng::from_seed(seed));
        let index = pages.as_ref().map(|pages| Arc::clone(&pages.index));
        let thread = std::thread::Builder::new()
            .name("eaxchat-log".to_owned())
            .spawn(move || write_loop(queue, segments, sealer, index, &thread_counters))
            .map_err(io_error(&config.dir))?;
        Ok(LogWriter {
            jobs: Some(jobs),
            thread: Some(thread),
            counters,
            pages,
        })
    }

    /// Hands `record` to the writer thread without waiting. `false` if it
    /// was dropped (and counted): the queue was full or the writer stopped.
    /// A room message is indexed by the id it carries (one with none, of
    /// the old format, is not indexed).
    pub fn append(&mut self, record: Record) -> bool {
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

    /// A mark of what has been queued so far: a page asked for now is
    /// [`LogWriter::page_ready`] once the writer has done all of it.
    pub fn queued_mark(&self) -> u64 {
        self.counters.queued.load(Ordering::Relaxed)
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

    /// Tests only: holds the writer thread until the returned sender is
    /// dropped, so the queue fills.
    #[cfg(test)]
    pub(super) fn hold(&self) -> mpsc::Sender<()> {
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

/// The writer thread: takes jobs until the handle is dropped.
fn write_loop(
    queue: Receiver<Job>,
    mut segments: Segments,
    mut sealer: Sealer,
    index: Option<Arc<Mutex<LogIndex>>>,
    counters: &Counters,
) -> Result<(), LogError> {
    let fsync = segments.config().fsync;
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
                Job::Append(record) => {
                    let mut written = None;
                    match sealer.encode(&record) {
                        Some(len) => {
                            let at = segments.place(len)?;
                            let offset = segments.offset();
                            let oldest = segments.oldest();
                            segments.write(sealer.seal(at))?;
                            counters.written.fetch_add(1, Ordering::Release);
                            unsynced += 1;
                            let deleted = segments.oldest() != oldest;
                            written = Some((Place::new(at.segment, at.index, offset), deleted));
                        }
                        None => {
                            counters.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if let Some(index) = &index {
                        let mut index = index.lock().unwrap_or_else(PoisonError::into_inner);
                        if let (
                            Some((place, _)),
                            Record::Message {
                                room, id: Some(id), ..
                            },
                        ) = (written, &record)
                        {
                            index.push(room, *id, place);
                        }
                        if let (Some((_, true)), Some(oldest)) = (written, segments.oldest()) {
                            index.forget_before(oldest);
                        }
                        index.done += 1;
                    }
                }
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
