//! The relay's identity for session mode: its X25519 secret in an identity
//! file (`--identity`, default `relay.identity`), read at start or made
//! there on the first start (mode 0600, never replaced), its public key and
//! fingerprint logged; and `relay key show`, which prints them for clients
//! to pin and never makes a file. Reading and writing the file are the
//! protocol crate's (`eaxchat_proto::session::identity_file`), shared with
//! `chat`.

use std::path::{Path, PathBuf};

use argh::FromArgs;
use eaxchat_proto::session::StaticSecret;
use eaxchat_proto::session::identity_file::{IdentityError, read_identity_file, read_or_generate};
use log::info;

use super::Failure;
use super::args::Args;
use super::config_cmd;

/// The relay's identity (session mode).
#[derive(FromArgs)]
#[argh(subcommand, name = "key")]
pub(crate) struct KeyArgs {
    #[argh(subcommand)]
    command: KeyCommand,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum KeyCommand {
    Show(ShowArgs),
}

/// Print the relay's public key and fingerprint, for clients to pin
/// (`chat --relay-key`). Never makes an identity.
#[derive(FromArgs)]
#[argh(subcommand, name = "show")]
struct ShowArgs {
    /// the identity file (default: the config's identity, else
    /// relay.identity)
    #[argh(option)]
    identity: Option<PathBuf>,

    /// the config file naming the identity (default
    /// /etc/eaxchat/relay.toml, if there is one)
    #[argh(option)]
    config: Option<PathBuf>,
}

/// Runs `relay key show`; the error is the message to print.
pub(crate) fn run(args: KeyArgs, flags: &Args) -> Result<(), String> {
    let KeyCommand::Show(show) = args.command;
    let path = match show.identity {
        Some(path) => path,
        None => config_cmd::settings_for_tool(show.config.as_deref(), flags)?.identity_or_default(),
    };
    let secret = read_identity_file(&path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "no relay identity in {}: a relay serving a sessions members file makes it on \
                 its first start (give --identity FILE for another place)",
                path.display()
            )
        })?;
    let key = secret.public_key();
    println!("{key}");
    println!("fingerprint {}", key.fingerprint());
    println!("clients pin it with: chat --relay-key {key}");
    Ok(())
}

/// Session mode's identity at `path`: read, or made (and logged as new)
/// if there is no file; its key and fingerprint logged either way. A file
/// others can read, or one that is not an identity, is a usage error.
pub(crate) fn load(path: &Path) -> Result<StaticSecret, Failure> {
    let (secret, new) = read_or_generate(path).map_err(|e| match e {
        IdentityError::Io { .. } | IdentityError::Randomness(_) => Failure::Runtime(e.to_string()),
        _ => Failure::Usage(e.to_string()),
    })?;
    if new {
        info!(
            "generated a new relay identity in {} (mode 0600): clients pin its public key \
             (relay key show)",
            path.display()
        );
    }
    let key = secret.public_key();
    info!(
        "relay identity {key} ({}) from {}",
        key.fingerprint(),
        path.display()
    );
    Ok(secret)
}
