//! One connection's handshake, run by the session's thread on a new socket
//! before its reader thread starts: line 1 out, then the relay's one line
//! back (line 2, or a refusal), within [`HANDSHAKE_TIMEOUT`] and at most
//! [`MAX_LINE`] bytes. The Noise side is `eaxchat_proto::session`'s; this
//! module only moves its lines.
//!
//! Trust on first use adds one exchange before it on the same socket
//! ([`request_key`]): the key request (kind 0x04) out, the relay's key
//! (kind 0x05) back, under the same bounds. That key is unauthenticated;
//! only the handshake made for it proves it, and pinning it is the
//! session's business, after the welcome.
//!
//! A reply is read a byte at a time, so nothing after its `\n` (the
//! relay's first frames) is taken from the socket: the reader thread then
//! starts exactly at the first frame. A reply is at most about a thousand
//! bytes, once or twice per connection.
//!
//! Errors come in two kinds ([`HandshakeError`]): the socket's (closed,
//! timed out, reset), which a reconnecting session retries like a failed
//! dial, and the protocol's (a refusal, a reply that does not verify, a
//! line that is not a handshake line), which end the session: retrying
//! would only meet the same relay again.

use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use eaxchat_proto::sanitize::sanitize;
use eaxchat_proto::session::{
    Established, Initiator, Kind, MAX_LINE, PublicKey, SessionError, StaticSecret, decode_line,
    key_request_line,
};

/// How long the relay has to answer line 1: the relay's own default
/// `--first-frame-timeout`.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    /// The socket failed, closed, or stayed silent past the deadline.
    Io(io::Error),
    /// The relay refused us, or its reply is not one this handshake takes.
    Session(SessionError),
    /// The relay refused the key request: its text, made safe to print
    /// (unauthenticated, like every refusal).
    KeyRefused(String),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Io(error) => error.fmt(f),
            HandshakeError::Session(error) => error.fmt(f),
            HandshakeError::KeyRefused(text) => {
                write!(f, "the relay refused the key request: \"{text}\"")
            }
        }
    }
}

/// Runs the handshake on `stream` as `identity`, with the relay whose key
/// is `relay`, allowing `timeout` for the reply. Leaves the socket with no
/// read timeout, as the reader thread expects it.
pub(super) fn handshake(
    stream: &mut TcpStream,
    identity: &StaticSecret,
    relay: &PublicKey,
    timeout: Duration,
) -> Result<Established, HandshakeError> {
    handshake_with(stream, identity, relay, b"", timeout)
}

/// [`handshake`] with `payload` in line 1 (a device invite request).
pub(crate) fn handshake_with(
    stream: &mut TcpStream,
    identity: &StaticSecret,
    relay: &PublicKey,
    payload: &[u8],
    timeout: Duration,
) -> Result<Established, HandshakeError> {
    let (initiator, hello) =
        Initiator::start(identity, relay, payload).map_err(HandshakeError::Session)?;
    stream.write_all(&hello).map_err(HandshakeError::Io)?;
    let reply = read_reply(stream, timeout, "the handshake");
    stream.set_read_timeout(None).map_err(HandshakeError::Io)?;
    initiator.finish(&reply?).map_err(HandshakeError::Session)
}

/// An invite join on `stream` as the new device `identity`: the join line
/// (kind 0x03) out, the welcome or a refusal back within `timeout`.
pub(crate) fn join_handshake(
    stream: &mut TcpStream,
    identity: &StaticSecret,
    invite: &eaxchat_proto::invite::Invite,
    timeout: Duration,
) -> Result<Established, HandshakeError> {
    let (initiator, line) = invite.join(identity).map_err(HandshakeError::Session)?;
    stream.write_all(&line).map_err(HandshakeError::Io)?;
    let reply = read_reply(stream, timeout, "the invite join");
    stream.set_read_timeout(None).map_err(HandshakeError::Io)?;
    initiator.finish(&reply?).map_err(HandshakeError::Session)
}

/// A code join's exchange on `stream`: the code start (kind 0x06) out, the
/// relay's SPAKE2 reply back within `timeout`; gives the invite the join
/// that follows uses (its secret is the exchange's key). `addr` is the
/// relay's address as dialled.
pub(crate) fn code_exchange(
    stream: &mut TcpStream,
    code: &eaxchat_proto::invite::code::InviteCode,
    addr: &str,
    timeout: Duration,
) -> Result<eaxchat_proto::invite::Invite, HandshakeError> {
    let (pake, line) =
        eaxchat_proto::invite::code::CodeJoin::start(code).map_err(HandshakeError::Session)?;
    stream.write_all(&line).map_err(HandshakeError::Io)?;
    let reply = read_reply(stream, timeout, "the code exchange");
    stream.set_read_timeout(None).map_err(HandshakeError::Io)?;
    pake.finish(&reply?, addr).map_err(HandshakeError::Session)
}

/// Trust on first use: sends the key request on `stream` and reads the
/// relay's answer, allowing `timeout`; returns the key it sent, which
/// nothing has proved yet. A refusal, or any line but the relay's key, is
/// an error. Leaves the socket with no read timeout, ready for the hello.
pub(super) fn request_key(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<PublicKey, HandshakeError> {
    stream
        .write_all(&key_request_line())
        .map_err(HandshakeError::Io)?;
    let reply = read_reply(stream, timeout, "the key request");
    stream.set_read_timeout(None).map_err(HandshakeError::Io)?;
    let reply = reply?;
    let line = decode_line(&reply).map_err(HandshakeError::Session)?;
    match line.kind() {
        Kind::RelayKey => PublicKey::from_slice(line.body()).map_err(HandshakeError::Session),
        Kind::Refusal => Err(HandshakeError::KeyRefused(sanitize(line.body()))),
        got => Err(HandshakeError::Session(SessionError::UnexpectedKind {
            expected: Kind::RelayKey,
            got,
        })),
    }
}

/// The relay's one line answering `what`, without its `\n`, read a byte
/// at a time within `timeout`.
fn read_reply(
    stream: &mut TcpStream,
    timeout: Duration,
    what: &str,
) -> Result<Vec<u8>, HandshakeError> {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::with_capacity(128);
    let mut byte = [0u8; 1];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(timeout, what));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(HandshakeError::Io)?;
        match stream.read(&mut byte) {
            Ok(0) => {
                return Err(HandshakeError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the relay closed the connection during {what}"),
                )));
            }
            Ok(_) if byte[0] == b'\n' => return Ok(line),
            Ok(_) => {
                // One byte over the bound is enough to refuse the line.
                if line.len() > MAX_LINE {
                    return Err(HandshakeError::Session(SessionError::LineTooLong {
                        len: line.len(),
                    }));
                }
                line.push(byte[0]);
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out(timeout, what));
            }
            Err(error) => return Err(HandshakeError::Io(error)),
        }
    }
}

fn timed_out(timeout: Duration, what: &str) -> HandshakeError {
    HandshakeError::Io(io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "the relay did not answer {what} within {:.1}s",
            timeout.as_secs_f64()
        ),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use eaxchat_proto::session::Responder;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (relay, _) = listener.accept().unwrap();
        (client, relay)
    }

    fn read_line(stream: &mut TcpStream) -> Vec<u8> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while stream.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        line
    }

    #[test]
    fn a_handshake_leaves_the_relays_next_bytes_in_the_socket() {
        let (mut client, mut relay) = pair();
        let (me, them) = (
            StaticSecret::generate().unwrap(),
            StaticSecret::generate().unwrap(),
        );
        let relay_key = *them.public_key();
        let relay_side = std::thread::spawn(move || {
            let hello = read_line(&mut relay);
            let (welcome, _) = Responder::read_hello(&them, &hello)
                .unwrap()
                .accept("alice")
                .unwrap();
            relay.write_all(&welcome).unwrap();
            relay.write_all(b"next\n").unwrap();
            relay
        });
        let done = handshake(&mut client, &me, &relay_key, Duration::from_secs(5)).unwrap();
        assert_eq!(done.name, "alice");
        assert_eq!(read_line(&mut client), b"next");
        drop(relay_side.join().unwrap());
    }

    #[test]
    fn silence_times_out_and_a_close_is_an_io_error() {
        let (mut client, relay) = pair();
        let (me, them) = (
            StaticSecret::generate().unwrap(),
            StaticSecret::generate().unwrap(),
        );
        let started = Instant::now();
        let error = handshake(
            &mut client,
            &me,
            them.public_key(),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(&error, HandshakeError::Io(e) if e.kind() == io::ErrorKind::TimedOut),
            "{error:?}"
        );
        drop(relay);
        let (mut client, relay) = pair();
        drop(relay);
        let error =
            handshake(&mut client, &me, them.public_key(), Duration::from_secs(5)).unwrap_err();
        assert!(matches!(error, HandshakeError::Io(_)), "{error:?}");
    }

    #[test]
    fn an_endless_reply_is_refused_at_the_bound() {
        let (mut client, mut relay) = pair();
        let (me, them) = (
            StaticSecret::generate().unwrap(),
            StaticSecret::generate().unwrap(),
        );
        relay.write_all(&[b'A'; MAX_LINE + 10]).unwrap();
        let error =
            handshake(&mut client, &me, them.public_key(), Duration::from_secs(5)).unwrap_err();
        assert!(
            matches!(
                error,
                HandshakeError::Session(SessionError::LineTooLong { .. })
            ),
            "{error:?}"
        );
    }

    #[test]
    fn a_key_request_gets_the_key_and_the_hello_follows_on_the_same_socket() {
        let (mut client, mut relay) = pair();
        relay
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (me, them) = (
            StaticSecret::generate().unwrap(),
            StaticSecret::generate().unwrap(),
        );
        let relay_key = *them.public_key();
        let relay_side = std::thread::spawn(move || {
            assert_eq!(read_line(&mut relay), b"BA==", "the key request");
            relay
                .write_all(&eaxchat_proto::session::relay_key_line(them.public_key()))
                .unwrap();
            let hello = read_line(&mut relay);
            let (welcome, _) = Responder::read_hello(&them, &hello)
                .unwrap()
                .accept("alice")
                .unwrap();
            relay.write_all(&welcome).unwrap();
            relay
        });
        let key = request_key(&mut client, Duration::from_secs(5)).unwrap();
        assert_eq!(key, relay_key);
        let done = handshake(&mut client, &me, &key, Duration::from_secs(5)).unwrap();
        assert_eq!(done.name, "alice");
        drop(relay_side.join().unwrap());
    }

    #[test]
    fn a_key_request_answered_with_anything_but_a_key_is_refused() {
        use eaxchat_proto::session::{encode_line, refusal_line};
        let welcome = encode_line(Kind::Welcome, &[0; 48]).unwrap();
        let short_key = b"BQEC\n".to_vec();
        /// An answer, and whether an error is the one it must give.
        type Case<'a> = (&'a [u8], fn(&HandshakeError) -> bool);
        let cases: [Case; 5] = [
            (
                &refusal_line("ask \x1b[31mnicely"),
                |e| matches!(e, HandshakeError::KeyRefused(text) if !text.contains('\x1b')),
            ),
            (b"hello there\n", |e| {
                matches!(e, HandshakeError::Session(SessionError::LineNotBase64))
            }),
            (&welcome, |e| {
                matches!(
                    e,
                    HandshakeError::Session(SessionError::UnexpectedKind {
                        got: Kind::Welcome,
                        ..
                    })
                )
            }),
            (&short_key, |e| {
                matches!(e, HandshakeError::Session(SessionError::BodyLength { .. }))
            }),
            (
                b"",
                |e| matches!(e, HandshakeError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof),
            ),
        ];
        for (answer, want) in cases {
            let (mut client, mut relay) = pair();
            relay.write_all(answer).unwrap();
            drop(relay);
            let error = request_key(&mut client, Duration::from_secs(5)).unwrap_err();
            assert!(want(&error), "{answer:?}: {error:?}");
        }
        let (mut client, _relay) = pair();
        let error = request_key(&mut client, Duration::from_millis(200)).unwrap_err();
        assert!(
            matches!(&error, HandshakeError::Io(e) if e.kind() == io::ErrorKind::TimedOut),
            "{error:?}"
        );
        assert!(error.to_string().contains("the key request"), "{error}");
    }
}
