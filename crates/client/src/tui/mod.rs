//! `chat` as a full-screen terminal app, when stdin and stdout are both
//! terminals: arrivals scroll above an input line they never break.
//!
//! The same `Session` as pipe mode runs the connection (sealing,
//! reconnects, the backlog, replay refusal); this module is its front end.
//! [`App`] holds the state, `view` draws it with ratatui ([`draw`]), and a
//! thread reads crossterm's events into the session's inbox. The terminal
//! is put back as it was on every way out: a quit, the relay going away,
//! an error, and a panic ([`TerminalGuard`] and the panic hook).
//!
//! | module | owns |
//! |---|---|
//! | `app` | [`App`]: the state, the keys, the connection's state |
//! | `receive` | the relay's events, into the views |
//! | `typed` | a typed line, onto the wire (`/in ROOM …`) |
//! | `rooms` | [`Rooms`]: the room list, switching, the activity bar |
//! | `room_view` | [`RoomView`]: one view's scrollback by id, counts, paging |
//! | `entry` | [`Entry`], [`Look`], what a mention is |
//! | `editor` | [`Editor`]: the input line |
//! | `view`, `side` | drawing: the pane and bars; the room list and members panel |

mod app;
mod editor;
mod entry;
mod receive;
mod room_view;
mod rooms;
mod side;
mod typed;
mod view;

#[cfg(test)]
mod tests;

pub use app::{App, LinkState};
pub use editor::{Editor, text_width};
pub use entry::{Entry, Look, mentions};
pub use room_view::{PAGE_SIZE, RoomView, SCROLLBACK, ViewKind};
pub use rooms::Rooms;
pub use typed::{Target, Typed, compose};
pub use view::{PANEL_MIN_WIDTH, ROOM_LIST_MIN_WIDTH, draw, name_colour};

use std::io::{self, Stdout, Write};
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::Instant;

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    self, DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    KeyEventKind,
};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};

use super::session::{Front, Session, UiAction};
use super::{ChatError, Credentials, Options, SessionEvent, Status, UiEvent};

/// Raw mode, the alternate screen, mouse and paste reporting, for as long
/// as it lives; dropping it puts the terminal back.
pub struct TerminalGuard(());

impl TerminalGuard {
    /// Takes the terminal over.
    pub fn enter() -> io::Result<TerminalGuard> {
        enable_raw_mode()?;
        let guard = TerminalGuard(());
        execute!(
            io::stdout(),
            EnterAlternateScreen,
            EnableMouseCapture,
            EnableBracketedPaste
        )?;
        Ok(guard)
    }
}

/// Puts the terminal back: safe to call more than once, and from the panic
/// hook.
pub fn restore_terminal() {
    let _ = execute!(
        io::stdout(),
        DisableBracketedPaste,
        DisableMouseCapture,
        LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    );
    let _ = disable_raw_mode();
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Runs the terminal app until the user quits (Ctrl-C, Ctrl-D, `/quit`) or
/// the relay goes away for good; `bell` rings the terminal's bell on a
/// mention.
pub fn run(options: &Options, credentials: &Credentials, bell: bool) -> Result<(), ChatError> {
    // What dialing says (a relay key trusted on first use) waits for the
    // app, to be shown as its first notices.
    let mut early = Vec::new();
    let (keys, stream, first) =
        super::dial(options, credentials, &mut |status| early.push(status))?;
    let guard = TerminalGuard::enter().map_err(|error| ChatError::Io {
        what: "setting up the terminal",
        error,
    })?;
    // A panic puts the terminal back before its message is printed.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    let terminal =
        Terminal::new(CrosstermBackend::new(io::stdout())).map_err(|error| ChatError::Io {
            what: "setting up the terminal",
            error,
        })?;
    let (events, inbox) = mpsc::channel();
    let terminal_events = events.clone();
    thread::spawn(move || read_terminal(terminal_events));
    let mut app = App::new(&options.connect, bell);
    // The app puts a shared-key `NAME: ` inside its `/in ROOM …` itself.
    app.prefix = options.name.clone().filter(|_| !options.member);
    let mut front = Tui { terminal, app };
    for status in early {
        front.report(status);
    }
    let mut session = Session::new(options, keys, front, events);
    let result = session
        .start(stream, first)
        .and_then(|()| session.run(&inbox));
    drop(session);
    drop(guard);
    result
}

/// The terminal's events, into the session's inbox, until it is gone.
fn read_terminal(events: Sender<SessionEvent>) {
    while let Ok(event) = event::read() {
        if events.send(SessionEvent::Ui(event)).is_err() {
            return;
        }
    }
}

/// The app as the session's front end.
struct Tui {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    app: App,
}

impl Tui {
    fn redraw(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let app = &mut self.app;
        self.terminal.draw(|frame| draw(frame, app, now))?;
        if self.app.take_bell() {
            let mut out = io::stdout();
            out.write_all(b"\x07")?;
            out.flush()?;
        }
        Ok(())
    }
}

impl Front for Tui {
    fn show(&mut self, plaintext: &[u8]) -> io::Result<()> {
        self.app.receive(plaintext);
        self.redraw()
    }

    fn report(&mut self, status: Status) {
        self.app.status(&status, Instant::now());
        let _ = self.redraw();
    }

    fn ui(&mut self, event: UiEvent) -> UiAction {
        let action = match event {
            UiEvent::Key(key) if key.kind != KeyEventKind::Release => self.app.key(key),
            UiEvent::Mouse(mouse) => {
                self.app.mouse(mouse);
                UiAction::None
            }
            UiEvent::Paste(text) => {
                self.app.editor.insert_str(&text);
                UiAction::None
            }
            _ => UiAction::None,
        };
        let _ = self.redraw();
        action
    }

    fn outgoing(&mut self) -> Vec<Vec<u8>> {
        self.app.take_outgoing()
    }

    fn next_tick(&self) -> Option<Instant> {
        self.app.next_tick(Instant::now())
    }

    fn tick(&mut self) {
        let _ = self.redraw();
    }

    fn history_skipped(&mut self, room: &str) {
        self.app.history_skipped(room);
        let _ = self.redraw();
    }
}
