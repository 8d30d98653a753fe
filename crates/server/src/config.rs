//! The relay's settings as a TOML file (`relay --config FILE`).
//!
//! [`Settings`] holds every setting the relay has, one key per command-line
//! flag, with the flag's name (`max-clients` for `--max-clients`) and its
//! default. [`Settings::read`] takes a file: a key it does not know, a
//! value of the wrong type or out of range is a [`ConfigError`] naming the
//! line. The complete, commented file with every key at its default is
//! [`DEFAULTS`] (`relay config defaults`); a unit test holds it to the
//! struct, key for key and value for value.
//!
//! This module only reads and compares settings. Which flag wins over which
//! key is the `relay` binary's (a flag given on the command line always
//! does); applying a changed limit to a running relay is the poll loop's
//! ([`crate::event_loop::Server::on_config_reload`]). It never creates,
//! opens or changes any file but the one it is asked to read.

use std::fmt;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use eaxchat_core::relay::Limits;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::msglog::{self, Fsync};

#[cfg(test)]
mod tests;

/// The complete configuration file with every key at its default, each
/// key under a comment saying what it does; keys with no default are
/// commented out.
pub const DEFAULTS: &str = include_str!("config/defaults.toml");

/// Where the Debian package puts the configuration, and where `relay
/// members` and `relay status` look for one when given none.
pub const DEFAULT_PATH: &str = "/etc/eaxchat/relay.toml";

/// The settings a running relay applies at once when SIGHUP rereads its
/// file; a change to any other key takes a restart.
pub const LIVE_KEYS: [&str; 6] = [
    "max-clients",
    "max-queue",
    "pre-auth-budget",
    "max-per-address",
    "max-per-ipv6-56",
    "max-per-ipv6-48",
];

/// The keys whose values are secrets: a file holding one should be
/// readable by its owner only.
pub const SECRET_KEYS: [&str; 3] = ["key-hex", "cluster-token", "cluster-password"];

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

impl FromStr for Switch {
    type Err = String;

    fn from_str(text: &str) -> Result<Switch, String> {
        match text {
            "on" => Ok(Switch::On),
            "off" => Ok(Switch::Off),
            _ => Err("expected on or off".to_owned()),
        }
    }
}

impl fmt::Display for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Switch::On => "on",
            Switch::Off => "off",
        })
    }
}

/// Every setting of the relay. Field `max_clients` is key `max-clients`
/// in the file and flag `--max-clients` on the command line; the flags'
/// help says what each does, and so does [`DEFAULTS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// The directory for the key, the members file and relative paths.
    pub state_dir: Option<PathBuf>,
    /// The Unix socket `relay status` reads.
    pub admin_socket: Option<PathBuf>,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The key file (default `relay.key`, in `state_dir` if set).
    pub key_file: Option<PathBuf>,
    /// The key in hex.
    pub key_hex: Option<String>,
    /// The members file: members mode.
    pub members: Option<PathBuf>,
    /// The relay's identity file, for session mode (default
    /// `relay.identity`, in `state_dir` if set).
    pub identity: Option<PathBuf>,
    /// Session mode: members may invite new members (`chat invite NAME`).
    pub members_invite: bool,
    #[serde(deserialize_with = "positive")]
    /// The longest line accepted, in bytes.
    pub max_frame: usize,
    #[serde(deserialize_with = "positive")]
    /// The most clients at once.
    pub max_clients: usize,
    #[serde(deserialize_with = "positive")]
    /// The most bytes queued for one client.
    pub max_queue: usize,
    #[serde(deserialize_with = "positive")]
    /// The most bytes held for unauthenticated connections, in all.
    pub pre_auth_budget: usize,
    #[serde(deserialize_with = "positive")]
    /// Seconds a connection may take to send a frame that opens (in
    /// session mode, to finish its handshake).
    pub first_frame_timeout: u64,
    /// The most connections per IPv4 address or IPv6 /64; 0 for no limit.
    pub max_per_address: usize,
    /// The most connections per IPv6 /56; 0 for no limit.
    pub max_per_ipv6_56: usize,
    /// The most connections per IPv6 /48; 0 for no limit.
    pub max_per_ipv6_48: usize,
    /// Shared-key mode: send a connection nothing until one of its frames
    /// opens (always so in members and session mode).
    pub require_proof: bool,
    /// Seconds between stats lines; 0 for only at exit.
    pub stats_interval: u64,
    /// Milliseconds to write what is queued after SIGINT/SIGTERM.
    pub shutdown_grace_ms: u64,
    /// Least milliseconds between two frames to an original notebook client.
    pub seed_write_gap_ms: u64,
    #[serde(deserialize_with = "room_name")]
    /// The room every connection starts in.
    pub default_room: String,
    #[serde(deserialize_with = "positive")]
    /// The most rooms with someone in them.
    pub max_rooms: usize,
    /// Messages of history sent to whoever joins a room.
    pub history: usize,
    /// The most bytes of one room's history.
    pub history_bytes: usize,
    #[serde(deserialize_with = "rate")]
    /// Flood control: messages a second (default by mode).
    pub rate: Option<f64>,
    /// Flood control: messages at once before `rate` applies.
    pub burst: Option<u32>,
    #[serde(with = "text")]
    /// Whether rooms are told who joins and leaves.
    pub presence: Switch,
    /// The message log's directory.
    pub log: Option<PathBuf>,
    /// The message log's key file.
    pub log_key: Option<PathBuf>,
    #[serde(with = "text")]
    /// When the message log is synced.
    pub log_fsync: Fsync,
    /// The most bytes the message log keeps.
    pub log_max_bytes: u64,
    /// The web listener's address.
    pub web: Option<SocketAddr>,
    /// Origins allowed to open `/ws`.
    pub web_origin: Vec<String>,
    #[serde(deserialize_with = "positive")]
    /// Seconds a browser may be silent before a ping.
    pub web_idle_timeout: u64,
    /// The web listener's TLS certificate chain (PEM).
    pub web_tls_cert: Option<PathBuf>,
    /// The web listener's TLS private key (PEM).
    pub web_tls_key: Option<PathBuf>,
    /// TLS on the web listener with a certificate made at start.
    pub web_tls_self_signed: bool,
    #[serde(deserialize_with = "positive")]
    /// Seconds a TLS handshake on the web listener may take.
    pub web_tls_handshake_timeout: u64,
    /// `/metrics`'s own listener.
    pub metrics: Option<SocketAddr>,
    /// A file holding the bearer token `/metrics` needs.
    pub metrics_token_file: Option<PathBuf>,
    /// NATS servers, comma separated: cluster mode.
    pub cluster: Option<String>,
    #[serde(deserialize_with = "cluster_name")]
    /// The cluster's name.
    pub cluster_name: String,
    /// The key the relays of the cluster share.
    pub cluster_key_file: Option<PathBuf>,
    /// NATS authentication: a token.
    pub cluster_token: Option<String>,
    /// NATS authentication: a user.
    pub cluster_user: Option<String>,
    /// NATS authentication: the user's password.
    pub cluster_password: Option<String>,
    /// NATS authentication: an nkey seed file.
    pub cluster_nkey: Option<PathBuf>,
    /// NATS authentication: a credentials file.
    pub cluster_creds: Option<PathBuf>,
    #[serde(deserialize_with = "positive")]
    /// Seconds another relay may be silent before it is lost.
    pub cluster_timeout: u64,
    #[serde(deserialize_with = "positive")]
    /// The most envelopes waiting for NATS.
    pub cluster_queue: usize,
    /// Whether room history is kept in JetStream.
    pub cluster_history: bool,
    /// The most bytes of the JetStream history stream.
    pub cluster_history_bytes: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        let limits = Limits::default();
        Settings {
            state_dir: None,
            admin_socket: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            key_file: None,
            key_hex: None,
            members: None,
            identity: None,
            members_invite: false,
            max_frame: limits.max_frame,
            max_clients: limits.max_clients,
            max_queue: limits.max_queue,
            pre_auth_budget: limits.pre_auth_budget,
            first_frame_timeout: limits.first_frame_timeout.as_secs(),
            max_per_address: limits.max_per_address,
            max_per_ipv6_56: limits.max_per_ipv6_56,
            max_per_ipv6_48: limits.max_per_ipv6_48,
            require_proof: limits.require_proof,
            stats_interval: 60,
            shutdown_grace_ms: 2000,
            seed_write_gap_ms: eaxchat_proto::seed::DEFAULT_WRITE_GAP.as_millis() as u64,
            default_room: eaxchat_core::rooms::DEFAULT_ROOM.to_owned(),
            max_rooms: eaxchat_core::rooms::DEFAULT_MAX_ROOMS,
            history: eaxchat_core::history::DEFAULT_MAX_ENTRIES,
            history_bytes: eaxchat_core::history::DEFAULT_MAX_BYTES,
            rate: None,
            burst: None,
            presence: Switch::On,
            log: None,
            log_key: None,
            log_fsync: Fsync::EverySec,
            log_max_bytes: msglog::DEFAULT_MAX_BYTES,
            web: None,
            web_origin: Vec::new(),
            web_idle_timeout: crate::web::DEFAULT_IDLE_TIMEOUT.as_secs(),
            web_tls_cert: None,
            web_tls_key: None,
            web_tls_self_signed: false,
            web_tls_handshake_timeout: crate::web::DEFAULT_HANDSHAKE_TIMEOUT.as_secs(),
            metrics: None,
            metrics_token_file: None,
            cluster: None,
            cluster_name: "main".to_owned(),
            cluster_key_file: None,
            cluster_token: None,
            cluster_user: None,
            cluster_password: None,
            cluster_nkey: None,
            cluster_creds: None,
            cluster_timeout: eaxchat_core::cluster::DEFAULT_TIMEOUT.as_secs(),
            cluster_queue: eaxchat_core::cluster::OUT_QUEUE,
            cluster_history: false,
            cluster_history_bytes: 64 << 20,
        }
    }
}

/// A configuration file the relay cannot take, and why; the line when
/// the problem is on one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line the problem is on, if it is on one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "config {} line {line}: {}",
                self.path.display(),
                self.message
            ),
            None => write!(f, "config {}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Settings {
    /// Reads the file at `path`, with its relative paths taken from its
    /// `state-dir` ([`Settings::anchor_paths`]).
    pub fn read(path: &Path) -> Result<Settings, ConfigError> {
        let text = fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            line: None,
            message: e.to_string(),
        })?;
        Settings::parse(&text, path)
    }

    /// Parses `text`, the contents of the file at `path` (which only names
    /// it in errors). Relative paths are left as they are.
    pub fn parse(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let start = e.span().map(|span| span.start.min(text.len()));
            let line = start.map(|start| text[..start].matches('\n').count() + 1);
            let mut message = shorten(e.message());
            // A value's own error ("must be at least 1") does not say
            // whose: name the key its line sets.
            let key = start.and_then(|start| {
                let line_start = text[..start].rfind('\n').map_or(0, |at| at + 1);
                let (key, _) = text[line_start..].split_once('=')?;
                let key = key.trim();
                keys().contains(&key).then_some(key)
            });
            if let Some(key) = key
                && !message.contains(key)
            {
                message = format!("{key}: {message}");
            }
            ConfigError {
                path: path.to_owned(),
                line,
                message,
            }
        })
    }

    /// Takes this file's relative paths from `state_dir`; nothing changes
    /// without one.
    pub fn anchor_paths(&mut self, state_dir: Option<&Path>) {
        let Some(dir) = state_dir else {
            return;
        };
        let paths = [
            &mut self.admin_socket,
            &mut self.key_file,
            &mut self.members,
            &mut self.identity,
            &mut self.log,
            &mut self.log_key,
            &mut self.cluster_key_file,
            &mut self.cluster_nkey,
            &mut self.cluster_creds,
        ];
        for path in paths.into_iter().flatten() {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
    }

    /// The key file: the one given, else `relay.key` in the state directory
    /// (or the working directory without one).
    pub fn key_file_or_default(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.in_state_dir("relay.key"))
    }

    /// The relay's identity file (session mode): the one given, else
    /// `relay.identity` in the state directory (or the working directory
    /// without one).
    pub fn identity_or_default(&self) -> PathBuf {
        self.identity
            .clone()
            .unwrap_or_else(|| self.in_state_dir("relay.identity"))
    }

    /// The members file `relay members` edits: the one given, else
    /// `members.txt` in the state directory; `None` without either.
    pub fn members_file(&self) -> Option<PathBuf> {
        self.members
            .clone()
            .or_else(|| self.state_dir.as_ref().map(|dir| dir.join("members.txt")))
    }

    fn in_state_dir(&self, name: &str) -> PathBuf {
        match &self.state_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    /// The limits these settings give.
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame: self.max_frame,
            max_clients: self.max_clients,
            max_queue: self.max_queue,
            pre_auth_budget: self.pre_auth_budget,
            first_frame_timeout: std::time::Duration::from_secs(self.first_frame_timeout),
            max_per_address: self.max_per_address,
            max_per_ipv6_56: self.max_per_ipv6_56,
            max_per_ipv6_48: self.max_per_ipv6_48,
            require_proof: self.require_proof,
        }
    }

    /// The keys set here to secrets ([`SECRET_KEYS`]).
    pub fn secrets(&self) -> Vec<&'static str> {
        let set = [
            self.key_hex.is_some(),
            self.cluster_token.is_some(),
            self.cluster_password.is_some(),
        ];
        SECRET_KEYS
            .into_iter()
            .zip(set)
            .filter_map(|(key, set)| set.then_some(key))
            .collect()
    }

    /// The keys whose values differ between `self` and `other`, in the
    /// order of [`DEFAULTS`].
    pub fn changed_keys(&self, other: &Settings) -> Vec<&'static str> {
        let (Ok(a), Ok(b)) = (toml::Table::try_from(self), toml::Table::try_from(other)) else {
            // Every field serialises; should one ever not, say everything
            // changed rather than nothing.
            return keys();
        };
        keys()
            .into_iter()
            .filter(|key| a.get(*key) != b.get(*key))
            .collect()
    }

    /// Takes the values of the [`LIVE_KEYS`] from `other`.
    pub fn take_live(&mut self, other: &Settings) {
        self.max_clients = other.max_clients;
        self.max_queue = other.max_queue;
        self.pre_auth_budget = other.pre_auth_budget;
        self.max_per_address = other.max_per_address;
        self.max_per_ipv6_56 = other.max_per_ipv6_56;
        self.max_per_ipv6_48 = other.max_per_ipv6_48;
    }
}

/// Every key, in the order of [`DEFAULTS`]: its `key = value` lines, set
/// or commented out.
pub fn keys() -> Vec<&'static str> {
    DEFAULTS
        .lines()
        .filter_map(|line| {
            let line = line.strip_prefix("# ").unwrap_or(line);
            let (key, _) = line.split_once(" = ")?;
            key.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                .then_some(key)
        })
        .collect()
}

/// toml's message for an unknown key lists all forty of them: name the
/// nearest instead.
fn shorten(message: &str) -> String {
    let message = message.trim();
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let unknown = rest.split('`').next().unwrap_or_default();
    let nearest = keys()
        .into_iter()
        .map(|key| (distance(key, unknown), key))
        .min()
        .filter(|(d, _)| *d <= 3);
    match nearest {
        Some((_, key)) => format!("unknown key `{unknown}` (did you mean `{key}`?)"),
        None => format!("unknown key `{unknown}` (`relay config defaults` lists every key)"),
    }
}

/// The edit distance between two short keys.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// A count that must be at least 1.
fn positive<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialEq + Default,
{
    let value = T::deserialize(deserializer)?;
    if value == T::default() {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(value)
}

/// Messages a second: a number, 0 or more.
fn rate<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if !value.is_finite() || value < 0.0 {
        return Err(serde::de::Error::custom(
            "must be a number of messages a second, 0 for none",
        ));
    }
    Ok(Some(value))
}

fn room_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    eaxchat_proto::commands::RoomName::new(text.as_bytes()).map_err(serde::de::Error::custom)?;
    Ok(text)
}

fn cluster_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let name = String::deserialize(deserializer)?;
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(serde::de::Error::custom("1 to 32 of A-Z a-z 0-9 _ -"));
    }
    Ok(name)
}

/// A value written as its `Display` text and read with `FromStr`.
mod text {
    use super::*;

    pub(super) fn serialize<S: Serializer, T: fmt::Display>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(super) fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr<Err = String>,
    {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
