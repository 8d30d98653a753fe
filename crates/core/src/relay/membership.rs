//! Which rooms each connection is in, and which each member is in.
//!
//! A connection that said `/hello eaxchat/1` may sit in up to
//! [`MAX_ROOMS_PER_CONN`] rooms at once; one that never did lives in one
//! room, as the original notebook client always has. Either has a
//! *current* room, where its plain text goes (`/in ROOM` changes it).
//!
//! In members and session mode the rooms are a member's, not a
//! connection's: a `/join` or `/part` on one of its connections is
//! followed by every other connection of that member that speaks
//! `eaxchat/1`, and is remembered ([`Relay::member_rooms`]) so that its
//! next connection, from any device, comes back in the same rooms. The
//! caller keeps that memory across restarts
//! ([`Relay::restore_member_rooms`]). Plain connections are never moved by
//! another's `/join`.
//!
//! This module only moves connections in and out of rooms and tells them
//! so; what a room is told of it is the chat layer's (`announce`).

use std::collections::HashMap;
use std::io::Write;

use super::{ConnId, Relay};
use crate::rooms::RoomId;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::events::Event;
use eaxchat_proto::name::Name;

/// The most rooms one connection may be in at once.
pub const MAX_ROOMS_PER_CONN: usize = 32;

/// A member's rooms as the relay remembers them: `(name, current, rooms)`.
pub type MemberRooms = (Name, Option<RoomName>, Vec<RoomName>);

/// What the relay remembers of one member's rooms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Remembered {
    current: Option<RoomName>,
    rooms: Vec<RoomName>,
}

/// Every member's remembered rooms, and whether they changed.
#[derive(Debug, Default)]
pub(super) struct MemberMemory {
    by_name: HashMap<Name, Remembered>,
    changed: bool,
}

impl<T: Write> Relay<T> {
    /// The room connection `id` sends to, if any.
    pub fn room_of(&self, id: ConnId) -> Option<&RoomName> {
        let room = self.peers.get(id)?.chat.room?;
        Some(self.chat.rooms.get(room)?.name())
    }

    /// Every room connection `id` is in, in the order it joined them.
    pub fn rooms_of(&self, id: ConnId) -> Vec<&RoomName> {
        let Some(peer) = self.peers.get(id) else {
            return Vec::new();
        };
        peer.chat
            .rooms
            .iter()
            .filter_map(|&room| Some(self.chat.rooms.get(room)?.name()))
            .collect()
    }

    /// Every member's remembered rooms: `(name, current, rooms)`.
    pub fn member_rooms(&self) -> Vec<MemberRooms> {
        let mut all: Vec<MemberRooms> = self
            .chat
            .members
            .by_name
            .iter()
            .map(|(name, kept)| (name.clone(), kept.current.clone(), kept.rooms.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Whether the members' remembered rooms changed since the last call.
    pub fn take_member_rooms_changed(&mut self) -> bool {
        std::mem::take(&mut self.chat.members.changed)
    }

    /// Sets the members' remembered rooms (read back at start): at most
    /// [`MAX_ROOMS_PER_CONN`] each, a current room not among them dropped.
    pub fn restore_member_rooms(&mut self, rooms: Vec<MemberRooms>) {
        for (name, current, mut list) in rooms {
            list.dedup();
            list.truncate(MAX_ROOMS_PER_CONN);
            let current = current.filter(|room| list.contains(room));
            self.chat.members.by_name.insert(
                name,
                Remembered {
                    current,
                    rooms: list,
                },
            );
        }
    }

    /// Whether `id` may sit in several rooms: it speaks `eaxchat/1`.
    pub(super) fn is_multi_room(&self, id: ConnId) -> bool {
        self.peers.get(id).is_some_and(|peer| peer.chat.events)
    }

    /// Whether `id` is in room `room`.
    pub(super) fn is_in(&self, id: ConnId, room: RoomId) -> bool {
        self.peers
            .get(id)
            .is_some_and(|peer| peer.chat.rooms.contains(&room))
    }

    /// Puts `id` in the default room, owed its history so far.
    pub(super) fn enter_default_room(&mut self, id: ConnId) {
        let name = self.chat.rooms.config().default_room.clone();
        if let Ok(room) = self.chat.rooms.find_or_make(&name) {
            self.enter(id, room);
        }
    }

    /// Puts `id` in room `room` (if it is not there) and makes it current.
    /// The first room a connection enters is owed the history said before.
    pub(super) fn enter(&mut self, id: ConnId, room: RoomId) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        peer.chat.room = Some(room);
        if peer.chat.rooms.contains(&room) {
            return;
        }
        if peer.chat.rooms.is_empty() {
            let said = self.chat.rooms.get(room).map_or(0, |room| room.said());
            peer.chat.owed = Some((room, said));
        }
        self.chat.rooms.enter(room, id, peer.chat.events);
        peer.chat.rooms.push(room);
        self.cluster_interest_changed();
    }

    /// Takes `id` out of room `room`, telling the room if it has a name
    /// and had arrived; its current room becomes the last it joined.
    pub(super) fn part(&mut self, id: ConnId, room: RoomId) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let Some(at) = peer.chat.rooms.iter().position(|&r| r == room) else {
            return;
        };
        peer.chat.rooms.remove(at);
        if peer.chat.room == Some(room) {
            peer.chat.room = peer.chat.rooms.last().copied();
        }
        if peer.chat.owed.is_some_and(|(owed, _)| owed == room) {
            peer.chat.owed = None;
        }
        let (events, arrived) = (peer.chat.events, peer.chat.arrived);
        self.chat.rooms.leave(room, id, events);
        self.cluster_interest_changed();
        if arrived && let Some(name) = self.name_of(id).cloned() {
            self.announce(room, &name, false, Some(id));
        }
    }

    /// Takes `id` out of every room it is in (it is leaving the relay).
    pub(super) fn leave_rooms(&mut self, id: ConnId) {
        let rooms = self
            .peers
            .get(id)
            .map(|peer| peer.chat.rooms.clone())
            .unwrap_or_default();
        for room in rooms.into_iter().rev() {
            self.part(id, room);
        }
    }

    /// Tells `id` its rooms now (a `myrooms` event).
    pub(super) fn tell_my_rooms(&mut self, id: ConnId) {
        let current = self.room_of(id).cloned();
        let rooms: Vec<RoomName> = self.rooms_of(id).into_iter().cloned().collect();
        let e2e: Vec<&RoomName> = rooms
            .iter()
            .filter(|room| self.chat.delivery.is_e2e(room))
            .collect();
        let rooms: Vec<&RoomName> = rooms.iter().collect();
        self.send_event(
            id,
            &Event::MyRooms {
                room: current.as_ref(),
                rooms: &rooms,
                e2e: &e2e,
            },
        );
    }

    /// `id`'s member, if it is one, remembers `id`'s rooms now; and
    /// every other `eaxchat/1` connection of that member follows: into
    /// `joined` (sent its history), out of `parted`.
    pub(super) fn member_rooms_changed(
        &mut self,
        id: ConnId,
        joined: Option<RoomId>,
        parted: Option<RoomId>,
    ) {
        if !self.is_members() {
            return;
        }
        let Some(name) = self.name_of(id).cloned() else {
            return;
        };
        let kept = Remembered {
            current: self.room_of(id).cloned(),
            rooms: self.rooms_of(id).into_iter().cloned().collect(),
        };
        let memory = &mut self.chat.members;
        if memory.by_name.get(&name) != Some(&kept) {
            memory.by_name.insert(name.clone(), kept);
            memory.changed = true;
        }
        let others: Vec<ConnId> = self
            .connections_named(&name)
            .into_iter()
            .filter(|&other| other != id && self.is_multi_room(other))
            .collect();
        for other in others {
            let moved = match (joined, parted) {
                (Some(room), _) if !self.is_in(other, room) => {
                    let current = self.peers.get(other).and_then(|peer| peer.chat.room);
                    self.chat.rooms.enter(room, other, true);
                    if let Some(peer) = self.peers.get_mut(other) {
                        peer.chat.rooms.push(room);
                        peer.chat.room = current.or(Some(room));
                    }
                    self.cluster_interest_changed();
                    self.send_history(other, room, u64::MAX);
                    true
                }
                (_, Some(room)) if self.is_in(other, room) => {
                    self.part_quietly(other, room);
                    true
                }
                _ => false,
            };
            if moved {
                self.tell_my_rooms(other);
            }
        }
    }

    /// `id`'s member, if it is one, now sends to room `name` by default.
    pub(super) fn remember_current(&mut self, id: ConnId, name: &RoomName) {
        if !self.is_members() {
            return;
        }
        let Some(member) = self.name_of(id).cloned() else {
            return;
        };
        if let Some(kept) = self.chat.members.by_name.get_mut(&member)
            && kept.current.as_ref() != Some(name)
            && kept.rooms.contains(name)
        {
            kept.current = Some(name.clone());
            self.chat.members.changed = true;
        }
    }

    /// Takes `id` out of `room` without telling the room: another
    /// connection of the same member already told it.
    fn part_quietly(&mut self, id: ConnId, room: RoomId) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        peer.chat.rooms.retain(|&r| r != room);
        if peer.chat.room == Some(room) {
            peer.chat.room = peer.chat.rooms.last().copied();
        }
        self.chat.rooms.leave(room, id, true);
        self.cluster_interest_changed();
    }

    /// At `/hello eaxchat/1`: a member's connection goes to the rooms its
    /// member is remembered in, instead of the default room it was put in.
    /// Returns whether it had any remembered.
    pub(super) fn restore_rooms_of(&mut self, id: ConnId) -> bool {
        if !self.is_members() {
            return false;
        }
        let Some(kept) = self
            .name_of(id)
            .and_then(|name| self.chat.members.by_name.get(name))
            .cloned()
        else {
            return false;
        };
        let arrived = self.peers.get(id).is_some_and(|peer| peer.chat.arrived);
        let wanted: Vec<RoomId> = kept
            .rooms
            .iter()
            .filter_map(|name| self.chat.rooms.find_or_make(name).ok())
            .collect();
        let now_in = self
            .peers
            .get(id)
            .map(|peer| peer.chat.rooms.clone())
            .unwrap_or_default();
        for room in now_in {
            if !wanted.contains(&room) {
                self.part(id, room);
            }
        }
        for &room in &wanted {
            if self.is_in(id, room) {
                continue;
            }
            self.enter(id, room);
            if arrived {
                self.send_history(id, room, u64::MAX);
                if let Some(name) = self.name_of(id).cloned() {
                    self.announce(room, &name, true, Some(id));
                }
            }
        }
        let current = kept
            .current
            .and_then(|name| self.chat.rooms.find(&name))
            .filter(|&room| self.is_in(id, room));
        if let Some(peer) = self.peers.get_mut(id) {
            peer.chat.room = current.or(peer.chat.rooms.last().copied());
        }
        true
    }
}
