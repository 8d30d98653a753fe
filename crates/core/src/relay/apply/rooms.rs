//! `/rooms`: the rooms with someone in them, here and on the other relays
//! of a cluster, busiest first. It only reads the rooms; it never changes
//! them.

use std::collections::HashMap;
use std::io::Write;

use crate::relay::{ConnId, Relay};
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::events::Event;

impl<T: Write> Relay<T> {
    /// Tells `from` the rooms with someone in them, and how many each.
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
        let mut rooms: Vec<(RoomName, usize)> = counts.into_iter().collect();
        rooms.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let rooms: Vec<(&RoomName, usize)> =
            rooms.iter().map(|(name, count)| (name, *count)).collect();
        self.send_event(from, &Event::Rooms(&rooms));
    }
}
