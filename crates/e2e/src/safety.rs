//! Safety numbers for `/verify NAME`: 60 digits that two members compare
//! out of band (read aloud, side by side) to learn that each sees the
//! other's devices, not a relay's stand-ins. Both sides compute the same
//! number.
//!
//! Each member's half (docs/security.md, e2e-spec): with `keys` the
//! member's device signature keys, sorted bytewise and concatenated,
//! `h = SHA-512("eaxchat-safety-1" ‖ name ‖ keys)`, then 5199 more rounds
//! of `h = SHA-512(h ‖ keys)` (5200 hashes in all, as Signal's numeric
//! fingerprint iterates); its first 30 bytes in six 5-byte big-endian
//! chunks, each mod 100000 as 5 digits. The two halves go in name order
//! (bytewise), in 12 groups of 5 digits.

use sha2::{Digest as _, Sha512};

/// The domain-separation prefix of version 1.
const PREFIX: &[u8] = b"eaxchat-safety-1";
/// SHA-512 rounds per half, as Signal's numeric fingerprints.
pub const SAFETY_ITERATIONS: u32 = 5200;

/// The 30 digits of one member's half.
pub fn safety_half(name: &str, keys: &[Vec<u8>]) -> String {
    let mut sorted: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let keys = sorted.concat();
    let mut hash = Sha512::new()
        .chain_update(PREFIX)
        .chain_update(name.as_bytes())
        .chain_update(&keys)
        .finalize();
    for _ in 1..SAFETY_ITERATIONS {
        hash = Sha512::new()
            .chain_update(hash)
            .chain_update(&keys)
            .finalize();
    }
    hash[..30]
        .chunks_exact(5)
        .map(|chunk| {
            let value = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", value % 100_000)
        })
        .collect()
}

/// The safety number of members `a` and `b` (each with its device
/// signature keys): 12 groups of 5 digits separated by spaces, the same
/// whichever side computes it.
pub fn safety_number(a: (&str, &[Vec<u8>]), b: (&str, &[Vec<u8>])) -> String {
    let (first, second) = if a.0.as_bytes() <= b.0.as_bytes() {
        (a, b)
    } else {
        (b, a)
    };
    let digits = safety_half(first.0, first.1) + &safety_half(second.0, second.1);
    digits
        .as_bytes()
        .chunks(5)
        .map(|group| String::from_utf8_lossy(group).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_matches_an_independent_computation() {
        // Computed with Python's hashlib from the definition above.
        let keys = vec![vec![0xBB; 32], vec![0x11; 32]];
        assert_eq!(safety_half("alice", &keys), VECTOR_ALICE);
    }

    const VECTOR_ALICE: &str = "582451837415430246422794553824";

    #[test]
    fn number_is_symmetric_and_grouped() {
        let a = vec![vec![1; 32]];
        let b = vec![vec![2; 32], vec![3; 32]];
        let one = safety_number(("alice", &a), ("bob", &b));
        assert_eq!(one, safety_number(("bob", &b), ("alice", &a)));
        assert_eq!(one.split(' ').count(), 12);
        assert!(one.split(' ').all(|g| g.len() == 5));
        let order = vec![vec![3; 32], vec![2; 32]];
        assert_eq!(one, safety_number(("alice", &a), ("bob", &order)));
        let changed = vec![vec![2; 32], vec![4; 32]];
        assert_ne!(one, safety_number(("alice", &a), ("bob", &changed)));
    }
}
