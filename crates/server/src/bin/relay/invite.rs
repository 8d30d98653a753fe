//! `relay invite NAME`: makes an invite (a link and its page form) in the
//! invites file beside the members file; `relay invite --list` and
//! `relay invite --revoke ID`. A running relay picks a change up within a
//! second (it watches the file); a stopped one reads it when it starts,
//! so the command works either way. The relay's identity is read (or made,
//! as the relay's first start would) to put its key in the invite, and a
//! missing members file is made (empty, 0600), so on an empty machine
//! `relay invite` can come before the relay's first start.

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;
use eaxchat_proto::invite::InviteId;
use eaxchat_proto::name::Name;
use eaxchat_proto::session::identity_file::read_or_generate;
use eaxchat_server::members_file::invites::{self, invites_path, now_millis};
use eaxchat_server::members_file::{self, Listing};

use super::args::Args;
use super::config_cmd;

/// Invite someone: print a link that adds NAME (with the device that opens
/// it) to the members file. Also --list and --revoke ID.
#[derive(FromArgs)]
#[argh(subcommand, name = "invite")]
pub(crate) struct InviteArgs {
    /// the member the invite admits
    #[argh(positional)]
    name: Option<String>,

    /// how long the invite lasts: 30m, 24h, 7d (default 24h)
    #[argh(option, default = "String::from(\"24h\")")]
    expires: String,

    /// how many devices may join with it (default 1)
    #[argh(option, default = "1")]
    uses: u32,

    /// add a device to NAME, who is a member already
    #[argh(switch)]
    device: bool,

    /// also print a short code to read aloud (N-word-word-word, joined
    /// with SPAKE2; the link still works)
    #[argh(switch)]
    code: bool,

    /// HOST:PORT clients reach the relay at (default: the listen address)
    #[argh(option)]
    addr: Option<String>,

    /// the page's address, e.g. https://chat.example (default: the web
    /// listener's, if the relay serves the page)
    #[argh(option)]
    web: Option<String>,

    /// list the invites
    #[argh(switch)]
    list: bool,

    /// revoke the invite with this id
    #[argh(option)]
    revoke: Option<String>,

    /// the members file (default: the config's)
    #[argh(option)]
    file: Option<PathBuf>,

    /// the relay's identity file (default: the config's, else
    /// relay.identity)
    #[argh(option)]
    identity: Option<PathBuf>,

    /// the config file (default /etc/eaxchat/relay.toml, if there is one)
    #[argh(option)]
    config: Option<PathBuf>,
}

/// Runs `relay invite`; the error is the message to print.
pub(crate) fn run(args: InviteArgs, flags: &Args) -> Result<(), String> {
    let settings = config_cmd::settings_for_tool(args.config.as_deref(), flags)?;
    let members = args
        .file
        .clone()
        .or_else(|| settings.members_file())
        .ok_or("which members file? Give --file FILE, or a config file with members")?;
    if args.list {
        return list(&members);
    }
    if let Some(id) = &args.revoke {
        let id = InviteId::parse(id).map_err(|e| e.to_string())?;
        let invite = invites::revoke(&members, &id).map_err(|e| e.to_string())?;
        println!("revoked invite {id} for {}", invite.name);
        return Ok(());
    }
    let name = args
        .name
        .as_deref()
        .ok_or("relay invite NAME: whom to invite?")?;
    let name = Name::new(name).map_err(|e| format!("{name:?}: {e}"))?;
    let lasts = parse_duration(&args.expires)?;
    if args.uses == 0 {
        return Err("--uses must be at least 1".into());
    }
    let member = is_member(&members, &name)?;
    if args.device && !member {
        return Err(format!(
            "--device adds a device to a member, and {name} is none"
        ));
    }
    if !args.device && member {
        return Err(format!(
            "{name} is a member already: `relay invite {name} --device` adds a device of theirs"
        ));
    }
    if !members.exists() {
        // A new sessions members file, empty, so the relay can start on it.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&members)
            .map_err(|e| format!("members file {}: {e}", members.display()))?;
    }
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| settings.identity_or_default());
    let (secret, _) = read_or_generate(&identity).map_err(|e| e.to_string())?;
    let addr = args
        .addr
        .clone()
        .unwrap_or_else(|| settings.listen.to_string());
    let web = args
        .web
        .clone()
        .or_else(|| settings.web.map(|web| format!("http://{web}")));
    let expires = now_millis().saturating_add(lasts.as_millis() as u64);
    let request = invites::InviteRequest {
        name: &name,
        relay: secret.public_key(),
        addr: &addr,
        expires_at_millis: expires,
        uses: args.uses,
        device: args.device,
        inviter: None,
        code: args.code,
    };
    let (invite, code) = invites::issue(&members, &request).map_err(|e| e.to_string())?;
    println!(
        "invite {} for {name}: {} use(s), expires in {}",
        invite.id, args.uses, args.expires
    );
    println!("relay key {}", secret.public_key().fingerprint());
    println!();
    println!("  chat --join '{}'", invite.link());
    if let Some(web) = web {
        println!("  {}", invite.web_link(&web));
    }
    if let Some(code) = &code {
        println!();
        println!("  code {code}    (read it out: chat --connect {addr} --join {code})");
    }
    println!();
    println!(
        "Send the link privately: whoever opens it first joins as {name}. Revoke it with \
         `relay invite --revoke {}`.",
        invite.id
    );
    Ok(())
}

/// Whether `name` has a device in the members file (a missing file has
/// none); a static-key file takes no invites.
fn is_member(members: &std::path::Path, name: &Name) -> Result<bool, String> {
    if !members.exists() {
        return Ok(false);
    }
    match members_file::list_any(members).map_err(|e| e.to_string())? {
        Listing::Sessions(devices) => Ok(devices.iter().any(|device| device.name == *name)),
        Listing::Static(names) if names.is_empty() => Ok(false),
        Listing::Static(_) => Err(format!(
            "{} is a static-key members file: invites add devices to a sessions file \
             (relay members migrate converts it)",
            members.display()
        )),
    }
}

fn list(members: &std::path::Path) -> Result<(), String> {
    let path = invites_path(members);
    let now = now_millis();
    for invite in invites::read(&path).map_err(|e| e.to_string())? {
        let state = if invite.revoked {
            "revoked".to_owned()
        } else if invite.uses_left == 0 {
            "spent".to_owned()
        } else if now >= invite.expires_at_millis {
            "expired".to_owned()
        } else {
            let left = (invite.expires_at_millis - now) / 60_000;
            format!("{} use(s) left, expires in {left}m", invite.uses_left)
        };
        let device = if invite.device { " (device)" } else { "" };
        let by = match &invite.inviter {
            Some(inviter) if *inviter != invite.name => format!(" (invited by {inviter})"),
            _ => String::new(),
        };
        println!("{} {}{device}{by}: {state}", invite.id, invite.name);
    }
    Ok(())
}

/// `30s`, `30m`, `24h`, `7d`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("--expires {text:?}: give a number and s, m, h or d, like 24h");
    let (number, unit) = text
        .split_at_checked(text.len().saturating_sub(1))
        .ok_or_else(bad)?;
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}
