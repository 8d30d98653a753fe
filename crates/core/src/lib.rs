//! eaxchat's relay without I/O. [`relay::Relay`] takes bytes from
//! connections ([`relay::ConnId`]) and the time from its caller (at
//! [`relay::Relay::new`] and [`relay::Relay::set_now`]), and hands back
//! frames to write and connections to close; it never touches a socket, a
//! file, a thread or a clock. The server crate runs it in a mio loop; tests
//! and fuzz targets drive it in memory. `docs/architecture.md` is the map of
//! the crates, what each owns and which it may use.
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
//! - [`members`]: the members file's format.
//! - [`roster`]: a members relay's members as served.
//! - [`record`]: the message log's record format.
//! - [`cluster`]: relays joined through NATS: the cluster key, subjects,
//!   envelopes, what is known of the other relays, and the hand-overs
//!   ([`cluster::ToNats`], [`cluster::FromNats`]) to and from the NATS
//!   thread.
//! - [`stats`]: the relay's counters.
//! - [`relay`]: the relay itself: admission, receiving, fan-out, the chat
//!   layer, the `/` commands applied, and its share of a cluster.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod conn_id;
pub mod flood;
pub mod guard;
pub mod history;
pub mod members;
pub mod outbox;
pub mod record;
pub mod relay;
pub mod rooms;
pub mod roster;
pub mod stats;
mod sweep;
