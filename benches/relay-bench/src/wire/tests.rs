//! The codec's tests: every protocol round-trips fixed-length records, any
//! changed byte is caught, and members and sessions read only what was
//! sealed for them.

use eaxchat_proto::name::Name;
use eaxchat_proto::session::{Established, Initiator, Responder, StaticSecret};

use super::*;

fn protocols() -> Vec<Protocol> {
    let key = Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
    vec![
        Protocol::Eaxchat(key),
        Protocol::Plain,
        Protocol::Redis,
        Protocol::Nats,
    ]
}

/// What a relay would deliver for `sent`: the same line, reframed.
fn delivered(wire: &Wire, sent: &[u8]) -> Vec<u8> {
    match wire.kind {
        Kind::Redis { ref publish_prefix } | Kind::Nats { ref publish_prefix } => {
            let mut record = wire.record_prefix.clone();
            record.extend_from_slice(&sent[publish_prefix.len()..]);
            record
        }
        _ => sent.to_vec(),
    }
}

#[test]
fn every_protocol_round_trips_fixed_length_records() {
    for protocol in protocols() {
        for size in [HEADER_LEN, 64, 4096] {
            let mut wire = Wire::new(&protocol, size).unwrap();
            let header = Header {
                sender: 7,
                seq: 0x0123_4567_89ab_cdef,
                stamp_ns: 42,
            };
            let mut out = BytesMut::new();
            wire.encode(header, &mut out);
            let record = delivered(&wire, &out);
            assert_eq!(record.len(), wire.record_len(), "{protocol:?} {size}");
            assert_eq!(record.last(), Some(&b'\n'));
            assert_eq!(wire.decode(&record), Ok(header));
        }
    }
}

#[test]
fn any_changed_byte_is_forged() {
    for protocol in protocols() {
        let mut wire = Wire::new(&protocol, 64).unwrap();
        let mut out = BytesMut::new();
        let header = Header {
            sender: 1,
            seq: 2,
            stamp_ns: 3,
        };
        wire.encode(header, &mut out);
        let record = delivered(&wire, &out);
        for i in 0..record.len() {
            let mut bad = record.clone();
            bad[i] = if bad[i] == b'7' { b'8' } else { b'7' };
            // A changed hex digit is still a well-formed plain line, so
            // only check that it never decodes to the same header.
            assert_ne!(wire.decode(&bad), Ok(header), "{protocol:?} byte {i}");
        }
        assert_eq!(wire.decode(&record[1..]), Err(Forged));
    }
}

/// A members file of `names`, each with a key of its own.
pub(crate) fn roster(names: &[&str]) -> Roster {
    let text: String = names
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{name} {:032x}\n", i + 1))
        .collect();
    let members =
        eaxchat_core::members::Members::parse(text.as_bytes(), std::path::Path::new("t")).unwrap();
    Roster::new(&members)
}

/// What a members relay delivers to member `to` of `roster` for the
/// line member `from` sent: the text stamped `NAME: ` with `name`,
/// sealed under `to`'s key.
pub(crate) fn member_delivery(
    roster: &Roster,
    from: usize,
    name: &str,
    to: usize,
    sent: &[u8],
) -> Vec<u8> {
    let mut opener = Cipher::new(roster.member(from).unwrap().1).unwrap();
    let text = opener.open(sent.strip_suffix(b"\n").unwrap()).unwrap();
    let mut stamped = format!("{name}: ").into_bytes();
    stamped.extend_from_slice(text);
    let mut sealer = Cipher::new(roster.member(to).unwrap().1).unwrap();
    let mut out = BytesMut::new();
    sealer.seal_into(&stamped, &mut out);
    out.to_vec()
}

#[test]
fn a_member_reads_what_the_relay_stamped_and_sealed_for_it_alone() {
    let roster = roster(&["pub", "sub", "bob"]);
    let mut wire = Wire::new(&Protocol::Members(roster.clone()), 64).unwrap();
    let mut reader = wire
        .member_reader(roster.member(1).unwrap().1)
        .unwrap()
        .unwrap();
    let header = Header {
        sender: 0,
        seq: 9,
        stamp_ns: 5,
    };
    let mut sent = BytesMut::new();
    wire.encode(header, &mut sent);
    let record = member_delivery(&roster, 0, "pub", 1, &sent);
    assert_eq!(record.len(), wire.record_len());
    assert_eq!(reader.decode(&record), Ok(header));
    // Stamped with another member's name, or sealed for another member,
    // or left unstamped: forged.
    let misnamed = member_delivery(&roster, 0, "bob", 1, &sent);
    assert_eq!(reader.decode(&misnamed), Err(Forged));
    let not_mine = member_delivery(&roster, 0, "pub", 2, &sent);
    assert_eq!(reader.decode(&not_mine), Err(Forged));
    assert_eq!(reader.decode(&sent), Err(Forged));
}

#[test]
fn members_identify_with_an_empty_frame_and_only_in_members_mode() {
    let roster = roster(&["pub", "sub"]);
    let wire = Wire::new(&Protocol::Members(roster.clone()), 64).unwrap();
    let mut own = Cipher::new(roster.member(0).unwrap().1).unwrap();
    let greeting = wire.publisher_greeting();
    assert_eq!(greeting.last(), Some(&b'\n'));
    let line = greeting.strip_suffix(b"\n").unwrap();
    assert_eq!(own.open(line).unwrap().len(), 0);
    let mut reader = wire
        .member_reader(roster.member(1).unwrap().1)
        .unwrap()
        .unwrap();
    let greeting = reader.greeting();
    let mut sub = Cipher::new(roster.member(1).unwrap().1).unwrap();
    assert_eq!(
        sub.open(greeting.strip_suffix(b"\n").unwrap())
            .unwrap()
            .len(),
        0
    );

    let key = Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
    let shared = Wire::new(&Protocol::Eaxchat(key.clone()), 64).unwrap();
    assert!(shared.publisher_greeting().is_empty());
    assert!(shared.member_reader(&key).is_none());
}

#[test]
fn sealed_messages_need_room_for_the_header() {
    let key = Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
    assert!(Wire::new(&Protocol::Eaxchat(key), HEADER_LEN - 1).is_err());
    assert!(Wire::new(&Protocol::Plain, 0).is_ok());
}

/// A finished handshake between `client` and the relay `relay`, which
/// accepts it as `name`: the client's side and the relay's session.
pub(crate) fn session_pair(
    relay: &StaticSecret,
    client: &StaticSecret,
    name: &str,
) -> (Established, Session) {
    let (initiator, hello) = Initiator::start(client, relay.public_key(), b"").unwrap();
    let responder = Responder::read_hello(relay, &hello).unwrap();
    let (welcome, at_relay) = responder.accept(name).unwrap();
    let at_client = initiator.finish(&welcome).unwrap();
    assert_eq!(at_client.name, name);
    (at_client, at_relay.session)
}

/// What a session relay delivers, for the line its publisher sent in
/// `from` (the relay's side of the publisher's session), to the
/// subscriber whose session's relay side is `to`: the text stamped
/// `NAME: ` with `name` and sealed in `to`.
pub(crate) fn session_delivery(
    from: &mut Session,
    name: &str,
    to: &mut Session,
    sent: &[u8],
) -> Vec<u8> {
    let text = from
        .open(sent.strip_suffix(b"\n").unwrap())
        .unwrap()
        .to_vec();
    let mut stamped = format!("{name}: ").into_bytes();
    stamped.extend_from_slice(&text);
    let mut out = BytesMut::new();
    to.seal_into(&stamped, &mut out).unwrap();
    out.to_vec()
}

/// A session roster of `names`, the relay's key `relay`; no identities.
pub(crate) fn session_roster(names: &[&str], relay: &StaticSecret) -> SessionRoster {
    let devices = names
        .iter()
        .map(|name| {
            let key = *StaticSecret::generate().unwrap().public_key();
            (Name::new(name).unwrap(), key)
        })
        .collect();
    SessionRoster::new(devices, std::path::Path::new("none"), *relay.public_key())
}

/// A publisher `pub` and a subscriber `sub` of one session relay: the
/// codec, sealing in the publisher's session; the subscriber's reader,
/// checking as `checking` says; and what the relay delivers to it of the
/// publisher's messages `0..count`, stamped with `name`.
fn session_run(checking: Checking, name: &str, count: u64) -> (Wire, SessionReader, Vec<Vec<u8>>) {
    let relay = StaticSecret::generate().unwrap();
    let (publisher, subscriber) = (
        StaticSecret::generate().unwrap(),
        StaticSecret::generate().unwrap(),
    );
    let roster = session_roster(&["pub", "sub"], &relay);
    let mut wire = Wire::new(&Protocol::Sessions(roster), 64).unwrap();
    assert!(wire.publisher_greeting().is_empty());
    let (pub_client, mut pub_relay) = session_pair(&relay, &publisher, "pub");
    let (sub_client, mut sub_relay) = session_pair(&relay, &subscriber, "sub");
    // No session yet: nothing is sealed.
    let mut sent = BytesMut::new();
    wire.encode(session_header(0), &mut sent);
    assert!(sent.is_empty());
    wire.start_session(pub_client.session);
    let reader = wire.session_reader(sub_client, checking).unwrap();
    let records = (0..count)
        .map(|seq| {
            let mut sent = BytesMut::new();
            wire.encode(session_header(seq), &mut sent);
            session_delivery(&mut pub_relay, name, &mut sub_relay, &sent)
        })
        .collect();
    (wire, reader, records)
}

fn session_header(seq: u64) -> Header {
    Header {
        sender: 0,
        seq,
        stamp_ns: 7,
    }
}

#[test]
fn a_session_subscriber_opens_its_own_frames_once_and_in_order() {
    for checking in [Checking::Every, Checking::Counters] {
        let (wire, mut reader, records) = session_run(checking, "pub", 6);
        assert_eq!(records[0].len(), wire.record_len());
        assert_eq!(reader.decode(&records[0]), Ok(session_header(0)));
        assert_eq!(reader.decode(&records[0]), Err(Misfit::Duplicated));
        assert_eq!(
            reader.decode(&records[2]),
            Err(Misfit::Lost(1)),
            "{checking:?}"
        );
        match checking {
            // The protocol's opener lost its place for good.
            Checking::Every => {
                assert_eq!(reader.decode(&records[1]), Err(Misfit::OutOfStep));
                assert!(!reader.pass(&records[3]));
            }
            // Counters find their place again after a gap.
            Checking::Counters => {
                assert_eq!(reader.decode(&records[1]), Err(Misfit::Duplicated));
                assert!(reader.pass(&records[3]));
                assert!(!reader.pass(&records[3]));
                assert!(!reader.pass(&records[5]));
                assert_eq!(reader.decode(&records[4]), Ok(session_header(4)));
                assert!(reader.pass(&records[5]));
            }
        }
    }
    // A shared-key codec has no session reader.
    let key = Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
    let relay = StaticSecret::generate().unwrap();
    let (other, _) = session_pair(&relay, &StaticSecret::generate().unwrap(), "pub");
    let shared = Wire::new(&Protocol::Eaxchat(key), 64).unwrap();
    assert!(shared.session_reader(other, Checking::Every).is_none());
}

#[test]
fn a_session_frame_stamped_with_another_name_or_tampered_with_is_forged() {
    for checking in [Checking::Every, Checking::Counters] {
        let (_, mut reader, misnamed) = session_run(checking, "bub", 1);
        assert_eq!(reader.decode(&misnamed[0]), Err(Misfit::Forged));
        // A frame tampered with does not open and leaves the counter where
        // it was: the genuine one still opens.
        let (_, mut reader, genuine) = session_run(checking, "pub", 1);
        let mut tampered = genuine[0].clone();
        tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
        assert_eq!(reader.decode(&tampered), Err(Misfit::Forged));
        assert_eq!(reader.decode(&genuine[0][1..]), Err(Misfit::Forged));
        assert!(!reader.pass(&genuine[0][1..]));
        assert_eq!(reader.decode(&genuine[0]), Ok(session_header(0)));
    }
}

/// A sealed message's header holds no `\n` or `\r` (a members or session
/// relay refuses a member's text with a line break) and never starts with
/// `/`, whatever its fields hold, and it reads back exactly.
#[test]
fn the_header_has_no_line_break_and_round_trips() {
    let fields = [0, 0x0a, 0x0d, 0x0a0d_0a0d, u64::MAX, 0x2f2f_2f2f_2f2f_2f2f];
    for &seq in &fields {
        for &stamp_ns in &fields {
            for sender in [0, 0x0a0d, u32::MAX, PROBE] {
                let header = Header {
                    seq,
                    sender,
                    stamp_ns,
                };
                let mut plaintext = vec![b'.'; HEADER_LEN + 4];
                super::put_header(header, &mut plaintext);
                let head = &plaintext[..HEADER_LEN];
                assert!(!head.contains(&b'\n') && !head.contains(&b'\r'), "{head:?}");
                assert_ne!(head[0], b'/');
                assert_eq!(super::parse_plaintext(&plaintext), Ok(header));
            }
        }
    }
}
