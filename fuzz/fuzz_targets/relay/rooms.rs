//! The `relay` fuzz target's model of rooms: which rooms exist (each with
//! its message counter, topic and age), which rooms each client is in and
//! which is its current one, and the relay's rules for making and
//! forgetting rooms (`--max-rooms`; a room nobody is in is gone unless a
//! topic keeps it, and the oldest such is forgotten when too many are
//! kept; a forgotten room's message count is kept, so made again it
//! numbers on from there). What a client is told is worked out here too,
//! in the form it asked for (plain text, or `eaxchat/1` JSON once it said
//! `/hello`).
//!
//! After every turn [`Harness::check_rooms`] holds the relay to it: the
//! same rooms, counters and topics, and for every connection the same
//! rooms in the same order and the same current room.

use std::collections::BTreeMap;

use eaxchat_core::relay::MAX_ROOMS_PER_CONN;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::events::Event;
use eaxchat_proto::name::Name;

use super::*;

/// The relay's wall clock at the harness's start, in Unix milliseconds.
pub(crate) const EPOCH_MILLIS: u64 = 1_750_000_000_000;

/// A room's topic as the model has it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TopicModel {
    pub(crate) from: Option<Name>,
    pub(crate) text: Vec<u8>,
    pub(crate) ts: u64,
}

/// One room that exists on the relay.
#[derive(Debug, Clone)]
pub(crate) struct RoomModel {
    /// Messages said in it: the id the next one gets.
    pub(crate) said: u64,
    pub(crate) topic: Option<TopicModel>,
    /// When it was made, for forgetting the oldest dormant room.
    made: u64,
}

/// Every room, and the bound on rooms with someone in them.
pub(crate) struct RoomsModel {
    pub(crate) rooms: BTreeMap<RoomName, RoomModel>,
    /// The message counts of rooms forgotten (the relay keeps 4,096; a
    /// script names at most 40 rooms, so never past that bound).
    forgotten: BTreeMap<RoomName, u64>,
    made: u64,
    pub(crate) max_rooms: usize,
}

impl RoomsModel {
    /// Forgets room `name`, keeping its message count.
    fn forget(&mut self, name: &RoomName) {
        if let Some(room) = self.rooms.remove(name)
            && room.said > 0
        {
            self.forgotten.insert(name.clone(), room.said);
        }
    }

    pub(crate) fn new(max_rooms: usize) -> RoomsModel {
        RoomsModel {
            rooms: BTreeMap::new(),
            forgotten: BTreeMap::new(),
            made: 0,
            max_rooms,
        }
    }
}

/// Room `index` of the few a script names: `#lobby` or `#r1` … `#r39`
/// (more than [`MAX_ROOMS_PER_CONN`], so the cap can be reached).
pub(crate) fn room_name(index: u8) -> RoomName {
    let text = match index % 40 {
        0 => "lobby".to_owned(),
        n => format!("r{n}"),
    };
    RoomName::new(text.as_bytes()).expect("a valid room name")
}

/// How a script spells room `name` (`form` picks): with or without its
/// `#`, in lower or upper case. The relay folds them all to one room.
pub(crate) fn spell(name: &RoomName, form: u8) -> String {
    let bare = match form % 4 {
        0 | 1 => name.as_str().to_owned(),
        _ => name.as_str().to_ascii_uppercase(),
    };
    if form % 2 == 1 {
        format!("#{bare}")
    } else {
        bare
    }
}

impl Harness {
    /// The relay's clock in Unix milliseconds, as it stamps events.
    pub(crate) fn wall_millis(&self) -> u64 {
        EPOCH_MILLIS + self.clock.get().duration_since(self.start).as_millis() as u64
    }

    /// Connections in room `name` (closing ones too: they leave it only
    /// when removed).
    pub(crate) fn room_len(&self, name: &RoomName) -> usize {
        self.clients
            .iter()
            .filter(|client| client.rooms.contains(name))
            .count()
    }

    /// How many rooms have someone in them.
    fn occupied(&self) -> usize {
        self.rooms
            .rooms
            .keys()
            .filter(|name| self.room_len(name) > 0)
            .count()
    }

    /// The relay's `find_or_make`: whether room `name` may be entered,
    /// made (forgetting the oldest dormant room if too many are kept) if
    /// it does not exist.
    pub(crate) fn find_or_make(&mut self, name: &RoomName) -> bool {
        let occupied = self.occupied();
        if self.rooms.rooms.contains_key(name) {
            return self.room_len(name) > 0 || occupied < self.rooms.max_rooms;
        }
        if occupied >= self.rooms.max_rooms {
            return false;
        }
        if self.rooms.rooms.len() >= self.rooms.max_rooms.saturating_mul(2).max(1) {
            let oldest = self
                .rooms
                .rooms
                .iter()
                .filter(|(name, _)| self.room_len(name) == 0)
                .min_by_key(|(_, room)| room.made)
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                self.rooms.forget(&oldest);
            }
        }
        self.rooms.made += 1;
        let room = RoomModel {
            said: self.rooms.forgotten.remove(name).unwrap_or(0),
            topic: None,
            made: self.rooms.made,
        };
        self.rooms.rooms.insert(name.clone(), room);
        true
    }

    /// Client `i` comes into room `name` (which exists) and sends there.
    pub(crate) fn enter(&mut self, i: usize, name: &RoomName) {
        let client = &mut self.clients[i];
        client.current = Some(name.clone());
        if !client.rooms.contains(name) {
            client.rooms.push(name.clone());
        }
    }

    /// Client `i` leaves room `name`: its current room becomes the last
    /// it joined; the room is gone if that emptied it and no topic keeps
    /// it.
    pub(crate) fn leave(&mut self, i: usize, name: &RoomName) {
        let client = &mut self.clients[i];
        client.rooms.retain(|room| room != name);
        if client.current.as_ref() == Some(name) {
            client.current = client.rooms.last().cloned();
        }
        let kept = self
            .rooms
            .rooms
            .get(name)
            .is_some_and(|room| room.topic.is_some());
        if !kept && self.room_len(name) == 0 {
            self.rooms.forget(name);
        }
    }

    /// Forgets the rooms nobody is in that no topic keeps (after
    /// connections are removed: a room is never empty otherwise, but for
    /// a moment in a plain client's `/join`).
    pub(crate) fn prune(&mut self) {
        let gone: Vec<RoomName> = self
            .rooms
            .rooms
            .iter()
            .filter(|(name, room)| room.topic.is_none() && self.room_len(name) == 0)
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            self.rooms.forget(&name);
        }
    }

    /// Owes client `j` `event`, in the form it asked for, if it is still
    /// told anything.
    pub(crate) fn tell(&mut self, j: usize, event: &Event<'_>) {
        let client = &mut self.clients[j];
        if !matches!(client.fate, Fate::Open | Fate::Hostile) {
            return;
        }
        let mut plaintext = Vec::new();
        if client.events {
            event.json(&mut plaintext);
        } else {
            event.plain(&mut plaintext);
        }
        client.queued_total += encoded_len(plaintext.len()) + 1;
        client.expected.push(plaintext);
    }

    /// Owes `event` to everyone in room `name` but `except`.
    pub(crate) fn tell_room(&mut self, name: &RoomName, except: Option<usize>, event: &Event<'_>) {
        for j in 0..self.clients.len() {
            if Some(j) != except && self.clients[j].rooms.contains(name) {
                self.tell(j, event);
            }
        }
    }

    /// Owes client `i` a `myrooms` event: its rooms now.
    pub(crate) fn tell_my_rooms(&mut self, i: usize) {
        let client = &self.clients[i];
        let (current, rooms) = (client.current.clone(), client.rooms.clone());
        let rooms: Vec<&RoomName> = rooms.iter().collect();
        self.tell(
            i,
            &Event::MyRooms {
                room: current.as_ref(),
                rooms: &rooms,
                // No script makes an end-to-end room.
                e2e: &[],
            },
        );
    }

    /// Client `i` said `text` in its current room (a frame of text, or
    /// `/in ROOM TEXT`): everyone else there is owed it, as the room's
    /// next message. Returns whether it went (a client in no room is told
    /// it did not).
    pub(crate) fn say(&mut self, i: usize, text: &[u8]) -> bool {
        let Some(room) = self.clients[i].current.clone() else {
            self.tell(
                i,
                &Event::error("error: you are in no room; /join one (that message was not sent)"),
            );
            return false;
        };
        let state = self
            .rooms
            .rooms
            .get_mut(&room)
            .expect("a current room exists");
        let id = state.said;
        state.said += 1;
        let (from, ts) = (self.clients[i].nick.clone(), self.wall_millis());
        self.frames_in += 1;
        self.tell_room(
            &room,
            Some(i),
            &Event::Message {
                room: &room,
                from: from.as_ref(),
                text,
                ts,
                history: false,
                action: false,
                stamped: false,
                id,
            },
        );
        true
    }

    /// The relay holds the rooms as the model does: the same rooms with
    /// the same counters, topics and occupants, every connection in the
    /// same rooms in the same order with the same current room.
    pub(crate) fn check_rooms(&self) {
        assert_eq!(
            MAX_ROOMS_PER_CONN, 32,
            "the spec's cap on rooms per connection"
        );
        let rooms = self.relay.rooms();
        assert_eq!(rooms.len(), self.rooms.rooms.len(), "rooms kept");
        for (name, model) in &self.rooms.rooms {
            let id = rooms.find(name).unwrap_or_else(|| panic!("{name} is gone"));
            let room = rooms.get(id).expect("a room found is there");
            assert_eq!(room.said(), model.said, "{name}: messages said");
            assert_eq!(room.len(), self.room_len(name), "{name}: connections in it");
            let topic = room
                .topic()
                .map(|t| (t.from.clone(), t.text.to_vec(), t.ts_millis));
            let want = model
                .topic
                .as_ref()
                .map(|t| (t.from.clone(), t.text.clone(), t.ts));
            assert_eq!(topic, want, "{name}: topic");
        }
        for client in &self.clients {
            let rooms: Vec<&RoomName> = self.relay.rooms_of(client.id);
            let want: Vec<&RoomName> = client.rooms.iter().collect();
            assert_eq!(rooms, want, "client {}: rooms", client.serial);
            assert_eq!(
                self.relay.room_of(client.id),
                client.current.as_ref(),
                "client {}: current room",
                client.serial
            );
            assert!(client.rooms.len() <= if client.events { MAX_ROOMS_PER_CONN } else { 1 });
        }
    }
}
