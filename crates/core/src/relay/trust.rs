//! Trust accounting and the relay's clock.
//!
//! A connection that has sent bytes but no frame that opened is unproven:
//! what it holds counts against the pre-auth budget, and its first-frame
//! deadline runs ([`crate::guard`]). Where proof is required (members and
//! session mode, and a shared key with [`super::Limits::require_proof`]) a
//! connection is unproven from its admission, so one that never sends is
//! closed at the deadline too; with a shared key and no such requirement a
//! connection that never sends may be an original notebook receiver, and
//! is left alone. The clock is the caller's
//! ([`Relay::set_now`]); the timed work due by it, deadlines and seed
//! receivers' frames, is run by [`Relay::run_timers`]. Nothing here reads a
//! clock, and an authenticated connection is never closed by these rules.

use std::io::Write;
use std::time::Instant;

use super::fanout::queue_paced_in;
use super::{CloseReason, ConnId, Relay};
use crate::guard::Deadline;

/// How far a connection has proven itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trust {
    /// Has sent nothing, and proof is not required of it: holds nothing,
    /// and no deadline runs.
    Silent,
    /// Has sent bytes but no frame that opened: its first-frame deadline
    /// runs, and the bytes it holds count against the pre-auth budget.
    Unproven {
        /// Bytes it holds, as counted in the budget.
        held: usize,
    },
    /// A frame of its opened: no longer limited by this module's rules.
    Authenticated,
}

impl<T: Write> Relay<T> {
    /// Tells the relay the time. The server calls it once per loop turn,
    /// before reading; tests and fuzz targets set it as they like.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// When timed work is next due ([`Relay::run_timers`]), if any: a
    /// first-frame deadline, or a seed receiver's next frame.
    pub fn next_timer(&self) -> Option<Instant> {
        let gap = self.seed_write_gap;
        let next_paced = self
            .seed_peers
            .iter()
            .filter_map(|&id| {
                let peer = self.peers.get(id)?;
                if peer.closing.is_some() || !peer.outbox.is_empty() {
                    return None;
                }
                peer.paced.as_ref()?.next_due(self.now, gap)
            })
            .min();
        [
            self.deadlines.next_due(),
            next_paced,
            self.cluster_next_timer(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Does the timed work due at the time last set: closes every
    /// connection whose first-frame deadline has passed and that has not
    /// authenticated since, and queues the next frame of each seed receiver
    /// whose gap has passed.
    pub fn run_timers(&mut self) {
        while let Some(deadline) = self.deadlines.pop_due(self.now) {
            if self.is_unproven(&deadline) {
                self.stats.first_frame_timeouts += 1;
                self.close(deadline.id, CloseReason::FirstFrameTimeout);
            }
        }
        let (now, gap) = (self.now, self.seed_write_gap);
        let mut fan_out = self.sweep.fan_out();
        for &id in &self.seed_peers {
            if let Some(peer) = self.peers.get_mut(id)
                && peer.closing.is_none()
                && queue_paced_in(&mut self.mode, peer, now, gap)
            {
                fan_out.queued(id, &mut peer.place);
            }
        }
        fan_out.finish(&self.peers);
        self.cluster_timers();
    }

    /// `id`, just admitted, must prove itself: it is unproven from now,
    /// and its first-frame deadline runs from now.
    pub(super) fn await_proof(&mut self, id: ConnId) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        peer.trust = Trust::Unproven { held: 0 };
        self.deadlines.start(id, peer.serial, self.now);
    }

    /// Whether connections must prove themselves before they are sent
    /// anything: always in members and session mode, with a shared key
    /// when [`super::Limits::require_proof`] says so.
    pub fn requires_proof(&self) -> bool {
        self.is_members() || self.limits.require_proof
    }

    /// Shared key with `require_proof`: a frame of `id`'s just opened. If
    /// it is the first, `id` enters the default room now, owed the history
    /// from then on; it was sent nothing before.
    pub(super) fn enter_when_proven(&mut self, id: ConnId) {
        let waiting = self.peers.get(id).is_some_and(|peer| {
            peer.trust != Trust::Authenticated && peer.chat.room.is_none() && !peer.chat.arrived
        });
        if waiting {
            self.enter_default_room(id);
        }
    }

    /// Whether `deadline` still names an open, unproven connection.
    fn is_unproven(&self, deadline: &Deadline) -> bool {
        self.peers.get(deadline.id).is_some_and(|peer| {
            peer.serial == deadline.serial
                && peer.closing.is_none()
                && matches!(peer.trust, Trust::Unproven { .. })
        })
    }

    /// After a read from `from`: marks it authenticated if a frame of its
    /// opened, else counts what it now holds against the pre-auth budget
    /// (starting its first-frame deadline at its first byte, if it was
    /// silent and not yet required to prove itself), and closes
    /// the unauthenticated connections holding the most while the budget
    /// is passed.
    pub(super) fn account_trust(&mut self, from: ConnId, opened: bool) {
        let Some(peer) = self.peers.get_mut(from) else {
            return;
        };
        let before = match peer.trust {
            Trust::Authenticated => return,
            Trust::Silent => {
                if peer.closing.is_none() {
                    self.deadlines.start(from, peer.serial, self.now);
                }
                0
            }
            Trust::Unproven { held } => held,
        };
        if opened {
            peer.trust = Trust::Authenticated;
            self.pre_auth.update(before, 0);
            return;
        }
        let held = if peer.closing.is_some() {
            0
        } else {
            peer.reader.buffered()
        };
        peer.trust = Trust::Unproven { held };
        self.pre_auth.update(before, held);
        while self.pre_auth.is_over() {
            let most = self
                .peers
                .iter()
                .filter(|(_, peer)| peer.closing.is_none())
                .filter_map(|(id, peer)| match peer.trust {
                    Trust::Unproven { held } if held > 0 => Some((held, id)),
                    _ => None,
                })
                .max();
            let Some((_, id)) = most else {
                break;
            };
            self.stats.pre_auth_over_budget += 1;
            self.close(id, CloseReason::PreAuthOverBudget);
        }
    }
}
