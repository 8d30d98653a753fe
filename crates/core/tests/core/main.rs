//! The relay core's tests, one binary, in memory: no sockets, no threads, the
//! clock passed in.

// A test or bench binary exports nothing: `pub` marks what its modules share.
#![allow(unreachable_pub)]
// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod chat_layer;
mod cluster;
mod e2e;
mod e2e_handouts;
mod e2e_review;
mod fuzz_regressions;
mod guard;
mod key_request;
mod members;
mod mls_device;
mod relay;
mod room_ids;
mod rooms;
mod session_members;
mod sessions;
mod util;
