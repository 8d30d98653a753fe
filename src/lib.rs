#![forbid(unsafe_code)]

//! eaxchat: a chat relay whose every message is sealed with AES-EAX under a
//! shared key, byte-compatible with PyCryptodome's `AES.MODE_EAX`.
//!
//! The library is everything; the binaries are thin wrappers over it.
//!
//! - [`key`]: the shared key, its hex form and the key file.
//! - [`commands`]: the `/` commands: parsing a plaintext into text, a
//!   command, or the error reply; room names.
//! - [`events`]: what the relay tells people, as plain text or as the
//!   `eaxchat/1` structured events (one-line JSON).
//! - [`flood`]: flood control, a token bucket per connection.
//! - [`history`]: one room's last messages, bounded in count and bytes,
//!   for whoever joins.
//! - [`members`]: the members file (a name and a key per person) and the
//!   add / remove / list operations on it.
//! - [`wire`]: the wire format: a frame as one line,
//!   `base64(nonce‖tag‖ct)\n`, its lengths and its base64.
//! - [`cipher`]: the AES-EAX cipher and nonces: opening and sealing frames,
//!   over [`eax_key`].
//! - [`eax_key`]: EAX under one AES key with the key's work done once; what
//!   [`cipher::Cipher`] seals and opens with.
//! - [`nonce`]: the nonces a cipher seals with, unique and marked as its
//!   own.
//! - [`replay`]: the window of accepted client nonces that refuses replays.
//! - [`lines`]: splitting a byte stream into lines, within a length limit.
//! - [`msglog`]: the encrypted message log: sealed records in segment
//!   files, a writer thread behind a bounded queue, replay and recovery.
//! - [`outbox`]: one connection's queue of shared frames, written vectored.
//! - [`guard`]: what a peer without the key can cost: the pre-auth byte
//!   budget, the first-frame deadline, connections per address.
//! - [`relay`]: the relay's logic without sockets: connections, fan-out,
//!   limits, and why a connection closes ([`relay::CloseReason`]).
//! - [`rooms`]: the rooms, who is in each, and each room's history.
//! - [`roster`]: a members relay's members as served: each key's state,
//!   identifying a first frame, each member's connections.
//! - `sweep` (private): the write sweep, the fair order in which
//!   connections with new frames are written.
//! - [`seed`]: the original notebook client's conventions: newline-less
//!   frames split by where their tag verifies, and paced frames to it.
//! - [`stats`]: the relay's counters.
//! - [`server`]: the single-threaded `mio` loop that moves bytes between
//!   sockets and [`relay::Relay`], the TCP port's and `--web`'s.
//! - [`web`]: the browser's way in: HTTP heads, WebSocket frames, the
//!   embedded chat page, `/metrics`.

pub mod cipher;
pub mod client;
pub mod cluster;
pub mod commands;
pub mod eax_key;
pub mod events;
pub mod flood;
pub mod guard;
pub mod history;
pub mod key;
pub mod lines;
pub mod members;
pub mod msglog;
pub mod nonce;
pub mod outbox;
pub mod relay;
pub mod replay;
pub mod rooms;
pub mod roster;
pub mod seed;
pub mod server;
pub mod stats;
mod sweep;
pub mod web;
pub mod wire;
