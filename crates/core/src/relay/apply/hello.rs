//! `/hello eaxchat/1`: a connection asks for structured events, and is
//! welcomed with its name and room. It changes only the form that
//! connection is told things in, never what it is told.

use std::io::Write;

use crate::relay::{ConnId, Relay};
use eaxchat_proto::events::Event;

impl<T: Write> Relay<T> {
    /// Switches `from` to JSON events, and welcomes it.
    pub(super) fn hello(&mut self, from: ConnId) {
        let Some(peer) = self.peers.get_mut(from) else {
            return;
        };
        if !std::mem::replace(&mut peer.chat.events, true)
            && let Some(room) = peer.chat.room
        {
            self.chat.rooms.asked_for_events(room);
        }
        let name = self.name_of(from).cloned();
        let room = self.room_of(from).cloned();
        if let Some(room) = room {
            let members = self.is_members();
            self.send_event(
                from,
                &Event::Welcome {
                    name: name.as_ref(),
                    room: &room,
                    members,
                },
            );
        }
    }
}
