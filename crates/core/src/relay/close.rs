//! Why a connection leaves, and the one place it leaves: a connection is
//! marked closing ([`Relay::close`]), handed to the caller
//! ([`Relay::take_closing`]) and removed ([`Relay::remove`]), which lets go
//! of everything it held: its room (the room is told it left), its
//! `/nick`, its members seat or session, its seed pacing, its place in
//! the write sweep, its address count and its pre-auth bytes.
//!
//! Nothing else removes a connection, and a connection marked closing is
//! never written to or relayed from again; closing its socket is the
//! caller's.

use std::fmt;
use std::io::Write;

use log::debug;

use super::trust::Trust;
use super::{ConnId, Mode, Peer, Relay};
use eaxchat_proto::cipher::OpenError;
use eaxchat_proto::lines::LineReader;
use eaxchat_proto::replay::Replayed;
use eaxchat_proto::session::SessionError;

/// Why the relay closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its end (or reset it).
    PeerClosed,
    /// A line did not open: bad base64, too short, or a tag that failed.
    BadFrame(OpenError),
    /// A frame opened, but its nonce was accepted before under its key, or
    /// is one the relay sealed with: a replay.
    Replay,
    /// A line grew past `--max-frame`.
    LineTooLong,
    /// More than `--max-queue` bytes were waiting for this consumer.
    SlowConsumer,
    /// Not authenticated, and holding the most when the bytes held for
    /// unauthenticated connections passed `--pre-auth-budget`.
    PreAuthOverBudget,
    /// No authenticated frame (in session mode, no finished handshake)
    /// within `--first-frame-timeout`: of its admission where proof is
    /// required (members and session mode, `--require-proof`), else of its
    /// first byte.
    FirstFrameTimeout,
    /// Reading or writing the socket failed.
    IoError(std::io::ErrorKind),
    /// The relay is shutting down.
    Shutdown,
    /// Members mode: the member was removed from the members file, or
    /// given a new key.
    MemberRemoved,
    /// Members mode: the first frame's ciphertext is longer than
    /// [`crate::roster::IDENTIFY_MAX`].
    FirstFrameTooLong,
    /// It said `/quit`.
    Quit,
    /// The transport in front of the connection (a browser's WebSocket)
    /// broke its protocol or its limits; the text says how, as logged.
    Transport(&'static str),
    /// A browser heard from nothing for twice `--web-idle-timeout`.
    IdleTimeout,
    /// Session mode: the handshake was refused, and the refusal line
    /// written first.
    HandshakeRefused(HandshakeRefusal),
    /// Session mode: a line came after the hello but before the welcome
    /// could have reached the client: a second hello, or a frame it could
    /// not have sealed yet.
    HandshakeUnfinished,
    /// Session mode: a frame did not open in its connection's session.
    SessionFrame(FrameRefusal),
}

/// Why session mode refused a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeRefusal {
    /// The first line was not a hello that opens under the relay's key:
    /// garbage, truncated, oversized, another kind of line, or a client
    /// that pinned another relay key.
    BadHello,
    /// The hello's key is no member's device.
    UnknownKey,
}

impl fmt::Display for HandshakeRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeRefusal::BadHello => "not a hello for this relay's key",
            HandshakeRefusal::UnknownKey => "a key that is in no member's line",
        })
    }
}

/// Why a session frame did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRefusal {
    /// Not padded standard base64.
    NotBase64,
    /// Shorter than nonce and tag.
    TooShort,
    /// Its nonce is not a session counter.
    NotACounter,
    /// Its counter was used already: a replay, or a reorder.
    Replayed,
    /// Its counter skips ahead: a gap, or a reorder.
    Skipped,
    /// Its tag failed: another session's frame, one reflected back, or one
    /// changed on the way.
    BadTag,
    /// The session has used every counter.
    Exhausted,
}

impl FrameRefusal {
    /// The refusal for an error of [`eaxchat_proto::session::Opener`] or
    /// [`eaxchat_proto::session::Sealer`].
    pub fn of(error: &SessionError) -> FrameRefusal {
        match error {
            SessionError::FrameNotBase64 => FrameRefusal::NotBase64,
            SessionError::FrameTooShort => FrameRefusal::TooShort,
            SessionError::NotACounterNonce => FrameRefusal::NotACounter,
            SessionError::Replayed { .. } => FrameRefusal::Replayed,
            SessionError::Skipped { .. } => FrameRefusal::Skipped,
            SessionError::CounterExhausted => FrameRefusal::Exhausted,
            // An opener fails in no other way; anything else did not open.
            _ => FrameRefusal::BadTag,
        }
    }
}

impl fmt::Display for FrameRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameRefusal::NotBase64 => "not padded standard base64",
            FrameRefusal::TooShort => "shorter than nonce and tag",
            FrameRefusal::NotACounter => "its nonce is not a session counter",
            FrameRefusal::Replayed => "its counter was used already (a replay or a reorder)",
            FrameRefusal::Skipped => "its counter skips ahead (a gap or a reorder)",
            FrameRefusal::BadTag => {
                "tag mismatch (another session's frame, one reflected back, or one changed)"
            }
            FrameRefusal::Exhausted => "the session has used every counter",
        })
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed"),
            CloseReason::BadFrame(error) => write!(f, "rejected frame: {error}"),
            CloseReason::Replay => write!(f, "rejected frame: {Replayed}"),
            CloseReason::LineTooLong => f.write_str("line longer than --max-frame"),
            CloseReason::SlowConsumer => f.write_str("slow consumer: over --max-queue"),
            CloseReason::PreAuthOverBudget => {
                f.write_str("unauthenticated, holding the most past --pre-auth-budget")
            }
            CloseReason::FirstFrameTimeout => {
                f.write_str("no authenticated frame within --first-frame-timeout")
            }
            CloseReason::IoError(kind) => write!(f, "socket error: {kind}"),
            CloseReason::Shutdown => f.write_str("relay shutting down"),
            CloseReason::MemberRemoved => f.write_str("member removed from the members file"),
            CloseReason::FirstFrameTooLong => f.write_str("first frame too long to identify"),
            CloseReason::Quit => f.write_str("said /quit"),
            CloseReason::Transport(why) => f.write_str(why),
            CloseReason::IdleTimeout => f.write_str("silent past --web-idle-timeout, pinged"),
            CloseReason::HandshakeRefused(why) => write!(f, "handshake refused: {why}"),
            CloseReason::HandshakeUnfinished => {
                f.write_str("sent a line before its handshake finished")
            }
            CloseReason::SessionFrame(why) => write!(f, "rejected session frame: {why}"),
        }
    }
}

impl<T: Write> Relay<T> {
    /// Marks `id` closing for `reason`. Its queue is kept (for a final
    /// flush) unless the reason is that it could not keep up.
    pub fn close(&mut self, id: ConnId, reason: CloseReason) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        if peer.closing.is_some() {
            return;
        }
        if matches!(
            reason,
            CloseReason::BadFrame(_)
                | CloseReason::Replay
                | CloseReason::SessionFrame(_)
                | CloseReason::HandshakeUnfinished
        ) {
            debug!("conn {id}: {reason}");
        }
        peer.closing = Some(reason);
        if let Trust::Unproven { held } = peer.trust {
            // Nothing more is read from it: what it held is let go now, not
            // at the end of the turn.
            peer.reader = LineReader::default();
            peer.trust = Trust::Unproven { held: 0 };
            self.pre_auth.update(held, 0);
        }
        self.closing.push(id);
    }

    /// Moves the ids marked closing since the last call into `out`.
    pub fn take_closing(&mut self, out: &mut Vec<ConnId>) {
        out.append(&mut self.closing);
    }

    /// Removes a connection and returns it with the reason it closed.
    pub fn remove(&mut self, id: ConnId) -> Option<(Peer<T>, CloseReason)> {
        // Out of its room first, while its name can still be told.
        self.leave_rooms(id);
        let peer = self.peers.try_remove(id)?;
        self.drop_nick(id, &peer);
        self.stats.connections -= 1;
        match (peer.member, &mut self.mode) {
            (Some(seat), Mode::Members(roster)) => roster.leave(seat, id),
            (Some(seat), Mode::Sessions(roster)) => roster.leave(seat, id),
            _ => {}
        }
        if peer.paced.is_some() {
            self.seed_peers.retain(|&seed| seed != id);
        }
        self.sweep.remove(peer.place, &self.peers);
        if let Some(ip) = peer.ip {
            self.per_address.release(ip);
        }
        if let Trust::Unproven { held } = peer.trust {
            self.pre_auth.update(held, 0);
        }
        let peers = &self.peers;
        self.deadlines.compact(peers.len(), |deadline| {
            peers.get(deadline.id).is_some_and(|peer| {
                peer.serial == deadline.serial && matches!(peer.trust, Trust::Unproven { .. })
            })
        });
        let reason = peer.closing.unwrap_or(CloseReason::Shutdown);
        Some((peer, reason))
    }
}
