//! Joining a group by External Commit when no member is online to add this
//! device, as the Python client and the page do: an end-to-end room this
//! device has no group in waits [`super::EXTERNAL_JOIN_AFTER`] for a
//! Welcome; then it asks `/groupinfo ROOM` again (for the newest), makes
//! an External Commit from it (openmls checks the GroupInfo's signature
//! and tree; a GroupInfo that does not check joins nothing) and sends it
//! with `/mls`. `mls-ok` makes the group this device's (its new GroupInfo
//! goes up, the text typed meanwhile goes out); `mls-refused` drops it and
//! waits again (at most [`super::MAX_RETRIES`] in a row). A Welcome that
//! comes first wins: the relay then refuses our commit, and that answer
//! leaves the Welcome's group alone.
//!
//! The clock is the caller's: each wait is a deadline the front end is
//! told of ([`E2eDriver::poll_timeout`]) and wakes the driver at
//! ([`E2eDriver::handle_timeout`]).

use std::time::Instant;

use eaxchat_e2e::E2eError;
use eaxchat_e2e::ds::{Peeked, peek};

use super::group::Commit;
use super::{E2eDriver, EXTERNAL_JOIN_AFTER, MAX_RETRIES, Output, group, shown};

impl E2eDriver {
    /// When the driver wants waking next (a room's wait for a Welcome
    /// ends), if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.work
            .values()
            .flat_map(|w| [w.join_at, w.settle_at])
            .flatten()
            .min()
    }

    /// The clock reached `now`: each room whose wait for a Welcome is over
    /// asks for its GroupInfo, to join by External Commit.
    pub fn handle_timeout(&mut self, now: Instant) -> Output {
        let mut out = Output::default();
        self.settle_due(now, &mut out);
        let due: Vec<String> = self
            .work
            .iter()
            .filter(|(_, w)| w.join_at.is_some_and(|at| at <= now))
            .map(|(room, _)| room.clone())
            .collect();
        for room in due {
            let needed = self.device.is_some() && self.is_e2e(&room) && !self.has_group(&room);
            let work = self.work_of(&room);
            work.join_at = None;
            if needed && work.pending.is_none() {
                work.joining = true;
                out.send.push(format!("/groupinfo {room}").into_bytes());
            }
        }
        out
    }

    /// `room` is end-to-end and this device has no group there: unless a
    /// Welcome comes within [`EXTERNAL_JOIN_AFTER`] of `now`, it joins by
    /// itself.
    pub(super) fn await_group(&mut self, room: &str, now: Instant) {
        if self.has_group(room) {
            return;
        }
        let work = self.work_of(room);
        if work.pending.is_none() && work.join_at.is_none() && !work.joining {
            work.join_at = Some(now + EXTERNAL_JOIN_AFTER);
        }
    }

    /// The relay's `groupinfo` for `room`: joined by External Commit if it
    /// was asked for that, else (the first look at the room) a Welcome is
    /// awaited.
    pub(super) fn group_info(&mut self, room: &str, data: &[u8], now: Instant, out: &mut Output) {
        if self.has_group(room) {
            return;
        }
        if !std::mem::take(&mut self.work_of(room).joining) {
            out.show.push(shown::waiting(room));
            self.await_group(room, now);
            return;
        }
        if self.work_of(room).pending.is_some() {
            return;
        }
        let Some(device) = &mut self.device else {
            return;
        };
        let made = match device.rooms.join_external(data) {
            Ok(made) => made,
            Err(error) => {
                out.show.push(shown::error(
                    Some(room),
                    &format!(
                        "! #{room}'s GroupInfo from the relay did not check: not joined ({error})"
                    ),
                ));
                return;
            }
        };
        let (joined, commit) = made;
        if joined != room {
            let _ = device.rooms.forget(&joined);
            out.show.push(shown::error(
                Some(room),
                &format!("! the relay gave #{joined}'s GroupInfo for #{room}: not joined"),
            ));
            return;
        }
        out.send.push(group::mls_line(room, &commit));
        self.work_of(room).pending = Some(Commit::External { commit });
    }

    /// `mls-ok` for our External Commit (or the commit seen in the room's
    /// history after the connection dropped): the group is this device's.
    pub(super) fn joined_externally(&mut self, room: &str, out: &mut Output) {
        // A Welcome for an add that lost to our commit: nothing to use.
        self.work_of(room).welcome = None;
        let Some(device) = &mut self.device else {
            return;
        };
        // Not pending: a Welcome replaced the group already, nothing to merge.
        if device.rooms.is_pending(room).is_ok_and(|pending| pending) {
            match device.rooms.accepted(room) {
                Ok(info) => {
                    out.send.push(group::mls_line(room, &info));
                    out.show.push(shown::notice(
                        Some(room),
                        &format!(
                            "* this device joined #{room}'s group by itself (no member was online \
                             to add it): you read from now on, not what was said before"
                        ),
                    ));
                    self.observe_members(room, out);
                }
                Err(error) => {
                    let _ = device.rooms.forget(room);
                    out.show.push(shown::error(
                        Some(room),
                        &format!("! #{room}: this device's External Commit was taken but cannot be merged: {error}"),
                    ));
                    self.not_sent(room, out);
                    return;
                }
            }
        }
        self.drive(room, out);
    }

    /// `mls-refused` for our External Commit: another commit took the
    /// epoch first (the relay sent it before this answer). Dropped, and
    /// tried again after the wait, unless a Welcome brought us in.
    pub(super) fn external_refused(&mut self, room: &str, now: Instant, out: &mut Output) {
        let Some(device) = &mut self.device else {
            return;
        };
        if !device.rooms.is_pending(room).is_ok_and(|pending| pending) {
            // The Welcome's group is ours; what was typed meanwhile goes.
            self.drive(room, out);
            return;
        }
        if let Err(error) = device.rooms.refused(room) {
            out.show
                .push(shown::error(Some(room), &format!("! #{room}: {error}")));
        }
        if let Some(welcome) = self.work_of(room).welcome.take() {
            self.join_welcome(room, &welcome, out);
            return;
        }
        let work = self.work_of(room);
        work.refusals += 1;
        if work.refusals > MAX_RETRIES {
            work.refusals = 0;
            out.show.push(shown::error(
                Some(room),
                &format!(
                    "! #{room}: this device's External Commits were refused {MAX_RETRIES} times \
                     in a row; waiting for a member online to add it"
                ),
            ));
            self.not_sent(room, out);
            return;
        }
        self.await_group(room, now);
    }

    /// Whether our External Commit in `room` waits for the relay's answer.
    pub(super) fn external_pending(&self, room: &str) -> bool {
        let ours = self
            .work
            .get(room)
            .is_some_and(|w| matches!(w.pending, Some(Commit::External { .. })));
        ours && self
            .device
            .as_ref()
            .is_some_and(|d| d.rooms.is_pending(room).is_ok_and(|pending| pending))
    }

    /// Text held for `room` that cannot go: said, not lost silently.
    fn not_sent(&mut self, room: &str, out: &mut Output) {
        let queued = std::mem::take(&mut self.work_of(room).queued);
        for text in queued {
            out.show.push(shown::error(
                Some(room),
                &format!("! not sent in #{room} (this device is not in its group): {text}"),
            ));
        }
    }
}

/// Whether `data` is an application message (the only kind a reader sees
/// a line for when it cannot open it).
pub(super) fn is_application(data: &[u8]) -> bool {
    matches!(peek(data), Ok(Peeked::Application { .. }))
}

/// Whether `error` means this device cannot read the message because it
/// was sent before it joined (or while it is joining).
pub(super) fn before_joining(error: &E2eError) -> bool {
    matches!(
        error,
        E2eError::BeforeJoined { .. } | E2eError::CommitPending
    )
}
