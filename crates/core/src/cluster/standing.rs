//! How a relay of the cluster serves its people, as its envelopes say:
//! its [`ClusterMode`] and the fingerprint of its members file
//! ([`members_print`]), together its [`Standing`]. A name means something
//! different in each mode (a `/nick` anyone may claim, or a member proven
//! by a key), so the relay core refuses envelopes from a relay of another
//! mode, and checks the names in envelopes from a relay whose members
//! differ. This file only describes and fingerprints; it never decides.

use std::fmt;

use super::envelope::EnvelopeError;

/// How a relay serves its people: a name means something different in
/// each, so relays of different modes do not take each other's envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterMode {
    /// One shared key: a name is a `/nick`, claimed by anyone.
    Shared,
    /// Static-key members: a name is proven by the member's key.
    Members,
    /// Session members: a name is proven by a device's handshake.
    Sessions,
}

impl ClusterMode {
    pub(super) fn byte(self) -> u8 {
        match self {
            ClusterMode::Shared => 0,
            ClusterMode::Members => 1,
            ClusterMode::Sessions => 2,
        }
    }

    pub(super) fn from_byte(byte: u8) -> Result<ClusterMode, EnvelopeError> {
        match byte {
            0 => Ok(ClusterMode::Shared),
            1 => Ok(ClusterMode::Members),
            2 => Ok(ClusterMode::Sessions),
            _ => Err(EnvelopeError::UnknownKind),
        }
    }
}

impl fmt::Display for ClusterMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClusterMode::Shared => "shared-key",
            ClusterMode::Members => "static-key members",
            ClusterMode::Sessions => "session members",
        })
    }
}

/// What every envelope's head says of its origin, besides its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Standing {
    /// How the origin serves its people.
    pub mode: ClusterMode,
    /// The fingerprint of its members file's public content
    /// ([`members_print`]); 0 in shared-key mode.
    pub members: u64,
}

impl Standing {
    /// A shared-key relay's.
    pub const SHARED: Standing = Standing {
        mode: ClusterMode::Shared,
        members: 0,
    };
}

/// The fingerprint of a members file's public content: each member's name
/// and its public keys (none for a static-key file, whose keys are
/// secret), sorted, hashed with SHA-256, the first 8 bytes. Two relays
/// with the same members have the same fingerprint whatever the order of
/// their files' lines.
pub fn members_print<'a>(members: impl Iterator<Item = (&'a str, Vec<[u8; 32]>)>) -> u64 {
    use sha2::{Digest as _, Sha256};
    let mut sorted: Vec<(&str, Vec<[u8; 32]>)> = members
        .map(|(name, mut keys)| {
            keys.sort_unstable();
            (name, keys)
        })
        .collect();
    sorted.sort_unstable();
    let mut hash = Sha256::new();
    hash.update(b"eaxchat members v1\0");
    for (name, keys) in &sorted {
        hash.update([name.len() as u8]);
        hash.update(name.as_bytes());
        hash.update((keys.len() as u32).to_be_bytes());
        for key in keys {
            hash.update(key);
        }
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod print_tests {
    use super::*;

    #[test]
    fn the_members_print_ignores_order_and_sees_every_name_and_key() {
        let a =
            members_print([("alice", vec![[1; 32], [2; 32]]), ("bob", vec![[3; 32]])].into_iter());
        let b =
            members_print([("bob", vec![[3; 32]]), ("alice", vec![[2; 32], [1; 32]])].into_iter());
        assert_eq!(a, b);
        let fewer = members_print([("alice", vec![[1; 32], [2; 32]])].into_iter());
        let rekeyed =
            members_print([("alice", vec![[1; 32], [9; 32]]), ("bob", vec![[3; 32]])].into_iter());
        assert_ne!(a, fewer);
        assert_ne!(a, rekeyed);
    }
}
