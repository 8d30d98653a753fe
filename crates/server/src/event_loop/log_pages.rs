//! The message log from the poll loop: the records each turn made, handed
//! to the writer thread without waiting, and the `/history` pages that
//! reach older than the rooms' in-memory history, read back from the log
//! ([`LogWriter::read_page`]) and handed to the relay
//! ([`Relay::answer_history`](eaxchat_core::relay::Relay::answer_history)).
//!
//! A page is answered in the turn it was asked for, after that turn's
//! records were queued, once the writer thread has written everything
//! queued before it (at once, as a rule; the loop looks again every
//! millisecond until then, at most [`PAGE_WAIT`]). Reading it is
//! synchronous: at most [`MAX_PAGE`](crate::msglog::MAX_PAGE) records,
//! read from their places in the segment files, well under a millisecond.

use std::time::{Duration, Instant};

use log::warn;

use super::Server;
use crate::msglog::{LogWriter, Page, Record};
use eaxchat_core::relay::HistoryRequest;

/// The longest a page waits for the writer thread to catch up before it
/// is read with what is written (a disk stalled under fsync, say).
pub const PAGE_WAIT: Duration = Duration::from_secs(2);

/// The most pages that wait at once; past it they are read at once.
const MAX_WAITING: usize = 1024;

/// How often the loop looks again while pages wait.
const RECHECK: Duration = Duration::from_millis(1);

/// A page asked for, and what the writer had been handed by then.
#[derive(Debug)]
struct Waiting {
    request: HistoryRequest,
    mark: u64,
    since: Instant,
}

/// The pages waiting for the writer thread.
#[derive(Debug, Default)]
pub(super) struct PendingPages {
    waiting: Vec<Waiting>,
    /// Scratch for the turn's new requests.
    new: Vec<HistoryRequest>,
}

impl PendingPages {
    /// When the loop should look again: soon, while pages wait.
    pub(super) fn next_check(&self) -> Option<Instant> {
        (!self.waiting.is_empty()).then(|| Instant::now() + RECHECK)
    }
}

impl Server {
    /// Puts the room messages of `records`, read from the message log,
    /// back in their rooms' history.
    pub fn restore_history(&mut self, records: &[Record]) {
        self.relay.restore_history(records);
    }

    /// Hands every room message, join and leave to `log` from now on. The
    /// chat must have been set up to keep records
    /// ([`ChatConfig::log`](eaxchat_core::relay::ChatConfig::log)). An
    /// indexed log ([`LogWriter::start_indexed`]) also answers `/history`
    /// pages older than the rooms' history.
    pub fn set_log(&mut self, log: LogWriter) {
        self.relay.set_log_paging(log.is_indexed());
        self.log = Some(log);
    }

    /// Hands the records made this turn to the log's writer thread: never
    /// waits (a full queue drops and counts, [`LogWriter::append`]).
    pub(super) fn write_log(&mut self) {
        self.relay.take_log_records(&mut self.records);
        let Some(log) = &mut self.log else {
            self.records.clear();
            return;
        };
        for record in self.records.drain(..) {
            log.append(record);
        }
    }

    /// Answers the pages the relay asked for that the log can now give.
    /// Call after [`Server::write_log`], so a page sees every message said
    /// before it.
    pub(super) fn answer_pages(&mut self) {
        let pages = &mut self.pages;
        self.relay.take_history_requests(&mut pages.new);
        if pages.new.is_empty() && pages.waiting.is_empty() {
            return;
        }
        let now = Instant::now();
        let mark = self.log.as_ref().map_or(0, LogWriter::queued_mark);
        pages
            .waiting
            .extend(pages.new.drain(..).map(|request| Waiting {
                request,
                mark,
                since: now,
            }));
        let crowded = pages.waiting.len() > MAX_WAITING;
        let mut index = 0;
        while index < pages.waiting.len() {
            let waiting = &pages.waiting[index];
            let ready = match &self.log {
                Some(log) => {
                    crowded
                        || log.page_ready(waiting.mark)
                        || now.saturating_duration_since(waiting.since) >= PAGE_WAIT
                }
                None => true,
            };
            if !ready {
                index += 1;
                continue;
            }
            let Waiting { request, .. } = pages.waiting.remove(index);
            let page = match &self.log {
                Some(log) => log.read_page(&request.room, request.before, request.limit),
                None => Page {
                    first: true,
                    ..Page::default()
                },
            };
            if let Some(problem) = &page.problem {
                warn!(
                    "history of {} before {}: {problem}; the page holds the newer messages only",
                    request.room, request.before
                );
            }
            self.relay
                .answer_history(&request, page.entries, page.first);
        }
    }
}
