//! Every way a session fails: a bad handshake line, a handshake that does
//! not verify, a refusal, a bad key text, and a frame that must not open.
//!
//! One enum for the whole module, so a caller matches in one place. Each
//! variant's text says what happened in words a user can act on; none of
//! them says more about a failed tag than that it failed. Text that came
//! from a peer (a refusal) is stored already made safe to print.

use std::fmt;

use super::identity::Fingerprint;
use super::line::Kind;
use super::{MAX_LINE, MAX_NAME, MAX_PAYLOAD, MAX_REFUSAL};

/// Why a handshake, a key text or a session frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// A handshake line longer than [`MAX_LINE`] bytes.
    LineTooLong {
        /// Its length, without the `\n`.
        len: usize,
    },
    /// A handshake line that is empty.
    EmptyLine,
    /// A handshake line that is not padded standard-alphabet base64.
    LineNotBase64,
    /// A handshake line whose kind byte is none of [`Kind`]'s.
    UnknownKind(u8),
    /// A known kind of line where another was due.
    UnexpectedKind {
        /// The kind this side waits for.
        expected: Kind,
        /// The kind that came.
        got: Kind,
    },
    /// A key request with a body, or a relay key that is not 32 bytes.
    BodyLength {
        /// The kind of line.
        kind: Kind,
        /// Its body's length.
        len: usize,
    },
    /// A refusal text longer than [`MAX_REFUSAL`] bytes.
    RefusalTooLong {
        /// Its length.
        len: usize,
    },
    /// A line 1 payload longer than [`MAX_PAYLOAD`] bytes.
    PayloadTooLong {
        /// Its length.
        len: usize,
    },
    /// A line 1 payload that is neither empty nor UTF-8 JSON.
    PayloadNotJson,
    /// A member name longer than [`MAX_NAME`] bytes.
    NameTooLong {
        /// Its length.
        len: usize,
    },
    /// Line 2 carried a name that is not UTF-8.
    NameNotUtf8,
    /// Line 1 is shorter than a Noise IK message 1 (96 bytes).
    HelloTooShort {
        /// Its length.
        len: usize,
    },
    /// Line 1 did not decrypt under the relay's key: the client pinned
    /// another relay key, or the message was damaged or forged.
    HelloDidNotDecrypt,
    /// Line 2 is shorter than a Noise IK message 2 (48 bytes).
    WelcomeTooShort {
        /// Its length.
        len: usize,
    },
    /// Line 2 did not verify: it does not answer this client's line 1
    /// from the relay key it pinned.
    WelcomeDidNotVerify,
    /// The relay refused the handshake (a kind 0x7f line).
    Refused {
        /// The refusal text, made safe to print. Unauthenticated: anyone
        /// on the path could have written it.
        text: String,
        /// The fingerprint of the relay key the client pinned.
        pinned: Fingerprint,
        /// The relay fingerprint the text names, if it names one.
        relay: Option<Fingerprint>,
    },
    /// A public key that is not `x25519:` and the base64 of 32 bytes.
    BadPublicKey,
    /// A fingerprint that is not `SHA256:` and 43 characters of unpadded
    /// base64.
    BadFingerprint,
    /// The operating system's random number generator failed.
    Randomness,
    /// The Noise library failed where it should not (a bug, not the peer).
    Noise(String),
    /// A frame that is not padded standard-alphabet base64.
    FrameNotBase64,
    /// A frame shorter than nonce and tag (32 bytes).
    FrameTooShort,
    /// A frame whose nonce does not start with 8 zero bytes: not a
    /// session's counter nonce.
    NotACounterNonce,
    /// A frame whose counter was already used: a replay, or a reorder.
    Replayed {
        /// The counter this direction waits for.
        expected: u64,
        /// The frame's counter.
        got: u64,
    },
    /// A frame whose counter skips ahead: a gap (a frame went missing), or
    /// a reorder.
    Skipped {
        /// The counter this direction waits for.
        expected: u64,
        /// The frame's counter.
        got: u64,
    },
    /// A frame whose tag does not verify: sealed under another session's
    /// key or for the other direction, or changed on the way.
    BadTag,
    /// A direction has used every counter; the session must end.
    CounterExhausted,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SessionError::*;
        match self {
            LineTooLong { len } => write!(
                f,
                "handshake line of {len} bytes is over the {MAX_LINE}-byte limit"
            ),
            EmptyLine => f.write_str("empty handshake line"),
            LineNotBase64 => f.write_str("handshake line is not padded standard base64"),
            UnknownKind(kind) => write!(f, "unknown handshake line kind 0x{kind:02x}"),
            UnexpectedKind { expected, got } => {
                write!(f, "expected {expected}, got {got}")
            }
            BodyLength {
                kind: Kind::KeyRequest,
                len,
            } => write!(f, "{} must be empty, not {len} bytes", Kind::KeyRequest),
            BodyLength { kind, len } => match fixed_len(*kind) {
                Some(want) => write!(f, "{kind} must be {want} bytes, not {len}"),
                None => write!(f, "{kind} of {len} bytes is malformed"),
            },
            RefusalTooLong { len } => write!(
                f,
                "refusal text of {len} bytes is over the {MAX_REFUSAL}-byte limit"
            ),
            PayloadTooLong { len } => write!(
                f,
                "handshake payload of {len} bytes is over the {MAX_PAYLOAD}-byte limit"
            ),
            PayloadNotJson => f.write_str("handshake payload is neither empty nor UTF-8 JSON"),
            NameTooLong { len } => write!(
                f,
                "member name of {len} bytes is over the {MAX_NAME}-byte limit of a handshake line"
            ),
            NameNotUtf8 => {
                f.write_str("the relay's handshake reply names the member in invalid UTF-8")
            }
            HelloTooShort { len } => write!(
                f,
                "handshake message 1 of {len} bytes is too short (a Noise IK message 1 is at least 96)"
            ),
            HelloDidNotDecrypt => f.write_str(
                "handshake message 1 did not decrypt: the client pinned another relay key, \
                 or the message was damaged",
            ),
            WelcomeTooShort { len } => write!(
                f,
                "the relay's handshake reply of {len} bytes is too short (a Noise IK message 2 is at least 48)"
            ),
            WelcomeDidNotVerify => f.write_str(
                "the relay's handshake reply did not verify: it is not from the pinned relay key, \
                 or it was damaged",
            ),
            Refused {
                text,
                pinned,
                relay: Some(relay),
            } if relay != pinned => write!(
                f,
                "the relay refused the handshake: you pinned relay key {pinned}, but the relay \
                 says its key is {relay} (its key changed, or another relay answers at this \
                 address); it said: \"{text}\""
            ),
            Refused { text, pinned, .. } => write!(
                f,
                "the relay refused the handshake (pinned relay key {pinned}): \"{text}\""
            ),
            BadPublicKey => {
                f.write_str("a public key is written \"x25519:\" and the base64 of 32 bytes")
            }
            BadFingerprint => f.write_str(
                "a fingerprint is written \"SHA256:\" and 43 characters of unpadded base64",
            ),
            Randomness => f.write_str("the operating system's random number generator failed"),
            Noise(what) => write!(f, "the Noise library failed unexpectedly: {what}"),
            FrameNotBase64 => f.write_str("frame is not padded standard base64"),
            FrameTooShort => f.write_str("frame is shorter than nonce and tag (32 bytes)"),
            NotACounterNonce => {
                f.write_str("frame nonce does not start with 8 zero bytes: not a session counter")
            }
            Replayed { expected, got } => write!(
                f,
                "frame counter {got} was already used (expected {expected}): a replay or a reorder"
            ),
            Skipped { expected, got } => write!(
                f,
                "frame counter {got} skips ahead (expected {expected}): a gap or a reorder"
            ),
            BadTag => f.write_str(
                "frame tag mismatch: not sealed by this session's peer for this direction, \
                 or changed on the way",
            ),
            CounterExhausted => f.write_str("this session has used every frame counter"),
        }
    }
}

impl std::error::Error for SessionError {}

/// The fixed body length of `kind`'s lines, if it has one.
fn fixed_len(kind: Kind) -> Option<usize> {
    match kind {
        Kind::RelayKey => Some(32),
        Kind::CodeStart => Some(crate::invite::code::CODE_START_LEN),
        Kind::CodeReply => Some(crate::invite::code::CODE_REPLY_LEN),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_both_fingerprints_only_when_they_differ() {
        let pinned = Fingerprint::of(&[1; 32]);
        let relay = Fingerprint::of(&[2; 32]);
        let other = SessionError::Refused {
            text: "no".into(),
            pinned,
            relay: Some(relay),
        }
        .to_string();
        assert!(other.contains(&pinned.to_string()), "{other}");
        assert!(other.contains(&relay.to_string()), "{other}");
        let same = SessionError::Refused {
            text: "unknown key".into(),
            pinned,
            relay: Some(pinned),
        }
        .to_string();
        assert!(!same.contains("says its key is"), "{same}");
        assert!(same.contains("unknown key"), "{same}");
    }

    #[test]
    fn counter_errors_say_what_came_and_what_was_due() {
        let text = SessionError::Replayed {
            expected: 5,
            got: 2,
        }
        .to_string();
        assert!(text.contains("2") && text.contains("expected 5") && text.contains("replay"));
        let text = SessionError::Skipped {
            expected: 5,
            got: 9,
        }
        .to_string();
        assert!(text.contains("9") && text.contains("gap"));
    }
}
