//! The terminal app's state, without a terminal: the scrollback, the
//! input line, the room and its members, the connection's state, and what
//! each key does. [`super::view`] draws it; [`super::Tui`] feeds it.
//!
//! Every peer's text is sanitised as it comes in ([`sanitize`]); the
//! members panel is kept from the relay's structured events (`who`,
//! `join`, `leave`, `nick`).

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};

use super::editor::Editor;
use crate::{Status, UiAction};
use eaxchat_proto::commands::CommandKind;
use eaxchat_proto::events::{ParsedEvent, ParsedKind};
use eaxchat_proto::sanitize::sanitize;

/// Most entries the scrollback keeps; older ones are dropped.
pub const SCROLLBACK: usize = 5000;

/// Rows a PgUp / PgDn moves when the pane's height is not known yet.
const PAGE: usize = 10;

/// Rows one turn of the mouse wheel moves.
const WHEEL: usize = 3;

/// What kind of line an entry is, for its style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Someone's message (or `/me` action), live.
    Message,
    /// Sent as history on joining.
    History,
    /// A private message, to us or from us.
    Private,
    /// What we sent.
    Own,
    /// What the relay says: presence, replies.
    Notice,
    /// A command refused, or a connection problem.
    Error,
}

/// One line of the scrollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `HH:MM`, local time, when known.
    pub time: Option<String>,
    /// Who said it, for the name's colour (`None`: the relay, or no name).
    pub from: Option<String>,
    /// The text after the name: already safe to show.
    pub text: String,
    /// `* NAME ACTION` rather than `NAME: TEXT`.
    pub action: bool,
    /// How it looks.
    pub look: Look,
    /// It names us: highlighted.
    pub mention: bool,
}

impl Entry {
    /// A line from the relay or the app itself.
    pub fn notice(look: Look, text: impl Into<String>) -> Entry {
        Entry {
            time: None,
            from: None,
            text: text.into(),
            action: false,
            look,
            mention: false,
        }
    }
}

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
    /// The scrollback, oldest first.
    pub entries: VecDeque<Entry>,
    /// Rows scrolled up from the bottom (0: following new lines).
    pub scroll: usize,
    /// The pane's height when last drawn, for paging.
    pub page: usize,
    /// The input line.
    pub editor: Editor,
    /// The room we are in.
    pub room: Option<String>,
    /// Our name, if the relay gave us one (`welcome`, or `/nick`).
    pub name: Option<String>,
    /// Whether the relay vouches for names (members mode).
    pub members_mode: bool,
    /// The names in our room.
    pub members: BTreeSet<String>,
    /// How many in our room have no name.
    pub unnamed: u64,
    /// The connection.
    pub link: LinkState,
    /// The members panel, unless hidden (F2) or the terminal is narrow.
    pub show_panel: bool,
    /// Ring the bell when someone names us.
    pub bell: bool,
    rang: bool,
    /// Lines to send of our own accord (`/who` to fill the panel).
    outgoing: Vec<Vec<u8>>,
    /// `/who` replies still to come for the app's own asking: not shown.
    own_whos: usize,
}

impl App {
    /// A new app, connecting to `relay`.
    pub fn new(relay: &str, bell: bool) -> App {
        App {
            entries: VecDeque::new(),
            scroll: 0,
            page: PAGE,
            editor: Editor::default(),
            room: None,
            name: None,
            members_mode: false,
            members: BTreeSet::new(),
            unnamed: 0,
            link: LinkState::Connected(relay.to_owned()),
            show_panel: true,
            bell,
            rang: false,
            outgoing: Vec::new(),
            own_whos: 0,
        }
    }

    /// Adds a line to the scrollback (dropping the oldest past
    /// [`SCROLLBACK`]); a reader scrolled up stays where they were.
    pub fn push(&mut self, entry: Entry) {
        self.entries.push_back(entry);
        if self.entries.len() > SCROLLBACK {
            self.entries.pop_front();
        }
        if self.scroll > 0 {
            self.scroll += 1;
        }
    }

    /// Takes the lines the app wants sent.
    pub fn take_outgoing(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outgoing)
    }

    /// Whether the bell is to ring now (once per mention).
    pub fn take_bell(&mut self) -> bool {
        std::mem::take(&mut self.rang)
    }

    /// Whether `text` names us: our name as a whole word, any case.
    fn mentions_us(&self, text: &str) -> bool {
        let Some(name) = &self.name else {
            return false;
        };
        let name = name.to_lowercase();
        let text = text.to_lowercase();
        let is_name_char = |c: char| c.is_alphanumeric() || "_-.".contains(c);
        text.match_indices(&name).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            let after = text[at + name.len()..].chars().next();
            !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
        })
    }

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
        match &event.kind {
            ParsedKind::Welcome { name, members } => {
                self.own_whos = 0;
                self.name = name.clone();
                self.members_mode = *members;
                self.room = event.room.clone();
                self.ask_who();
            }
            ParsedKind::Message | ParsedKind::Action => {
                let ours = from.is_some() && from == self.name;
                let mention = !ours && self.mentions_us(&text);
                if mention && !event.history && self.bell {
                    self.rang = true;
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
                self.push(Entry {
                    time,
                    from: from.filter(|_| {
                        self.members_mode || event.kind == ParsedKind::Action || !named_in_text
                    }),
                    text,
                    action: event.kind == ParsedKind::Action,
                    look,
                    mention,
                });
            }
            ParsedKind::Private { to, echo } => {
                let text = if *echo {
                    format!("[private to {}] {text}", sanitize(to.as_bytes()))
                } else {
                    text
                };
                if !echo && self.bell {
                    self.rang = true;
                }
                self.push(Entry {
                    time,
                    from: if *echo { None } else { from },
                    text,
                    action: false,
                    look: Look::Private,
                    mention: !echo,
                });
            }
            ParsedKind::Presence { name, joined, .. } => {
                let name = sanitize(name.as_bytes());
                if Some(&name) == self.name.as_ref() && *joined {
                    // We moved: a new room, a new list.
                    self.room = event.room.clone();
                    self.members.clear();
                    self.ask_who();
                } else if *joined {
                    self.members.insert(name);
                } else {
                    self.members.remove(&name);
                }
                self.push_notice(&event, time);
            }
            ParsedKind::Nick { to } => {
                if let Some(old) = &from {
                    self.members.remove(old);
                }
                self.members.insert(sanitize(to.as_bytes()));
                self.push_notice(&event, time);
            }
            ParsedKind::Who { names, unnamed } => {
                self.members = names.iter().map(|name| sanitize(name.as_bytes())).collect();
                self.unnamed = *unnamed;
                if self.own_whos > 0 {
                    // Asked by the app to fill the panel: shown there only.
                    self.own_whos -= 1;
                    return;
                }
                self.push_notice(&event, time);
            }
            ParsedKind::Notice => {
                if let Some(nick) = text.strip_prefix("* you are now ") {
                    self.name = Some(nick.to_owned());
                    // Named now: the panel's counts change.
                    self.ask_who();
                } else if let Some(rest) = text.strip_prefix("* you joined #") {
                    self.room = rest.split(' ').next().map(str::to_owned);
                    self.members.clear();
                    self.ask_who();
                }
                self.push_notice(&event, time);
            }
            ParsedKind::Error => self.push(Entry {
                time,
                ..Entry::notice(Look::Error, text)
            }),
            ParsedKind::HistoryStart { .. } | ParsedKind::Rooms(_) | ParsedKind::Other(_) => {
                self.push_notice(&event, time);
            }
        }
    }

    fn push_notice(&mut self, event: &ParsedEvent, time: Option<String>) {
        let mut line = Vec::new();
        event.plain(self.members_mode, &mut line);
        self.push(Entry {
            time,
            ..Entry::notice(Look::Notice, sanitize(&line))
        });
    }

    fn ask_who(&mut self) {
        self.outgoing.push(b"/who".to_vec());
        self.own_whos += 1;
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
            KeyCode::Char('a') if ctrl => self.editor.home(),
            KeyCode::Char('e') if ctrl => self.editor.end(),
            KeyCode::Char('w') if ctrl => self.editor.delete_word(),
            KeyCode::Char('u') if ctrl => self.editor.delete_to_start(),
            KeyCode::Char('l') if ctrl => self.scroll = 0,
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
                let names: Vec<String> = self.members.iter().cloned().collect();
                self.editor.complete(&commands, &names);
            }
            KeyCode::Enter => return self.enter(),
            _ => {}
        }
        UiAction::None
    }

    fn enter(&mut self) -> UiAction {
        let Some(line) = self.editor.take() else {
            return UiAction::None;
        };
        self.scroll = 0;
        let command = line.starts_with('/') && !line.starts_with("//");
        if !command {
            let text = line.strip_prefix('/').filter(|_| line.starts_with("//"));
            self.push(Entry {
                time: local_time_now(),
                from: self.name.clone(),
                text: text.unwrap_or(&line).to_owned(),
                action: false,
                look: Look::Own,
                mention: false,
            });
        }
        UiAction::Send(line.into_bytes())
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
        self.scroll = self.scroll.saturating_add_signed(rows);
    }
}

/// Unix milliseconds as local `HH:MM`.
/// The status line's words for a connection: the relay's address and,
/// with an identity, the session.
fn link_label(addr: &std::net::SocketAddr, session: Option<&crate::SessionInfo>) -> String {
    match session {
        Some(session) => format!("{addr} │ {session}"),
        None => addr.to_string(),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        let mut app = App::new("127.0.0.1:8080", true);
        app.receive(br#"{"kind":"welcome","protocol":"eaxchat/1","name":"bob","room":"lobby","members":true}"#);
        assert_eq!(app.take_outgoing(), [b"/who".to_vec()]);
        app.receive(br#"{"kind":"who","room":"lobby","names":["alice","bob"],"unnamed":0}"#);
        app
    }

    #[test]
    fn the_panel_follows_the_room() {
        let mut app = app();
        assert!(app.entries.is_empty(), "the app's own /who is not shown");
        app.receive(br#"{"kind":"join","room":"lobby","name":"carol","count":3,"ts":0}"#);
        app.receive(br#"{"kind":"leave","room":"lobby","name":"alice","count":2,"ts":0}"#);
        assert_eq!(app.members.iter().collect::<Vec<_>>(), ["bob", "carol"]);
        app.receive(br#"{"kind":"join","room":"dev","name":"bob","count":1,"ts":0}"#);
        assert_eq!(app.room.as_deref(), Some("dev"));
        assert!(app.members.is_empty());
        assert_eq!(app.take_outgoing(), [b"/who".to_vec()]);
    }

    #[test]
    fn mentions_are_marked_and_ring_once() {
        let mut app = app();
        app.receive(br#"{"kind":"msg","room":"lobby","from":"alice","text":"hi Bob!","ts":0,"history":false}"#);
        app.receive(br#"{"kind":"msg","room":"lobby","from":"alice","text":"bobby is not you","ts":0,"history":false}"#);
        assert!(app.entries[0].mention && !app.entries[1].mention);
        assert!(app.take_bell());
        assert!(!app.take_bell());
        app.bell = false;
        app.receive(
            br#"{"kind":"msg","room":"lobby","from":"alice","text":"bob?","ts":0,"history":false}"#,
        );
        assert!(!app.take_bell());
    }

    #[test]
    fn peers_text_is_neutralised() {
        let mut app = app();
        app.receive(b"{\"kind\":\"msg\",\"room\":\"lobby\",\"from\":\"alice\",\"text\":\"\\u001b[2J\\u202eevil\",\"ts\":0,\"history\":false}");
        assert_eq!(app.entries[0].text, "\u{241b}[2J\u{fffd}evil");
    }

    #[test]
    fn enter_sends_and_shows_our_own_text_but_not_commands() {
        let mut app = app();
        for c in "hello".chars() {
            app.key(KeyEvent::from(KeyCode::Char(c)));
        }
        assert_eq!(
            app.key(KeyEvent::from(KeyCode::Enter)),
            UiAction::Send(b"hello".to_vec())
        );
        assert_eq!(app.entries[0].look, Look::Own);
        for c in "/who".chars() {
            app.key(KeyEvent::from(KeyCode::Char(c)));
        }
        app.key(KeyEvent::from(KeyCode::Enter));
        assert_eq!(app.entries.len(), 1);
        let quit = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.key(quit), UiAction::Quit);
    }

    #[test]
    fn the_scrollback_is_bounded() {
        let mut app = app();
        for n in 0..SCROLLBACK + 10 {
            app.push(Entry::notice(Look::Notice, n.to_string()));
        }
        assert_eq!(app.entries.len(), SCROLLBACK);
        assert_eq!(app.entries[0].text, "10");
    }
}
