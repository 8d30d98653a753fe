//! Sessions: a Noise handshake per connection, then today's frames under
//! keys that belong to that one session. This module is the protocol's
//! reference; the page (`noise.js`) and the Python client (`eaxsession`)
//! speak the same bytes, and their tests run against this code.
//!
//! The two entry types are [`Initiator`] (the client: its static key and
//! the relay key it pinned give line 1; the relay's reply gives a
//! [`Session`] and the name the relay stamped) and [`Responder`] (the
//! relay: line 1 shows who is asking, [`Responder::initiator_key`], before
//! the relay decides to [`accept`](Responder::accept) or
//! [`refuse`](Responder::refuse)). After the handshake a [`Session`] seals
//! and opens frames, one [`Sealer`] and one [`Opener`] per direction.
//!
//! ```text
//! client                                              relay
//!   line 1: base64(0x01 ‖ Noise IK message 1)  ─────▶
//!                                                     looks up the client's key
//!   ◀───── line 2: base64(0x02 ‖ Noise IK message 2, payload = name)
//!          or      base64(0x7f ‖ refusal text), then the relay closes
//!   frames: base64(nonce ‖ tag ‖ ct), AES-256-EAX, nonce = 0⁸ ‖ counter
//! ```
//!
//! A client with no pin for the relay first sends a key request
//! ([`key_request_line`], kind 0x04) and gets the relay's key
//! ([`relay_key_line`], kind 0x05) as a plain, unauthenticated line; it
//! then sends line 1 made for that key on the same connection.
//!
//! - The handshake is `Noise_IK_25519_AESGCM_SHA256` (revision 34) with the
//!   prologue [`PROLOGUE`], run by the `snow` crate.
//! - Session keys are HKDF-SHA256 over snow's raw split, salted with the
//!   handshake hash, one AES-256 key per direction ([`SessionKeys`]).
//! - Frame nonces are counters; an opener takes only the next one, so a
//!   replay, a gap, a reorder or a frame of another session or of the
//!   other direction never opens, with O(1) state.
//!
//! ```
//! use bytes::BytesMut;
//! use eaxchat_proto::session::{Initiator, Responder, StaticSecret};
//!
//! let relay = StaticSecret::generate()?;
//! let client = StaticSecret::generate()?;
//! let (initiator, hello) = Initiator::start(&client, relay.public_key(), b"")?;
//! let responder = Responder::read_hello(&relay, &hello)?;
//! assert_eq!(responder.initiator_key(), client.public_key()); // look it up
//! let (welcome, mut at_relay) = responder.accept("alice")?;
//! let mut at_client = initiator.finish(&welcome)?;
//! assert_eq!(at_client.name, "alice");
//!
//! let mut line = BytesMut::new();
//! at_client.session.seal_into(b"hi", &mut line)?;
//! assert_eq!(at_relay.session.open(&line)?, b"hi");
//! assert!(at_relay.session.open(&line).is_err()); // a replay
//! # Ok::<(), eaxchat_proto::session::SessionError>(())
//! ```
//!
//! The modules:
//! - `identity`: static X25519 keys, their text form and fingerprints.
//! - [`identity_file`]: identity files, the secret's file on disk (the
//!   client's and the relay's).
//! - `line`: a handshake message as one bounded base64 line.
//! - `handshake`: the [`Initiator`] and [`Responder`] state machines.
//! - `keys`: the session keys derived from a finished handshake.
//! - `frames`: counter nonces, sealing and opening a session's frames.
//! - `error`: [`SessionError`], every way any of it fails.
//!
//! Like the rest of this crate it has no sockets, threads or clocks: bytes
//! in, bytes out. The handshake deadline and the pre-auth budget belong to
//! whoever owns the socket. Nothing here panics on what a peer sends.

mod error;
mod frames;
mod handshake;
mod identity;
pub mod identity_file;
mod keys;
mod line;

pub use error::SessionError;
pub use frames::{Opener, Sealer, Session, counter_nonce};
pub use handshake::{Established, Initiator, Responder};
pub use identity::{Fingerprint, PublicKey, StaticSecret};
pub use keys::SessionKeys;
pub use line::{
    HandshakeLine, Kind, decode_line, encode_line, key_request_line, peek_kind, read_relay_key,
    refusal_line, relay_key_line,
};

/// The Noise protocol name every session runs.
pub const PROTOCOL: &str = "Noise_IK_25519_AESGCM_SHA256";

/// The Noise prologue: both sides hash it in, so a handshake of any other
/// protocol or version never completes with this one.
pub const PROLOGUE: &[u8] = b"eaxchat/session/1";

/// The longest handshake line, in bytes of base64 before its `\n`.
pub const MAX_LINE: usize = 1024;

/// The longest refusal text, in bytes of UTF-8.
pub const MAX_REFUSAL: usize = 512;

/// The longest payload of line 1 (empty, or UTF-8 JSON for future options).
pub const MAX_PAYLOAD: usize = 128;

/// What precedes the relay's own fingerprint in a refusal: a client reads
/// the fingerprint after it (and only there) to name both keys when it
/// pinned another one.
pub const RELAY_KEY_MARK: &str = "this relay's key is ";

/// The longest body (everything after the kind byte) a line can carry.
pub const MAX_BODY: usize = MAX_LINE / 4 * 3 - 1;

/// Bytes of Noise IK message 2 besides its payload: the ephemeral key and
/// the payload's AES-GCM tag.
const WELCOME_OVERHEAD: usize = 32 + 16;

/// The longest member name line 2 can carry.
pub const MAX_NAME: usize = MAX_BODY - WELCOME_OVERHEAD;
