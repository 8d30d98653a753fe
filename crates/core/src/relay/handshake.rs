//! Session mode's way in: a connection's hello read, answered with a
//! welcome or a refusal, and its receive path from then on.
//!
//! A connection is admitted waiting for its hello, and its first-frame
//! deadline runs from its admission, not from its first byte: one that
//! never speaks is closed too. Until its handshake finishes, what it holds
//! counts against the pre-auth budget, and its first line may be at most
//! [`MAX_LINE`] bytes: a longer one is refused as it grows, before any
//! work. Each attempt costs at most one [`Responder::read_hello`] (and one
//! accept): one hello per connection, and nothing read after a refusal.
//!
//! - A hello that does not read (garbage, truncated, oversized, another
//!   kind of line, a client that pinned another relay key) gets
//!   [`Responder::refusal_for`] its error.
//! - A hello whose key is no member's device gets a refusal naming the
//!   key's fingerprint and saying the operator must add it.
//! - A known device gets its welcome: the connection is that member's from
//!   then on, in the default room, its session's keys kept with it.
//!
//! Before its hello a client with no pin for this relay may ask for the
//! relay's key, once (trust on first use: a key request, kind 0x04). It is
//! answered with the key as a plain line (kind 0x05) and still waits for
//! its hello: the deadline keeps running from admission and its bytes
//! still count against the pre-auth budget. A second key request is a
//! first line that is not a hello, refused like any other; one after the
//! hello closes the connection as any early line does.
//!
//! Instead of a hello, a new device may send an invite join (kind 0x03,
//! `take_join`): the invite is looked up by its id and checked (open, and
//! within the wrong-secret bounds of `invites.rs`) before any
//! Diffie-Hellman; a join that proves the invite's secret adds its key to
//! the invite's member (in the roster now, in the members file by the
//! server before the welcome is written) and is welcomed like a hello. A
//! short code's join first sends a code start (kind 0x06, `take_code`),
//! answered with the SPAKE2 reply (0x07) and counted as a try; its join
//! then proves the exchange's secret instead of the invite's.
//!
//! A refusal is a plain line, never sealed. The connection closes once it
//! is written (`flush.rs`); nothing it sends after is read.
//! A line that comes after the hello in the same read was sent before the
//! client could have read the welcome (a second hello, or a frame it could
//! not seal yet): it closes the connection. Frames are never taken from a
//! connection before its welcome: until then its only line is the hello.

use std::io::Write;
use std::ops::ControlFlow;

use bytes::Bytes;
use log::{debug, info};
use memchr::memchr;

use super::WRONG_PER_INVITE;
use super::batch::Batch;
use super::invites::{NotOpen, PendingInvite};
use super::session::{PeerSession, SessionState};
use super::trust::Trust;
use super::{CloseReason, ConnId, HandshakeRefusal, Mode, Relay};
use crate::outbox::Frames;
use crate::roster::Seat;
use eaxchat_proto::invite::code::{self, split_code_start};
use eaxchat_proto::invite::{self, split_join};
use eaxchat_proto::lines::LineReader;
use eaxchat_proto::name::Name;
use eaxchat_proto::session::{
    Kind, MAX_LINE, RELAY_KEY_MARK, Responder, SessionError, decode_line, peek_kind, refusal_line,
    relay_key_line,
};

/// The longest line that may be a key request: a body-less line is four
/// characters of base64, and a line a client ends with `\r\n` keeps a `\r`
/// or two; anything longer is left to the hello's reading.
const KEY_REQUEST_MAX: usize = 8;

/// Where a session-mode connection's read stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Its next line is its hello.
    Hello,
    /// Its hello was accepted in this read: a line after it is too early.
    Welcomed,
    /// Established before this read: its lines are frames.
    Frames,
}

impl<T: Write> Relay<T> {
    /// Session mode: `id`, just admitted, waits for its hello. Its
    /// deadline runs from now, and it is unproven from the start.
    pub(super) fn await_hello(&mut self, id: ConnId) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        peer.session = SessionState::AwaitingHello { key_sent: false };
        peer.trust = Trust::Unproven { held: 0 };
        self.deadlines.start(id, peer.serial, self.now);
    }

    /// Session mode's [`Relay::receive`]: the hello, if it has not come,
    /// then frames opened in the session.
    pub(super) fn receive_session(&mut self, from: ConnId, data: &[u8]) {
        let Some(peer) = self.peers.get_mut(from) else {
            return;
        };
        if peer.closing.is_some() {
            return;
        }
        self.stats.bytes_in += data.len() as u64;
        let mut phase = match peer.session {
            SessionState::AwaitingHello { .. } | SessionState::CodeAnswered(_) => Phase::Hello,
            SessionState::Established(_) => Phase::Frames,
            SessionState::Refusing(_) | SessionState::None => return,
        };
        let mut reader = std::mem::take(&mut peer.reader);
        let mut member = peer.member;
        // The hello may end in a `\r` before its `\n`.
        let first_line = reader.buffered() + memchr(b'\n', data).unwrap_or(data.len());
        if phase == Phase::Hello && first_line > MAX_LINE + 1 {
            self.refuse_hello(from, &SessionError::LineTooLong { len: first_line });
            self.account_trust(from, false);
            return;
        }
        let mut batch = Batch::new(self.wall_millis());
        let fed = reader.feed(data, |line| {
            self.take_session_line(from, &mut phase, &mut member, &mut batch, line)
        });
        if fed.is_err() && !self.is_closing(from) {
            self.stats.rejected.too_long += 1;
            self.close(from, CloseReason::LineTooLong);
        }
        if phase == Phase::Welcomed && reader.buffered() > 0 && !self.is_closing(from) {
            // The start of a line sent before the welcome could have come.
            self.stats.sessions.unfinished += 1;
            self.close(from, CloseReason::HandshakeUnfinished);
        }
        if let Some(peer) = self.peers.get_mut(from) {
            let done = peer.closing.is_some() || matches!(peer.session, SessionState::Refusing(_));
            // Nothing more is read from a connection closing or refused.
            peer.reader = if done { LineReader::default() } else { reader };
        }
        self.account_trust(from, phase == Phase::Welcomed);
        self.queue_batch(from, &batch);
    }

    /// One line of `from`'s, as its phase takes it. Stops the reading when
    /// the connection is refused or closed.
    fn take_session_line(
        &mut self,
        from: ConnId,
        phase: &mut Phase,
        member: &mut Option<Seat>,
        batch: &mut Batch,
        line: &[u8],
    ) -> ControlFlow<()> {
        match *phase {
            Phase::Hello if self.answers_key_request(from, line) => ControlFlow::Continue(()),
            Phase::Hello if peek_kind(line) == Some(Kind::CodeStart) => {
                if self.take_code(from, line) {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            }
            Phase::Hello => match if peek_kind(line) == Some(Kind::InviteJoin) {
                self.take_join(from, line)
            } else {
                self.take_hello(from, line)
            } {
                Some(seat) => {
                    *member = Some(seat);
                    *phase = Phase::Welcomed;
                    ControlFlow::Continue(())
                }
                None => ControlFlow::Break(()),
            },
            Phase::Welcomed => {
                self.stats.sessions.unfinished += 1;
                self.close(from, CloseReason::HandshakeUnfinished);
                ControlFlow::Break(())
            }
            Phase::Frames => match self.take_frame(from, *member, batch, line) {
                Ok(()) if self.is_closing(from) => ControlFlow::Break(()),
                Ok(()) => ControlFlow::Continue(()),
                Err(error) => {
                    self.reject(from, error);
                    ControlFlow::Break(())
                }
            },
        }
    }

    /// Reads `from`'s hello: welcomes a member's device (returning its
    /// member), or refuses it.
    fn take_hello(&mut self, from: ConnId, line: &[u8]) -> Option<Seat> {
        let wall = self.wall_millis();
        let Mode::Sessions(roster) = &mut self.mode else {
            return None;
        };
        let responder = match Responder::read_hello(roster.identity(), line) {
            Ok(responder) => responder,
            Err(error) => {
                self.refuse_hello(from, &error);
                return None;
            }
        };
        let key = *responder.initiator_key();
        let fingerprint = key.fingerprint();
        let Some((seat, name)) = roster
            .seat_of(&key)
            .and_then(|seat| Some((seat, roster.name(seat)?.clone())))
        else {
            info!("conn {from}: handshake refused: unknown key {fingerprint}");
            let refusal = responder.refuse(&format!(
                "unknown key {fingerprint}: no member of this relay has it; the relay's \
                 operator must add it to the members file (a line `NAME {key}`)"
            ));
            self.refuse(from, refusal, HandshakeRefusal::UnknownKey);
            return None;
        };
        if let Some(invite) = device_invite(responder.payload(), &name, wall) {
            info!("conn {from}: {name} made device invite {}", invite.id);
            self.invites.add_made(invite);
        }
        let exists = |asked: &Name| roster.connections_of(asked).is_some();
        match self
            .invites
            .member_invite(responder.payload(), &name, wall, exists)
        {
            Some(Ok(invite)) => {
                info!(
                    "conn {from}: {name} made invite {} for a new member, {}",
                    invite.id, invite.name
                );
                self.invites.add_made(invite);
            }
            Some(Err(text)) => {
                info!("conn {from}: {name}'s invite for a new member refused: {text}");
                let refusal = responder.refuse(&text);
                self.refuse(from, refusal, HandshakeRefusal::BadHello);
                return None;
            }
            None => {}
        }
        self.welcome(from, responder, seat, &name)
    }

    /// Reads `from`'s invite join (kind 0x03): an open invite whose secret
    /// the join proves adds the joiner's new key to the invite's member and
    /// welcomes it; anything else is refused with what went wrong, and a
    /// wrong secret is counted (`invites.rs`).
    fn take_join(&mut self, from: ConnId, line: &[u8]) -> Option<Seat> {
        let (id, message) = match split_join(line) {
            Ok(split) => split,
            Err(error) => {
                self.refuse_hello(from, &error);
                return None;
            }
        };
        let ip = self.peers.get(from)?.ip;
        let wall = self.wall_millis();
        let Mode::Sessions(roster) = &mut self.mode else {
            return None;
        };
        let relay_key = roster.public_key().fingerprint();
        // After a code exchange the join proves the exchange's secret, and
        // its try was counted when the exchange was.
        let code = match self.peers.get(from).map(|peer| &peer.session) {
            Some(SessionState::CodeAnswered(answered)) if answered.0 == id => {
                Some(answered.1.clone())
            }
            _ => None,
        };
        let invite = match self.invites.open(&id, ip, self.now, wall, code.is_some()) {
            Ok(invite) => invite.clone(),
            Err(why) => {
                info!("conn {from}: invite {id} refused: {why:?}");
                let text = format!("{}; {RELAY_KEY_MARK}{relay_key}", why.text());
                self.refuse(from, refusal_line(&text), HandshakeRefusal::BadHello);
                return None;
            }
        };
        let secret = code.as_ref().unwrap_or(&invite.secret);
        let responder = match invite::read_join(roster.identity(), secret, &message) {
            Ok(responder) => responder,
            // Refused on its length, before any Diffie-Hellman: no secret
            // was tried, so nothing is counted.
            Err(error) if error != SessionError::HelloDidNotDecrypt => {
                self.refuse_hello(from, &error);
                return None;
            }
            Err(_) if code.is_some() => {
                info!("conn {from}: invite {id}: wrong code");
                let text = format!(
                    "invite refused: wrong code (each try counts; {WRONG_PER_INVITE} burn the \
                     invite); {RELAY_KEY_MARK}{relay_key}"
                );
                self.refuse(from, refusal_line(&text), HandshakeRefusal::BadHello);
                return None;
            }
            Err(error) => {
                let left = self.invites.wrong(&id, ip);
                info!("conn {from}: invite {id}: wrong secret ({left} tries left): {error}");
                let text = format!(
                    "invite refused: the join did not decrypt: a wrong invite secret, or this \
                     relay is not the one the invite names ({left} tries left on this \
                     invite); {RELAY_KEY_MARK}{relay_key}"
                );
                self.refuse(from, refusal_line(&text), HandshakeRefusal::BadHello);
                return None;
            }
        };
        let key = *responder.initiator_key();
        let known = roster.seat_of(&key).is_some();
        let taken =
            !invite.device && invite.used == 0 && roster.connections_of(&invite.name).is_some();
        if known || taken {
            let text = if known {
                format!(
                    "invite refused: this device's key is a member's already; \
                     {RELAY_KEY_MARK}{relay_key}"
                )
            } else {
                format!(
                    "invite refused: {} is a member already (a device invite adds a device); \
                     {RELAY_KEY_MARK}{relay_key}",
                    invite.name
                )
            };
            self.refuse(from, responder.refuse(&text), HandshakeRefusal::BadHello);
            return None;
        }
        let seat = roster.add_device(&invite.name, key);
        self.invites.spend(&id, key);
        info!(
            "conn {from}: invite {id} joined {} with device {}",
            invite.name,
            key.fingerprint()
        );
        self.welcome(from, responder, seat, &invite.name)
    }

    /// Answers `from`'s code start (kind 0x06): an open code invite with
    /// this nameplate gets the SPAKE2 reply (kind 0x07), and the try is
    /// counted now, right code or wrong; anything else is refused. True
    /// when the connection goes on to its join.
    fn take_code(&mut self, from: ConnId, line: &[u8]) -> bool {
        let ip = self.peers.get(from).and_then(|peer| peer.ip);
        let wall = self.wall_millis();
        let Mode::Sessions(roster) = &self.mode else {
            return false;
        };
        let relay_key = *roster.public_key();
        let fingerprint = relay_key.fingerprint();
        let first = matches!(
            self.peers.get(from).map(|peer| &peer.session),
            Some(SessionState::AwaitingHello { .. })
        );
        let start = match decode_line(line) {
            Ok(start) if first => start,
            Ok(_) => {
                self.refuse_hello(
                    from,
                    &SessionError::UnexpectedKind {
                        expected: Kind::InviteJoin,
                        got: Kind::CodeStart,
                    },
                );
                return false;
            }
            Err(error) => {
                self.refuse_hello(from, &error);
                return false;
            }
        };
        let Some((nameplate, message)) = split_code_start(start.body()) else {
            self.refuse_hello(from, &SessionError::EmptyLine);
            return false;
        };
        let opened = match self.invites.by_nameplate(nameplate) {
            Some(id) => self
                .invites
                .open(&id, ip, self.now, wall, false)
                .map(|invite| (id, invite.code.clone())),
            None => Err(NotOpen::Unknown),
        };
        let (id, code) = match opened {
            Ok((id, Some(code))) => (id, code),
            Ok((_, None)) | Err(_) => {
                let why = opened.err().unwrap_or(NotOpen::Unknown);
                info!("conn {from}: invite code {nameplate}-… refused: {why:?}");
                let text = format!("{}; {RELAY_KEY_MARK}{fingerprint}", why.text());
                self.refuse(from, refusal_line(&text), HandshakeRefusal::BadHello);
                return false;
            }
        };
        let left = self.invites.wrong(&id, ip);
        let (reply, secret) = match code::answer_code(&code, &relay_key, &id, message) {
            Ok(answered) => answered,
            Err(error) => {
                self.refuse_hello(from, &error);
                return false;
            }
        };
        debug!("conn {from}: invite {id}: code exchange ({left} tries left)");
        let Some(peer) = self.peers.get_mut(from) else {
            return false;
        };
        peer.session = SessionState::CodeAnswered(Box::new((id, secret)));
        peer.outbox.push(Frames::one(Bytes::from(reply)));
        let mut fan_out = self.sweep.fan_out();
        fan_out.queued(from, &mut peer.place);
        fan_out.finish(&self.peers);
        true
    }

    /// Accepts `responder` as `seat` (member `name`): queues the welcome,
    /// makes the connection that member's session, in the default room.
    fn welcome(
        &mut self,
        from: ConnId,
        responder: Responder,
        seat: Seat,
        name: &Name,
    ) -> Option<Seat> {
        let Mode::Sessions(roster) = &mut self.mode else {
            return None;
        };
        let key = *responder.initiator_key();
        let fingerprint = key.fingerprint();
        let (welcome, established) = match responder.accept(name.as_str()) {
            Ok(accepted) => accepted,
            Err(error) => {
                self.refuse_hello(from, &error);
                return None;
            }
        };
        let (sealer, opener) = established.session.into_parts();
        let peer = self.peers.get_mut(from)?;
        peer.session = SessionState::Established(Box::new(PeerSession {
            sealer,
            opener,
            device: key,
        }));
        peer.member = Some(seat);
        // The welcome goes first: everything after it is sealed.
        peer.outbox.push(Frames::one(Bytes::from(welcome)));
        let mut fan_out = self.sweep.fan_out();
        fan_out.queued(from, &mut peer.place);
        fan_out.finish(&self.peers);
        roster.join(seat, from);
        self.stats.sessions.accepted += 1;
        info!("conn {from}: session as {name} ({fingerprint})");
        self.enter_default_room(from);
        Some(seat)
    }

    /// Answers `line` with the relay's key if it is `from`'s first key
    /// request; false for any other line (a second request included), which
    /// is then read as its hello.
    fn answers_key_request(&mut self, from: ConnId, line: &[u8]) -> bool {
        let Mode::Sessions(roster) = &self.mode else {
            return false;
        };
        // A key request is `BA==` (perhaps with a `\r`): a hello is far
        // longer and is decoded once, by the responder, not here too.
        if line.len() > KEY_REQUEST_MAX
            || !matches!(decode_line(line), Ok(line) if line.kind() == Kind::KeyRequest)
        {
            return false;
        }
        let Some(peer) = self.peers.get_mut(from) else {
            return false;
        };
        if !matches!(
            peer.session,
            SessionState::AwaitingHello { key_sent: false }
        ) {
            return false;
        }
        peer.session = SessionState::AwaitingHello { key_sent: true };
        peer.outbox.push(Frames::one(Bytes::from(relay_key_line(
            roster.public_key(),
        ))));
        let mut fan_out = self.sweep.fan_out();
        fan_out.queued(from, &mut peer.place);
        fan_out.finish(&self.peers);
        debug!("conn {from}: sent the relay's key (key request)");
        true
    }

    /// Refuses `from`'s hello for `error`, naming the relay's fingerprint.
    fn refuse_hello(&mut self, from: ConnId, error: &SessionError) {
        let Mode::Sessions(roster) = &self.mode else {
            return;
        };
        debug!("conn {from}: handshake refused: {error}");
        let refusal = Responder::refusal_for(error, roster.public_key());
        self.refuse(from, refusal, HandshakeRefusal::BadHello);
    }

    /// Queues `refusal` for `from` and reads nothing more from it; it
    /// closes once the refusal is written.
    fn refuse(&mut self, from: ConnId, refusal: Vec<u8>, why: HandshakeRefusal) {
        let Some(peer) = self.peers.get_mut(from) else {
            return;
        };
        match why {
            HandshakeRefusal::BadHello => self.stats.sessions.refused_bad_hello += 1,
            HandshakeRefusal::UnknownKey => self.stats.sessions.refused_unknown_key += 1,
        }
        peer.session = SessionState::Refusing(why);
        peer.outbox.push(Frames::one(Bytes::from(refusal)));
        let mut fan_out = self.sweep.fan_out();
        fan_out.queued(from, &mut peer.place);
        fan_out.finish(&self.peers);
    }
}

/// How long a device invite a member makes lasts.
const DEVICE_INVITE_MILLIS: u64 = 3600 * 1000;

/// The device invite a member's hello asks for, if its payload does
/// (`eaxchat_proto::invite::device_invite_request`): one use, an hour,
/// adding a device to `name` only (`chat invite-device`).
fn device_invite(payload: &[u8], name: &Name, wall_millis: u64) -> Option<PendingInvite> {
    let (id, secret) = invite::device_invite_request(payload)?;
    Some(PendingInvite {
        id,
        name: name.clone(),
        secret,
        expires_at_millis: wall_millis.saturating_add(DEVICE_INVITE_MILLIS),
        uses_left: 1,
        used: 0,
        device: true,
        revoked: false,
        inviter: Some(name.clone()),
        code: None,
    })
}
