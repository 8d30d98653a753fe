//! `/topic [TEXT]`: a room's topic, shown to whoever asks and set by
//! anyone in the room. A new topic is told to the whole room; it keeps a
//! room that empties from being forgotten, as history does. A topic
//! holding a line break is refused, as a member's text is.

use std::io::Write;

use crate::relay::{ConnId, Relay};
use crate::rooms::Topic;
use eaxchat_proto::events::Event;
use eaxchat_proto::sanitize::has_line_break;

impl<T: Write> Relay<T> {
    /// Shows `from` its current room's topic, or sets it to `text`.
    pub(super) fn topic(&mut self, from: ConnId, text: Option<&[u8]>) {
        let Some(room) = self.peers.get(from).and_then(|peer| peer.chat.room) else {
            self.send_event(from, &Event::error("error: you are in no room; /join one"));
            return;
        };
        let Some((name, topic)) = self
            .chat
            .rooms
            .get(room)
            .map(|r| (r.name().clone(), r.topic().cloned()))
        else {
            return;
        };
        let Some(text) = text else {
            let (setter, text, ts) = match &topic {
                Some(topic) => (topic.from.as_ref(), &topic.text[..], topic.ts_millis),
                None => (None, &b""[..], 0),
            };
            self.send_event(
                from,
                &Event::Topic {
                    room: &name,
                    from: setter,
                    text,
                    ts,
                },
            );
            return;
        };
        if has_line_break(text) {
            self.refuse_line_break(from);
            return;
        }
        let topic = Topic {
            text: text.into(),
            from: self.name_of(from).cloned(),
            ts_millis: self.wall_millis(),
        };
        self.chat.rooms.set_topic(room, topic.clone());
        self.tell_room(
            room,
            None,
            &Event::Topic {
                room: &name,
                from: topic.from.as_ref(),
                text: &topic.text,
                ts: topic.ts_millis,
            },
        );
    }
}
