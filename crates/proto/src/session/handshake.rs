//! The handshake's two state machines, over `snow`: [`Initiator`] (the
//! client) and [`Responder`] (the relay). Each is a value that a step
//! consumes, so a finished or failed handshake cannot be stepped again.
//!
//! ```text
//! Initiator::start(secret, pinned relay key, payload) → (Initiator, line 1)
//! Responder::read_hello(relay secret, line 1)         → Responder
//!     .initiator_key()   the client's key: the relay looks it up, then
//!     .accept(name)      → (line 2, Established)   or
//!     .refuse(text)      → refusal line
//! Initiator::finish(line 2 or refusal)                → Established
//! ```
//!
//! Each step does a bounded amount of work: a line is refused on its
//! length and kind before any Diffie-Hellman, and a hello costs the relay
//! two X25519 operations to read and two more (and one key generation) to
//! accept. A relay learns the client's static key only from a line 1 that
//! proves possession of it and that was made for this relay's key.
//!
//! This module never touches a socket or a clock: the deadline for line 1
//! and the budget for half-finished handshakes belong to the caller.

use std::fmt;

use snow::HandshakeState;
use snow::params::NoiseParams;
use zeroize::Zeroizing;

use super::error::SessionError;
use super::frames::Session;
use super::identity::{Fingerprint, PublicKey, StaticSecret};
use super::keys::SessionKeys;
use super::line::{Kind, decode_line, encode_line, refusal_line};
use super::{
    MAX_BODY, MAX_NAME, MAX_PAYLOAD, PROLOGUE, PROTOCOL, RELAY_KEY_MARK, WELCOME_OVERHEAD,
};

/// Bytes of Noise IK message 1 besides its payload: the ephemeral key, the
/// encrypted static key and its tag, and the payload's tag.
const HELLO_OVERHEAD: usize = 32 + 32 + 16 + 16;

/// A finished handshake, on either side.
#[derive(Debug)]
pub struct Established {
    /// The session: seal what this side sends, open what it receives.
    pub session: Session,
    /// The member's name: as the relay stamped it (client side), or as the
    /// relay accepted it (relay side).
    pub name: String,
    /// The session's keys, for interop tests and diagnostics; drop them
    /// once read (the session keeps its own expanded copies).
    pub keys: SessionKeys,
}

/// The client's side of a handshake, waiting for the relay's reply.
pub struct Initiator {
    noise: HandshakeState,
    relay: PublicKey,
}

impl Initiator {
    /// Starts a handshake from `local` to the relay whose key the client
    /// pinned, with `payload` (empty, or up to [`MAX_PAYLOAD`] bytes of
    /// UTF-8 JSON), and returns it with line 1 (`\n` included) to send.
    pub fn start(
        local: &StaticSecret,
        relay: &PublicKey,
        payload: &[u8],
    ) -> Result<(Initiator, Vec<u8>), SessionError> {
        check_payload(payload)?;
        let noise = builder(local)?
            .remote_public_key(relay.as_bytes())
            .and_then(|builder| builder.build_initiator())
            .map_err(noise_error)?;
        Initiator::write_first(noise, relay, Kind::Hello, &[], payload)
    }

    /// Starts an invite join (`Noise_IKpsk1`, [`crate::invite`]): like
    /// [`Initiator::start`], but the invite's secret `psk` is mixed into
    /// message 1 and the line (kind 0x03) opens with the invite's `id`.
    pub(crate) fn start_join(
        local: &StaticSecret,
        relay: &PublicKey,
        id: &[u8],
        psk: &[u8; 32],
    ) -> Result<(Initiator, Vec<u8>), SessionError> {
        let noise = join_builder(local, psk)?
            .remote_public_key(relay.as_bytes())
            .and_then(|builder| builder.build_initiator())
            .map_err(noise_error)?;
        Initiator::write_first(noise, relay, Kind::InviteJoin, id, b"")
    }

    fn write_first(
        mut noise: HandshakeState,
        relay: &PublicKey,
        kind: Kind,
        prefix: &[u8],
        payload: &[u8],
    ) -> Result<(Initiator, Vec<u8>), SessionError> {
        let mut message = [0; MAX_BODY];
        let start = prefix.len().min(MAX_BODY);
        message[..start].copy_from_slice(prefix.get(..start).unwrap_or_default());
        let len = noise
            .write_message(payload, message.get_mut(start..).unwrap_or_default())
            .map_err(noise_error)?;
        let line = encode_line(kind, message.get(..start + len).unwrap_or_default())?;
        Ok((
            Initiator {
                noise,
                relay: *relay,
            },
            line,
        ))
    }

    /// The relay key this handshake was started for.
    pub fn relay_key(&self) -> &PublicKey {
        &self.relay
    }

    /// Reads the relay's reply (one line, without its `\n`): line 2 gives
    /// the session and the name the relay stamped; a refusal becomes
    /// [`SessionError::Refused`], naming the pinned fingerprint and the
    /// relay's own if its text gives one.
    pub fn finish(mut self, line: &[u8]) -> Result<Established, SessionError> {
        let line = decode_line(line)?;
        match line.kind() {
            Kind::Welcome => {}
            Kind::Refusal => return Err(refused(line.body(), &self.relay)),
            got => {
                return Err(SessionError::UnexpectedKind {
                    expected: Kind::Welcome,
                    got,
                });
            }
        }
        let body = line.body();
        if body.len() < WELCOME_OVERHEAD {
            return Err(SessionError::WelcomeTooShort { len: body.len() });
        }
        let mut name = [0; MAX_BODY];
        let len = self
            .noise
            .read_message(body, &mut name)
            .map_err(|_| SessionError::WelcomeDidNotVerify)?;
        let name = std::str::from_utf8(name.get(..len).unwrap_or_default())
            .map_err(|_| SessionError::NameNotUtf8)?
            .to_owned();
        let keys = split(&mut self.noise)?;
        Ok(Established {
            session: Session::client(&keys, self.relay),
            name,
            keys,
        })
    }
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiator")
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

/// The relay's side of a handshake: line 1 read, the client's key known,
/// the decision to accept or refuse not yet made.
pub struct Responder {
    noise: HandshakeState,
    initiator: PublicKey,
    payload: [u8; MAX_PAYLOAD],
    payload_len: usize,
}

impl Responder {
    /// Reads line 1 (without its `\n`) with the relay's secret. On an
    /// error, answer with [`Responder::refusal_for`] and close.
    pub fn read_hello(local: &StaticSecret, line: &[u8]) -> Result<Responder, SessionError> {
        let line = decode_line(line)?;
        if line.kind() != Kind::Hello {
            return Err(SessionError::UnexpectedKind {
                expected: Kind::Hello,
                got: line.kind(),
            });
        }
        let noise = builder(local)?.build_responder().map_err(noise_error)?;
        Responder::read_first(noise, line.body())
    }

    /// Reads an invite join's Noise message (the body of a kind 0x03 line
    /// after the invite id, [`crate::invite::split_join`]) with the
    /// relay's secret and the invite's `psk`. A wrong secret and a wrong
    /// relay key both give [`SessionError::HelloDidNotDecrypt`].
    pub(crate) fn read_join(
        local: &StaticSecret,
        psk: &[u8; 32],
        message: &[u8],
    ) -> Result<Responder, SessionError> {
        let noise = join_builder(local, psk)?
            .build_responder()
            .map_err(noise_error)?;
        Responder::read_first(noise, message)
    }

    fn read_first(mut noise: HandshakeState, body: &[u8]) -> Result<Responder, SessionError> {
        let payload_len = body
            .len()
            .checked_sub(HELLO_OVERHEAD)
            .ok_or(SessionError::HelloTooShort { len: body.len() })?;
        if payload_len > MAX_PAYLOAD {
            return Err(SessionError::PayloadTooLong { len: payload_len });
        }
        let mut payload = [0; MAX_PAYLOAD];
        let len = noise
            .read_message(body, &mut payload)
            .map_err(|_| SessionError::HelloDidNotDecrypt)?;
        let payload_len = len.min(MAX_PAYLOAD);
        check_payload(&payload[..payload_len])?;
        let initiator = noise
            .get_remote_static()
            .ok_or_else(|| SessionError::Noise("IK message 1 gave no static key".into()))
            .and_then(|key| {
                PublicKey::from_slice(key)
                    .map_err(|_| SessionError::Noise("static key is not 32 bytes".into()))
            })?;
        Ok(Responder {
            noise,
            initiator,
            payload,
            payload_len,
        })
    }

    /// The client's static key, proven by line 1: what the relay looks up
    /// in its members before it accepts.
    pub fn initiator_key(&self) -> &PublicKey {
        &self.initiator
    }

    /// Line 1's payload: empty, or UTF-8 JSON of at most [`MAX_PAYLOAD`]
    /// bytes.
    pub fn payload(&self) -> &[u8] {
        self.payload.get(..self.payload_len).unwrap_or_default()
    }

    /// Accepts the client as `name` (at most [`MAX_NAME`] bytes): returns
    /// line 2 (`\n` included) to send, and the relay's side of the session.
    pub fn accept(mut self, name: &str) -> Result<(Vec<u8>, Established), SessionError> {
        if name.len() > MAX_NAME {
            return Err(SessionError::NameTooLong { len: name.len() });
        }
        let mut message = [0; MAX_BODY];
        let len = self
            .noise
            .write_message(name.as_bytes(), &mut message)
            .map_err(noise_error)?;
        let line = encode_line(Kind::Welcome, message.get(..len).unwrap_or_default())?;
        let keys = split(&mut self.noise)?;
        let established = Established {
            session: Session::relay(&keys, self.initiator),
            name: name.to_owned(),
            keys,
        };
        Ok((line, established))
    }

    /// Refuses the client (an unknown or removed key, say): the refusal
    /// line to send, `text` cut to [`super::MAX_REFUSAL`] bytes. The
    /// relay closes after it.
    pub fn refuse(self, text: &str) -> Vec<u8> {
        refusal_line(text)
    }

    /// The refusal to send for an error from [`Responder::read_hello`]:
    /// the error, then [`RELAY_KEY_MARK`] and the relay's own fingerprint,
    /// so a client that pinned another key can show both.
    pub fn refusal_for(error: &SessionError, relay: &PublicKey) -> Vec<u8> {
        refusal_line(&format!("{error}; {RELAY_KEY_MARK}{}", relay.fingerprint()))
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("initiator", &self.initiator)
            .field("payload_len", &self.payload_len)
            .finish_non_exhaustive()
    }
}

/// A snow builder for [`PROTOCOL`] with the prologue and `local`'s secret.
fn builder(local: &StaticSecret) -> Result<snow::Builder<'_>, SessionError> {
    let params: NoiseParams = PROTOCOL.parse().map_err(noise_error)?;
    snow::Builder::new(params)
        .prologue(PROLOGUE)
        .and_then(|builder| builder.local_private_key(local.expose_secret()))
        .map_err(noise_error)
}

/// A snow builder for [`crate::invite::JOIN_PROTOCOL`]: the invite's
/// secret is the PSK, mixed in at the end of message 1.
fn join_builder<'a>(
    local: &'a StaticSecret,
    psk: &'a [u8; 32],
) -> Result<snow::Builder<'a>, SessionError> {
    let params: NoiseParams = crate::invite::JOIN_PROTOCOL.parse().map_err(noise_error)?;
    snow::Builder::new(params)
        .prologue(crate::invite::JOIN_PROLOGUE)
        .and_then(|builder| builder.local_private_key(local.expose_secret()))
        .and_then(|builder| builder.psk(1, psk))
        .map_err(noise_error)
}

/// The session keys of a finished handshake.
fn split(noise: &mut HandshakeState) -> Result<SessionKeys, SessionError> {
    if !noise.is_handshake_finished() {
        return Err(SessionError::Noise("the handshake is not finished".into()));
    }
    let hash: [u8; 32] = noise
        .get_handshake_hash()
        .try_into()
        .map_err(|_| SessionError::Noise("the handshake hash is not 32 bytes".into()))?;
    let (k1, k2) = noise.dangerously_get_raw_split();
    let (k1, k2) = (Zeroizing::new(k1), Zeroizing::new(k2));
    Ok(SessionKeys::derive(&k1, &k2, &hash))
}

/// Line 1's payload must be empty or UTF-8 JSON, and short.
fn check_payload(payload: &[u8]) -> Result<(), SessionError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(SessionError::PayloadTooLong { len: payload.len() });
    }
    if !payload.is_empty() && serde_json::from_slice::<serde_json::Value>(payload).is_err() {
        return Err(SessionError::PayloadNotJson);
    }
    Ok(())
}

/// The error for a refusal `body` to a client that pinned `pinned`.
fn refused(body: &[u8], pinned: &PublicKey) -> SessionError {
    // Unauthenticated text from the network: made safe to print first.
    let text = crate::sanitize::sanitize(body);
    let relay = Fingerprint::find_after(&text, RELAY_KEY_MARK);
    SessionError::Refused {
        text,
        pinned: pinned.fingerprint(),
        relay,
    }
}

fn noise_error(error: snow::Error) -> SessionError {
    SessionError::Noise(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{MAX_LINE, decode_line};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    fn keys() -> (StaticSecret, StaticSecret) {
        (
            StaticSecret::generate().unwrap(),
            StaticSecret::generate().unwrap(),
        )
    }

    fn line_of(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut raw = vec![kind];
        raw.extend_from_slice(body);
        STANDARD.encode(raw).into_bytes()
    }

    #[test]
    fn a_handshake_gives_both_sides_the_same_keys_and_the_stamped_name() {
        let (client, relay) = keys();
        let (initiator, hello) =
            Initiator::start(&client, relay.public_key(), b"{\"v\":1}").unwrap();
        assert_eq!(initiator.relay_key(), relay.public_key());
        assert!(hello.len() <= MAX_LINE + 1 && hello.ends_with(b"\n"));
        let responder = Responder::read_hello(&relay, &hello).unwrap();
        assert_eq!(responder.initiator_key(), client.public_key());
        assert_eq!(responder.payload(), b"{\"v\":1}");
        let (welcome, at_relay) = responder.accept("alice ✓").unwrap();
        let at_client = initiator.finish(&welcome).unwrap();
        assert_eq!(at_client.name, "alice ✓");
        assert_eq!(at_relay.name, "alice ✓");
        let (a, b) = (&at_client.keys, &at_relay.keys);
        assert_eq!(a.raw_split(), b.raw_split());
        assert_eq!(a.handshake_hash(), b.handshake_hash());
        assert_eq!(a.client_to_relay(), b.client_to_relay());
        assert_eq!(a.relay_to_client(), b.relay_to_client());
        assert_ne!(a.client_to_relay(), a.relay_to_client());
        assert_eq!(at_client.session.peer_key(), relay.public_key());
        assert_eq!(at_relay.session.peer_key(), client.public_key());
    }

    #[test]
    fn a_client_that_pinned_another_relay_key_is_told_both_fingerprints() {
        let (client, relay) = keys();
        let other = StaticSecret::generate().unwrap();
        let (initiator, hello) = Initiator::start(&client, other.public_key(), b"").unwrap();
        let error = Responder::read_hello(&relay, &hello).unwrap_err();
        assert_eq!(error, SessionError::HelloDidNotDecrypt);
        let refusal = Responder::refusal_for(&error, relay.public_key());
        let error = initiator.finish(&refusal).unwrap_err();
        let SessionError::Refused {
            pinned,
            relay: said,
            ..
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(*pinned, other.public_key().fingerprint());
        assert_eq!(*said, Some(relay.public_key().fingerprint()));
        let text = error.to_string();
        assert!(
            text.contains(&other.public_key().fingerprint().to_string()),
            "{text}"
        );
        assert!(
            text.contains(&relay.public_key().fingerprint().to_string()),
            "{text}"
        );
    }

    #[test]
    fn a_relay_refuses_an_unknown_key_after_reading_it() {
        let (client, relay) = keys();
        let (initiator, hello) = Initiator::start(&client, relay.public_key(), b"").unwrap();
        let responder = Responder::read_hello(&relay, &hello).unwrap();
        let refusal = responder.refuse(&format!(
            "unknown key {}\x1b[2J",
            client.public_key().fingerprint()
        ));
        let error = initiator.finish(&refusal).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("unknown key"), "{text}");
        assert!(
            !text.contains('\x1b'),
            "peer text is made safe to print: {text:?}"
        );
        assert!(!text.contains("says its key is"), "{text}");
    }

    #[test]
    fn lines_of_the_wrong_kind_are_refused() {
        let (client, relay) = keys();
        let (initiator, hello) = Initiator::start(&client, relay.public_key(), b"").unwrap();
        let invite = line_of(0x03, &[0; 120]);
        assert_eq!(
            Responder::read_hello(&relay, &invite).unwrap_err(),
            SessionError::UnexpectedKind {
                expected: Kind::Hello,
                got: Kind::InviteJoin
            }
        );
        assert_eq!(
            initiator.finish(&hello).unwrap_err(),
            SessionError::UnexpectedKind {
                expected: Kind::Welcome,
                got: Kind::Hello
            }
        );
    }

    #[test]
    fn truncated_and_garbage_hellos_are_refused_without_panicking() {
        let (client, relay) = keys();
        let (_, hello) = Initiator::start(&client, relay.public_key(), b"").unwrap();
        let body = decode_line(&hello).unwrap().body().to_vec();
        for len in 0..body.len() {
            let error = Responder::read_hello(&relay, &line_of(0x01, &body[..len])).unwrap_err();
            assert!(
                matches!(error, SessionError::HelloTooShort { .. }),
                "{len}: {error:?}"
            );
        }
        for at in 0..body.len() {
            let mut flipped = body.clone();
            flipped[at] ^= 0x20;
            let error = Responder::read_hello(&relay, &line_of(0x01, &flipped)).unwrap_err();
            assert_eq!(error, SessionError::HelloDidNotDecrypt, "byte {at}");
        }
        for len in [96, 97, 200, 224, 225, 767] {
            let error =
                Responder::read_hello(&relay, &line_of(0x01, &vec![0xa5; len])).unwrap_err();
            assert!(
                matches!(
                    error,
                    SessionError::HelloDidNotDecrypt | SessionError::PayloadTooLong { .. }
                ),
                "{len}: {error:?}"
            );
        }
    }

    #[test]
    fn truncated_and_garbage_replies_are_refused_without_panicking() {
        let (client, relay) = keys();
        let (_, hello) = Initiator::start(&client, relay.public_key(), b"").unwrap();
        let (welcome, _) = Responder::read_hello(&relay, &hello)
            .unwrap()
            .accept("bob")
            .unwrap();
        let body = decode_line(&welcome).unwrap().body().to_vec();
        let fresh = || {
            Initiator::start(&client, relay.public_key(), b"")
                .unwrap()
                .0
        };
        for len in 0..body.len() {
            let error = fresh().finish(&line_of(0x02, &body[..len])).unwrap_err();
            assert!(
                matches!(
                    error,
                    SessionError::WelcomeTooShort { .. } | SessionError::WelcomeDidNotVerify
                ),
                "{len}: {error:?}"
            );
        }
        // Line 2 answers one line 1 only: another handshake's reply fails.
        assert_eq!(
            fresh().finish(&welcome).unwrap_err(),
            SessionError::WelcomeDidNotVerify
        );
        assert_eq!(
            fresh().finish(&line_of(0x02, &[7; 700])).unwrap_err(),
            SessionError::WelcomeDidNotVerify
        );
        assert_eq!(
            fresh().finish(b"not base64!").unwrap_err(),
            SessionError::LineNotBase64
        );
    }

    #[test]
    fn payloads_and_names_are_bounded() {
        let (client, relay) = keys();
        let long = format!("\"{}\"", "x".repeat(MAX_PAYLOAD - 1));
        assert_eq!(
            Initiator::start(&client, relay.public_key(), long.as_bytes()).unwrap_err(),
            SessionError::PayloadTooLong {
                len: MAX_PAYLOAD + 1
            }
        );
        assert_eq!(
            Initiator::start(&client, relay.public_key(), b"not json").unwrap_err(),
            SessionError::PayloadNotJson
        );
        let most = format!("\"{}\"", "x".repeat(MAX_PAYLOAD - 2));
        let (_, hello) = Initiator::start(&client, relay.public_key(), most.as_bytes()).unwrap();
        let responder = Responder::read_hello(&relay, &hello).unwrap();
        assert_eq!(responder.payload(), most.as_bytes());
        assert_eq!(
            responder.accept(&"n".repeat(MAX_NAME + 1)).unwrap_err(),
            SessionError::NameTooLong { len: MAX_NAME + 1 }
        );
        let (initiator, hello) = Initiator::start(&client, relay.public_key(), b"").unwrap();
        let (welcome, _) = Responder::read_hello(&relay, &hello)
            .unwrap()
            .accept(&"n".repeat(MAX_NAME))
            .unwrap();
        assert_eq!(welcome.len(), MAX_LINE + 1);
        assert_eq!(initiator.finish(&welcome).unwrap().name.len(), MAX_NAME);
    }

    #[test]
    fn a_replayed_hello_gets_a_session_of_its_own() {
        // The same recorded line 1 read twice (a replayed hello) shows the
        // same client, but each acceptance makes a session of its own.
        let (client, relay) = keys();
        let (_, hello) = Initiator::start(&client, relay.public_key(), b"").unwrap();
        let (_, first) = Responder::read_hello(&relay, &hello)
            .unwrap()
            .accept("a")
            .unwrap();
        let (_, second) = Responder::read_hello(&relay, &hello)
            .unwrap()
            .accept("a")
            .unwrap();
        assert_ne!(first.keys.handshake_hash(), second.keys.handshake_hash());
        assert_ne!(first.keys.client_to_relay(), second.keys.client_to_relay());
    }
}
