#![forbid(unsafe_code)]

//! eaxchat's protocol: what travels between a client and the relay, and the
//! crypto that seals it. Every message is one line, `base64(nonce‖tag‖ct)\n`,
//! sealed with AES-EAX byte for byte as PyCryptodome's `AES.MODE_EAX` does.
//!
//! The two entry types are [`cipher::Cipher`] (open and seal frames under a
//! [`key::Key`]) and [`lines::LineReader`] (split a byte stream into lines).
//! This crate has no sockets, threads or clocks; the relay core, the server
//! and the client all build on it. `docs/architecture.md` is the map of the
//! crates, what each owns and which it may use.
//!
//! The modules, from the wire up:
//! - [`wire`]: the frame as one line, its lengths (defined here only) and
//!   its base64.
//! - [`eax_key`]: EAX under one AES key, with the key's work done once.
//! - [`cipher`]: opening and sealing frames, over [`eax_key`].
//! - [`nonce`]: the nonces a cipher seals with, unique and marked as its own.
//! - [`replay`]: the window of accepted nonces that refuses replays.
//! - [`key`]: keys, their hex form and key files.
//! - [`lines`]: splitting a byte stream into lines, within a length limit.
//! - [`session`]: sessions: the Noise handshake, per-session keys and
//!   counter-nonce frames.
//! - [`seed`]: the original notebook client's conventions.
//! - [`name`]: people's names.
//! - [`commands`]: the `/` command grammar, its replies, and room names.
//! - [`events`]: what the relay tells people, as plain text or `eaxchat/1`
//!   events: written by the relay and parsed back by clients, here only.
//! - [`sanitize`]: making peer text safe to print on a terminal.

pub mod cipher;
pub mod commands;
pub mod eax_key;
pub mod events;
pub mod invite;
pub mod key;
pub mod lines;
pub mod name;
pub mod nonce;
pub mod opened_lines;
pub mod replay;
pub mod sanitize;
pub mod seed;
pub mod session;
pub mod wire;
