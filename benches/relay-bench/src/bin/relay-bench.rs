//! `relay-bench`: a load generator for eaxchat relays, in the spirit of
//! `redis-benchmark`. Parses the command line and runs
//! [`relay_bench::run`]; prints the report as text or JSON. Exits 1
//! when the run saw any error (lost, duplicated, forged... deliveries), 2
//! when it could not run. `relay-bench make-members --count N --file F`
//! writes a members file for a run against a members relay instead, and
//! with `--sessions` a sessions members file and each member's identity.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;
use eaxchat_proto::key::{KEY_ENV, KeySource};
use relay_bench::roster::Roster;
use relay_bench::sessions::{self, SessionRoster};
use relay_bench::{Options, Protocol, Scenario, Verify};

/// Load generator for an eaxchat relay on this machine. Scenarios: fanout
/// (1 publisher -> N subscribers, window flow control), room (N clients
/// all-to-all, every delivery verified), latency (1 -> N paced at --rate
/// msgs/s, latency percentiles), idle (N idle connections; relay RSS per
/// connection with --pid), handshakes (session handshakes per second, N in
/// flight; relay CPU per handshake with --pid). With --plain it sends
/// unencrypted lines of the same length to a plain line broker such as
/// `ncat --broker`; with --redis it uses Redis pub/sub, with --nats NATS
/// core pub/sub. With --members-file it drives a members relay (`relay
/// --members FILE`), each connection under its own member's key; with
/// --sessions-file a session relay (`relay --members FILE --identity
/// FILE`), each connection shaking hands as its member. handshakes --tls
/// runs `openssl s_time -new` against a TLS server instead. `relay-bench
/// make-members --count N --file F` writes a members file of N members with
/// random keys (mode 0600); with --sessions, a sessions members file and
/// each member's identity in --identity-dir.
#[derive(FromArgs)]
struct Args {
    /// fanout, room, latency, idle or handshakes; or make-members
    #[argh(positional)]
    command: Command,

    /// the relay's address, loopback only (default 127.0.0.1:8080)
    #[argh(option, default = "SocketAddr::from(([127, 0, 0, 1], 8080))")]
    addr: SocketAddr,

    /// the key in hex; overrides $EAXCHAT_KEY and --key-file
    #[argh(option)]
    key_hex: Option<String>,

    /// file holding the relay's key in hex (default relay.key)
    #[argh(option, default = "PathBuf::from(\"relay.key\")")]
    key_file: PathBuf,

    /// the members file of a members relay: the publisher is its first
    /// member, subscriber i its member i + 1 (fanout and latency)
    #[argh(option)]
    members_file: Option<PathBuf>,

    /// the sessions members file of a session relay (`NAME x25519:KEY`
    /// lines), the members' identities in --identity-dir: the publisher is
    /// its first member, subscriber i its member i + 1 (fanout, latency),
    /// connection i its member i (idle); handshakes take them in turn
    #[argh(option)]
    sessions_file: Option<PathBuf>,

    /// the directory of the members' identity files, NAME.identity
    /// (default: the members file's path with .identities after it)
    #[argh(option)]
    identity_dir: Option<PathBuf>,

    /// the session relay's public key, x25519:BASE64 (`relay key show`)
    #[argh(option)]
    relay_key: Option<String>,

    /// the session relay's identity file, to take its public key from
    #[argh(option)]
    relay_identity: Option<PathBuf>,

    /// handshakes: full TLS 1.3 handshakes with `openssl s_time -new`
    /// against the TLS server at --addr, for comparison
    #[argh(switch)]
    tls: bool,

    /// make-members: write a sessions members file, and each member's
    /// identity in --identity-dir
    #[argh(switch)]
    sessions: bool,

    /// make-members: how many members to write
    #[argh(option)]
    count: Option<usize>,

    /// make-members: the members file to create
    #[argh(option)]
    file: Option<PathBuf>,

    /// send plain lines of the same length (for `ncat --broker`)
    #[argh(switch)]
    plain: bool,

    /// speak Redis pub/sub (PUBLISH/SUBSCRIBE) with plain lines
    #[argh(switch)]
    redis: bool,

    /// speak NATS core pub/sub (PUB/SUB on one subject) with plain lines:
    /// the baseline for a cluster's fan-out
    #[argh(switch)]
    nats: bool,

    /// spread the subscribers over these relays in turn (repeat the
    /// option; one cluster), the publisher staying on --addr
    #[argh(option)]
    subscribe_at: Vec<SocketAddr>,

    /// subscribers connect with TLS (rustls; the certificate is not
    /// verified): --web over wss, or one --subscribe-at, a Redis TLS port
    #[argh(switch)]
    subscribe_tls: bool,

    /// subscribers (fanout, latency), clients (room), connections (idle)
    /// or handshakes in flight (handshakes); default 100
    #[argh(option, short = 'n', default = "100")]
    clients: usize,

    /// message size in bytes, the plaintext for eaxchat (default 64)
    #[argh(option, short = 's', default = "64")]
    size: usize,

    /// most messages a publisher may be ahead of its slowest receiver; in a
    /// room, most messages in flight towards one client (default 1000)
    #[argh(option, short = 'w', default = "1000")]
    window: u64,

    /// seconds to publish; idle: seconds to hold the connections before
    /// measuring (default 5)
    #[argh(option, short = 'd', default = "5.0")]
    duration: f64,

    /// stop after this many messages per publisher (handshakes: start no
    /// more than this many)
    #[argh(option, short = 'm')]
    messages: Option<u64>,

    /// messages per second for the latency scenario (default 10000)
    #[argh(option, short = 'r', default = "10000")]
    rate: u64,

    /// fanout and latency: open the first delivery of one message in this
    /// many (default 16); every delivery is still counted, sequence-checked
    /// and compared byte for byte with the first
    #[argh(option, default = "16")]
    sample: u64,

    /// open and verify every delivery (the room always does)
    #[argh(switch)]
    verify_all: bool,

    /// the relay's pid: report its CPU time and (idle) its RSS from /proc
    #[argh(option)]
    pid: Option<u32>,

    /// seconds allowed for connecting and being served (default 20)
    #[argh(option, default = "20.0")]
    setup_timeout: f64,

    /// fanout against an eaxchat relay: hold this many more connections in
    /// other rooms meanwhile, each having sent /join; any byte one
    /// receives is an error (default 0)
    #[argh(option, default = "0")]
    bystanders: usize,

    /// fanout against an eaxchat relay's --web address: subscribers read
    /// its WebSocket (/ws), the publisher writes to --addr
    #[argh(option)]
    web: Option<SocketAddr>,

    /// how many rooms the bystanders are spread over (default 9)
    #[argh(option, default = "9")]
    bystander_rooms: usize,

    /// fanout and idle against a shared-key eaxchat relay: every subscriber
    /// (idle: every connection) says /hello eaxchat/1 and counts the msg
    /// events it gets
    #[argh(switch)]
    events: bool,

    /// with --events: every subscriber also joins this many more rooms
    /// (bench-room-1 ...), staying in the default room (default 0)
    #[argh(option, default = "0")]
    extra_rooms: usize,

    /// fanout against a session relay (--sessions-file): in a new
    /// end-to-end room, a real MLS group of the publisher and every
    /// subscriber; the publisher sends MLS application messages of
    /// --size-byte texts as /mls, subscribers count the mls events
    #[argh(switch)]
    e2e: bool,

    /// print the report as one JSON object
    #[argh(switch)]
    json: bool,

    /// no progress line on stderr
    #[argh(switch, short = 'q')]
    quiet: bool,
}

/// What the command line asks for.
enum Command {
    Run(Scenario),
    MakeMembers,
}

impl std::str::FromStr for Command {
    type Err = String;

    fn from_str(s: &str) -> Result<Command, String> {
        match s {
            "make-members" => Ok(Command::MakeMembers),
            _ => s
                .parse()
                .map(Command::Run)
                .map_err(|e| format!("{e}, or make-members")),
        }
    }
}

fn main() -> ExitCode {
    let args: Args = argh::from_env();
    let scenario = match args.command {
        Command::Run(scenario) => scenario,
        Command::MakeMembers => return make_members(&args),
    };
    let options = match options(&args, scenario) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("relay-bench: {message}");
            return ExitCode::from(2);
        }
    };
    match relay_bench::run(&options) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
            if report.errors.total() > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("relay-bench: {error}");
            ExitCode::from(2)
        }
    }
}

/// `relay-bench make-members`: writes the members file, and with
/// `--sessions` the members' identities.
fn make_members(args: &Args) -> ExitCode {
    let (Some(count), Some(file)) = (args.count, &args.file) else {
        eprintln!("relay-bench: make-members needs --count N and --file FILE");
        return ExitCode::from(2);
    };
    let made = if args.sessions {
        let dir = args
            .identity_dir
            .clone()
            .unwrap_or_else(|| sessions::default_identity_dir(file));
        sessions::make_sessions_files(file, &dir, count).map_err(|e| e.to_string())
    } else if args.identity_dir.is_some() {
        Err("--identity-dir is for --sessions".to_string())
    } else {
        relay_bench::roster::make_members_file(file, count).map_err(|e| e.to_string())
    };
    match made {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("relay-bench: cannot make {}: {error}", file.display());
            ExitCode::from(2)
        }
    }
}

fn options(args: &Args, scenario: Scenario) -> Result<Options, String> {
    if args.count.is_some() || args.file.is_some() || args.sessions {
        return Err("--count, --file and --sessions are for make-members".into());
    }
    let kinds = [
        args.plain,
        args.redis,
        args.nats,
        args.tls,
        args.members_file.is_some(),
        args.sessions_file.is_some(),
    ];
    if kinds.iter().filter(|&&kind| kind).count() > 1 {
        return Err(
            "--plain, --redis, --nats, --tls, --members-file and --sessions-file \
                    exclude each other"
                .into(),
        );
    }
    if args.key_hex.is_some() && (args.members_file.is_some() || args.sessions_file.is_some()) {
        return Err(
            "--key-hex is for a shared-key relay, not --members-file or --sessions-file".into(),
        );
    }
    let session_flags =
        args.identity_dir.is_some() || args.relay_key.is_some() || args.relay_identity.is_some();
    if session_flags && args.sessions_file.is_none() {
        return Err(
            "--identity-dir, --relay-key and --relay-identity are for --sessions-file".into(),
        );
    }
    let protocol = match (&args.members_file, &args.sessions_file) {
        _ if args.nats => Protocol::Nats,
        _ if args.plain => Protocol::Plain,
        _ if args.redis => Protocol::Redis,
        _ if args.tls => Protocol::Tls,
        (Some(path), _) => Protocol::Members(Roster::read_file(path)?),
        (None, Some(path)) => {
            let relay =
                sessions::relay_key(args.relay_key.as_deref(), args.relay_identity.as_deref())?;
            let dir = args
                .identity_dir
                .clone()
                .unwrap_or_else(|| sessions::default_identity_dir(path));
            Protocol::Sessions(SessionRoster::read_file(path, &dir, relay)?)
        }
        (None, None) => {
            let source = KeySource {
                hex: args.key_hex.as_deref(),
                env: std::env::var(KEY_ENV).ok(),
                file: &args.key_file,
                generate_missing: false,
            };
            let (key, _) = source.resolve().map_err(|e| e.to_string())?;
            Protocol::Eaxchat(key)
        }
    };
    let seconds = |value: f64, flag: &str| {
        Duration::try_from_secs_f64(value)
            .map_err(|_| format!("{flag} must be a number of seconds"))
    };
    let mut options = Options::new(scenario, args.addr, protocol);
    options.clients = args.clients;
    options.size = args.size;
    options.window = args.window;
    options.duration = seconds(args.duration, "--duration")?;
    options.max_messages = args.messages;
    options.rate = args.rate;
    options.verify = if args.verify_all {
        Verify::All
    } else {
        Verify::Sample(args.sample)
    };
    options.relay_pid = args.pid;
    options.progress = !args.quiet;
    options.setup_timeout = seconds(args.setup_timeout, "--setup-timeout")?;
    options.bystanders = args.bystanders;
    options.bystander_rooms = args.bystander_rooms;
    options.events = args.events;
    options.extra_rooms = args.extra_rooms;
    options.web = args.web;
    options.subscribe_at = args.subscribe_at.clone();
    options.subscribe_tls = args.subscribe_tls;
    options.e2e = args.e2e;
    Ok(options)
}
