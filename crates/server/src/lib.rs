#![forbid(unsafe_code)]

//! The eaxchat relay as a program: one thread running a `mio` poll loop
//! ([`event_loop::Server::run`]) that moves bytes between sockets and
//! `eaxchat_core::relay::Relay`, plus what needs files, threads or the
//! network: the browser's way in, the message log's writer, the members
//! file's editing and watching, and the NATS link. The `relay` binary is a
//! thin wrapper over this crate. `docs/architecture.md` is the map of the
//! crates, what each owns and which it may use.
//!
//! - [`config`]: the settings file (`relay --config FILE`).
//! - [`event_loop`]: the poll loop, for the TCP port and `--web`.
//! - [`web`]: HTTP heads, WebSocket frames, the embedded page, `/metrics`.
//! - [`msglog`]: the encrypted message log's segments, writer thread,
//!   recovery and export.
//! - [`members_file`]: reading, adding to and removing from the members
//!   file.
//! - `link` (with the `nats` feature): the NATS thread.

pub mod config;
pub mod event_loop;
#[cfg(feature = "nats")]
pub mod link;
pub mod members_file;
pub mod msglog;
pub mod web;
