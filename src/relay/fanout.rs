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
use super::{CloseReason, ConnId, Mode, Peer, Relay};
use crate::cipher::{KeySealer, Seal};
use crate::outbox::Frames;
use crate::stats::Stats;
use crate::sweep::FanOut;

impl<T: Write> Relay<T> {
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
        };
        if count > 0 && peer.closing.is_none() {
            peer.outbox.push(Frames::new(lines.freeze(), count));
            let mut fan_out = self.sweep.fan_out();
            fan_out.queued(id, &mut peer.place);
            fan_out.finish(&self.peers);
        }
    }

    /// Queues `batch` for every open connection except `from`.
    ///
    /// With a shared key one sealed run serves all. In members mode the
    /// stamped plaintexts are sealed once per recipient member instead, all
    /// into one arena ([`MemberFanOut`]). A seed receiver gets the
    /// plaintexts, sealed into its own frame when one is due.
    ///
    /// The `max_queue` limit is not checked here but in [`Relay::flush`],
    /// after the recipient had its chance to take this turn's frames: a
    /// relay that stalled and then read a burst from many senders at once
    /// must not blame consumers that are reading fine. A seed receiver's
    /// waiting messages are checked here: they wait for the gap, not for
    /// the socket.
    pub(super) fn queue_for_all_but(&mut self, from: ConnId, batch: &Batch) {
        let (now, gap, max_queue) = (self.now, self.seed_write_gap, self.limits.max_queue);
        let cipher = match &mut self.mode {
            Mode::Shared(cipher) => cipher,
            Mode::Members(roster) => {
                let mut members = MemberFanOut {
                    peers: &mut self.peers,
                    fan_out: self.sweep.fan_out(),
                    stats: &mut self.stats,
                    closing: &mut self.closing,
                    arena: BytesMut::with_capacity(batch.sealed_len() * roster.present()),
                    from,
                    batch,
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
        let frames = Frames::new(batch.sealed.clone().freeze(), batch.count);
        let mut fan_out = self.sweep.fan_out();
        for (id, peer) in self.peers.iter_mut() {
            if id == from || peer.closing.is_some() {
                continue;
            }
            let Some(paced) = peer.paced.as_mut().filter(|_| batch.keep_plaintexts) else {
                peer.outbox.push(frames.clone());
                fan_out.queued(id, &mut peer.place);
                continue;
            };
            paced.push(&batch.plaintexts, &batch.lens);
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
    /// Sized for every member's run at once: one allocation per read.
    arena: BytesMut,
    from: ConnId,
    batch: &'a Batch,
    now: Instant,
    gap: Duration,
    max_queue: usize,
}

impl<T> MemberFanOut<'_, T> {
    /// Queues the batch for one member's connections, `conns`.
    fn queue(&mut self, conns: &[ConnId], sealer: &mut KeySealer<'_>) {
        let mut run: Option<Frames> = None;
        for &id in conns {
            if id == self.from {
                continue;
            }
            let Some(peer) = self.peers.get_mut(id) else {
                continue;
            };
            if peer.closing.is_some() {
                continue;
            }
            if let Some(paced) = peer.paced.as_mut() {
                paced.push(&self.batch.plaintexts, &self.batch.lens);
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
            let frames = run.get_or_insert_with(|| {
                self.batch.seal_plaintexts(sealer, &mut self.arena);
                Frames::new(self.arena.split().freeze(), self.batch.count)
            });
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
    }
}
