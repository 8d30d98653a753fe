//! Where each room's messages are in the log: for every room, the place
//! (segment, record index, byte offset) of each of its message records,
//! with the message's id, so a `/history` page older than memory reads only
//! the records it shows ([`super::LogWriter::read_page`]).
//!
//! A message's id is the one its record carries (format 2: the id the core
//! gave it live), so it stays the same whatever is lost around it: a record
//! dropped on a full queue, oldest segments deleted as the log passes its
//! bound. A record of the old format (version 1, no id) takes its room's
//! next id, as the relays that wrote it counted; ids go up in a room, and a
//! record whose id does not is left out of the index (it cannot be paged
//! to). The index is built from the records read at start
//! ([`LogIndex::build`]) and grown by the writer thread after each message
//! record it writes. Deleting the oldest segments forgets their places
//! ([`LogIndex::forget_before`]), and a room with none left is forgotten.
//!
//! Memory: 24 bytes (an id and a [`Place`]) per message still in the log,
//! in one `VecDeque` a room (which may hold up to twice that while it
//! grows), plus a small entry per room with messages in the log. It never
//! reads a file and never decrypts.

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
    /// The place of record `index` of segment `segment` at `offset`, if
    /// the index fits (a segment holds far fewer than 2³² records).
    pub(super) fn new(segment: u32, index: u64, offset: u64) -> Option<Place> {
        Some(Place {
            offset,
            segment,
            index: u32::try_from(index).ok()?,
        })
    }
}

/// One room's messages in the log, ids going up, oldest first.
#[derive(Debug, Default)]
struct RoomIndex {
    places: VecDeque<(u64, Place)>,
    /// The id after the newest indexed (or skipped): a record of the old
    /// format takes it.
    next: u64,
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
            if let Record::Message { room, id, .. } = record {
                let id = match id {
                    Some(id) => *id,
                    None => index.rooms.get(room).map_or(0, |room| room.next),
                };
                index.push(room, id, *place);
            }
        }
        index
    }

    /// Records that message `id` of `room` is at `place` (`None`: not
    /// indexable). Ids go up in a room: one that does not is left out.
    pub(super) fn push(&mut self, room: &RoomName, id: u64, place: Option<Place>) {
        let entry = match self.rooms.get_mut(room) {
            Some(entry) => entry,
            None => self.rooms.entry(room.clone()).or_default(),
        };
        if id < entry.next {
            return;
        }
        entry.next = id.saturating_add(1);
        if let Some(place) = place {
            entry.places.push_back((id, place));
        }
    }

    /// Forgets every place in a segment numbered below `segment` (deleted
    /// as the log passed its size bound), and every room left with none.
    pub(super) fn forget_before(&mut self, segment: u32) {
        self.rooms.retain(|_, room| {
            while room
                .places
                .front()
                .is_some_and(|(_, place)| place.segment < segment)
            {
                room.places.pop_front();
            }
            !room.places.is_empty()
        });
    }

    /// How many messages the index holds places for.
    pub fn len(&self) -> usize {
        self.rooms.values().map(|room| room.places.len()).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.rooms.values().all(|room| room.places.is_empty())
    }

    /// How many rooms it holds places for.
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }

    /// The places of `room`'s messages with ids below `before`, at most
    /// `limit`, the newest of them, oldest first.
    pub(super) fn plan(&self, room: &RoomName, before: u64, limit: usize) -> PagePlan {
        let Some(index) = self.rooms.get(room) else {
            return PagePlan {
                places: Vec::new(),
                first: true,
            };
        };
        let end = index.places.partition_point(|&(id, _)| id < before);
        let start = end.saturating_sub(limit);
        PagePlan {
            places: index.places.range(start..end).copied().collect(),
            first: start == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eaxchat_core::history::EntryKind;

    fn room(name: &str) -> RoomName {
        RoomName::new(name.as_bytes()).expect("a room name")
    }

    /// A message of the old format: no id, numbered by counting.
    fn message(room_name: &str) -> Record {
        Record::Message {
            room: room(room_name),
            sender: None,
            text: b"x".as_slice().into(),
            ts_millis: 0,
            kind: EntryKind::Message,
            id: None,
        }
    }

    fn numbered(room_name: &str, id: u64) -> Record {
        let mut record = message(room_name);
        if let Record::Message { id: slot, .. } = &mut record {
            *slot = Some(id);
        }
        record
    }

    fn place(segment: u32, index: u64) -> Option<Place> {
        Place::new(segment, index, 8 + index * 100)
    }

    fn ids(plan: &PagePlan) -> Vec<u64> {
        plan.places.iter().map(|&(id, _)| id).collect()
    }

    #[test]
    fn old_records_count_each_rooms_messages_across_segments() {
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
        let plan = index.plan(&room("a"), u64::MAX, 100);
        assert_eq!(ids(&plan), [0, 1, 2]);
        assert!(plan.first);
        assert_eq!(plan.places[1].1, place(1, 0).expect("fits"));
        assert_eq!(plan.places[2].1.offset, 108);
        assert_eq!(ids(&index.plan(&room("b"), u64::MAX, 100)), [0]);
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

    /// The review's finding: ids were counted from the records read, so a
    /// record lost (dropped, or its segment deleted) shifted every later
    /// id after a restart. Ids carried by the records keep their number.
    #[test]
    fn carried_ids_keep_their_number_across_lost_records() {
        // Ids 2 and 3 were never written; 0 and 1 sat in a deleted segment.
        let records = vec![numbered("dev", 4), numbered("dev", 5), numbered("dev", 7)];
        let places = vec![place(3, 0), place(3, 1), place(3, 2)];
        let index = LogIndex::build(&records, &places);
        let plan = index.plan(&room("dev"), u64::MAX, 10);
        assert_eq!(ids(&plan), [4, 5, 7]);
        assert!(plan.first);
        // A page is LIMIT messages, whatever ids are missing between.
        let plan = index.plan(&room("dev"), 7, 2);
        assert_eq!(ids(&plan), [4, 5]);
        assert!(plan.first);
        let plan = index.plan(&room("dev"), 8, 2);
        assert_eq!(ids(&plan), [5, 7]);
        assert!(!plan.first);
    }

    #[test]
    fn old_records_then_new_ones_number_on() {
        // A relay upgraded in place: its old records are counted, its new
        // ones carry the ids the core went on with.
        let records = vec![message("dev"), message("dev"), numbered("dev", 2)];
        let places = vec![place(0, 0), place(0, 1), place(1, 0)];
        let index = LogIndex::build(&records, &places);
        assert_eq!(ids(&index.plan(&room("dev"), u64::MAX, 10)), [0, 1, 2]);
    }

    #[test]
    fn an_id_that_does_not_go_up_is_left_out() {
        let mut index = LogIndex::default();
        let dev = room("dev");
        index.push(&dev, 0, place(0, 0));
        index.push(&dev, 1, place(0, 1));
        index.push(&dev, 1, place(9, 9));
        index.push(&dev, 0, place(9, 9));
        let plan = index.plan(&dev, u64::MAX, 10);
        assert_eq!(ids(&plan), [0, 1]);
        assert_eq!(plan.places[1].1, place(0, 1).expect("fits"));
    }

    #[test]
    fn a_room_first_logged_in_this_run_starts_at_its_first_id() {
        let mut index = LogIndex::default();
        let dev = room("dev");
        index.push(&dev, 7, place(3, 0));
        let plan = index.plan(&dev, 8, 50);
        assert_eq!(ids(&plan), [7]);
        assert!(plan.first);
    }

    #[test]
    fn deleted_segments_are_forgotten_and_rooms_with_them() {
        let mut records: Vec<Record> = (0..6).map(|i| numbered("dev", i)).collect();
        records.push(numbered("old", 0));
        let mut places: Vec<Option<Place>> =
            (0..6u64).map(|i| place((i / 2) as u32, i % 2)).collect();
        places.push(place(0, 2));
        let mut index = LogIndex::build(&records, &places);
        assert_eq!(index.rooms(), 2);
        index.forget_before(2);
        let plan = index.plan(&room("dev"), u64::MAX, 100);
        assert_eq!(ids(&plan), [4, 5], "ids keep their numbers");
        assert!(plan.first);
        assert_eq!(index.len(), 2);
        assert_eq!(index.rooms(), 1, "a room with nothing left is forgotten");
        assert!(index.plan(&room("old"), u64::MAX, 100).first);
    }
}
