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
//!
//! A refused reload must never pass unseen, since a member just removed
//! stays in until a good file is read: every failed attempt is logged as
//! an error, and [`ReloadState`] keeps how the last attempt went for
//! `/metrics`, the stats line and `relay status`.

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

/// How the members file's reloads have gone since the relay started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadState {
    /// The last attempt was applied (or none failed since the start).
    pub ok: bool,
    /// Attempts refused since the start.
    pub failures: u64,
    /// Why the last refused attempt was refused, and when.
    pub last_error: Option<(SystemTime, String)>,
    /// When a file was last applied: the start, or the last good reload.
    pub last_good: SystemTime,
}

impl ReloadState {
    /// The state of a file read at `now`, as at the start.
    fn loaded_at(now: SystemTime) -> ReloadState {
        ReloadState {
            ok: true,
            failures: 0,
            last_error: None,
            last_good: now,
        }
    }

    /// The fields the stats line adds for a members relay.
    pub fn stats_fields(&self) -> String {
        format!(
            " members_reload_ok={} members_reload_failures={}",
            u8::from(self.ok),
            self.failures
        )
    }

    /// The members file's gauges and counter in Prometheus's text format,
    /// for `/metrics`. The error's text stays out of it (it names paths
    /// and lines; `relay status` and the log have it).
    pub fn metrics(&self) -> String {
        let seconds = |at: SystemTime| {
            at.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs())
        };
        let mut out = String::new();
        let samples: [(&str, &str, &str, u64); 4] = [
            (
                "members_reload_ok",
                "gauge",
                "1 if the members file's last reload was applied, 0 if it was refused \
                 (the old members stay in force).",
                u64::from(self.ok),
            ),
            (
                "members_reload_failures_total",
                "counter",
                "Reloads of the members file refused since start.",
                self.failures,
            ),
            (
                "members_last_good_load_timestamp_seconds",
                "gauge",
                "When the members file in force was read (Unix time).",
                seconds(self.last_good),
            ),
            (
                "members_last_failed_reload_timestamp_seconds",
                "gauge",
                "When a reload of the members file was last refused (Unix time; 0 if never).",
                self.last_error.as_ref().map_or(0, |(at, _)| seconds(*at)),
            ),
        ];
        for (name, kind, help, value) in samples {
            out.push_str(&format!(
                "# HELP eaxchat_{name} {help}\n# TYPE eaxchat_{name} {kind}\neaxchat_{name} {value}\n"
            ));
        }
        out
    }

    /// One `relay status` line's value.
    pub fn status(&self) -> String {
        let ago = |at: SystemTime| {
            SystemTime::now()
                .duration_since(at)
                .map_or(0, |since| since.as_secs())
        };
        let good = format!("last good load {}s ago", ago(self.last_good));
        match (&self.last_error, self.ok) {
            (Some((at, error)), false) => format!(
                "FAILED, old members in force ({good}; {} refused since start; last {}s ago: \
                 {error})",
                self.failures,
                ago(*at)
            ),
            (Some((at, error)), true) => format!(
                "ok ({good}; {} refused since start; last {}s ago: {error})",
                self.failures,
                ago(*at)
            ),
            (None, _) => format!("ok ({good})"),
        }
    }
}

/// The members file a members relay serves, when it was last seen, and
/// how its reloads went.
#[derive(Debug)]
pub struct MembersWatch {
    path: PathBuf,
    stamp: Option<FileStamp>,
    next_check: Instant,
    state: ReloadState,
}

impl MembersWatch {
    /// Watches `path`, as it is now (just read by the caller).
    pub fn new(path: PathBuf) -> MembersWatch {
        MembersWatch {
            stamp: FileStamp::of(&path),
            path,
            next_check: Instant::now() + MEMBERS_CHECK_INTERVAL,
            state: ReloadState::loaded_at(SystemTime::now()),
        }
    }

    /// How the reloads have gone.
    pub fn state(&self) -> &ReloadState {
        &self.state
    }

    fn applied(&mut self) {
        self.state.ok = true;
        self.state.last_good = SystemTime::now();
    }

    fn refused(&mut self, error: String) {
        self.state.ok = false;
        self.state.failures += 1;
        self.state.last_error = Some((SystemTime::now(), error));
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
        if self.reload_rx.is_some() {
            return Ok(());
        }
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
                self.reload_refused(summary, e.to_string());
            }
        }
    }

    /// A reload refused: logged as an error every time, and kept for
    /// `relay status`, `/metrics` and the stats line.
    fn reload_refused(&mut self, summary: String, error: String) {
        error!("{summary}");
        if let Some(watch) = &mut self.members {
            watch.refused(error);
        }
        self.note_reload(summary);
    }

    /// The members file's reloads, for `relay status`, `/metrics` and the
    /// stats line; `None` for a shared-key relay.
    pub(super) fn members_reload(&self) -> Option<&ReloadState> {
        self.members.as_ref().map(MembersWatch::state)
    }

    /// The stats line's fields on the members file's reloads (nothing for
    /// a shared-key relay).
    pub(super) fn members_stats_fields(&self) -> String {
        self.members_reload()
            .map(ReloadState::stats_fields)
            .unwrap_or_default()
    }

    /// `/metrics`' lines on the members file's reloads (nothing for a
    /// shared-key relay).
    pub(super) fn members_metrics(&self) -> String {
        self.members_reload()
            .map(ReloadState::metrics)
            .unwrap_or_default()
    }

    fn reload(&mut self, path: &Path, members: &AnyMembers, why: &str) {
        let Some(changes) = self.relay.reload_members(members) else {
            let (file, served) = match members.kind() {
                MembersKind::Static => ("static-key", "sessions"),
                MembersKind::Sessions => ("sessions", "static-key members"),
            };
            let error = format!(
                "it is now a {file} file, but this relay serves {served} mode; restart the \
                 relay to change modes"
            );
            let summary = format!(
                "members file {} not reloaded ({why}), keeping the {} members: {error}",
                path.display(),
                self.relay.member_count()
            );
            self.reload_refused(summary, error);
            return;
        };
        if let Some(watch) = &mut self.members {
            watch.applied();
        }
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

#[cfg(test)]
mod tests {
    // Tests may unwrap: a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A refused reload turns every view to "refused", names the error
    /// only where it is private, and counts; a good one turns them back
    /// and keeps the count.
    #[test]
    fn the_reload_state_shows_a_refusal_until_a_good_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut watch = MembersWatch::new(dir.path().join("members.txt"));
        assert_eq!(
            watch.state().stats_fields(),
            " members_reload_ok=1 members_reload_failures=0"
        );
        assert!(watch.state().status().starts_with("ok (last good load "));
        let started = watch.state().last_good;

        watch.refused("members file members.txt line 2: no key".to_owned());
        let state = watch.state();
        assert_eq!(
            state.stats_fields(),
            " members_reload_ok=0 members_reload_failures=1"
        );
        let metrics = state.metrics();
        assert!(
            metrics.contains("\neaxchat_members_reload_ok 0\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("\neaxchat_members_reload_failures_total 1\n"),
            "{metrics}"
        );
        assert!(!metrics.contains("line 2"), "no error text in /metrics");
        let status = state.status();
        assert!(
            status.starts_with("FAILED, old members in force"),
            "{status}"
        );
        assert!(status.contains("line 2: no key"), "{status}");
        assert_eq!(state.last_good, started, "the old file is still in force");

        watch.applied();
        let state = watch.state();
        assert!(state.ok);
        assert_eq!(state.failures, 1);
        assert!(
            state
                .status()
                .starts_with("ok (last good load 0s ago; 1 refused")
        );
        assert!(state.metrics().contains("\neaxchat_members_reload_ok 1\n"));
    }
}
