//! `/who`: the names in a connection's room, here and on the other relays
//! of a cluster, and how many connections have none. It only reads the
//! room; it never changes it, and never names a connection that has not
//! arrived yet.

use std::io::Write;

use crate::relay::{ConnId, Relay};
use eaxchat_proto::events::Event;
use eaxchat_proto::name::Name;

impl<T: Write> Relay<T> {
    /// Tells `from` who is in its room.
    pub(super) fn who(&mut self, from: ConnId) {
        let Some(room) = self.peers.get(from).and_then(|peer| peer.chat.room) else {
            return;
        };
        let Some(conns) = self.chat.rooms.get(room).map(|room| room.conns().to_vec()) else {
            return;
        };
        let mut names: Vec<Name> = conns
            .iter()
            .filter(|&&id| self.peers.get(id).is_some_and(|peer| peer.chat.arrived))
            .filter_map(|&id| self.name_of(id).cloned())
            .collect();
        names.sort();
        names.dedup();
        let named = conns
            .iter()
            .filter(|&&id| {
                self.name_of(id).is_some()
                    && self.peers.get(id).is_some_and(|peer| peer.chat.arrived)
            })
            .count();
        let Some(room_name) = self.room_of(from).cloned() else {
            return;
        };
        let (remote_names, remote_unnamed) = self.remote_who(&room_name);
        names.extend(remote_names);
        names.sort();
        names.dedup();
        let refs: Vec<&Name> = names.iter().collect();
        self.send_event(
            from,
            &Event::Who {
                room: &room_name,
                names: &refs,
                unnamed: conns.len() - named + remote_unnamed,
            },
        );
    }
}
