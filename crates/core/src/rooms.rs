//! The rooms: which connections are in each, and each room's history.
//!
//! A room is made when first joined and is gone when its last connection
//! leaves, unless it has history: then it stays, dormant, so that whoever
//! comes back sees what was said (and so that history rebuilt from the
//! message log has somewhere to live). `--max-rooms` bounds the rooms with
//! people in them; dormant rooms are bounded by as many again, the oldest
//! made forgotten first. A forgotten room's message count is kept
//! (`rooms_forgotten.rs`, bounded) so that its ids go on if it is made
//! again.
//!
//! It knows connections only by id, and sends nothing: the relay decides
//! who is told what.

use std::collections::HashMap;

use slab::Slab;

use crate::conn_id::ConnId;
use crate::history::{self, Entry, History};
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::name::Name;
use forgotten::Forgotten;

pub use forgotten::MAX_FORGOTTEN;

#[path = "rooms_forgotten.rs"]
mod forgotten;

/// A room's place in [`Rooms`]: valid while the room exists.
pub type RoomId = usize;

/// `--max-rooms`' default.
pub const DEFAULT_MAX_ROOMS: usize = 1000;

/// `--default-room`'s default.
pub const DEFAULT_ROOM: &str = "lobby";

/// How rooms are bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomsConfig {
    /// Where every connection starts.
    pub default_room: RoomName,
    /// Most rooms with someone in them.
    pub max_rooms: usize,
    /// Most messages a room's history keeps (`--history`).
    pub history_entries: usize,
    /// Most bytes a room's history keeps.
    pub history_bytes: usize,
}

impl Default for RoomsConfig {
    fn default() -> RoomsConfig {
        RoomsConfig {
            default_room: RoomName::new(DEFAULT_ROOM.as_bytes())
                .unwrap_or_else(|_| unreachable!("the default room name is valid")),
            max_rooms: DEFAULT_MAX_ROOMS,
            history_entries: history::DEFAULT_MAX_ENTRIES,
            history_bytes: history::DEFAULT_MAX_BYTES,
        }
    }
}

/// A room's topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// What it says.
    pub text: Box<[u8]>,
    /// Who set it, if they had a name.
    pub from: Option<Name>,
    /// When, in Unix milliseconds.
    pub ts_millis: u64,
}

/// One room.
#[derive(Debug)]
pub struct Room {
    name: RoomName,
    conns: Vec<ConnId>,
    /// Connections in it that asked for structured events.
    events: usize,
    history: History,
    /// The id its next message gets: how many were said in it (ids
    /// skipped aside: see `Rooms::restore` and `rooms_forgotten.rs`).
    said: u64,
    /// Its topic, if one was set.
    topic: Option<Box<Topic>>,
    /// When it was made, for forgetting the oldest dormant room.
    made: u64,
}

impl Room {
    /// Its name.
    pub fn name(&self) -> &RoomName {
        &self.name
    }

    /// The connections in it, in no order.
    pub fn conns(&self) -> &[ConnId] {
        &self.conns
    }

    /// How many connections are in it.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether nobody is in it (a dormant room, kept for its history).
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// How many connections in it asked for structured events.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Its last messages.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The id its next message gets (how many were said in it, but for
    /// ids skipped where the log lost records, or a room started above 0):
    /// a connection that came in when this was `n` is owed the history
    /// entries numbered below `n`.
    pub fn said(&self) -> u64 {
        self.said
    }

    /// The id of the oldest message its history still holds (`said`
    /// when it holds none).
    pub fn first_kept(&self) -> u64 {
        self.said - self.history.len() as u64
    }

    /// The history entries said before message id `before`, oldest
    /// first.
    pub fn history_before(&self, before: u64) -> impl Iterator<Item = &Entry> {
        self.page(before, usize::MAX).1
    }

    /// At most `limit` history entries said before message id `before`,
    /// the newest of them, oldest first, with the id of the first.
    pub fn page(&self, before: u64, limit: usize) -> (u64, impl Iterator<Item = &Entry>) {
        let first = self.first_kept();
        let end = before.clamp(first, self.said);
        let start = end.saturating_sub(limit as u64).max(first);
        let entries = self
            .history
            .iter()
            .skip((start - first) as usize)
            .take((end - start) as usize);
        (start, entries)
    }

    /// Its topic, if one was set.
    pub fn topic(&self) -> Option<&Topic> {
        self.topic.as_deref()
    }
}

/// Why a room could not be joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomsFull {
    /// The limit.
    pub max_rooms: usize,
}

impl std::fmt::Display for RoomsFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "error: the relay has its most rooms ({}); join one that exists (/rooms)",
            self.max_rooms
        )
    }
}

/// Every room.
#[derive(Debug)]
pub struct Rooms {
    rooms: Slab<Room>,
    by_name: HashMap<RoomName, RoomId>,
    config: RoomsConfig,
    /// Rooms with someone in them.
    occupied: usize,
    made: u64,
    /// How many messages were said in each forgotten room, so that a room
    /// made again goes on from there and no id is given twice in a room.
    forgotten: Forgotten,
}

impl Rooms {
    /// No rooms yet.
    pub fn new(config: RoomsConfig) -> Rooms {
        Rooms {
            rooms: Slab::new(),
            by_name: HashMap::new(),
            config,
            occupied: 0,
            made: 0,
            forgotten: Forgotten::new(MAX_FORGOTTEN),
        }
    }

    /// How many forgotten rooms' message counts are kept (at most
    /// [`MAX_FORGOTTEN`]).
    pub fn forgotten_counts(&self) -> usize {
        self.forgotten.len()
    }

    /// Where a room new to the relay starts numbering its messages: 0,
    /// until a forgotten room's count was let go past [`MAX_FORGOTTEN`].
    pub fn id_floor(&self) -> u64 {
        self.forgotten.floor()
    }

    /// The bounds in force.
    pub fn config(&self) -> &RoomsConfig {
        &self.config
    }

    /// A room, if `id` names one.
    pub fn get(&self, id: RoomId) -> Option<&Room> {
        self.rooms.get(id)
    }

    /// The room called `name`, if it exists.
    pub fn find(&self, name: &RoomName) -> Option<RoomId> {
        self.by_name.get(name).copied()
    }

    /// The room called `name`, made if need be: refused when that would
    /// pass `--max-rooms` rooms with people in them (the caller puts
    /// someone in it at once).
    pub fn find_or_make(&mut self, name: &RoomName) -> Result<RoomId, RoomsFull> {
        if let Some(id) = self.find(name) {
            if self.rooms[id].is_empty() && self.occupied >= self.config.max_rooms {
                return Err(RoomsFull {
                    max_rooms: self.config.max_rooms,
                });
            }
            return Ok(id);
        }
        if self.occupied >= self.config.max_rooms {
            return Err(RoomsFull {
                max_rooms: self.config.max_rooms,
            });
        }
        Ok(self.make(name))
    }

    fn make(&mut self, name: &RoomName) -> RoomId {
        if self.rooms.len() >= self.config.max_rooms.saturating_mul(2).max(1) {
            self.forget_oldest_dormant();
        }
        self.made += 1;
        let said = self.forgotten.take(name);
        let id = self.rooms.insert(Room {
            name: name.clone(),
            conns: Vec::new(),
            events: 0,
            history: History::new(self.config.history_entries, self.config.history_bytes),
            said,
            topic: None,
            made: self.made,
        });
        self.by_name.insert(name.clone(), id);
        id
    }

    fn forget_oldest_dormant(&mut self) {
        let oldest = self
            .rooms
            .iter()
            .filter(|(_, room)| room.is_empty())
            .min_by_key(|(_, room)| room.made)
            .map(|(id, _)| id);
        if let Some(id) = oldest {
            self.delete(id);
        }
    }

    fn delete(&mut self, id: RoomId) {
        if let Some(room) = self.rooms.try_remove(id) {
            self.by_name.remove(&room.name);
            self.forgotten.keep(room.name, room.said);
        }
    }

    /// Puts connection `conn` in room `id`.
    pub fn enter(&mut self, id: RoomId, conn: ConnId, events: bool) {
        let Some(room) = self.rooms.get_mut(id) else {
            return;
        };
        if room.conns.is_empty() {
            self.occupied += 1;
        }
        room.conns.push(conn);
        room.events += usize::from(events);
    }

    /// Takes connection `conn` out of room `id`; the room is gone if that
    /// left it empty with no history.
    pub fn leave(&mut self, id: RoomId, conn: ConnId, events: bool) {
        let Some(room) = self.rooms.get_mut(id) else {
            return;
        };
        let Some(at) = room.conns.iter().position(|&c| c == conn) else {
            return;
        };
        room.conns.swap_remove(at);
        room.events -= usize::from(events);
        if room.conns.is_empty() {
            self.occupied -= 1;
            if room.history.is_empty() && room.topic.is_none() {
                self.delete(id);
            }
        }
    }

    /// Sets room `id`'s topic; an empty text clears it.
    pub fn set_topic(&mut self, id: RoomId, topic: Topic) {
        if let Some(room) = self.rooms.get_mut(id) {
            room.topic = (!topic.text.is_empty()).then(|| Box::new(topic));
        }
    }

    /// Counts a message said in room `id` when no history is kept (so
    /// every id still counts from the room's first message).
    pub fn count_said(&mut self, id: RoomId) {
        if let Some(room) = self.rooms.get_mut(id) {
            room.said += 1;
        }
    }

    /// Whether connection `conn` is in room `id`.
    pub fn has(&self, id: RoomId, conn: ConnId) -> bool {
        self.rooms
            .get(id)
            .is_some_and(|room| room.conns.contains(&conn))
    }

    /// Notes that a connection in room `id` now asks for structured events.
    pub fn asked_for_events(&mut self, id: RoomId) {
        if let Some(room) = self.rooms.get_mut(id) {
            room.events += 1;
        }
    }

    /// Adds a message to room `id`'s history.
    pub fn remember(&mut self, id: RoomId, entry: Entry) {
        if let Some(room) = self.rooms.get_mut(id) {
            room.history.push(entry);
            room.said += 1;
        }
    }

    /// Adds a message from the log to the history of the room `name`,
    /// made dormant if it does not exist, at its id if its record carries
    /// one (else at the room's next). The history holds ids with no gap:
    /// an id past the room's next (records dropped or deleted between)
    /// starts it afresh there, and an id below it is not kept in memory
    /// (the log still pages it).
    pub fn restore(&mut self, name: &RoomName, id: Option<u64>, entry: Entry) {
        let room_id = match self.find(name) {
            Some(room_id) => room_id,
            None => self.make(name),
        };
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        match id {
            Some(id) if id < room.said => return,
            Some(id) if id > room.said => {
                room.history.clear();
                room.said = id;
            }
            _ => {}
        }
        self.remember(room_id, entry);
    }

    /// Sets the history of the room `name` to `entries` (oldest first),
    /// made dormant if it does not exist: the cluster's stream holds the
    /// room's history as every relay said it.
    pub fn replace_history(&mut self, name: &RoomName, entries: impl IntoIterator<Item = Entry>) {
        let id = match self.find(name) {
            Some(id) => id,
            None => self.make(name),
        };
        if let Some(room) = self.rooms.get_mut(id) {
            room.history.clear();
        }
        for entry in entries {
            self.remember(id, entry);
        }
    }

    /// The rooms with someone in them and how many, most first.
    pub fn occupied(&self) -> Vec<(&RoomName, usize)> {
        let mut rooms: Vec<_> = self
            .rooms
            .iter()
            .filter(|(_, room)| !room.is_empty())
            .map(|(_, room)| (&room.name, room.len()))
            .collect();
        rooms.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        rooms
    }

    /// How many rooms have someone in them.
    pub fn occupied_count(&self) -> usize {
        self.occupied
    }

    /// How many rooms exist, dormant ones included.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether no room exists.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::EntryKind;

    fn room(name: &str) -> RoomName {
        RoomName::new(name.as_bytes()).expect("a test room")
    }

    fn entry(text: &str) -> Entry {
        Entry {
            sender: None,
            text: text.as_bytes().into(),
            ts_millis: 0,
            kind: EntryKind::Message,
        }
    }

    fn rooms(max_rooms: usize) -> Rooms {
        Rooms::new(RoomsConfig {
            max_rooms,
            ..RoomsConfig::default()
        })
    }

    #[test]
    fn a_room_is_gone_when_empty_unless_it_has_history() {
        let mut rooms = rooms(10);
        let a = rooms.find_or_make(&room("a")).expect("room");
        rooms.enter(a, 1, false);
        rooms.leave(a, 1, false);
        assert_eq!(rooms.find(&room("a")), None);
        let b = rooms.find_or_make(&room("b")).expect("room");
        rooms.enter(b, 1, true);
        rooms.remember(b, entry("hi"));
        rooms.leave(b, 1, true);
        assert_eq!(rooms.find(&room("b")), Some(b));
        assert!(rooms.occupied().is_empty());
    }

    #[test]
    fn max_rooms_counts_rooms_with_people() {
        let mut rooms = rooms(2);
        for (conn, name) in ["a", "b"].into_iter().enumerate() {
            let id = rooms.find_or_make(&room(name)).expect("room");
            rooms.enter(id, conn, false);
        }
        assert_eq!(
            rooms.find_or_make(&room("c")),
            Err(RoomsFull { max_rooms: 2 })
        );
        // An existing room can always be joined.
        let a = rooms.find_or_make(&room("a")).expect("room");
        rooms.enter(a, 9, false);
        assert_eq!(rooms.occupied(), [(&room("a"), 2), (&room("b"), 1)]);
    }

    #[test]
    fn dormant_rooms_are_bounded_too() {
        let mut rooms = rooms(1);
        for name in ["a", "b", "c", "d"] {
            let id = rooms.find_or_make(&room(name)).expect("room");
            rooms.enter(id, 1, false);
            rooms.remember(id, entry(name));
            rooms.leave(id, 1, false);
        }
        assert!(rooms.len() <= 2, "{} rooms kept", rooms.len());
        assert!(rooms.find(&room("d")).is_some());
        assert!(rooms.find(&room("a")).is_none());
    }

    #[test]
    fn history_before_a_mark() {
        let mut rooms = rooms(1);
        let a = rooms.find_or_make(&room("a")).expect("room");
        rooms.enter(a, 1, false);
        for text in ["1", "2", "3"] {
            rooms.remember(a, entry(text));
        }
        let texts = |before| -> Vec<Vec<u8>> {
            rooms
                .get(a)
                .expect("room")
                .history_before(before)
                .map(|e| e.text.to_vec())
                .collect()
        };
        assert_eq!(texts(2), [b"1".to_vec(), b"2".to_vec()]);
        assert_eq!(texts(3).len(), 3);
        assert_eq!(texts(0).len(), 0);
    }

    #[test]
    fn a_room_made_again_goes_on_numbering() {
        let mut rooms = Rooms::new(RoomsConfig {
            history_entries: 0,
            max_rooms: 1,
            ..RoomsConfig::default()
        });
        let a = rooms.find_or_make(&room("a")).expect("room");
        rooms.enter(a, 1, false);
        rooms.count_said(a);
        rooms.count_said(a);
        rooms.leave(a, 1, false);
        assert_eq!(rooms.find(&room("a")), None, "no history: forgotten");
        let a = rooms.find_or_make(&room("a")).expect("room");
        assert_eq!(rooms.get(a).map(Room::said), Some(2));
    }

    #[test]
    fn a_restored_record_goes_in_at_its_id() {
        let mut rooms = rooms(4);
        let dev = room("dev");
        rooms.restore(&dev, Some(3), entry("3"));
        rooms.restore(&dev, Some(4), entry("4"));
        let id = rooms.find(&dev).expect("made");
        let kept = rooms.get(id).expect("room");
        assert_eq!((kept.first_kept(), kept.said()), (3, 5));
        // A gap starts the history afresh after it; an id gone back is
        // not kept; a record with no id takes the next.
        rooms.restore(&dev, Some(9), entry("9"));
        rooms.restore(&dev, Some(2), entry("2"));
        rooms.restore(&dev, None, entry("10"));
        let kept = rooms.get(id).expect("room");
        assert_eq!((kept.first_kept(), kept.said()), (9, 11));
        let texts: Vec<&[u8]> = kept.history().iter().map(|e| &*e.text).collect();
        assert_eq!(texts, [b"9".as_slice(), b"10"]);
    }

    #[test]
    fn pages_of_history_by_id() {
        let mut rooms = Rooms::new(RoomsConfig {
            history_entries: 5,
            ..RoomsConfig::default()
        });
        let a = rooms.find_or_make(&room("a")).expect("room");
        rooms.enter(a, 1, false);
        for i in 0..8 {
            rooms.remember(a, entry(&i.to_string()));
        }
        let room = rooms.get(a).expect("room");
        // Ids 3..8 are kept.
        assert_eq!((room.first_kept(), room.said()), (3, 8));
        let page = |before, limit| -> (u64, Vec<String>) {
            let (start, entries) = room.page(before, limit);
            let texts = entries
                .map(|e| String::from_utf8_lossy(&e.text).into_owned())
                .collect();
            (start, texts)
        };
        assert_eq!(page(7, 2), (5, vec!["5".into(), "6".into()]));
        let all: Vec<String> = (3..8).map(|i: u32| i.to_string()).collect();
        assert_eq!(page(u64::MAX, 100), (3, all));
        assert_eq!(page(4, 10), (3, vec!["3".into()]));
        assert_eq!(page(2, 10), (3, vec![]));
    }
}
