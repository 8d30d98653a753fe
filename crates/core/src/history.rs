//! One room's history: the last messages said in it, which a newcomer is
//! sent on joining. It owns the two bounds and the order; it never holds
//! private messages or notices (the relay pushes only room messages and
//! `/me` actions) and never does I/O.
//!
//! The bounds hold together: at most `max_entries` entries (`--history N`,
//! [`DEFAULT_MAX_ENTRIES`]) and at most `max_bytes` bytes
//! ([`DEFAULT_MAX_BYTES`] per room), where an entry's size is its sender's
//! name plus its text ([`Entry::size`]). A push drops the oldest entries
//! until both hold; an entry larger than `max_bytes` by itself is not kept
//! (and empties the history, as anything older would be dropped to make
//! room for it anyway). A push costs O(1) amortised: each entry is dropped
//! at most once.

use std::collections::VecDeque;

use eaxchat_proto::name::Name;

/// `--history`'s default: how many messages a newcomer is sent.
pub const DEFAULT_MAX_ENTRIES: usize = 100;

/// The default byte bound of one room's history: 64 KiB, so 100 rooms
/// hold at most 6.4 MB of history.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

/// What kind of room message an entry is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EntryKind {
    /// Ordinary text: `NAME: TEXT`.
    #[default]
    Message,
    /// A `/me` action: `* NAME TEXT`.
    Action,
    /// An end-to-end room's group message: its text is the MLS message in
    /// base64, which the relay cannot open.
    Mls,
}

/// One message as a newcomer must be sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Who said it: `None` for a shared-key connection that never took a
    /// name with `/nick`.
    pub sender: Option<Name>,
    /// What they said (the plaintext, or a `/me` action's text).
    pub text: Box<[u8]>,
    /// When the relay received it, in milliseconds since the Unix epoch.
    pub ts_millis: u64,
    /// A message or an action.
    pub kind: EntryKind,
}

impl Entry {
    /// The bytes this entry counts against the byte bound: its sender's
    /// name and its text.
    pub fn size(&self) -> usize {
        self.sender.as_ref().map_or(0, |name| name.as_str().len()) + self.text.len()
    }
}

/// A room's last messages, bounded in count and in bytes.
#[derive(Debug, Clone)]
pub struct History {
    entries: VecDeque<Entry>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl History {
    /// An empty history keeping at most `max_entries` entries and
    /// `max_bytes` bytes. Either at 0 keeps nothing.
    pub fn new(max_entries: usize, max_bytes: usize) -> History {
        History {
            entries: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    /// Adds the newest entry, dropping the oldest until both bounds hold.
    pub fn push(&mut self, entry: Entry) {
        self.bytes += entry.size();
        self.entries.push_back(entry);
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= oldest.size();
        }
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The entries, oldest first.
    pub fn iter(&self) -> std::collections::vec_deque::Iter<'_, Entry> {
        self.entries.iter()
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes its entries count ([`Entry::size`]), at most `max_bytes`.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl<'a> IntoIterator for &'a History {
    type Item = &'a Entry;
    type IntoIter = std::collections::vec_deque::Iter<'a, Entry>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sender: &str, text: &str, ts_millis: u64) -> Entry {
        Entry {
            sender: Some(Name::new(sender).expect("a valid test name")),
            text: text.as_bytes().into(),
            ts_millis,
            kind: EntryKind::Message,
        }
    }

    fn stamps(history: &History) -> Vec<u64> {
        history.iter().map(|e| e.ts_millis).collect()
    }

    #[test]
    fn keeps_the_last_n_oldest_first() {
        let mut history = History::new(3, DEFAULT_MAX_BYTES);
        for ts in 1..=5 {
            history.push(entry("al", "hi", ts));
        }
        assert_eq!(stamps(&history), [3, 4, 5]);
        assert_eq!(history.len(), 3);
        assert_eq!(history.bytes(), 3 * 4);
    }

    #[test]
    fn byte_bound_drops_the_oldest_first() {
        // Each entry is 2 (sender) + 8 (text) = 10 bytes.
        let mut history = History::new(100, 35);
        for ts in 1..=3 {
            history.push(entry("al", "12345678", ts));
        }
        assert_eq!((history.len(), history.bytes()), (3, 30));
        history.push(entry("al", "12345678", 4));
        assert_eq!(stamps(&history), [2, 3, 4]);
        assert_eq!(history.bytes(), 30);
        // A 25-byte entry needs two older ones gone.
        history.push(entry("al", "12345678901234567890123", 5));
        assert_eq!(stamps(&history), [4, 5]);
        assert_eq!(history.bytes(), 35);
    }

    #[test]
    fn both_bounds_hold_at_once() {
        let mut history = History::new(4, 50);
        for ts in 0..200 {
            let text = "x".repeat(usize::try_from(ts % 17).unwrap_or(0));
            history.push(entry("bob", &text, ts));
            assert!(history.len() <= 4 && history.bytes() <= 50);
            let sum: usize = history.iter().map(Entry::size).sum();
            assert_eq!(sum, history.bytes());
            assert_eq!(history.iter().last().map(|e| e.ts_millis), Some(ts));
            assert!(stamps(&history).windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn an_entry_over_the_byte_bound_is_not_kept() {
        let mut history = History::new(10, 8);
        history.push(entry("al", "ok", 1));
        history.push(entry("al", "far too long", 2));
        assert!(history.is_empty());
        assert_eq!(history.bytes(), 0);
        history.push(entry("al", "ok", 3));
        assert_eq!(stamps(&history), [3]);
    }

    #[test]
    fn zero_keeps_nothing() {
        let mut history = History::new(0, DEFAULT_MAX_BYTES);
        history.push(entry("al", "hi", 1));
        assert!(history.is_empty());
    }

    #[test]
    fn entries_keep_what_a_newcomer_needs() {
        let mut history = History::new(DEFAULT_MAX_ENTRIES, DEFAULT_MAX_BYTES);
        let mut action = entry("carol", "waves", 1_700_000_000_123);
        action.kind = EntryKind::Action;
        history.push(action.clone());
        let first = history.iter().next().expect("one entry");
        assert_eq!(first, &action);
        assert_eq!(first.sender.as_ref().map(Name::as_str), Some("carol"));
        assert_eq!(&*first.text, b"waves");
    }
}
