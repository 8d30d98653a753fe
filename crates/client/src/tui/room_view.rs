//! One view of the terminal app: a room the connection is in, or the
//! conversation of private messages. It owns that view's scrollback, kept
//! in the order of the relay's message ids with no id twice (a history
//! burst after a reconnect, or a page that overlaps, adds only what is
//! new), its unread and mention counts, its topic and members, how far it
//! is scrolled, and the paging of older history (`/history BEFORE`): asked
//! once, not again until the page has come, never again once the relay
//! said there is nothing older.
//!
//! Pure state: no terminal and no relay. [`super::rooms::Rooms`] holds the
//! views; [`super::App`] feeds them and sends what they ask for.

use std::collections::{BTreeSet, VecDeque};

use super::entry::{Entry, Look};

/// Most entries a view keeps; older ones are dropped as new ones come.
pub const SCROLLBACK: usize = 5000;

/// How many messages one page of older history asks for.
pub const PAGE_SIZE: usize = 50;

/// What a view shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewKind {
    /// A room the connection is in, by name (no `#`).
    Room(String),
    /// Private messages, to and from anyone.
    Private,
}

/// History messages on their way, announced by a `history` event.
#[derive(Debug, Clone, Copy)]
struct Incoming {
    /// Messages still to come.
    left: u64,
    /// For a page: where its next message goes (pages come oldest first,
    /// in front of everything the view holds). `None`: a burst on joining,
    /// placed by id.
    page_at: Option<usize>,
    /// The relay has nothing older than this page.
    first: bool,
    /// The oldest id the view held when the page was announced: a page's
    /// message older than it goes at `page_at`.
    anchor: Option<u64>,
}

/// One room's view, or the private messages'.
#[derive(Debug, Clone)]
pub struct RoomView {
    /// Which room, or the private messages.
    pub kind: ViewKind,
    entries: VecDeque<Entry>,
    /// The ids of the entries that have one.
    ids: BTreeSet<u64>,
    /// Messages come while looking elsewhere.
    pub unread: usize,
    /// Of those, the ones that name us.
    pub mentions: usize,
    /// The room's topic, if it has one.
    pub topic: Option<String>,
    /// The names in the room.
    pub members: BTreeSet<String>,
    /// How many in the room have no name.
    pub unnamed: u64,
    /// Whether `members` came from the relay (a `who`), or is still to ask.
    pub members_known: bool,
    /// Rows scrolled up from the bottom (0: following new lines).
    pub scroll: usize,
    /// Whether the oldest entry was on screen when last drawn.
    pub at_top: bool,
    /// An end-to-end room (the relay's `myrooms` or `/rooms` said so):
    /// marked 🔒 wherever its name is shown.
    pub e2e: bool,
    /// A page asked for, before this id, not come yet.
    asked: Option<u64>,
    /// The relay has nothing older than what the view holds.
    complete: bool,
    incoming: Option<Incoming>,
}

impl RoomView {
    /// An empty view.
    pub fn new(kind: ViewKind) -> RoomView {
        RoomView {
            kind,
            entries: VecDeque::new(),
            ids: BTreeSet::new(),
            unread: 0,
            mentions: 0,
            topic: None,
            members: BTreeSet::new(),
            unnamed: 0,
            members_known: false,
            scroll: 0,
            at_top: false,
            e2e: false,
            asked: None,
            complete: false,
            incoming: None,
        }
    }

    /// The room's name, or `None` for the private messages.
    pub fn room(&self) -> Option<&str> {
        match &self.kind {
            ViewKind::Room(name) => Some(name),
            ViewKind::Private => None,
        }
    }

    /// How the room list and the status line name it: `#dev`, `#dev 🔒`
    /// (end-to-end), `(private)`.
    pub fn label(&self) -> String {
        match &self.kind {
            ViewKind::Room(name) if self.e2e => format!("#{name} 🔒"),
            ViewKind::Room(name) => format!("#{name}"),
            ViewKind::Private => "(private)".to_owned(),
        }
    }

    /// The scrollback, oldest first.
    pub fn entries(&self) -> &VecDeque<Entry> {
        &self.entries
    }

    /// The oldest message id the view holds.
    pub fn oldest_id(&self) -> Option<u64> {
        self.ids.first().copied()
    }

    /// Forgets what was unread: the view is being looked at.
    pub fn mark_read(&mut self) {
        self.unread = 0;
        self.mentions = 0;
    }

    /// Adds a line at the bottom (a live message, a notice, our own line);
    /// a message whose id the view already holds is not added again
    /// (returns `false`). A reader scrolled up stays where they were.
    pub fn push(&mut self, entry: Entry) -> bool {
        if let Some(id) = entry.id {
            if !self.ids.insert(id) {
                return false;
            }
            // Live ids only grow; one out of order goes where its id says.
            if self.ids.last() != Some(&id) {
                let at = self.position_for(id);
                self.entries.insert(at, entry);
                self.after_insert();
                return true;
            }
        }
        self.entries.push_back(entry);
        self.after_insert();
        true
    }

    fn after_insert(&mut self) {
        self.bump_scroll();
        self.trim();
    }

    /// A line came below: a reader scrolled up stays where they were.
    fn bump_scroll(&mut self) {
        if self.scroll > 0 {
            self.scroll += 1;
        }
    }

    /// Drops the oldest entries past [`SCROLLBACK`].
    fn trim(&mut self) {
        while self.entries.len() > SCROLLBACK {
            if let Some(id) = self.entries.pop_front().and_then(|entry| entry.id) {
                self.ids.remove(&id);
            }
            // What is dropped can be asked for again.
            self.complete = false;
        }
    }

    /// Where a message with `id` goes: before the first entry with a
    /// greater id, else at the bottom.
    fn position_for(&self, id: u64) -> usize {
        self.entries
            .iter()
            .position(|entry| entry.id.is_some_and(|other| other > id))
            .unwrap_or(self.entries.len())
    }

    /// A `history` event: `count` history messages follow; `page` when they
    /// answer our `/history`, `first` when the relay has nothing older.
    pub fn history_start(&mut self, count: u64, page: bool, first: bool) {
        self.incoming = Some(Incoming {
            left: count,
            page_at: page.then_some(0),
            first,
            anchor: self.oldest_id(),
        });
        if first {
            // What follows starts at the room's first message the relay
            // still has: there is nothing older to ask for.
            self.complete = true;
        }
        if count == 0 {
            self.history_done();
        }
    }

    /// One history message (`history: true`): a page's goes in front, in
    /// order; a burst's goes where its id says. One the view holds already
    /// is dropped, and so is our own line coming back numbered: the id is
    /// put on the line we showed when we sent it.
    pub fn history_entry(&mut self, entry: Entry, ours: bool) {
        let mut page = None;
        if let Some(incoming) = &mut self.incoming {
            incoming.left = incoming.left.saturating_sub(1);
            page = incoming.page_at.map(|at| (at, incoming.anchor));
        }
        match entry.id {
            Some(id) if self.ids.contains(&id) => {}
            Some(id) if ours && self.number_own_line(&entry.text, id) => {}
            Some(id) => {
                self.ids.insert(id);
                match page {
                    Some((at, anchor)) if anchor.is_none_or(|anchor| id < anchor) => {
                        self.entries.insert(at.min(self.entries.len()), entry);
                        if let Some(incoming) = &mut self.incoming {
                            incoming.page_at = Some(at + 1);
                        }
                    }
                    _ => {
                        let at = self.position_for(id);
                        self.entries.insert(at, entry);
                        self.bump_scroll();
                    }
                }
            }
            None => {
                self.entries.push_back(entry);
                self.bump_scroll();
            }
        }
        if self.incoming.is_some_and(|incoming| incoming.left == 0) {
            self.history_done();
        }
    }

    /// One history message announced that shows as nothing: counted.
    pub fn history_skip(&mut self) {
        if let Some(incoming) = &mut self.incoming {
            incoming.left = incoming.left.saturating_sub(1);
            if incoming.left == 0 {
                self.history_done();
            }
        }
    }

    /// Puts `id` on our own line with `text` that has none yet; whether
    /// there was one.
    fn number_own_line(&mut self, text: &str, id: u64) -> bool {
        let Some(line) = self
            .entries
            .iter_mut()
            .find(|entry| entry.look == Look::Own && entry.id.is_none() && entry.text == text)
        else {
            return false;
        };
        line.id = Some(id);
        self.ids.insert(id);
        true
    }

    fn history_done(&mut self) {
        let Some(incoming) = self.incoming.take() else {
            return;
        };
        if incoming.page_at.is_some() {
            self.asked = None;
            if incoming.first {
                let label = self.label();
                self.entries.push_front(Entry::notice(
                    Look::Notice,
                    format!("* the start of {label}"),
                ));
            }
        }
        self.trim();
    }

    /// The id to ask `/history` for the page before, if one is to be
    /// asked now: the room has older messages, none is being asked for,
    /// the view holds a numbered message to page from, and has room.
    /// Marks it asked.
    pub fn page_request(&mut self) -> Option<u64> {
        if self.complete
            || self.asked.is_some()
            || self.room().is_none()
            || self.entries.len() >= SCROLLBACK
        {
            return None;
        }
        let before = self.oldest_id()?;
        self.asked = Some(before);
        Some(before)
    }

    /// Whether a page is asked for and not come yet.
    pub fn page_pending(&self) -> bool {
        self.asked.is_some()
    }

    /// The page asked for will not come (refused, or the connection went):
    /// it may be asked again.
    pub fn page_lost(&mut self) {
        self.asked = None;
        if self
            .incoming
            .is_some_and(|incoming| incoming.page_at.is_some())
        {
            self.incoming = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, text: &str) -> Entry {
        Entry {
            id: Some(id),
            from: Some("alice".to_owned()),
            ..Entry::notice(Look::History, text)
        }
    }

    fn texts(view: &RoomView) -> Vec<&str> {
        view.entries()
            .iter()
            .map(|entry| entry.text.as_str())
            .collect()
    }

    fn burst(view: &mut RoomView, ids: std::ops::Range<u64>, first: bool) {
        view.history_start(ids.end - ids.start, false, first);
        for id in ids {
            view.history_entry(message(id, &id.to_string()), false);
        }
    }

    #[test]
    fn pages_go_in_front_in_id_order_with_no_duplicates() {
        let mut view = RoomView::new(ViewKind::Room("dev".to_owned()));
        view.push(Entry::notice(Look::Notice, "* you joined #dev"));
        burst(&mut view, 100..103, false);
        assert_eq!(view.page_request(), Some(100));
        assert_eq!(view.page_request(), None, "asked once until the page came");
        // The page overlaps what the view holds by one.
        view.history_start(3, true, false);
        for id in [98, 99, 100] {
            view.history_entry(message(id, &id.to_string()), false);
        }
        assert!(!view.page_pending());
        assert_eq!(
            texts(&view),
            ["98", "99", "* you joined #dev", "100", "101", "102"]
        );
        assert_eq!(view.page_request(), Some(98));
        view.history_start(2, true, true);
        view.history_entry(message(96, "96"), false);
        view.history_entry(message(97, "97"), false);
        assert_eq!(texts(&view)[..4], ["* the start of #dev", "96", "97", "98"]);
        assert_eq!(view.page_request(), None, "nothing older");
    }

    #[test]
    fn a_burst_again_after_a_reconnect_adds_only_what_is_new() {
        let mut view = RoomView::new(ViewKind::Room("dev".to_owned()));
        burst(&mut view, 0..3, true);
        assert_eq!(view.page_request(), None, "the burst held everything");
        view.push(message(3, "3"));
        assert!(!view.push(message(3, "3")), "a duplicate live id");
        burst(&mut view, 1..6, false);
        assert_eq!(texts(&view), ["0", "1", "2", "3", "4", "5"]);
        // Out of order: goes where its id says.
        view.push(message(9, "9"));
        view.push(message(7, "7"));
        assert_eq!(texts(&view)[5..], ["5", "7", "9"]);
    }

    #[test]
    fn our_own_line_coming_back_numbered_is_not_shown_twice() {
        let mut view = RoomView::new(ViewKind::Room("dev".to_owned()));
        burst(&mut view, 0..2, false);
        view.push(Entry::notice(Look::Own, "mine"));
        view.history_start(1, false, false);
        view.history_entry(message(2, "mine"), true);
        assert_eq!(texts(&view), ["0", "1", "mine"]);
        assert_eq!(view.entries()[2].id, Some(2));
    }

    #[test]
    fn a_lost_page_may_be_asked_again_and_private_never_pages() {
        let mut view = RoomView::new(ViewKind::Room("dev".to_owned()));
        assert_eq!(
            view.page_request(),
            None,
            "no numbered message to page from"
        );
        burst(&mut view, 10..12, false);
        assert_eq!(view.page_request(), Some(10));
        view.page_lost();
        assert_eq!(view.page_request(), Some(10));
        let mut private = RoomView::new(ViewKind::Private);
        private.push(message(1, "x"));
        assert_eq!(private.page_request(), None);
        assert_eq!(private.label(), "(private)");
    }

    #[test]
    fn the_scrollback_is_bounded_and_a_scrolled_reader_stays() {
        let mut view = RoomView::new(ViewKind::Private);
        for n in 0..SCROLLBACK + 10 {
            view.push(Entry::notice(Look::Notice, n.to_string()));
        }
        assert_eq!(view.entries().len(), SCROLLBACK);
        assert_eq!(view.entries()[0].text, "10");
        view.scroll = 4;
        view.push(Entry::notice(Look::Notice, "new"));
        assert_eq!(view.scroll, 5);
    }

    /// A page of an end-to-end room whose commits show as nothing still
    /// completes: each is counted as skipped.
    #[test]
    fn a_page_completes_with_skipped_messages() {
        let mut view = RoomView::new(ViewKind::Room("dev".to_owned()));
        view.history_start(1, false, false);
        view.history_entry(message(10, "latest"), false);
        assert_eq!(view.page_request(), Some(10));
        view.history_start(2, true, false);
        view.history_entry(message(8, "older"), false);
        assert!(view.page_pending());
        view.history_skip();
        assert!(!view.page_pending());
        assert_eq!(texts(&view), ["older", "latest"]);
    }
}
