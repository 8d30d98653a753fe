//! `/join ROOM`: a connection moves to another room, made if it is new.
//! The room it leaves and the room it enters are told (with presence on),
//! and it is sent the new room's history. It never joins a room past
//! `--max-rooms`: it is told why instead.

use std::io::Write;

use log::info;

use crate::relay::{ConnId, Relay};
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::events::Event;

impl<T: Write> Relay<T> {
    /// Moves `from` to room `name`.
    pub(super) fn join(&mut self, from: ConnId, name: &RoomName) {
        if self.room_of(from) == Some(name) {
            let text = format!("* you are already in {name}");
            self.send_event(from, &Event::Notice(&text));
            return;
        }
        let room = match self.chat.rooms.find_or_make(name) {
            Ok(room) => room,
            Err(full) => {
                self.send_event(from, &Event::Error(&full.to_string()));
                return;
            }
        };
        self.leave_room(from);
        // A first frame that is a `/join` is the arrival: the new room is
        // told, and the history sent, once, here.
        if let Some(peer) = self.peers.get_mut(from) {
            peer.chat.arrived = true;
        }
        self.enter(from, room);
        let count = self.chat.rooms.get(room).map_or(0, |room| room.len());
        let who = self.name_of(from).cloned();
        match who {
            Some(who) if self.chat.presence => self.announce(room, &who, true, None),
            who => {
                if let Some(who) = who {
                    self.announce(room, &who, true, Some(from));
                }
                let text = format!("* you joined {name} ({count} here)");
                self.send_event(from, &Event::Notice(&text));
            }
        }
        self.send_history(from, room, u64::MAX);
        info!("conn {from}: joined {name}");
    }
}
