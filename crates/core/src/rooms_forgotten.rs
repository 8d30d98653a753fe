//! The message counts of rooms the relay forgot (a room emptied with no
//! history or topic, or the oldest dormant room past the bound), so a room
//! made again numbers its messages on from where it stopped: an id is
//! never given twice in a room while the relay runs, with or without the
//! message log.
//!
//! It owns the bound. At most [`MAX_FORGOTTEN`] rooms' counts are kept;
//! past that the count of the room forgotten longest ago is let go, and
//! raises a *floor*: every room made with no count kept (a room new to the
//! relay, or one whose count was let go) starts numbering at the floor, the
//! highest count let go. So an id still never repeats in a room; the price
//! is that, once the relay has let a count go, a room new to it starts
//! above 0. Memory: one entry (the name, two `u64`) per room kept, and a
//! queue of at most twice as many names, compacted as it fills.

use std::collections::{HashMap, VecDeque};

use eaxchat_proto::commands::RoomName;

/// The most forgotten rooms whose counts are kept.
pub const MAX_FORGOTTEN: usize = 4096;

/// The counts of forgotten rooms, bounded.
#[derive(Debug)]
pub(super) struct Forgotten {
    /// Each room's count and the sequence number it was kept at.
    counts: HashMap<RoomName, (u64, u64)>,
    /// Rooms in the order they were kept, with the sequence number; an
    /// entry whose sequence number is no longer its room's is stale (the
    /// room was made again) and skipped.
    order: VecDeque<(RoomName, u64)>,
    /// Where a room made with no count kept starts.
    floor: u64,
    /// The sequence number of the last count kept.
    seq: u64,
    cap: usize,
}

impl Forgotten {
    /// Keeps at most `cap` counts (at least 1).
    pub(super) fn new(cap: usize) -> Forgotten {
        Forgotten {
            counts: HashMap::new(),
            order: VecDeque::new(),
            floor: 0,
            seq: 0,
            cap: cap.max(1),
        }
    }

    /// Room `name` was forgotten after `said` messages.
    pub(super) fn keep(&mut self, name: RoomName, said: u64) {
        if said <= self.floor {
            // A room made again starts at the floor anyway.
            self.counts.remove(&name);
            return;
        }
        self.seq += 1;
        self.counts.insert(name.clone(), (said, self.seq));
        self.order.push_back((name, self.seq));
        while self.counts.len() > self.cap {
            let Some((oldest, seq)) = self.order.pop_front() else {
                break;
            };
            if self
                .counts
                .get(&oldest)
                .is_some_and(|&(_, kept)| kept == seq)
                && let Some((count, _)) = self.counts.remove(&oldest)
            {
                self.floor = self.floor.max(count);
            }
        }
        if self.order.len() > 2 * self.cap {
            let counts = &self.counts;
            self.order
                .retain(|(name, seq)| counts.get(name).is_some_and(|&(_, kept)| kept == *seq));
        }
    }

    /// Where room `name`, made now, starts numbering: its kept count
    /// (taken out), or the floor.
    pub(super) fn take(&mut self, name: &RoomName) -> u64 {
        self.counts
            .remove(name)
            .map_or(self.floor, |(said, _)| said)
    }

    /// How many counts are kept.
    pub(super) fn len(&self) -> usize {
        self.counts.len()
    }

    /// Where a room made with no count kept starts.
    pub(super) fn floor(&self) -> u64 {
        self.floor
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Room, Rooms, RoomsConfig};
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::new(name.as_bytes()).expect("a test room")
    }

    #[test]
    fn counts_come_back_once() {
        let mut forgotten = Forgotten::new(4);
        forgotten.keep(room("a"), 7);
        assert_eq!(forgotten.take(&room("a")), 7);
        assert_eq!(forgotten.take(&room("a")), 0, "taken out");
        assert_eq!(forgotten.len(), 0);
    }

    #[test]
    fn past_the_cap_the_oldest_goes_and_raises_the_floor() {
        let mut forgotten = Forgotten::new(3);
        for (i, name) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            forgotten.keep(room(name), 10 * (i as u64 + 1));
        }
        assert_eq!(forgotten.len(), 3);
        assert_eq!(forgotten.floor(), 20, "a (10) and b (20) let go");
        assert_eq!(forgotten.take(&room("a")), 20, "never below what it said");
        assert_eq!(forgotten.take(&room("new")), 20);
        assert_eq!(forgotten.take(&room("e")), 50);
        // A count at or below the floor is not kept: the floor covers it.
        forgotten.keep(room("f"), 5);
        assert_eq!(forgotten.len(), 2);
        assert_eq!(forgotten.take(&room("f")), 20);
    }

    #[test]
    fn the_order_queue_stays_bounded_when_rooms_come_and_go() {
        let mut forgotten = Forgotten::new(8);
        for round in 1..10_000u64 {
            let name = room(&format!("r{}", round % 5));
            forgotten.keep(name.clone(), round);
            assert_eq!(forgotten.take(&name), round);
            assert!(
                forgotten.order.len() <= 2 * 8 + 1,
                "{}",
                forgotten.order.len()
            );
        }
        assert_eq!(forgotten.floor(), 0, "nothing was let go");
    }

    /// The review's finding: every forgotten room's count was kept for
    /// good. Now at most `MAX_FORGOTTEN`, and a room whose count was let go
    /// still never gives an id it gave before.
    #[test]
    fn forgotten_counts_are_bounded_and_ids_never_repeat() {
        let mut rooms = Rooms::new(RoomsConfig {
            history_entries: 0,
            max_rooms: 4,
            ..RoomsConfig::default()
        });
        let rounds = MAX_FORGOTTEN + 100;
        for i in 0..rounds {
            let id = rooms.find_or_make(&room(&format!("r{i}"))).expect("room");
            rooms.enter(id, 1, false);
            rooms.count_said(id);
            rooms.leave(id, 1, false);
        }
        assert!(
            rooms.forgotten_counts() <= MAX_FORGOTTEN,
            "{} counts kept",
            rooms.forgotten_counts()
        );
        assert_eq!(rooms.id_floor(), 1, "the counts let go said 1 each");
        // r0's count was let go: it starts at the floor, past its id 0.
        let r0 = rooms.find_or_make(&room("r0")).expect("room");
        assert_eq!(rooms.get(r0).map(Room::said), Some(1));
        // The newest counts are still kept exactly: made once the floor
        // had risen, that room started at 1 and said one message.
        let last = rooms
            .find_or_make(&room(&format!("r{}", rounds - 1)))
            .expect("room");
        assert_eq!(rooms.get(last).map(Room::said), Some(2));
    }
}
