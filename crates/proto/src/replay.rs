//! Replay refusal: the nonces of client frames accepted lately, so that a
//! frame captured off the wire and sent again is refused, not relayed.
//!
//! [`ReplayWindow`] remembers accepted nonces keyed by the key they opened
//! under (a key index: 0 in shared-key mode, the member's index in members
//! mode), so one member's nonce never blocks another's. It remembers at
//! least the last [`WINDOW`] (262,144) accepted, over all keys together,
//! and at most twice that less one; what is older is forgotten, and a frame
//! that old can be sent again once (docs/security.md says so).
//!
//! Memory is bounded and grows only with use. The window keeps two
//! generations, each a `HashSet` of at most [`WINDOW`] entries: new nonces
//! go into the newer; when it is full the older one is emptied (its table
//! kept) and the two swap. No entry is ever removed on its own, so the sets
//! never fill with tombstones and never grow past the table their
//! [`WINDOW`] entries need: 2^19 buckets of 9 bytes (an 8-byte entry and a
//! control byte) plus 16, that is 4,718,608 bytes each and 9,437,216
//! bytes (9.0 MiB) for the whole window at capacity.
//!
//! An entry is not the 20 bytes of key and nonce but a 64-bit fingerprint
//! of them, from std's `RandomState` (SipHash under a key drawn at start):
//! a peer cannot aim collisions at the tables, which need no second hash,
//! and the window fits the 10 MiB it is allowed. The price is a false
//! refusal when a fresh frame's fingerprint equals a remembered one: below
//! 2^19 / 2^64 = 2^-45 per frame.

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use crate::wire::NONCE_LEN;

/// The key index of shared-key mode, where every client holds one key.
pub const SHARED_KEY: u32 = 0;

/// How many accepted nonces the relay's window remembers at least.
pub const WINDOW: usize = 262_144;

/// A frame's nonce was accepted before under its key (or, for the relay's
/// own nonces, it was sealed by the relay): the frame is a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed;

impl fmt::Display for Replayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("replayed nonce")
    }
}

impl std::error::Error for Replayed {}

/// The nonces accepted lately, by key index; see the module docs.
pub struct ReplayWindow {
    fingerprints: RandomState,
    newer: HashSet<u64, BuildHasherDefault<Fingerprint>>,
    older: HashSet<u64, BuildHasherDefault<Fingerprint>>,
    generation: usize,
}

impl Default for ReplayWindow {
    fn default() -> ReplayWindow {
        ReplayWindow::new()
    }
}

impl ReplayWindow {
    /// A window remembering at least the last [`WINDOW`] nonces.
    pub fn new() -> ReplayWindow {
        ReplayWindow::remembering(WINDOW)
    }

    /// A window remembering at least the last `len` nonces (at least one),
    /// and at most `2 * len - 1`.
    pub fn remembering(len: usize) -> ReplayWindow {
        ReplayWindow {
            fingerprints: RandomState::new(),
            newer: HashSet::default(),
            older: HashSet::default(),
            generation: len.max(1),
        }
    }

    /// Accepts `nonce` under key index `key` if it is not remembered under
    /// that key, and remembers it; else refuses it.
    pub fn check_and_insert(&mut self, key: u32, nonce: &[u8; NONCE_LEN]) -> Result<(), Replayed> {
        let fingerprint = self.fingerprints.hash_one((key, nonce));
        if self.older.contains(&fingerprint) || !self.newer.insert(fingerprint) {
            return Err(Replayed);
        }
        if self.newer.len() >= self.generation {
            self.older.clear();
            std::mem::swap(&mut self.older, &mut self.newer);
        }
        Ok(())
    }

    /// How many nonces it remembers now.
    pub fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }

    /// Whether it remembers none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes its two tables hold, from their capacities and the layout
    /// of std's `HashSet` (a power of two of buckets, seven eighths of them
    /// usable past eight; an 8-byte entry and a control byte each, and 16
    /// control bytes more).
    pub fn table_bytes(&self) -> usize {
        table_bytes(self.newer.capacity()) + table_bytes(self.older.capacity())
    }
}

/// The bytes a `HashSet<u64>` of `capacity` holds; see
/// [`ReplayWindow::table_bytes`].
fn table_bytes(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        capacity + 1
    } else {
        capacity / 7 * 8
    };
    buckets * (size_of::<u64>() + 1) + 16
}

/// The tables' hasher: their entries are keyed SipHash values already, so
/// it passes them through instead of hashing them again.
#[derive(Default)]
struct Fingerprint(u64);

impl Hasher for Fingerprint {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce(n: u64) -> [u8; NONCE_LEN] {
        let mut nonce = [0xa5; NONCE_LEN];
        nonce[..8].copy_from_slice(&n.to_le_bytes());
        nonce
    }

    #[test]
    fn refuses_a_repeat() {
        let mut window = ReplayWindow::new();
        assert_eq!(window.check_and_insert(0, &nonce(1)), Ok(()));
        assert_eq!(window.check_and_insert(0, &nonce(2)), Ok(()));
        assert_eq!(window.check_and_insert(0, &nonce(1)), Err(Replayed));
        assert_eq!(window.check_and_insert(0, &nonce(2)), Err(Replayed));
        assert_eq!(window.len(), 2);
    }

    #[test]
    fn keys_are_separate() {
        let mut window = ReplayWindow::new();
        for key in [0, 1, 7, u32::MAX] {
            assert_eq!(window.check_and_insert(key, &nonce(9)), Ok(()), "{key}");
        }
        assert_eq!(window.check_and_insert(7, &nonce(9)), Err(Replayed));
    }

    /// Every nonce is remembered for at least `len - 1` others after it,
    /// and forgotten after `2 * len - 1` others.
    #[test]
    fn remembers_the_last_len_and_forgets_past_twice_that() {
        let len = 1000;
        for start in [0, 1, len / 2, len - 1] {
            let mut window = ReplayWindow::remembering(len);
            for n in 0..start as u64 {
                window.check_and_insert(0, &nonce(n)).expect("fresh");
            }
            let old = nonce(u64::MAX);
            window.check_and_insert(0, &old).expect("fresh");
            for n in 0..(len - 1) as u64 {
                window
                    .check_and_insert(0, &nonce(1_000_000 + n))
                    .expect("fresh");
            }
            // Every one of the last `len` is still refused.
            assert_eq!(window.check_and_insert(0, &old), Err(Replayed), "{start}");
            let last = nonce(1_000_000 + len as u64 - 2);
            assert_eq!(window.check_and_insert(0, &last), Err(Replayed));
            for n in 0..len as u64 {
                window
                    .check_and_insert(0, &nonce(2_000_000 + n))
                    .expect("fresh");
            }
            assert_eq!(window.check_and_insert(0, &old), Ok(()), "{start}");
            assert!(window.len() < 2 * len);
        }
    }

    /// The full-size window, driven through several generations, stays
    /// within the memory its docs state.
    #[test]
    fn memory_stays_within_its_bound() {
        let mut window = ReplayWindow::new();
        assert_eq!(window.table_bytes(), 0, "nothing is allocated up front");
        for n in 0..(3 * WINDOW + WINDOW / 2) as u64 {
            window.check_and_insert(0, &nonce(n)).expect("fresh");
            assert!(window.len() < 2 * WINDOW);
        }
        assert_eq!(window.table_bytes(), 9_437_216);
        assert!(window.table_bytes() <= 10 * 1024 * 1024);
    }
}
