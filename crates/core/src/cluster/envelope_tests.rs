//! Envelopes encoded and read back, and what reading refuses.

use super::*;

fn name(text: &str) -> Name {
    Name::new(text).expect("a valid name")
}

fn room(text: &str) -> RoomName {
    RoomName::new(text.as_bytes()).expect("a valid room")
}

fn round_trip(body: Body) {
    let envelope = Envelope {
        origin: 0x0102_0304_0506_0708,
        seq: 42,
        ts_millis: 1_700_000_000_000,
        standing: Standing {
            mode: ClusterMode::Sessions,
            members: 0x1122_3344_5566_7788,
        },
        body,
    };
    let mut bytes = Vec::new();
    envelope.encode(&mut bytes);
    assert_eq!(Envelope::decode(&bytes), Ok(envelope));
    // Every proper prefix is refused, never misread.
    for cut in 0..bytes.len() {
        assert!(Envelope::decode(&bytes[..cut]).is_err(), "prefix {cut}");
    }
    bytes.push(0);
    assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::Trailing));
}

#[test]
fn every_kind_round_trips() {
    round_trip(Body::Room {
        room: room("#lobby"),
        from: Some(name("alice")),
        messages: vec![
            (EntryKind::Message, b"hello".to_vec().into()),
            (EntryKind::Action, b"waves".to_vec().into()),
            (EntryKind::Message, Vec::new().into()),
        ],
    });
    round_trip(Body::Room {
        room: room("#x"),
        from: None,
        messages: vec![(EntryKind::Message, b"\0\xff".to_vec().into())],
    });
    round_trip(Body::Private {
        from: None,
        to: name("bob"),
        text: b"psst".to_vec().into(),
    });
    for change in [Change::Left, Change::Joined, Change::Renamed(name("al"))] {
        round_trip(Body::Presence {
            room: room("#lobby"),
            name: name("alice"),
            change,
            here: RoomState {
                room: room("#lobby"),
                names: vec![(name("alice"), 1)],
                unnamed: 2,
            },
        });
    }
    round_trip(Body::State {
        label: "127.0.0.1:8080".into(),
        rooms: vec![
            RoomState {
                room: room("#lobby"),
                names: vec![(name("alice"), 2), (name("bob"), 1)],
                unnamed: 3,
            },
            RoomState {
                room: room("#empty-names"),
                names: Vec::new(),
                unnamed: 1,
            },
        ],
        heard: vec![7, u64::MAX],
    });
    round_trip(Body::Bye);
}

#[test]
fn the_hot_path_head_matches_encode() {
    let body = Body::Room {
        room: room("#lobby"),
        from: Some(name("alice")),
        messages: vec![(EntryKind::Message, b"hi".to_vec().into())],
    };
    let envelope = Envelope {
        origin: 7,
        seq: 8,
        ts_millis: 9,
        standing: Standing::SHARED,
        body,
    };
    let mut whole = Vec::new();
    envelope.encode(&mut whole);
    let mut pieces = Vec::new();
    encode_head(7, 8, 9, Standing::SHARED, &mut pieces);
    encode_room_head(&room("#lobby"), Some(&name("alice")), 1, &mut pieces);
    put_message(&mut pieces, EntryKind::Message, b"hi");
    assert_eq!(whole, pieces);
}

#[test]
fn names_are_checked_as_a_client_s_would_be() {
    let mut bytes = Vec::new();
    encode_head(1, 1, 1, Standing::SHARED, &mut bytes);
    bytes.push(PRIVATE);
    bytes.push(0);
    bytes.push(3);
    bytes.extend_from_slice(b"a b");
    bytes.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::BadName));
}

#[test]
fn unknown_versions_and_kinds_are_refused() {
    let mut bytes = Vec::new();
    encode_head(1, 1, 1, Standing::SHARED, &mut bytes);
    bytes.push(99);
    assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::UnknownKind));
    bytes[0] = 1;
    assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::Version));
    assert_eq!(Envelope::decode(&[]), Err(EnvelopeError::Truncated));
}

#[test]
fn a_huge_count_in_a_short_envelope_allocates_nothing_big() {
    let mut bytes = Vec::new();
    encode_head(1, 1, 1, Standing::SHARED, &mut bytes);
    bytes.push(STATE);
    bytes.push(0);
    bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::Truncated));
}
