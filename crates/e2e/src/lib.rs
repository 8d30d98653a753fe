//! End-to-end rooms over MLS (RFC 9420), with `openmls`.
//!
//! In an end-to-end room each member's device encrypts for the group, and
//! the relay forwards the ciphertext inside its per-session frames without
//! ever holding a key that opens it. This crate is both sides' MLS:
//!
//! - [`ds`]: what the relay, as MLS's Delivery Service, reads of a group
//!   message (group, epoch, kind, the KeyPackages a Welcome names) and
//!   checks of a KeyPackage, without any group secret; and [`ds_group`],
//!   its public view of each group (openmls's `PublicGroup`), against
//!   which it checks every commit, proposal and GroupInfo.
//! - A device's side: [`E2eRooms`] (its groups, one per room: create, add,
//!   remove, join, encrypt, [`E2eRooms::process`] → [`Event`]) over a
//!   [`Device`] (signature key, credential, state directory), [`Pins`]
//!   (trust on first use per peer name) and [`safety_number`] for
//!   `/verify`. Sans-io: bytes in, bytes and events out.
//!
//! Every suite here is [`CIPHERSUITE`]: the one openmls, ts-mls and
//! Chromium's WebCrypto all have. docs/protocol.md ("End-to-end rooms")
//! is the wire; docs/security.md says what it protects and what not.

pub mod ds;
pub mod ds_group;

mod device;
mod error;
mod inbound;
mod pins;
mod rooms;
mod safety;
mod state;

pub use device::Device;
pub use error::E2eError;
pub use inbound::Event;
pub use pins::{Pin, Pins, hex};
pub use rooms::{E2eRooms, Member, PAST_EPOCHS};
pub use safety::{SAFETY_ITERATIONS, safety_half, safety_number};

use openmls::prelude::Ciphersuite;

/// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 (suite 1).
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// The MLS group id of the end-to-end room `room` (its name without `#`).
pub fn group_id(room: &str) -> Vec<u8> {
    let mut id = b"eaxchat:".to_vec();
    id.extend_from_slice(room.as_bytes());
    id
}
