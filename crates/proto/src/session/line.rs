//! A handshake message as one line: padded standard base64 of
//! `kind(1) ‖ body`, at most [`MAX_LINE`] bytes before its `\n`.
//!
//! | kind | direction      | body                                          |
//! |------|----------------|-----------------------------------------------|
//! | 0x01 | client → relay | Noise IK message 1                            |
//! | 0x02 | relay → client | Noise IK message 2 (payload: the member name) |
//! | 0x03 | client → relay | invite join: id(8) ‖ Noise IKpsk1 message 1    |
//! | 0x04 | client → relay | key request: empty (trust on first use)       |
//! | 0x05 | relay → client | the relay's static public key, 32 bytes       |
//! | 0x06 | client → relay | code join: nameplate(2) ‖ SPAKE2 message(33)  |
//! | 0x07 | relay → client | SPAKE2 message(33) ‖ relay key(32) ‖ id(8)    |
//! | 0x7f | relay → client | refusal: UTF-8 text, at most [`MAX_REFUSAL`]  |
//!
//! The key request and its answer are plain lines, outside Noise: a client
//! with no pin for a relay asks once, before its hello, and pins what
//! comes back only after the handshake made for that key succeeds.
//!
//! This module owns the bounds and the encoding in both directions; it
//! decodes into a fixed buffer on the stack, so a line costs no allocation
//! and at most [`MAX_LINE`] bytes of work before anything is refused. It
//! knows nothing of Noise: what a body means is the handshake's business.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::error::SessionError;
use super::identity::{KEY_LEN, PublicKey};
use super::{MAX_BODY, MAX_LINE, MAX_REFUSAL};

/// What a handshake line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// 0x01, client → relay: Noise IK message 1.
    Hello,
    /// 0x02, relay → client: Noise IK message 2, the member name inside.
    Welcome,
    /// 0x03, client → relay: an invite join, `id(8) ‖ Noise IKpsk1
    /// message 1` ([`crate::invite`]).
    InviteJoin,
    /// 0x04, client → relay: a key request, empty: "send me your key".
    KeyRequest,
    /// 0x05, relay → client: the relay's static public key (32 bytes),
    /// unauthenticated.
    RelayKey,
    /// 0x06, client → relay: a code join's start, `nameplate(2) ‖ SPAKE2
    /// message A(33)` ([`crate::invite::code`]).
    CodeStart,
    /// 0x07, relay → client: a code join's reply, `SPAKE2 message B(33) ‖
    /// relay key(32) ‖ invite id(8)`.
    CodeReply,
    /// 0x7f, relay → client: a plaintext refusal; the relay then closes.
    Refusal,
}

impl Kind {
    /// The kind whose byte this is, if any.
    pub fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            0x01 => Some(Kind::Hello),
            0x02 => Some(Kind::Welcome),
            0x03 => Some(Kind::InviteJoin),
            0x04 => Some(Kind::KeyRequest),
            0x05 => Some(Kind::RelayKey),
            0x06 => Some(Kind::CodeStart),
            0x07 => Some(Kind::CodeReply),
            0x7f => Some(Kind::Refusal),
            _ => None,
        }
    }

    /// The kind's byte on the wire.
    pub fn byte(self) -> u8 {
        match self {
            Kind::Hello => 0x01,
            Kind::Welcome => 0x02,
            Kind::InviteJoin => 0x03,
            Kind::KeyRequest => 0x04,
            Kind::RelayKey => 0x05,
            Kind::CodeStart => 0x06,
            Kind::CodeReply => 0x07,
            Kind::Refusal => 0x7f,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Kind::Hello => "a handshake hello",
            Kind::Welcome => "a handshake reply",
            Kind::InviteJoin => "an invite join",
            Kind::KeyRequest => "a key request",
            Kind::RelayKey => "the relay's key",
            Kind::CodeStart => "an invite code's start",
            Kind::CodeReply => "an invite code's reply",
            Kind::Refusal => "a refusal",
        };
        write!(f, "{name} (kind 0x{:02x})", self.byte())
    }
}

/// One decoded handshake line: its kind and body, held on the stack.
#[derive(Clone)]
pub struct HandshakeLine {
    kind: Kind,
    /// The decoded line: the kind byte, then the body.
    raw: [u8; MAX_BODY + 1],
    len: usize,
}

impl HandshakeLine {
    /// What the line carries.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Everything after the kind byte.
    pub fn body(&self) -> &[u8] {
        self.raw.get(1..self.len).unwrap_or_default()
    }
}

impl fmt::Debug for HandshakeLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeLine")
            .field("kind", &self.kind)
            .field("body_len", &self.body().len())
            .finish()
    }
}

/// The kind of a handshake line, read from its first four characters
/// only (no other work): `None` when they are not base64 of a known kind.
pub fn peek_kind(line: &[u8]) -> Option<Kind> {
    let mut raw = [0; 3];
    STANDARD.decode_slice(line.get(..4)?, &mut raw).ok()?;
    Kind::from_byte(raw[0])
}

/// Decodes one handshake line, given without its `\n` (a trailing `\n` or
/// `\r\n` is dropped). Refuses a line over [`MAX_LINE`] bytes, an empty
/// line, anything but canonical padded base64, an unknown kind, a
/// refusal text over [`MAX_REFUSAL`] bytes, a key request that is not
/// empty and a relay key that is not 32 bytes.
pub fn decode_line(line: &[u8]) -> Result<HandshakeLine, SessionError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LINE {
        return Err(SessionError::LineTooLong { len: line.len() });
    }
    if line.is_empty() {
        return Err(SessionError::EmptyLine);
    }
    // Padded base64 is a multiple of four long; then MAX_LINE / 4 * 3
    // bytes always hold the result.
    if !line.len().is_multiple_of(4) {
        return Err(SessionError::LineNotBase64);
    }
    let mut raw = [0; MAX_BODY + 1];
    let len = STANDARD
        .decode_slice(line, &mut raw)
        .map_err(|_| SessionError::LineNotBase64)?;
    let (&byte, body) = raw[..len].split_first().ok_or(SessionError::EmptyLine)?;
    let kind = Kind::from_byte(byte).ok_or(SessionError::UnknownKind(byte))?;
    if kind == Kind::Refusal && body.len() > MAX_REFUSAL {
        return Err(SessionError::RefusalTooLong { len: body.len() });
    }
    check_fixed_body(kind, body.len())?;
    Ok(HandshakeLine { kind, raw, len })
}

/// The body length a kind must have, for the kinds that have one.
fn fixed_body_len(kind: Kind) -> Option<usize> {
    match kind {
        Kind::KeyRequest => Some(0),
        Kind::RelayKey => Some(KEY_LEN),
        Kind::CodeStart => Some(crate::invite::code::CODE_START_LEN),
        Kind::CodeReply => Some(crate::invite::code::CODE_REPLY_LEN),
        _ => None,
    }
}

/// Refuses a key request with a body, and a relay key of another length.
fn check_fixed_body(kind: Kind, len: usize) -> Result<(), SessionError> {
    match fixed_body_len(kind) {
        Some(want) if want != len => Err(SessionError::BodyLength { kind, len }),
        _ => Ok(()),
    }
}

/// Encodes `kind ‖ body` as a line, `\n` included. Refuses a line that
/// would be over [`MAX_LINE`] bytes, a refusal text over [`MAX_REFUSAL`],
/// and a key request or relay key of the wrong length.
pub fn encode_line(kind: Kind, body: &[u8]) -> Result<Vec<u8>, SessionError> {
    if kind == Kind::Refusal && body.len() > MAX_REFUSAL {
        return Err(SessionError::RefusalTooLong { len: body.len() });
    }
    check_fixed_body(kind, body.len())?;
    let len = (1 + body.len()).div_ceil(3) * 4;
    if len > MAX_LINE {
        return Err(SessionError::LineTooLong { len });
    }
    let mut raw = Vec::with_capacity(1 + body.len());
    raw.push(kind.byte());
    raw.extend_from_slice(body);
    let mut line = STANDARD.encode(raw).into_bytes();
    line.push(b'\n');
    Ok(line)
}

/// A refusal line saying `text`, cut at a character boundary to
/// [`MAX_REFUSAL`] bytes if longer: it always fits, so it never fails.
pub fn refusal_line(text: &str) -> Vec<u8> {
    let mut end = text.len().min(MAX_REFUSAL);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut raw = Vec::with_capacity(1 + end);
    raw.push(Kind::Refusal.byte());
    raw.extend_from_slice(&text.as_bytes()[..end]);
    let mut line = STANDARD.encode(raw).into_bytes();
    line.push(b'\n');
    line
}

/// The key request line (kind 0x04, empty), `\n` included: what a client
/// with no pin for a relay sends before its hello.
pub fn key_request_line() -> Vec<u8> {
    b"BA==\n".to_vec()
}

/// The relay's answer to a key request (kind 0x05): its static public
/// key, `\n` included. It fits, so it never fails.
pub fn relay_key_line(relay: &PublicKey) -> Vec<u8> {
    let mut raw = [0; 1 + KEY_LEN];
    raw[0] = Kind::RelayKey.byte();
    raw[1..].copy_from_slice(relay.as_bytes());
    let mut line = STANDARD.encode(raw).into_bytes();
    line.push(b'\n');
    line
}

/// Reads the relay's answer to a key request (one line, its `\n`
/// optional): its public key. A refusal, or any other kind of line, is an
/// error; the key is unauthenticated until a handshake made for it
/// succeeds.
pub fn read_relay_key(line: &[u8]) -> Result<PublicKey, SessionError> {
    let line = decode_line(line)?;
    match line.kind() {
        Kind::RelayKey => PublicKey::from_slice(line.body()),
        got => Err(SessionError::UnexpectedKind {
            expected: Kind::RelayKey,
            got,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_up_to_the_limit() {
        for (kind, len) in [
            (Kind::Hello, 0),
            (Kind::Welcome, 90),
            (Kind::InviteJoin, MAX_BODY),
            (Kind::KeyRequest, 0),
            (Kind::RelayKey, 32),
            (Kind::Refusal, MAX_REFUSAL),
        ] {
            let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let line = encode_line(kind, &body).unwrap();
            assert_eq!(line.last(), Some(&b'\n'));
            assert!(line.len() - 1 <= MAX_LINE);
            for input in [&line[..], &line[..line.len() - 1]] {
                let decoded = decode_line(input).unwrap();
                assert_eq!((decoded.kind(), decoded.body()), (kind, &body[..]));
            }
        }
        assert_eq!(
            encode_line(Kind::Hello, &[0; MAX_BODY]).unwrap().len(),
            MAX_LINE + 1
        );
    }

    #[test]
    fn oversized_lines_and_refusals_are_refused() {
        assert_eq!(
            encode_line(Kind::Hello, &[0; MAX_BODY + 1]),
            Err(SessionError::LineTooLong { len: 1028 })
        );
        assert_eq!(
            encode_line(Kind::Refusal, &[b'x'; MAX_REFUSAL + 1]),
            Err(SessionError::RefusalTooLong { len: 513 })
        );
        let long = STANDARD.encode([1; MAX_BODY + 2]);
        assert_eq!(
            decode_line(long.as_bytes()).unwrap_err(),
            SessionError::LineTooLong { len: 1028 }
        );
        let mut refusal = vec![0x7f];
        refusal.extend_from_slice(&[b'x'; MAX_REFUSAL + 1]);
        assert_eq!(
            decode_line(STANDARD.encode(refusal).as_bytes()).unwrap_err(),
            SessionError::RefusalTooLong { len: 513 }
        );
    }

    #[test]
    fn garbage_lines_are_refused() {
        let cases: &[(&[u8], SessionError)] = &[
            (b"", SessionError::EmptyLine),
            (b"\n", SessionError::EmptyLine),
            (b"\r\n", SessionError::EmptyLine),
            (b"AQ", SessionError::LineNotBase64),
            (b"AQ=", SessionError::LineNotBase64),
            (b"A Q=", SessionError::LineNotBase64),
            (b"AQ==\n\n", SessionError::LineNotBase64),
            (b"AR==", SessionError::LineNotBase64),
            (b"@@@@", SessionError::LineNotBase64),
            (b"AQ==AQ==", SessionError::LineNotBase64),
            (b"Ag-_", SessionError::LineNotBase64),
            (b"\xff\xfe\xfd\xfc", SessionError::LineNotBase64),
            (b"CAEC", SessionError::UnknownKind(0x08)),
            (
                b"BgEC",
                SessionError::BodyLength {
                    kind: Kind::CodeStart,
                    len: 2,
                },
            ),
            (b"AA==", SessionError::UnknownKind(0x00)),
            (
                b"BQEC",
                SessionError::BodyLength {
                    kind: Kind::RelayKey,
                    len: 2,
                },
            ),
            (
                b"BAA=",
                SessionError::BodyLength {
                    kind: Kind::KeyRequest,
                    len: 1,
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(decode_line(line).unwrap_err(), *want, "{line:?}");
        }
    }

    #[test]
    fn a_refusal_line_is_cut_to_the_limit_at_a_character_boundary() {
        let text = "é".repeat(MAX_REFUSAL);
        let line = refusal_line(&text);
        let decoded = decode_line(&line).unwrap();
        assert_eq!(decoded.kind(), Kind::Refusal);
        assert_eq!(decoded.body().len(), MAX_REFUSAL);
        assert!(std::str::from_utf8(decoded.body()).is_ok());
        let short = decode_line(&refusal_line("go away")).unwrap();
        assert_eq!(short.body(), b"go away");
    }

    #[test]
    fn the_key_request_and_the_relay_key_are_the_specs_lines() {
        assert_eq!(
            key_request_line(),
            encode_line(Kind::KeyRequest, b"").unwrap()
        );
        let request = decode_line(&key_request_line()).unwrap();
        assert_eq!(
            (request.kind(), request.body()),
            (Kind::KeyRequest, &b""[..])
        );
        let relay = PublicKey::from_bytes([7; 32]);
        let line = relay_key_line(&relay);
        assert_eq!(line, encode_line(Kind::RelayKey, &[7; 32]).unwrap());
        assert_eq!(read_relay_key(&line).unwrap(), relay);
        assert_eq!(read_relay_key(&line[..line.len() - 1]).unwrap(), relay);
        assert_eq!(
            read_relay_key(&refusal_line("no")).unwrap_err(),
            SessionError::UnexpectedKind {
                expected: Kind::RelayKey,
                got: Kind::Refusal
            }
        );
        for (kind, body) in [(Kind::KeyRequest, &[0u8][..]), (Kind::RelayKey, &[7; 31])] {
            assert_eq!(
                encode_line(kind, body).unwrap_err(),
                SessionError::BodyLength {
                    kind,
                    len: body.len()
                }
            );
        }
        assert_eq!(
            SessionError::BodyLength {
                kind: Kind::KeyRequest,
                len: 3
            }
            .to_string(),
            "a key request (kind 0x04) must be empty, not 3 bytes"
        );
    }

    #[test]
    fn every_kind_byte_round_trips() {
        for byte in 0..=u8::MAX {
            if let Some(kind) = Kind::from_byte(byte) {
                assert_eq!(kind.byte(), byte);
            }
        }
    }
}
