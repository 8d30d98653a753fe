//! The terminal app's layouts, drawn on ratatui's test backend: empty, a
//! long scrollback (and scrolling it, and paging older history when it
//! runs out), narrow and wide terminals, a long line being typed while
//! messages arrive, the members panel, and the rooms: the room list with
//! its counts, the activity bar, the topic bar.

use std::time::Instant;

use eaxchat_client::tui::{
    App, Entry, Look, PANEL_MIN_WIDTH, ROOM_LIST_MIN_WIDTH, SCROLLBACK, draw,
};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

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
        br#"{"kind":"welcome","protocol":"eaxchat/1","name":"bob","room":"lobby","rooms":["lobby"],"members":true}"#,
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
        id: None,
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
    let (rows, cursor) = render(&mut app, 100, 8);
    assert_eq!(rows[0], " #lobby │ no topic (/topic TEXT sets one)");
    assert_eq!(rows[6], " [#lobby] │ bob │ connected to relay.example:8080");
    assert_eq!(rows[7], ">");
    assert_eq!(cursor, (2, 7), "the cursor waits on the input line");
    for row in &rows[1..6] {
        assert!(
            row.chars()
                .all(|c| " │#()".contains(c) || c.is_alphanumeric()),
            "{row}"
        );
    }
    assert!(rows[1].starts_with("1 #lobby"), "{rows:?}");
    assert!(rows[2].starts_with("2 (private)"), "{rows:?}");
    assert!(rows[1].ends_with("│ 3"), "{rows:?}");
}

#[test]
fn a_long_scrollback_shows_the_newest_and_scrolls() {
    let mut app = app();
    for n in 0..200 {
        message(&mut app, "alice", &format!("message {n}"));
    }
    let (rows, _) = render(&mut app, 50, 10);
    // 50 columns: no room list, no members panel; under the topic bar, 7
    // rows of messages, newest last.
    assert_eq!(rows[7], "12:00 alice: message 199");
    assert_eq!(rows[1], "12:00 alice: message 193");
    app.key(KeyEvent::from(KeyCode::PageUp));
    let (rows, _) = render(&mut app, 50, 10);
    assert_eq!(rows[7], "12:00 alice: message 193");
    assert!(rows[8].contains("scrolled up 6 (PgDn)"), "{}", rows[8]);
    // A new message does not move a reader who scrolled up.
    message(&mut app, "carol", "new one");
    let (rows, _) = render(&mut app, 50, 10);
    assert_eq!(rows[7], "12:00 alice: message 193");
    app.key(KeyEvent::from(KeyCode::PageDown));
    app.key(KeyEvent::from(KeyCode::PageDown));
    let (rows, _) = render(&mut app, 50, 10);
    assert_eq!(rows[7], "12:00 carol: new one");
    // Scrolling past the oldest line stops there.
    for _ in 0..100 {
        app.key(KeyEvent::from(KeyCode::PageUp));
    }
    let (rows, _) = render(&mut app, 50, 10);
    assert_eq!(rows[1], "12:00 alice: message 0");
    // Memory is bounded.
    for n in 0..SCROLLBACK {
        message(&mut app, "alice", &n.to_string());
    }
    assert_eq!(app.rooms.current().entries().len(), SCROLLBACK);
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
            .all(|row| !row.contains('│') || row.starts_with(" #") || row.starts_with(" [")),
        "no panels: {narrow:?}"
    );
    let text: String = narrow[1..6].concat();
    assert!(text.contains("日本語") && text.contains("🎉"), "{narrow:?}");
    for row in &narrow {
        assert!(
            eaxchat_client::tui::text_width(row) <= 30,
            "{row:?} overflows"
        );
    }
    // 100 columns: the room list (18), the pane (62), the members (20).
    let (wide, _) = render(&mut app, 100, 8);
    assert!(
        wide[4].contains("│12:00 alice: a long message that has to wrap on a narrow"),
        "{wide:?}"
    );
    assert!(
        wide[5].contains("│terminal, with 日本語 and 🎉 in it"),
        "wrapped at a space: {wide:?}"
    );
    assert!(wide[4].ends_with("│carol"), "{wide:?}");
    const { assert!(ROOM_LIST_MIN_WIDTH > 30 && ROOM_LIST_MIN_WIDTH <= PANEL_MIN_WIDTH) };
    const { assert!(PANEL_MIN_WIDTH <= 100) };
    // F2 hides the members panel on a wide terminal too.
    app.key(KeyEvent::from(KeyCode::F(2)));
    let (hidden, _) = render(&mut app, 100, 8);
    assert!(
        !hidden.iter().any(|row| row.ends_with("│carol")),
        "{hidden:?}"
    );
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
    let (rows, _) = render(&mut app, 100, 8);
    let panel: Vec<String> = rows[1..6]
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
    let (rows, _) = render(&mut app, 160, 8);
    let want =
        format!(" [#lobby] │ bob │ connected to 127.0.0.1:8080 │ session with {relay} as bob");
    assert_eq!(rows[6], want);
    let notice = format!("* connected to 127.0.0.1:8080, session with {relay}");
    assert!(rows.iter().any(|row| row.contains(&notice)), "{rows:#?}");
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
    let (rows, _) = render(&mut app, 300, 8);
    let notice = format!(
        "* the relay at relay.example:8080 has key {} ({key}); trusting it on first use",
        key.fingerprint()
    );
    assert!(rows.iter().any(|row| row.contains(&notice)), "{rows:#?}");
}

fn live(room: &str, from: &str, text: &str, id: u64) -> Vec<u8> {
    format!(
        r#"{{"kind":"msg","room":"{room}","from":"{from}","text":"{text}","ts":0,"history":false,"id":{id}}}"#
    )
    .into_bytes()
}

/// bob in #lobby, #dev and #ops, looking at #lobby.
fn in_three_rooms() -> App {
    let mut app = app();
    app.receive(br#"{"kind":"myrooms","room":"ops","rooms":["lobby","dev","ops"]}"#);
    app.take_outgoing();
    app
}

/// The room list counts what came where bob is not looking, mentions
/// marked `@`; the status line carries irssi's activity bar; switching
/// (Alt+2) reads the room, and the topic bar shows its topic.
#[test]
fn the_room_list_the_activity_bar_and_the_topic() {
    let mut app = in_three_rooms();
    app.receive(&live("dev", "alice", "one", 0));
    app.receive(&live("dev", "alice", "bob: two", 1));
    app.receive(&live("ops", "carol", "three", 0));
    app.receive(br#"{"kind":"topic","room":"dev","from":"alice","text":"release friday","ts":0}"#);
    let (rows, _) = render(&mut app, 100, 10);
    assert!(rows[1].starts_with("1 #lobby         │"), "{rows:#?}");
    assert!(rows[2].starts_with("2 #dev      2 @1 │"), "{rows:#?}");
    assert!(rows[3].starts_with("3 #ops         1 │"), "{rows:#?}");
    assert!(rows[4].starts_with("4 (private)      │"), "{rows:#?}");
    assert!(
        rows[8].starts_with(" [#lobby] [Act: 2*,3] │ bob │"),
        "{}",
        rows[8]
    );
    assert_eq!(rows[0], " #lobby │ no topic (/topic TEXT sets one)");
    app.key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT));
    let (rows, _) = render(&mut app, 100, 10);
    assert_eq!(rows[0], " #dev │ release friday");
    assert!(rows[2].starts_with("2 #dev           │"), "{rows:#?}");
    assert!(
        rows[8].starts_with(" [#dev] [Act: 3] │ bob │"),
        "{}",
        rows[8]
    );
    let pane = rows.join("\n");
    assert!(
        pane.contains("│00:") || pane.contains("alice: bob: two"),
        "{pane}"
    );
    // Narrower than the room list's minimum: the list hides, the bar stays.
    let (narrow, _) = render(&mut app, ROOM_LIST_MIN_WIDTH - 1, 10);
    assert!(
        !narrow[1..7].iter().any(|row| row.contains("#ops")),
        "{narrow:#?}"
    );
    assert!(narrow[8].starts_with(" [#dev] [Act: 3]"), "{}", narrow[8]);
}

/// PgUp at the oldest line of a room asks the relay for the page before
/// it, once; the page lands above, in order, and the reader can scroll
/// on into it.
#[test]
fn scrolling_past_the_oldest_line_pages_older_history() {
    let mut app = in_three_rooms();
    app.key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT));
    app.take_outgoing();
    app.receive(br#"{"kind":"history","room":"dev","count":3,"page":false,"first":false}"#);
    for id in 10..13 {
        app.receive(
            format!(
                r#"{{"kind":"msg","room":"dev","from":"alice","text":"m{id}","ts":0,"history":true,"id":{id}}}"#
            )
            .as_bytes(),
        );
    }
    render(&mut app, 60, 10);
    // All of it fits: the oldest line is on screen; PgUp goes past it.
    app.key(KeyEvent::from(KeyCode::PageUp));
    render(&mut app, 60, 10);
    assert_eq!(app.take_outgoing(), [b"/in dev /history 10 50".to_vec()]);
    let (rows, _) = render(&mut app, 60, 10);
    assert!(rows[8].contains("asking for older messages"), "{}", rows[8]);
    app.key(KeyEvent::from(KeyCode::PageUp));
    render(&mut app, 60, 10);
    assert!(app.take_outgoing().is_empty(), "asked once");
    app.receive(br#"{"kind":"history","room":"dev","count":10,"page":true,"first":false}"#);
    for id in 0..10 {
        app.receive(
            format!(
                r#"{{"kind":"msg","room":"dev","from":"alice","text":"m{id}","ts":0,"history":true,"id":{id}}}"#
            )
            .as_bytes(),
        );
    }
    for _ in 0..5 {
        app.key(KeyEvent::from(KeyCode::PageUp));
    }
    let (rows, _) = render(&mut app, 60, 10);
    let pane: Vec<&str> = rows[1..8]
        .iter()
        .filter_map(|row| row.split('│').nth(1))
        .collect();
    assert!(pane[0].ends_with("alice: m0"), "{rows:#?}");
    assert!(pane[1].ends_with("alice: m1"), "{rows:#?}");
    assert_eq!(app.take_outgoing(), [b"/in dev /history 0 50".to_vec()]);
}
