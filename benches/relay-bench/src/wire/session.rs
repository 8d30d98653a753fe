//! How a subscriber of a session relay reads what the relay sealed for it,
//! in its own session: every frame's counter in order, and the publisher's
//! name on every frame it opens.
//!
//! A session's frames carry a counter for a nonce (8 zero bytes, then the
//! counter), one more for each frame, so a delivery the relay repeated, lost
//! or reordered shows in the counter alone. Two readers:
//!
//! - [`Checking::Every`] (`--verify-all`): every frame is opened by the
//!   protocol's own [`Session`], exactly as a client opens it. Its opener
//!   takes only the next counter, so after a skipped one it has lost its
//!   place for good: every later record is out of step.
//! - [`Checking::Counters`] (the default): every frame's counter is read
//!   (a 24-character base64 prefix decoded) and checked against the next,
//!   and the frames the subscriber's inbox picks (one in `--sample`) are
//!   opened under the session's own relay-to-client key with the protocol's
//!   `EaxKey`. It keeps its own counter, so it finds its place again after
//!   a gap. This keeps relay-bench's cost per delivery far below the
//!   relay's, which seals every delivery.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eaxchat_proto::eax_key::EaxKey;
use eaxchat_proto::session::{Established, Session, SessionError, counter_nonce};
use eaxchat_proto::wire::{self, NONCE_LEN};

use super::{Forged, Header, parse_plaintext};

/// Base64 characters that hold a frame's nonce (and the tag's first two
/// bytes): 18 bytes, decoded whole.
const NONCE_CHARS: usize = 24;

/// Why a record did not take its place in a subscriber's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misfit {
    /// It does not open, or is not a message relay-bench sent.
    Forged,
    /// A session frame whose counter came before: a repeat.
    Duplicated,
    /// A session frame whose counter is this many past the next one: the
    /// frames between never came before it.
    Lost(u64),
    /// A session frame after the session lost its place.
    OutOfStep,
}

impl From<Forged> for Misfit {
    fn from(_: Forged) -> Misfit {
        Misfit::Forged
    }
}

/// Which of a session subscriber's frames are opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checking {
    /// Every frame, by the protocol's [`Session`].
    Every,
    /// Every counter; the frames asked for opened under the session's key.
    Counters,
}

/// A session subscriber's reader: its side of the session, the
/// publisher's `NAME: `, and the length of every record.
pub struct SessionReader {
    opener: SessionOpener,
    stamp: Vec<u8>,
    record_len: usize,
}

enum SessionOpener {
    Every {
        session: Box<Session>,
        /// A counter was skipped: nothing opens in order any more.
        lost_place: bool,
    },
    Counters {
        key: Box<EaxKey>,
        /// The counter the next frame must carry.
        next: u64,
        frame: Vec<u8>,
    },
}

impl SessionReader {
    pub(super) fn new(
        established: Established,
        checking: Checking,
        stamp: Vec<u8>,
        record_len: usize,
    ) -> SessionReader {
        let opener = match checking {
            Checking::Every => SessionOpener::Every {
                session: Box::new(established.session),
                lost_place: false,
            },
            Checking::Counters => SessionOpener::Counters {
                key: Box::new(EaxKey::aes256(established.keys.relay_to_client())),
                next: 0,
                frame: Vec::with_capacity(record_len),
            },
        };
        SessionReader {
            opener,
            stamp,
            record_len,
        }
    }

    /// The line of a whole record, or `None` if the record is not one.
    fn line<'r>(&self, record: &'r [u8]) -> Option<&'r [u8]> {
        let line = record.strip_suffix(b"\n")?;
        (record.len() == self.record_len).then_some(line)
    }

    /// Takes `record` unopened if it is whole and (when counters are
    /// checked) carries the next counter; false, taking nothing, if it
    /// needs opening to find out what it is.
    pub fn pass(&mut self, record: &[u8]) -> bool {
        let Some(line) = self.line(record) else {
            return false;
        };
        match &mut self.opener {
            SessionOpener::Every { .. } => false,
            SessionOpener::Counters { next, .. } => {
                if counter_of(line) == Some(*next) {
                    *next += 1;
                    return true;
                }
                false
            }
        }
    }

    /// Opens one whole record, the next frame of this session.
    pub fn decode(&mut self, record: &[u8]) -> Result<Header, Misfit> {
        let line = self.line(record).ok_or(Misfit::Forged)?;
        let plaintext = match &mut self.opener {
            SessionOpener::Every {
                lost_place: true, ..
            } => return Err(Misfit::OutOfStep),
            SessionOpener::Every {
                session,
                lost_place,
            } => match session.open(line) {
                Ok(plaintext) => plaintext,
                Err(SessionError::Replayed { .. }) => return Err(Misfit::Duplicated),
                Err(SessionError::Skipped { expected, got }) => {
                    *lost_place = true;
                    return Err(Misfit::Lost(got.saturating_sub(expected)));
                }
                Err(_) => return Err(Misfit::Forged),
            },
            SessionOpener::Counters { key, next, frame } => {
                let got = counter_of(line).ok_or(Misfit::Forged)?;
                if got < *next {
                    return Err(Misfit::Duplicated);
                }
                let len = wire::decode_line(line, frame).map_err(|_| Misfit::Forged)?;
                let (nonce, tag, body) = frame
                    .get_mut(..len)
                    .and_then(wire::split_frame)
                    .ok_or(Misfit::Forged)?;
                key.open_in_place_detached(nonce, body, tag)
                    .map_err(|_| Misfit::Forged)?;
                // Opened: its counter is genuine, and the next follows it.
                let skipped = got - *next;
                *next = got + 1;
                if skipped > 0 {
                    return Err(Misfit::Lost(skipped));
                }
                body
            }
        };
        let text = plaintext.strip_prefix(&self.stamp[..]).ok_or(Forged)?;
        Ok(parse_plaintext(text)?)
    }
}

/// The counter in a frame line's nonce, if the nonce is a counter nonce.
pub(crate) fn counter_of(line: &[u8]) -> Option<u64> {
    let mut head = [0u8; NONCE_CHARS / 4 * 3];
    let decoded = STANDARD
        .decode_slice(line.get(..NONCE_CHARS)?, &mut head)
        .ok()?;
    let nonce: &[u8; NONCE_LEN] = head.get(..NONCE_LEN.min(decoded))?.try_into().ok()?;
    let counter = u64::from_be_bytes(nonce[8..].try_into().ok()?);
    (counter_nonce(counter) == *nonce).then_some(counter)
}
