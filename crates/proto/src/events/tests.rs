//! Both forms of every event: the plain text and JSON the relay writes,
//! and the JSON read back and shown, which must be the plain text again.

use super::*;

fn name(text: &str) -> Name {
    Name::new(text).expect("a test name")
}

fn room(text: &str) -> RoomName {
    RoomName::new(text.as_bytes()).expect("a test room")
}

fn both(event: Event<'_>) -> (String, String) {
    let (mut plain, mut json) = (Vec::new(), Vec::new());
    event.plain(&mut plain);
    event.json(&mut json);
    // Plain text goes as it came: shown here as a lossy string.
    (
        String::from_utf8_lossy(&plain).into_owned(),
        String::from_utf8(json).expect("JSON is UTF-8"),
    )
}

fn entry<'a>(room: &'a RoomName, count: usize, topic: &'a [u8], joined: bool) -> RoomEntry<'a> {
    RoomEntry {
        room,
        count,
        topic,
        mode: MODE_RELAY,
        joined,
    }
}

#[test]
fn a_members_message_is_stamped_in_plain_text() {
    let (alice, lobby) = (name("alice"), room("lobby"));
    let (plain, json) = both(Event::Message {
        room: &lobby,
        from: Some(&alice),
        text: b"hi \"there\"\n\x1b[2J",
        ts: 7,
        history: true,
        action: false,
        stamped: true,
        id: 41,
    });
    assert_eq!(plain, "alice: hi \"there\"\n\x1b[2J");
    assert_eq!(
        json,
        r#"{"kind":"msg","room":"lobby","from":"alice","text":"hi \"there\"\n\u001b[2J","ts":7,"history":true,"id":41}"#
    );
}

#[test]
fn a_shared_key_message_goes_as_it_came() {
    let lobby = room("lobby");
    let (plain, json) = both(Event::Message {
        room: &lobby,
        from: None,
        text: b"bob: \xff hi",
        ts: 1,
        history: false,
        action: false,
        stamped: false,
        id: 0,
    });
    assert_eq!(plain.as_bytes(), b"bob: \xef\xbf\xbd hi".as_slice());
    assert!(json.contains(r#""from":null,"text":"bob: � hi""#), "{json}");
}

#[test]
fn notices_read_as_sentences() {
    let (alice, bob, lobby, dev) = (name("alice"), name("bob"), room("Lobby"), room("dev"));
    let presence = Event::Presence {
        room: &lobby,
        name: &alice,
        count: 3,
        ts: 1,
        joined: true,
    };
    let (plain, json) = both(presence);
    assert_eq!(plain, "* alice joined #lobby (3 here)");
    assert_eq!(
        json,
        r#"{"kind":"join","room":"lobby","name":"alice","count":3,"ts":1}"#
    );
    let names = [&alice, &bob];
    let (plain, json) = both(Event::Who {
        room: &lobby,
        names: &names,
        unnamed: 2,
    });
    assert_eq!(plain, "* here in #lobby: alice, bob, and 2 with no name");
    assert_eq!(
        json,
        r#"{"kind":"who","room":"lobby","names":["alice","bob"],"unnamed":2}"#
    );
    let rooms = [
        entry(&lobby, 3, b"", true),
        entry(&dev, 1, b"ship \"it\"", false),
    ];
    let (plain, json) = both(Event::Rooms(&rooms));
    assert_eq!(plain, "* rooms: *#lobby (3), #dev (1)");
    assert_eq!(
        json,
        r#"{"kind":"rooms","rooms":[{"room":"lobby","count":3,"topic":"","mode":"relay","joined":true},{"room":"dev","count":1,"topic":"ship \"it\"","mode":"relay","joined":false}]}"#
    );
    let parsed = ParsedEvent::parse(json.as_bytes()).expect("an event");
    let ParsedKind::Rooms(parsed) = parsed.kind else {
        panic!("{parsed:?}");
    };
    assert_eq!(parsed[1].topic, "ship \"it\"");
    assert!(parsed[0].joined && !parsed[1].joined);
    assert_eq!(parsed[0].mode, MODE_RELAY);
    let mine = [&lobby, &dev];
    let (plain, json) = both(Event::MyRooms {
        room: Some(&dev),
        rooms: &mine,
        e2e: &[&dev],
    });
    assert_eq!(plain, "* your rooms: #lobby, #dev (now in #dev)");
    assert_eq!(
        json,
        r#"{"kind":"myrooms","room":"dev","rooms":["lobby","dev"],"e2e":["dev"]}"#
    );
    let (plain, _) = both(Event::MyRooms {
        room: None,
        rooms: &[],
        e2e: &[],
    });
    assert_eq!(plain, "* your rooms: none");
    let (plain, json) = both(Event::Topic {
        room: &dev,
        from: Some(&alice),
        text: b"release friday",
        ts: 9,
    });
    assert_eq!(plain, "* alice set the topic of #dev: release friday");
    assert_eq!(
        json,
        r#"{"kind":"topic","room":"dev","from":"alice","text":"release friday","ts":9}"#
    );
    let (plain, json) = both(Event::HistoryStart {
        room: &dev,
        count: 2,
        page: true,
        first: true,
    });
    assert_eq!(plain, "* the earlier 2 messages in #dev:");
    assert_eq!(
        json,
        r#"{"kind":"history","room":"dev","count":2,"page":true,"first":true}"#
    );
    let (_, json) = both(Event::Error {
        room: Some(&dev),
        text: "error: no",
    });
    assert_eq!(json, r#"{"kind":"error","room":"dev","text":"error: no"}"#);
    let (plain, _) = both(Event::Message {
        room: &lobby,
        from: Some(&bob),
        text: b"waves",
        ts: 1,
        history: false,
        action: true,
        stamped: true,
        id: 2,
    });
    assert_eq!(plain, "* bob waves");
    let (plain, json) = both(Event::Private {
        from: Some(&alice),
        to: &bob,
        text: b"psst",
        ts: 2,
        echo: false,
    });
    assert_eq!(plain, "[private] alice: psst");
    assert_eq!(
        json,
        r#"{"kind":"private","from":"alice","to":"bob","text":"psst","ts":2,"echo":false}"#
    );
}

/// The relay's JSON form, read back and shown, is its plain form.
fn round_trip(event: Event<'_>, members: bool) {
    let (mut plain, mut json) = (Vec::new(), Vec::new());
    event.plain(&mut plain);
    event.json(&mut json);
    let parsed = ParsedEvent::parse(&json).expect("an event");
    let mut line = Vec::new();
    parsed.plain(members, &mut line);
    assert_eq!(line, plain, "{parsed:?}");
}

#[test]
fn every_event_shows_as_the_relays_plain_text() {
    let alice = Name::new("alice").expect("name");
    let bob = Name::new("bob").expect("name");
    let lobby = RoomName::new(b"lobby").expect("room");
    for (members, stamped) in [(true, true), (false, false)] {
        for action in [false, true] {
            round_trip(
                Event::Message {
                    room: &lobby,
                    from: Some(&alice),
                    text: b"hi \"you\"",
                    ts: 5,
                    history: true,
                    action,
                    stamped,
                    id: 9,
                },
                members,
            );
        }
    }
    for echo in [false, true] {
        round_trip(
            Event::Private {
                from: Some(&alice),
                to: &bob,
                text: b"psst",
                ts: 1,
                echo,
            },
            true,
        );
    }
    for joined in [false, true] {
        round_trip(
            Event::Presence {
                room: &lobby,
                name: &bob,
                count: 2,
                ts: 1,
                joined,
            },
            true,
        );
    }
    let names = [&alice, &bob];
    let rooms = [entry(&lobby, 2, b"a topic", true)];
    let mine = [&lobby];
    for event in [
        Event::Nick {
            room: &lobby,
            from: Some(&alice),
            to: &bob,
            ts: 1,
        },
        Event::HistoryStart {
            room: &lobby,
            count: 1,
            page: false,
            first: false,
        },
        Event::HistoryStart {
            room: &lobby,
            count: 3,
            page: true,
            first: true,
        },
        Event::Who {
            room: &lobby,
            names: &names,
            unnamed: 1,
        },
        Event::Rooms(&rooms),
        Event::Welcome {
            name: None,
            room: Some(&lobby),
            rooms: &mine,
            members: false,
        },
        Event::Welcome {
            name: Some(&alice),
            room: None,
            rooms: &[],
            members: true,
        },
        Event::MyRooms {
            room: Some(&lobby),
            rooms: &mine,
            e2e: &mine,
        },
        Event::MyRooms {
            room: None,
            rooms: &[],
            e2e: &[],
        },
        Event::Topic {
            room: &lobby,
            from: None,
            text: b"set by someone",
            ts: 1,
        },
        Event::Topic {
            room: &lobby,
            from: Some(&alice),
            text: b"",
            ts: 1,
        },
        Event::Mls {
            room: &lobby,
            from: Some(&alice),
            data: b"AAEC",
            ts: 3,
            id: Some(4),
            history: false,
        },
        Event::Group {
            what: GroupNotice::Taken { epoch: 2 },
            room: &lobby,
        },
        Event::Group {
            what: GroupNotice::Refused {
                epoch: 3,
                text: "error: a commit for epoch 2 came first",
            },
            room: &lobby,
        },
        Event::Group {
            what: GroupNotice::Add(&bob),
            room: &lobby,
        },
        Event::Group {
            what: GroupNotice::Remove(&bob),
            room: &lobby,
        },
        Event::KeyPackages {
            name: &bob,
            packages: &[b"AAEC", b"AwQF"],
        },
        Event::GroupInfo {
            room: &lobby,
            epoch: 5,
            data: b"AAEC",
        },
        Event::notice("* you are now bob"),
        Event::error("error: no"),
        Event::Notice {
            room: Some(&lobby),
            text: "* you left #lobby",
        },
    ] {
        round_trip(event, true);
    }
}

#[test]
fn text_that_is_not_an_event_is_left_alone() {
    for text in [&b"hello"[..], b"{not json", b"{\"no\":\"kind\"}", b"[1,2]"] {
        assert_eq!(ParsedEvent::parse(text), None);
    }
}

#[test]
fn group_messages_carry_their_bytes_as_base64() {
    let (alice, dev) = (name("alice"), room("dev"));
    let (plain, json) = both(Event::Mls {
        room: &dev,
        from: Some(&alice),
        data: b"AAEC",
        ts: 3,
        id: None,
        history: false,
    });
    assert_eq!(plain, "* an end-to-end message in #dev from alice");
    assert_eq!(
        json,
        r#"{"kind":"mls","room":"dev","from":"alice","data":"AAEC","ts":3,"id":null,"history":false}"#
    );
    let parsed = ParsedEvent::parse(json.as_bytes()).expect("an event");
    assert_eq!(
        (parsed.kind, parsed.data, parsed.id),
        (ParsedKind::Mls, vec![0, 1, 2], None)
    );
    let (_, json) = both(Event::KeyPackages {
        name: &alice,
        packages: &[b"AAEC", b"AwQF"],
    });
    assert_eq!(
        json,
        r#"{"kind":"keypackages","name":"alice","packages":["AAEC","AwQF"]}"#
    );
    let parsed = ParsedEvent::parse(json.as_bytes()).expect("an event");
    assert_eq!(parsed.packages, [vec![0, 1, 2], vec![3, 4, 5]]);
}
