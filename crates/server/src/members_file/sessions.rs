//! `relay members` on a sessions members file (`NAME x25519:BASE64`, one
//! line per device): adding a device by its public key or by generating
//! its identity, removing one device or all of a member's, listing devices
//! by fingerprint, and migrating a static-key file to sessions.
//!
//! A device may carry a label, kept as a comment line right above its
//! own: `# device: LABEL` ([`LABEL_PREFIX`]). The file format knows
//! nothing of labels (comments are comments); `list` shows them and
//! `remove` takes a device's label line with it.
//!
//! Like the static-key operations in the parent module, every change is
//! one atomic rewrite that keeps every other line byte for byte, and a
//! file that does not parse is never rewritten. Secrets only ever go to
//! new identity files (mode 0600, never over an existing file); the
//! members file gets public keys only. If the members file cannot be
//! written, the identity files just made are removed again.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use eaxchat_core::members::{AnyMembers, Device, MembersError, MembersKind, SessionMembers};
use eaxchat_proto::name::Name;
use eaxchat_proto::session::identity_file::{IdentityError, write_new_identity};
use eaxchat_proto::session::{PublicKey, StaticSecret};

use super::replace_file;

#[cfg(test)]
mod tests;

/// What opens the comment line that labels the device on the next line.
pub const LABEL_PREFIX: &str = "# device: ";

/// The longest device label, in bytes.
pub const LABEL_MAX: usize = 64;

/// One device as `relay members list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDevice {
    /// Whose device it is.
    pub name: Name,
    /// Its public key.
    pub key: PublicKey,
    /// Its label, from the `# device:` line above it, if there is one.
    pub label: Option<String>,
}

/// A members file's members as `relay members list` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// A static-key file: the names, never the keys.
    Static(Vec<Name>),
    /// A sessions file: every device, in file order.
    Sessions(Vec<ListedDevice>),
}

/// One member of a migrated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The member.
    pub name: Name,
    /// The new identity file to hand to them.
    pub identity: PathBuf,
    /// Its public key, now their line in the members file.
    pub key: PublicKey,
}

/// The identity file `relay members add` writes for a new session member
/// when the caller names none: `NAME.identity` in the current directory.
pub fn default_identity_file(name: &Name) -> PathBuf {
    PathBuf::from(format!("{name}.identity"))
}

/// Which kind of file `path` is: `None` when it does not exist or holds
/// no member line yet (either kind may start it). It must parse.
pub fn kind(path: &Path) -> Result<Option<MembersKind>, MembersError> {
    let (_, members) = read_text(path, true)?;
    Ok(match &members {
        AnyMembers::Static(members) if members.is_empty() => None,
        AnyMembers::Sessions(devices) if devices.is_empty() => None,
        any => Some(any.kind()),
    })
}

/// Every member, in file order: names for a static-key file, devices (with
/// their labels) for a sessions file.
pub fn list_any(path: &Path) -> Result<Listing, MembersError> {
    let (text, members) = read_text(path, false)?;
    Ok(match members {
        AnyMembers::Static(members) => {
            Listing::Static(members.iter().map(|m| m.name().clone()).collect())
        }
        AnyMembers::Sessions(devices) => {
            let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
            let label = |device: &Device| {
                let above = lines.get(device.line().checked_sub(2)?)?;
                let above = std::str::from_utf8(above).ok()?.trim();
                let label = above.strip_prefix(LABEL_PREFIX.trim_end())?.trim();
                (!label.is_empty()).then(|| label.to_owned())
            };
            Listing::Sessions(
                devices
                    .iter()
                    .map(|device| ListedDevice {
                        name: device.name().clone(),
                        key: *device.key(),
                        label: label(device),
                    })
                    .collect(),
            )
        }
    })
}

/// Adds device `key` to member `name` (new or not), with an optional
/// label line above it. The file is created (mode 0600) if missing; it
/// must be a sessions file (or have no member yet) and must not hold
/// `key` already.
pub fn add_device(
    path: &Path,
    name: &Name,
    key: &PublicKey,
    label: Option<&str>,
) -> Result<(), MembersError> {
    let (text, devices) = read_sessions(path, true)?;
    if let Some(device) = devices.get(key) {
        return Err(MembersError::AlreadyDevice {
            path: path.to_owned(),
            name: device.name().clone(),
            line: device.line(),
        });
    }
    let new_text = appended(text, name, key, label)?;
    replace_file(path, &new_text).map_err(|error| io_error(path, error))
}

/// Adds a new member `name` with one new device: generates its identity,
/// writes the secret to the new file `identity_out` (mode 0600) to hand to
/// them, and only the public key to the members file. Refuses a name that
/// is a member already (give a device's public key to add another).
pub fn add_generated(
    path: &Path,
    name: &Name,
    identity_out: &Path,
    label: Option<&str>,
) -> Result<PublicKey, MembersError> {
    if identity_out == path {
        return Err(io_error(
            path,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the identity file cannot be the members file",
            ),
        ));
    }
    let (text, devices) = read_sessions(path, true)?;
    if let Some(device) = devices.devices_of(name.as_str()).next() {
        return Err(MembersError::AlreadyMember {
            path: path.to_owned(),
            name: name.clone(),
            line: device.line(),
        });
    }
    let secret = loop {
        let secret = generate()?;
        // A repeat of a random X25519 key will not happen, but the file
        // must never hold one twice, so make sure.
        if devices.get(secret.public_key()).is_none() {
            break secret;
        }
    };
    let key = *secret.public_key();
    let new_text = appended(text, name, &key, label)?;
    write_new_identity(identity_out, &secret).map_err(MembersError::Identity)?;
    if let Err(error) = replace_file(path, &new_text) {
        let _ = fs::remove_file(identity_out);
        return Err(io_error(path, error));
    }
    Ok(key)
}

/// Removes member `name`'s device `key`, or with `None` all their devices,
/// each with its label line. Returns the devices removed.
pub fn remove_devices(
    path: &Path,
    name: &Name,
    key: Option<&PublicKey>,
) -> Result<Vec<Device>, MembersError> {
    let (text, devices) = read_sessions(path, false)?;
    let removed: Vec<Device> = devices
        .devices_of(name.as_str())
        .filter(|device| key.is_none_or(|key| device.key() == key))
        .cloned()
        .collect();
    match (removed.is_empty(), key) {
        (false, _) => {}
        (true, Some(key)) if devices.devices_of(name.as_str()).next().is_some() => {
            return Err(MembersError::NotDevice {
                path: path.to_owned(),
                name: name.clone(),
                fingerprint: key.fingerprint(),
            });
        }
        (true, _) => {
            return Err(MembersError::NotMember {
                path: path.to_owned(),
                name: name.clone(),
            });
        }
    }
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    let is_label = |index: usize| {
        lines.get(index).is_some_and(|line| {
            std::str::from_utf8(line)
                .is_ok_and(|line| line.trim().starts_with(LABEL_PREFIX.trim_end()))
        })
    };
    let mut dropped = vec![false; lines.len()];
    for device in &removed {
        let index = device.line() - 1;
        if let Some(slot) = dropped.get_mut(index) {
            *slot = true;
        }
        if index > 0 && is_label(index - 1) {
            dropped[index - 1] = true;
        }
    }
    let new_text: Vec<u8> = lines
        .iter()
        .zip(&dropped)
        .filter(|(_, dropped)| !**dropped)
        .flat_map(|(line, _)| line.iter().copied())
        .collect();
    replace_file(path, &new_text).map_err(|error| io_error(path, error))?;
    Ok(removed)
}

/// Converts the static-key file at `path` to a sessions file: for each
/// member a new identity, written to `key_dir/NAME.identity` (mode 0600;
/// the directory made 0700 if missing; an empty `key_dir` is the working
/// directory), and the member's line replaced by
/// its public key, every other line kept; one atomic rewrite. Refuses a
/// sessions file (or one with no member), and does nothing at all if any
/// of the identity files exists already.
pub fn migrate(path: &Path, key_dir: &Path) -> Result<Vec<Migrated>, MembersError> {
    let (text, members) = read_text(path, false)?;
    let members = match members {
        AnyMembers::Static(members) if !members.is_empty() => members,
        _ => {
            return Err(MembersError::WrongKind {
                path: path.to_owned(),
                kind: MembersKind::Sessions,
                hint: "it holds no static keys, so there is nothing to migrate",
            });
        }
    };
    let mut planned = Vec::with_capacity(members.len());
    for member in &members {
        let identity = key_dir.join(format!("{}.identity", member.name()));
        if identity.exists() {
            return Err(MembersError::Identity(IdentityError::Exists {
                path: identity,
            }));
        }
        planned.push((member.name().clone(), member.line(), identity, generate()?));
    }
    let mut new_lines: Vec<Vec<u8>> = text
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    for (name, line, _, secret) in &planned {
        let Some(old) = new_lines.get_mut(line - 1) else {
            continue;
        };
        let ending: &[u8] = if old.ends_with(b"\r\n") {
            b"\r\n"
        } else if old.ends_with(b"\n") {
            b"\n"
        } else {
            b""
        };
        *old = [format!("{name} {}", secret.public_key()).as_bytes(), ending].concat();
    }
    let new_text = new_lines.concat();
    // What is about to replace the file must be what it means to be.
    match AnyMembers::parse(&new_text, path)? {
        AnyMembers::Sessions(devices) if devices.len() == planned.len() => {}
        _ => {
            return Err(io_error(
                path,
                io::Error::other("migration produced a bad file"),
            ));
        }
    }
    if !key_dir.as_os_str().is_empty() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(key_dir)
            .map_err(|error| {
                MembersError::Identity(IdentityError::Io {
                    path: key_dir.to_owned(),
                    error,
                })
            })?;
    }
    let mut written: Vec<&Path> = Vec::new();
    let undo = |written: &[&Path]| {
        for path in written {
            let _ = fs::remove_file(path);
        }
    };
    for (_, _, identity, secret) in &planned {
        if let Err(error) = write_new_identity(identity, secret) {
            undo(&written);
            return Err(MembersError::Identity(error));
        }
        written.push(identity);
    }
    if let Err(error) = replace_file(path, &new_text) {
        undo(&written);
        return Err(io_error(path, error));
    }
    Ok(planned
        .into_iter()
        .map(|(name, _, identity, secret)| Migrated {
            name,
            identity,
            key: *secret.public_key(),
        })
        .collect())
}

/// The file's bytes (empty if it is missing and `missing_ok`) and what
/// they parse as.
fn read_text(path: &Path, missing_ok: bool) -> Result<(Vec<u8>, AnyMembers), MembersError> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(error) if missing_ok && error.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(io_error(path, error)),
    };
    let members = AnyMembers::parse(&text, path)?;
    Ok((text, members))
}

/// As [`read_text`], for a sessions file: a static-key file with members
/// is refused, naming the migration.
fn read_sessions(path: &Path, missing_ok: bool) -> Result<(Vec<u8>, SessionMembers), MembersError> {
    match read_text(path, missing_ok)? {
        (text, AnyMembers::Sessions(devices)) => Ok((text, devices)),
        (text, AnyMembers::Static(members)) if members.is_empty() => {
            Ok((text, SessionMembers::default()))
        }
        (_, AnyMembers::Static(_)) => Err(MembersError::WrongKind {
            path: path.to_owned(),
            kind: MembersKind::Static,
            hint: "its members hold static keys, which the relay holds too; convert it first \
                   with `relay members migrate`",
        }),
    }
}

/// `text` with a device line (and its label line) appended.
fn appended(
    mut text: Vec<u8>,
    name: &Name,
    key: &PublicKey,
    label: Option<&str>,
) -> Result<Vec<u8>, MembersError> {
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    if let Some(label) = label {
        let label = check_label(label)?;
        text.extend_from_slice(format!("{LABEL_PREFIX}{label}\n").as_bytes());
    }
    text.extend_from_slice(format!("{name} {key}\n").as_bytes());
    Ok(text)
}

/// A label must fit on its comment line: 1 to [`LABEL_MAX`] bytes, no
/// control characters; blanks around it are dropped.
fn check_label(label: &str) -> Result<&str, MembersError> {
    let label = label.trim();
    if label.is_empty() {
        return Err(MembersError::BadLabel("it is empty"));
    }
    if label.len() > LABEL_MAX {
        return Err(MembersError::BadLabel("it is over 64 bytes"));
    }
    if label.chars().any(char::is_control) {
        return Err(MembersError::BadLabel("it holds a control character"));
    }
    Ok(label)
}

fn generate() -> Result<StaticSecret, MembersError> {
    StaticSecret::generate()
        .map_err(|error| MembersError::Identity(IdentityError::Randomness(error)))
}

fn io_error(path: &Path, error: io::Error) -> MembersError {
    MembersError::Io {
        path: path.to_owned(),
        error,
    }
}
