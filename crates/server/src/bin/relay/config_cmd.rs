//! The config file as the binary uses it: the settings a relay runs with
//! (the file under the flags), rereading it on SIGHUP, and the `relay
//! config` commands (`defaults`, `check FILE`).
//!
//! Reading and comparing settings is [`eaxchat_server::config`]'s; this
//! file decides precedence (a flag given always wins over the file) and
//! what a reload says.

use std::path::{Path, PathBuf};

use argh::FromArgs;
use eaxchat_core::members::MembersKind;
use eaxchat_proto::key::{KEY_ENV, Key, readable_by_others};
use eaxchat_proto::session::identity_file::read_identity_file;
use eaxchat_server::config::{self, ConfigError, LIVE_KEYS, Settings};
use eaxchat_server::event_loop::{ConfigReload, Reloaded};
use eaxchat_server::members_file;
use log::{info, warn};

use super::args::Args;
use super::{Failure, chat, cluster};

/// Print a complete config file, or check one.
#[derive(FromArgs)]
#[argh(subcommand, name = "config")]
pub(crate) struct ConfigArgs {
    #[argh(subcommand)]
    command: ConfigCommand,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum ConfigCommand {
    Defaults(DefaultsArgs),
    Check(CheckArgs),
}

/// Print a complete config file: every key at its default, each under a
/// comment saying what it does.
#[derive(FromArgs)]
#[argh(subcommand, name = "defaults")]
struct DefaultsArgs {}

/// Check a config file: exit 0 if the relay would start from it (with the
/// flags given before `config`), else 2 with the reason and the line.
#[derive(FromArgs)]
#[argh(subcommand, name = "check")]
struct CheckArgs {
    /// the config file
    #[argh(positional)]
    file: PathBuf,
}

/// Runs `relay config ...`; the error is the message to print.
pub(crate) fn run(args: ConfigArgs, flags: &Args) -> Result<(), String> {
    match args.command {
        ConfigCommand::Defaults(_) => {
            print!("{}", config::DEFAULTS);
            Ok(())
        }
        ConfigCommand::Check(check) => {
            let (settings, secrets) = read(&check.file, flags).map_err(|e| e.to_string())?;
            if let Some(warning) = secrets_warning(&check.file, &secrets) {
                eprintln!("relay: warning: {warning}");
            }
            validate(&settings).map_err(|failure| {
                let (Failure::Usage(message) | Failure::Runtime(message)) = failure;
                format!("config {}: {message}", check.file.display())
            })?;
            println!("config {}: ok ({})", check.file.display(), mode(&settings));
            Ok(())
        }
    }
}

/// The settings a serving relay runs with: `--config`'s file (if given)
/// under the flags given.
pub(crate) fn settings(args: &Args) -> Result<Settings, Failure> {
    let Some(path) = &args.config else {
        return Ok(args.layer(Settings::default()));
    };
    let (settings, secrets) = read(path, args).map_err(|e| Failure::Usage(e.to_string()))?;
    if let Some(warning) = secrets_warning(path, &secrets) {
        warn!("{warning}");
    }
    Ok(settings)
}

/// The settings `relay members` and `relay status` look in: the config
/// file `explicit` names, else `--config`, else [`config::DEFAULT_PATH`]
/// if it exists, else none; the flags given over it.
pub(crate) fn settings_for_tool(explicit: Option<&Path>, flags: &Args) -> Result<Settings, String> {
    let default = Path::new(config::DEFAULT_PATH);
    let path = explicit
        .or(flags.config.as_deref())
        .or_else(|| default.is_file().then_some(default));
    match path {
        Some(path) => read(path, flags)
            .map(|(settings, _)| settings)
            .map_err(|e| e.to_string()),
        None => Ok(flags.layer(Settings::default())),
    }
}

/// Reads the file at `path`, takes its relative paths from the state
/// directory, and lays the flags over it; with the secrets the file holds.
fn read(path: &Path, flags: &Args) -> Result<(Settings, Vec<&'static str>), ConfigError> {
    let mut file = Settings::read(path)?;
    let secrets = file.secrets();
    let state_dir = flags.state_dir.clone().or_else(|| file.state_dir.clone());
    file.anchor_paths(state_dir.as_deref());
    Ok((flags.layer(file), secrets))
}

fn secrets_warning(path: &Path, secrets: &[&str]) -> Option<String> {
    (!secrets.is_empty() && readable_by_others(path)).then(|| {
        format!(
            "config {} holds {} and is readable by group or others; chmod 600 it",
            path.display(),
            secrets.join(", ")
        )
    })
}

/// Everything the relay checks before it starts, without starting: no
/// file is created, no socket bound.
fn validate(settings: &Settings) -> Result<(), Failure> {
    super::check_limits(settings)?;
    chat::Options::from_settings(settings, settings.members.is_some())?;
    cluster::Options::from_settings(settings)?;
    let env_key = std::env::var(KEY_ENV).ok();
    if let Some(path) = &settings.members {
        if settings.key_hex.is_some() || settings.key_file.is_some() || env_key.is_some() {
            return Err(super::members_and_key());
        }
        let file = members_file::read_any(path).map_err(|e| Failure::Usage(e.to_string()))?;
        if file.members.kind() == MembersKind::Sessions {
            // The identity is made on the first start if missing; one
            // that is there must be one the relay can take.
            let identity = settings.identity_or_default();
            let read = read_identity_file(&identity).map_err(|e| Failure::Usage(e.to_string()))?;
            if read.is_none() && identity.exists() {
                return Err(Failure::Usage(format!(
                    "identity {} is not an identity file",
                    identity.display()
                )));
            }
        }
    } else if let Some(hex) = settings.key_hex.as_deref().or(env_key.as_deref()) {
        Key::from_hex(hex).map_err(|e| Failure::Usage(format!("key-hex: {e}")))?;
    }
    Ok(())
}

/// Which mode the settings run, for `config check`'s answer.
fn mode(settings: &Settings) -> String {
    match &settings.members {
        Some(path) if members_file::kind(path).ok().flatten() == Some(MembersKind::Sessions) => {
            format!(
                "session mode, members from {}, identity {}",
                path.display(),
                settings.identity_or_default().display()
            )
        }
        Some(path) => format!("members mode, members from {}", path.display()),
        None if settings.key_hex.is_some() => "shared key, given in key-hex".to_owned(),
        None => format!(
            "shared key from {}",
            settings.key_file_or_default().display()
        ),
    }
}

/// Rereads the file at `path` on SIGHUP, with the same flags over it,
/// against `running`, the settings in force: the [`LIVE_KEYS`] that
/// changed are applied, and the other changes logged as needing a
/// restart.
pub(crate) fn reloader(path: PathBuf, flags: Args, mut running: Settings) -> ConfigReload {
    Box::new(move || {
        let fresh = match read(&path, &flags) {
            Ok((fresh, _)) => fresh,
            Err(e) => {
                let summary =
                    format!("config not reloaded (SIGHUP), keeping the settings in force: {e}");
                warn!("{summary}");
                return Reloaded {
                    limits: None,
                    summary,
                };
            }
        };
        let changed = running.changed_keys(&fresh);
        let (live, restart): (Vec<&str>, Vec<&str>) =
            changed.into_iter().partition(|key| LIVE_KEYS.contains(key));
        running.take_live(&fresh);
        let mut parts = Vec::new();
        if !live.is_empty() {
            let applied: Vec<String> = live
                .iter()
                .map(|key| format!("{key}={}", live_value(&running, key)))
                .collect();
            parts.push(format!("applied {}", applied.join(" ")));
        }
        if !restart.is_empty() {
            parts.push(format!("needs a restart to change {}", restart.join(", ")));
        }
        if parts.is_empty() {
            parts.push("nothing changed".to_owned());
        }
        let summary = format!(
            "config {} reloaded (SIGHUP): {}",
            path.display(),
            parts.join("; ")
        );
        if restart.is_empty() {
            info!("{summary}");
        } else {
            warn!("{summary}");
        }
        Reloaded {
            limits: (!live.is_empty()).then(|| running.limits()),
            summary,
        }
    })
}

/// The value of one of the [`LIVE_KEYS`].
fn live_value(settings: &Settings, key: &str) -> usize {
    match key {
        "max-clients" => settings.max_clients,
        "max-queue" => settings.max_queue,
        "pre-auth-budget" => settings.pre_auth_budget,
        "max-per-ipv6-56" => settings.max_per_ipv6_56,
        "max-per-ipv6-48" => settings.max_per_ipv6_48,
        _ => settings.max_per_address,
    }
}
