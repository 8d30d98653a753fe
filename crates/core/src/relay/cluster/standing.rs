//! What this relay takes from a relay that serves its people differently.
//!
//! Every envelope says its origin's [`Standing`]: its mode and the
//! fingerprint of its members file. The rule:
//! - **another mode**: refused whole. A shared-key relay's names are
//!   `/nick`s anyone may claim; taken by a members relay they would pass
//!   for its members. Logged once per relay and standing, counted in
//!   `cluster_rejected`.
//! - **the same mode, other members** (a members file being changed and
//!   reloaded on one relay before another, or files that differ for good):
//!   logged once per relay and fingerprint; while they differ, a name is
//!   taken from that relay only if it is a member here. A message, a
//!   private message or a presence change from a name that is not is
//!   refused (counted in `cluster_rejected`); names that are not members
//!   here are left out of the people it reports.
//! - In members and session mode a room or private message with no sender
//!   is refused at any time: such a relay never sends one.
//!
//! It decides only what is taken; delivering it is `cluster.rs`'s.

use std::io::Write;

use log::{info, warn};

use super::super::{Mode, Relay};
use crate::cluster::envelope::{Body, Change, ClusterMode, Envelope, Standing, members_print};
use eaxchat_proto::name::Name;

impl<T: Write> Relay<T> {
    /// This relay's mode and members fingerprint.
    pub(super) fn own_standing(&self) -> Standing {
        match &self.mode {
            Mode::Shared(_) => Standing::SHARED,
            Mode::Members(roster) => Standing {
                mode: ClusterMode::Members,
                members: members_print(roster.names().map(|name| (name.as_str(), Vec::new()))),
            },
            Mode::Sessions(roster) => Standing {
                mode: ClusterMode::Sessions,
                members: members_print(roster.members().map(|(name, keys)| {
                    (
                        name.as_str(),
                        keys.iter().map(|key| *key.as_bytes()).collect(),
                    )
                })),
            },
        }
    }

    /// Whether `name` is a member here (always, in shared-key mode).
    fn member_here(&self, name: &Name) -> bool {
        match &self.mode {
            Mode::Shared(_) => true,
            Mode::Members(roster) => roster.connections_of(name).is_some(),
            Mode::Sessions(roster) => roster.connections_of(name).is_some(),
        }
    }

    /// Checks `envelope`'s standing against this relay's: `false` if it is
    /// refused; names that are not members here are taken out of the
    /// people it reports. Logs a new difference once.
    pub(super) fn admit_standing(&mut self, envelope: &mut Envelope) -> bool {
        let own = self.own_standing_cached();
        let (origin, theirs) = (envelope.origin, envelope.standing);
        let Some(cluster) = &mut self.cluster else {
            return false;
        };
        if theirs.mode != own.mode {
            if cluster.note_mismatch(origin, theirs) {
                warn!(
                    "cluster: refusing relay {origin:016x}: it serves {} and this relay {}; \
                     a name there is not a name here, so nothing of it is taken (every relay \
                     of a cluster must run the same mode)",
                    theirs.mode, own.mode
                );
            }
            return false;
        }
        let differ = theirs.members != own.members;
        if differ {
            if cluster.note_mismatch(origin, theirs) {
                warn!(
                    "cluster: relay {origin:016x} has other members (fingerprint {:016x}, \
                     here {:016x}): until the members files agree, only names that are \
                     members here are taken from it",
                    theirs.members, own.members
                );
            }
        } else if cluster.clear_mismatch(origin) {
            info!("cluster: relay {origin:016x} has the same members as this relay again");
        }
        if own.mode == ClusterMode::Shared {
            return true;
        }
        match &mut envelope.body {
            Body::Room { from, .. } | Body::Private { from, .. } => from
                .as_ref()
                .is_some_and(|name| !differ || self.member_here(name)),
            Body::Presence {
                name, change, here, ..
            } => {
                if differ {
                    let old_ok = match change {
                        Change::Renamed(old) => self.member_here(old),
                        Change::Joined | Change::Left => true,
                    };
                    if !old_ok || !self.member_here(name) {
                        return false;
                    }
                    here.names.retain(|(name, _)| self.member_here(name));
                }
                true
            }
            Body::State { rooms, .. } => {
                if differ {
                    for room in rooms.iter_mut() {
                        room.names.retain(|(name, _)| self.member_here(name));
                    }
                }
                true
            }
            Body::Bye => true,
        }
    }

    /// This relay's standing as its envelopes say it (set at the last
    /// heartbeat), so that a check costs no hashing.
    fn own_standing_cached(&self) -> Standing {
        self.cluster
            .as_ref()
            .map_or(Standing::SHARED, |cluster| cluster.standing())
    }
}
