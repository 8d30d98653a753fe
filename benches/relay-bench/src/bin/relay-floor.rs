//! `relay-floor`: serves [`relay_bench::floor`], the baseline under
//! relay-bench's latency figures: eaxchat's loop forwarding bytes with no
//! lines and no crypto. Runs until killed.

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

use argh::FromArgs;
use relay_bench::floor;

/// A benchmark baseline, not a chat relay: forwards every byte read from
/// one connection to all the others, in eaxchat's loop (one thread, one
/// read per connection per turn, a sweep of 16 writes per turn) with no
/// lines, no crypto and no limits. Measure it with `relay-bench --plain`.
#[derive(FromArgs)]
struct Args {
    /// address to listen on, loopback only (default 127.0.0.1:17406; port
    /// 0 picks a free one, printed on stderr)
    #[argh(option, default = "SocketAddr::from(([127, 0, 0, 1], 17406))")]
    listen: SocketAddr,
}

fn main() -> ExitCode {
    let args: Args = argh::from_env();
    if !args.listen.ip().is_loopback() {
        eprintln!("relay-floor: {} is not a loopback address", args.listen);
        return ExitCode::from(2);
    }
    let listener = match TcpListener::bind(args.listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("relay-floor: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    match listener.local_addr() {
        Ok(addr) => eprintln!("relay-floor: forwarding on {addr}"),
        Err(e) => eprintln!("relay-floor: forwarding (address unknown: {e})"),
    }
    match floor::serve(listener) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay-floor: {e}");
            ExitCode::FAILURE
        }
    }
}
