//! `relay members add|remove|list`: edits a members file through
//! [`eaxchat_server::members_file`]. Without `--file`, the file is the
//! config's `members`, or `members.txt` in its `state-dir`.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use eaxchat_core::members::MembersError;
use eaxchat_proto::name::Name;
use eaxchat_server::members_file;

use super::args::{Args, MembersCommand};
use super::config_cmd;

/// Runs one `relay members` command; the error is the message to print.
pub(crate) fn run(command: MembersCommand, flags: &Args) -> Result<(), String> {
    let parse_name = |text: &str| Name::new(text).map_err(|e| MembersError::BadName(e).to_string());
    match command {
        MembersCommand::Add(args) => {
            let name = parse_name(&args.name)?;
            let file = members_file(args.file, args.config.as_deref(), flags)?;
            let key_out = args
                .key_out
                .unwrap_or_else(|| members_file::default_key_file(&name));
            members_file::add(&file, &name, &key_out, args.bits).map_err(|e| e.to_string())?;
            give_to_state_dir_owner(&file);
            warn_if_open(&file);
            println!(
                "added {name} to {} (AES-{})",
                file.display(),
                args.bits.bytes() * 8
            );
            println!(
                "wrote {name}'s key to {} (mode 0600). Hand it to {name} privately \
                 (in person, or over scp/ssh), never through the chat or by email: \
                 whoever holds it can speak as {name}. Then delete your copy.",
                key_out.display()
            );
        }
        MembersCommand::Remove(args) => {
            let name = parse_name(&args.name)?;
            let file = members_file(args.file, args.config.as_deref(), flags)?;
            members_file::remove(&file, &name).map_err(|e| e.to_string())?;
            give_to_state_dir_owner(&file);
            warn_if_open(&file);
            println!("removed {name} from {}", file.display());
        }
        MembersCommand::List(args) => {
            let file = members_file(args.file, args.config.as_deref(), flags)?;
            let names = members_file::list(&file).map_err(|e| e.to_string())?;
            warn_if_open(&file);
            for name in names {
                println!("{name}");
            }
        }
    }
    Ok(())
}

/// `--file`, else the config's members file.
fn members_file(
    file: Option<PathBuf>,
    config: Option<&Path>,
    flags: &Args,
) -> Result<PathBuf, String> {
    if let Some(file) = file {
        return Ok(file);
    }
    let settings = config_cmd::settings_for_tool(config, flags)?;
    let file = settings.members_file().ok_or_else(|| {
        "which members file? Give --file FILE, or a config file (--config, or \
         /etc/eaxchat/relay.toml) with state-dir or members"
            .to_owned()
    })?;
    // The state directory may not be there yet: the relay makes it when it
    // first starts, and systemd (StateDirectory=) when the unit does.
    if let Some(dir) = &settings.state_dir {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("state-dir {}: {e}", dir.display()))?;
    }
    Ok(file)
}

/// The members file is rewritten (a new file renamed over the old), so it
/// belongs to whoever ran the command. Run as root on a packaged relay's
/// state directory, give it to the directory's owner, the relay's user,
/// so the relay can still read it.
fn give_to_state_dir_owner(file: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return;
    };
    let (Ok(dir_meta), Ok(file_meta)) = (std::fs::metadata(dir), std::fs::metadata(file)) else {
        return;
    };
    if dir_meta.uid() == file_meta.uid() || file_meta.uid() != 0 {
        return;
    }
    if let Err(e) = std::os::unix::fs::chown(file, Some(dir_meta.uid()), Some(dir_meta.gid())) {
        eprintln!(
            "relay: warning: could not give {} to the owner of {} (uid {}): {e}",
            file.display(),
            dir.display(),
            dir_meta.uid()
        );
    }
}

fn warn_if_open(path: &Path) {
    if let Some(warning) = members_file::permissions_warning(path) {
        eprintln!("relay: warning: {warning}");
    }
}
