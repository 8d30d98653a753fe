//! Session mode after the handshake: each connection's session keys, its
//! frames opened, what it is sent sealed under its own session, and the
//! sessions closed when their device leaves the members file.
//!
//! Every session has its own keys and counters, so a message is sealed
//! once per recipient session (never shared between connections, as a
//! counter may be used once). One read's run for every recipient is sealed
//! into one block of the relay's kept arena, reserved once for the whole
//! read (a kept block whose runs are all written, `arena.rs`), and each recipient
//! gets a `Bytes` slice of it: no allocation per recipient. A frame is
//! queued as soon as it is sealed, so each session's counters follow the
//! order its frames are written in. The keys were expanded once, at the
//! handshake; the stamp `NAME: ` was built once per member, by the roster.
//!
//! The handshake itself, and session mode's receive path, are
//! `handshake.rs`'s; this file never reads a hello.

use std::io::Write;

use slab::Slab;

use super::arena::Arena;
use super::batch::Batch;
use super::{CloseReason, ConnId, FrameRefusal, HandshakeRefusal, Mode, Peer, Relay};
use crate::members::SessionMembers;
use crate::outbox::Frames;
use crate::roster::Changes;
use crate::session_roster::SessionRoster;
use crate::sweep::FanOut;
use eaxchat_proto::invite::{InviteId, InviteSecret};
use eaxchat_proto::name::Name;
use eaxchat_proto::session::{Opener, PublicKey, Sealer};
use eaxchat_proto::wire;

/// Where a connection stands in session mode.
#[derive(Debug, Default)]
pub(super) enum SessionState {
    /// Not session mode.
    #[default]
    None,
    /// Admitted, waiting for its hello; `key_sent` once it asked for the
    /// relay's key (kind 0x04) and was sent it: a second request is refused.
    AwaitingHello {
        /// The relay's key was sent, in answer to its key request.
        key_sent: bool,
    },
    /// Refused: its refusal line is queued, and once that is written it
    /// closes ([`CloseReason::HandshakeRefused`]). Nothing more it sends is
    /// read.
    Refusing(HandshakeRefusal),
    /// Its code join's SPAKE2 exchange is done (kind 0x06, answered with
    /// 0x07): its next line is the invite join, which must prove this
    /// secret, for this invite.
    CodeAnswered(Box<(InviteId, InviteSecret)>),
    /// The handshake finished: the session's keys.
    Established(Box<PeerSession>),
}

impl SessionState {
    /// Why it was refused, if its refusal is waiting to be written.
    pub(super) fn refusing(&self) -> Option<HandshakeRefusal> {
        match self {
            SessionState::Refusing(why) => Some(*why),
            _ => None,
        }
    }

    /// The established session, if there is one.
    pub(super) fn established(&mut self) -> Option<&mut PeerSession> {
        match self {
            SessionState::Established(session) => Some(session),
            _ => None,
        }
    }

    /// The device key of the established session, if there is one.
    pub(super) fn device(&self) -> Option<&PublicKey> {
        match self {
            SessionState::Established(session) => Some(&session.device),
            _ => None,
        }
    }
}

/// One established session, on the relay's side.
#[derive(Debug)]
pub(super) struct PeerSession {
    /// Seals what the relay sends this connection (relay → client).
    pub(super) sealer: Sealer,
    /// Opens what this connection sends (client → relay).
    pub(super) opener: Opener,
    /// The device key its hello proved.
    pub(super) device: PublicKey,
}

/// One read's fan-out in session mode: the batch sealed under each
/// recipient's session, every run into the one arena.
pub(super) struct SessionFanOut<'a, T> {
    pub(super) peers: &'a mut Slab<Peer<T>>,
    pub(super) fan_out: FanOut<'a>,
    pub(super) closing: &'a mut Vec<ConnId>,
    /// The relay's kept blocks ([`Relay`]'s `arena`, `arena.rs`).
    pub(super) arena: &'a mut Arena,
    pub(super) except: Option<ConnId>,
    pub(super) batch: &'a Batch,
    /// The `eaxchat/1` forms, if someone in the room asked for them.
    pub(super) events: Option<(&'a [u8], &'a [usize])>,
}

impl<T> SessionFanOut<'_, T> {
    /// Queues the batch for each established session in `conns`, the
    /// room's connections, `asked_for_events` of which want JSON events.
    pub(super) fn queue(
        mut self,
        roster: &mut SessionRoster,
        conns: &[ConnId],
        asked_for_events: usize,
    ) {
        let plain_len = self.batch.sealed_len();
        let events_len = self.events.map_or(0, |(_, lens)| {
            lens.iter().map(|&len| wire::encoded_len(len) + 1).sum()
        });
        let plain_count = conns.len().saturating_sub(asked_for_events);
        // A kept block whose runs are all written by now, else a new one.
        let arena = self
            .arena
            .block(plain_len * plain_count + events_len * asked_for_events);
        for &id in conns {
            if Some(id) == self.except {
                continue;
            }
            let Some(peer) = self.peers.get_mut(id) else {
                continue;
            };
            if peer.closing.is_some() {
                continue;
            }
            let events = self.events.filter(|_| peer.chat.events);
            let Some(session) = peer.session.established() else {
                continue;
            };
            let sealed = match events {
                Some((texts, lens)) => roster.seal_joined(&mut session.sealer, texts, lens, arena),
                None => roster.seal_joined(
                    &mut session.sealer,
                    &self.batch.plaintexts,
                    &self.batch.lens,
                    arena,
                ),
            };
            if sealed.is_err() {
                // Only a session that used every counter fails to seal.
                arena.clear();
                peer.closing = Some(CloseReason::SessionFrame(FrameRefusal::Exhausted));
                self.closing.push(id);
                continue;
            }
            peer.outbox
                .push(Frames::new(arena.split().freeze(), self.batch.count));
            self.fan_out.queued(id, &mut peer.place);
        }
        self.fan_out.finish(&*self.peers);
    }
}

impl<T: Write> Relay<T> {
    /// Session mode: serves `members` from now on. The sessions of devices
    /// no longer in it (or now listed under another name) are closed
    /// ([`CloseReason::MemberRemoved`]) within this call; every other
    /// session stays as it is, even when its member lost another device.
    pub(super) fn reload_sessions(&mut self, members: &SessionMembers) -> Changes {
        let Mode::Sessions(roster) = &mut self.mode else {
            return Changes::default();
        };
        let sessions: Vec<(ConnId, Name, PublicKey)> = self
            .peers
            .iter()
            .filter_map(|(id, peer)| {
                let name = roster.name(peer.member?)?.clone();
                Some((id, name, *peer.session.device()?))
            })
            .collect();
        let changes = roster.replace(members);
        let mut removed = Vec::new();
        for (id, name, device) in sessions {
            let seat = roster
                .seat_of(&device)
                .filter(|&seat| roster.name(seat) == Some(&name));
            if let Some(seat) = seat {
                roster.join(seat, id);
            } else {
                removed.push(id);
            }
            if let Some(peer) = self.peers.get_mut(id) {
                peer.member = seat;
            }
        }
        for id in removed {
            if self
                .peers
                .get(id)
                .is_some_and(|peer| peer.closing.is_none())
            {
                self.stats.members_removed += 1;
                self.close(id, CloseReason::MemberRemoved);
            }
        }
        changes
    }
}
