#![forbid(unsafe_code)]

//! `relay`: the eaxchat relay server. Parses the command line, finds the
//! key, and runs [`eaxchat::server::Server`] until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;
use eaxchat::cipher::Cipher;
use eaxchat::key::{KEY_ENV, KeyError, KeyOrigin, KeySource, readable_by_others};
use eaxchat::relay::Limits;
use eaxchat::server::{Config, Server};
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
    #[argh(option, default = "PathBuf::from(\"relay.key\")")]
    key_file: PathBuf,

    /// the key in hex (32, 48 or 64 digits); overrides $EAXCHAT_KEY and
    /// --key-file
    #[argh(option)]
    key_hex: Option<String>,

    /// longest line accepted, in bytes; a longer one closes the connection
    /// (default 65536)
    #[argh(option, default = "Limits::DEFAULT_MAX_FRAME")]
    max_frame: usize,

    /// most clients connected at once; more are refused (default 10000)
    #[argh(option, default = "Limits::DEFAULT_MAX_CLIENTS")]
    max_clients: usize,

    /// most bytes queued for one client; a client that falls further behind
    /// is disconnected (default 4194304)
    #[argh(option, default = "Limits::DEFAULT_MAX_QUEUE")]
    max_queue: usize,

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
        default = "eaxchat::seed::DEFAULT_WRITE_GAP.as_millis() as u64"
    )]
    seed_write_gap_ms: u64,

    /// print the version and exit
    #[argh(switch)]
    version: bool,
}

fn main() -> ExitCode {
    let args: Args = argh::from_env();
    if args.version {
        println!("relay (eaxchat) {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
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
    let source = KeySource {
        hex: args.key_hex.as_deref(),
        env: std::env::var(KEY_ENV).ok(),
        file: &args.key_file,
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
    let limits = Limits {
        max_frame: args.max_frame,
        max_clients: args.max_clients,
        max_queue: args.max_queue,
    };
    let config = Config {
        listen: args.listen,
        limits,
        stats_interval: (args.stats_interval > 0).then(|| Duration::from_secs(args.stats_interval)),
        shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
        seed_write_gap: Duration::from_millis(args.seed_write_gap_ms),
    };
    let server = Server::bind(config, cipher)
        .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = server
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    server
        .stop_handle()
        .and_then(|handle| handle.stop_on_signals())
        .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;
    info!(
        "listening on {addr}; key from {origin} (AES-{}, AES-NI {}); max-frame={} max-clients={} max-queue={}",
        key.as_bytes().len() * 8,
        if aes::hardware_accelerated() {
            "on"
        } else {
            "off"
        },
        limits.max_frame,
        limits.max_clients,
        limits.max_queue
    );
    server
        .run()
        .map(|_| ())
        .map_err(|e| Failure::Runtime(format!("poll loop failed: {e}")))
}
