//! The cluster's flags (`--cluster` and the rest): the cluster key, NATS's
//! own authentication options, the history stream; and joining.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use eaxchat_core::cluster::{Cluster, ClusterConfig, ClusterKey, Subjects};
use eaxchat_proto::key::{Key, readable_by_others};
use eaxchat_server::event_loop::Server;
use eaxchat_server::link::{Auth, HistoryStream, LinkConfig};
use log::{info, warn};

use eaxchat_server::config::Settings;

use super::Failure;

/// The cluster as the settings give it.
pub(crate) struct Options {
    config: ClusterConfig,
    link: LinkConfig,
    key_file: PathBuf,
}

impl Options {
    /// Reads and checks the cluster settings; `None` without `--cluster`.
    pub(crate) fn from_settings(settings: &Settings) -> Result<Option<Options>, Failure> {
        let Some(servers) = &settings.cluster else {
            let stray = settings.cluster_key_file.is_some()
                || settings.cluster_token.is_some()
                || settings.cluster_user.is_some()
                || settings.cluster_nkey.is_some()
                || settings.cluster_creds.is_some()
                || settings.cluster_history;
            if stray {
                return Err(Failure::Usage(
                    "the --cluster-* options need --cluster nats://HOST:PORT".into(),
                ));
            }
            return Ok(None);
        };
        let servers: Vec<String> = servers
            .split(',')
            .map(str::trim)
            .filter(|server| !server.is_empty())
            .map(str::to_owned)
            .collect();
        if servers.is_empty() {
            return Err(Failure::Usage("--cluster: no NATS server given".into()));
        }
        let name = &settings.cluster_name;
        let name_ok = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(Failure::Usage(
                "--cluster-name: 1 to 32 of A-Z a-z 0-9 _ -".into(),
            ));
        }
        let Some(key_file) = settings.cluster_key_file.clone() else {
            return Err(Failure::Usage(
                "--cluster needs --cluster-key-file: one key file, the same on every relay \
                 of the cluster (created if missing)"
                    .into(),
            ));
        };
        let auth = auth(settings)?;
        if settings.cluster_queue == 0 {
            return Err(Failure::Usage("--cluster-queue must be at least 1".into()));
        }
        if settings.cluster_timeout == 0 {
            return Err(Failure::Usage(
                "--cluster-timeout must be at least 1".into(),
            ));
        }
        if settings.cluster_history && settings.history == 0 {
            return Err(Failure::Usage(
                "--cluster-history keeps --history messages a room: give --history above 0".into(),
            ));
        }
        let label = settings.listen.to_string();
        let mut config = ClusterConfig::new(name, &label);
        config.timeout = Duration::from_secs(settings.cluster_timeout);
        config.history = settings.cluster_history;
        let history = settings.cluster_history.then(|| HistoryStream {
            name: Subjects::history_stream(name),
            subjects: Subjects::all_history(name),
            per_room: settings.history as i64,
            max_bytes: settings.cluster_history_bytes as i64,
        });
        Ok(Some(Options {
            config,
            link: LinkConfig {
                servers,
                auth,
                connection_name: format!("eaxchat relay {label}"),
                history,
                queue: settings.cluster_queue,
            },
            key_file,
        }))
    }

    /// Joins the cluster: reads (or makes) the cluster key and starts the
    /// NATS thread. `listen` is the address bound, the relay's label.
    pub(crate) fn set_up(mut self, server: &mut Server, listen: SocketAddr) -> Result<(), Failure> {
        let key = cluster_key(&self.key_file)?;
        let mut origin = [0u8; 8];
        getrandom::fill(&mut origin).map_err(|e| Failure::Runtime(format!("random id: {e}")))?;
        let origin = u64::from_be_bytes(origin);
        self.config.label = listen.to_string();
        self.link.connection_name = format!("eaxchat relay {listen}");
        let key =
            ClusterKey::new(&key).map_err(|e| Failure::Runtime(format!("random seed: {e}")))?;
        let summary = format!(
            "cluster {} as relay {origin:016x} ({listen}) through {} (auth: {:?}); key {}; \
             others lost after {:?} of silence; history {}",
            self.config.name,
            self.link.servers.join(","),
            self.link.auth,
            self.key_file.display(),
            self.config.timeout,
            match &self.link.history {
                Some(stream) => format!(
                    "in JetStream stream {} ({} a room, {} bytes)",
                    stream.name, stream.per_room, stream.max_bytes
                ),
                None => "this relay's own".to_owned(),
            },
        );
        let cluster = Cluster::new(self.config, key, origin, std::time::Instant::now());
        server
            .join_cluster(cluster, self.link)
            .map_err(|e| Failure::Runtime(format!("cannot start the NATS thread: {e}")))?;
        info!("{summary}");
        Ok(())
    }
}

/// The cluster key: read, or made (mode 0600) if missing, with a reminder
/// that every relay needs this same file.
fn cluster_key(path: &Path) -> Result<Key, Failure> {
    match Key::read_file(path) {
        Ok(Some(key)) => {
            if readable_by_others(path) {
                warn!(
                    "cluster key file {} is readable by group or others; chmod 600 it",
                    path.display()
                );
            }
            Ok(key)
        }
        Ok(None) => {
            let key = Key::generate().map_err(|e| Failure::Runtime(format!("random key: {e}")))?;
            key.write_new_file(path)
                .map_err(|e| Failure::Runtime(format!("cluster key: {e}")))?;
            warn!(
                "generated a new cluster key in {} (mode 0600): copy this same file to every \
                 relay of the cluster, and to nobody else",
                path.display()
            );
            Ok(key)
        }
        Err(e) => Err(Failure::Usage(format!("cluster key: {e}"))),
    }
}

/// NATS's own authentication, from the settings: at most one way.
fn auth(settings: &Settings) -> Result<Auth, Failure> {
    let mut ways = Vec::new();
    if let Some(token) = &settings.cluster_token {
        ways.push(Auth::Token(token.clone()));
    }
    match (&settings.cluster_user, &settings.cluster_password) {
        (Some(user), Some(password)) => {
            ways.push(Auth::UserPassword(user.clone(), password.clone()))
        }
        (None, None) => {}
        _ => {
            return Err(Failure::Usage(
                "--cluster-user and --cluster-password go together".into(),
            ));
        }
    }
    if let Some(path) = &settings.cluster_nkey {
        let seed = std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("--cluster-nkey {}: {e}", path.display())))?;
        ways.push(Auth::Nkey(seed.trim().to_owned()));
    }
    if let Some(path) = &settings.cluster_creds {
        if !path.is_file() {
            return Err(Failure::Usage(format!(
                "--cluster-creds {}: no such file",
                path.display()
            )));
        }
        ways.push(Auth::Credentials(path.clone()));
    }
    if ways.len() > 1 {
        return Err(Failure::Usage(
            "give one of --cluster-token, --cluster-user/--cluster-password, --cluster-nkey \
             and --cluster-creds"
                .into(),
        ));
    }
    Ok(ways.pop().unwrap_or_default())
}
