//! One room's group as the driver runs it: making it, the commits that
//! add and remove members (one at a time per room, each pending until the
//! relay says `mls-ok` or `mls-refused`), retrying a refused one after the
//! winner is processed (at most [`super::MAX_RETRIES`] in a row), text
//! queued while a commit is pending, and reading each group message in
//! room order.
//!
//! A removal always goes first: the relay refuses application messages in
//! a room until the removal it announced is committed.

use std::time::Instant;

use base64::Engine as _;
use eaxchat_e2e::ds::{Peeked, check_key_package, peek};
use eaxchat_e2e::{E2eError, Event, Member, Pin, hex};
use eaxchat_proto::events::{ParsedEvent, ParsedKind};

use super::external::{before_joining, is_application};
use super::{BASE64, E2eDriver, MAX_RETRIES, Output, shown};

/// A commit of ours the relay has not answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Commit {
    /// The first GroupInfo, which makes the room's group at the relay.
    Create,
    /// Adds `name`'s devices; `welcome` goes out once it is taken
    /// (`commit`, as sent: the room's history shows it if the relay took
    /// it while the connection was down).
    Add {
        name: String,
        welcome: Vec<u8>,
        commit: Vec<u8>,
    },
    /// Removes `name`'s devices (`commit`, as sent).
    Remove { name: String, commit: Vec<u8> },
    /// Joins the group by External Commit (`commit`, as sent: the room's
    /// history shows it if the relay took it while the connection was
    /// down).
    External { commit: Vec<u8> },
}

/// `/mls ROOM <base64>`.
pub(super) fn mls_line(room: &str, bytes: &[u8]) -> Vec<u8> {
    format!("/mls {room} {}", BASE64.encode(bytes)).into_bytes()
}

impl E2eDriver {
    /// Makes `room`'s group and sends its GroupInfo, which makes the group
    /// at the relay (or is refused if someone was first).
    pub(super) fn create(&mut self, room: &str, out: &mut Output) {
        let Some(device) = &mut self.device else {
            return;
        };
        match device.rooms.create(room) {
            Ok(info) => {
                out.send.push(mls_line(room, &info));
                self.work_of(room).pending = Some(Commit::Create);
            }
            Err(error) => out.show.push(shown::error(
                Some(room),
                &format!("! could not make the group of #{room}: {error}"),
            )),
        }
    }

    /// Text typed in end-to-end `room`: encrypted and sent, or queued
    /// while a commit is pending, or refused with a reason.
    pub(super) fn say(&mut self, room: &str, text: String, out: &mut Output) {
        if !self.has_group(room) {
            out.show.push(shown::error(
                Some(room),
                &format!(
                    "! not sent: this device is not in #{room}'s end-to-end group yet \
                     (a member online adds it, or it joins by itself within seconds if none is)"
                ),
            ));
            return;
        }
        let work = self.work_of(room);
        work.queued.push(text);
        if work.pending.is_none() && work.removes.is_empty() {
            self.flush_queued(room, out);
        } else {
            self.drive(room, out);
        }
    }

    fn flush_queued(&mut self, room: &str, out: &mut Output) {
        let queued = std::mem::take(&mut self.work_of(room).queued);
        let Some(device) = &mut self.device else {
            return;
        };
        for text in queued {
            match device.rooms.encrypt(room, &text) {
                Ok(bytes) => out.send.push(mls_line(room, &bytes)),
                Err(error) => out.show.push(shown::error(
                    Some(room),
                    &format!("! not sent in #{room}: {error}"),
                )),
            }
        }
    }

    /// Starts the next commit `room` needs, if none is pending: removals
    /// first, then adds (by asking for KeyPackages); with nothing to
    /// commit, the queued text goes out.
    pub(super) fn drive(&mut self, room: &str, out: &mut Output) {
        if !self.has_group(room) {
            return;
        }
        loop {
            let work = self.work_of(room);
            if work.pending.is_some() {
                return;
            }
            let Some(name) = work.removes.first().cloned() else {
                break;
            };
            let Some(device) = &mut self.device else {
                return;
            };
            match device.rooms.remove(room, &name) {
                Ok(commit) => {
                    out.send.push(mls_line(room, &commit));
                    self.work_of(room).pending = Some(Commit::Remove { name, commit });
                    return;
                }
                Err(E2eError::NotMember(_)) => {
                    self.work_of(room).removes.remove(&name);
                }
                Err(error) => {
                    self.work_of(room).removes.remove(&name);
                    out.show.push(shown::error(
                        Some(room),
                        &format!("! could not remove {name} from #{room}'s group: {error}"),
                    ));
                }
            }
        }
        // Text needs no add to go first: it goes at the current epoch.
        self.flush_queued(room, out);
        let adds: Vec<String> = self.work_of(room).adds.iter().cloned().collect();
        for name in adds {
            let rooms = self.awaiting.entry(name.clone()).or_default();
            if rooms.is_empty() {
                out.send.push(format!("/keypackages {name}").into_bytes());
            }
            rooms.insert(room.to_owned());
        }
    }

    /// `/keypackages NAME` came back: commit the add in each room that
    /// waits for it.
    pub(super) fn key_packages(&mut self, name: &str, packages: &[Vec<u8>], out: &mut Output) {
        let rooms = self.awaiting.remove(name).unwrap_or_default();
        for room in rooms {
            let work = self.work_of(&room);
            if !work.adds.contains(name) || work.pending.is_some() {
                continue;
            }
            // Only packages that are `name`'s (the relay is not trusted to
            // say) and of devices not in the group already.
            let present: Vec<Vec<u8>> = self
                .device
                .as_ref()
                .and_then(|d| d.rooms.members(&room).ok())
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.signature_key)
                .collect();
            let packages: Vec<Vec<u8>> = packages
                .iter()
                .filter(|p| {
                    check_key_package(p, name).is_ok_and(|c| !present.contains(&c.signature_key))
                })
                .cloned()
                .collect();
            let work = self.work_of(&room);
            if packages.is_empty() {
                work.adds.remove(name);
                out.show.push(shown::notice(
                    Some(&room),
                    &format!("* {name}: no device to add to #{room}'s group (none new has a KeyPackage at the relay)"),
                ));
                self.drive(&room, out);
                continue;
            }
            let Some(device) = &mut self.device else {
                return;
            };
            match device.rooms.add(&room, &packages) {
                Ok((commit, welcome)) => {
                    out.send.push(mls_line(&room, &commit));
                    self.work_of(&room).pending = Some(Commit::Add {
                        name: name.to_owned(),
                        welcome,
                        commit,
                    });
                }
                Err(error) => {
                    self.work_of(&room).adds.remove(name);
                    out.show.push(shown::error(
                        Some(&room),
                        &format!("! could not add {name} to #{room}'s group: {error}"),
                    ));
                    self.drive(&room, out);
                }
            }
        }
    }

    /// `mls-ok`: our commit in `room` was taken.
    pub(super) fn taken(&mut self, room: &str, out: &mut Output) {
        let work = self.work_of(room);
        work.refusals = 0;
        work.unanswered = false;
        let Some(commit) = work.pending.take() else {
            return;
        };
        if let Commit::External { .. } = commit {
            self.joined_externally(room, out);
            return;
        }
        let Some(device) = &mut self.device else {
            return;
        };
        if commit == Commit::Create {
            out.show.push(shown::notice(
                Some(room),
                &format!("* #{room} is end-to-end: you made its group; only its members' devices can read it"),
            ));
            self.drive(room, out);
            return;
        }
        let info = match device.rooms.accepted(room) {
            Ok(info) => info,
            Err(error) => {
                out.show.push(shown::error(
                    Some(room),
                    &format!("! #{room}: your commit was taken but cannot be merged: {error}"),
                ));
                return;
            }
        };
        let epoch = device.rooms.epoch(room).unwrap_or_default();
        match commit {
            Commit::Add { name, welcome, .. } => {
                out.send.push(mls_line(room, &welcome));
                out.send.push(mls_line(room, &info));
                self.work_of(room).adds.remove(&name);
                out.show.push(shown::notice(
                    Some(room),
                    &format!("* you added {name} to #{room}'s group (epoch {epoch})"),
                ));
                self.observe_members(room, out);
            }
            Commit::Remove { name, .. } => {
                out.send.push(mls_line(room, &info));
                self.work_of(room).removes.remove(&name);
                out.show.push(shown::notice(
                    Some(room),
                    &format!("* you removed {name} from #{room}'s group (epoch {epoch})"),
                ));
            }
            Commit::Create | Commit::External { .. } => {}
        }
        self.drive(room, out);
    }

    /// `mls-refused`: our commit lost (the winner was processed already:
    /// the relay sends it first), or a message was refused.
    pub(super) fn refused(&mut self, room: &str, text: &str, now: Instant, out: &mut Output) {
        let work = self.work_of(room);
        work.unanswered = false;
        let Some(commit) = work.pending.take() else {
            out.show.push(shown::error(Some(room), text));
            return;
        };
        if let Commit::External { .. } = commit {
            self.external_refused(room, now, out);
            return;
        }
        work.refusals += 1;
        let give_up = work.refusals > MAX_RETRIES;
        if give_up {
            work.adds.clear();
            work.removes.clear();
        }
        if let Some(device) = &mut self.device {
            if commit == Commit::Create {
                let _ = device.rooms.forget(room);
                out.show.push(shown::waiting(room));
                self.await_group(room, now);
                return;
            }
            // Nothing to drop if processing the winner dropped it already.
            let _ = device.rooms.refused(room);
        }
        if give_up {
            out.show.push(shown::error(
                Some(room),
                &format!("! #{room}: commits refused {MAX_RETRIES} times in a row; waiting for the relay to ask again"),
            ));
            return;
        }
        self.drive(room, out);
    }

    /// One group message of `room`, in room order. A history one that
    /// shows no message is counted as skipped, so that the terminal app's
    /// history page completes.
    pub(super) fn group_message(&mut self, room: &str, event: &ParsedEvent, out: &mut Output) {
        let shown = out.show.len();
        self.read_group_message(room, event, out);
        let message = out.show[shown..].iter().any(|line| {
            ParsedEvent::parse(line)
                .is_some_and(|e| matches!(e.kind, ParsedKind::Message | ParsedKind::Action))
        });
        if event.history && !message {
            out.history_skipped = Some(room.to_owned());
        }
    }

    fn read_group_message(&mut self, room: &str, event: &ParsedEvent, out: &mut Output) {
        if self.device.is_none() {
            return;
        }
        let kind = peek(&event.data);
        if let Ok(Peeked::Welcome { .. }) = kind {
            if self.external_pending(room) {
                // Used once the relay has answered our External Commit
                // (it refuses it: the Welcome's add took the epoch).
                self.work_of(room).welcome = Some(event.data.clone());
            } else {
                self.join_welcome(room, &event.data, out);
            }
            return;
        }
        if matches!(kind, Ok(Peeked::GroupInfo { .. })) {
            return;
        }
        if self.own_commit_seen(room, &event.data, out) {
            return;
        }
        if !self.has_group(room) {
            if matches!(kind, Ok(Peeked::Application { .. })) {
                out.show.push(shown::before_joined(room, event));
            }
            return;
        }
        let Some(device) = &mut self.device else {
            return;
        };
        match device.rooms.process(room, &event.data) {
            Ok(Event::Application {
                from,
                device_key,
                text,
            }) => {
                if let Some(key) = device_key {
                    self.pin(room, &from, &key, out);
                }
                out.show.push(shown::message(room, &from, &text, event));
            }
            Ok(Event::Commit {
                by,
                epoch,
                added,
                removed,
                removed_me,
            }) => {
                self.committed(room, &by, epoch, &added, &removed, removed_me, out);
            }
            Ok(Event::Proposal { .. }) => {}
            // Sent before this device joined (or while it joins): a line
            // for a message, nothing for a commit.
            Err(error) if before_joining(&error) => {
                if is_application(&event.data) {
                    out.show.push(shown::before_joined(room, event));
                }
            }
            Err(E2eError::Duplicate | E2eError::OwnMessage) => {}
            Err(E2eError::OwnPendingCommit) => self.taken_before_restart(room, out),
            Err(error) => out.show.push(shown::error(
                Some(room),
                &format!(
                    "! #{room}: a message from {} could not be read: {error}",
                    event.from.as_deref().unwrap_or("someone")
                ),
            )),
        }
    }

    /// A Welcome to `room` (as the relay says): this device is in the
    /// group it names, replacing any it had.
    pub(super) fn join_welcome(&mut self, room: &str, data: &[u8], out: &mut Output) {
        let Some(device) = &mut self.device else {
            return;
        };
        match device.rooms.join_welcome(data) {
            Ok((joined, epoch)) => {
                out.show.push(shown::notice(
                    Some(&joined),
                    &format!("* you are in #{joined}'s end-to-end group now (epoch {epoch}): you read what is said from now on"),
                ));
                let work = self.work_of(&joined);
                work.join_at = None;
                work.joining = false;
                self.observe_members(&joined, out);
                // A Welcome used up one of our KeyPackages.
                self.upload(1, out);
                self.drive(&joined, out);
            }
            Err(error) => out.show.push(shown::error(
                Some(room),
                &format!("! a Welcome to #{room} could not be used: {error}"),
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn committed(
        &mut self,
        room: &str,
        by: &str,
        epoch: u64,
        added: &[Member],
        removed: &[Member],
        removed_me: bool,
        out: &mut Output,
    ) {
        for member in added {
            self.work_of(room).adds.remove(&member.name);
            let text = if member.name == by {
                // An External Commit (nobody online added it), or a new
                // device its member's other device added.
                format!("* a device of {by} joined #{room}'s group (epoch {epoch})")
            } else {
                format!(
                    "* {by} added {} to #{room}'s group (epoch {epoch})",
                    member.name
                )
            };
            out.show.push(shown::notice(Some(room), &text));
            self.pin(room, &member.name, &member.signature_key, out);
        }
        for member in removed {
            self.work_of(room).removes.remove(&member.name);
            out.show.push(shown::notice(
                Some(room),
                &format!(
                    "* {by} removed {} from #{room}'s group (epoch {epoch})",
                    member.name
                ),
            ));
        }
        if removed_me {
            out.show.push(shown::error(
                Some(room),
                &format!("! you were removed from #{room}'s group: you read nothing more of it"),
            ));
            return;
        }
        // A commit of ours that lost is answered `mls-refused` next; that
        // drives the room. Otherwise what is queued may go now.
        if self.work_of(room).pending.is_none() {
            self.drive(room, out);
        }
    }

    /// Pins every member's device seen in `room`'s group.
    pub(super) fn observe_members(&mut self, room: &str, out: &mut Output) {
        let Some(device) = &self.device else {
            return;
        };
        let own = device.rooms.device().signature_key().to_vec();
        let members = device.rooms.members(room).unwrap_or_default();
        for member in members.into_iter().filter(|m| m.signature_key != own) {
            self.pin(room, &member.name, &member.signature_key, out);
        }
    }

    /// Trust on first use of `name`'s device `key`; a new key for a name
    /// seen before is a loud line in `room`.
    fn pin(&mut self, room: &str, name: &str, key: &[u8], out: &mut Output) {
        let Some(device) = &mut self.device else {
            return;
        };
        if key == device.rooms.device().signature_key() {
            return;
        }
        match device.pins.observe(name, key) {
            Ok(Pin::Added) => {
                let short: String = hex(key).chars().take(8).collect();
                out.show.push(shown::error(
                    Some(room),
                    &format!("! {name} has a new device (key {short}…) — /verify {name}"),
                ));
            }
            Ok(Pin::New | Pin::Known) => {}
            Err(error) => out.show.push(shown::error(
                Some(room),
                &format!("! could not pin {name}'s device key: {error}"),
            )),
        }
    }
}
