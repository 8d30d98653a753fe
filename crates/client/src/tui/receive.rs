//! What the relay sends, taken into the app's views: each `eaxchat/1`
//! event goes to the view of the room it names (`room`), a private message
//! to the private messages, anything else to the view looked at. The room
//! list follows `welcome` and `myrooms`; each view's members follow `who`,
//! `join`, `leave` and `nick`, its topic `topic` and `/rooms`; history is
//! placed by id (a burst on joining, or a page asked for by scrolling up).
//!
//! Every peer's text is sanitised here, as it comes in ([`sanitize`]).

use eaxchat_proto::events::{ParsedEvent, ParsedKind};
use eaxchat_proto::sanitize::sanitize;

use super::app::{App, local_time};
use super::entry::{Entry, Look, mentions};

impl App {
    /// One plaintext from the relay.
    pub fn receive(&mut self, plaintext: &[u8]) {
        let Some(event) = ParsedEvent::parse(plaintext) else {
            // Not an event: a relay not asked, or a peer's raw text.
            self.push(Entry::notice(Look::Message, sanitize(plaintext)));
            return;
        };
        let time = event.ts.and_then(local_time);
        let text = sanitize(event.text.as_bytes());
        let from = event.from.as_deref().map(|name| sanitize(name.as_bytes()));
        let room = event.room.as_deref().map(|room| sanitize(room.as_bytes()));
        match &event.kind {
            ParsedKind::Welcome { name, members } => {
                self.own_whos = 0;
                self.name = name.clone();
                self.members_mode = *members;
                self.welcome(&event.rooms, room.as_deref());
            }
            ParsedKind::MyRooms => {
                self.multi = true;
                self.follow(&event.rooms, room.as_deref());
                for e2e in &event.e2e {
                    if let Some(view) = self.room_view(&sanitize(e2e.as_bytes())) {
                        view.e2e = true;
                    }
                }
                self.push_notice(self.rooms.current_index(), &event, time);
            }
            ParsedKind::Message | ParsedKind::Action => {
                let ours = from.is_some() && from == self.name;
                let mention = !ours && self.name.as_ref().is_some_and(|name| mentions(name, &text));
                if mention && !event.history {
                    self.ring();
                }
                let look = if event.history {
                    Look::History
                } else {
                    Look::Message
                };
                // A shared-key message goes as it came: a sender that put
                // its own `NAME: ` in front (chat --name) is not named twice.
                let named_in_text = from
                    .as_ref()
                    .is_some_and(|from| text.starts_with(&format!("{from}: ")));
                let entry = Entry {
                    time,
                    from: from.filter(|_| {
                        self.members_mode || event.kind == ParsedKind::Action || !named_in_text
                    }),
                    text,
                    action: event.kind == ParsedKind::Action,
                    look,
                    mention,
                    id: event.id,
                };
                let at = self.view_of(room.as_deref());
                if event.history {
                    if let Some(view) = self.rooms.views_mut().get_mut(at) {
                        view.history_entry(entry, ours);
                    }
                } else {
                    self.rooms.arrive(at, entry);
                }
            }
            ParsedKind::Private { to, echo } => {
                let to = sanitize(to.as_bytes());
                self.private_peer = if *echo {
                    Some(to.clone())
                } else {
                    from.clone()
                };
                let text = if *echo {
                    format!("[private to {to}] {text}")
                } else {
                    self.ring();
                    text
                };
                let at = self.rooms.views().len() - 1;
                self.rooms.arrive(
                    at,
                    Entry {
                        time,
                        from: if *echo { None } else { from },
                        text,
                        action: false,
                        look: Look::Private,
                        mention: !echo,
                        id: None,
                    },
                );
            }
            ParsedKind::Presence { name, joined, .. } => {
                let name = sanitize(name.as_bytes());
                if Some(&name) == self.name.as_ref() && *joined {
                    self.we_joined(room.as_deref());
                } else if let Some(view) = room.as_deref().and_then(|room| self.room_view(room)) {
                    if *joined {
                        view.members.insert(name);
                    } else {
                        view.members.remove(&name);
                    }
                }
                let at = self.reply_view(room.as_deref());
                self.push_notice(at, &event, time);
            }
            ParsedKind::Nick { to } => {
                let to = sanitize(to.as_bytes());
                if let Some(view) = room.as_deref().and_then(|room| self.room_view(room)) {
                    if let Some(old) = &from {
                        view.members.remove(old);
                    }
                    view.members.insert(to);
                }
                let at = self.reply_view(room.as_deref());
                self.push_notice(at, &event, time);
            }
            ParsedKind::Who { names, unnamed } => {
                let at = self.reply_view(room.as_deref());
                if let Some(view) = room.as_deref().and_then(|room| self.room_view(room)) {
                    view.members = names.iter().map(|name| sanitize(name.as_bytes())).collect();
                    view.unnamed = *unnamed;
                    view.members_known = true;
                }
                if self.own_whos > 0 {
                    // Asked by the app to fill the panel: shown there only.
                    self.own_whos -= 1;
                    return;
                }
                self.push_notice(at, &event, time);
            }
            ParsedKind::HistoryStart { count, page, first } => {
                let at = self.view_of(room.as_deref());
                let Some(view) = self.rooms.views_mut().get_mut(at) else {
                    return;
                };
                // The burst's header, unless the view has the room's
                // messages already (a reconnect): then only new ones come.
                let header = !page && view.oldest_id().is_none();
                view.history_start(*count, *page, *first);
                if header {
                    self.push_notice(at, &event, time);
                }
            }
            ParsedKind::Rooms(list) => {
                for entry in list.iter().filter(|entry| entry.joined) {
                    if let Some(view) = self.room_view(&sanitize(entry.room.as_bytes())) {
                        view.topic = topic(&entry.topic);
                        view.e2e |= entry.mode == "e2e";
                    }
                }
                self.push_notice(self.rooms.current_index(), &event, time);
            }
            ParsedKind::Topic => {
                let at = self.view_of(room.as_deref());
                if let Some(view) = self.rooms.views_mut().get_mut(at) {
                    view.topic = topic(&event.text);
                }
                self.push_notice(at, &event, time);
            }
            ParsedKind::Notice => {
                if let Some(nick) = text.strip_prefix("* you are now ") {
                    self.name = Some(nick.to_owned());
                    // Named now: the panel's counts change.
                    self.rooms.current_mut().members_known = false;
                    self.ask_who();
                } else if let Some(rest) = text.strip_prefix("* you joined #")
                    && !self.multi
                {
                    // A relay with one room per connection: we moved.
                    let joined = rest.split(' ').next().unwrap_or_default().to_owned();
                    self.we_joined(Some(&joined));
                }
                let at = self.reply_view(room.as_deref());
                self.push_notice(at, &event, time);
            }
            ParsedKind::Error => {
                let at = self.reply_view(room.as_deref());
                if let Some(view) = self.rooms.views_mut().get_mut(at) {
                    // A page refused (flood control) may be asked again.
                    view.page_lost();
                }
                let entry = Entry {
                    time,
                    ..Entry::notice(Look::Error, text)
                };
                self.rooms.arrive(at, entry);
            }
            // A kind this app does not place (a newer relay's): shown by
            // its text, in its room's view if it names one of ours.
            _ => {
                let at = self.reply_view(room.as_deref());
                self.push_notice(at, &event, time);
            }
        }
    }

    /// The `welcome`: a relay with rooms lists ours; one that keeps a
    /// connection in one room names it. Each view keeps its scrollback
    /// across a reconnect; the history burst that follows adds only what
    /// is new.
    fn welcome(&mut self, rooms: &[String], current: Option<&str>) {
        for view in self.rooms.views_mut() {
            // A new connection: asked-for pages will not come, and the
            // members are asked again.
            view.page_lost();
            view.members_known = false;
        }
        // A relay with rooms may have us in none (`room: null`); one
        // without always names the one room.
        if rooms.is_empty() && current.is_some() {
            self.multi = false;
            if let Some(room) = current {
                self.rooms.moved_to(room);
            }
            self.ask_who();
        } else {
            self.multi = true;
            // A shared-key relay keeps no list of ours: after a reconnect
            // it has us in its default room only, so the app puts the
            // rooms back as they were (a members relay restores them).
            let had = self.rooms.room_names();
            if self.members_mode || had.is_empty() {
                self.follow(rooms, current);
                return;
            }
            for room in had.iter().filter(|room| !rooms.contains(room)) {
                self.send_own(format!("/join {room}"));
            }
            for room in rooms.iter().filter(|room| !had.contains(room)) {
                self.send_own(format!("/part {room}"));
            }
            self.follow(&had, current);
        }
    }

    /// Follows the relay's list of our rooms; a room we asked to join is
    /// looked at once it is in the list.
    fn follow(&mut self, rooms: &[String], current: Option<&str>) {
        let rooms: Vec<String> = rooms.iter().map(|room| sanitize(room.as_bytes())).collect();
        self.rooms.follow(&rooms, current);
        // Not in the list: the relay refused; the view looked at stays.
        if let Some(room) = self.join_pending.take() {
            self.rooms.select_room(&room);
        }
        self.looked_at();
    }

    /// Our own `join`: with rooms, the room's view (the `myrooms` after it
    /// orders the list); with one room, we moved.
    fn we_joined(&mut self, room: Option<&str>) {
        let Some(room) = room else { return };
        if self.multi {
            let view = self.rooms.room_or_new(room);
            view.members.clear();
            view.members_known = false;
        } else {
            self.rooms.moved_to(room);
        }
        self.ask_who();
    }

    /// The index of the view for what is said in `room` (a message, its
    /// history, its topic): that room's, made if new on a relay with rooms
    /// (what is said in a room reaches only those in it), else the view
    /// looked at.
    fn view_of(&mut self, room: Option<&str>) -> usize {
        let current = self.rooms.current_index();
        let Some(room) = room else { return current };
        if let Some(at) = self.rooms.find(room) {
            return at;
        }
        if self.multi {
            self.rooms.room_or_new(room);
            return self.rooms.find(room).unwrap_or(current);
        }
        current
    }

    /// The index of the view for a reply about `room`: that room's if we
    /// are in it (a refusal may name a room we are not in), else the view
    /// looked at.
    fn reply_view(&self, room: Option<&str>) -> usize {
        room.and_then(|room| self.rooms.find(room))
            .unwrap_or(self.rooms.current_index())
    }

    /// A history message of `room` that shows as nothing (an end-to-end
    /// room's commit, or one already read): counted, so the page or burst
    /// it belongs to completes.
    pub fn history_skipped(&mut self, room: &str) {
        if let Some(view) = self.room_view(&sanitize(room.as_bytes())) {
            view.history_skip();
        }
    }

    fn room_view(&mut self, room: &str) -> Option<&mut super::room_view::RoomView> {
        self.rooms.room_mut(room)
    }

    fn push_notice(&mut self, at: usize, event: &ParsedEvent, time: Option<String>) {
        let mut line = Vec::new();
        event.plain(self.members_mode, &mut line);
        let entry = Entry {
            time,
            ..Entry::notice(Look::Notice, sanitize(&line))
        };
        self.rooms.arrive(at, entry);
    }
}

/// A topic as the relay gives it: empty is none.
fn topic(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| sanitize(text.as_bytes()))
}
