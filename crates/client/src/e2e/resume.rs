//! What a dropped connection leaves behind: a commit of ours (an add, a
//! removal or an External Commit) sent on it, whose `mls-ok` or
//! `mls-refused` never came. On the next connection the relay sends
//! `welcome`, `myrooms`, then each room's history; the history tells
//! which. Our commit in it means the relay took it: it is finished as
//! `mls-ok` would have finished it (a Welcome goes to whoever was added,
//! the new GroupInfo goes up, so that a device can still join by External
//! Commit). Our commit not in it within [`SETTLE_AFTER`] of `myrooms`
//! means the relay never got it: it is dropped and made again (the add or
//! removal is still wanted; an External Commit waits again). Before, an
//! add or removal in flight left the room waiting for an answer that
//! never came.
//!
//! After a restart the commit is known only to the device (openmls keeps
//! it pending on disk; what this driver kept is gone): read back from the
//! history it is [`eaxchat_e2e::E2eError::OwnPendingCommit`] and merged, its GroupInfo
//! going up (its Welcome is gone: whoever it added joins by External
//! Commit); not read back in time, it is dropped.

use std::time::Instant;

use super::group::{Commit, mls_line};
use super::{E2eDriver, Output, SETTLE_AFTER, shown};

impl E2eDriver {
    /// A new connection: each commit still waiting for an answer is
    /// settled by the history that follows `myrooms`.
    pub(super) fn connection_dropped(&mut self) {
        for work in self.work.values_mut() {
            work.settle_at = None;
            work.unanswered = matches!(
                work.pending,
                Some(Commit::Add { .. } | Commit::Remove { .. } | Commit::External { .. })
            );
        }
        // A commit pending on the device that this run did not make: it
        // was made before a restart.
        let Some(device) = &self.device else {
            return;
        };
        let before_restart: Vec<String> = device
            .rooms
            .rooms()
            .filter(|room| device.rooms.is_pending(room).is_ok_and(|pending| pending))
            .map(str::to_owned)
            .collect();
        for room in before_restart {
            let work = self.work_of(&room);
            if work.pending.is_none() {
                work.unanswered = true;
            }
        }
    }

    /// Our own pending commit read back from `room`
    /// ([`eaxchat_e2e::E2eError::OwnPendingCommit`]) that `own_commit_seen` did not
    /// know: made before a restart. The relay took it: merged, and its
    /// GroupInfo goes up.
    pub(super) fn taken_before_restart(&mut self, room: &str, out: &mut Output) {
        if self.work.get(room).is_some_and(|w| w.pending.is_some()) {
            self.taken(room, out);
            return;
        }
        let work = self.work_of(room);
        work.unanswered = false;
        work.settle_at = None;
        let Some(device) = &mut self.device else {
            return;
        };
        match device.rooms.accepted(room) {
            Ok(info) => {
                let epoch = device.rooms.epoch(room).unwrap_or_default();
                out.send.push(mls_line(room, &info));
                out.show.push(shown::notice(
                    Some(room),
                    &format!("* #{room}: your change to the group made before a restart was taken (epoch {epoch})"),
                ));
                self.observe_members(room, out);
                self.drive(room, out);
            }
            Err(error) => out.show.push(shown::error(
                Some(room),
                &format!("! #{room}: your commit was taken but cannot be merged: {error}"),
            )),
        }
    }

    /// `myrooms` came: the history follows it; what it has not shown by
    /// [`SETTLE_AFTER`] from `now` is taken as lost.
    pub(super) fn settle_later(&mut self, now: Instant) {
        for work in self.work.values_mut().filter(|w| w.unanswered) {
            work.settle_at.get_or_insert(now + SETTLE_AFTER);
        }
    }

    /// A group message of `room`: `true` if it is our own pending commit
    /// (seen in the room's history after the connection dropped, so the
    /// relay took it), now taken as its `mls-ok` would have been.
    pub(super) fn own_commit_seen(&mut self, room: &str, data: &[u8], out: &mut Output) -> bool {
        let sent = match self.work.get(room).and_then(|w| w.pending.as_ref()) {
            Some(
                Commit::Add { commit, .. }
                | Commit::Remove { commit, .. }
                | Commit::External { commit },
            ) => commit,
            Some(Commit::Create) | None => return false,
        };
        if sent.as_slice() != data {
            return false;
        }
        self.work_of(room).settle_at = None;
        self.taken(room, out);
        true
    }

    /// The clock reached `now`: each unanswered commit whose history has
    /// had its time and did not show it is dropped; an add or removal is
    /// made again, an External Commit waits again.
    pub(super) fn settle_due(&mut self, now: Instant, out: &mut Output) {
        let rooms: Vec<String> = self
            .work
            .iter()
            .filter(|(_, w)| w.settle_at.is_some_and(|at| at <= now))
            .map(|(room, _)| room.clone())
            .collect();
        for room in rooms {
            let work = self.work_of(&room);
            work.settle_at = None;
            if !std::mem::take(&mut work.unanswered) {
                continue;
            }
            let commit = work.pending.take();
            if let Some(device) = &mut self.device
                && device.rooms.is_pending(&room).is_ok_and(|pending| pending)
            {
                let _ = device.rooms.refused(&room);
            }
            let Some(commit) = commit else {
                // Made before a restart: what it was for is not known here.
                if self.has_group(&room) {
                    self.drive(&room, out);
                } else {
                    self.await_group(&room, now);
                }
                continue;
            };
            match commit {
                Commit::External { .. } => self.await_group(&room, now),
                Commit::Add { .. } | Commit::Remove { .. } => {
                    out.show.push(shown::notice(
                        Some(&room),
                        &format!(
                            "* #{room}: your last change to the group was lost with the \
                             connection; making it again"
                        ),
                    ));
                    self.drive(&room, out);
                }
                Commit::Create => self.work_of(&room).pending = Some(Commit::Create),
            }
        }
    }
}
