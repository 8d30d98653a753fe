//! The invites a session relay holds, and the bounds on guessing them.
//!
//! The server reads its invites file and hands every live invite to
//! [`Relay::set_invites`]; a join (kind 0x03, `handshake.rs`) is checked
//! here before any Diffie-Hellman: an unknown id, an expired, spent or
//! revoked invite gets a clear refusal at once. A join whose secret is
//! wrong is counted three ways, each bounded:
//!
//! - per invite: after [`WRONG_PER_INVITE`] wrong secrets the invite is
//!   burnt (refused from then on, whatever the secret);
//! - per address: an address with [`WRONG_PER_ADDRESS`] wrong secrets in
//!   one [`WRONG_WINDOW`] is refused every join until the window ends;
//! - in total: after [`WRONG_TOTAL`] wrong secrets in one window every
//!   join is refused until it ends.
//!
//! A member's hello may ask for an invite (`handshake.rs` reads the
//! payload): a device of its own (`chat invite-device`), or, when the
//! operator allows it ([`Relay::set_members_invite`]), a new member whose
//! inviter it is recorded as (`chat invite NAME`), checked here: a free
//! name, at most [`MEMBER_INVITES_OPEN`] open at once per member.
//!
//! A successful join becomes a [`Joined`], which the server drains
//! ([`Relay::take_joined`]) and writes to the members file and the
//! invites file before the welcome is written to the socket. This module
//! keeps no clock of its own: the relay's `now` and wall time are passed in.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::Relay;
use eaxchat_proto::invite::code::InviteCode;
use eaxchat_proto::invite::{InviteError, InviteId, InviteSecret};
use eaxchat_proto::name::Name;
use eaxchat_proto::session::PublicKey;

/// Wrong secrets after which an invite is burnt.
pub const WRONG_PER_INVITE: u32 = 8;

/// Wrong secrets one address may send in one [`WRONG_WINDOW`].
pub const WRONG_PER_ADDRESS: u32 = 16;

/// Wrong secrets the relay takes in one [`WRONG_WINDOW`], from everyone.
pub const WRONG_TOTAL: u32 = 256;

/// How long the per-address and total counts last.
pub const WRONG_WINDOW: Duration = Duration::from_secs(3600);

/// The most addresses counted at once: past it the table is cleared (the
/// total bound still holds).
const ADDRESSES_MAX: usize = 4096;

/// One invite as the relay holds it.
#[derive(Debug, Clone)]
pub struct PendingInvite {
    /// Its id, the first 8 bytes of a join's body.
    pub id: InviteId,
    /// The member it admits a device of.
    pub name: Name,
    /// The one-time secret (the join's PSK).
    pub secret: InviteSecret,
    /// When it expires, in Unix milliseconds.
    pub expires_at_millis: u64,
    /// How many joins it still admits.
    pub uses_left: u32,
    /// How many joins it admitted so far.
    pub used: u32,
    /// It adds a device to a member who exists already (`relay invite
    /// NAME --device`); otherwise `name` must be new at its first use, and
    /// its later uses (`--uses N`) add devices to the member it made.
    pub device: bool,
    /// Revoked (`relay invite --revoke`): kept to give a clear refusal.
    pub revoked: bool,
    /// The member who made it, when members may invite.
    pub inviter: Option<Name>,
    /// Its short code, if it has one (`relay invite --code`): a join then
    /// starts with a SPAKE2 exchange, and every exchange is a try.
    pub code: Option<InviteCode>,
}

/// A device that joined by an invite, for the server to write down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The invite used.
    pub id: InviteId,
    /// The member it joined as.
    pub name: Name,
    /// The device's public key.
    pub key: PublicKey,
    /// Who made the invite, if a member did.
    pub inviter: Option<Name>,
}

/// How long an invite a member makes for a new member lasts: as long as
/// `relay invite`'s default.
const MEMBER_INVITE_MILLIS: u64 = 24 * 3600 * 1000;

/// The most invites for new members one member may hold open at once.
pub const MEMBER_INVITES_OPEN: usize = 8;

/// Why a join is refused before its secret is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NotOpen {
    Unknown,
    Expired,
    Spent,
    Revoked,
    Burnt,
    AddressBudget,
    TotalBudget,
}

impl NotOpen {
    /// The refusal's text.
    pub(super) fn text(self) -> String {
        match self {
            NotOpen::Unknown => "invite refused: this relay has no such invite (it may belong \
                                 to another relay); ask for a new one"
                .into(),
            NotOpen::Expired => "invite refused: it has expired; ask for a new one".into(),
            NotOpen::Spent => "invite refused: it has been used already; ask for a new one".into(),
            NotOpen::Revoked => "invite refused: it was revoked; ask for a new one".into(),
            NotOpen::Burnt => format!(
                "invite refused: {WRONG_PER_INVITE} wrong secrets were tried with it, so it no \
                 longer works; ask for a new one"
            ),
            NotOpen::AddressBudget => format!(
                "invite refused: {WRONG_PER_ADDRESS} wrong invite secrets from this address; \
                 try again later"
            ),
            NotOpen::TotalBudget => {
                "invite refused: too many wrong invite secrets lately; try again later".into()
            }
        }
    }
}

struct Held {
    invite: PendingInvite,
    wrong: u32,
}

/// The invites, and the wrong secrets counted in this window.
pub(super) struct Invites {
    by_id: HashMap<InviteId, Held>,
    window_start: Option<Instant>,
    wrong_total: u32,
    wrong_by_address: HashMap<IpAddr, u32>,
    joined: Vec<Joined>,
    /// Device invites members made (`chat invite-device`), and invites
    /// for new members (`chat invite NAME`), for the server to write to
    /// the invites file.
    made: Vec<PendingInvite>,
    /// Members may invite new members (`--members-invite`).
    members_invite: bool,
}

impl Invites {
    pub(super) fn new() -> Invites {
        Invites {
            by_id: HashMap::new(),
            window_start: None,
            wrong_total: 0,
            wrong_by_address: HashMap::new(),
            joined: Vec::new(),
            made: Vec::new(),
            members_invite: false,
        }
    }

    fn roll_window(&mut self, now: Instant) {
        let fresh = self
            .window_start
            .is_some_and(|start| now.saturating_duration_since(start) < WRONG_WINDOW);
        if !fresh {
            self.window_start = Some(now);
            self.wrong_total = 0;
            self.wrong_by_address.clear();
        }
    }

    /// The invite `id` if a join may try its secret now. `counted`: this
    /// join's try was counted already (at its code exchange), so the
    /// bounds allow it one more.
    pub(super) fn open(
        &mut self,
        id: &InviteId,
        ip: Option<IpAddr>,
        now: Instant,
        wall_millis: u64,
        counted: bool,
    ) -> Result<&PendingInvite, NotOpen> {
        let slack = u32::from(counted);
        self.roll_window(now);
        if self.wrong_total >= WRONG_TOTAL + slack {
            return Err(NotOpen::TotalBudget);
        }
        if ip.is_some_and(|ip| {
            self.wrong_by_address.get(&ip).copied().unwrap_or(0) >= WRONG_PER_ADDRESS + slack
        }) {
            return Err(NotOpen::AddressBudget);
        }
        let held = self.by_id.get(id).ok_or(NotOpen::Unknown)?;
        let invite = &held.invite;
        if invite.revoked {
            Err(NotOpen::Revoked)
        } else if held.wrong >= WRONG_PER_INVITE + slack {
            Err(NotOpen::Burnt)
        } else if invite.uses_left == 0 {
            Err(NotOpen::Spent)
        } else if wall_millis >= invite.expires_at_millis {
            Err(NotOpen::Expired)
        } else {
            Ok(invite)
        }
    }

    /// Holds `invite`, which a member made, and keeps it for the server to
    /// write down; an id already held is ignored.
    pub(super) fn add_made(&mut self, invite: PendingInvite) {
        if self.by_id.contains_key(&invite.id) {
            return;
        }
        self.made.push(invite.clone());
        self.by_id.insert(invite.id, Held { invite, wrong: 0 });
    }

    /// The id of the invite whose code has nameplate `nameplate`.
    pub(super) fn by_nameplate(&self, nameplate: u16) -> Option<InviteId> {
        self.by_id
            .values()
            .find(|held| held.invite.code.as_ref().map(|c| c.nameplate) == Some(nameplate))
            .map(|held| held.invite.id)
    }

    /// The invite for a new member that the hello `payload` of `inviter`
    /// asks for, if it asks for one (`None` otherwise), made at
    /// `wall_millis`: one use, a day, `inviter` recorded. `Err` is the
    /// refusal's text: members may not invite here, the request is
    /// malformed, the name is a member's already (`exists`) or an open
    /// invite's, the inviter holds [`MEMBER_INVITES_OPEN`] open invites
    /// already, or the id is taken.
    pub(super) fn member_invite(
        &self,
        payload: &[u8],
        inviter: &Name,
        wall_millis: u64,
        exists: impl FnOnce(&Name) -> bool,
    ) -> Option<Result<PendingInvite, String>> {
        let asked = eaxchat_proto::invite::member_invite_request(payload)?;
        Some(self.check_member_invite(asked, inviter, wall_millis, exists))
    }

    fn check_member_invite(
        &self,
        asked: Result<(Name, InviteId, InviteSecret), InviteError>,
        inviter: &Name,
        wall_millis: u64,
        exists: impl FnOnce(&Name) -> bool,
    ) -> Result<PendingInvite, String> {
        if !self.members_invite {
            return Err(
                "invite refused: this relay does not let members invite others (its \
                        operator may allow it with --members-invite); ask the operator to \
                        run `relay invite NAME`"
                    .into(),
            );
        }
        let (name, id, secret) = asked.map_err(|error| format!("invite refused: {error}"))?;
        if exists(&name) {
            return Err(format!(
                "invite refused: {name} is a member already; pick another name (a device of \
                 your own: chat invite-device)"
            ));
        }
        let open = |held: &&Held| {
            let invite = &held.invite;
            !invite.revoked
                && invite.uses_left > 0
                && wall_millis < invite.expires_at_millis
                && held.wrong < WRONG_PER_INVITE
        };
        let open_invites = || self.by_id.values().filter(open);
        if open_invites().any(|held| held.invite.name == name && !held.invite.device) {
            return Err(format!(
                "invite refused: someone was invited as {name} already and may still join; \
                 pick another name"
            ));
        }
        let mine = open_invites()
            .filter(|held| {
                held.invite.inviter.as_ref() == Some(inviter) && held.invite.name != *inviter
            })
            .count();
        if mine >= MEMBER_INVITES_OPEN {
            return Err(format!(
                "invite refused: you have {mine} open invites; wait until they are used or \
                 expire (a day), or ask the operator to revoke them"
            ));
        }
        if self.by_id.contains_key(&id) {
            return Err("invite refused: that invite id is in use; try again".into());
        }
        Ok(PendingInvite {
            id,
            name,
            secret,
            expires_at_millis: wall_millis.saturating_add(MEMBER_INVITE_MILLIS),
            uses_left: 1,
            used: 0,
            device: false,
            revoked: false,
            inviter: Some(inviter.clone()),
            code: None,
        })
    }

    /// Counts a wrong secret for invite `id` from `ip`; returns the tries
    /// the invite has left.
    pub(super) fn wrong(&mut self, id: &InviteId, ip: Option<IpAddr>) -> u32 {
        self.wrong_total = self.wrong_total.saturating_add(1);
        if let Some(ip) = ip {
            if self.wrong_by_address.len() >= ADDRESSES_MAX {
                self.wrong_by_address.clear();
            }
            let count = self.wrong_by_address.entry(ip).or_insert(0);
            *count = count.saturating_add(1);
        }
        self.by_id.get_mut(id).map_or(0, |held| {
            held.wrong = held.wrong.saturating_add(1);
            WRONG_PER_INVITE.saturating_sub(held.wrong)
        })
    }

    /// Spends one use of invite `id` on device `key`.
    pub(super) fn spend(&mut self, id: &InviteId, key: PublicKey) {
        if let Some(held) = self.by_id.get_mut(id) {
            held.invite.uses_left = held.invite.uses_left.saturating_sub(1);
            held.invite.used = held.invite.used.saturating_add(1);
            self.joined.push(Joined {
                id: *id,
                name: held.invite.name.clone(),
                key,
                inviter: held.invite.inviter.clone(),
            });
        }
    }
}

impl<T: Write> Relay<T> {
    /// Session mode: the invites a join may use from now on, as the
    /// invites file holds them. The wrong secrets counted for an invite
    /// that stays are kept; a use spent since the file was last written
    /// and not yet in it stays spent.
    pub fn set_invites(&mut self, mut invites: Vec<PendingInvite>) {
        // Invites members made that the file does not show yet stay.
        for made in &self.invites.made {
            if !invites.iter().any(|invite| invite.id == made.id) {
                invites.push(made.clone());
            }
        }
        let mut by_id = HashMap::with_capacity(invites.len());
        for mut invite in invites {
            let (wrong, uses) = self
                .invites
                .by_id
                .get(&invite.id)
                .map_or((0, u32::MAX), |held| (held.wrong, held.invite.uses_left));
            let pending = self.invites.joined.iter().filter(|j| j.id == invite.id);
            let pending = u32::try_from(pending.count()).unwrap_or(u32::MAX);
            invite.uses_left = invite.uses_left.saturating_sub(pending).min(uses);
            invite.used = invite.used.saturating_add(pending);
            by_id.insert(invite.id, Held { invite, wrong });
        }
        self.invites.by_id = by_id;
    }

    /// The devices that joined since the last call, for the server to add
    /// to the members file (and to spend in the invites file) before the
    /// welcomes are written.
    pub fn take_joined(&mut self) -> Vec<Joined> {
        std::mem::take(&mut self.invites.joined)
    }

    /// The device invites members made since the last call, for the server
    /// to add to the invites file.
    pub fn take_made_invites(&mut self) -> Vec<PendingInvite> {
        std::mem::take(&mut self.invites.made)
    }

    /// Session mode: whether a member may ask, in its hello, for an invite
    /// that adds a new member (`--members-invite`; off by default). The
    /// member is recorded as the invite's inviter.
    pub fn set_members_invite(&mut self, on: bool) {
        self.invites.members_invite = on;
    }

    /// The invites held, for tests and `relay status`.
    pub fn invite_count(&self) -> usize {
        self.invites.by_id.len()
    }
}
