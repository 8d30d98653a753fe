//! The keys of one session, derived from a finished handshake.
//!
//! snow's raw split gives `k1` (initiator → responder) and `k2` (responder
//! → initiator), and the handshake gives its hash `h`. Then, by RFC 5869:
//!
//! ```text
//! c2s = HKDF-SHA256(salt = h, ikm = k1, info = "eaxchat/1 session c2s", L = 32)
//! s2c = HKDF-SHA256(salt = h, ikm = k2, info = "eaxchat/1 session s2c", L = 32)
//! ```
//!
//! `c2s` seals client → relay frames, `s2c` relay → client, each as
//! AES-256-EAX. The keys never come from `h` alone, which is not secret:
//! `k1` and `k2` carry the handshake's Diffie-Hellman results, ephemeral
//! ones included, which is what makes a recorded session unreadable once
//! both sides have dropped it.
//!
//! Every secret here is wiped from memory when the keys are dropped.

use std::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// HKDF `info` of the client → relay key.
const C2S_INFO: &[u8] = b"eaxchat/1 session c2s";
/// HKDF `info` of the relay → client key.
const S2C_INFO: &[u8] = b"eaxchat/1 session s2c";

/// One session's keys: the raw split and handshake hash they come from,
/// and the AES-256 key of each direction.
///
/// A [`super::Session`] keeps only the expanded keys; this is for the
/// interop tests and diagnostics, and should be dropped once read.
#[derive(Clone)]
pub struct SessionKeys {
    k1: Zeroizing<[u8; 32]>,
    k2: Zeroizing<[u8; 32]>,
    handshake_hash: [u8; 32],
    c2s: Zeroizing<[u8; 32]>,
    s2c: Zeroizing<[u8; 32]>,
}

impl SessionKeys {
    /// Derives the direction keys from the raw split (`k1` initiator →
    /// responder, `k2` responder → initiator) and the handshake hash.
    pub fn derive(k1: &[u8; 32], k2: &[u8; 32], handshake_hash: &[u8; 32]) -> SessionKeys {
        SessionKeys {
            k1: Zeroizing::new(*k1),
            k2: Zeroizing::new(*k2),
            handshake_hash: *handshake_hash,
            c2s: hkdf32(handshake_hash, k1, C2S_INFO),
            s2c: hkdf32(handshake_hash, k2, S2C_INFO),
        }
    }

    /// The key of frames from the client to the relay.
    pub fn client_to_relay(&self) -> &[u8; 32] {
        &self.c2s
    }

    /// The key of frames from the relay to the client.
    pub fn relay_to_client(&self) -> &[u8; 32] {
        &self.s2c
    }

    /// The handshake hash `h`: public, the same on both sides, and
    /// different for every handshake.
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }

    /// snow's raw split `(k1, k2)`, as `dangerously_get_raw_split` gave it.
    pub fn raw_split(&self) -> (&[u8; 32], &[u8; 32]) {
        (&self.k1, &self.k2)
    }
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys { .. }")
    }
}

/// RFC 5869 HKDF-SHA256 with an output of one block (32 bytes).
fn hkdf32(salt: &[u8; 32], ikm: &[u8; 32], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0; 32]);
    // 32 bytes is one HMAC block, far below HKDF's 255-block limit: the
    // error cannot happen, and if it did the key would stay zero and no
    // frame would open.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, &mut out[..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hkdf::hmac::{Hmac, Mac as _};

    /// HKDF by hand, as RFC 5869 writes it for L = 32: PRK = HMAC(salt,
    /// ikm), OKM = HMAC(PRK, info ‖ 0x01).
    fn by_hand(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(salt).unwrap();
        mac.update(ikm);
        let prk = mac.finalize().into_bytes();
        let mut mac = Hmac::<Sha256>::new_from_slice(&prk).unwrap();
        mac.update(info);
        mac.update(&[1]);
        mac.finalize().into_bytes().into()
    }

    #[test]
    fn the_direction_keys_are_rfc_5869_hkdf_of_the_split() {
        let (k1, k2, h) = ([1; 32], [2; 32], [3; 32]);
        let keys = SessionKeys::derive(&k1, &k2, &h);
        assert_eq!(
            keys.client_to_relay(),
            &by_hand(&h, &k1, b"eaxchat/1 session c2s")
        );
        assert_eq!(
            keys.relay_to_client(),
            &by_hand(&h, &k2, b"eaxchat/1 session s2c")
        );
        assert_ne!(keys.client_to_relay(), keys.relay_to_client());
        assert_eq!(keys.raw_split(), (&k1, &k2));
        assert_eq!(keys.handshake_hash(), &h);
        assert_eq!(format!("{keys:?}"), "SessionKeys { .. }");
    }

    #[test]
    fn the_same_split_under_another_hash_gives_other_keys() {
        let a = SessionKeys::derive(&[1; 32], &[2; 32], &[3; 32]);
        let b = SessionKeys::derive(&[1; 32], &[2; 32], &[4; 32]);
        assert_ne!(a.client_to_relay(), b.client_to_relay());
        assert_ne!(a.relay_to_client(), b.relay_to_client());
    }
}
