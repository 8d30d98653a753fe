//! `/part [ROOM]`: a connection leaves a room (its current one if none is
//! named). Nothing said there reaches it from then on; the room is told
//! (with presence on) and the connection is sent its rooms. A member's
//! other `eaxchat/1` connections leave with it, and the relay remembers.

use std::io::Write;

use log::info;

use crate::relay::{ConnId, Relay};
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::events::Event;

impl<T: Write> Relay<T> {
    /// Takes `from` out of room `name`, or out of its current room.
    pub(super) fn part_command(&mut self, from: ConnId, name: Option<&RoomName>) {
        let room = match name {
            Some(name) => self.chat.rooms.find(name).filter(|&r| self.is_in(from, r)),
            None => self.peers.get(from).and_then(|peer| peer.chat.room),
        };
        let Some(room) = room else {
            let text = match name {
                Some(name) => format!("error: you are not in {name}"),
                None => "error: you are in no room".to_owned(),
            };
            self.room_error(from, name, &text);
            return;
        };
        let Some(name) = self.chat.rooms.get(room).map(|r| r.name().clone()) else {
            return;
        };
        self.part(from, room);
        let text = format!("* you left {name}");
        self.send_event(
            from,
            &Event::Notice {
                room: Some(&name),
                text: &text,
            },
        );
        if self.is_multi_room(from) {
            self.tell_my_rooms(from);
            self.member_rooms_changed(from, None, Some(room));
        }
        if let Some(member) = self.name_of(from).cloned().filter(|_| self.is_members()) {
            self.e2e_left(&member, &name);
        }
        self.forget_unmade_e2e(&name);
        info!("conn {from}: left {name}");
    }
}
