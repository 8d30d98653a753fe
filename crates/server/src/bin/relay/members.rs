//! `relay members add|remove|list|migrate`: edits a members file through
//! [`eaxchat_server::members_file`]. Without `--file`, the file is the
//! config's `members`, or `members.txt` in its `state-dir`.
//!
//! Each command works on the kind of file it finds: a sessions file gets
//! devices (public keys; a generated identity goes to its own 0600 file),
//! a static-key file what it always got. A file with no member yet is a
//! sessions file: the deprecated static-key kind is made only with
//! `--static-keys`.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use eaxchat_core::members::{MembersError, MembersKind};
use eaxchat_proto::name::Name;
use eaxchat_server::members_file::{self, Listing};

use super::args::{AddArgs, Args, MembersCommand, RemoveArgs};
use super::config_cmd;

/// What to do with the secret just made: said once per new member.
const HAND_OVER: &str = "Hand it to them privately (in person, or over scp/ssh), never through \
                         the chat or by email: whoever holds it can speak as them. Then delete \
                         your copy.";

/// Runs one `relay members` command; the error is the message to print.
pub(crate) fn run(command: MembersCommand, flags: &Args) -> Result<(), String> {
    match command {
        MembersCommand::Add(args) => {
            let name = parse_name(&args.name)?;
            let file = members_file(args.file.clone(), args.config.as_deref(), flags)?;
            add(&file, &name, args)?;
            give_to_state_dir_owner(&file);
            warn_if_open(&file);
        }
        MembersCommand::Remove(args) => {
            let name = parse_name(&args.name)?;
            let file = members_file(args.file.clone(), args.config.as_deref(), flags)?;
            remove(&file, &name, &args)?;
            give_to_state_dir_owner(&file);
            warn_if_open(&file);
        }
        MembersCommand::List(args) => {
            let file = members_file(args.file, args.config.as_deref(), flags)?;
            let listing = members_file::list_any(&file).map_err(|e| e.to_string())?;
            warn_if_open(&file);
            match listing {
                Listing::Static(names) => names.iter().for_each(|name| println!("{name}")),
                Listing::Sessions(devices) => {
                    for device in devices {
                        match device.label {
                            Some(label) => {
                                println!("{} {} ({label})", device.name, device.key.fingerprint())
                            }
                            None => println!("{} {}", device.name, device.key.fingerprint()),
                        }
                    }
                }
            }
        }
        MembersCommand::Migrate(args) => {
            let file = members_file(args.file, args.config.as_deref(), flags)?;
            let key_dir = args.key_dir.unwrap_or_default();
            let migrated = members_file::migrate(&file, &key_dir).map_err(|e| e.to_string())?;
            give_to_state_dir_owner(&file);
            warn_if_open(&file);
            println!(
                "migrated {} to sessions: {} members, each with a new identity",
                file.display(),
                migrated.len()
            );
            for member in &migrated {
                println!(
                    "{}: {} (mode 0600), public key {} ({})",
                    member.name,
                    member.identity.display(),
                    member.key,
                    member.key.fingerprint()
                );
            }
            println!(
                "Hand each member their identity file privately (in person, or over scp/ssh), \
                 never through the chat or by email, then delete your copies. They connect with \
                 `chat --key-file NAME.identity --relay-key KEY`, KEY being what `relay key \
                 show` prints here once the relay has run in session mode. Their old static \
                 keys no longer let anyone in."
            );
            println!(
                "Restart the relay: it serves the old keys until then (a running relay does not \
                 change modes), and on its first start in session mode it makes its identity."
            );
        }
    }
    Ok(())
}

fn parse_name(text: &str) -> Result<Name, String> {
    Name::new(text).map_err(|e| MembersError::BadName(e).to_string())
}

/// `relay members add`, for the kind of file `file` is. A file with no
/// member yet becomes a sessions file, unless `--static-keys` asks for the
/// deprecated kind.
fn add(file: &Path, name: &Name, args: AddArgs) -> Result<(), String> {
    let kind = members_file::kind(file).map_err(|e| e.to_string())?;
    let for_sessions = args.sessions || args.public_key.is_some() || args.device.is_some();
    if args.static_keys && for_sessions {
        return Err(
            "--static-keys makes a static-key file; --public-key, --device and --sessions are \
             for a sessions file: give one or the other"
                .to_owned(),
        );
    }
    let sessions = match kind {
        Some(kind) => kind == MembersKind::Sessions,
        None => !args.static_keys,
    };
    if !sessions && for_sessions {
        return Err(MembersError::WrongKind {
            path: file.to_owned(),
            kind: MembersKind::Static,
            hint: "--public-key, --device and --sessions are for a sessions file; convert it \
                   first with `relay members migrate`",
        }
        .to_string());
    }
    if sessions && args.static_keys {
        return Err(MembersError::WrongKind {
            path: file.to_owned(),
            kind: MembersKind::Sessions,
            hint: "--static-keys is for a static-key file; leave it out to add a session \
                   member",
        }
        .to_string());
    }
    if sessions && args.bits.is_some() {
        return Err(match kind {
            None => "--bits is for static keys: a new members file is a sessions file (x25519 \
                     public keys) unless --static-keys is given"
                .to_owned(),
            Some(_) => format!(
                "--bits is for static keys; {} holds x25519 public keys",
                file.display()
            ),
        });
    }
    if !sessions {
        if kind.is_none() {
            eprintln!(
                "relay: note: {} starts as a static-key members file (--static-keys: the \
                 deprecated members mode, whose file holds every member's secret key); leave \
                 --static-keys out for a sessions file",
                file.display()
            );
        }
        return add_static(file, name, args);
    }
    let label = args.device.as_deref();
    if let Some(key) = &args.public_key {
        members_file::add_device(file, name, key, label).map_err(|e| e.to_string())?;
        println!(
            "added a device of {name} to {}: {}",
            file.display(),
            key.fingerprint()
        );
        return Ok(());
    }
    let key_out = args
        .key_out
        .unwrap_or_else(|| members_file::default_identity_file(name));
    let key = members_file::add_generated(file, name, &key_out, label).map_err(|e| match e {
        MembersError::AlreadyMember { .. } => {
            format!("{e}; to add another device, give its --public-key")
        }
        e => e.to_string(),
    })?;
    println!(
        "added {name} to {} (a session device: {})",
        file.display(),
        key.fingerprint()
    );
    println!(
        "wrote {name}'s identity to {} (mode 0600); only its public key is in the members \
         file. {HAND_OVER} {name} connects with `chat --connect ADDR --key-file {} --relay-key \
         KEY`, KEY being what `relay key show` prints here (without it, chat trusts the key \
         it is shown on first use).",
        key_out.display(),
        key_out.display()
    );
    Ok(())
}

/// `relay members add` on a static-key file: as it always was.
fn add_static(file: &Path, name: &Name, args: AddArgs) -> Result<(), String> {
    let bits = args.bits.unwrap_or_default();
    let key_out = args
        .key_out
        .unwrap_or_else(|| members_file::default_key_file(name));
    members_file::add(file, name, &key_out, bits).map_err(|e| e.to_string())?;
    println!(
        "added {name} to {} (AES-{})",
        file.display(),
        bits.bytes() * 8
    );
    println!(
        "wrote {name}'s key to {} (mode 0600). Hand it to {name} privately \
         (in person, or over scp/ssh), never through the chat or by email: \
         whoever holds it can speak as {name}. Then delete your copy.",
        key_out.display()
    );
    Ok(())
}

/// `relay members remove`: one device or all of a session member's, or a
/// static-key member.
fn remove(file: &Path, name: &Name, args: &RemoveArgs) -> Result<(), String> {
    let kind = members_file::kind(file).map_err(|e| e.to_string())?;
    if kind != Some(MembersKind::Sessions) && args.public_key.is_none() {
        members_file::remove(file, name).map_err(|e| e.to_string())?;
        println!("removed {name} from {}", file.display());
        return Ok(());
    }
    let removed = members_file::remove_devices(file, name, args.public_key.as_ref())
        .map_err(|e| e.to_string())?;
    match &args.public_key {
        Some(key) => println!(
            "removed {name}'s device {} from {}",
            key.fingerprint(),
            file.display()
        ),
        None => println!(
            "removed {name} from {} ({} devices)",
            file.display(),
            removed.len()
        ),
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
