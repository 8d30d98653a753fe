//! How a chat session reports itself: [`ChatError`], why a session ended in
//! failure (and the exit code that goes with it), and [`Status`], what is
//! worth telling the user along the way.
//!
//! Each `Display` is one line, with no trailing newline and no `chat:`
//! prefix (the binary adds that), naming the relay's address where it
//! helps and saying what to check. None of them prints a key or a message.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use std::path::PathBuf;

use eaxchat_proto::cipher::OpenError;
use eaxchat_proto::session::{Fingerprint, PublicKey, SessionError};

use super::handshake::HandshakeError;
use super::known_relays::{KnownRelaysError, PinSource, RelayPin};

/// What [`ChatError::Io`] says when printing failed.
pub(super) const WRITING_OUTPUT: &str = "writing output";

/// Why a session ended in failure.
#[derive(Debug)]
pub enum ChatError {
    /// The relay could not be reached at start.
    Unreachable {
        /// The address as given.
        addr: String,
        /// What connecting said.
        error: io::Error,
    },
    /// A frame from the relay did not open.
    BadFrame {
        /// The relay's address.
        addr: String,
        /// Why it did not open.
        error: OpenError,
    },
    /// A frame from the relay opened, but its nonce repeats one accepted
    /// before on that connection: a replay.
    ReplayedFrame {
        /// The relay's address.
        addr: String,
    },
    /// A session frame from the relay did not open: a replay, a gap, a
    /// reorder, or a frame not sealed by this session's relay.
    BadSessionFrame {
        /// The relay's address.
        addr: String,
        /// Why it did not open.
        error: SessionError,
    },
    /// A connection's handshake failed in a way retrying cannot mend (a
    /// refusal, a reply that does not verify), or the first one failed.
    Handshake {
        /// The relay's address.
        addr: String,
        /// The relay key the handshake was started for.
        pin: RelayPin,
        /// What went wrong (boxed: a refusal's text and fingerprints would
        /// make every `Result` of the session this large).
        error: Box<HandshakeError>,
    },
    /// Trust on first use: asking the relay for its key failed (it
    /// refused, closed, stayed silent, or answered with something else).
    KeyRequest {
        /// The relay's address.
        addr: String,
        /// What went wrong (boxed, as for [`ChatError::Handshake`]).
        error: Box<HandshakeError>,
    },
    /// The relay's key, trusted on first use and proved by the handshake,
    /// is not the one another `chat` pinned for it meanwhile.
    PinChanged(KnownRelaysError),
    /// The relay sent a line longer than `--max-frame`.
    LineTooLong {
        /// The relay's address.
        addr: String,
        /// The limit it passed.
        limit: usize,
    },
    /// The relay closed the connection and reconnecting was not asked for.
    RelayClosed {
        /// The relay's address.
        addr: String,
        /// What the socket said, when it was not a plain close.
        error: Option<io::Error>,
        /// Whether messages were sent on the connection and none received,
        /// which is what a relay with a different key looks like.
        sent_only: bool,
    },
    /// Some input was not sent (too long, or the relay was away).
    NotSent {
        /// How many messages.
        count: usize,
    },
    /// Reading the input, writing the output, or seeding the cipher failed.
    Io {
        /// Which of them.
        what: &'static str,
        /// The underlying error.
        error: io::Error,
    },
}

impl fmt::Display for ChatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatError::Unreachable { addr, error } => {
                write!(f, "cannot reach the relay at {addr}: {error}")
            }
            ChatError::BadFrame {
                addr,
                error: OpenError::BadTag,
            } => write!(
                f,
                "a frame from the relay at {addr} does not authenticate: \
                 wrong key, or the frame was tampered with"
            ),
            ChatError::BadFrame { addr, error } => write!(
                f,
                "the relay at {addr} sent a line that is not a frame ({error}): \
                 is it an eaxchat relay?"
            ),
            ChatError::ReplayedFrame { addr } => write!(
                f,
                "replayed frame from the relay at {addr}: a frame accepted before \
                 was sent again, so the connection is closed"
            ),
            ChatError::BadSessionFrame { addr, error } => write!(
                f,
                "a frame from the relay at {addr} was refused ({error}), \
                 so the connection is closed"
            ),
            ChatError::Handshake { addr, pin, error } => handshake_failed(f, addr, pin, error),
            ChatError::KeyRequest { addr, error } => key_request_failed(f, addr, error),
            ChatError::PinChanged(error) => error.fmt(f),
            ChatError::LineTooLong { addr, limit } => write!(
                f,
                "the relay at {addr} sent a line longer than {limit} bytes: \
                 give chat the relay's --max-frame"
            ),
            ChatError::RelayClosed {
                addr,
                error,
                sent_only,
            } => {
                write!(f, "the relay at {addr} closed the connection")?;
                if let Some(error) = error {
                    write!(f, " ({error})")?;
                }
                if *sent_only {
                    f.write_str(
                        "; it drops clients whose frames do not authenticate: is the key right?",
                    )?;
                }
                Ok(())
            }
            ChatError::NotSent { count: 1 } => f.write_str("1 message was not sent"),
            ChatError::NotSent { count } => write!(f, "{count} messages were not sent"),
            ChatError::Io { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for ChatError {}

/// [`ChatError::Handshake`]'s text: when the relay's key is not the pinned
/// one, both fingerprints and what to do.
fn handshake_failed(
    f: &mut fmt::Formatter<'_>,
    addr: &str,
    pin: &RelayPin,
    error: &HandshakeError,
) -> fmt::Result {
    let pinned = pin.key.fingerprint();
    let remedy = match &pin.source {
        PinSource::Given { .. } => "check the key given with --relay-key".to_owned(),
        PinSource::GivenAndKnown(path) | PinSource::Known(path) => format!(
            "the pin is left as it is; if the relay's key really changed, \
             remove its line from {}",
            path.display()
        ),
        PinSource::FirstUse { .. } => "nothing was pinned".to_owned(),
    };
    match error {
        HandshakeError::Session(SessionError::Refused {
            text,
            relay: Some(relay),
            ..
        }) if *relay != pinned => write!(
            f,
            "the relay at {addr} refused the session: it says its key is {relay}, \
             but the relay key {} is {pinned} (its key changed, or another relay answers \
             at this address); {remedy}; it said: \"{text}\"",
            pin.source
        ),
        HandshakeError::Session(SessionError::Refused { text, .. }) => {
            write!(f, "the relay at {addr} refused the session: \"{text}\"")
        }
        HandshakeError::Session(SessionError::WelcomeDidNotVerify) => write!(
            f,
            "the relay at {addr} did not prove it holds the relay key {} ({pinned}): \
             its key changed, or another relay answers at this address (its own \
             fingerprint is not known); {remedy}",
            pin.source
        ),
        HandshakeError::Session(error) => write!(
            f,
            "the relay at {addr} answered the handshake with something else ({error}): \
             does it speak sessions (relay --members with public keys)?"
        ),
        HandshakeError::Io(error) if error.kind() == io::ErrorKind::UnexpectedEof => write!(
            f,
            "the relay at {addr} closed the connection during the handshake: \
             does it speak sessions (a relay with --members of public keys)?"
        ),
        HandshakeError::Io(_) | HandshakeError::KeyRefused(_) => {
            write!(f, "the handshake with the relay at {addr} failed: {error}")
        }
    }
}

/// What to do when a relay will not say its key.
const GIVE_THE_KEY: &str = "give its key with --relay-key x25519:… \
    (`relay key show` prints it on the relay's machine)";

/// [`ChatError::KeyRequest`]'s text: what the relay did instead of sending
/// its key, and how to go on without asking it.
fn key_request_failed(
    f: &mut fmt::Formatter<'_>,
    addr: &str,
    error: &HandshakeError,
) -> fmt::Result {
    match error {
        HandshakeError::KeyRefused(text) => write!(
            f,
            "the relay at {addr} refused to send its key (trust on first use): \
             \"{text}\"; {GIVE_THE_KEY}"
        ),
        HandshakeError::Session(error) => write!(
            f,
            "the relay at {addr} answered the request for its key with something \
             else ({error}): does it speak sessions (relay --members with public \
             keys)? Nothing was pinned; {GIVE_THE_KEY}"
        ),
        HandshakeError::Io(error) if error.kind() == io::ErrorKind::UnexpectedEof => write!(
            f,
            "the relay at {addr} closed the connection when asked for its key \
             (trust on first use): does it speak sessions (relay --members with \
             public keys)? If it does, {GIVE_THE_KEY}"
        ),
        HandshakeError::Io(error) => write!(
            f,
            "asking the relay at {addr} for its key (trust on first use) failed: {error}"
        ),
    }
}

impl ChatError {
    /// The process exit code for a session that ended this way. Every
    /// session failure is 1, which leaves 2 for the `chat` binary's own
    /// usage and key errors.
    pub fn exit_code(&self) -> u8 {
        1
    }

    /// Whether this is printing failing because the reader went away
    /// (`chat | head`): the session is over, but nothing went wrong.
    pub(super) fn is_output_closed(&self) -> bool {
        matches!(
            self,
            ChatError::Io { what, error }
                if *what == WRITING_OUTPUT && error.kind() == io::ErrorKind::BrokenPipe
        )
    }
}

/// A connection's session, as the relay's handshake made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The fingerprint of the relay's key, which the handshake proved.
    pub relay: Fingerprint,
    /// The name the relay stamps on our messages, made safe to print.
    pub name: String,
}

impl fmt::Display for SessionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session with {} as {}", self.relay, self.name)
    }
}

/// Something worth telling the user that does not end the session.
#[derive(Debug)]
pub enum Status {
    /// Connected to the relay.
    Connected {
        /// The relay's address.
        addr: SocketAddr,
        /// The connection's session, with an identity.
        session: Option<SessionInfo>,
    },
    /// A message was not sent because the relay would refuse its length.
    TooLong {
        /// The message's length, name prefix included.
        len: usize,
        /// The longest the relay accepts.
        max_len: usize,
        /// The `--max-frame` that limit comes from.
        max_frame: usize,
    },
    /// The connection ended; a reconnect is scheduled.
    WentAway {
        /// What the socket said, when it was not a plain close.
        error: Option<io::Error>,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// A reconnect attempt failed; another is scheduled.
    StillAway {
        /// What connecting said.
        error: io::Error,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// Connected again; `sent` messages typed meanwhile went out.
    Reconnected {
        /// The relay's address.
        addr: SocketAddr,
        /// How many messages were waiting.
        sent: usize,
        /// The new connection's session, with an identity.
        session: Option<SessionInfo>,
    },
    /// Trust on first use: the relay, with no pin and no `--relay-key`,
    /// sent this key when asked; the handshake is made for it, and it is
    /// pinned once that proves it.
    TrustingNew {
        /// The relay, as given to `--connect`.
        relay: String,
        /// The key it sent, not yet proved.
        key: PublicKey,
    },
    /// The relay key given with `--relay-key`, or sent when asked, was
    /// proved by a handshake and recorded in the known relays file.
    Pinned {
        /// The relay, as given to `--connect`.
        relay: String,
        /// The fingerprint of its key.
        fingerprint: Fingerprint,
        /// The known relays file.
        path: PathBuf,
    },
    /// The relay key could not be recorded; the session goes on.
    NotPinned(KnownRelaysError),
    /// A message typed while reconnecting was dropped: too much was waiting.
    BacklogFull,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Connected {
                addr,
                session: None,
            } => write!(f, "connected to {addr}"),
            Status::Connected {
                addr,
                session: Some(session),
            } => write!(f, "connected to {addr}, {session}"),
            Status::TooLong {
                len,
                max_len,
                max_frame,
            } => write!(
                f,
                "message not sent: {len} bytes is more than the {max_len} the relay \
                 accepts (--max-frame {max_frame})"
            ),
            Status::WentAway { error, retry_in } => {
                f.write_str("relay went away")?;
                if let Some(error) = error {
                    write!(f, " ({error})")?;
                }
                write!(f, ", reconnecting in {}", seconds(*retry_in))
            }
            Status::StillAway { error, retry_in } => write!(
                f,
                "relay still unreachable ({error}), reconnecting in {}",
                seconds(*retry_in)
            ),
            Status::Reconnected {
                addr,
                sent,
                session,
            } => {
                write!(f, "reconnected to {addr}")?;
                if let Some(session) = session {
                    write!(f, ", {session}")?;
                }
                if *sent > 0 {
                    write!(f, "; sent {sent} queued message(s)")?;
                }
                Ok(())
            }
            Status::TrustingNew { relay, key } => write!(
                f,
                "the relay at {relay} has key {} ({key}); trusting it on first use",
                key.fingerprint()
            ),
            Status::Pinned {
                relay,
                fingerprint,
                path,
            } => write!(
                f,
                "pinned the relay key {fingerprint} for {relay} in {}",
                path.display()
            ),
            Status::NotPinned(error) => write!(f, "warning: the relay key was not pinned: {error}"),
            Status::BacklogFull => f.write_str(
                "message not sent: too much is already waiting for the relay to come back",
            ),
        }
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_went_wrong_and_where() {
        let addr = "relay.example:8080".to_owned();
        let cases = [
            (
                ChatError::BadFrame {
                    addr: addr.clone(),
                    error: OpenError::BadTag,
                },
                "wrong key, or the frame was tampered with",
            ),
            (
                ChatError::Unreachable {
                    addr: addr.clone(),
                    error: io::Error::from(io::ErrorKind::ConnectionRefused),
                },
                "relay.example:8080",
            ),
            (
                ChatError::ReplayedFrame { addr: addr.clone() },
                "replayed frame from the relay at relay.example:8080",
            ),
            (
                ChatError::RelayClosed {
                    addr,
                    error: None,
                    sent_only: true,
                },
                "is the key right?",
            ),
        ];
        for (error, want) in cases {
            let text = error.to_string();
            assert!(text.contains(want), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn a_handshake_with_another_relay_key_names_both_fingerprints_and_the_file() {
        use eaxchat_proto::session::PublicKey;
        let (pinned, relay) = (
            PublicKey::from_bytes([1; 32]),
            PublicKey::from_bytes([2; 32]),
        );
        let pin = RelayPin {
            key: pinned,
            source: PinSource::Known(PathBuf::from("/home/a/.config/eaxchat/known_relays")),
        };
        let failed = |error| ChatError::Handshake {
            addr: "relay.example:8080".to_owned(),
            pin: pin.clone(),
            error: Box::new(HandshakeError::Session(error)),
        };
        let refused = failed(SessionError::Refused {
            text: "handshake message 1 did not decrypt".to_owned(),
            pinned: pinned.fingerprint(),
            relay: Some(relay.fingerprint()),
        })
        .to_string();
        for want in [
            pinned.fingerprint().to_string(),
            relay.fingerprint().to_string(),
            "remove its line from /home/a/.config/eaxchat/known_relays".to_owned(),
            "did not decrypt".to_owned(),
        ] {
            assert!(refused.contains(&want), "{want}: {refused}");
        }
        let unverified = failed(SessionError::WelcomeDidNotVerify).to_string();
        assert!(
            unverified.contains(&pinned.fingerprint().to_string()),
            "{unverified}"
        );
        let unknown = failed(SessionError::Refused {
            text: "unknown key".to_owned(),
            pinned: pinned.fingerprint(),
            relay: Some(pinned.fingerprint()),
        })
        .to_string();
        assert_eq!(
            unknown,
            "the relay at relay.example:8080 refused the session: \"unknown key\""
        );
        for text in [refused, unverified, unknown] {
            assert!(!text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn a_failed_key_request_says_what_came_and_how_to_go_on() {
        use eaxchat_proto::session::Kind;
        let failed = |error| {
            ChatError::KeyRequest {
                addr: "relay.example:8080".to_owned(),
                error: Box::new(error),
            }
            .to_string()
        };
        let cases = [
            (
                HandshakeError::KeyRefused("no key requests here".to_owned()),
                "refused to send its key",
            ),
            (
                HandshakeError::Session(SessionError::LineNotBase64),
                "answered the request for its key with something else",
            ),
            (
                HandshakeError::Session(SessionError::UnexpectedKind {
                    expected: Kind::RelayKey,
                    got: Kind::Welcome,
                }),
                "kind 0x02",
            ),
            (
                HandshakeError::Io(io::ErrorKind::UnexpectedEof.into()),
                "closed the connection when asked for its key",
            ),
        ];
        for (error, want) in cases {
            let text = failed(error);
            assert!(text.contains(want), "{want}: {text}");
            assert!(text.contains("relay.example:8080"), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
        let timed_out = failed(HandshakeError::Io(io::ErrorKind::TimedOut.into()));
        assert!(timed_out.contains("for its key"), "{timed_out}");
    }

    #[test]
    fn trusting_a_new_relay_names_its_fingerprint_and_key() {
        let key = eaxchat_proto::session::PublicKey::from_bytes([4; 32]);
        let text = Status::TrustingNew {
            relay: "relay.example:8080".to_owned(),
            key,
        }
        .to_string();
        assert_eq!(
            text,
            format!(
                "the relay at relay.example:8080 has key {} ({key}); trusting it on first use",
                key.fingerprint()
            )
        );
    }
}
