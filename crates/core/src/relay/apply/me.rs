//! `/me ACTION`: an action said in a connection's room, told to the room,
//! kept in its history and published to the other relays. It goes only to
//! the sender's own room, never to another.
//! An action holding a line break is refused: stamped, it would forge a
//! line.

use std::io::Write;

use crate::history::EntryKind;
use crate::relay::{ConnId, Relay};
use eaxchat_proto::events::Event;
use eaxchat_proto::sanitize::has_line_break;

impl<T: Write> Relay<T> {
    /// Tells `from`'s room that it did `action`.
    pub(super) fn action(&mut self, from: ConnId, action: &[u8]) {
        if has_line_break(action) {
            self.refuse_line_break(from);
            return;
        }
        let Some(room) = self.peers.get(from).and_then(|peer| peer.chat.room) else {
            self.send_event(from, &Event::error("error: you are in no room; /join one"));
            return;
        };
        if self.refuse_in_e2e(from, room) {
            return;
        }
        let Some((room_name, id)) = self
            .chat
            .rooms
            .get(room)
            .map(|r| (r.name().clone(), r.said()))
        else {
            return;
        };
        let who = self.name_of(from).cloned();
        let ts = self.wall_millis();
        let stamped = self.is_members();
        self.tell_room(
            room,
            Some(from),
            &Event::Message {
                room: &room_name,
                from: who.as_ref(),
                text: action,
                ts,
                history: false,
                action: true,
                stamped,
                id,
            },
        );
        self.remember(from, action, EntryKind::Action);
        self.publish_action(&room_name, who.as_ref(), action);
    }
}
