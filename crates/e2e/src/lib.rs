//! End-to-end rooms over MLS (RFC 9420), with `openmls`.
//!
//! In an end-to-end room each member's device encrypts for the group, and
//! the relay forwards the ciphertext inside its per-session frames without
//! ever holding a key that opens it. This crate is both sides' MLS:
//!
//! - [`ds`]: what the relay, as MLS's Delivery Service, reads of a group
//!   message (group, epoch, kind, the KeyPackages a Welcome names) and
//!   checks of a KeyPackage, without any group secret.
//!
//! Every suite here is [`CIPHERSUITE`]: the one openmls, ts-mls and
//! Chromium's WebCrypto all have. docs/protocol.md ("End-to-end rooms")
//! is the wire; docs/security.md says what it protects and what not.

pub mod ds;

use openmls::prelude::Ciphersuite;

/// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 (suite 1).
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// The MLS group id of the end-to-end room `room` (its name without `#`).
pub fn group_id(room: &str) -> Vec<u8> {
    let mut id = b"eaxchat:".to_vec();
    id.extend_from_slice(room.as_bytes());
    id
}
