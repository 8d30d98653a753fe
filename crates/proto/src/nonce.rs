//! The nonces a [`crate::cipher::Cipher`] seals with: never repeated within
//! a run, and recognisable as its own without any state.
//!
//! Each nonce is one AES-128 block encryption, under a marker secret made
//! when the cipher is built, of a 64-bit counter followed by 8 zero bytes:
//! `nonce = AES_s(c ‖ 0^8)`, with `c` starting at a random value and
//! counting up. Because AES is a permutation, two nonces of one run differ
//! whenever their counters do: none repeats before 2^64 seals. Because the
//! secret is random, the nonces of different runs (and of different
//! ciphers) are independent random-looking blocks. And a nonce is the
//! cipher's own exactly when decrypting it gives 8 zero bytes at the end:
//! the relay can tell a frame it sealed itself, reflected back at it by a
//! client, from one block decryption, with no table of what it sent.
//!
//! A nonce the cipher did not make (a client's random 16 bytes) passes that
//! test only by chance: 2^-64 for each frame, since for an unknown secret
//! the decryption of any other block is as good as random.
//!
//! This is the only use of the block cipher outside [`crate::eax_key`];
//! the AES rounds are the `aes` crate's.

use aes::Aes128;
use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};

use crate::wire::NONCE_LEN;

/// A cipher's nonce generator and the test for its own nonces.
///
/// ```
/// use eaxchat_proto::nonce::Nonces;
///
/// let mut nonces = Nonces::new([1; 16], 0);
/// let nonce = nonces.next_nonce();
/// assert!(nonces.is_own(&nonce));
/// ```
///
/// Not `Clone`: a copy would make the same nonces again. So this does not
/// compile:
///
/// ```compile_fail,E0599
/// use eaxchat_proto::nonce::Nonces;
///
/// let nonces = Nonces::new([1; 16], 0);
/// let twin = nonces.clone();
/// ```
///
/// The marker key is wiped from memory when the generator is dropped (the
/// `aes` crate's `zeroize` feature).
pub struct Nonces {
    marker: Aes128,
    /// The counter of the next nonce to be made (not yet in `pool`).
    counter: u64,
    /// Nonces made ahead, [`POOL`] at a time in one parallel call: the
    /// same sequence one at a time would give, a fraction of the cost.
    pool: [[u8; NONCE_LEN]; POOL],
    /// The next nonce of `pool` to hand out; `POOL` when it is spent.
    next: usize,
}

/// Nonces made per call of the block cipher: AES-NI pipelines eight.
const POOL: usize = 8;

impl Nonces {
    /// A generator whose marker secret is `secret` and whose counter starts
    /// at `start`; both must be random (or, in tests, fixed on purpose).
    pub fn new(secret: [u8; 16], start: u64) -> Nonces {
        Nonces {
            marker: Aes128::new(&Array::from(secret)),
            counter: start,
            pool: [[0; NONCE_LEN]; POOL],
            next: POOL,
        }
    }

    /// A generator with its secret and counter start drawn from the
    /// operating system.
    pub fn from_os() -> std::io::Result<Nonces> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(std::io::Error::other)?;
        Ok(Nonces::from_seed(seed))
    }

    /// A generator whose secret and counter start follow `seed`:
    /// deterministic, for tests, benches and fuzzing only.
    pub fn from_seed(seed: [u8; 32]) -> Nonces {
        use rand_chacha::ChaCha20Rng;
        use rand_chacha::rand_core::{Rng as _, SeedableRng as _};
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut secret = [0u8; 16];
        rng.fill_bytes(&mut secret);
        Nonces::new(secret, rng.next_u64())
    }

    /// The next nonce: unique within this generator's life.
    pub fn next_nonce(&mut self) -> [u8; NONCE_LEN] {
        if self.next == POOL {
            self.refill();
        }
        let nonce = self.pool[self.next];
        self.next += 1;
        nonce
    }

    /// Makes the next [`POOL`] nonces, counters `counter..counter + POOL`,
    /// in one call.
    fn refill(&mut self) {
        let mut blocks = [Array::from([0u8; NONCE_LEN]); POOL];
        for block in &mut blocks {
            block[..8].copy_from_slice(&self.counter.to_be_bytes());
            self.counter = self.counter.wrapping_add(1);
        }
        self.marker.encrypt_blocks(&mut blocks);
        for (slot, block) in self.pool.iter_mut().zip(blocks) {
            *slot = block.into();
        }
        self.next = 0;
    }

    /// Whether `nonce` came from this generator (or from any generator with
    /// the same secret); a false positive has probability 2^-64.
    pub fn is_own(&self, nonce: &[u8; NONCE_LEN]) -> bool {
        let mut block = Array::from(*nonce);
        self.marker.decrypt_block(&mut block);
        block[8..] == [0u8; 8]
    }
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs.
        f.write_str("Nonces { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool gives exactly the nonces made one at a time would:
    /// `AES_s(counter ‖ 0^8)` for consecutive counters.
    #[test]
    fn the_pool_is_the_one_at_a_time_sequence() {
        let secret = [9; 16];
        let start = u64::MAX - 5;
        let mut nonces = Nonces::new(secret, start);
        let marker = Aes128::new(&Array::from(secret));
        for i in 0..3 * POOL as u64 {
            let mut block = [0u8; NONCE_LEN];
            block[..8].copy_from_slice(&start.wrapping_add(i).to_be_bytes());
            let mut block = Array::from(block);
            marker.encrypt_block(&mut block);
            let want: [u8; NONCE_LEN] = block.into();
            assert_eq!(nonces.next_nonce(), want, "nonce {i}");
        }
    }

    #[test]
    fn recognises_its_own_nonces_and_not_others() {
        let mut nonces = Nonces::new([3; 16], u64::MAX - 2);
        let other = Nonces::new([4; 16], 0);
        let mut seen = std::collections::HashSet::new();
        // Crosses the counter's wrap: still distinct, still its own.
        for _ in 0..1000 {
            let nonce = nonces.next_nonce();
            assert!(nonces.is_own(&nonce));
            assert!(!other.is_own(&nonce));
            assert!(seen.insert(nonce), "a nonce repeated");
        }
        for byte in 0..=255u8 {
            assert!(!nonces.is_own(&[byte; 16]));
        }
        let mut flipped = nonces.next_nonce();
        flipped[15] ^= 1;
        assert!(!nonces.is_own(&flipped));
    }
}
