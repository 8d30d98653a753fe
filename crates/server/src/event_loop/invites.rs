//! A session relay's invites, from the poll loop: the invites file
//! (`MEMBERS.invites`, `members_file::invites`) read again when it
//! changes (looked at about once a second) and handed to
//! [`Relay::set_invites`](eaxchat_core::relay::Relay::set_invites); and
//! each device that joined by an invite written to the members file and
//! spent in the invites file, before the loop writes its welcome (with
//! its inviter beside it, when a member invited it); and the invites
//! members made (`chat invite-device`, and `chat invite NAME` under
//! `--members-invite`) added to the invites file.
//!
//! Writing the join down before the welcome goes out means a device that
//! got its welcome is in the members file: a relay killed in between
//! leaves a device that never heard back (it may join again with the
//! invite only if uses remain), never a member the file does not know.
//! Both files are replaced atomically, so a kill at any point leaves each
//! whole.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Instant, SystemTime};

use log::{error, info, warn};

use super::{MEMBERS_CHECK_INTERVAL, Server};
use crate::members_file::{self, invites};

/// When the invites file was last read, and what it looked like then.
#[derive(Debug, Default)]
pub(super) struct InvitesWatch {
    stamp: Option<(Option<SystemTime>, u64, u64)>,
    next_check: Option<Instant>,
    read_once: bool,
}

fn stamp_of(path: &Path) -> Option<(Option<SystemTime>, u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len(), meta.ino()))
}

impl Server {
    /// Session mode: lets members ask for invites that add new members
    /// (`--members-invite`), each recorded with its inviter.
    pub fn set_members_invite(&mut self, on: bool) {
        self.relay.set_members_invite(on);
    }

    /// Session mode: writes down each device that joined by an invite since
    /// the last call (the members file, then the invites file).
    pub(super) fn write_joined(&mut self) {
        let joined = self.relay.take_joined();
        let made = self.relay.take_made_invites();
        if joined.is_empty() && made.is_empty() {
            return;
        }
        let Some(members) = self.members.as_ref().map(|watch| watch.path().to_owned()) else {
            return;
        };
        for invite in made {
            let id = invite.id;
            if let Err(e) = invites::add(&members, invite) {
                error!("invite {id}: a member's device invite was not written down: {e}");
            }
        }
        for join in joined {
            // A member who invited someone else is written beside the new
            // member (`relay members list` shows it); a device a member
            // added for themselves names the invite only.
            let label = match &join.inviter {
                Some(inviter) if *inviter != join.name => {
                    format!("invited-by: {inviter}, invite {}", join.id)
                }
                Some(inviter) => format!("invite {} from {inviter}", join.id),
                None => format!("invite {}", join.id),
            };
            match members_file::add_device(&members, &join.name, &join.key, Some(&label)) {
                Ok(()) => info!(
                    "invite {}: {} added to {} with device {}",
                    join.id,
                    join.name,
                    members.display(),
                    join.key.fingerprint()
                ),
                Err(e) => error!(
                    "invite {}: {} joined but was not written to the members file (it lasts \
                     until the relay stops): {e}",
                    join.id, join.name
                ),
            }
            if let Err(e) = invites::spend(&members, &join.id) {
                error!("invite {}: its use was not written down: {e}", join.id);
            }
        }
    }

    /// Session mode: reads the invites file if it changed since last seen
    /// (looked at once a second; always on the first turn, before any
    /// join is read).
    pub(super) fn watch_invites(&mut self) {
        if !self.relay.is_sessions() {
            return;
        }
        let Some(members) = self.members.as_ref().map(|watch| watch.path().to_owned()) else {
            return;
        };
        let now = Instant::now();
        let watch = &mut self.admin.invites;
        if watch.next_check.is_some_and(|at| now < at) {
            return;
        }
        watch.next_check = Some(now + MEMBERS_CHECK_INTERVAL);
        let path = invites::invites_path(&members);
        let stamp = stamp_of(&path);
        if watch.read_once && stamp == watch.stamp {
            return;
        }
        let first = !watch.read_once;
        watch.read_once = true;
        watch.stamp = stamp;
        match invites::read(&path) {
            Ok(list) => {
                if !first || !list.is_empty() {
                    let now = invites::now_millis();
                    let open = list
                        .iter()
                        .filter(|i| !i.revoked && i.uses_left > 0 && now < i.expires_at_millis)
                        .count();
                    info!(
                        "invites file {} read: {} invites, {open} open",
                        path.display(),
                        list.len()
                    );
                }
                self.relay.set_invites(list);
            }
            Err(e) => warn!("invites file not read, keeping the invites held: {e}"),
        }
    }
}
