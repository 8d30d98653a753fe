//! What seals and opens the current connection's frames: the shared key's
//! [`Cipher`] (the same for every connection), or a Noise session made by
//! that connection's handshake ([`Keys::handshake`]).
//!
//! With a shared or static member key, a frame's nonce is random, so the
//! link's nonce window refuses a replay; with a session the nonce is a
//! counter and the session's opener refuses a replay, a gap or a reorder
//! itself. A session belongs to one connection: it is dropped when the
//! connection ends ([`Keys::end_link`]) and the next connection makes its
//! own, so nothing is sealed for a connection that has none.
//!
//! With no relay key yet (trust on first use), the first connection asks
//! the relay for it before its hello, and every later connection of the
//! run uses that key: a relay that changes its key mid-run is refused like
//! one that differs from a pin.

use bytes::BytesMut;

use super::error::SessionInfo;
use super::handshake::{self, HANDSHAKE_TIMEOUT, HandshakeError};
use super::known_relays::{PinSource, RelayPin, RelayTrust};
use super::link::Link;
use super::{ChatError, Credentials, Status};
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::sanitize::sanitize;
use eaxchat_proto::session::{Session, SessionError, StaticSecret};

/// The current connection's sealing and opening.
pub(super) enum Keys<'a> {
    /// One key for every connection: a shared key, or a static member key.
    Shared(Cipher),
    /// A member identity: one session per connection.
    Session {
        identity: &'a StaticSecret,
        relay: RelayTrust,
        current: Option<Session>,
    },
}

impl<'a> Keys<'a> {
    /// The keys `credentials` give.
    pub(super) fn new(credentials: &'a Credentials) -> Result<Keys<'a>, ChatError> {
        match credentials {
            Credentials::Key(key) => {
                Cipher::new(key)
                    .map(Keys::Shared)
                    .map_err(|error| ChatError::Io {
                        what: "random seed",
                        error,
                    })
            }
            Credentials::Identity { secret, relay } => Ok(Keys::Session {
                identity: secret,
                relay: relay.clone(),
                current: None,
            }),
        }
    }

    /// Whether connections start with a handshake.
    pub(super) fn is_session(&self) -> bool {
        matches!(self, Keys::Session { .. })
    }

    /// The relay key sessions are started for, once there is one.
    pub(super) fn pin(&self) -> Option<&RelayPin> {
        match self {
            Keys::Session {
                relay: RelayTrust::Pinned(pin),
                ..
            } => Some(pin),
            _ => None,
        }
    }

    /// Notes that the pin is now recorded, so it is not recorded again.
    pub(super) fn set_pin(&mut self, recorded: RelayPin) {
        if let Keys::Session { relay, .. } = self {
            *relay = RelayTrust::Pinned(recorded);
        }
    }

    /// Runs the handshake on a new connection to `addr`, if these keys
    /// need one, and makes its session current; says who the relay took
    /// us for. With no relay key yet it first asks the relay for one on
    /// the same connection and reports it ([`Status::TrustingNew`])
    /// before making the hello for it.
    pub(super) fn handshake(
        &mut self,
        stream: &mut std::net::TcpStream,
        addr: &str,
        report: &mut dyn FnMut(Status),
    ) -> Result<Option<SessionInfo>, HandshakeError> {
        let Keys::Session {
            identity,
            relay,
            current,
        } = self
        else {
            return Ok(None);
        };
        *current = None;
        if let RelayTrust::FirstUse { record_in } = relay {
            let key = handshake::request_key(stream, HANDSHAKE_TIMEOUT)?;
            report(Status::TrustingNew {
                relay: addr.to_owned(),
                key,
            });
            *relay = RelayTrust::Pinned(RelayPin {
                key,
                source: PinSource::FirstUse {
                    record_in: record_in.clone(),
                },
            });
        }
        let RelayTrust::Pinned(pin) = relay else {
            // Just made a pin above; kept total all the same.
            return Err(HandshakeError::Session(SessionError::Noise(
                "no relay key to start a session for".into(),
            )));
        };
        let established = handshake::handshake(stream, identity, &pin.key, HANDSHAKE_TIMEOUT)?;
        *current = Some(established.session);
        Ok(Some(SessionInfo {
            relay: pin.key.fingerprint(),
            // The name comes from the relay: shown only once made safe.
            name: sanitize(established.name.as_bytes()),
        }))
    }

    /// The error that ends chat after a failed handshake with `addr`:
    /// with no relay key yet, it was the key request that failed.
    pub(super) fn handshake_failed(&self, addr: &str, error: HandshakeError) -> ChatError {
        match self {
            Keys::Session {
                relay: RelayTrust::Pinned(pin),
                ..
            } => ChatError::Handshake {
                addr: addr.to_owned(),
                pin: pin.clone(),
                error: Box::new(error),
            },
            Keys::Session {
                relay: RelayTrust::FirstUse { .. },
                ..
            } => ChatError::KeyRequest {
                addr: addr.to_owned(),
                error: Box::new(error),
            },
            // A shared key never shakes hands; kept total all the same.
            Keys::Shared(_) => ChatError::Io {
                what: "the handshake",
                error: std::io::Error::other(error.to_string()),
            },
        }
    }

    /// The connection ended: its session with it.
    pub(super) fn end_link(&mut self) {
        if let Keys::Session { current, .. } = self {
            *current = None;
        }
    }

    /// Seals `message` for the current connection, appending its line to
    /// `out`.
    pub(super) fn seal_into(
        &mut self,
        message: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), SessionError> {
        match self {
            Keys::Shared(cipher) => {
                cipher.seal_into(message, out);
                Ok(())
            }
            Keys::Session {
                current: Some(session),
                ..
            } => session.seal_into(message, out),
            // Only reached if a connection were used before its handshake.
            Keys::Session { current: None, .. } => {
                Err(SessionError::Noise("no session on this connection".into()))
            }
        }
    }

    /// Opens one line from the relay on `link` and returns its plaintext;
    /// refuses a frame that does not open, and a replay. A frame sealed
    /// here (a shared key's: the relay, or anyone on the path, sent ours
    /// back) is dropped: `None`. A session needs no such check: each
    /// direction has its own key, so a reflected frame does not open.
    pub(super) fn open<'k>(
        &'k mut self,
        line: &[u8],
        link: &mut Link,
        addr: &str,
    ) -> Result<Option<&'k mut [u8]>, ChatError> {
        let plaintext = match self {
            Keys::Shared(cipher) => {
                let opened = cipher
                    .open_frame(line)
                    .map_err(|error| ChatError::BadFrame {
                        addr: addr.to_owned(),
                        error,
                    })?;
                if cipher.is_own_nonce(&opened.nonce) {
                    return Ok(None);
                }
                if !link.accept_nonce(&opened.nonce) {
                    return Err(ChatError::ReplayedFrame {
                        addr: addr.to_owned(),
                    });
                }
                cipher.plaintext(&opened)
            }
            Keys::Session { current, .. } => {
                let session = current.as_mut().ok_or_else(|| ChatError::BadSessionFrame {
                    addr: addr.to_owned(),
                    error: SessionError::Noise("no session on this connection".into()),
                })?;
                session
                    .open(line)
                    .map_err(|error| ChatError::BadSessionFrame {
                        addr: addr.to_owned(),
                        error,
                    })?
            }
        };
        link.mark_received();
        Ok(Some(plaintext))
    }
}
