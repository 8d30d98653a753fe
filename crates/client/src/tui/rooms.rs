//! The terminal app's views, in the order of its room list: the rooms the
//! connection is in (in the relay's join order), then the private
//! messages. It owns which view is being looked at, switching (by number,
//! next, previous: switching marks the view read), following the relay's
//! list of our rooms (`welcome`, `myrooms`) while keeping each view's
//! scrollback, counting what arrives in views not looked at, and irssi's
//! activity bar (`2,3*`).
//!
//! Pure state: no terminal and no relay, so tests drive it directly.

use super::entry::Entry;
use super::room_view::{RoomView, ViewKind};

/// The views, and which one is looked at.
#[derive(Debug, Clone)]
pub struct Rooms {
    /// The rooms, then the private messages (always last).
    views: Vec<RoomView>,
    current: usize,
}

impl Default for Rooms {
    fn default() -> Rooms {
        Rooms::new()
    }
}

impl Rooms {
    /// No room yet: only the private messages.
    pub fn new() -> Rooms {
        Rooms {
            views: vec![RoomView::new(ViewKind::Private)],
            current: 0,
        }
    }

    /// The views, in the room list's order (numbered from 1).
    pub fn views(&self) -> &[RoomView] {
        &self.views
    }

    /// The views, to change.
    pub fn views_mut(&mut self) -> &mut [RoomView] {
        &mut self.views
    }

    /// Which view is looked at (0-based).
    pub fn current_index(&self) -> usize {
        self.current
    }

    /// The view looked at.
    pub fn current(&self) -> &RoomView {
        &self.views[self.current]
    }

    /// The view looked at, to change.
    pub fn current_mut(&mut self) -> &mut RoomView {
        &mut self.views[self.current]
    }

    /// The room looked at, if it is a room.
    pub fn current_room(&self) -> Option<&str> {
        self.current().room()
    }

    /// The room names, in order.
    pub fn room_names(&self) -> Vec<String> {
        self.views
            .iter()
            .filter_map(|view| view.room().map(str::to_owned))
            .collect()
    }

    /// Where `room`'s view is.
    pub fn find(&self, room: &str) -> Option<usize> {
        self.views.iter().position(|view| view.room() == Some(room))
    }

    /// `room`'s view, if the app has one.
    pub fn room_mut(&mut self, room: &str) -> Option<&mut RoomView> {
        let at = self.find(room)?;
        Some(&mut self.views[at])
    }

    /// `room`'s view, made (after the other rooms) if new.
    pub fn room_or_new(&mut self, room: &str) -> &mut RoomView {
        let at = match self.find(room) {
            Some(at) => at,
            None => self.add(room),
        };
        &mut self.views[at]
    }

    fn add(&mut self, room: &str) -> usize {
        let at = self.views.len() - 1;
        self.views
            .insert(at, RoomView::new(ViewKind::Room(room.to_owned())));
        if self.current >= at {
            self.current += 1;
        }
        at
    }

    /// The private messages' view.
    pub fn private_mut(&mut self) -> &mut RoomView {
        let last = self.views.len() - 1;
        &mut self.views[last]
    }

    /// Looks at view `index` (0-based), if there is one: it is read now.
    pub fn select(&mut self, index: usize) -> bool {
        if index >= self.views.len() {
            return false;
        }
        self.current = index;
        self.views[index].mark_read();
        true
    }

    /// Looks at `room`, if the app has it.
    pub fn select_room(&mut self, room: &str) -> bool {
        self.find(room).is_some_and(|at| self.select(at))
    }

    /// The next view in the list, round to the first.
    pub fn next(&mut self) {
        self.select((self.current + 1) % self.views.len());
    }

    /// The previous view in the list, round to the last.
    pub fn previous(&mut self) {
        self.select((self.current + self.views.len() - 1) % self.views.len());
    }

    /// Follows the relay's list of our rooms: views for new rooms are made,
    /// views for rooms left are dropped, the order becomes the relay's;
    /// every kept view keeps its scrollback. The view looked at stays if
    /// it is still there (the private messages only if we were in a room
    /// before), else `focus` (the relay's current room) is looked at, else
    /// the private messages. Returns the rooms added.
    pub fn follow(&mut self, rooms: &[String], focus: Option<&str>) -> Vec<String> {
        let looked_at = self.current().kind.clone();
        let mut old = std::mem::take(&mut self.views);
        let private = old
            .pop()
            .unwrap_or_else(|| RoomView::new(ViewKind::Private));
        // In no room before, the private messages were looked at for want
        // of a room: the relay's current room is looked at now.
        let looked_at =
            Some(looked_at).filter(|kind| *kind != ViewKind::Private || !old.is_empty());
        let mut added = Vec::new();
        for room in rooms {
            if self.find(room).is_some() {
                continue;
            }
            let view = match old.iter().position(|view| view.room() == Some(room)) {
                Some(at) => old.swap_remove(at),
                None => {
                    added.push(room.clone());
                    RoomView::new(ViewKind::Room(room.clone()))
                }
            };
            self.views.push(view);
        }
        self.views.push(private);
        self.current = self.views.len() - 1;
        let kept = looked_at.and_then(|kind| self.views.iter().position(|view| view.kind == kind));
        match kept.or_else(|| focus.and_then(|room| self.find(room))) {
            Some(at) => {
                self.select(at);
            }
            None => {
                let last = self.views.len() - 1;
                self.select(last);
            }
        }
        added
    }

    /// Renames the one room of a relay that keeps a connection in one room
    /// (no room list): moving keeps the scrollback, as it always did.
    pub fn moved_to(&mut self, room: &str) {
        let rooms = self.room_names();
        if rooms.iter().any(|name| name == room) && rooms.len() == 1 {
            return;
        }
        let private = self
            .views
            .pop()
            .unwrap_or_else(|| RoomView::new(ViewKind::Private));
        let mut view = self
            .views
            .drain(..)
            .next()
            .unwrap_or_else(|| RoomView::new(ViewKind::Room(room.to_owned())));
        view.kind = ViewKind::Room(room.to_owned());
        view.topic = None;
        view.members.clear();
        view.unnamed = 0;
        view.members_known = false;
        self.views = vec![view, private];
        self.current = 0;
    }

    /// Adds a line to view `index`: counted as unread (and as a mention)
    /// when it is a live message there and another view is looked at.
    pub fn arrive(&mut self, index: usize, entry: Entry) {
        let counts = index != self.current && entry.is_message();
        let mention = entry.mention;
        let Some(view) = self.views.get_mut(index) else {
            return;
        };
        if view.push(entry) && counts {
            view.unread += 1;
            if mention {
                view.mentions += 1;
            }
        }
    }

    /// irssi's activity bar: the numbers of the other views with unread
    /// messages, those that name us marked `*` (`2,3*`); empty when none.
    pub fn activity(&self) -> String {
        self.views
            .iter()
            .enumerate()
            .filter(|&(at, view)| at != self.current && view.unread > 0)
            .map(|(at, view)| {
                let mark = if view.mentions > 0 { "*" } else { "" };
                format!("{}{mark}", at + 1)
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::entry::Look;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|&name| name.to_owned()).collect()
    }

    fn message(text: &str, mention: bool) -> Entry {
        Entry {
            mention,
            ..Entry::notice(Look::Message, text)
        }
    }

    fn labels(rooms: &Rooms) -> Vec<String> {
        rooms.views().iter().map(RoomView::label).collect()
    }

    #[test]
    fn unread_and_mentions_count_per_room_and_switching_resets_them() {
        let mut rooms = Rooms::new();
        rooms.follow(&names(&["lobby", "dev", "ops"]), Some("lobby"));
        assert_eq!(rooms.current_room(), Some("lobby"));
        rooms.arrive(0, message("seen as it comes", false));
        rooms.arrive(1, message("one", false));
        rooms.arrive(1, message("hi bob", true));
        rooms.arrive(2, message("three", false));
        rooms.arrive(2, Entry::notice(Look::Notice, "* carol joined #ops"));
        let counts: Vec<(usize, usize)> = rooms
            .views()
            .iter()
            .map(|view| (view.unread, view.mentions))
            .collect();
        assert_eq!(counts, [(0, 0), (2, 1), (1, 0), (0, 0)]);
        assert_eq!(rooms.activity(), "2*,3");
        assert!(rooms.select(1));
        assert_eq!((rooms.current().unread, rooms.current().mentions), (0, 0));
        assert_eq!(rooms.activity(), "3");
        rooms.next();
        assert_eq!(rooms.current_room(), Some("ops"));
        assert_eq!(rooms.activity(), "");
        rooms.next();
        assert_eq!(rooms.current_room(), None, "then the private messages");
        rooms.next();
        rooms.previous();
        assert_eq!(rooms.current().label(), "(private)");
        assert!(!rooms.select(9));
    }

    #[test]
    fn following_the_relay_keeps_scrollback_and_the_view_looked_at() {
        let mut rooms = Rooms::new();
        assert_eq!(rooms.follow(&names(&["lobby"]), Some("lobby")), ["lobby"]);
        rooms.arrive(0, message("kept", false));
        // /join dev: the relay's current room is dev; the app stays.
        assert_eq!(
            rooms.follow(&names(&["lobby", "dev"]), Some("dev")),
            ["dev"]
        );
        assert_eq!(rooms.current_room(), Some("lobby"));
        assert_eq!(labels(&rooms), ["#lobby", "#dev", "(private)"]);
        assert!(rooms.select_room("dev"));
        // /part dev: the view goes; the relay's current room is looked at.
        rooms.follow(&names(&["lobby"]), Some("lobby"));
        assert_eq!(rooms.current_room(), Some("lobby"));
        assert_eq!(rooms.current().entries()[0].text, "kept");
        // In no room: the private messages.
        rooms.follow(&[], None);
        assert_eq!(labels(&rooms), ["(private)"]);
        assert_eq!(rooms.current_index(), 0);
    }

    #[test]
    fn a_one_room_relay_moves_the_one_view() {
        let mut rooms = Rooms::new();
        rooms.room_or_new("lobby").push(message("kept", false));
        rooms.moved_to("dev");
        assert_eq!(labels(&rooms), ["#dev", "(private)"]);
        assert_eq!(rooms.current().entries()[0].text, "kept");
    }
}
