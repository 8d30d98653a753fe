#![forbid(unsafe_code)]

//! `chat`: the eaxchat terminal client. Parses the command line, finds the
//! key, and runs the full-screen app ([`eaxchat_client::tui::run`]) when
//! stdin and stdout are terminals, else the line mode
//! ([`eaxchat_client::run`]) on stdin and stdout; status and errors go to
//! stderr, one line each.

use std::io::{self, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;
use eaxchat_client::{self as client, Options};
use eaxchat_proto::key::{KEY_ENV, KeyError, KeySource, readable_by_others};

/// Chat through an eaxchat relay: every line typed is sealed with the
/// key (the relay's shared key, or your own member key) and sent; every
/// message received is shown, made safe for the terminal. In a terminal it
/// is a full-screen app (messages above, the input line below); with stdin
/// or stdout not a terminal, or --plain, it reads and prints lines, and
/// when stdin ends it waits --linger-ms for replies and exits.
#[derive(FromArgs)]
struct Args {
    /// the relay, as HOST:PORT (default 127.0.0.1:8080)
    #[argh(option, default = "String::from(\"127.0.0.1:8080\")")]
    connect: String,

    /// file holding the relay's key in hex (default relay.key)
    #[argh(option, default = "PathBuf::from(\"relay.key\")")]
    key_file: PathBuf,

    /// the key in hex (32, 48 or 64 digits); overrides $EAXCHAT_KEY and
    /// --key-file
    #[argh(option)]
    key_hex: Option<String>,

    /// prefix every message sent with "NAME: " (shared key only: in
    /// members mode the relay stamps names)
    #[argh(option)]
    name: Option<String>,

    /// members mode: the key is your own member key, so chat identifies
    /// itself on connecting and the relay stamps your name (implied by a
    /// key file `relay members add` wrote)
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

fn main() -> ExitCode {
    let args: Args = argh::from_env();
    if args.version {
        println!("chat (eaxchat) {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if args.max_frame < Options::min_max_frame() {
        return fail(
            format!("--max-frame must be at least {}", Options::min_max_frame()),
            2,
        );
    }
    let source = KeySource {
        hex: args.key_hex.as_deref(),
        env: std::env::var(KEY_ENV).ok(),
        file: &args.key_file,
        generate_missing: false,
    };
    let found = match source.resolve_key_file() {
        Ok((found, _origin)) => found,
        Err(error @ KeyError::Io { .. }) => {
            return fail(
                format!("{error} (get the relay's key file, or use --key-hex or ${KEY_ENV})"),
                2,
            );
        }
        Err(error) => return fail(error.to_string(), 2),
    };
    if args.key_hex.is_none() && source.env.is_none() && readable_by_others(&args.key_file) {
        eprintln!(
            "chat: warning: key file {} is readable by group or others; chmod 600 it",
            args.key_file.display()
        );
    }
    let member = args.member || found.member.is_some();
    if member && args.name.is_some() {
        eprintln!("chat: warning: in members mode the relay stamps your name; --name is ignored");
    }
    let options = Options {
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
        return match client::tui::run(&options, &found.key, !args.no_bell) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(error.to_string(), error.exit_code()),
        };
    }
    let mut stdout = io::stdout().lock();
    let mut status = |status: client::Status| eprintln!("chat: {status}");
    match client::run(&options, &found.key, io::stdin(), &mut stdout, &mut status) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error.to_string(), error.exit_code()),
    }
}

fn fail(message: String, code: u8) -> ExitCode {
    eprintln!("chat: error: {message}");
    ExitCode::from(code)
}
