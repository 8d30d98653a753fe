//! `/hello eaxchat/1`: a connection asks for structured events, and is
//! welcomed with its name and rooms. From then on it may sit in several
//! rooms; a member's connection goes to the rooms its member is
//! remembered in (`membership.rs`). It changes the form that connection
//! is told things in, never what it is told.

use std::io::Write;

use crate::relay::{ConnId, Relay};
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::events::Event;

impl<T: Write> Relay<T> {
    /// `from` asked for structured events.
    pub(super) fn hello(&mut self, from: ConnId) {
        let Some(peer) = self.peers.get_mut(from) else {
            return;
        };
        if !std::mem::replace(&mut peer.chat.events, true) {
            for &room in &peer.chat.rooms {
                self.chat.rooms.asked_for_events(room);
            }
        }
        let restored = self.restore_rooms_of(from);
        let name = self.name_of(from).cloned();
        let room = self.room_of(from).cloned();
        let rooms: Vec<RoomName> = self.rooms_of(from).into_iter().cloned().collect();
        let rooms: Vec<&RoomName> = rooms.iter().collect();
        let members = self.is_members();
        self.send_event(
            from,
            &Event::Welcome {
                name: name.as_ref(),
                room: room.as_ref(),
                rooms: &rooms,
                members,
            },
        );
        if restored {
            self.tell_my_rooms(from);
        }
        if let Some(device) = self.device_of(from) {
            self.hand_welcomes(&device);
            self.e2e_device_arrived(from);
        }
    }
}
