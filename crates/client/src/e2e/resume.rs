//! What a dropped connection leaves behind: a commit of ours (an add, a
//! removal or an External Commit) sent on it, whose `mls-ok` or
//! `mls-refused` never came. Back on a new connection, the room's history
//! tells which: our commit in it means the relay took it (it is merged
//! as `mls-ok` would have: a Welcome goes to whoever was added, and the new
//! GroupInfo goes up, so that a device can still join by External Commit);
//! our commit not in it by the relay's `myrooms` means the relay never got
//! it (it is dropped, and made again: the add or removal is still wanted,
//! an External Commit waits again). Either way the room goes on; before,
//! an add or removal in flight left the room waiting for an answer that
//! would never come.

use std::time::Instant;

use super::group::Commit;
use super::{E2eDriver, Output, shown};

impl E2eDriver {
    /// A new connection: each commit still waiting for an answer is
    /// settled by the history that follows, or at `myrooms`.
    pub(super) fn connection_dropped(&mut self) {
        for work in self.work.values_mut() {
            work.unanswered = matches!(
                work.pending,
                Some(Commit::Add { .. } | Commit::Remove { .. } | Commit::External { .. })
            );
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
        self.taken(room, out);
        true
    }

    /// After a reconnect's `myrooms`: a commit the relay never answered
    /// (nor showed in the history) is dropped; an add or removal is made
    /// again, an External Commit waits again.
    pub(super) fn drop_unanswered(&mut self, now: Instant, out: &mut Output) {
        let rooms: Vec<String> = self
            .work
            .iter()
            .filter(|(_, w)| w.unanswered)
            .map(|(room, _)| room.clone())
            .collect();
        for room in rooms {
            let work = self.work_of(&room);
            work.unanswered = false;
            let Some(commit) = work.pending.take() else {
                continue;
            };
            if let Some(device) = &mut self.device
                && device.rooms.is_pending(&room).is_ok_and(|pending| pending)
            {
                let _ = device.rooms.refused(&room);
            }
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
