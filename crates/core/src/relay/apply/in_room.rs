//! `/in ROOM REST`: a connection in several rooms names the room what
//! follows is for. The room becomes its current room, and `REST` is taken
//! as if it were the whole plaintext: text for that room, or a command run
//! there (`/in dev /me waves`, `/in dev /history 120`). `/in ROOM` alone
//! only switches. It costs one token of flood control, however it ends.

use std::io::Write;

use super::super::batch::Batch;
use crate::relay::{ConnId, MAX_COMMAND_TEXT, Mode, Relay};
use eaxchat_proto::commands::{self, Input, RoomName};
use eaxchat_proto::events::Event;
use eaxchat_proto::sanitize::has_line_break;

impl<T: Write> Relay<T> {
    /// Makes room `name` `from`'s current room, then takes `rest` there.
    pub(super) fn in_room(&mut self, from: ConnId, name: &RoomName, rest: &[u8]) {
        let Some(room) = self.chat.rooms.find(name).filter(|&r| self.is_in(from, r)) else {
            let text = format!("error: you are not in {name}; /join {name}");
            self.room_error(from, Some(name), &text);
            return;
        };
        if let Some(peer) = self.peers.get_mut(from)
            && peer.chat.room != Some(room)
        {
            peer.chat.room = Some(room);
            self.remember_current(from, name);
        }
        if rest.is_empty() {
            return;
        }
        match commands::parse(rest, MAX_COMMAND_TEXT) {
            Ok(Input::Command(command)) => self.apply_command(from, command),
            Ok(Input::Text(text)) => self.say_in_current(from, text),
            Err(error) => self.room_error(from, Some(name), &error.to_string()),
        }
    }

    /// Relays `text` (its escape already undone) to `from`'s current room
    /// as a message of its own, stamped as a frame's would be.
    fn say_in_current(&mut self, from: ConnId, text: &[u8]) {
        if self.is_members() && has_line_break(text) {
            self.refuse_line_break(from);
            return;
        }
        if text.len() > MAX_COMMAND_TEXT {
            let error = format!("error: a message with /in is at most {MAX_COMMAND_TEXT} bytes");
            self.send_event(from, &Event::error(&error));
            return;
        }
        if !self.keep_message(from, text) {
            return;
        }
        let stamp = match (&self.mode, self.name_of(from)) {
            (Mode::Members(_) | Mode::Sessions(_), Some(name)) => format!("{name}: "),
            _ => String::new(),
        };
        let mut batch = Batch::new(self.wall_millis());
        batch.push_stamped(stamp.as_bytes(), text);
        self.queue_batch(from, &batch);
    }
}
