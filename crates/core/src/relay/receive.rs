//! The receive path: the bytes a connection sent, taken as frames.
//!
//! Lines are opened and sealed again onto the read's [`Batch`]; while no
//! `\n` has come, unterminated bytes are tried as newline-less frames
//! ([`eaxchat_proto::seed`]) and, in members mode, as the frame that identifies
//! the member ([`crate::roster`]). Every frame that opens passes
//! [`check_replay`] (a session frame, its session's counter). The first
//! frame refused closes its sender; nothing it sent after is relayed.
//! Session mode takes its own way in (`handshake.rs`), then its frames
//! come here ([`Relay::take_frame`]). This path never writes to a connection: what it
//! takes is queued by `fanout.rs` and written by `flush.rs`.

use std::io::Write;
use std::ops::ControlFlow;

use log::info;
use memchr::memchr;

use super::batch::Batch;
use super::{CloseReason, ConnId, FrameRefusal, Mode, Relay};
use crate::roster::{Identified, Seat};
use eaxchat_proto::cipher::{Cipher, OpenError};
use eaxchat_proto::events::Event;
use eaxchat_proto::lines::LineReader;
use eaxchat_proto::replay::{self, ReplayWindow, Replayed};
use eaxchat_proto::sanitize::{LINE_BREAK_REFUSED, has_line_break};
use eaxchat_proto::seed::{Splitter, Step};
use eaxchat_proto::wire::{self, NONCE_LEN};

/// Most reads of an unidentified connection's unterminated bytes tried as
/// a whole first frame against the members' keys (members mode): bounds
/// the work one connection that never identifies can cost. A newline-less
/// client sends its first frame in one write, so it arrives in one or two.
const IDENTIFY_TRIES: u8 = 8;

impl<T: Write> Relay<T> {
    /// Takes bytes read from connection `from`: relays every complete line
    /// in them, or closes `from` on the first line that is too long, does
    /// not open or is a replay (the lines before it are still relayed). In
    /// members mode an unidentified connection's first frame identifies it
    /// first; in session mode a connection's first line is its hello.
    pub fn receive(&mut self, from: ConnId, data: &[u8]) {
        if self.is_sessions() {
            self.receive_session(from, data);
            return;
        }
        let Some(peer) = self.peers.get_mut(from) else {
            return;
        };
        if peer.closing.is_some() {
            return;
        }
        self.stats.bytes_in += data.len() as u64;
        // The reader is taken out for the call so that sealing a line can
        // borrow the relay.
        let mut reader = std::mem::take(&mut peer.reader);
        let mut splitter = peer.splitter.take();
        let mut member = peer.member;
        let mut tries = peer.identify_tries;
        let mut batch = Batch::new(self.wall_millis());
        let mut took_seed = false;
        let mut rest = data;
        let mut fed = Ok(());
        if !reader.saw_newline() {
            // Up to the first `\n`, in pieces the buffer has room for:
            // joined newline-less frames are split as they come, so they
            // never count as one line against `max_frame`.
            let (mut newline_less, after) =
                data.split_at(memchr(b'\n', data).unwrap_or(data.len()));
            rest = after;
            while !newline_less.is_empty() {
                let room = self
                    .limits
                    .max_frame
                    .saturating_sub(reader.buffered())
                    .max(1);
                let (piece, more) = newline_less.split_at(room.min(newline_less.len()));
                newline_less = more;
                fed = reader.feed(piece, |_| ControlFlow::Continue(()));
                if fed.is_err() {
                    break;
                }
                if member.is_none() && matches!(self.mode, Mode::Members(_)) {
                    match self.identify_unterminated(from, &mut reader, &mut batch, &mut tries) {
                        Some(seat) => {
                            member = Some(seat);
                            took_seed = true;
                        }
                        None => continue,
                    }
                }
                let splitter = splitter.get_or_insert_with(Box::default);
                match self.take_seed_frames(from, member, &mut reader, splitter, &mut batch) {
                    Ok(took) => took_seed |= took,
                    Err(error) => {
                        self.reject(from, error);
                        break;
                    }
                }
            }
        }
        let closed = self
            .peers
            .get(from)
            .is_none_or(|peer| peer.closing.is_some());
        if fed.is_ok() && !closed {
            if let Mode::Shared(cipher) = &self.mode {
                // The read's lines opened side by side, ahead; a line
                // completing bytes of an earlier read is not among them.
                let whole = match reader.buffered() {
                    0 => rest,
                    _ => memchr(b'\n', rest).map_or(&[][..], |at| &rest[at + 1..]),
                };
                self.opened_lines.open(cipher, whole);
            }
            fed = reader.feed(rest, |line| {
                self.take_line(from, &mut member, &mut batch, line)
            });
            self.opened_lines.clear();
        }
        if fed.is_err() && !closed {
            self.stats.rejected.too_long += 1;
            self.close(from, CloseReason::LineTooLong);
        }
        let newline = reader.saw_newline();
        if let Some(peer) = self.peers.get_mut(from) {
            peer.reader = reader;
            peer.splitter = if newline { None } else { splitter };
            peer.identify_tries = tries;
        }
        if took_seed && !newline {
            self.become_seed(from);
        } else if newline {
            self.stop_seed(from);
        }
        self.account_trust(from, batch.opened);
        self.queue_batch(from, &batch);
    }

    /// One line from `from`, taken ([`Relay::take_frame`]); in members
    /// mode the line identifies the member first if not yet known. Closes
    /// `from` and stops the reading if it does not open.
    fn take_line(
        &mut self,
        from: ConnId,
        member: &mut Option<Seat>,
        batch: &mut Batch,
        line: &[u8],
    ) -> ControlFlow<()> {
        if member.is_none()
            && let Mode::Members(roster) = &mut self.mode
        {
            let refused = match roster.identify(line) {
                Identified::Member(seat) => {
                    *member = Some(seat);
                    self.seat_member(from, seat);
                    None
                }
                Identified::Nobody(error) => {
                    self.stats.rejected.count(error);
                    Some(CloseReason::BadFrame(error))
                }
                Identified::TooLong => {
                    self.stats.rejected.bad_tag += 1;
                    Some(CloseReason::FirstFrameTooLong)
                }
            };
            if let Some(reason) = refused {
                self.close(from, reason);
                return ControlFlow::Break(());
            }
        }
        match self.take_frame(from, *member, batch, line) {
            Ok(()) if self.is_closing(from) => ControlFlow::Break(()),
            Ok(()) => ControlFlow::Continue(()),
            Err(error) => {
                self.reject(from, error);
                ControlFlow::Break(())
            }
        }
    }

    /// Whether `id` is gone or closing.
    pub(super) fn is_closing(&self, id: ConnId) -> bool {
        self.peers.get(id).is_none_or(|peer| peer.closing.is_some())
    }

    /// Members mode: `from` identified as `seat`. It is the member's from
    /// now on, and in the default room.
    fn seat_member(&mut self, from: ConnId, seat: Seat) {
        let Mode::Members(roster) = &mut self.mode else {
            return;
        };
        let Some(peer) = self.peers.get_mut(from) else {
            return;
        };
        peer.member = Some(seat);
        roster.join(seat, from);
        if let Some(name) = roster.name(seat) {
            info!("conn {from}: identified as {name}");
        }
        self.enter_default_room(from);
    }

    /// One frame of `from`'s (a line, or a newline-less frame), opened
    /// under the shared key, member `seat`'s or `from`'s session and
    /// checked against replays, then taken: a command is run
    /// ([`Relay::take_command`]), text that flood control lets go is
    /// committed onto `batch`, an empty members or session frame only
    /// arrives. A frame refused leaves `batch` as it was.
    pub(super) fn take_frame(
        &mut self,
        from: ConnId,
        seat: Option<Seat>,
        batch: &mut Batch,
        frame: &[u8],
    ) -> Result<(), FrameError> {
        let mut pending = match (&mut self.mode, seat) {
            (Mode::Shared(cipher), _) => match self.opened_lines.take(frame) {
                Some(opened) => {
                    batch.take_shared(cipher, &mut self.replays, replay::SHARED_KEY, opened)?
                }
                None => batch.open_shared(cipher, &mut self.replays, replay::SHARED_KEY, frame)?,
            },
            (Mode::Members(roster), Some(seat)) => {
                batch.open_member(roster, &mut self.replays, seat, frame)?
            }
            (Mode::Sessions(roster), Some(seat)) => {
                let opener = self
                    .peers
                    .get_mut(from)
                    .and_then(|peer| peer.session.established())
                    .map(|session| &mut session.opener)
                    .ok_or(FrameError::Session(FrameRefusal::BadTag))?;
                batch.open_session(roster, opener, seat, frame)?
            }
            (Mode::Members(_) | Mode::Sessions(_), None) => {
                return Err(FrameError::Open(OpenError::BadTag));
            }
        };
        if self.limits.require_proof && matches!(self.mode, Mode::Shared(_)) {
            self.enter_when_proven(from);
        }
        if batch.identifies_only(pending) {
            self.arrive(from);
            return Ok(());
        }
        let text = batch.text(pending);
        if text.first() == Some(&b'/') && text.get(1) != Some(&b'/') {
            let command = text.to_vec();
            batch.discard(pending);
            if !(command.starts_with(b"/mls ") && self.take_group_frame(from, &command, batch)) {
                self.take_command(from, &command, batch);
            }
            return Ok(());
        }
        let escaped = text.starts_with(b"//");
        let text = if escaped { &text[1..] } else { text };
        if self.is_members() && has_line_break(text) {
            batch.discard(pending);
            self.refuse_line_break(from);
            return Ok(());
        }
        if !self.take_message(from, text) {
            batch.discard(pending);
            return Ok(());
        }
        if escaped {
            batch.unescape(&mut pending);
        }
        batch.commit(pending);
        Ok(())
    }

    /// A member's text (or a `/me` or `/msg` text) held a line break: it
    /// is not stamped or relayed, and `from` is told why
    /// ([`eaxchat_proto::sanitize::has_line_break`]).
    pub(super) fn refuse_line_break(&mut self, from: ConnId) {
        self.arrive(from);
        self.send_event(from, &Event::error(LINE_BREAK_REFUSED));
    }

    /// Members mode, `from` not identified and no `\n` yet: tries its
    /// whole unterminated buffer as its first frame. On a match the frame
    /// is taken onto `batch` and the member returned. A buffer past the
    /// identification cap, or a padded one (so whole) that opens under no
    /// key, closes `from`; an unpadded one may still grow into a frame and
    /// is tried again on later reads, at most [`IDENTIFY_TRIES`] times.
    fn identify_unterminated(
        &mut self,
        from: ConnId,
        reader: &mut LineReader,
        batch: &mut Batch,
        tries: &mut u8,
    ) -> Option<Seat> {
        if !matches!(self.mode, Mode::Members(_)) {
            return None;
        }
        let buf = reader.unterminated()?;
        if buf.len() > wire::encoded_len(crate::roster::IDENTIFY_MAX) {
            self.stats.rejected.bad_tag += 1;
            self.close(from, CloseReason::FirstFrameTooLong);
            return None;
        }
        if buf.len() < wire::encoded_len(0) || buf.len() % 4 != 0 || *tries >= IDENTIFY_TRIES {
            return None;
        }
        *tries += 1;
        let Mode::Members(roster) = &mut self.mode else {
            return None;
        };
        match roster.identify(buf) {
            Identified::Member(seat) => {
                let len = buf.len();
                self.seat_member(from, seat);
                // A newline-less frame: what it is sent first (history, a
                // reply) is paced, as a seed receiver's must be.
                self.become_seed(from);
                match self.take_frame(from, Some(seat), batch, buf) {
                    Ok(()) => {}
                    Err(FrameError::Replayed) => {
                        self.stats.rejected.replayed += 1;
                        self.close(from, CloseReason::Replay);
                        return None;
                    }
                    Err(FrameError::Open(_) | FrameError::Session(_)) => {
                        debug_assert!(false, "a frame that identified did not open");
                        return None;
                    }
                }
                reader.consume_frame(len);
                Some(seat)
            }
            // A whole frame whose base64 length is at the cap's but whose
            // plaintext is a byte or two past it.
            Identified::TooLong => {
                self.stats.rejected.bad_tag += 1;
                self.close(from, CloseReason::FirstFrameTooLong);
                None
            }
            Identified::Nobody(OpenError::BadTag) if buf.ends_with(b"=") => {
                self.stats.rejected.bad_tag += 1;
                self.close(from, CloseReason::BadFrame(OpenError::BadTag));
                None
            }
            _ => None,
        }
    }

    /// Takes every newline-less frame at the front of `reader`'s
    /// unterminated bytes onto `batch`, up to one that is a replay; returns
    /// whether it took one. In members mode the frames are split and opened
    /// with `member`'s key.
    fn take_seed_frames(
        &mut self,
        from: ConnId,
        member: Option<Seat>,
        reader: &mut LineReader,
        splitter: &mut Splitter,
        batch: &mut Batch,
    ) -> Result<bool, FrameError> {
        let mut took = false;
        while let Some(buf) = reader.unterminated() {
            let key = match &self.mode {
                Mode::Shared(cipher) => Some(cipher.eax_key()),
                Mode::Members(roster) => member.and_then(|seat| roster.eax_key(seat)),
                Mode::Sessions(_) => None,
            };
            let Some(Step::Frame(len)) = key.map(|key| splitter.next_frame(key, buf)) else {
                break;
            };
            // The tag verified; the frame is opened all the same, so
            // nothing is relayed that was not authenticated.
            let Some(frame) = buf.get(..len) else { break };
            if matches!(self.mode, Mode::Members(_)) && member.is_none() {
                break;
            }
            self.become_seed(from);
            match self.take_frame(from, member, batch, frame) {
                Ok(()) => {
                    reader.consume_frame(len);
                    took = true;
                    if self.is_closing(from) {
                        break;
                    }
                }
                Err(FrameError::Replayed) => return Err(FrameError::Replayed),
                Err(FrameError::Open(_) | FrameError::Session(_)) => {
                    debug_assert!(false, "a frame the splitter found did not open");
                    break;
                }
            }
        }
        Ok(took)
    }

    /// Counts a frame of `from`'s refused, and closes `from`.
    pub(super) fn reject(&mut self, from: ConnId, error: FrameError) {
        match error {
            FrameError::Open(error) => {
                self.stats.rejected.count(error);
                self.close(from, CloseReason::BadFrame(error));
            }
            FrameError::Replayed => {
                self.stats.rejected.replayed += 1;
                self.close(from, CloseReason::Replay);
            }
            FrameError::Session(refusal) => {
                let counts = &mut self.stats.sessions;
                match refusal {
                    FrameRefusal::Replayed => counts.rejected_replay += 1,
                    FrameRefusal::Skipped => counts.rejected_gap += 1,
                    FrameRefusal::BadTag => counts.rejected_tag += 1,
                    FrameRefusal::NotBase64
                    | FrameRefusal::TooShort
                    | FrameRefusal::NotACounter
                    | FrameRefusal::Exhausted => counts.rejected_malformed += 1,
                }
                self.close(from, CloseReason::SessionFrame(refusal));
            }
        }
    }
}

/// Why a frame from a client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FrameError {
    /// It did not open.
    Open(OpenError),
    /// It opened, but is a replay.
    Replayed,
    /// Session mode: it did not open in its session (a replay, a gap and
    /// a reflection among others: the counter is the replay check).
    Session(FrameRefusal),
}

/// The replay check every client frame that opened passes, in both modes:
/// refuses a nonce `cipher` sealed with itself (a relay frame reflected
/// back), or one accepted before under key index `key` (0 in shared-key
/// mode, the member's index in members mode), and remembers it otherwise.
pub(crate) fn check_replay(
    cipher: &Cipher,
    replays: &mut ReplayWindow,
    key: u32,
    nonce: &[u8; NONCE_LEN],
) -> Result<(), Replayed> {
    if cipher.is_own_nonce(nonce) {
        return Err(Replayed);
    }
    replays.check_and_insert(key, nonce)
}
