//! `relay status`: asks a running relay for its status over its admin
//! socket (`admin-socket`) and prints it: connections, rooms, members
//! online, bytes queued, the limits in force and the last reload.
//!
//! The relay writes the text and closes; this side only connects and
//! reads, with a bounded wait, and never writes.

use std::io::Read as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use argh::FromArgs;

use super::args::Args;
use super::config_cmd;

/// Where the Debian package's relay serves its status.
const PACKAGED_SOCKET: &str = "/run/eaxchat/admin.sock";

/// How long the relay may take to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Print a running relay's status: connections, rooms, members online,
/// bytes queued and the last reload, read from its admin socket.
#[derive(FromArgs)]
#[argh(subcommand, name = "status")]
pub(crate) struct StatusArgs {
    /// the relay's admin socket (default: the config's admin-socket, else
    /// /run/eaxchat/admin.sock)
    #[argh(option)]
    socket: Option<PathBuf>,

    /// the config file naming the admin socket (default
    /// /etc/eaxchat/relay.toml, if there is one)
    #[argh(option)]
    config: Option<PathBuf>,
}

/// Runs `relay status`; the error is the message to print.
pub(crate) fn run(args: &StatusArgs, flags: &Args) -> Result<(), String> {
    let socket = match &args.socket {
        Some(socket) => socket.clone(),
        None => config_cmd::settings_for_tool(args.config.as_deref(), flags)?
            .admin_socket
            .unwrap_or_else(|| PathBuf::from(PACKAGED_SOCKET)),
    };
    print!("{}", read_status(&socket)?);
    Ok(())
}

/// The status text the relay at `socket` writes.
fn read_status(socket: &Path) -> Result<String, String> {
    let unreachable = |e: std::io::Error| {
        format!(
            "no relay answers on {}: {e} (is it running, with admin-socket set?)",
            socket.display()
        )
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(ANSWER_WITHIN))
        .map_err(unreachable)?;
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(unreachable)?;
    if text.is_empty() {
        return Err(format!("the relay on {} said nothing", socket.display()));
    }
    Ok(text)
}
