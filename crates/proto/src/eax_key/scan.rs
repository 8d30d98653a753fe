//! Where a frame ends when frames are joined without separators (the
//! original notebook client's stream, which [`crate::seed::Splitter`]
//! splits): the shortest prefix of the bytes whose tag verifies.
//!
//! The ciphertext's CBC-MAC runs once over the bytes scanned, and each
//! candidate end costs one more block, so the work is linear in the bytes
//! scanned. [`EaxKey::verified_prefix_len`] scans bytes that are all here;
//! a [`TagScan`] is the same scan, resumed as more bytes arrive.

use std::fmt;

use aes::cipher::consts::U16;
use aes::cipher::{BlockCipherEncBackend, BlockCipherEncClosure};

use super::chain::{BLOCK, Block, Chain, aes_job, equal, xor};
use super::{CIPHERTEXT, EaxKey, HEADER, NONCE, Precomputed, split_frame};
use crate::wire::{NONCE_LEN, OVERHEAD, TAG_LEN};

impl EaxKey {
    /// The shortest `len`, with `OVERHEAD <= len <= data.len()` and
    /// `is_candidate(len)`, such that `data[..len]` is a frame whose tag
    /// verifies; `None` if there is none.
    ///
    /// `data` starts with a frame and may go on past it (frames joined
    /// without separators). The ciphertext's CBC-MAC runs once over the
    /// bytes scanned; each candidate end then costs one more block, so the
    /// work is linear in the bytes scanned.
    pub fn verified_prefix_len(
        &self,
        data: &[u8],
        is_candidate: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let (nonce, tag, rest) = split_frame(data)?;
        let mut found = None;
        self.aes.run(PrefixJob {
            pre: &self.pre,
            nonce,
            tag,
            rest,
            is_candidate,
            found: &mut found,
        });
        found
    }

    /// Starts checking the tag of the frame `nonce ‖ tag ‖ …` whose
    /// ciphertext arrives in pieces: the resumable form of
    /// [`EaxKey::verified_prefix_len`].
    pub fn start_scan(&self, nonce: &[u8; NONCE_LEN], tag: &[u8; TAG_LEN]) -> TagScan {
        let mut wanted = Block::default();
        self.aes.run(StartScanJob {
            pre: &self.pre,
            nonce,
            tag,
            wanted: &mut wanted,
        });
        TagScan {
            wanted,
            state: self.pre.after_prefix[CIPHERTEXT],
            pending: Block::default(),
            pending_len: 0,
        }
    }
}

/// One frame's tag check, resumable as its ciphertext arrives: what the
/// ciphertext's OMAC must come to, its CBC-MAC chain at the last block
/// boundary, and the bytes after it. Each byte is absorbed once; each
/// candidate end costs one more block. Made by [`EaxKey::start_scan`], and
/// used only with that key.
#[derive(Clone)]
pub struct TagScan {
    /// `tag ^ N' ^ H'`: the tag verifies exactly when `C'` is this.
    wanted: Block,
    /// The chain after the prefix block and every block before `pending`.
    state: Block,
    /// The last 0 to 16 ciphertext bytes fed: a complete block is held
    /// until more follows, since it may be the last.
    pending: Block,
    pending_len: usize,
}

impl fmt::Debug for TagScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TagScan { .. }")
    }
}

impl TagScan {
    /// Feeds `ciphertext`, checking after each `n` of its bytes for which
    /// `is_candidate(n)` whether the tag verifies if the ciphertext ends
    /// there; stops at the first that does and returns its `n` (the bytes
    /// after it are not fed). `None` if none does: all of it was fed.
    pub fn feed_until_verified(
        &mut self,
        key: &EaxKey,
        ciphertext: &[u8],
        is_candidate: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let mut found = None;
        key.aes.run(FeedScanJob {
            pre: &key.pre,
            scan: self,
            ciphertext,
            is_candidate,
            found: &mut found,
        });
        found
    }

    /// Whether the tag verifies if the ciphertext ends with what was fed.
    pub fn verifies(&self, key: &EaxKey) -> bool {
        let mut ok = false;
        key.aes.run(ScanVerifiesJob {
            pre: &key.pre,
            scan: self,
            ok: &mut ok,
        });
        ok
    }
}

/// Finds the shortest candidate frame at the front of `nonce ‖ tag ‖ rest`
/// whose tag verifies.
struct PrefixJob<'a, F> {
    pre: &'a Precomputed,
    nonce: &'a [u8],
    tag: &'a [u8; TAG_LEN],
    rest: &'a [u8],
    is_candidate: F,
    found: &'a mut Option<usize>,
}
aes_job!(PrefixJob<F>);

impl<F: FnMut(usize) -> bool> BlockCipherEncClosure for PrefixJob<'_, F> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(mut self, aes: &B) {
        let chain = Chain { aes, pre: self.pre };
        // tag == N' ^ H' ^ C' exactly when C' == tag ^ N' ^ H'.
        let n = chain.omac(NONCE, self.nonce);
        let h = &self.pre.of_empty[HEADER];
        let wanted = xor(xor(Block::from(*self.tag), &n), h);
        let matches = |c: &Block| equal(c, &wanted);

        if (self.is_candidate)(OVERHEAD) && matches(&self.pre.of_empty[CIPHERTEXT]) {
            *self.found = Some(OVERHEAD);
            return;
        }
        // `state` is the chain after the prefix block and the whole blocks
        // before `unabsorbed`; a candidate with `len` ciphertext bytes ends
        // with the 1 to 16 bytes after the blocks absorbed for it.
        let mut state = self.pre.after_prefix[CIPHERTEXT];
        let mut unabsorbed = self.rest;
        for len in 1..=self.rest.len() {
            if !(self.is_candidate)(OVERHEAD + len) {
                continue;
            }
            let mut last_len = len - (self.rest.len() - unabsorbed.len());
            while last_len > BLOCK {
                let Some((block, after)) = unabsorbed.split_first_chunk::<BLOCK>() else {
                    return;
                };
                state = chain.absorb(state, block);
                unabsorbed = after;
                last_len -= BLOCK;
            }
            let Some(last) = unabsorbed.get(..last_len) else {
                return;
            };
            if matches(&chain.finish(state, last)) {
                *self.found = Some(OVERHEAD + len);
                return;
            }
        }
    }
}

/// A scan's `tag ^ N' ^ H'`.
struct StartScanJob<'a> {
    pre: &'a Precomputed,
    nonce: &'a [u8; NONCE_LEN],
    tag: &'a [u8; TAG_LEN],
    wanted: &'a mut Block,
}
aes_job!(StartScanJob);

impl BlockCipherEncClosure for StartScanJob<'_> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, aes: &B) {
        let chain = Chain { aes, pre: self.pre };
        let n = chain.omac(NONCE, self.nonce);
        *self.wanted = xor(xor(Block::from(*self.tag), &n), &self.pre.of_empty[HEADER]);
    }
}

/// Feeds a scan, checking candidate ends.
struct FeedScanJob<'a, F> {
    pre: &'a Precomputed,
    scan: &'a mut TagScan,
    ciphertext: &'a [u8],
    is_candidate: F,
    found: &'a mut Option<usize>,
}
aes_job!(FeedScanJob<F>);

impl<F: FnMut(usize) -> bool> BlockCipherEncClosure for FeedScanJob<'_, F> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(mut self, aes: &B) {
        let chain = Chain { aes, pre: self.pre };
        let scan = &mut *self.scan;
        for (i, &byte) in self.ciphertext.iter().enumerate() {
            if scan.pending_len == BLOCK {
                scan.state = chain.absorb(scan.state, &scan.pending);
                scan.pending_len = 0;
            }
            scan.pending[scan.pending_len] = byte;
            scan.pending_len += 1;
            if (self.is_candidate)(i + 1)
                && equal(
                    &chain.finish(scan.state, &scan.pending[..scan.pending_len]),
                    &scan.wanted,
                )
            {
                *self.found = Some(i + 1);
                return;
            }
        }
    }
}

/// Checks a scan's tag at the end of what was fed.
struct ScanVerifiesJob<'a> {
    pre: &'a Precomputed,
    scan: &'a TagScan,
    ok: &'a mut bool,
}
aes_job!(ScanVerifiesJob);

impl BlockCipherEncClosure for ScanVerifiesJob<'_> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, aes: &B) {
        let chain = Chain { aes, pre: self.pre };
        let scan = self.scan;
        let c = if scan.pending_len == 0 {
            self.pre.of_empty[CIPHERTEXT]
        } else {
            chain.finish(scan.state, &scan.pending[..scan.pending_len])
        };
        *self.ok = equal(&c, &scan.wanted);
    }
}
