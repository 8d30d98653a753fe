#![forbid(unsafe_code)]

//! `relay`: the eaxchat relay server. Takes its settings from the command
//! line over the config file (`--config`), finds the key (or, with
//! `--members`, reads the members file: a sessions file serves session
//! mode with the relay's identity, a static-key file the deprecated
//! members mode), and runs [`eaxchat_server::event_loop::Server`] until
//! SIGINT or SIGTERM.
//!
//! The flags are in `args.rs`; the config file, its reload on SIGHUP and
//! `relay config` in `config_cmd.rs`; `relay members` in `members.rs`;
//! the relay's identity and `relay key show` in `identity.rs`; `relay
//! status` in `status.rs`; the chat layer's set-up in `chat.rs`; `relay
//! log` (print, check, repair) and where the log key lives in
//! `log_cmd.rs`; the cluster's in `cluster.rs`.

mod args;
mod chat;
mod cluster;
mod config_cmd;
mod identity;
mod invite;
mod log_cmd;
mod members;
mod status;

use std::os::unix::fs::DirBuilderExt as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use eaxchat_core::members::{AnyMembers, MembersError};
use eaxchat_core::relay::Limits;
use eaxchat_core::roster::Roster;
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::{KEY_ENV, KeyError, KeyOrigin, KeySource, readable_by_others};
use eaxchat_server::config::Settings;
use eaxchat_server::event_loop::{Config, MembersWatch, Server};
use eaxchat_server::members_file;
use log::{error, info, warn};

use args::{Args, Command};

fn main() -> ExitCode {
    let mut args: Args = argh::from_env();
    if args.version {
        println!("relay (eaxchat) {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let outcome = match args.command.take() {
        Some(Command::Members(members)) => Some(members::run(members.command, &args)),
        Some(Command::Key(key)) => Some(identity::run(key, &args)),
        Some(Command::Invite(invite)) => Some(invite::run(invite, &args)),
        Some(Command::Log(log)) => Some(log_cmd::run(log, &args)),
        Some(Command::Config(config)) => Some(config_cmd::run(config, &args)),
        Some(Command::Status(status)) => Some(status::run(&status, &args)),
        None => None,
    };
    if let Some(outcome) = outcome {
        return match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("relay: {message}");
                ExitCode::from(2)
            }
        };
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match config_cmd::settings(&args).and_then(|settings| run(args, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            error!("{message}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(message)) => {
            error!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// How the relay failed: bad configuration (exit 2) or a runtime error (1).
enum Failure {
    Usage(String),
    Runtime(String),
}

/// The limits no relay can run with.
fn check_limits(settings: &Settings) -> Result<(), Failure> {
    if settings.max_frame == 0 || settings.max_clients == 0 || settings.max_queue == 0 {
        return Err(Failure::Usage(
            "--max-frame, --max-clients and --max-queue must be at least 1".into(),
        ));
    }
    if settings.pre_auth_budget == 0 || settings.first_frame_timeout == 0 {
        return Err(Failure::Usage(
            "--pre-auth-budget and --first-frame-timeout must be at least 1".into(),
        ));
    }
    Ok(())
}

/// A members relay given a shared key too.
fn members_and_key() -> Failure {
    Failure::Usage(format!(
        "--members serves each member under their own key: \
         give no shared key with it (--key-file, --key-hex or ${KEY_ENV})"
    ))
}

/// What every relay sets up beside its key: the chat layer, the cluster,
/// the admin socket and the config file's reload.
struct Extras {
    chat: chat::Options,
    cluster: Option<cluster::Options>,
    admin_socket: Option<PathBuf>,
    /// Session mode: members may invite new members (`--members-invite`).
    members_invite: bool,
    /// The config file and the settings in force, with the flags to lay
    /// over it again on SIGHUP.
    reload: Option<(PathBuf, Args, Settings)>,
}

fn run(mut args: Args, settings: Settings) -> Result<(), Failure> {
    check_limits(&settings)?;
    let limits = settings.limits();
    let chat = chat::Options::from_settings(&settings, settings.members.is_some())?;
    let cluster = cluster::Options::from_settings(&settings)?;
    let config = Config {
        listen: settings.listen,
        limits,
        stats_interval: (settings.stats_interval > 0)
            .then(|| Duration::from_secs(settings.stats_interval)),
        shutdown_grace: Duration::from_millis(settings.shutdown_grace_ms),
        seed_write_gap: Duration::from_millis(settings.seed_write_gap_ms),
    };
    if let Some(dir) = &settings.state_dir {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Failure::Runtime(format!("state-dir {}: {e}", dir.display())))?;
    }
    let extras = Extras {
        chat,
        cluster,
        admin_socket: settings.admin_socket.clone(),
        members_invite: settings.members_invite,
        reload: args
            .config
            .take()
            .map(|path| (path, args, settings.clone())),
    };
    let env_key = std::env::var(KEY_ENV).ok();
    if settings.members_invite && settings.members.is_none() {
        warn!("--members-invite does nothing without a members file (session mode)");
    }
    if let Some(path) = &settings.members {
        if settings.key_hex.is_some() || settings.key_file.is_some() || env_key.is_some() {
            return Err(members_and_key());
        }
        return serve_members(path, &settings.identity_or_default(), config, extras);
    }
    let key_file = settings.key_file_or_default();
    let source = KeySource {
        hex: settings.key_hex.as_deref(),
        env: env_key,
        file: &key_file,
        generate_missing: true,
    };
    let (key, origin) = source.resolve().map_err(|e| match e {
        KeyError::Malformed { .. } => Failure::Usage(e.to_string()),
        KeyError::Io { .. } => Failure::Runtime(e.to_string()),
    })?;
    match &origin {
        KeyOrigin::Generated(path) => info!(
            "generated a new AES-{} key in {} (mode 0600): give this file to your clients",
            key.as_bytes().len() * 8,
            path.display()
        ),
        KeyOrigin::File(path) if readable_by_others(path) => warn!(
            "key file {} is readable by group or others; chmod 600 it",
            path.display()
        ),
        _ => {}
    }
    let cipher = Cipher::new(&key).map_err(|e| Failure::Runtime(format!("random seed: {e}")))?;
    let mut server = Server::bind(config, cipher)
        .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", settings.listen)))?;
    let addr = set_up(&mut server, extras, false)?;
    info!(
        "listening on {addr}; key from {origin} (AES-{}, AES-NI {}); {}",
        key.as_bytes().len() * 8,
        aes_ni(),
        limits_line(&limits),
    );
    server
        .run()
        .map(|_| ())
        .map_err(|e| Failure::Runtime(format!("poll loop failed: {e}")))
}

/// Serves the members of the file at `path`: session mode with the
/// identity at `identity` for a sessions file, members mode (deprecated)
/// for a static-key file.
fn serve_members(
    path: &std::path::Path,
    identity: &std::path::Path,
    config: Config,
    extras: Extras,
) -> Result<(), Failure> {
    let file = members_file::read_any(path).map_err(|e| match e {
        MembersError::Io { .. } => Failure::Runtime(e.to_string()),
        _ => Failure::Usage(e.to_string()),
    })?;
    if file.readable_by_others
        && let Some(warning) = members_file::permissions_warning(path)
    {
        warn!("{warning}");
    }
    let limits = config.limits;
    let listen = config.listen;
    let watch = MembersWatch::new(path.to_owned());
    let cannot_listen = |e| Failure::Runtime(format!("cannot listen on {listen}: {e}"));
    let (mut server, mode) = match file.members {
        AnyMembers::Static(members) => {
            if extras.members_invite {
                warn!("--members-invite does nothing in static-key members mode");
            }
            warn!(
                "static-key members mode is deprecated: the relay holds a copy of every \
                 member's key, and a frame recorded on the wire can be replayed after a \
                 restart; convert {} with `relay members migrate --file {}` (each member \
                 gets an identity to hand to them) and restart the relay",
                path.display(),
                path.display()
            );
            let roster =
                Roster::new(&members).map_err(|e| Failure::Runtime(format!("random seed: {e}")))?;
            let server = Server::bind_members(config, roster, watch).map_err(cannot_listen)?;
            let mode = format!(
                "members mode: {} members from {}",
                members.len(),
                path.display()
            );
            (server, mode)
        }
        AnyMembers::Sessions(devices) => {
            let secret = identity::load(identity)?;
            let mode = format!(
                "session mode: {} members ({} devices) from {}",
                devices.names().len(),
                devices.len(),
                path.display()
            );
            let mut server =
                Server::bind_sessions(config, &devices, secret, watch).map_err(cannot_listen)?;
            server.set_members_invite(extras.members_invite);
            let mode = match extras.members_invite {
                true => format!("{mode}; members may invite (--members-invite)"),
                false => mode,
            };
            (server, mode)
        }
    };
    let addr = set_up(&mut server, extras, true)?;
    info!(
        "listening on {addr}; {mode} (AES-NI {}); {}",
        aes_ni(),
        limits_line(&limits),
    );
    server
        .run()
        .map(|_| ())
        .map_err(|e| Failure::Runtime(format!("poll loop failed: {e}")))
}

/// Sets up the chat layer, the cluster, the signals (SIGHUP rereads the
/// members file when `members`, and the config file when there is one)
/// and the admin socket; returns the address bound.
fn set_up(
    server: &mut Server,
    extras: Extras,
    members: bool,
) -> Result<std::net::SocketAddr, Failure> {
    extras.chat.set_up(server)?;
    let addr = server
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    if let Some(cluster) = extras.cluster {
        cluster.set_up(server, addr)?;
    }
    let signals =
        |e: std::io::Error| Failure::Runtime(format!("cannot install signal handlers: {e}"));
    server
        .stop_handle()
        .and_then(|handle| handle.stop_on_signals())
        .map_err(signals)?;
    if members {
        server.reload_on_sighup().map_err(signals)?;
    }
    if let Some((path, flags, running)) = extras.reload {
        info!("config {}: SIGHUP rereads it", path.display());
        server
            .on_config_reload(config_cmd::reloader(path, flags, running))
            .map_err(signals)?;
    }
    if let Some(socket) = &extras.admin_socket {
        server.listen_admin(socket).map_err(|e| {
            Failure::Runtime(format!(
                "cannot serve the admin socket {}: {e}",
                socket.display()
            ))
        })?;
        info!("admin socket {} (relay status)", socket.display());
    }
    Ok(addr)
}

/// The limits in force, as the start-up line shows them.
fn limits_line(limits: &Limits) -> String {
    format!(
        "max-frame={} max-clients={} max-queue={} pre-auth-budget={} first-frame-timeout={}s \
         max-per-address={}",
        limits.max_frame,
        limits.max_clients,
        limits.max_queue,
        limits.pre_auth_budget,
        limits.first_frame_timeout.as_secs(),
        limits.max_per_address,
    )
}

fn aes_ni() -> &'static str {
    if aes::hardware_accelerated() {
        "on"
    } else {
        "off"
    }
}
