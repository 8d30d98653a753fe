//! eaxchat's relay without I/O. [`relay::Relay`] takes bytes from
//! connections ([`relay::ConnId`]) and the time from its caller (at
//! [`relay::Relay::new`] and [`relay::Relay::set_now`]), and hands back
//! frames to write and connections to close; it never touches a socket, a
//! file, a thread or a clock. The server crate runs it in a mio loop; tests
//! and fuzz targets drive it in memory. `docs/architecture.md` is the map of
//! the crates, what each owns and which it may use.
//!
//! A relay serves one of three modes, chosen by its constructor:
//!
//! | mode | constructor | who may speak |
//! | --- | --- | --- |
//! | shared key | [`relay::Relay::new`] | whoever holds the one key |
//! | members (static keys, being replaced) | [`relay::Relay::with_members`] | a [`roster::Roster`] of [`members::Members`] |
//! | sessions | [`relay::Relay::with_sessions`] | the devices of [`members::SessionMembers`], each after a Noise handshake with the relay's [`StaticSecret`](eaxchat_proto::session::StaticSecret) |
//!
//! A server reads a members file with [`members::AnyMembers::parse`], whose
//! [`kind`](members::AnyMembers::kind) says which mode it is for, and hands
//! a changed file of the same kind to [`relay::Relay::reload_members`]
//! (which takes a `&Members`, a `&SessionMembers` or a `&AnyMembers`). In
//! session mode it needs nothing more: hellos, welcomes and refusals go
//! through [`relay::Relay::receive`] and [`relay::Relay::flush`] like any
//! frame, a refused connection appears in [`relay::Relay::take_closing`]
//! once its refusal is written, and the handshake deadline is a
//! first-frame deadline ([`relay::Relay::next_timer`],
//! [`relay::Relay::run_timers`]). The counters are in
//! [`stats::Stats::sessions`].
//!
//! The modules, from the leaf up:
//! - [`conn_id`]: the one id a connection has everywhere.
//! - [`flood`]: flood control, a token bucket per connection.
//! - [`outbox`]: one connection's queue of shared frames, written vectored.
//! - `sweep` (private): the write sweep, the fair order in which
//!   connections are written.
//! - [`guard`]: what a peer without the key can cost before it is trusted.
//! - [`history`]: one room's last messages, bounded.
//! - [`rooms`]: the rooms, who is in each, and each room's history.
//! - [`members`]: the members file's format, static keys or sessions.
//! - [`roster`]: a members relay's members as served.
//! - [`session_roster`]: a session relay's members as served: the relay's
//!   identity and each device key, found by lookup.
//! - [`record`]: the message log's record format.
//! - [`cluster`]: relays joined through NATS: the cluster key, subjects,
//!   envelopes, what is known of the other relays, and the hand-overs
//!   ([`cluster::ToNats`], [`cluster::FromNats`]) to and from the NATS
//!   thread.
//! - [`stats`]: the relay's counters.
//! - [`relay`]: the relay itself: admission, session handshakes, receiving,
//!   fan-out, the chat layer, the `/` commands applied, and its share of a
//!   cluster.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod conn_id;
pub mod delivery;
pub mod flood;
pub mod guard;
pub mod history;
pub mod members;
pub mod outbox;
pub mod record;
pub mod relay;
pub mod rooms;
pub mod roster;
pub mod session_roster;
pub mod stats;
mod sweep;
