//! The terminal app's layouts, drawn on ratatui's test backend: empty, a
//! long scrollback (and scrolling it), narrow and wide terminals, a long
//! line being typed while messages arrive, and the members panel.

use std::time::Instant;

use eaxchat_client::tui::{App, Entry, Look, PANEL_MIN_WIDTH, SCROLLBACK, draw};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent};

/// The screen as text, one string a row, trailing spaces cut. A wide
/// character's second cell is left out, so rows read as typed.
fn screen(terminal: &Terminal<TestBackend>) -> Vec<String> {
    let buffer = terminal.backend().buffer();
    let width = usize::from(buffer.area.width);
    buffer
        .content
        .chunks(width)
        .map(|row| {
            let mut line = String::new();
            let mut skip = 0;
            for cell in row {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let symbol = cell.symbol();
                skip = eaxchat_client::tui::text_width(symbol).saturating_sub(1);
                line.push_str(symbol);
            }
            line.trim_end().to_owned()
        })
        .collect()
}

fn render(app: &mut App, width: u16, height: u16) -> (Vec<String>, (u16, u16)) {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal
        .draw(|frame| draw(frame, app, Instant::now()))
        .expect("drawn");
    let cursor = terminal.get_cursor_position().expect("cursor");
    (screen(&terminal), (cursor.x, cursor.y))
}

/// An app in members mode, bob in #lobby with alice and carol.
fn app() -> App {
    let mut app = App::new("relay.example:8080", false);
    app.receive(
        br#"{"kind":"welcome","protocol":"eaxchat/1","name":"bob","room":"lobby","members":true}"#,
    );
    app.receive(br#"{"kind":"who","room":"lobby","names":["alice","bob","carol"],"unnamed":0}"#);
    app.take_outgoing();
    app
}

fn message(app: &mut App, from: &str, text: &str) {
    app.push(Entry {
        time: Some("12:00".to_owned()),
        from: Some(from.to_owned()),
        text: text.to_owned(),
        action: false,
        look: Look::Message,
        mention: false,
    });
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.key(KeyEvent::from(KeyCode::Char(c)));
    }
}

#[test]
fn empty() {
    let mut app = app();
    let (rows, cursor) = render(&mut app, 80, 8);
    assert_eq!(rows[6], " #lobby │ bob │ connected to relay.example:8080");
    assert_eq!(rows[7], ">");
    assert_eq!(cursor, (2, 7), "the cursor waits on the input line");
    for row in &rows[..6] {
        assert!(
            row.chars()
                .all(|c| c == ' ' || c == '│' || c.is_alphanumeric()),
            "{row}"
        );
    }
    assert!(rows[0].ends_with("│ 3"), "{rows:?}");
}

#[test]
fn a_long_scrollback_shows_the_newest_and_scrolls() {
    let mut app = app();
    for n in 0..200 {
        message(&mut app, "alice", &format!("message {n}"));
    }
    let (rows, _) = render(&mut app, 50, 10);
    // 50 columns: no members panel; 8 rows of messages, newest last.
    assert_eq!(rows[7], "12:00 alice: message 199");
    assert_eq!(rows[0], "12:00 alice: message 192");
    app.key(KeyEvent::from(KeyCode::PageUp));
    let (rows, _) = render(&mut app, 50, 10);
    assert_eq!(rows[7], "12:00 alice: message 192");
    assert!(rows[8].contains("scrolled up 7 (PgDn)"), "{}", rows[8]);
    // A new message does not move a reader who scrolled up.
    message(&mut app, "carol", "new one");
    let (rows, _) = render(&mut app, 50, 10);
    assert_eq!(rows[7], "12:00 alice: message 192");
    app.key(KeyEvent::from(KeyCode::PageDown));
    app.key(KeyEvent::from(KeyCode::PageDown));
    let (rows, _) = render(&mut app, 50, 10);
    assert_eq!(rows[7], "12:00 carol: new one");
    // Scrolling past the oldest line stops there.
    for _ in 0..100 {
        app.key(KeyEvent::from(KeyCode::PageUp));
    }
    let (rows, _) = render(&mut app, 50, 10);
    assert_eq!(rows[0], "12:00 alice: message 0");
    // Memory is bounded.
    for n in 0..SCROLLBACK {
        message(&mut app, "alice", &n.to_string());
    }
    assert_eq!(app.entries.len(), SCROLLBACK);
}

#[test]
fn narrow_and_wide_terminals() {
    let mut app = app();
    message(
        &mut app,
        "alice",
        "a long message that has to wrap on a narrow terminal, with 日本語 and 🎉 in it",
    );
    let (narrow, _) = render(&mut app, 30, 8);
    assert!(
        narrow
            .iter()
            .all(|row| !row.contains('│') || row.starts_with(" #")),
        "no panel: {narrow:?}"
    );
    let text: String = narrow[..6].concat();
    assert!(text.contains("日本語") && text.contains("🎉"), "{narrow:?}");
    for row in &narrow {
        assert!(
            eaxchat_client::tui::text_width(row) <= 30,
            "{row:?} overflows"
        );
    }
    let (wide, _) = render(&mut app, 100, 8);
    assert!(
        wide[4].starts_with("12:00 alice: a long message that has to wrap"),
        "{wide:?}"
    );
    assert!(
        wide[5].starts_with("and 🎉 in it"),
        "wrapped at a space: {wide:?}"
    );
    assert!(wide[3].ends_with("│carol"), "{wide:?}");
    const { assert!(PANEL_MIN_WIDTH > 30 && PANEL_MIN_WIDTH <= 100) };
    // F2 hides the panel on a wide terminal too.
    app.key(KeyEvent::from(KeyCode::F(2)));
    let (hidden, _) = render(&mut app, 100, 8);
    assert!(!hidden[0].contains('│'), "{hidden:?}");
}

#[test]
fn a_long_line_being_typed_while_messages_arrive() {
    let mut app = app();
    let typed = "typing a long line that is much longer than the terminal is wide, still going";
    type_text(&mut app, typed);
    for n in 0..5 {
        app.receive(
            format!(
                r#"{{"kind":"msg","room":"lobby","from":"alice","text":"interrupting you {n}","ts":0,"history":false}}"#
            )
            .as_bytes(),
        );
    }
    let (rows, cursor) = render(&mut app, 60, 10);
    // The input line shows the end of what was typed, whole, with the
    // cursor after it; the messages are above.
    let input = &rows[9];
    assert!(input.starts_with("> "), "{input}");
    assert!(
        typed.ends_with(&input[2..]),
        "{input:?} is not the end of the typed line"
    );
    assert_eq!(input.chars().count(), 59, "{input}");
    assert_eq!(cursor, (59, 9));
    for (row, n) in rows[3..8].iter().zip(0..5) {
        assert!(
            row.contains(&format!("alice: interrupting you {n}")),
            "{rows:?}"
        );
        assert!(!row.contains("typing"), "{row}");
    }
    // Home shows its start; nothing was lost.
    app.key(KeyEvent::from(KeyCode::Home));
    let (rows, cursor) = render(&mut app, 60, 10);
    assert!(rows[9].starts_with("> typing a long line"), "{}", rows[9]);
    assert_eq!(cursor, (2, 9));
    assert_eq!(app.editor.text(), typed);
}

#[test]
fn the_members_panel() {
    let mut app = app();
    app.receive(br#"{"kind":"join","room":"lobby","name":"dave","count":4,"ts":0}"#);
    app.receive(br#"{"kind":"leave","room":"lobby","name":"alice","count":3,"ts":0}"#);
    let (rows, _) = render(&mut app, 80, 8);
    let panel: Vec<String> = rows[..6]
        .iter()
        .map(|row| row.rsplit('│').next().unwrap_or("").trim().to_owned())
        .collect();
    assert_eq!(panel[..4], ["3", "bob", "carol", "dave"]);
    assert!(
        rows[4].contains("* dave joined #lobby (4 here)"),
        "{rows:?}"
    );
    assert!(rows[5].contains("* alice left #lobby (3 here)"), "{rows:?}");
}

/// With an identity, the status line says whose session it is (the
/// relay's fingerprint, our stamped name), and the scrollback says so
/// once per connection with the full fingerprint.
#[test]
fn the_status_line_names_the_session() {
    let mut app = app();
    let relay = eaxchat_proto::session::PublicKey::from_bytes([3; 32]).fingerprint();
    let session = eaxchat_client::SessionInfo {
        relay,
        name: "bob".to_owned(),
    };
    let addr = "127.0.0.1:8080".parse().expect("an address");
    app.status(
        &eaxchat_client::Status::Connected {
            addr,
            session: Some(session),
        },
        Instant::now(),
    );
    let (rows, _) = render(&mut app, 120, 8);
    let want = format!(" #lobby │ bob │ connected to 127.0.0.1:8080 │ session with {relay} as bob");
    assert_eq!(rows[6], want);
    let notice = format!("* connected to 127.0.0.1:8080, session with {relay}");
    assert!(rows.iter().any(|row| row.starts_with(&notice)), "{rows:#?}");
}

/// Trust on first use in the app: the relay's fingerprint and key show as
/// a notice, as pipe mode prints them on stderr.
#[test]
fn a_relay_trusted_on_first_use_is_a_notice() {
    let mut app = app();
    let key = eaxchat_proto::session::PublicKey::from_bytes([3; 32]);
    let status = eaxchat_client::Status::TrustingNew {
        relay: "relay.example:8080".to_owned(),
        key,
    };
    app.status(&status, Instant::now());
    let (rows, _) = render(&mut app, 200, 8);
    let notice = format!(
        "* the relay at relay.example:8080 has key {} ({key}); trusting it on first use",
        key.fingerprint()
    );
    assert!(rows.iter().any(|row| row.contains(&notice)), "{rows:#?}");
}
