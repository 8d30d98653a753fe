//! A session relay's invites file: `MEMBERS.invites` beside the members
//! file, mode 0600, one invite a line:
//!
//! ```text
//! ID NAME expires=UNIX_MS uses=LEFT used=DONE secret=BASE64URL [device] [revoked] [inviter=NAME] [code=N-W-W-W]
//! ```
//!
//! `relay invite` writes it whether the relay runs or not; a running relay
//! reads it again when it changes (`event_loop/admin.rs`) and spends an
//! invite's use in it after a join. Every change is a read-modify-write
//! under an exclusive lock on `MEMBERS.invites.lock`, and the file itself
//! is replaced atomically (temp file, fsync, rename), so a `relay invite`
//! racing a join loses neither, and a crash at any point leaves a whole
//! file. The secrets live here and only here: the members file gets
//! public keys only, and a spent, expired or revoked invite's secret is
//! wiped from the file when it is next written.

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eaxchat_core::relay::PendingInvite;
use eaxchat_proto::invite::code::{InviteCode, NAMEPLATE_MAX};
use eaxchat_proto::invite::{Invite, InviteId, InviteSecret, SECRET_LEN};
use eaxchat_proto::name::Name;
use eaxchat_proto::session::PublicKey;

use super::replace_file;

/// Spent, expired and revoked invites are kept (secret wiped) this long
/// for `--list` and clear refusals, then dropped.
const KEEP_DONE_MILLIS: u64 = 7 * 24 * 3600 * 1000;

/// The invites file of the members file `members`.
pub fn invites_path(members: &Path) -> PathBuf {
    let mut name = members.as_os_str().to_owned();
    name.push(".invites");
    PathBuf::from(name)
}

/// Now, in Unix milliseconds.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// Why the invites file could not be used.
#[derive(Debug)]
pub enum InvitesError {
    /// Reading, locking or writing it failed.
    Io(PathBuf, io::Error),
    /// A line does not parse.
    Line(PathBuf, usize, &'static str),
    /// No invite has this id.
    NoSuchInvite(InviteId),
}

impl std::fmt::Display for InvitesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvitesError::Io(path, error) => write!(f, "{}: {error}", path.display()),
            InvitesError::Line(path, line, what) => {
                write!(f, "{}:{line}: {what}", path.display())
            }
            InvitesError::NoSuchInvite(id) => write!(f, "no invite has the id {id}"),
        }
    }
}

impl std::error::Error for InvitesError {}

/// Reads every invite of `path` (none when it does not exist).
pub fn read(path: &Path) -> Result<Vec<PendingInvite>, InvitesError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(InvitesError::Io(path.to_owned(), error)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(at, line)| {
            parse_line(line).map_err(|what| InvitesError::Line(path.into(), at + 1, what))
        })
        .collect()
}

fn parse_line(line: &str) -> Result<PendingInvite, &'static str> {
    let mut words = line.split_whitespace();
    let id = InviteId::parse(words.next().ok_or("no id")?).map_err(|_| "bad id")?;
    let name = Name::new(words.next().ok_or("no name")?).map_err(|_| "bad name")?;
    let mut invite = PendingInvite {
        id,
        name,
        secret: InviteSecret::from_bytes([0; SECRET_LEN]),
        expires_at_millis: 0,
        uses_left: 0,
        used: 0,
        device: false,
        revoked: false,
        inviter: None,
        code: None,
    };
    for word in words {
        match word.split_once('=') {
            Some(("expires", v)) => {
                invite.expires_at_millis = v.parse().map_err(|_| "bad expires")?
            }
            Some(("uses", v)) => invite.uses_left = v.parse().map_err(|_| "bad uses")?,
            Some(("used", v)) => invite.used = v.parse().map_err(|_| "bad used")?,
            Some(("secret", v)) => {
                let mut raw = [0; SECRET_LEN + 2];
                let len = URL_SAFE_NO_PAD
                    .decode_slice(v, &mut raw)
                    .map_err(|_| "bad secret")?;
                let raw: [u8; SECRET_LEN] = raw
                    .get(..len)
                    .and_then(|raw| raw.try_into().ok())
                    .ok_or("bad secret")?;
                invite.secret = InviteSecret::from_bytes(raw);
            }
            Some(("inviter", v)) => invite.inviter = Some(Name::new(v).map_err(|_| "bad inviter")?),
            Some(("code", v)) => invite.code = Some(InviteCode::parse(v).map_err(|_| "bad code")?),
            None if word == "device" => invite.device = true,
            None if word == "revoked" => invite.revoked = true,
            _ => return Err("unknown field"),
        }
    }
    Ok(invite)
}

fn format_line(invite: &PendingInvite, now: u64) -> String {
    let live = !invite.revoked && invite.uses_left > 0 && now < invite.expires_at_millis;
    let secret = if live {
        URL_SAFE_NO_PAD.encode(invite.secret.expose_secret())
    } else {
        URL_SAFE_NO_PAD.encode([0; SECRET_LEN])
    };
    let mut line = format!(
        "{} {} expires={} uses={} used={} secret={secret}",
        invite.id, invite.name, invite.expires_at_millis, invite.uses_left, invite.used
    );
    if invite.device {
        line.push_str(" device");
    }
    if invite.revoked {
        line.push_str(" revoked");
    }
    if let Some(inviter) = &invite.inviter {
        line.push_str(&format!(" inviter={inviter}"));
    }
    if let Some(code) = invite.code.as_ref().filter(|_| live) {
        line.push_str(&format!(" code={code}"));
    }
    line.push('\n');
    line
}

/// Runs `change` on the invites of `path` under its lock and writes the
/// result back atomically; returns what `change` returned.
fn update<R>(
    path: &Path,
    change: impl FnOnce(&mut Vec<PendingInvite>) -> Result<R, InvitesError>,
) -> Result<R, InvitesError> {
    let io = |error| InvitesError::Io(path.to_owned(), error);
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(PathBuf::from(lock_path))
        .map_err(io)?;
    lock.lock().map_err(io)?;
    let mut invites = read(path)?;
    let out = change(&mut invites)?;
    let now = now_millis();
    invites.retain(|invite| {
        let done_at = if invite.revoked || invite.uses_left == 0 {
            None
        } else {
            Some(invite.expires_at_millis)
        };
        done_at.is_none_or(|at| now < at.saturating_add(KEEP_DONE_MILLIS))
    });
    let text: String = invites
        .iter()
        .map(|invite| format_line(invite, now))
        .collect();
    replace_file(path, text.as_bytes()).map_err(io)?;
    Ok(out)
}

/// What `relay invite NAME` asks for.
#[derive(Debug, Clone)]
pub struct InviteRequest<'a> {
    /// The member it admits a device of.
    pub name: &'a Name,
    /// The relay's public key, put in the link.
    pub relay: &'a PublicKey,
    /// `HOST:PORT` clients reach the relay at, put in the link.
    pub addr: &'a str,
    /// When it expires, in Unix milliseconds.
    pub expires_at_millis: u64,
    /// How many joins it admits.
    pub uses: u32,
    /// It adds a device to an existing member.
    pub device: bool,
    /// The member who asked for it, if a member did.
    pub inviter: Option<Name>,
    /// Give it a short code too (a free nameplate is picked).
    pub code: bool,
}

/// Adds a new invite to the invites file of the members file `members`.
/// Returns the invite to print, and its short code if one was asked for.
pub fn issue(
    members: &Path,
    request: &InviteRequest<'_>,
) -> Result<(Invite, Option<InviteCode>), InvitesError> {
    let path = invites_path(members);
    let invite = Invite::generate(request.addr, request.relay)
        .map_err(|e| InvitesError::Io(path.clone(), io::Error::other(e.to_string())))?;
    let mut pending = PendingInvite {
        code: None,
        id: invite.id,
        name: request.name.clone(),
        secret: invite.secret.clone(),
        expires_at_millis: request.expires_at_millis,
        uses_left: request.uses,
        used: 0,
        device: request.device,
        revoked: false,
        inviter: request.inviter.clone(),
    };
    let code = update(&path, |invites| {
        if request.code {
            let now = now_millis();
            let taken: Vec<u16> = invites
                .iter()
                .filter(|i| !i.revoked && i.uses_left > 0 && now < i.expires_at_millis)
                .filter_map(|i| i.code.as_ref().map(|c| c.nameplate))
                .collect();
            let free: Vec<u16> = (1..=NAMEPLATE_MAX).filter(|n| !taken.contains(n)).collect();
            let mut pick = [0u8; 2];
            getrandom::fill(&mut pick)
                .map_err(|e| InvitesError::Io(path.clone(), io::Error::other(e)))?;
            let nameplate = *free
                .get(usize::from(u16::from_be_bytes(pick)) % free.len().max(1))
                .ok_or_else(|| {
                    InvitesError::Io(path.clone(), io::Error::other("every nameplate is in use"))
                })?;
            pending.code =
                Some(InviteCode::generate(nameplate).map_err(|e| {
                    InvitesError::Io(path.clone(), io::Error::other(e.to_string()))
                })?);
        }
        let code = pending.code.clone();
        invites.push(pending);
        Ok(code)
    })?;
    Ok((invite, code))
}

/// Adds `invite`, made elsewhere (a member's device invite, made by the
/// relay), to the invites file of the members file `members`.
pub fn add(members: &Path, invite: PendingInvite) -> Result<(), InvitesError> {
    update(&invites_path(members), |invites| {
        if !invites.iter().any(|held| held.id == invite.id) {
            invites.push(invite);
        }
        Ok(())
    })
}

/// Revokes invite `id`.
pub fn revoke(members: &Path, id: &InviteId) -> Result<PendingInvite, InvitesError> {
    update(&invites_path(members), |invites| {
        let invite = invites
            .iter_mut()
            .find(|invite| invite.id == *id)
            .ok_or(InvitesError::NoSuchInvite(*id))?;
        invite.revoked = true;
        Ok(invite.clone())
    })
}

/// Spends one use of invite `id` (after a join).
pub fn spend(members: &Path, id: &InviteId) -> Result<(), InvitesError> {
    update(&invites_path(members), |invites| {
        if let Some(invite) = invites.iter_mut().find(|invite| invite.id == *id) {
            invite.uses_left = invite.uses_left.saturating_sub(1);
            invite.used = invite.used.saturating_add(1);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use eaxchat_proto::session::StaticSecret;

    #[test]
    fn issued_invites_read_back_and_lose_their_secret_when_spent() {
        let dir = tempfile::tempdir().unwrap();
        let members = dir.path().join("members.txt");
        let relay = StaticSecret::generate().unwrap();
        let name = Name::new("carol").unwrap();
        let far = now_millis() + 60_000;
        let request = InviteRequest {
            name: &name,
            relay: relay.public_key(),
            addr: "h:1",
            expires_at_millis: far,
            uses: 1,
            device: false,
            inviter: None,
            code: true,
        };
        let (invite, code) = issue(&members, &request).unwrap();
        let code = code.unwrap();
        assert_eq!(
            read(&invites_path(&members)).unwrap()[0].code,
            Some(code.clone())
        );
        let _ = &code;
        let read_back = read(&invites_path(&members)).unwrap();
        assert_eq!(read_back.len(), 1);
        assert_eq!(read_back[0].id, invite.id);
        assert_eq!(read_back[0].secret, invite.secret);
        spend(&members, &invite.id).unwrap();
        let text = fs::read_to_string(invites_path(&members)).unwrap();
        assert!(!text.contains(&URL_SAFE_NO_PAD.encode(invite.secret.expose_secret())));
        assert!(text.contains("uses=0"), "{text}");
        let revoked = revoke(&members, &invite.id).unwrap();
        assert!(revoked.revoked);
        assert!(revoke(&members, &InviteId([9; 8])).is_err());
    }
}
