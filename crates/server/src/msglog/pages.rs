//! `/history` pages read back from the log, for the poll loop: the
//! caller's side of an indexed [`LogWriter`] ([`LogWriter::start_indexed`]).
//! It reads a page's records, at most [`MAX_PAGE`], straight from
//! their places in the segment files ([`LogIndex`]), checked and opened as
//! recovery checks and opens them (its `frame_at` and `open_frame`).
//!
//! The reads are synchronous, on the loop's thread: a page is at most
//! [`MAX_PAGE`] records of at most a few KiB, each read with two `pread`s
//! from files the writer has just written (in the page cache, as a rule),
//! so a page costs well under a millisecond. A page waits
//! ([`LogWriter::page_ready`]) until the writer has written every record
//! queued before it was asked for, so it never misses a message still in
//! the queue.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use eaxchat_core::history::Entry;
use eaxchat_proto::cipher::eax_key;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::eax_key::EaxKey;
use eaxchat_proto::key::Key;
use eaxchat_proto::wire::OVERHEAD;

use super::index::{LogIndex, Place};
use super::recovery::{frame_at, open_frame};
use super::segments::{MAX_SEALED_LEN, Position, RECORD_HEADER, SEGMENT_MAGIC, segment_path};
use super::{LogError, LogWriter, Record};

/// The most messages one page reads: the core's `/history` bound.
pub const MAX_PAGE: usize = 100;

/// The caller's side of an indexed log.
pub(super) struct Pages {
    /// Shared with the writer thread, which grows it.
    pub(super) index: Arc<Mutex<LogIndex>>,
    dir: PathBuf,
    key: EaxKey,
}

impl Pages {
    pub(super) fn new(dir: PathBuf, key: &Key, index: LogIndex) -> Pages {
        Pages {
            index: Arc::new(Mutex::new(index)),
            dir,
            key: eax_key(key),
        }
    }
}

/// A page read from the log.
#[derive(Debug, Default)]
pub struct Page {
    /// The messages, oldest first, each with its id.
    pub entries: Vec<(u64, Entry)>,
    /// The oldest is the room's oldest message the log holds (or there is
    /// none older than the page asked for).
    pub first: bool,
    /// Why older messages the index holds could not be read: the page has
    /// the newer ones only.
    pub problem: Option<LogError>,
}

impl LogWriter {
    /// Whether `/history` pages can be read back ([`LogWriter::start_indexed`]).
    pub fn is_indexed(&self) -> bool {
        self.pages.is_some()
    }

    /// Whether every record queued before `mark` has been written (or
    /// dropped), or the writer has stopped: a page read now misses
    /// nothing queued before it.
    pub fn page_ready(&self, mark: u64) -> bool {
        let Some(pages) = &self.pages else {
            return true;
        };
        let done = pages
            .index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .done;
        done >= mark || self.is_stopped()
    }

    /// `room`'s messages with ids below `before`, at most `limit` (and at
    /// most [`MAX_PAGE`]), oldest first, read from the log. Empty (and
    /// `first`) when the log is not indexed or holds none.
    pub fn read_page(&self, room: &RoomName, before: u64, limit: usize) -> Page {
        let Some(pages) = &self.pages else {
            return Page {
                first: true,
                ..Page::default()
            };
        };
        let plan = pages
            .index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .plan(room, before, limit.min(MAX_PAGE));
        let mut reader = Reader {
            dir: &pages.dir,
            key: &pages.key,
            open: None,
            frame: Vec::new(),
            plaintext: Vec::new(),
        };
        let mut entries = Vec::with_capacity(plan.places.len());
        let mut problem = None;
        // Newest first: a record that cannot be read ends the page there,
        // keeping every newer one.
        for &(id, place) in plan.places.iter().rev() {
            match reader.read(place, room) {
                Ok(entry) => entries.push((id, entry)),
                Err(error) => {
                    problem = Some(error);
                    break;
                }
            }
        }
        entries.reverse();
        Page {
            entries,
            first: plan.first && problem.is_none(),
            problem,
        }
    }
}

/// Reads records at their places, one segment file open at a time.
struct Reader<'a> {
    dir: &'a std::path::Path,
    key: &'a EaxKey,
    /// The segment open now, and whether it is in the previous format.
    open: Option<(u32, File, bool)>,
    frame: Vec<u8>,
    plaintext: Vec<u8>,
}

impl Reader<'_> {
    /// The message of `room` at `place`.
    fn read(&mut self, place: Place, room: &RoomName) -> Result<Entry, LogError> {
        let path = segment_path(self.dir, place.segment);
        let io = |error| LogError::Io {
            path: path.clone(),
            error,
        };
        let undecodable = |problem| LogError::Undecodable {
            segment: path.clone(),
            offset: place.offset,
            problem,
        };
        if self.open.as_ref().is_none_or(|(n, ..)| *n != place.segment) {
            let file = File::open(&path).map_err(io)?;
            let mut magic = [0u8; SEGMENT_MAGIC.len()];
            let legacy = file.read_exact_at(&mut magic, 0).is_err() || magic != SEGMENT_MAGIC;
            self.open = Some((place.segment, file, legacy));
        }
        let Some((_, file, legacy)) = &self.open else {
            return Err(undecodable("no segment open"));
        };
        let mut header = [0u8; RECORD_HEADER];
        file.read_exact_at(&mut header, place.offset).map_err(io)?;
        let [l0, l1, l2, l3, ..] = header;
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        if !(OVERHEAD..=MAX_SEALED_LEN).contains(&len) {
            return Err(undecodable("bad record length at an indexed place"));
        }
        self.frame.resize(RECORD_HEADER + len, 0);
        file.read_exact_at(&mut self.frame, place.offset)
            .map_err(io)?;
        let len = frame_at(&self.frame, 0)
            .map_err(|_| undecodable("bad checksum at an indexed place"))?;
        let at = Position {
            segment: place.segment,
            index: u64::from(place.index),
        };
        let sealed = &self.frame[RECORD_HEADER..][..len];
        if !open_frame(sealed, self.key, *legacy, at, &mut self.plaintext) {
            return Err(undecodable("record does not open at its place"));
        }
        let record = Record::decode(&self.plaintext).map_err(undecodable)?;
        match record.history_entry() {
            Some((record_room, entry)) if record_room == room => Ok(entry),
            _ => Err(undecodable(
                "not a message of this room at its indexed place",
            )),
        }
    }
}
