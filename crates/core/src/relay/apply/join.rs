//! `/join ROOM`: a connection comes into a room, made if it is new, and
//! sends there from now on. One that speaks `eaxchat/1` keeps its other
//! rooms (at most [`MAX_ROOMS_PER_CONN`]); one that never said `/hello`
//! lives in one room, as always, and moves. The room is told (with
//! presence on), and the joiner is sent its topic, its history and its
//! rooms. It never joins a room past `--max-rooms`: it is told why instead.

use std::io::Write;

use log::info;

use crate::relay::membership::MAX_ROOMS_PER_CONN;
use crate::relay::{ConnId, Relay};
use crate::rooms::RoomId;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::events::Event;

impl<T: Write> Relay<T> {
    /// Puts `from` in room `name`, and makes it current.
    pub(in crate::relay) fn join(&mut self, from: ConnId, name: &RoomName) {
        let multi = self.is_multi_room(from);
        if let Some(room) = self.chat.rooms.find(name).filter(|&r| self.is_in(from, r)) {
            self.enter(from, room);
            let text = format!("* you are already in {name}; sending there");
            self.send_event(
                from,
                &Event::Notice {
                    room: Some(name),
                    text: &text,
                },
            );
            if multi {
                self.tell_my_rooms(from);
            }
            return;
        }
        let count = self.peers.get(from).map_or(0, |peer| peer.chat.rooms.len());
        if multi && count >= MAX_ROOMS_PER_CONN {
            let text = format!(
                "error: you are in {MAX_ROOMS_PER_CONN} rooms, the most there can be; /part one first"
            );
            self.room_error(from, Some(name), &text);
            return;
        }
        if !self.may_join(from, name) {
            return;
        }
        let room = match self.chat.rooms.find_or_make(name) {
            Ok(room) => room,
            Err(full) => {
                self.send_event(from, &Event::error(&full.to_string()));
                return;
            }
        };
        if !multi {
            self.leave_rooms(from);
        }
        // A first frame that is a `/join` is the arrival: the new room is
        // told, and the history sent, once, here.
        if let Some(peer) = self.peers.get_mut(from) {
            peer.chat.arrived = true;
        }
        self.enter(from, room);
        self.tell_joined(from, room, name);
        if self.is_e2e(room) {
            self.e2e_joined(from, room);
        }
        if multi {
            self.tell_my_rooms(from);
            self.member_rooms_changed(from, Some(room), None);
        }
        info!("conn {from}: joined {name}");
    }

    /// Tells room `room` that `from` came in (or `from` alone, with no
    /// presence), and sends `from` the room's topic and history.
    fn tell_joined(&mut self, from: ConnId, room: RoomId, name: &RoomName) {
        let count = self.chat.rooms.get(room).map_or(0, |room| room.len());
        let who = self.name_of(from).cloned();
        match who {
            Some(who) if self.chat.presence => self.announce(room, &who, true, None),
            who => {
                if let Some(who) = who {
                    self.announce(room, &who, true, Some(from));
                }
                let text = format!("* you joined {name} ({count} here)");
                self.send_event(
                    from,
                    &Event::Notice {
                        room: Some(name),
                        text: &text,
                    },
                );
            }
        }
        if let Some(topic) = self.chat.rooms.get(room).and_then(|r| r.topic()).cloned() {
            self.send_event(
                from,
                &Event::Topic {
                    room: name,
                    from: topic.from.as_ref(),
                    text: &topic.text,
                    ts: topic.ts_millis,
                },
            );
        }
        self.send_history(from, room, u64::MAX);
    }
}
