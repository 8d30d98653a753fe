//! A members relay's file, watched from the poll loop: read again on
//! SIGHUP, and when its mtime, size or inode change (looked at about once
//! a second), and handed to [`Relay::reload_members`](eaxchat_core::relay::Relay::reload_members),
//! with one log line saying who was added, removed or re-keyed.
//!
//! This module owns when the file is read again and what is logged about
//! it. Reading and parsing the file are [`crate::members_file`]'s; what a
//! reload does to connections is the relay's. A file that does not parse
//! is never half-applied: the relay keeps the members it had. So is a file
//! of the other kind (a static-key file under a session relay, or the
//! reverse, as `relay members migrate` leaves one): changing modes takes a
//! restart, and the log says so.

use std::io::{self, Read as _};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use log::{error, info, warn};
use mio::Interest;
use mio::net::UnixStream;

use super::{RELOAD, Server};
use crate::members_file;
use eaxchat_core::members::{AnyMembers, MembersKind};
use eaxchat_proto::name::Name;

/// How often the members file is looked at for a change.
pub const MEMBERS_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies one version of the members file: its mtime, size and
/// inode (`members add` and `remove` rename a new file over it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
        })
    }
}

/// The members file a members relay serves, and when it was last seen.
#[derive(Debug)]
pub struct MembersWatch {
    path: PathBuf,
    stamp: Option<FileStamp>,
    next_check: Instant,
}

impl MembersWatch {
    /// Watches `path`, as it is now.
    pub fn new(path: PathBuf) -> MembersWatch {
        MembersWatch {
            stamp: FileStamp::of(&path),
            path,
            next_check: Instant::now() + MEMBERS_CHECK_INTERVAL,
        }
    }

    /// The file watched.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// When the file is next looked at: the poll waits no longer.
    pub(super) fn next_check(&self) -> Instant {
        self.next_check
    }
}

impl Server {
    /// Members mode: makes SIGHUP read the members file again.
    pub fn reload_on_sighup(&mut self) -> io::Result<()> {
        let (rx, tx) = StdUnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        let mut rx = UnixStream::from_std(rx);
        self.poll
            .registry()
            .register(&mut rx, RELOAD, Interest::READABLE)?;
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGHUP, tx)?;
        self.reload_rx = Some(rx);
        Ok(())
    }

    /// Reads the members file again after SIGHUP (`hangup`), or when it
    /// changed since last seen (looked at once a second).
    pub(super) fn watch_members(&mut self, hangup: bool) {
        if hangup && let Some(rx) = &self.reload_rx {
            let mut sink = [0u8; 64];
            while matches!((&*rx).read(&mut sink), Ok(n) if n > 0) {}
        }
        let Some(watch) = &mut self.members else {
            return;
        };
        let now = Instant::now();
        if !hangup && now < watch.next_check {
            return;
        }
        watch.next_check = now + MEMBERS_CHECK_INTERVAL;
        let stamp = FileStamp::of(&watch.path);
        if !hangup && stamp == watch.stamp {
            return;
        }
        watch.stamp = stamp;
        let path = watch.path.clone();
        let why = if hangup { "SIGHUP" } else { "file changed" };
        match members_file::read_any(&path) {
            Ok(file) => {
                if let Some(warning) = members_file::permissions_warning(&path) {
                    warn!("{warning}");
                }
                self.reload(&path, &file.members, why);
            }
            Err(e) => {
                let summary = format!(
                    "members file {} not reloaded ({why}), keeping the {} members: {e}",
                    path.display(),
                    self.relay.member_count()
                );
                warn!("{summary}");
                self.note_reload(summary);
            }
        }
    }

    fn reload(&mut self, path: &Path, members: &AnyMembers, why: &str) {
        let Some(changes) = self.relay.reload_members(members) else {
            let (file, served) = match members.kind() {
                MembersKind::Static => ("static-key", "sessions"),
                MembersKind::Sessions => ("sessions", "static-key members"),
            };
            let summary = format!(
                "members file {} not reloaded ({why}), keeping the {} members: it is now a \
                 {file} file, but this relay serves {served} mode; restart the relay to change \
                 modes",
                path.display(),
                self.relay.member_count()
            );
            error!("{summary}");
            self.note_reload(summary);
            return;
        };
        let names = |list: &[Name]| {
            if list.is_empty() {
                "none".to_owned()
            } else {
                list.iter().map(Name::as_str).collect::<Vec<_>>().join(",")
            }
        };
        let count = match members {
            AnyMembers::Static(members) => format!("{} members", members.len()),
            AnyMembers::Sessions(devices) => format!(
                "{} members ({} devices)",
                devices.names().len(),
                devices.len()
            ),
        };
        let summary = format!(
            "members file {} reloaded ({why}): {count}; added {}; removed {}; new key {}",
            path.display(),
            names(&changes.added),
            names(&changes.removed),
            names(&changes.rekeyed),
        );
        info!("{summary}");
        self.note_reload(summary);
    }
}
