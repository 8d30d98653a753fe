//! The terminal app's state, without a terminal: its views ([`Rooms`]),
//! the input line, our name, the connection's state, and what each key
//! does. [`super::view`] draws it; [`super::Tui`] feeds it; what the relay
//! sends is taken in by `receive`, and what is typed is put on the wire by
//! `typed`.
//!
//! There is one input line, shared by every view: switching rooms keeps
//! what is half typed, and Enter sends it to the room looked at then.

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};

use super::editor::Editor;
use super::entry::{Entry, Look};
use super::room_view::PAGE_SIZE;
use super::rooms::Rooms;
use super::typed::{self, Target};
use crate::{Status, UiAction};
use eaxchat_proto::commands::CommandKind;

/// Rows a PgUp / PgDn moves when the pane's height is not known yet.
const PAGE: usize = 10;

/// Rows one turn of the mouse wheel moves.
const WHEEL: usize = 3;

/// The connection, as the status line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Connected to this relay.
    Connected(String),
    /// Gone; the next attempt is at this time.
    Reconnecting(Instant),
}

/// The whole state of the app.
#[derive(Debug)]
pub struct App {
    /// The views: our rooms, then the private messages.
    pub rooms: Rooms,
    /// The pane's height when last drawn, for paging.
    pub page: usize,
    /// The input line, one for every view.
    pub editor: Editor,
    /// Our name, if the relay gave us one (`welcome`, or `/nick`).
    pub name: Option<String>,
    /// Whether the relay vouches for names (members mode).
    pub members_mode: bool,
    /// The connection.
    pub link: LinkState,
    /// The members panel, unless hidden (F2) or the terminal is narrow.
    pub show_panel: bool,
    /// Ring the bell when someone names us.
    pub bell: bool,
    /// `NAME` for the `NAME: ` a shared-key connection with `--name` puts
    /// in front of its text (the relay stamps no names there).
    pub prefix: Option<String>,
    rang: bool,
    /// Lines to send of our own accord (`/who` to fill the panel, a page of
    /// history).
    outgoing: Vec<Vec<u8>>,
    /// `/who` replies still to come for the app's own asking: not shown.
    pub(super) own_whos: usize,
    /// The relay keeps us in several rooms (it listed them).
    pub(super) multi: bool,
    /// A room we asked to join: looked at once the relay has us in it.
    pub(super) join_pending: Option<String>,
    /// PgUp or the wheel went up since the last draw.
    scrolled_up: bool,
    /// Whom the last private message came from or went to.
    pub(super) private_peer: Option<String>,
}

impl App {
    /// A new app, connecting to `relay`.
    pub fn new(relay: &str, bell: bool) -> App {
        App {
            rooms: Rooms::new(),
            page: PAGE,
            editor: Editor::default(),
            name: None,
            members_mode: false,
            link: LinkState::Connected(relay.to_owned()),
            show_panel: true,
            bell,
            prefix: None,
            rang: false,
            outgoing: Vec::new(),
            own_whos: 0,
            multi: false,
            join_pending: None,
            scrolled_up: false,
            private_peer: None,
        }
    }

    /// The room looked at, if a room is.
    pub fn room(&self) -> Option<&str> {
        self.rooms.current_room()
    }

    /// Adds a line to the view looked at.
    pub fn push(&mut self, entry: Entry) {
        let at = self.rooms.current_index();
        self.rooms.arrive(at, entry);
    }

    /// Takes the lines the app wants sent: its own `/who`s, and a page of
    /// older history when the reader scrolled up past the oldest line.
    pub fn take_outgoing(&mut self) -> Vec<Vec<u8>> {
        if std::mem::take(&mut self.scrolled_up) && self.rooms.current().at_top {
            let view = self.rooms.current_mut();
            if let Some(before) = view.page_request() {
                let room = view.room().unwrap_or_default();
                let line = format!("/in {room} /history {before} {PAGE_SIZE}");
                self.outgoing.push(line.into_bytes());
            }
        }
        std::mem::take(&mut self.outgoing)
    }

    /// Whether the bell is to ring now (once per mention).
    pub fn take_bell(&mut self) -> bool {
        std::mem::take(&mut self.rang)
    }

    pub(super) fn ring(&mut self) {
        if self.bell {
            self.rang = true;
        }
    }

    /// Queues a line the app sends of its own accord.
    pub(super) fn send_own(&mut self, line: String) {
        self.outgoing.push(line.into_bytes());
    }

    /// Asks who is in the room looked at, for the panel, unless known.
    pub(super) fn ask_who(&mut self) {
        let multi = self.multi;
        let view = self.rooms.current_mut();
        let Some(room) = view.room() else { return };
        if view.members_known {
            return;
        }
        let line = if multi {
            format!("/in {room} /who")
        } else {
            "/who".to_owned()
        };
        view.members_known = true;
        self.outgoing.push(line.into_bytes());
        self.own_whos += 1;
    }

    /// Another view is looked at now.
    pub(super) fn looked_at(&mut self) {
        self.scrolled_up = false;
        self.ask_who();
    }

    /// A change of the connection's state.
    pub fn status(&mut self, status: &Status, now: Instant) {
        match status {
            Status::Connected { addr, session } => {
                self.link = LinkState::Connected(link_label(addr, session.as_ref()));
                if session.is_some() {
                    self.push(Entry::notice(Look::Notice, format!("* {status}")));
                }
            }
            Status::Reconnected { addr, session, .. } => {
                self.link = LinkState::Connected(link_label(addr, session.as_ref()));
                self.push(Entry::notice(Look::Notice, format!("* {status}")));
            }
            Status::TrustingNew { .. } | Status::Pinned { .. } => {
                self.push(Entry::notice(Look::Notice, format!("* {status}")));
            }
            Status::NotPinned(_) => {
                self.push(Entry::notice(Look::Error, format!("* {status}")));
            }
            Status::WentAway { retry_in, .. } | Status::StillAway { retry_in, .. } => {
                self.link = LinkState::Reconnecting(now + *retry_in);
                self.push(Entry::notice(Look::Error, format!("* {status}")));
            }
            Status::TooLong { .. } | Status::BacklogFull => {
                self.push(Entry::notice(Look::Error, format!("* {status}")));
            }
        }
    }

    /// What the status line says of the connection.
    pub fn link_text(&self, now: Instant) -> String {
        match &self.link {
            LinkState::Connected(addr) => format!("connected to {addr}"),
            LinkState::Reconnecting(at) => {
                let left = at.saturating_duration_since(now);
                format!(
                    "reconnecting in {}s",
                    left.as_secs() + u64::from(left.subsec_millis() > 0)
                )
            }
        }
    }

    /// When the status line's countdown next changes.
    pub fn next_tick(&self, now: Instant) -> Option<Instant> {
        match self.link {
            LinkState::Reconnecting(_) => Some(now + Duration::from_millis(250)),
            LinkState::Connected(_) => None,
        }
    }

    /// A key, and what the session is to do about it.
    pub fn key(&mut self, key: KeyEvent) -> UiAction {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Char('c' | 'd') if ctrl => return UiAction::Quit,
            KeyCode::Char(digit @ '0'..='9') if alt && !ctrl => {
                // Alt+1 is the first view, … Alt+0 the tenth.
                let index = (u32::from(digit) + 10 - u32::from('1')) % 10;
                if self.rooms.select(index as usize) {
                    self.looked_at();
                }
            }
            KeyCode::Char('n') if ctrl => {
                self.rooms.next();
                self.looked_at();
            }
            KeyCode::Char('p') if ctrl => {
                self.rooms.previous();
                self.looked_at();
            }
            KeyCode::Char('a') if ctrl => self.editor.home(),
            KeyCode::Char('e') if ctrl => self.editor.end(),
            KeyCode::Char('w') if ctrl => self.editor.delete_word(),
            KeyCode::Char('u') if ctrl => self.editor.delete_to_start(),
            KeyCode::Char('l') if ctrl => self.rooms.current_mut().scroll = 0,
            KeyCode::Backspace if alt || ctrl => self.editor.delete_word(),
            KeyCode::Left if ctrl || alt => self.editor.word_left(),
            KeyCode::Right if ctrl || alt => self.editor.word_right(),
            KeyCode::Char(c) if !ctrl => self.editor.insert(c),
            KeyCode::Backspace => self.editor.backspace(),
            KeyCode::Delete => self.editor.delete(),
            KeyCode::Left => self.editor.left(),
            KeyCode::Right => self.editor.right(),
            KeyCode::Home => self.editor.home(),
            KeyCode::End => self.editor.end(),
            KeyCode::Up => self.editor.up(),
            KeyCode::Down => self.editor.down(),
            KeyCode::PageUp => self.scroll_by(self.page.max(1) as isize),
            KeyCode::PageDown => self.scroll_by(-(self.page.max(1) as isize)),
            KeyCode::F(2) => self.show_panel = !self.show_panel,
            KeyCode::Tab => {
                let commands: Vec<String> = CommandKind::ALL
                    .iter()
                    .map(|kind| format!("/{}", kind.word()))
                    .collect();
                let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
                let names: Vec<String> = self.rooms.current().members.iter().cloned().collect();
                self.editor.complete(&commands, &names);
            }
            KeyCode::Enter => return self.enter(),
            _ => {}
        }
        UiAction::None
    }

    /// Where a line typed now goes.
    fn target(&self) -> Target<'_> {
        match self.rooms.current_room() {
            Some(room) if self.multi => Target::Room(room),
            Some(_) => Target::OneRoom,
            None if !self.multi && self.rooms.views().len() == 1 => Target::OneRoom,
            None => Target::Private(self.private_peer.as_deref()),
        }
    }

    fn enter(&mut self) -> UiAction {
        let Some(line) = self.editor.take() else {
            return UiAction::None;
        };
        self.rooms.current_mut().scroll = 0;
        let typed = match typed::compose(&line, self.target(), self.prefix.as_deref()) {
            Ok(typed) => typed,
            Err(why) => {
                self.push(Entry::notice(Look::Error, why));
                return UiAction::None;
            }
        };
        if let Some(room) = typed.join {
            // Already in it: looked at now (the relay only says so).
            if self.rooms.select_room(&room) {
                self.looked_at();
            } else {
                self.join_pending = Some(room);
            }
        }
        if let Some(text) = typed.own_text {
            self.push(Entry {
                time: local_time_now(),
                from: self.name.clone(),
                text,
                action: typed.action,
                look: Look::Own,
                mention: false,
                id: None,
            });
        }
        UiAction::Send(typed.line.into_bytes())
    }

    /// The mouse: the wheel scrolls.
    pub fn mouse(&mut self, mouse: MouseEvent) {
        match mouse.kind {
            MouseEventKind::ScrollUp => self.scroll_by(WHEEL as isize),
            MouseEventKind::ScrollDown => self.scroll_by(-(WHEEL as isize)),
            _ => {}
        }
    }

    fn scroll_by(&mut self, rows: isize) {
        if rows > 0 {
            self.scrolled_up = true;
        }
        let view = self.rooms.current_mut();
        view.scroll = view.scroll.saturating_add_signed(rows);
    }
}

/// The status line's words for a connection: the relay's address and,
/// with an identity, the session.
fn link_label(addr: &std::net::SocketAddr, session: Option<&crate::SessionInfo>) -> String {
    match session {
        Some(session) => format!("{addr} │ {session}"),
        None => addr.to_string(),
    }
}

/// Unix milliseconds as local `HH:MM`.
pub(super) fn local_time(millis: u64) -> Option<String> {
    let utc = chrono::DateTime::from_timestamp_millis(i64::try_from(millis).ok()?)?;
    Some(
        utc.with_timezone(&chrono::Local)
            .format("%H:%M")
            .to_string(),
    )
}

fn local_time_now() -> Option<String> {
    Some(chrono::Local::now().format("%H:%M").to_string())
}
