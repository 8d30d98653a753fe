#![forbid(unsafe_code)]

//! `relay`: the eaxchat relay server. Parses the command line, finds the
//! key (or, with `--members`, reads the members file), and runs
//! [`eaxchat_server::event_loop::Server`] until SIGINT or SIGTERM.
//! `relay members ...` instead manages a members file through
//! [`eaxchat_core::members`]; `relay log ...` prints the message log. The chat
//! layer's flags and the log are set up in `chat.rs`, the cluster's in
//! `cluster.rs`.

mod chat;
mod cluster;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;
use eaxchat_core::members::MembersError;
use eaxchat_core::relay::Limits;
use eaxchat_core::roster::Roster;
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::{KEY_ENV, KeyError, KeyOrigin, KeySource, readable_by_others};
use eaxchat_proto::name::Name;
use eaxchat_server::event_loop::{Config, MembersWatch, Server};
use eaxchat_server::members_file::{self, KeySize};
use log::{error, info, warn};

/// An AES-EAX encrypted chat relay: every line a client sends is
/// authenticated, decrypted, sealed again and sent to every other client.
#[derive(FromArgs)]
struct Args {
    /// address to listen on, IPv4 or IPv6 (default 127.0.0.1:8080)
    #[argh(option, default = "SocketAddr::from(([127, 0, 0, 1], 8080))")]
    listen: SocketAddr,

    /// file holding the key in hex; created with a random 128-bit key
    /// (mode 0600) if missing (default relay.key)
    #[argh(option)]
    key_file: Option<PathBuf>,

    /// the key in hex (32, 48 or 64 digits); overrides $EAXCHAT_KEY and
    /// --key-file
    #[argh(option)]
    key_hex: Option<String>,

    /// serve the members of this file (NAME HEXKEY per line), each under
    /// their own key, instead of one shared key; reread on SIGHUP and when
    /// it changes
    #[argh(option)]
    members: Option<PathBuf>,

    /// longest line accepted, in bytes; a longer one closes the connection
    /// (default 65536)
    #[argh(option, default = "eaxchat_proto::wire::DEFAULT_MAX_FRAME")]
    max_frame: usize,

    /// most clients connected at once; more are refused (default 10000)
    #[argh(option, default = "Limits::DEFAULT_MAX_CLIENTS")]
    max_clients: usize,

    /// most bytes queued for one client; a client that falls further behind
    /// is disconnected (default 4194304)
    #[argh(option, default = "Limits::DEFAULT_MAX_QUEUE")]
    max_queue: usize,

    /// most bytes held, in all, for connections that have not sent a frame
    /// that opened; past it the one holding the most is closed
    /// (default 4194304)
    #[argh(option, default = "Limits::DEFAULT_PRE_AUTH_BUDGET")]
    pre_auth_budget: usize,

    /// seconds a connection that has sent bytes may take to complete a
    /// frame that opens; silent connections are never timed out
    /// (default 10)
    #[argh(option, default = "Limits::DEFAULT_FIRST_FRAME_TIMEOUT.as_secs()")]
    first_frame_timeout: u64,

    /// most connections from one IPv4 address or IPv6 /64; 0 for no limit
    /// (default 32)
    #[argh(option, default = "Limits::DEFAULT_MAX_PER_ADDRESS")]
    max_per_address: usize,

    /// seconds between stats lines in the log; 0 for only at exit
    /// (default 60)
    #[argh(option, default = "60")]
    stats_interval: u64,

    /// milliseconds to keep writing queued frames after SIGINT/SIGTERM
    /// (default 2000)
    #[argh(option, default = "2000")]
    shutdown_grace_ms: u64,

    /// least milliseconds between two frames written to an original
    /// notebook client, so its receive thread reads each alone (default 50)
    #[argh(
        option,
        default = "eaxchat_proto::seed::DEFAULT_WRITE_GAP.as_millis() as u64"
    )]
    seed_write_gap_ms: u64,

    /// the room every connection starts in (default lobby)
    #[argh(option, default = "eaxchat_core::rooms::DEFAULT_ROOM.to_owned()")]
    default_room: String,

    /// most rooms with someone in them (default 1000)
    #[argh(option, default = "eaxchat_core::rooms::DEFAULT_MAX_ROOMS")]
    max_rooms: usize,

    /// messages of a room's history sent to whoever joins; 0 for none
    /// (default 100)
    #[argh(option, default = "eaxchat_core::history::DEFAULT_MAX_ENTRIES")]
    history: usize,

    /// most bytes of one room's history (default 65536)
    #[argh(option, default = "eaxchat_core::history::DEFAULT_MAX_BYTES")]
    history_bytes: usize,

    /// flood control: messages a second each connection may send; 0 for
    /// none (default 5 with --members, 0 with a shared key)
    #[argh(option)]
    rate: Option<f64>,

    /// flood control: messages a connection may send at once before
    /// --rate applies (default 20)
    #[argh(option)]
    burst: Option<u32>,

    /// tell rooms who joins and leaves: on or off (default on)
    #[argh(option, default = "chat::Switch::On")]
    presence: chat::Switch,

    /// keep every room message, join and leave in an encrypted log in this
    /// directory; room history is rebuilt from it on start
    #[argh(option)]
    log: Option<PathBuf>,

    /// the log's key file, created (mode 0600) if missing (default: the
    /// log directory's name with .key, beside it)
    #[argh(option)]
    log_key: Option<PathBuf>,

    /// when the log is synced to disk: always, everysec or no
    /// (default everysec)
    #[argh(option, default = "eaxchat_server::msglog::Fsync::EverySec")]
    log_fsync: eaxchat_server::msglog::Fsync,

    /// most bytes the log keeps; the oldest segments are deleted past it
    /// (default 268435456)
    #[argh(option, default = "eaxchat_server::msglog::DEFAULT_MAX_BYTES")]
    log_max_bytes: u64,

    /// also serve the chat page, its WebSocket (/ws), /metrics and
    /// /healthz on this address, e.g. 127.0.0.1:8081
    #[argh(option)]
    web: Option<SocketAddr>,

    /// an origin allowed to open /ws (repeat for more; "*" for any);
    /// default: only the page's own
    #[argh(option)]
    web_origin: Vec<String>,

    /// seconds a browser may be silent before it is pinged; silent twice
    /// as long, it is closed (default 60)
    #[argh(
        option,
        default = "eaxchat_server::web::DEFAULT_IDLE_TIMEOUT.as_secs()"
    )]
    web_idle_timeout: u64,

    /// join relays into one chat through NATS: nats://HOST:PORT, comma
    /// separated for several servers of a NATS cluster
    #[argh(option)]
    cluster: Option<String>,

    /// the cluster's name: its NATS subjects start eaxchat.NAME.
    /// (default main)
    #[argh(option, default = "String::from(\"main\")")]
    cluster_name: String,

    /// the key the relays of the cluster share, and only they; created
    /// (mode 0600) if missing: copy the same file to every relay
    #[argh(option)]
    cluster_key_file: Option<PathBuf>,

    /// NATS authentication: a token
    #[argh(option)]
    cluster_token: Option<String>,

    /// NATS authentication: a user (with --cluster-password)
    #[argh(option)]
    cluster_user: Option<String>,

    /// NATS authentication: the user's password
    #[argh(option)]
    cluster_password: Option<String>,

    /// NATS authentication: a file holding an nkey seed
    #[argh(option)]
    cluster_nkey: Option<PathBuf>,

    /// NATS authentication: a credentials (.creds) file
    #[argh(option)]
    cluster_creds: Option<PathBuf>,

    /// seconds another relay may be silent before its people are
    /// announced gone (default 5)
    #[argh(option, default = "eaxchat_core::cluster::DEFAULT_TIMEOUT.as_secs()")]
    cluster_timeout: u64,

    /// envelopes waiting for NATS at most; past it they are dropped and
    /// counted (cluster_dropped), never waited for (default 8192)
    #[argh(option, default = "eaxchat_core::cluster::OUT_QUEUE")]
    cluster_queue: usize,

    /// keep room history in a JetStream stream (--history messages a
    /// room), filled from on start and on every reconnect
    #[argh(switch)]
    cluster_history: bool,

    /// most bytes of the JetStream history stream (default 67108864)
    #[argh(option, default = "64 << 20")]
    cluster_history_bytes: u64,

    /// print the version and exit
    #[argh(switch)]
    version: bool,

    /// without a command, the relay serves
    #[argh(subcommand)]
    command: Option<Command>,
}

/// What to do instead of serving.
#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Members(MembersArgs),
    Log(chat::LogArgs),
}

/// Manage a members file (one `NAME HEXKEY` per line): add, remove or list
/// members.
#[derive(FromArgs)]
#[argh(subcommand, name = "members")]
struct MembersArgs {
    #[argh(subcommand)]
    command: MembersCommand,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum MembersCommand {
    Add(AddArgs),
    Remove(RemoveArgs),
    List(ListArgs),
}

/// Add a member: generate their key, append them to the members file, and
/// write the key to a new file (mode 0600) to hand to them.
#[derive(FromArgs)]
#[argh(subcommand, name = "add")]
struct AddArgs {
    /// the new member's name: 1 to 32 of A-Z a-z 0-9 _ - .
    #[argh(positional)]
    name: String,

    /// the members file; created with mode 0600 if missing
    #[argh(option)]
    file: PathBuf,

    /// where to write the member's key; never overwritten (default NAME.key)
    #[argh(option)]
    key_out: Option<PathBuf>,

    /// key size in bits: 128, 192 or 256 (default 128)
    #[argh(option, default = "KeySize::Aes128")]
    bits: KeySize,
}

/// Remove a member from the members file.
#[derive(FromArgs)]
#[argh(subcommand, name = "remove")]
struct RemoveArgs {
    /// the member's name
    #[argh(positional)]
    name: String,

    /// the members file
    #[argh(option)]
    file: PathBuf,
}

/// List the members' names, one a line (never their keys).
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
struct ListArgs {
    /// the members file
    #[argh(option)]
    file: PathBuf,
}

fn main() -> ExitCode {
    let mut args: Args = argh::from_env();
    if args.version {
        println!("relay (eaxchat) {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let outcome = match args.command.take() {
        Some(Command::Members(members)) => Some(run_members(members.command)),
        Some(Command::Log(log)) => Some(chat::print_log(&log)),
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
    match run(args) {
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

fn run(args: Args) -> Result<(), Failure> {
    if args.max_frame == 0 || args.max_clients == 0 || args.max_queue == 0 {
        return Err(Failure::Usage(
            "--max-frame, --max-clients and --max-queue must be at least 1".into(),
        ));
    }
    if args.pre_auth_budget == 0 || args.first_frame_timeout == 0 {
        return Err(Failure::Usage(
            "--pre-auth-budget and --first-frame-timeout must be at least 1".into(),
        ));
    }
    let limits = Limits {
        max_frame: args.max_frame,
        max_clients: args.max_clients,
        max_queue: args.max_queue,
        pre_auth_budget: args.pre_auth_budget,
        first_frame_timeout: Duration::from_secs(args.first_frame_timeout),
        max_per_address: args.max_per_address,
    };
    let chat = chat::Options::from_args(&args, args.members.is_some())?;
    let cluster = cluster::Options::from_args(&args)?;
    let config = Config {
        listen: args.listen,
        limits,
        stats_interval: (args.stats_interval > 0).then(|| Duration::from_secs(args.stats_interval)),
        shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
        seed_write_gap: Duration::from_millis(args.seed_write_gap_ms),
    };
    let env_key = std::env::var(KEY_ENV).ok();
    if let Some(path) = &args.members {
        if args.key_hex.is_some() || args.key_file.is_some() || env_key.is_some() {
            return Err(Failure::Usage(format!(
                "--members serves each member under their own key: \
                 give no shared key with it (--key-file, --key-hex or ${KEY_ENV})"
            )));
        }
        return serve_members(path, config, &chat, cluster);
    }
    let key_file = args.key_file.unwrap_or_else(|| PathBuf::from("relay.key"));
    let source = KeySource {
        hex: args.key_hex.as_deref(),
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
        .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", args.listen)))?;
    chat.set_up(&mut server)?;
    let addr = server
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    if let Some(cluster) = cluster {
        cluster.set_up(&mut server, addr)?;
    }
    server
        .stop_handle()
        .and_then(|handle| handle.stop_on_signals())
        .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;
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

/// Serves the members of the file at `path`.
fn serve_members(
    path: &std::path::Path,
    config: Config,
    chat: &chat::Options,
    cluster: Option<cluster::Options>,
) -> Result<(), Failure> {
    let file = members_file::read(path).map_err(|e| match e {
        MembersError::Io { .. } => Failure::Runtime(e.to_string()),
        _ => Failure::Usage(e.to_string()),
    })?;
    if file.readable_by_others
        && let Some(warning) = members_file::permissions_warning(path)
    {
        warn!("{warning}");
    }
    let count = file.members.len();
    let roster =
        Roster::new(&file.members).map_err(|e| Failure::Runtime(format!("random seed: {e}")))?;
    let limits = config.limits;
    let listen = config.listen;
    let mut server = Server::bind_members(config, roster, MembersWatch::new(path.to_owned()))
        .map_err(|e| Failure::Runtime(format!("cannot listen on {listen}: {e}")))?;
    chat.set_up(&mut server)?;
    let addr = server
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    if let Some(cluster) = cluster {
        cluster.set_up(&mut server, addr)?;
    }
    server
        .stop_handle()
        .and_then(|handle| handle.stop_on_signals())
        .and_then(|()| server.reload_on_sighup())
        .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;
    info!(
        "listening on {addr}; members mode: {count} members from {} (AES-NI {}); {}",
        path.display(),
        aes_ni(),
        limits_line(&limits),
    );
    server
        .run()
        .map(|_| ())
        .map_err(|e| Failure::Runtime(format!("poll loop failed: {e}")))
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

/// Runs one `relay members` command; the error is the message to print.
fn run_members(command: MembersCommand) -> Result<(), String> {
    let parse_name = |text: &str| Name::new(text).map_err(|e| MembersError::BadName(e).to_string());
    match command {
        MembersCommand::Add(args) => {
            let name = parse_name(&args.name)?;
            let key_out = args
                .key_out
                .unwrap_or_else(|| members_file::default_key_file(&name));
            members_file::add(&args.file, &name, &key_out, args.bits).map_err(|e| e.to_string())?;
            warn_if_open(&args.file);
            println!(
                "added {name} to {} (AES-{})",
                args.file.display(),
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
            members_file::remove(&args.file, &name).map_err(|e| e.to_string())?;
            warn_if_open(&args.file);
            println!("removed {name} from {}", args.file.display());
        }
        MembersCommand::List(args) => {
            let names = members_file::list(&args.file).map_err(|e| e.to_string())?;
            warn_if_open(&args.file);
            for name in names {
                println!("{name}");
            }
        }
    }
    Ok(())
}

fn warn_if_open(path: &std::path::Path) {
    if let Some(warning) = members_file::permissions_warning(path) {
        eprintln!("relay: warning: {warning}");
    }
}
