#![forbid(unsafe_code)]

//! `chat`: the eaxchat terminal client. Parses the command line, finds the
//! key (an identity and the relay key pinned for the relay, or a legacy
//! hex key), and runs the full-screen app ([`eaxchat_client::tui::run`])
//! when stdin and stdout are terminals, else the line mode
//! ([`eaxchat_client::run`]) on stdin and stdout; status and errors go to
//! stderr, one line each. `chat keygen` writes a new identity.

use std::io::{self, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;
use eaxchat_client::identity::{self, generate_identity};
use eaxchat_client::known_relays::KnownRelays;
use eaxchat_client::{self as client, Credentials, Options};
use eaxchat_proto::key::{KEY_ENV, KeyError, KeySource, readable_by_others};
use eaxchat_proto::session::{PublicKey, StaticSecret};

/// Chat through an eaxchat relay: every line typed is sealed and sent;
/// every message received is shown, made safe for the terminal. In a
/// terminal it is a full-screen app (messages above, the input line
/// below); with stdin or stdout not a terminal, or --plain, it reads and
/// prints lines, and when stdin ends it waits --linger-ms for replies and
/// exits.
#[derive(FromArgs)]
#[argh(
    note = "Keys. With an identity file as --key-file (chat keygen writes one),\n\
  every connection starts a session: a handshake that proves who you are to\n\
  the relay and who the relay is to you, then frames under keys of that\n\
  connection only; the relay stamps your name. The relay's operator adds\n\
  your public key (relay members add NAME --public-key x25519:...). An\n\
  identity file must be private: chat refuses one that group or others can\n\
  read (chmod 600 it). A hex key file (the relay's shared key, or a member\n\
  key file from relay members add) works as before, without sessions.\n\
\n\
  Relay keys. A session needs the relay's public key, pinned per HOST:PORT\n\
  in the known relays file ($XDG_CONFIG_HOME/eaxchat/known_relays, else\n\
  ~/.config/eaxchat/known_relays, or --known-relays FILE). The first time,\n\
  like ssh's accept-new, chat asks the relay for its key, prints \"the\n\
  relay at HOST:PORT has key SHA256:... (x25519:...); trusting it on first\n\
  use\", and pins it once the session has proved it. To check the key\n\
  instead of trusting it, give it with --relay-key x25519:... (relay key\n\
  show prints it on the relay's machine); --no-trust-new refuses a relay\n\
  with no pin unless --relay-key is given (for scripts). Later runs use\n\
  the pin and ask nothing. A relay key that differs from the pin, given\n\
  or met, is always refused naming both fingerprints, and never replaces\n\
  the pin: if the relay's key really changed, remove its line from that\n\
  file.\n\
\n\
  End-to-end rooms. With an identity, /join ROOM --e2e makes a room whose\n\
  messages only its members' devices can read (MLS); chat keeps this\n\
  device's MLS key, groups and pinned peer keys in IDENTITY.e2e/ beside\n\
  the identity file, adds and removes members as the relay asks, marks\n\
  such rooms with a lock, and /verify NAME prints the safety number to\n\
  compare with NAME.\n\
\n\
  Examples:\n\
  \x20 chat keygen --key-out ~/.config/eaxchat/me.identity\n\
  \x20 chat --connect relay.example:8080 --key-file ~/.config/eaxchat/me.identity\n\
  \x20 chat --connect relay.example:8080 --no-trust-new \\\n\
  \x20     --key-file ~/.config/eaxchat/me.identity --relay-key x25519:..."
)]
struct Args {
    #[argh(subcommand)]
    command: Option<Command>,

    /// join a relay by an invite link, or by a short code (N-word-word-word,
    /// with --connect HOST:PORT) (relay invite prints both): makes your
    /// identity (--key-file, default $XDG_CONFIG_HOME/eaxchat/identity)
    /// if there is none, joins, pins the relay's key, then chats
    #[argh(option)]
    join: Option<String>,

    /// the relay, as HOST:PORT (default 127.0.0.1:8080)
    #[argh(option, default = "String::from(\"127.0.0.1:8080\")")]
    connect: String,

    /// your identity file (chat keygen), or a file holding a key in hex:
    /// the relay's shared key, or a member key (default relay.key)
    #[argh(option, default = "PathBuf::from(DEFAULT_KEY_FILE)")]
    key_file: PathBuf,

    /// the relay's public key, x25519:... (relay key show prints it), to
    /// check instead of trusting the key the relay sends on first use;
    /// pinned once a session proves it
    #[argh(option)]
    relay_key: Option<String>,

    /// with an identity, refuse a relay that has no pin and no --relay-key
    /// instead of trusting the key it sends on first use
    #[argh(switch)]
    no_trust_new: bool,

    /// the known relays file of pinned relay keys (default
    /// $XDG_CONFIG_HOME/eaxchat/known_relays or
    /// ~/.config/eaxchat/known_relays)
    #[argh(option)]
    known_relays: Option<PathBuf>,

    /// the key in hex (32, 48 or 64 digits); overrides $EAXCHAT_KEY and
    /// --key-file
    #[argh(option)]
    key_hex: Option<String>,

    /// prefix every message sent with "NAME: " (shared key only: in
    /// members mode and sessions the relay stamps names)
    #[argh(option)]
    name: Option<String>,

    /// members mode with a hex key: the key is your own member key, so
    /// chat identifies itself on connecting and the relay stamps your name
    /// (implied by a key file `relay members add` wrote; an identity file
    /// needs no switch)
    #[argh(switch)]
    member: bool,

    /// only print received messages; never read stdin
    #[argh(switch)]
    listen_only: bool,

    /// when the relay goes away, reconnect with backoff (0.1 s doubling to
    /// 5 s) instead of exiting; messages typed meanwhile are sent after
    #[argh(switch)]
    reconnect: bool,

    /// the relay's --max-frame: longer messages are refused here rather
    /// than sent to be dropped (default 65536)
    #[argh(option, default = "eaxchat_proto::wire::DEFAULT_MAX_FRAME")]
    max_frame: usize,

    /// milliseconds to keep printing after stdin ends (default 300)
    #[argh(option, default = "300")]
    linger_ms: u64,

    /// line mode even in a terminal: print each message as a line, read
    /// lines from stdin (what pipes and scripts get anyway)
    #[argh(switch)]
    plain: bool,

    /// the terminal app: do not ring the bell when someone names you
    #[argh(switch)]
    no_bell: bool,

    /// print the version and exit
    #[argh(switch)]
    version: bool,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Keygen(Keygen),
    InviteDevice(InviteDevice),
    Invite(InviteMember),
}

/// Print a link that adds another device of yours: it asks the relay
/// (--connect, as your --key-file identity, the relay's key pinned) for a
/// one-use invite, good for an hour, that adds a device to your own name
/// only. Open the link on the new device with chat --join.
#[derive(FromArgs)]
#[argh(subcommand, name = "invite-device")]
struct InviteDevice {}

/// Print a link that adds a new member NAME: it asks the relay
/// (--connect, as your --key-file identity, the relay's key pinned) for a
/// one-use invite, good for a day, with you recorded as the inviter. The
/// relay refuses unless its operator allows it (--members-invite), and
/// refuses a name that is taken. Send the link privately: whoever opens it
/// first (chat --join LINK) joins as NAME.
#[derive(FromArgs)]
#[argh(subcommand, name = "invite")]
struct InviteMember {
    /// the new member's name
    #[argh(positional)]
    name: String,
}

/// Create a new identity (an X25519 key pair) in a new file, mode 0600,
/// and print its public key and fingerprint: give the public key (never
/// the file) to the relay's operator. An existing file is never
/// overwritten.
#[derive(FromArgs)]
#[argh(subcommand, name = "keygen")]
struct Keygen {
    /// the new identity file
    #[argh(option)]
    key_out: PathBuf,
}

/// `--key-file`'s default.
const DEFAULT_KEY_FILE: &str = "relay.key";

fn main() -> ExitCode {
    let mut args: Args = argh::from_env();
    if args.version {
        println!("chat (eaxchat) {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Keygen(keygen)) = &args.command {
        return keygen_command(&keygen.key_out);
    }
    if let Some(Command::InviteDevice(_)) = &args.command {
        return invite_device_command(&args);
    }
    if let Some(Command::Invite(invite)) = &args.command {
        return invite_member_command(&args, &invite.name);
    }
    if let Some(link) = args.join.take()
        && let Err(code) = join_command(&mut args, &link)
    {
        return code;
    }
    if args.max_frame < Options::min_max_frame() {
        return fail(
            format!("--max-frame must be at least {}", Options::min_max_frame()),
            2,
        );
    }
    let (credentials, member) = match credentials(&args) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if member && args.name.is_some() {
        eprintln!("chat: warning: in members mode the relay stamps your name; --name is ignored");
    }
    // An identity's device keeps its end-to-end rooms beside it.
    let e2e_dir = matches!(credentials, Credentials::Identity { .. }).then(|| {
        let mut dir = args.key_file.clone().into_os_string();
        dir.push(".e2e");
        PathBuf::from(dir)
    });
    let options = Options {
        e2e_dir,
        connect: args.connect,
        name: args.name.filter(|_| !member),
        member,
        max_frame: args.max_frame,
        linger: Duration::from_millis(args.linger_ms),
        listen_only: args.listen_only,
        reconnect: args.reconnect,
        events: true,
    };
    let terminal = io::stdin().is_terminal() && io::stdout().is_terminal();
    if terminal && !args.plain && !args.listen_only {
        return match client::tui::run(&options, &credentials, !args.no_bell) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(error.to_string(), error.exit_code()),
        };
    }
    let mut stdout = io::stdout().lock();
    let mut status = |status: client::Status| eprintln!("chat: {status}");
    match client::run(
        &options,
        &credentials,
        io::stdin(),
        &mut stdout,
        &mut status,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error.to_string(), error.exit_code()),
    }
}

/// What to seal with, and whether the relay stamps names: an identity
/// file (a session per connection) when the key comes from the key file
/// and it is one, else a hex key as before identities.
fn credentials(args: &Args) -> Result<(Credentials, bool), ExitCode> {
    let env = std::env::var(KEY_ENV).ok();
    let from_file = args.key_hex.is_none() && env.as_deref().is_none_or(|v| v.trim().is_empty());
    let identity = match from_file.then(|| identity::read_key_file(&args.key_file)) {
        Some(Err(error)) => return Err(fail(error.to_string(), 2)),
        Some(Ok(found)) => found,
        None => {
            if let Ok(Some(_)) = identity::read_key_file(&args.key_file) {
                eprintln!(
                    "chat: warning: {} is an identity file, but --key-hex or ${KEY_ENV} \
                     gives a hex key, which wins: no session",
                    args.key_file.display()
                );
            }
            None
        }
    };
    match identity {
        Some(secret) => session_credentials(args, secret)
            .map(|credentials| (credentials, true))
            .map_err(|message| fail(message, 2)),
        None => legacy_credentials(args, env),
    }
}

/// `chat --join LINK`: joins, then leaves `args` set to connect as the
/// new member (the link's address, the identity used).
fn join_command(args: &mut Args, link: &str) -> Result<(), ExitCode> {
    let known = match &args.known_relays {
        Some(path) => path.clone(),
        None => KnownRelays::default_path().map_err(|error| fail(error.to_string(), 2))?,
    };
    if args.key_file == std::path::Path::new(DEFAULT_KEY_FILE) {
        args.key_file = known.with_file_name("identity");
    }
    let joined = client::join::join(link, &args.connect, &args.key_file, &known)
        .map_err(|error| fail(error.to_string(), 1))?;
    if joined.new_identity {
        eprintln!(
            "chat: wrote your new identity to {} (mode 0600: it never leaves this device)",
            joined.identity.display()
        );
    }
    eprintln!(
        "chat: joined {} as {}; the relay's key is pinned. Next time: chat --connect {} \
         --key-file {}",
        joined.addr,
        joined.name,
        joined.addr,
        joined.identity.display()
    );
    args.connect = joined.addr;
    Ok(())
}

/// The known relays file: `--known-relays`, else the default.
fn known_relays(args: &Args) -> Result<std::path::PathBuf, ExitCode> {
    match &args.known_relays {
        Some(path) => Ok(path.clone()),
        None => KnownRelays::default_path().map_err(|error| fail(error.to_string(), 2)),
    }
}

/// `chat invite NAME`.
fn invite_member_command(args: &Args, name: &str) -> ExitCode {
    let known = match known_relays(args) {
        Ok(path) => path,
        Err(code) => return code,
    };
    match client::join::invite_member(&args.connect, &args.key_file, &known, name) {
        Ok((invite, inviter)) => {
            println!("{}", invite.link());
            eprintln!(
                "chat: a one-use link that adds {name} as a new member, invited by {inviter}, \
                 good for a day: send it privately; they open it with chat --join LINK"
            );
            ExitCode::SUCCESS
        }
        Err(error) => fail(error.to_string(), 1),
    }
}

/// `chat invite-device`.
fn invite_device_command(args: &Args) -> ExitCode {
    let known = match known_relays(args) {
        Ok(path) => path,
        Err(code) => return code,
    };
    match client::join::invite_device(&args.connect, &args.key_file, &known) {
        Ok((invite, name)) => {
            println!("{}", invite.link());
            eprintln!(
                "chat: a one-use link for a new device of {name}'s, good for an hour: open it \
                 there with chat --join LINK"
            );
            ExitCode::SUCCESS
        }
        Err(error) => fail(error.to_string(), 1),
    }
}

/// `chat keygen --key-out FILE`.
fn keygen_command(path: &std::path::Path) -> ExitCode {
    match generate_identity(path) {
        Ok(secret) => {
            let public = secret.public_key();
            println!("{public}");
            println!("{}", public.fingerprint());
            eprintln!(
                "chat: wrote a new identity to {} (mode 0600: keep it private); give the \
                 relay's operator your public key (the first line above): \
                 relay members add NAME --public-key {public}",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => fail(error.to_string(), 1),
    }
}

/// An identity's credentials: the relay key from `--relay-key` or the
/// known relays file, never two that differ, or (with neither, unless
/// `--no-trust-new`) the one the relay sends on first use.
fn session_credentials(args: &Args, secret: StaticSecret) -> Result<Credentials, String> {
    let given = match args.relay_key.as_deref() {
        Some(text) => Some(text.trim().parse::<PublicKey>().map_err(|error| {
            format!("--relay-key {text:?}: {error} (relay key show prints it)")
        })?),
        None => None,
    };
    let path = match &args.known_relays {
        Some(path) => path.clone(),
        None => KnownRelays::default_path().map_err(|error| error.to_string())?,
    };
    let known = KnownRelays::load(&path).map_err(|error| error.to_string())?;
    let relay = known
        .trust_for(&args.connect, given, !args.no_trust_new)
        .map_err(|error| error.to_string())?;
    Ok(Credentials::Identity { secret, relay })
}

/// A hex key's credentials, as before identities: `--key-hex`, then
/// `$EAXCHAT_KEY`, then the key file; whether it is a member's key.
fn legacy_credentials(args: &Args, env: Option<String>) -> Result<(Credentials, bool), ExitCode> {
    if args.relay_key.is_some() || args.known_relays.is_some() || args.no_trust_new {
        eprintln!(
            "chat: warning: --relay-key, --known-relays and --no-trust-new are for \
             identity files; this key is a hex key, so they are ignored"
        );
    }
    let source = KeySource {
        hex: args.key_hex.as_deref(),
        env,
        file: &args.key_file,
        generate_missing: false,
    };
    let found = match source.resolve_key_file() {
        Ok((found, _origin)) => found,
        Err(error @ KeyError::Io { .. }) => {
            return Err(fail(
                format!(
                    "{error} (get your identity file or the relay's key file, or use \
                     --key-hex or ${KEY_ENV})"
                ),
                2,
            ));
        }
        Err(error) => return Err(fail(error.to_string(), 2)),
    };
    if args.key_hex.is_none() && source.env.is_none() && readable_by_others(&args.key_file) {
        eprintln!(
            "chat: warning: key file {} is readable by group or others; chmod 600 it",
            args.key_file.display()
        );
    }
    let member = args.member || found.member.is_some();
    Ok((Credentials::Key(found.key), member))
}

fn fail(message: String, code: u8) -> ExitCode {
    eprintln!("chat: error: {message}");
    ExitCode::from(code)
}
