//! The app without a terminal: the relay's events in, the views, what is
//! sent and what the keys do out.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::UiAction;

/// bob, on a relay with rooms, in #lobby with alice.
fn app() -> App {
    let mut app = App::new("127.0.0.1:8080", true);
    app.receive(br#"{"kind":"welcome","protocol":"eaxchat/1","name":"bob","room":"lobby","rooms":["lobby"],"members":true}"#);
    assert_eq!(app.take_outgoing(), [b"/in lobby /who".to_vec()]);
    app.receive(br#"{"kind":"who","room":"lobby","names":["alice","bob"],"unnamed":0}"#);
    app
}

fn msg(room: &str, from: &str, text: &str, id: u64) -> Vec<u8> {
    format!(
        r#"{{"kind":"msg","room":"{room}","from":"{from}","text":"{text}","ts":0,"history":false,"id":{id}}}"#
    )
    .into_bytes()
}

fn type_line(app: &mut App, text: &str) -> UiAction {
    for c in text.chars() {
        app.key(KeyEvent::from(KeyCode::Char(c)));
    }
    app.key(KeyEvent::from(KeyCode::Enter))
}

fn alt(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT)
}

fn texts(view: &RoomView) -> Vec<&str> {
    view.entries()
        .iter()
        .map(|entry| entry.text.as_str())
        .collect()
}

/// bob in #lobby and #dev, looking at #lobby.
fn in_two_rooms() -> App {
    let mut app = app();
    app.receive(br#"{"kind":"myrooms","room":"dev","rooms":["lobby","dev"]}"#);
    app.take_outgoing();
    app
}

#[test]
fn the_panel_follows_the_room_looked_at() {
    let mut app = app();
    assert!(
        app.rooms.current().entries().is_empty(),
        "the app's own /who is not shown"
    );
    app.receive(br#"{"kind":"join","room":"lobby","name":"carol","count":3,"ts":0}"#);
    app.receive(br#"{"kind":"leave","room":"lobby","name":"alice","count":2,"ts":0}"#);
    let members: Vec<&String> = app.rooms.current().members.iter().collect();
    assert_eq!(members, ["bob", "carol"]);
    // /join dev: looked at once the relay has us in it; its members asked.
    assert_eq!(
        type_line(&mut app, "/join #Dev"),
        UiAction::Send(b"/join #Dev".to_vec())
    );
    app.receive(br#"{"kind":"join","room":"dev","name":"bob","count":1,"ts":0}"#);
    app.receive(br#"{"kind":"myrooms","room":"dev","rooms":["lobby","dev"]}"#);
    assert_eq!(app.room(), Some("dev"));
    assert!(app.rooms.current().members.is_empty());
    assert_eq!(app.take_outgoing(), [b"/in dev /who".to_vec()]);
    // Back to #lobby: its members were kept, nothing asked.
    app.key(alt('1'));
    assert_eq!(app.room(), Some("lobby"));
    assert_eq!(app.rooms.current().members.len(), 2);
    assert!(app.take_outgoing().is_empty());
}

#[test]
fn every_line_is_sent_for_the_room_looked_at_and_the_input_survives_switching() {
    let mut app = in_two_rooms();
    assert_eq!(
        type_line(&mut app, "hi all"),
        UiAction::Send(b"/in lobby hi all".to_vec())
    );
    let own = app
        .rooms
        .current()
        .entries()
        .back()
        .map(|entry| (entry.look, entry.text.as_str()));
    assert_eq!(own, Some((Look::Own, "hi all")), "shown as ours at once");
    for c in "half typ".chars() {
        app.key(KeyEvent::from(KeyCode::Char(c)));
    }
    app.key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL));
    assert_eq!(app.room(), Some("dev"));
    app.receive(&msg("lobby", "alice", "interrupting", 4));
    assert_eq!(app.editor.text(), "half typ");
    assert_eq!(
        type_line(&mut app, "ed"),
        UiAction::Send(b"/in dev half typed".to_vec())
    );
    assert_eq!(
        type_line(&mut app, "/part"),
        UiAction::Send(b"/part dev".to_vec())
    );
    assert_eq!(
        type_line(&mut app, "/me waves"),
        UiAction::Send(b"/in dev /me waves".to_vec())
    );
    let back = KeyEvent::new(KeyCode::Char('p'), KeyModifiers::CONTROL);
    app.key(back);
    assert_eq!(app.room(), Some("lobby"));
    let quit = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.key(quit), UiAction::Quit);
}

#[test]
fn unread_and_mentions_count_in_rooms_not_looked_at() {
    let mut app = in_two_rooms();
    app.receive(&msg("dev", "alice", "one", 0));
    app.receive(&msg("dev", "alice", "Bob: two", 1));
    app.receive(&msg("dev", "alice", "bobby is not you", 2));
    app.receive(&msg("lobby", "alice", "seen", 0));
    app.receive(br#"{"kind":"join","room":"dev","name":"carol","count":3,"ts":0}"#);
    let dev = &app.rooms.views()[1];
    assert_eq!((dev.unread, dev.mentions), (3, 1));
    assert_eq!(app.rooms.current().unread, 0);
    assert_eq!(app.rooms.activity(), "2*");
    assert!(app.take_bell(), "a mention rings");
    assert!(!app.take_bell(), "once");
    app.key(alt('2'));
    assert_eq!(app.rooms.activity(), "");
    assert_eq!(app.rooms.current().unread, 0);
    // A private message, looking at a room: the private view counts it.
    app.receive(
        br#"{"kind":"private","from":"carol","to":"bob","text":"psst","ts":0,"echo":false}"#,
    );
    assert_eq!(app.rooms.activity(), "3*");
    app.key(alt('3'));
    assert_eq!(app.room(), None);
    assert_eq!(
        type_line(&mut app, "hi"),
        UiAction::Send(b"/msg carol hi".to_vec())
    );
}

#[test]
fn history_is_ordered_by_id_deduplicated_and_paged_by_scrolling_up() {
    let mut app = in_two_rooms();
    app.key(alt('2'));
    app.take_outgoing();
    app.receive(br#"{"kind":"history","room":"dev","count":2,"page":false,"first":false}"#);
    for id in [60, 61] {
        let line = format!(
            r#"{{"kind":"msg","room":"dev","from":"alice","text":"m{id}","ts":0,"history":true,"id":{id}}}"#
        );
        app.receive(line.as_bytes());
    }
    app.receive(&msg("dev", "alice", "m62", 62));
    app.receive(&msg("dev", "alice", "m62", 62));
    assert_eq!(texts(app.rooms.current())[1..], ["m60", "m61", "m62"]);
    // Scrolled up to the oldest line: one page is asked, once.
    app.rooms.current_mut().at_top = true;
    app.key(KeyEvent::from(KeyCode::PageUp));
    assert_eq!(app.take_outgoing(), [b"/in dev /history 60 50".to_vec()]);
    app.key(KeyEvent::from(KeyCode::PageUp));
    assert!(
        app.take_outgoing().is_empty(),
        "not again until the page came"
    );
    app.receive(br#"{"kind":"history","room":"dev","count":2,"page":true,"first":true}"#);
    for id in [58, 59] {
        let line = format!(
            r#"{{"kind":"msg","room":"dev","from":"alice","text":"m{id}","ts":0,"history":true,"id":{id}}}"#
        );
        app.receive(line.as_bytes());
    }
    let shown = texts(app.rooms.current());
    assert_eq!(shown[..3], ["* the start of #dev", "m58", "m59"]);
    app.key(KeyEvent::from(KeyCode::PageUp));
    assert!(app.take_outgoing().is_empty(), "nothing older");
}

#[test]
fn topics_and_replies_go_to_their_room() {
    let mut app = in_two_rooms();
    app.receive(br#"{"kind":"topic","room":"dev","from":"alice","text":"release friday","ts":0}"#);
    assert_eq!(
        app.rooms.views()[1].topic.as_deref(),
        Some("release friday")
    );
    app.receive(br#"{"kind":"rooms","rooms":[{"room":"lobby","count":2,"topic":"chat","mode":"relay","joined":true},{"room":"ops","count":1,"topic":"x","mode":"relay","joined":false}]}"#);
    assert_eq!(app.rooms.current().topic.as_deref(), Some("chat"));
    assert_eq!(
        app.rooms.views().len(),
        3,
        "a room we are not in gets no view"
    );
    app.receive(br#"{"kind":"error","room":"ops","text":"error: you are not in ops; /join ops"}"#);
    assert_eq!(app.rooms.views().len(), 3);
    assert!(
        texts(app.rooms.current())
            .iter()
            .any(|text| text.contains("not in ops"))
    );
    // /part dev: its view goes.
    app.receive(br#"{"kind":"myrooms","room":"lobby","rooms":["lobby"]}"#);
    assert_eq!(app.rooms.room_names(), ["lobby"]);
}

#[test]
fn a_one_room_relay_gets_lines_as_typed() {
    let mut app = App::new("127.0.0.1:8080", false);
    app.receive(
        br#"{"kind":"welcome","protocol":"eaxchat/1","name":"bob","room":"lobby","members":true}"#,
    );
    assert_eq!(app.take_outgoing(), [b"/who".to_vec()]);
    assert_eq!(
        type_line(&mut app, "hello"),
        UiAction::Send(b"hello".to_vec())
    );
    assert_eq!(
        type_line(&mut app, "/part"),
        UiAction::Send(b"/part".to_vec())
    );
    app.receive(br#"{"kind":"join","room":"dev","name":"bob","count":1,"ts":0}"#);
    assert_eq!(app.room(), Some("dev"));
    assert_eq!(
        texts(app.rooms.current())[0],
        "hello",
        "moving keeps the scrollback"
    );
    assert_eq!(app.take_outgoing(), [b"/who".to_vec()]);
}

#[test]
fn peers_text_is_neutralised() {
    let mut app = app();
    app.receive(b"{\"kind\":\"msg\",\"room\":\"lobby\",\"from\":\"alice\",\"text\":\"\\u001b[2J\\u202eevil\",\"ts\":0,\"history\":false}");
    assert_eq!(
        app.rooms.current().entries()[0].text,
        "\u{241b}[2J\u{fffd}evil"
    );
}

#[test]
fn after_a_reconnect_a_shared_key_relay_is_asked_to_put_our_rooms_back() {
    let mut app = App::new("127.0.0.1:8080", false);
    let welcome = br#"{"kind":"welcome","protocol":"eaxchat/1","name":null,"room":"lobby","rooms":["lobby"],"members":false}"#;
    app.receive(welcome);
    app.receive(br#"{"kind":"myrooms","room":"dev","rooms":["lobby","dev"]}"#);
    app.key(alt('2'));
    app.receive(&msg("dev", "alice", "kept", 7));
    // /part lobby: in #dev only.
    app.receive(br#"{"kind":"myrooms","room":"dev","rooms":["dev"]}"#);
    app.take_outgoing();
    app.receive(welcome);
    let sent = [
        b"/join dev".to_vec(),
        b"/part lobby".to_vec(),
        b"/in dev /who".to_vec(),
    ];
    assert_eq!(app.take_outgoing(), sent);
    assert_eq!(app.rooms.room_names(), ["dev"]);
    assert_eq!(app.room(), Some("dev"), "still looked at, scrollback kept");
    assert!(texts(app.rooms.current()).contains(&"kept"));
    app.receive(br#"{"kind":"history","room":"dev","count":1,"page":false,"first":false}"#);
    app.receive(
        br#"{"kind":"msg","room":"dev","from":"alice","text":"kept","ts":0,"history":true,"id":7}"#,
    );
    assert_eq!(
        texts(app.rooms.current())
            .iter()
            .filter(|text| **text == "kept")
            .count(),
        1
    );
}

/// An end-to-end room is marked 🔒 in the room list and the status line
/// (its label), from `myrooms`' `e2e` and from `/rooms`' mode.
#[test]
fn end_to_end_rooms_are_marked() {
    let mut app = app();
    app.receive(br#"{"kind":"myrooms","room":"dev","rooms":["lobby","dev","ops"],"e2e":["dev"]}"#);
    let labels: Vec<String> = app.rooms.views().iter().map(RoomView::label).collect();
    assert!(labels.contains(&"#dev 🔒".to_owned()), "{labels:?}");
    assert!(labels.contains(&"#lobby".to_owned()), "{labels:?}");
    app.receive(br#"{"kind":"rooms","rooms":[{"room":"ops","count":1,"topic":"","mode":"e2e","joined":true}]}"#);
    let labels: Vec<String> = app.rooms.views().iter().map(RoomView::label).collect();
    assert!(labels.contains(&"#ops 🔒".to_owned()), "{labels:?}");
}
