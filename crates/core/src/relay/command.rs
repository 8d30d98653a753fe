//! The `/` commands, run: `/join`, `/rooms`, `/who`, `/me`, `/msg`,
//! `/nick`, `/help`, `/quit` and `/hello`. Parsing is `eaxchat_proto::commands`';
//! what a command's effects are told to whom is `chat.rs`'s.

use std::io::Write;

use log::info;

use super::{CloseReason, ConnId, Relay};
use crate::history::EntryKind;
use eaxchat_proto::commands::{Command, CommandKind, RoomName};
use eaxchat_proto::events::Event;
use eaxchat_proto::name::Name;

impl<T: Write> Relay<T> {
    /// Runs one parsed command of `from`'s.
    pub(super) fn run(&mut self, from: ConnId, command: Command<'_>) {
        match command {
            Command::Join(room) => self.join(from, &room),
            Command::Rooms => {
                let mut counts: std::collections::HashMap<RoomName, usize> = self
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
            Command::Who => self.who(from),
            Command::Me(action) => self.action(from, action),
            Command::Msg { to, text } => self.private(from, &to, text),
            Command::Nick(name) => self.nick(from, name),
            Command::Help => {
                let usages: Vec<&str> = CommandKind::ALL.iter().map(|kind| kind.usage()).collect();
                let text = format!(
                    "* commands: {}; a message starting // sends a leading /",
                    usages.join(", ")
                );
                self.send_event(from, &Event::Notice(&text));
            }
            Command::Quit => self.close(from, CloseReason::Quit),
            Command::Hello(_) => {
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
    }

    fn join(&mut self, from: ConnId, name: &RoomName) {
        if self.room_of(from) == Some(name) {
            let text = format!("* you are already in {name}");
            self.send_event(from, &Event::Notice(&text));
            return;
        }
        let room = match self.chat.rooms.find_or_make(name) {
            Ok(room) => room,
            Err(full) => {
                self.send_event(from, &Event::Error(&full.to_string()));
                return;
            }
        };
        self.leave_room(from);
        // A first frame that is a `/join` is the arrival: the new room is
        // told, and the history sent, once, here.
        if let Some(peer) = self.peers.get_mut(from) {
            peer.chat.arrived = true;
        }
        self.enter(from, room);
        let count = self.chat.rooms.get(room).map_or(0, |room| room.len());
        let who = self.name_of(from).cloned();
        match who {
            Some(who) if self.chat.presence => self.announce(room, &who, true, None),
            who => {
                if let Some(who) = who {
                    self.announce(room, &who, true, Some(from));
                }
                let text = format!("* you joined {name} ({count} here)");
                self.send_event(from, &Event::Notice(&text));
            }
        }
        self.send_history(from, room, u64::MAX);
        info!("conn {from}: joined {name}");
    }

    fn who(&mut self, from: ConnId) {
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

    fn action(&mut self, from: ConnId, action: &[u8]) {
        let Some(room) = self.peers.get(from).and_then(|peer| peer.chat.room) else {
            return;
        };
        let Some(room_name) = self.room_of(from).cloned() else {
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
            },
        );
        self.remember(from, action, EntryKind::Action);
        self.publish_action(&room_name, who.as_ref(), action);
    }

    fn private(&mut self, from: ConnId, to: &Name, text: &[u8]) {
        let mut recipients = self.connections_named(to);
        recipients.retain(|&id| id != from);
        let elsewhere = self.remote_has(to);
        if recipients.is_empty() && !elsewhere {
            let text = format!("error: no one named {to} is here");
            self.send_event(from, &Event::Error(&text));
            return;
        }
        let sender = self.name_of(from).cloned();
        if elsewhere {
            self.publish_private(sender.as_ref(), to, text);
        }
        let ts = self.wall_millis();
        for id in recipients {
            self.send_event(
                id,
                &Event::Private {
                    from: sender.as_ref(),
                    to,
                    text,
                    ts,
                    echo: false,
                },
            );
        }
        self.send_event(
            from,
            &Event::Private {
                from: sender.as_ref(),
                to,
                text,
                ts,
                echo: true,
            },
        );
    }

    fn nick(&mut self, from: ConnId, name: Name) {
        if self.is_members() {
            self.send_event(
                from,
                &Event::Error("error: /nick is not for members: your name is the members file's"),
            );
            return;
        }
        if let Some(&holder) = self.chat.nicks.get(&name) {
            if holder != from {
                let text = format!("error: the name {name} is taken");
                self.send_event(from, &Event::Error(&text));
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
        let room = peer.chat.room;
        if let Some(old) = &old {
            self.chat.nicks.remove(old);
        }
        self.chat.nicks.insert(name.clone(), from);
        self.cluster_interest_changed();
        let text = format!("* you are now {name}");
        self.send_event(from, &Event::Notice(&text));
        let Some(room) = room.filter(|_| arrived) else {
            return;
        };
        match old {
            None => self.announce(room, &name, true, Some(from)),
            Some(old) if self.chat.presence => {
                if let Some(room_name) = self.chat.rooms.get(room).map(|r| r.name().clone()) {
                    self.publish_presence(
                        &room_name,
                        &name,
                        crate::cluster::envelope::Change::Renamed(old.clone()),
                    );
                    let ts = self.wall_millis();
                    self.tell_room(
                        room,
                        Some(from),
                        &Event::Nick {
                            room: &room_name,
                            from: Some(&old),
                            to: &name,
                            ts,
                        },
                    );
                }
            }
            Some(_) => {}
        }
    }
}
