//! `/rooms`: the asker's rooms first, in the order it joined them, then
//! the other rooms with someone in them, here and on the other relays of
//! a cluster, busiest first; each with its count, topic and mode. It only
//! reads the rooms; it never changes them.

use std::collections::HashMap;
use std::io::Write;

use crate::relay::{ConnId, Relay};
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::events::{Event, MODE_E2E, MODE_RELAY, RoomEntry};

impl<T: Write> Relay<T> {
    /// Tells `from` its rooms and the others, and how many are in each.
    pub(super) fn list_rooms(&mut self, from: ConnId) {
        let mut counts: HashMap<RoomName, usize> = self
            .chat
            .rooms
            .occupied()
            .into_iter()
            .map(|(name, count)| (name.clone(), count))
            .collect();
        for (name, count) in self.remote_rooms() {
            *counts.entry(name).or_default() += count;
        }
        let mine: Vec<RoomName> = self.rooms_of(from).into_iter().cloned().collect();
        let mut others: Vec<(RoomName, usize)> = counts
            .iter()
            .filter(|(name, _)| !mine.contains(name))
            .map(|(name, count)| (name.clone(), *count))
            .collect();
        others.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let topics: Vec<Box<[u8]>> = mine
            .iter()
            .chain(others.iter().map(|(name, _)| name))
            .map(|name| {
                self.chat
                    .rooms
                    .find(name)
                    .and_then(|id| self.chat.rooms.get(id)?.topic())
                    .map_or_else(Box::default, |topic| topic.text.clone())
            })
            .collect();
        let listed = mine
            .iter()
            .map(|name| (name, counts.get(name).copied().unwrap_or(0), true))
            .chain(others.iter().map(|(name, count)| (name, *count, false)));
        let entries: Vec<RoomEntry<'_>> = listed
            .zip(&topics)
            .map(|((room, count, joined), topic)| RoomEntry {
                room,
                count,
                topic,
                mode: if self.chat.delivery.is_e2e(room) {
                    MODE_E2E
                } else {
                    MODE_RELAY
                },
                joined,
            })
            .collect();
        self.send_event(from, &Event::Rooms(&entries));
    }
}
