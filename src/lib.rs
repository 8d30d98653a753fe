//! eaxchat: a chat relay whose every message is sealed with AES-EAX under a
//! shared key, byte-compatible with PyCryptodome's `AES.MODE_EAX`.
//!
//! The library is everything; the binaries are thin wrappers over it.
//!
//! - [`key`]: the shared key, its hex form and the key file.
//! - [`members`]: the members file (a name and a key per person) and the
//!   add / remove / list operations on it.
//! - [`cipher`]: opening and sealing wire frames (`base64(nonce‖tag‖ct)\n`).
//! - [`frame`]: splitting a byte stream into lines, within a length limit.
//! - [`outbox`]: one connection's queue of shared frames, written vectored.
//! - [`relay`]: the relay's logic without sockets: connections, fan-out,
//!   limits and close reasons.
//! - [`stats`]: counters and close reasons.
//! - [`server`]: the single-threaded `mio` loop that moves bytes between
//!   sockets and [`relay::Relay`].

pub mod cipher;
pub mod client;
pub mod frame;
pub mod key;
pub mod loadgen;
pub mod members;
pub mod outbox;
pub mod relay;
pub mod server;
pub mod stats;
