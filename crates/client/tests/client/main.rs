//! The client's tests, one binary: the terminal app drawn in memory, and the
//! `chat` binary against the real relay and against stand-ins for one (a
//! shared-key or members relay, and one that speaks sessions, trust on
//! first use included).

// A test or bench binary exports nothing: `pub` marks what its modules share.
#![allow(unreachable_pub)]
// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod e2e;
mod first_use;
mod process;
mod real_relay;
mod session_stand_in;
mod sessions;
mod stand_in_relay;
mod tui;
