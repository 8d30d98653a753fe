//! The invite link's text form and the join handshake, in memory.

use super::*;
use bytes::BytesMut;

fn relay() -> StaticSecret {
    StaticSecret::generate().unwrap()
}

#[test]
fn a_link_round_trips_in_both_forms() {
    let relay = relay();
    let invite = Invite::generate("chat.example:7000", relay.public_key()).unwrap();
    let link = invite.link();
    assert!(
        link.starts_with("eaxchat://chat.example:7000/join/"),
        "{link}"
    );
    assert_eq!(Invite::parse(&link).unwrap(), invite);
    let web = invite.web_link("https://chat.example/");
    assert!(web.starts_with("https://chat.example/#invite="), "{web}");
    let parsed = Invite::parse(&web).unwrap();
    assert_eq!((parsed.relay, parsed.id), (invite.relay, invite.id));
    assert_eq!(parsed.secret, invite.secret);
    assert_eq!(parsed.addr, "");
    assert_eq!(InviteId::parse(&invite.id.to_string()).unwrap(), invite.id);
    assert!(!format!("{invite:?}").contains(&invite.token()));
}

#[test]
fn damaged_links_are_refused() {
    let invite = Invite::generate("h:1", relay().public_key()).unwrap();
    let link = invite.link();
    for bad in [
        "",
        "eaxchat://h:1/",
        "http://h:1/join/x",
        &link[..link.len() - 1],
        &format!("{link}AA"),
        "eaxchat:///join/abc",
    ] {
        assert!(Invite::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(InviteId::parse("0011"), Err(InviteError::BadId));
}

#[test]
fn a_join_with_the_right_secret_gives_a_session() {
    let relay = relay();
    let device = StaticSecret::generate().unwrap();
    let invite = Invite::generate("h:1", relay.public_key()).unwrap();
    let (initiator, line) = invite.join(&device).unwrap();
    let (id, message) = split_join(&line).unwrap();
    assert_eq!(id, invite.id);
    let responder = read_join(&relay, &invite.secret, &message).unwrap();
    assert_eq!(responder.initiator_key(), device.public_key());
    let (welcome, mut at_relay) = responder.accept("carol").unwrap();
    let mut at_client = initiator.finish(&welcome).unwrap();
    assert_eq!(at_client.name, "carol");
    let mut frame = BytesMut::new();
    at_client.session.seal_into(b"hi", &mut frame).unwrap();
    assert_eq!(at_relay.session.open(&frame).unwrap(), b"hi");
}

#[test]
fn a_wrong_secret_or_another_relay_cannot_read_a_join() {
    let relay = relay();
    let device = StaticSecret::generate().unwrap();
    let invite = Invite::generate("h:1", relay.public_key()).unwrap();
    let (_, line) = invite.join(&device).unwrap();
    let (_, message) = split_join(&line).unwrap();
    let wrong = InviteSecret::generate().unwrap();
    assert_eq!(
        read_join(&relay, &wrong, &message).unwrap_err(),
        SessionError::HelloDidNotDecrypt
    );
    // A man in the middle with its own key, even holding the secret.
    let other = StaticSecret::generate().unwrap();
    assert_eq!(
        read_join(&other, &invite.secret, &message).unwrap_err(),
        SessionError::HelloDidNotDecrypt
    );
    // An ordinary hello reader does not take a join, nor the reverse.
    assert!(Responder::read_hello(&relay, &line).is_err());
    let (_, hello) = Initiator::start(&device, relay.public_key(), b"").unwrap();
    assert!(split_join(&hello).is_err());
}

#[test]
fn truncated_and_garbage_joins_are_refused_without_panicking() {
    let relay = relay();
    let device = StaticSecret::generate().unwrap();
    let invite = Invite::generate("h:1", relay.public_key()).unwrap();
    let (_, line) = invite.join(&device).unwrap();
    let (_, message) = split_join(&line).unwrap();
    for len in 0..message.len() {
        assert!(read_join(&relay, &invite.secret, &message[..len]).is_err());
    }
    for at in 0..message.len() {
        let mut flipped = message.clone();
        flipped[at] ^= 1;
        assert!(read_join(&relay, &invite.secret, &flipped).is_err());
    }
    assert!(split_join(b"Aw==").is_err());
}

#[test]
fn a_device_invite_request_fits_a_hello_and_reads_back() {
    let invite = Invite::generate("h:1", relay().public_key()).unwrap();
    let payload = device_invite_payload(&invite.id, &invite.secret);
    assert!(
        payload.len() <= crate::session::MAX_PAYLOAD,
        "{}",
        payload.len()
    );
    let (id, secret) = device_invite_request(&payload).unwrap();
    assert_eq!((id, secret), (invite.id, invite.secret.clone()));
    let device = StaticSecret::generate().unwrap();
    assert!(Initiator::start(&device, &invite.relay, &payload).is_ok());
    for other in [&b""[..], b"{}", b"{\"invite_device\":\"zz:aa\"}", b"[1]"] {
        assert!(device_invite_request(other).is_none());
    }
}

#[test]
fn a_member_invite_request_fits_a_hello_and_reads_back() {
    let invite = Invite::generate("h:1", relay().public_key()).unwrap();
    let longest = Name::new(&"n".repeat(crate::name::NAME_MAX)).unwrap();
    let payload = member_invite_payload(&longest, &invite.id, &invite.secret);
    assert!(
        payload.len() <= crate::session::MAX_PAYLOAD,
        "{}",
        payload.len()
    );
    let (name, id, secret) = member_invite_request(&payload).unwrap().unwrap();
    assert_eq!(
        (name, id, secret),
        (longest, invite.id, invite.secret.clone())
    );
    let device = StaticSecret::generate().unwrap();
    assert!(Initiator::start(&device, &invite.relay, &payload).is_ok());
    assert!(device_invite_request(&payload).is_none());
    for none in [&b""[..], b"{}", b"[1]", b"{\"invite_device\":\"x\"}"] {
        assert!(member_invite_request(none).is_none());
    }
    let bad: [(&[u8], InviteError); 3] = [
        (
            b"{\"invite_member\":\"zz:aa\",\"name\":\"carol\"}",
            InviteError::BadToken,
        ),
        (
            b"{\"invite_member\":\"zz:aa\",\"name\":\"no one\"}",
            InviteError::BadName,
        ),
        (b"{\"invite_member\":7}", InviteError::BadName),
    ];
    for (payload, error) in bad {
        assert_eq!(member_invite_request(payload).unwrap().err(), Some(error));
    }
}
