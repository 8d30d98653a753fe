//! The operator's side of the loop: the config file reread on SIGHUP, and
//! the local admin socket `relay status` reads.
//!
//! On SIGHUP the loop calls the [`ConfigReload`] the binary gave
//! ([`Server::on_config_reload`]): the binary rereads its file and says
//! which limits to apply; this module applies them to the relay and keeps
//! the outcome for `relay status`. The members file's own reloads are
//! noted here too ([`Server::note_reload`]).
//!
//! The admin socket ([`Server::listen_admin`]) is a Unix socket, mode
//! 0600: each connection is written one status text and closed; nothing is
//! read from it, so a peer can learn the counts and never change anything.
//! It never shows a key, a name or a message. A members relay's status has
//! a `members file:` line: whether its last reload was applied or refused
//! (the old members then stay in force), and why.

use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use log::{info, warn};
use mio::net::UnixListener;
use mio::{Interest, Token};

use super::Server;
use eaxchat_core::relay::Limits;

/// The admin socket's listener.
pub(super) const ADMIN: Token = Token(usize::MAX - 5);

/// What a config reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The limits to apply now, if they changed
    /// ([`eaxchat_core::relay::Relay::set_limits`]).
    pub limits: Option<Limits>,
    /// One line on what happened, for `relay status`.
    pub summary: String,
}

/// Rereads the config file; called by the loop on SIGHUP. It logs what it
/// found itself.
pub type ConfigReload = Box<dyn FnMut() -> Reloaded>;

/// The admin socket, the config reload, and the last reload's outcome.
pub(super) struct Admin {
    listener: Option<(UnixListener, PathBuf)>,
    reload: Option<ConfigReload>,
    last_reload: Option<(Instant, String)>,
    started: Instant,
    /// The invites file's watch (`invites.rs`).
    pub(super) invites: super::invites::InvitesWatch,
}

impl Default for Admin {
    fn default() -> Admin {
        Admin {
            listener: None,
            reload: None,
            last_reload: None,
            started: Instant::now(),
            invites: Default::default(),
        }
    }
}

impl Drop for Admin {
    /// The socket file goes with the relay, so the next one can bind it.
    fn drop(&mut self) {
        if let Some((_, path)) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Server {
    /// Makes SIGHUP call `reload` (after the members file, in members
    /// mode, is reread) and apply the limits it returns.
    pub fn on_config_reload(&mut self, reload: ConfigReload) -> io::Result<()> {
        if self.reload_rx.is_none() {
            self.reload_on_sighup()?;
        }
        self.admin.reload = Some(reload);
        Ok(())
    }

    /// Serves `relay status` on a Unix socket at `path` (mode 0600). A
    /// socket file left there by a relay that is gone is replaced; one a
    /// running relay answers on is an error.
    pub fn listen_admin(&mut self, path: &Path) -> io::Result<()> {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "a running relay answers on it",
            ));
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        self.poll
            .registry()
            .register(&mut listener, ADMIN, Interest::READABLE)?;
        self.admin.listener = Some((listener, path.to_owned()));
        Ok(())
    }

    /// Keeps `summary` as the last reload's outcome, for `relay status`.
    pub(super) fn note_reload(&mut self, summary: String) {
        self.admin.last_reload = Some((Instant::now(), summary));
    }

    /// SIGHUP came: rereads the config file, if there is one, and applies
    /// the limits that changed.
    pub(super) fn reload_config(&mut self) {
        let Some(reload) = &mut self.admin.reload else {
            return;
        };
        let reloaded = reload();
        if let Some(limits) = reloaded.limits {
            self.relay.set_limits(limits);
            self.config.limits = self.relay.limits();
        }
        self.note_reload(reloaded.summary);
    }

    /// Answers every waiting `relay status` with the status text.
    pub(super) fn serve_admin(&mut self) {
        loop {
            let Some((listener, _)) = &self.admin.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, _)) => {
                    // A few hundred bytes into a fresh socket's buffer: one
                    // write takes it, and a peer that reads nothing costs
                    // nothing.
                    let status = self.status_text();
                    if let Err(e) = stream.write_all(status.as_bytes()) {
                        info!("admin socket: status not written: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("admin socket: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// The status `relay status` prints: `key: value` lines.
    fn status_text(&self) -> String {
        let mut authenticated = 0;
        let mut queued = 0;
        let mut web = 0;
        let mut names = std::collections::HashSet::new();
        for id in self.relay.ids() {
            let Some(peer) = self.relay.peer(id) else {
                continue;
            };
            authenticated += usize::from(peer.is_authenticated());
            queued += peer.queued_bytes() + peer.paced_bytes();
            web += usize::from(peer.io.web.is_some());
            if let Some(name) = self.relay.member_name(id) {
                names.insert(name.as_str());
            }
        }
        let members = if self.relay.is_members() {
            format!(
                "{} (of {} in the file)",
                names.len(),
                self.relay.member_count()
            )
        } else {
            "- (shared key: no members)".to_owned()
        };
        let members_file = self
            .members_reload()
            .map(|state| format!("members file: {}\n", state.status()))
            .unwrap_or_default();
        let last_reload = match &self.admin.last_reload {
            Some((at, summary)) => format!("{}s ago: {summary}", at.elapsed().as_secs()),
            None => "none since start".to_owned(),
        };
        let limits = self.relay.limits();
        let stats = self.relay.stats();
        let address = self
            .local_addr()
            .map_or_else(|_| "-".to_owned(), |addr| addr.to_string());
        format!(
            "relay: eaxchat {} pid {} up {}s\n\
             listening: {address}\n\
             connections: {} ({authenticated} authenticated, {web} web)\n\
             rooms: {}\n\
             members online: {members}\n\
             queue bytes: {queued}\n\
             limits: max-clients={} max-queue={} pre-auth-budget={} max-per-address={}\n\
             connections since start: {}\n\
             {members_file}\
             last reload: {last_reload}\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            self.admin.started.elapsed().as_secs(),
            self.relay.len(),
            self.relay.rooms().occupied_count(),
            limits.max_clients,
            limits.max_queue,
            limits.pre_auth_budget,
            limits.max_per_address,
            stats.connections_total,
        )
    }
}
