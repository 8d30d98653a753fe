//! Identity files: a member's X25519 secret, kept on their own device.
//!
//! The format and its reading and writing are the protocol crate's
//! ([`eaxchat_proto::session::identity_file`]), shared with the relay's
//! `--identity` and `relay members`; this module names them for `chat`.
//! `chat --key-file FILE` takes either an identity or a legacy key file
//! (hex AES key, shared or a member's); [`read_key_file`] tells them apart
//! and gives `Ok(None)` for the legacy kind, whose own parser decides.

pub use eaxchat_proto::session::identity_file::{
    IDENTITY_HEADER, IdentityError, generate_identity, parse_identity,
    read_identity_file as read_key_file, write_new_identity,
};
