//! The fan-out: a read's [`Batch`] queued for every other open
//! connection, as one shared run per key, and the seed receivers, which
//! get the plaintexts paced into frames of their own.
//!
//! Never a copy or an encryption per recipient where recipients share a
//! key: one reference count each.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use log::debug;
use slab::Slab;

use super::batch::Batch;
use super::session::SessionFanOut;
use super::{CloseReason, ConnId, Mode, Peer, Relay};
use crate::outbox::Frames;
use crate::rooms::RoomId;
use crate::stats::Stats;
use crate::sweep::FanOut;
use eaxchat_proto::cipher::{KeySealer, Seal};
use eaxchat_proto::name::Name;

/// Bytes of one read's fan-out the read size aims at: a read's messages
/// are sealed for every recipient into one arena before any of it is
/// written, and an arena larger than a core's own cache (2 MiB of L2 on
/// the machines measured) goes to the sockets from memory. See
/// [`Relay::read_budget`].
pub const FANOUT_ARENA: usize = 1536 * 1024;

/// The least [`Relay::read_budget`] asks for.
pub const MIN_READ: usize = 4 * 1024;

impl<T: Write> Relay<T> {
    /// How many bytes the caller should read from `id` at once, at most
    /// `max`: as many as keep the read's fan-out (the read, about, times
    /// the others in its room) within [`FANOUT_ARENA`], and never fewer
    /// than [`MIN_READ`]. A read of 64 KiB to 100 recipients made a 6.7 MB
    /// arena; 16 KiB reads deliver more (`docs/performance.md`, "Round
    /// five"), while a connection alone or in a small room still reads all
    /// it can.
    pub fn read_budget(&self, id: ConnId, max: usize) -> usize {
        let others = self
            .peers
            .get(id)
            .and_then(|peer| peer.chat.room)
            .and_then(|room| self.chat.rooms.get(room))
            .map_or(0, |room| room.len().saturating_sub(1));
        (FANOUT_ARENA / others.max(1)).max(MIN_READ).min(max)
    }

    /// Makes `id` a seed receiver.
    pub(super) fn become_seed(&mut self, id: ConnId) {
        if let Some(peer) = self.peers.get_mut(id)
            && peer.paced.is_none()
        {
            peer.paced = Some(Box::default());
            self.seed_peers.push(id);
        }
    }

    /// `id` sent a `\n`: it is a newline client. What waited for it goes
    /// out as lines of their own.
    pub(super) fn stop_seed(&mut self, id: ConnId) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let Some(mut paced) = peer.paced.take() else {
            return;
        };
        self.seed_peers.retain(|&seed| seed != id);
        let mut lines = BytesMut::new();
        let count = match &mut self.mode {
            Mode::Shared(cipher) => paced.seal_each(cipher, &mut lines),
            Mode::Members(roster) => match peer.member.and_then(|seat| roster.sealer(seat)) {
                Some(mut sealer) => paced.seal_each(&mut sealer, &mut lines),
                None => 0,
            },
            // A session connection is never a seed receiver.
            Mode::Sessions(_) => 0,
        };
        if count > 0 && peer.closing.is_none() {
            peer.outbox.push(Frames::new(lines.freeze(), count));
            let mut fan_out = self.sweep.fan_out();
            fan_out.queued(id, &mut peer.place);
            fan_out.finish(&self.peers);
        }
    }

    /// Queues `batch` for every open connection in `from`'s room but
    /// `from`.
    ///
    /// With a shared key one sealed run serves all (and one more, of the
    /// `eaxchat/1` forms, serves those who asked for structured events). In
    /// members mode the stamped plaintexts are sealed once per recipient
    /// member instead, all into one arena ([`MemberFanOut`]); in session
    /// mode once per recipient session, into one arena too
    /// ([`SessionFanOut`]). A seed
    /// receiver gets the plaintexts, sealed into its own frame when one is
    /// due.
    ///
    /// The `max_queue` limit is not checked here but in [`Relay::flush`],
    /// after the recipient had its chance to take this turn's frames: a
    /// relay that stalled and then read a burst from many senders at once
    /// must not blame consumers that are reading fine. A seed receiver's
    /// waiting messages are checked here: they wait for the gap, not for
    /// the socket.
    pub(super) fn queue_for_room(&mut self, from: ConnId, batch: &Batch) {
        let Some(room_id) = self.peers.get(from).and_then(|peer| peer.chat.room) else {
            return;
        };
        let sender = self.name_of(from).cloned();
        self.queue_in_room(room_id, Some(from), sender.as_ref(), batch);
    }

    /// Queues `batch`, said by `sender`, for every open connection in room
    /// `room_id` but `except` (the sender, if it is here).
    pub(super) fn queue_in_room(
        &mut self,
        room_id: RoomId,
        except: Option<ConnId>,
        sender: Option<&Name>,
        batch: &Batch,
    ) {
        if batch.count == 0 {
            return;
        }
        let (now, gap, max_queue) = (self.now, self.seed_write_gap, self.limits.max_queue);
        let Some(room) = self.chat.rooms.get(room_id) else {
            return;
        };
        let first_id = room.said().saturating_sub(batch.count as u64);
        let events = (room.events() > 0).then(|| batch.events(room.name(), sender, first_id));
        let events = events.as_ref().map(|(texts, lens)| (&texts[..], &lens[..]));
        let cipher = match &mut self.mode {
            Mode::Shared(cipher) => cipher,
            Mode::Sessions(roster) => {
                let sessions = SessionFanOut {
                    peers: &mut self.peers,
                    fan_out: self.sweep.fan_out(),
                    closing: &mut self.closing,
                    arena: &mut self.arena,
                    except,
                    batch,
                    events,
                };
                sessions.queue(roster, room.conns(), room.events());
                return;
            }
            Mode::Members(roster) => {
                // A kept block whose runs are all written, else a new one.
                let arena = self.arena.block(batch.sealed_len() * roster.present());
                let mut members = MemberFanOut {
                    peers: &mut self.peers,
                    fan_out: self.sweep.fan_out(),
                    stats: &mut self.stats,
                    closing: &mut self.closing,
                    arena,
                    except,
                    room: room_id,
                    batch,
                    events,
                    now,
                    gap,
                    max_queue,
                };
                roster.for_each_present(|conns, sealer| members.queue(conns, sealer));
                let MemberFanOut { peers, fan_out, .. } = members;
                fan_out.finish(&*peers);
                return;
            }
        };
        // One seal of the read's messages, shared by every recipient: laid
        // out and sealed side by side, as a members relay seals for each.
        let mut sealed = BytesMut::with_capacity(batch.sealed_len());
        batch.seal_plaintexts(cipher, &mut sealed);
        let frames = Frames::new(sealed.freeze(), batch.count);
        let event_frames = events.map(|(texts, lens)| {
            let mut out = BytesMut::with_capacity(texts.len() * 2);
            cipher.seal_joined(texts, lens, &mut out);
            Frames::new(out.freeze(), batch.count)
        });
        let mut fan_out = self.sweep.fan_out();
        for &id in room.conns() {
            if Some(id) == except {
                continue;
            }
            let Some(peer) = self.peers.get_mut(id) else {
                continue;
            };
            if peer.closing.is_some() {
                continue;
            }
            let Some(paced) = peer.paced.as_mut() else {
                match (&event_frames, peer.chat.events) {
                    (Some(event_frames), true) => peer.outbox.push(event_frames.clone()),
                    _ => peer.outbox.push(frames.clone()),
                }
                fan_out.queued(id, &mut peer.place);
                continue;
            };
            match (events, peer.chat.events) {
                (Some((texts, lens)), true) => paced.push(texts, lens),
                _ => paced.push(&batch.plaintexts, &batch.lens),
            }
            if paced.waiting_bytes() + peer.outbox.queued_bytes() > max_queue {
                peer.paced = Some(Box::default());
                peer.outbox.clear();
                self.stats.slow_consumers += 1;
                peer.closing = Some(CloseReason::SlowConsumer);
                self.closing.push(id);
                continue;
            }
            if queue_paced(peer, cipher, now, gap) {
                fan_out.queued(id, &mut peer.place);
            }
        }
        fan_out.finish(&self.peers);
    }
}

/// One read's fan-out in members mode: for each recipient member, the
/// stamped plaintexts sealed once under its key into the shared arena, and
/// that run queued for each of its connections (one reference count each).
struct MemberFanOut<'a, T> {
    peers: &'a mut Slab<Peer<T>>,
    fan_out: FanOut<'a>,
    stats: &'a mut Stats,
    closing: &'a mut Vec<ConnId>,
    /// A block of the relay's kept arena, reserved for every member's run
    /// at once: at most one allocation per read (`arena.rs`).
    arena: &'a mut BytesMut,
    except: Option<ConnId>,
    room: RoomId,
    batch: &'a Batch,
    /// The `eaxchat/1` forms, if someone in the room asked for them.
    events: Option<(&'a [u8], &'a [usize])>,
    now: Instant,
    gap: Duration,
    max_queue: usize,
}

impl<T> MemberFanOut<'_, T> {
    /// Queues the batch for one member's connections, `conns`.
    fn queue(&mut self, conns: &[ConnId], sealer: &mut KeySealer<'_>) {
        let (mut run, mut event_run): (Option<Frames>, Option<Frames>) = (None, None);
        for &id in conns {
            if Some(id) == self.except {
                continue;
            }
            let Some(peer) = self.peers.get_mut(id) else {
                continue;
            };
            if peer.closing.is_some() || !peer.chat.rooms.contains(&self.room) {
                continue;
            }
            let events = self.events.filter(|_| peer.chat.events);
            if let Some(paced) = peer.paced.as_mut() {
                match events {
                    Some((texts, lens)) => paced.push(texts, lens),
                    None => paced.push(&self.batch.plaintexts, &self.batch.lens),
                }
                if paced.waiting_bytes() + peer.outbox.queued_bytes() > self.max_queue {
                    peer.paced = Some(Box::default());
                    peer.outbox.clear();
                    self.stats.slow_consumers += 1;
                    peer.closing = Some(CloseReason::SlowConsumer);
                    self.closing.push(id);
                } else if queue_paced(peer, sealer, self.now, self.gap) {
                    self.fan_out.queued(id, &mut peer.place);
                }
                continue;
            }
            let (batch, arena) = (self.batch, &mut *self.arena);
            let frames = match events {
                Some((texts, lens)) => event_run.get_or_insert_with(|| {
                    sealer.seal_joined(texts, lens, arena);
                    Frames::new(arena.split().freeze(), batch.count)
                }),
                None => run.get_or_insert_with(|| {
                    batch.seal_plaintexts(sealer, arena);
                    Frames::new(arena.split().freeze(), batch.count)
                }),
            };
            peer.outbox.push(frames.clone());
            self.fan_out.queued(id, &mut peer.place);
        }
    }
}

/// Queues a seed receiver's next frame if one is due and its queue is
/// empty (the last one written whole); returns whether it queued one.
fn queue_paced<T>(peer: &mut Peer<T>, cipher: &mut impl Seal, now: Instant, gap: Duration) -> bool {
    let Some(paced) = &mut peer.paced else {
        return false;
    };
    if !peer.outbox.is_empty() {
        return false;
    }
    let Some((line, messages)) = paced.seal_due(cipher, now, gap) else {
        return false;
    };
    debug!("seed frame of {messages} messages");
    peer.outbox.push(Frames::one(line));
    true
}

/// [`queue_paced`] with the key `peer` is sealed for: the shared one, or
/// its member's.
pub(super) fn queue_paced_in<T>(
    mode: &mut Mode,
    peer: &mut Peer<T>,
    now: Instant,
    gap: Duration,
) -> bool {
    match mode {
        Mode::Shared(cipher) => queue_paced(peer, cipher, now, gap),
        Mode::Members(roster) => match peer.member.and_then(|seat| roster.sealer(seat)) {
            Some(mut sealer) => queue_paced(peer, &mut sealer, now, gap),
            None => false,
        },
        Mode::Sessions(_) => false,
    }
}
