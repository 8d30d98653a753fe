//! The server's tests, one binary: the real `relay` binary on `127.0.0.1:0`,
//! spoken to over sockets as clients do. Every wait is bounded; every process
//! started is stopped by its PID.

// A test or bench binary exports nothing: `pub` marks what its modules share.
#![allow(unreachable_pub)]
// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

#[cfg(feature = "nats")]
mod cluster;
mod config;
mod e2e;
mod log_ids;
mod members;
mod members_cli;
mod members_reload;
mod message_log;
mod preauth;
mod relay;
mod rooms;
mod seed;
mod sessions;
mod web_tls;
