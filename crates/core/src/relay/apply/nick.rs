//! `/nick NAME`: a shared-key connection takes a name, told to its rooms as
//! a join (its first name) or a rename. A name is held by one connection
//! at a time, and a member never takes one: a member's name is the
//! members file's.

use std::io::Write;

use crate::relay::{ConnId, Relay};
use crate::rooms::RoomId;
use eaxchat_proto::events::Event;
use eaxchat_proto::name::Name;

impl<T: Write> Relay<T> {
    /// Gives `from` the name `name`, if it may have it.
    pub(super) fn nick(&mut self, from: ConnId, name: Name) {
        if self.is_members() {
            self.send_event(
                from,
                &Event::error("error: /nick is not for members: your name is the members file's"),
            );
            return;
        }
        if let Some(&holder) = self.chat.nicks.get(&name) {
            if holder != from {
                let text = format!("error: the name {name} is taken");
                self.send_event(from, &Event::error(&text));
            }
            return;
        }
        let Some(peer) = self.peers.get_mut(from) else {
            return;
        };
        let old = peer
            .chat
            .nick
            .replace(Box::new(name.clone()))
            .map(|old| *old);
        let arrived = peer.chat.arrived;
        let rooms = peer.chat.rooms.clone();
        if let Some(old) = &old {
            self.chat.nicks.remove(old);
        }
        self.chat.nicks.insert(name.clone(), from);
        self.cluster_interest_changed();
        let text = format!("* you are now {name}");
        self.send_event(from, &Event::notice(&text));
        if !arrived {
            return;
        }
        for room in rooms {
            self.tell_renamed(from, room, old.as_ref(), &name);
        }
    }

    /// Tells room `room` that `from` took the name `name` (its first: a
    /// join), and the other relays.
    fn tell_renamed(&mut self, from: ConnId, room: RoomId, old: Option<&Name>, name: &Name) {
        match old {
            None => self.announce(room, name, true, Some(from)),
            Some(old) if self.chat.presence => {
                if let Some(room_name) = self.chat.rooms.get(room).map(|r| r.name().clone()) {
                    self.publish_presence(
                        &room_name,
                        name,
                        crate::cluster::envelope::Change::Renamed(old.clone()),
                    );
                    let ts = self.wall_millis();
                    self.tell_room(
                        room,
                        Some(from),
                        &Event::Nick {
                            room: &room_name,
                            from: Some(old),
                            to: name,
                            ts,
                        },
                    );
                }
            }
            Some(_) => {}
        }
    }
}
