//! Sessions end to end, in memory: handshakes, frames both ways, and what
//! must never open (replays, reflections, other sessions' frames, and a
//! recorded session in the hands of someone holding both long-term keys).

use bytes::BytesMut;
use eaxchat_proto::eax_key::EaxKey;
use eaxchat_proto::session::{
    Established, Initiator, PublicKey, Responder, SessionError, StaticSecret,
};

/// A client and a relay identity.
fn identities() -> (StaticSecret, StaticSecret) {
    (
        StaticSecret::generate().unwrap(),
        StaticSecret::generate().unwrap(),
    )
}

/// One whole handshake; returns (client side, relay side, line 1, line 2).
fn handshake(
    client: &StaticSecret,
    relay: &StaticSecret,
) -> (Established, Established, Vec<u8>, Vec<u8>) {
    let (initiator, hello) = Initiator::start(client, relay.public_key(), b"").unwrap();
    let responder = Responder::read_hello(relay, &hello).unwrap();
    assert_eq!(responder.initiator_key(), client.public_key());
    let (welcome, at_relay) = responder.accept("alice").unwrap();
    let at_client = initiator.finish(&welcome).unwrap();
    (at_client, at_relay, hello, welcome)
}

/// `plaintext` sealed by `side`, as the line it sends (without `\n`).
fn seal(side: &mut Established, plaintext: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    side.session.seal_into(plaintext, &mut out).unwrap();
    assert_eq!(out.last(), Some(&b'\n'));
    out[..out.len() - 1].to_vec()
}

/// A handshake works and frames flow both ways, many of them, in order.
#[test]
fn frames_flow_both_ways_after_a_handshake() {
    let (client, relay) = identities();
    let (mut at_client, mut at_relay, _, _) = handshake(&client, &relay);
    assert_eq!(at_client.name, "alice");
    for n in 0..100u32 {
        let text = format!("to the relay {n}");
        let line = seal(&mut at_client, text.as_bytes());
        assert_eq!(at_relay.session.open(&line).unwrap(), text.as_bytes());
        let text = format!("to the client {n}");
        let line = seal(&mut at_relay, text.as_bytes());
        assert_eq!(at_client.session.open(&line).unwrap(), text.as_bytes());
    }
    assert_eq!(at_client.session.sealed(), 100);
    assert_eq!(at_relay.session.opened(), 100);
    let empty = seal(&mut at_client, b"");
    assert_eq!(at_relay.session.open(&empty).unwrap(), b"");
}

/// A relay keeps one scratch buffer for all its sessions: the directions
/// taken apart work the same.
#[test]
fn the_directions_apart_share_a_scratch_buffer() {
    let (client, relay) = identities();
    let (mut at_client, at_relay, _, _) = handshake(&client, &relay);
    let (mut sealer, mut opener) = at_relay.session.into_parts();
    let mut scratch = Vec::new();
    let line = seal(&mut at_client, b"hello");
    assert_eq!(opener.open(&line, &mut scratch).unwrap(), b"hello");
    let mut out = BytesMut::new();
    sealer
        .seal_into(b"welcome", &mut scratch, &mut out)
        .unwrap();
    assert_eq!(at_client.session.open(&out).unwrap(), b"welcome");
}

/// A frame sent back to its sender never opens: each direction has its own
/// key.
#[test]
fn reflection_is_refused_both_ways() {
    let (client, relay) = identities();
    let (mut at_client, mut at_relay, _, _) = handshake(&client, &relay);
    assert_ne!(
        at_client.keys.client_to_relay(),
        at_client.keys.relay_to_client()
    );
    let from_client = seal(&mut at_client, b"mine");
    assert_eq!(
        at_client.session.open(&from_client).unwrap_err(),
        SessionError::BadTag
    );
    let from_relay = seal(&mut at_relay, b"mine");
    assert_eq!(
        at_relay.session.open(&from_relay).unwrap_err(),
        SessionError::BadTag
    );
    // Neither failure moved a counter: the real frames still open.
    assert_eq!(at_relay.session.open(&from_client).unwrap(), b"mine");
    assert_eq!(at_client.session.open(&from_relay).unwrap(), b"mine");
}

/// Only the next counter opens: a replay, a gap and a reorder are refused,
/// and a refused frame leaves the counter where it was.
#[test]
fn replay_gap_and_reorder_are_refused() {
    let (client, relay) = identities();
    let (mut at_client, mut at_relay, _, _) = handshake(&client, &relay);
    let lines: Vec<_> = (0..4u8).map(|n| seal(&mut at_client, &[n])).collect();
    let open =
        |relay: &mut Established, n: usize| relay.session.open(&lines[n]).map(|p| p.to_vec());
    assert_eq!(open(&mut at_relay, 0).unwrap(), [0]);
    assert_eq!(
        open(&mut at_relay, 0).unwrap_err(),
        SessionError::Replayed {
            expected: 1,
            got: 0
        }
    );
    assert_eq!(
        open(&mut at_relay, 2).unwrap_err(),
        SessionError::Skipped {
            expected: 1,
            got: 2
        }
    );
    assert_eq!(open(&mut at_relay, 1).unwrap(), [1]);
    assert_eq!(open(&mut at_relay, 2).unwrap(), [2]);
    assert_eq!(
        open(&mut at_relay, 1).unwrap_err(),
        SessionError::Replayed {
            expected: 3,
            got: 1
        }
    );
    assert_eq!(open(&mut at_relay, 3).unwrap(), [3]);
    assert!(
        SessionError::Replayed {
            expected: 3,
            got: 1
        }
        .to_string()
        .contains("replay")
    );
}

/// A frame from one session never opens in another session of the same
/// two keys: not in the next connection, nor after a relay restart (a new
/// responder with the same key file).
#[test]
fn a_frame_from_one_session_never_opens_in_another() {
    let (client, relay) = identities();
    let (mut first_client, mut first_relay, _, _) = handshake(&client, &relay);
    let relay_again = StaticSecret::from_bytes(relay.expose_secret()).unwrap();
    let (mut second_client, mut second_relay, _, _) = handshake(&client, &relay_again);
    assert_ne!(
        first_client.keys.client_to_relay(),
        second_client.keys.client_to_relay()
    );
    // Counter 0 in both, so only the key decides.
    let up = seal(&mut first_client, b"hi");
    let down = seal(&mut first_relay, b"hi");
    assert_eq!(
        second_relay.session.open(&up).unwrap_err(),
        SessionError::BadTag
    );
    assert_eq!(
        second_client.session.open(&down).unwrap_err(),
        SessionError::BadTag
    );
    assert_eq!(first_relay.session.open(&up).unwrap(), b"hi");
    assert_eq!(first_client.session.open(&down).unwrap(), b"hi");
}

/// Everything a passive observer keeps of one session, and both long-term
/// secrets as someone who later stole them would hold them: nothing else
/// of the session survives.
struct Recording {
    client_secret: [u8; 32],
    relay_secret: [u8; 32],
    relay_public: PublicKey,
    hello: Vec<u8>,
    welcome: Vec<u8>,
    up: Vec<Vec<u8>>,
    down: Vec<Vec<u8>>,
}

/// Runs one whole session and returns what was recorded of it. The
/// sessions, their keys and the ephemeral secrets are dropped on return.
fn record_a_session() -> Recording {
    let (client, relay) = identities();
    let (mut at_client, mut at_relay, hello, welcome) = handshake(&client, &relay);
    let mut up = Vec::new();
    let mut down = Vec::new();
    for n in 0..5u8 {
        let line = seal(&mut at_client, format!("secret up {n}").as_bytes());
        at_relay.session.open(&line).unwrap();
        up.push(line);
        let line = seal(&mut at_relay, format!("secret down {n}").as_bytes());
        at_client.session.open(&line).unwrap();
        down.push(line);
    }
    Recording {
        client_secret: *client.expose_secret(),
        relay_secret: *relay.expose_secret(),
        relay_public: *relay.public_key(),
        hello,
        welcome,
        up,
        down,
    }
}

/// Whether the frame `line` opens under `key`, whatever its counter.
fn opens(key: &EaxKey, line: &[u8]) -> bool {
    let mut frame = Vec::new();
    let Ok(len) = eaxchat_proto::wire::decode_line(line, &mut frame) else {
        return false;
    };
    let Some((nonce, tag, body)) = eaxchat_proto::wire::split_frame(&mut frame[..len]) else {
        return false;
    };
    key.open_in_place_detached(nonce, body, tag).is_ok()
}

/// Forward secrecy: with both long-term secrets and the whole recording,
/// a fresh start cannot reproduce the session keys, so no recorded frame
/// opens. The ephemeral secrets the keys also depend on are gone.
#[test]
fn a_recorded_session_stays_closed_to_both_long_term_keys() {
    let recording = record_a_session();
    let client = StaticSecret::from_bytes(&recording.client_secret).unwrap();
    let relay = StaticSecret::from_bytes(&recording.relay_secret).unwrap();
    assert_eq!(relay.public_key(), &recording.relay_public);

    // As the relay: the relay's secret reads the recorded line 1 (it shows
    // who connected, as IK does), but accepting it makes a new ephemeral
    // key, so a new line 2 and new keys. No key such a replay derives, nor
    // any key of a new handshake between the two, opens a recorded frame.
    let mut tried = Vec::new();
    for _ in 0..3 {
        let responder = Responder::read_hello(&relay, &recording.hello).unwrap();
        assert_eq!(responder.initiator_key(), client.public_key());
        let (welcome, mut replayed) = responder.accept("alice").unwrap();
        assert_ne!(welcome, recording.welcome);
        // Counter 0 is what a new opener waits for: only the key refuses it.
        assert_eq!(
            replayed.session.open(&recording.up[0]).unwrap_err(),
            SessionError::BadTag
        );
        tried.push(replayed.keys);
        tried.push(handshake(&client, &relay).0.keys);
    }
    // The check below does open what it should: a new session's own frame.
    let (mut control, _, _, _) = handshake(&client, &relay);
    let line = seal(&mut control, b"control");
    assert!(opens(
        &EaxKey::aes256(control.keys.client_to_relay()),
        &line
    ));
    for keys in &tried {
        let (k1, k2) = keys.raw_split();
        let candidates = [
            keys.client_to_relay(),
            keys.relay_to_client(),
            k1,
            k2,
            keys.handshake_hash(),
        ];
        for key in candidates {
            let key = EaxKey::aes256(key);
            for line in recording.up.iter().chain(&recording.down) {
                assert!(!opens(&key, line), "a recorded frame opened");
            }
        }
    }

    // As the client: a new line 1 carries a new ephemeral key, and the
    // recorded line 2 answered the old one, so it does not verify.
    let (initiator, hello) = Initiator::start(&client, relay.public_key(), b"").unwrap();
    assert_ne!(hello, recording.hello);
    assert_eq!(
        initiator.finish(&recording.welcome).unwrap_err(),
        SessionError::WelcomeDidNotVerify
    );

    // And no session the two long-term keys can make opens a recorded
    // frame in either direction, not even the first (counter 0).
    for _ in 0..3 {
        let (mut at_client, mut at_relay, _, _) = handshake(&client, &relay);
        assert_eq!(
            at_relay.session.open(&recording.up[0]).unwrap_err(),
            SessionError::BadTag
        );
        assert_eq!(
            at_client.session.open(&recording.down[0]).unwrap_err(),
            SessionError::BadTag
        );
    }
}

/// A small deterministic generator (xorshift64*), so the garbage below is
/// the same on every run.
struct Garbage(u64);

impl Garbage {
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }
}

/// Random lines of every length up to past the limit, raw and as valid
/// base64 of every kind, never panic either side and never get through.
#[test]
fn garbage_handshake_lines_are_refused_and_never_panic() {
    use base64::Engine as _;
    let (client, relay) = identities();
    let mut garbage = Garbage(0x9e37_79b9_7f4a_7c15);
    for len in (0..1100).step_by(7) {
        let raw = garbage.bytes(len);
        let mut encodable = garbage.bytes(len.min(800));
        for kind in [0x01, 0x02, 0x03, 0x7f, 0x00, 0xff] {
            if let Some(first) = encodable.first_mut() {
                *first = kind;
            }
            let line = base64::engine::general_purpose::STANDARD.encode(&encodable);
            for line in [&raw[..], line.as_bytes()] {
                assert!(Responder::read_hello(&relay, line).is_err());
                let (initiator, _) = Initiator::start(&client, relay.public_key(), b"").unwrap();
                assert!(initiator.finish(line).is_err());
            }
        }
    }
}
