//! The protocol crate's tests, one binary: EAX against the `eax` crate and
//! the published vectors, frames through `Cipher`, and sessions end to end.

// A test or bench binary exports nothing: `pub` marks what its modules share.
#![allow(unreachable_pub)]
// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod eax_key;
mod published;
mod session;
mod vectors;
