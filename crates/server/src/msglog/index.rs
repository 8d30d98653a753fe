//! Where each room's messages are in the log: for every room, the place
//! (segment, record index, byte offset) of each of its message records, by
//! the message's id, so a `/history` page older than memory reads only the
//! records it shows ([`super::LogWriter::read_page`]).
//!
//! A message's id is its index among its room's message records in the
//! whole log, from 0: the count the core's room history keeps, since
//! [`restore_history`](eaxchat_core::relay::Relay::restore_history) is given
//! every logged record. The index is built from the records read at start
//! ([`LogIndex::build`]) and grown by the writer thread after each message
//! record it writes; the ids of new messages are given out on the caller's
//! side as records are queued, so a record dropped on a full queue leaves a
//! gap here instead of shifting every later id. Deleting the oldest
//! segments forgets their places ([`LogIndex::forget_before`]).
//!
//! Memory: one [`Place`] (16 bytes) per message still in the log, in one
//! `VecDeque` a room (which may hold up to twice that while it grows), plus
//! a small entry per room. It never reads a file and never decrypts.

use std::collections::{HashMap, VecDeque};

use eaxchat_proto::commands::RoomName;

use super::Record;

/// Where one message record is: its segment, its index in the segment
/// (the associated data it is sealed with) and its byte offset there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Place {
    pub(super) offset: u64,
    pub(super) segment: u32,
    pub(super) index: u32,
}

impl Place {
    /// An id with no record: dropped before it was written.
    const GAP: Place = Place {
        offset: 0,
        segment: u32::MAX,
        index: u32::MAX,
    };

    /// The place of record `index` of segment `segment` at `offset`, if
    /// the index fits (a segment holds far fewer than 2³² records).
    pub(super) fn new(segment: u32, index: u64, offset: u64) -> Option<Place> {
        Some(Place {
            offset,
            segment,
            index: u32::try_from(index).ok()?,
        })
    }

    fn is_gap(self) -> bool {
        self == Place::GAP
    }
}

/// One room's message places, by id: `places[i]` is id `first + i`.
#[derive(Debug, Default)]
struct RoomIndex {
    first: u64,
    places: VecDeque<Place>,
}

impl RoomIndex {
    /// The next id this room's index expects.
    fn next_id(&self) -> u64 {
        self.first + self.places.len() as u64
    }

    /// Drops leading gaps, so `first` is the oldest message the log holds.
    fn trim(&mut self) {
        while self.places.front().is_some_and(|place| place.is_gap()) {
            self.places.pop_front();
            self.first += 1;
        }
    }
}

/// The places a page needs, newest last, and whether its oldest is the
/// room's oldest message the log holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct PagePlan {
    pub(super) places: Vec<(u64, Place)>,
    pub(super) first: bool,
}

/// Every room's message places. Shared by the writer thread (which grows
/// it) and the loop (which reads pages), behind a mutex held only to copy a
/// page's places.
#[derive(Debug, Default)]
pub struct LogIndex {
    rooms: HashMap<RoomName, RoomIndex>,
    /// Records the writer thread has taken from its queue (written or
    /// dropped): a page waits until every record queued before it is done.
    pub(super) done: u64,
}

impl LogIndex {
    /// The index of `records`, read at start, each at its place in
    /// `places` (the same length, one place per record; `None` for a place
    /// that does not fit).
    pub(super) fn build(records: &[Record], places: &[Option<Place>]) -> LogIndex {
        let mut index = LogIndex::default();
        for (record, place) in records.iter().zip(places) {
            if let Record::Message { room, .. } = record {
                let next = index.rooms.get(room).map_or(0, RoomIndex::next_id);
                index.push(room, next, place.unwrap_or(Place::GAP));
            }
        }
        for room in index.rooms.values_mut() {
            room.trim();
        }
        index
    }

    /// Records that message `id` of `room` is at `place`. Ids come in
    /// order; ids skipped (dropped records) become gaps.
    pub(super) fn push(&mut self, room: &RoomName, id: u64, place: Place) {
        let entry = match self.rooms.get_mut(room) {
            Some(entry) => entry,
            None => self.rooms.entry(room.clone()).or_insert(RoomIndex {
                first: id,
                places: VecDeque::new(),
            }),
        };
        if id < entry.next_id() {
            return;
        }
        while entry.next_id() < id {
            entry.places.push_back(Place::GAP);
        }
        entry.places.push_back(place);
        entry.trim();
    }

    /// Forgets every place in a segment numbered below `segment` (deleted
    /// as the log passed its size bound).
    pub(super) fn forget_before(&mut self, segment: u32) {
        for room in self.rooms.values_mut() {
            while room
                .places
                .front()
                .is_some_and(|place| place.is_gap() || place.segment < segment)
            {
                room.places.pop_front();
                room.first += 1;
            }
        }
    }

    /// The next id of each room with logged messages: where the caller's
    /// numbering of new messages goes on.
    pub fn next_ids(&self) -> HashMap<RoomName, u64> {
        self.rooms
            .iter()
            .map(|(room, index)| (room.clone(), index.next_id()))
            .collect()
    }

    /// How many messages the index holds places for (gaps included).
    pub fn len(&self) -> usize {
        self.rooms.values().map(|room| room.places.len()).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.rooms.values().all(|room| room.places.is_empty())
    }

    /// The places of `room`'s messages with ids below `before`, at most
    /// `limit` (gaps skipped), oldest first.
    pub(super) fn plan(&self, room: &RoomName, before: u64, limit: usize) -> PagePlan {
        let Some(index) = self.rooms.get(room) else {
            return PagePlan {
                places: Vec::new(),
                first: true,
            };
        };
        let end = before.min(index.next_id());
        let start = end.saturating_sub(limit as u64).max(index.first);
        let places: Vec<(u64, Place)> = (start..end)
            .filter_map(|id| {
                let place = *index.places.get((id - index.first) as usize)?;
                (!place.is_gap()).then_some((id, place))
            })
            .collect();
        let first = places.first().is_none_or(|&(id, _)| id == index.first);
        PagePlan { places, first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eaxchat_core::history::EntryKind;

    fn room(name: &str) -> RoomName {
        RoomName::new(name.as_bytes()).expect("a room name")
    }

    fn message(room_name: &str) -> Record {
        Record::Message {
            room: room(room_name),
            sender: None,
            text: b"x".as_slice().into(),
            ts_millis: 0,
            kind: EntryKind::Message,
        }
    }

    fn place(segment: u32, index: u64) -> Option<Place> {
        Place::new(segment, index, 8 + index * 100)
    }

    fn ids(plan: &PagePlan) -> Vec<u64> {
        plan.places.iter().map(|&(id, _)| id).collect()
    }

    #[test]
    fn ids_count_each_rooms_messages_across_segments() {
        let records = vec![
            message("a"),
            message("b"),
            Record::Join {
                room: room("a"),
                name: "alice".parse().expect("name"),
                ts_millis: 0,
            },
            message("a"),
            message("a"),
        ];
        let places = vec![
            place(0, 0),
            place(0, 1),
            place(0, 2),
            place(1, 0),
            place(1, 1),
        ];
        let index = LogIndex::build(&records, &places);
        assert_eq!(index.len(), 4);
        assert_eq!(index.next_ids()[&room("a")], 3);
        assert_eq!(index.next_ids()[&room("b")], 1);
        let plan = index.plan(&room("a"), u64::MAX, 100);
        assert_eq!(ids(&plan), [0, 1, 2]);
        assert!(plan.first);
        assert_eq!(plan.places[1].1, place(1, 0).expect("fits"));
        assert_eq!(plan.places[2].1.offset, 108);
    }

    #[test]
    fn pages_walk_back_with_no_gap_or_overlap() {
        let records: Vec<Record> = (0..95).map(|_| message("dev")).collect();
        let places: Vec<Option<Place>> =
            (0..95u64).map(|i| place((i / 40) as u32, i % 40)).collect();
        let index = LogIndex::build(&records, &places);
        let mut before = u64::MAX;
        let mut seen = Vec::new();
        loop {
            let plan = index.plan(&room("dev"), before, 20);
            let page = ids(&plan);
            assert!(page.len() <= 20);
            seen.splice(0..0, page.iter().copied());
            if plan.first {
                break;
            }
            before = page[0];
        }
        assert_eq!(seen, (0..95).collect::<Vec<u64>>());
        assert_eq!(ids(&index.plan(&room("dev"), 0, 20)), Vec::<u64>::new());
        assert!(index.plan(&room("dev"), 0, 20).first);
        assert!(index.plan(&room("nowhere"), 5, 20).first);
    }

    #[test]
    fn dropped_ids_are_gaps_and_later_ids_keep_their_number() {
        let mut index = LogIndex::default();
        let dev = room("dev");
        index.push(&dev, 0, place(0, 0).expect("fits"));
        index.push(&dev, 1, place(0, 1).expect("fits"));
        // Ids 2 and 3 were dropped on a full queue.
        index.push(&dev, 4, place(0, 2).expect("fits"));
        assert_eq!(index.next_ids()[&dev], 5);
        let plan = index.plan(&dev, 5, 3);
        assert_eq!(ids(&plan), [4], "three ids back, two of them gaps");
        assert!(!plan.first);
        assert_eq!(ids(&index.plan(&dev, 4, 10)), [0, 1]);
        // An id already indexed is not indexed again.
        index.push(&dev, 1, place(9, 9).expect("fits"));
        assert_eq!(
            index.plan(&dev, 2, 1).places[0].1,
            place(0, 1).expect("fits")
        );
    }

    #[test]
    fn a_room_first_logged_in_this_run_starts_at_its_first_id() {
        let mut index = LogIndex::default();
        let dev = room("dev");
        index.push(&dev, 7, place(3, 0).expect("fits"));
        let plan = index.plan(&dev, 8, 50);
        assert_eq!(ids(&plan), [7]);
        assert!(plan.first);
    }

    #[test]
    fn deleted_segments_are_forgotten_and_first_moves_up() {
        let records: Vec<Record> = (0..6).map(|_| message("dev")).collect();
        let places: Vec<Option<Place>> = (0..6u64).map(|i| place((i / 2) as u32, i % 2)).collect();
        let mut index = LogIndex::build(&records, &places);
        index.forget_before(2);
        let plan = index.plan(&room("dev"), u64::MAX, 100);
        assert_eq!(ids(&plan), [4, 5]);
        assert!(plan.first);
        assert_eq!(index.next_ids()[&room("dev")], 6, "ids keep their number");
        assert_eq!(index.len(), 2);
    }
}
