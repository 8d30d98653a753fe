//! EAX (Bellare, Rogaway and Wagner, 2004) under one AES key, with the work
//! that depends only on the key done once, when the key is loaded.
//!
//! EAX is CMAC ("OMAC") and CTR under one block-cipher key:
//!
//! ```text
//! N' = OMAC_K(0 ‖ nonce)   H' = OMAC_K(1 ‖ header)   C = CTR_K(N', M)
//! C' = OMAC_K(2 ‖ C)       tag = N' ^ H' ^ C'
//! ```
//!
//! where `t ‖ X` puts the block `0…0‖t` in front of X. The `eax` crate sets
//! up AES and three CMACs from the key for every message, which costs more
//! than a short message's own blocks. An [`EaxKey`] keeps, per key: the AES
//! key schedule, CMAC's subkeys K1 and K2, each OMAC's chaining value after
//! its constant first block, and each OMAC of an empty string (so `H'` of
//! the empty header the wire format uses). A message then costs only its own
//! blocks, all run inside one call into the `aes` crate's backend.
//!
//! Which crate does what: `aes` runs every AES block (its key schedule, its
//! single-block and parallel encryption; no round is written here); `dbl`
//! doubles the subkeys as `cmac` does; `subtle` compares tags. This module
//! only chains those blocks: the CBC-MAC chain (xor, encrypt, the last
//! block's padding and subkey) and the CTR counter blocks. Its output is the
//! `eax` and `cmac` crates', bit for bit, which `tests/eax_key.rs` and the
//! `eax_key` fuzz target check on every length, key size and vector.
//!
//! It never allocates, never decrypts before the tag verifies, and never
//! says why a tag failed.

use std::fmt;

use aes::cipher::consts::U16;
use aes::cipher::{
    Array, BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser,
    KeyInit, ParBlocks, typenum::Unsigned,
};
use aes::{Aes128Enc, Aes192Enc, Aes256Enc};
use dbl::Dbl as _;
use subtle::ConstantTimeEq as _;

/// One AES block.
type Block = Array<u8, U16>;

const BLOCK: usize = 16;
/// Length of the nonce at the front of a frame.
pub const NONCE_LEN: usize = 16;
/// Length of the tag after the nonce.
pub const TAG_LEN: usize = 16;
/// Bytes a frame (`nonce ‖ tag ‖ ciphertext`) carries besides the ciphertext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// The OMAC prefixes EAX uses: `t` in `0…0‖t`.
const NONCE: usize = 0;
const HEADER: usize = 1;
const CIPHERTEXT: usize = 2;

/// A key that is not 16, 24 or 32 bytes long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidKeyLength {
    /// The length that was given.
    pub len: usize,
}

impl fmt::Display for InvalidKeyLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an AES key is 16, 24 or 32 bytes, not {}", self.len)
    }
}

impl std::error::Error for InvalidKeyLength {}

/// A tag that does not verify: the wrong key, or a changed frame. Opaque on
/// purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagError;

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tag mismatch")
    }
}

impl std::error::Error for TagError {}

/// The expanded AES key, one variant per key size (encryption only: EAX
/// never runs AES backwards).
#[derive(Clone)]
enum Aes {
    Aes128(Aes128Enc),
    Aes192(Aes192Enc),
    Aes256(Aes256Enc),
}

impl Aes {
    /// Runs `job` with the `aes` crate's backend for this key.
    fn run(&self, job: impl BlockCipherEncClosure<BlockSize = U16>) {
        match self {
            Aes::Aes128(aes) => aes.encrypt_with_backend(job),
            Aes::Aes192(aes) => aes.encrypt_with_backend(job),
            Aes::Aes256(aes) => aes.encrypt_with_backend(job),
        }
    }

    fn encrypt(&self, block: &mut Block) {
        match self {
            Aes::Aes128(aes) => aes.encrypt_block(block),
            Aes::Aes192(aes) => aes.encrypt_block(block),
            Aes::Aes256(aes) => aes.encrypt_block(block),
        }
    }
}

/// What CMAC and EAX compute from the key alone.
#[derive(Clone)]
struct Precomputed {
    /// CMAC's subkeys: K1 finishes a complete last block, K2 a padded one.
    k1: Block,
    k2: Block,
    /// `E(0…0‖t)`: OMAC_t's chaining value after its first block, when more
    /// data follows.
    after_prefix: [Block; 3],
    /// `OMAC_t` of the empty string: the first block is then the last one.
    of_empty: [Block; 3],
}

/// One AES key ready for EAX with a 16-byte tag, as PyCryptodome's
/// `AES.MODE_EAX` and the `eax` crate compute it.
#[derive(Clone)]
pub struct EaxKey {
    aes: Aes,
    pre: Precomputed,
}

impl fmt::Debug for EaxKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EaxKey { .. }")
    }
}

impl EaxKey {
    /// Expands a 16-, 24- or 32-byte key (AES-128, -192 or -256).
    pub fn new(key: &[u8]) -> Result<EaxKey, InvalidKeyLength> {
        if let Ok(key) = key.try_into() {
            Ok(EaxKey::aes128(key))
        } else if let Ok(key) = key.try_into() {
            Ok(EaxKey::aes192(key))
        } else if let Ok(key) = key.try_into() {
            Ok(EaxKey::aes256(key))
        } else {
            Err(InvalidKeyLength { len: key.len() })
        }
    }

    /// Expands an AES-128 key: nothing to check, nothing to fail.
    pub fn aes128(key: &[u8; 16]) -> EaxKey {
        EaxKey::expand(Aes::Aes128(Aes128Enc::new(key.into())))
    }

    /// Expands an AES-192 key.
    pub fn aes192(key: &[u8; 24]) -> EaxKey {
        EaxKey::expand(Aes::Aes192(Aes192Enc::new(key.into())))
    }

    /// Expands an AES-256 key.
    pub fn aes256(key: &[u8; 32]) -> EaxKey {
        EaxKey::expand(Aes::Aes256(Aes256Enc::new(key.into())))
    }

    /// Computes what depends on the key alone from its AES key schedule.
    fn expand(aes: Aes) -> EaxKey {
        let encrypt = |mut block: Block| {
            aes.encrypt(&mut block);
            block
        };
        let k1 = encrypt(Block::default()).dbl();
        let k2 = k1.dbl();
        let prefix = |t: usize| {
            let mut block = Block::default();
            block[BLOCK - 1] = t as u8;
            block
        };
        let after_prefix = [NONCE, HEADER, CIPHERTEXT].map(|t| encrypt(prefix(t)));
        let of_empty = [NONCE, HEADER, CIPHERTEXT].map(|t| encrypt(xor(prefix(t), &k1)));
        EaxKey {
            aes,
            pre: Precomputed {
                k1,
                k2,
                after_prefix,
                of_empty,
            },
        }
    }

    /// Seals frames laid end to end in `frames`, in place: frame `i` is
    /// `nonce ‖ tag ‖ body` with a body of `body_lens[i]` bytes, its nonce
    /// and plaintext body filled in by the caller; each body is encrypted
    /// and each tag written, exactly as [`EaxKey::seal_in_place_detached`]
    /// would, one frame at a time. Bytes after the last frame are left
    /// alone; a length that runs past the end of `frames` stops there.
    ///
    /// Faster than one frame at a time: the frames are taken [`LANES`] at a
    /// time, and their CBC-MAC chains, each a run of dependent AES blocks,
    /// advance side by side, one block of every chain in one call, so the
    /// CPU overlaps the blocks of different frames.
    pub fn seal_frames_in_place(&self, frames: &mut [u8], body_lens: &[usize]) {
        self.aes.run(SealFramesJob {
            pre: &self.pre,
            frames,
            body_lens,
        });
    }

    /// Encrypts `buf` in place under `nonce`, with no header, and returns
    /// the tag.
    pub fn seal_in_place_detached(&self, nonce: &[u8; NONCE_LEN], buf: &mut [u8]) -> [u8; TAG_LEN] {
        self.seal_with_header(nonce, &[], buf)
    }

    /// Checks `tag` over the ciphertext in `buf` and, only if it verifies,
    /// decrypts `buf` in place. On failure `buf` is left as it was.
    pub fn open_in_place_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), TagError> {
        self.open_with_header(nonce, &[], buf, tag)
    }

    /// General EAX sealing: a nonce of any length and an associated header.
    /// The wire format uses neither; the published vectors do.
    pub fn seal_with_header(&self, nonce: &[u8], header: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let mut tag = Block::default();
        self.aes.run(SealJob {
            pre: &self.pre,
            nonce,
            header,
            buf,
            tag: &mut tag,
        });
        tag.into()
    }

    /// General EAX opening, the counterpart of [`EaxKey::seal_with_header`]:
    /// decrypts `buf` in place only if `tag` verifies.
    pub fn open_with_header(
        &self,
        nonce: &[u8],
        header: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), TagError> {
        let mut verified = Verified::default();
        self.aes.run(VerifyJob {
            pre: &self.pre,
            nonce,
            header,
            ciphertext: buf,
            tag,
            out: &mut verified,
        });
        if !verified.ok {
            return Err(TagError);
        }
        self.aes.run(CtrJob {
            counter: verified.counter,
            buf,
        });
        Ok(())
    }

    /// Whether the decoded frame `nonce(16) ‖ tag(16) ‖ ciphertext` carries a
    /// tag that verifies under this key. Decrypts nothing.
    pub fn verifies(&self, frame: &[u8]) -> bool {
        let Some((nonce, tag, ciphertext)) = split_frame(frame) else {
            return false;
        };
        let mut verified = Verified::default();
        self.aes.run(VerifyJob {
            pre: &self.pre,
            nonce,
            header: &[],
            ciphertext,
            tag,
            out: &mut verified,
        });
        verified.ok
    }

    /// The position, among `keys`, of the first key under which the
    /// decoded frame `nonce(16) ‖ tag(16) ‖ ciphertext` verifies; `None` if
    /// none does. Decrypts nothing.
    ///
    /// What [`EaxKey::verifies`] on each key in turn answers, faster: every
    /// key's chain runs over the same ciphertext blocks, so the keys are
    /// taken [`LANES`] at a time and each block goes through all of their
    /// chains before the next, independent blocks that the CPU overlaps.
    /// A members relay finds who sent a first frame this way.
    pub fn first_verifying<'k>(
        keys: impl IntoIterator<Item = &'k EaxKey>,
        frame: &[u8],
    ) -> Option<usize> {
        let (nonce, tag, ciphertext) = split_frame(frame)?;
        let tag = Block::from(*tag);
        let body_len = ciphertext.len().saturating_sub(1) / BLOCK * BLOCK;
        let (body, last) = ciphertext.split_at(body_len);
        let mut keys = keys.into_iter().fuse();
        let mut tried = 0;
        loop {
            let group: [Option<&EaxKey>; LANES] = std::array::from_fn(|_| keys.next());
            let count = group.iter().flatten().count();
            if count == 0 {
                return None;
            }
            let group = &group[..count];
            // Each key's C' must come to `tag ^ N' ^ H'`.
            let mut wanted = [Block::default(); LANES];
            let mut state = [Block::default(); LANES];
            for (i, key) in group.iter().flatten().enumerate() {
                let pre = &key.pre;
                wanted[i] = xor(xor(pre.after_prefix[NONCE], nonce), &pre.k1);
                key.aes.encrypt(&mut wanted[i]);
                wanted[i] = xor(xor(wanted[i], &tag), &pre.of_empty[HEADER]);
                state[i] = pre.after_prefix[CIPHERTEXT];
            }
            if ciphertext.is_empty() {
                for (i, key) in group.iter().flatten().enumerate() {
                    state[i] = key.pre.of_empty[CIPHERTEXT];
                }
            } else {
                for block in body.chunks_exact(BLOCK) {
                    for (i, key) in group.iter().flatten().enumerate() {
                        state[i] = xor(state[i], block);
                        key.aes.encrypt(&mut state[i]);
                    }
                }
                for (i, key) in group.iter().flatten().enumerate() {
                    state[i] = last_block(&key.pre, state[i], last);
                    key.aes.encrypt(&mut state[i]);
                }
            }
            let found = (0..count).find(|&i| equal(&state[i], &wanted[i]));
            if let Some(i) = found {
                return Some(tried + i);
            }
            tried += count;
        }
    }

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

    /// Plain AES-CMAC (RFC 4493) of `data`: the chain EAX's OMACs use,
    /// exposed so that it can be checked against RFC 4493 and `cmac`.
    pub fn cmac(&self, data: &[u8]) -> [u8; 16] {
        let mut mac = Block::default();
        self.aes.run(CmacJob {
            pre: &self.pre,
            data,
            mac: &mut mac,
        });
        mac.into()
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

/// Splits a decoded frame into nonce, tag and ciphertext.
fn split_frame(frame: &[u8]) -> Option<(&[u8], &[u8; TAG_LEN], &[u8])> {
    let (nonce, rest) = frame.split_at_checked(NONCE_LEN)?;
    let (tag, ciphertext) = rest.split_first_chunk::<TAG_LEN>()?;
    Some((nonce, tag, ciphertext))
}

/// `a ^ b`.
fn xor(mut a: Block, b: &[u8]) -> Block {
    for (byte, other) in a.iter_mut().zip(b) {
        *byte ^= other;
    }
    a
}

/// Whether two blocks are equal, in constant time. The 16 bytes' difference
/// is folded into one word first: `subtle` then makes one comparison, where
/// its slice comparison would make sixteen, each behind an optimisation
/// barrier.
fn equal(a: &Block, b: &Block) -> bool {
    let diff = u128::from_ne_bytes(xor(*a, b).into());
    let folded = diff as u64 | (diff >> 64) as u64;
    bool::from(folded.ct_eq(&0))
}

/// What CMAC's chain encrypts for the message's last block `last` (at most
/// 16 bytes; an empty one is all padding) after the chaining value
/// `state`: 10* padding and K2 unless it is complete, K1 if it is.
fn last_block(pre: &Precomputed, state: Block, last: &[u8]) -> Block {
    let mut state = xor(state, last);
    let subkey = if let Some(pad) = state.get_mut(last.len()) {
        *pad ^= 0x80;
        &pre.k2
    } else {
        &pre.k1
    };
    xor(state, subkey)
}

/// The CBC-MAC chain of CMAC over one AES backend.
struct Chain<'a, B> {
    aes: &'a B,
    pre: &'a Precomputed,
}

impl<B: BlockCipherEncBackend<BlockSize = U16>> Chain<'_, B> {
    /// Absorbs one complete block that is not the message's last.
    fn absorb(&self, state: Block, block: &[u8]) -> Block {
        let mut state = xor(state, block);
        self.aes.encrypt_block_inplace(&mut state);
        state
    }

    /// Finishes the chain with its last block `last` (at most 16 bytes; an
    /// empty one is all padding): 10* padding and K2 unless it is complete,
    /// K1 if it is.
    fn finish(&self, state: Block, last: &[u8]) -> Block {
        let mut state = last_block(self.pre, state, last);
        self.aes.encrypt_block_inplace(&mut state);
        state
    }

    /// CMAC over `data`, from the chaining value `state` of what came before
    /// it.
    fn mac_from(&self, mut state: Block, data: &[u8]) -> Block {
        let body_len = data.len().saturating_sub(1) / BLOCK * BLOCK;
        let (body, last) = data.split_at(body_len);
        for block in body.chunks_exact(BLOCK) {
            state = self.absorb(state, block);
        }
        self.finish(state, last)
    }

    /// `OMAC_t(data)`: CMAC over the block `0…0‖t` and `data`.
    fn omac(&self, t: usize, data: &[u8]) -> Block {
        if data.is_empty() {
            self.pre.of_empty[t]
        } else {
            self.mac_from(self.pre.after_prefix[t], data)
        }
    }
}

/// EAX's CTR: XORs into `buf` the keystream from the 128-bit big-endian
/// counter `counter`, the backend's parallel blocks at a time.
fn ctr<B: BlockCipherEncBackend<BlockSize = U16>>(aes: &B, counter: Block, buf: &mut [u8]) {
    let mut counter = u128::from_be_bytes(counter.into());
    let mut next = || {
        let block = Block::from(counter.to_be_bytes());
        counter = counter.wrapping_add(1);
        block
    };
    let mut chunks = buf.chunks_exact_mut(BLOCK * B::ParBlocksSize::USIZE);
    for chunk in &mut chunks {
        let mut keystream = ParBlocks::<B>::from_fn(|_| next());
        aes.encrypt_par_blocks_inplace(&mut keystream);
        xor_keystream(chunk, &keystream);
    }
    // Fewer than the backend's parallel blocks are left, the last maybe a
    // partial one: eight at a time, independent blocks that the CPU
    // overlaps. (Eight blocks are a whole parallel call on a backend of
    // eight, the AES-NI one: never its tail, which takes fewer.)
    for chunk in chunks.into_remainder().chunks_mut(8 * BLOCK) {
        let mut keystream: [Block; 8] = std::array::from_fn(|_| next());
        let keystream = &mut keystream[..chunk.len().div_ceil(BLOCK)];
        encrypt_all(aes, keystream);
        xor_keystream(chunk, keystream);
    }
}

fn xor_keystream(chunk: &mut [u8], keystream: &[Block]) {
    for (piece, key) in chunk.chunks_mut(BLOCK).zip(keystream) {
        for (byte, key) in piece.iter_mut().zip(key) {
            *byte ^= key;
        }
    }
}

/// Implements `BlockSizeUser` for a job run inside the AES backend.
macro_rules! aes_job {
    ($job:ident $(<$($param:ident),*>)?) => {
        impl<'a $(, $($param),*)?> BlockSizeUser for $job<'a $(, $($param),*)?> {
            type BlockSize = U16;
        }
    };
}

/// Seals: `N'`, CTR from it, then `C'` over the ciphertext.
struct SealJob<'a> {
    pre: &'a Precomputed,
    nonce: &'a [u8],
    header: &'a [u8],
    buf: &'a mut [u8],
    tag: &'a mut Block,
}
aes_job!(SealJob);

impl BlockCipherEncClosure for SealJob<'_> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, aes: &B) {
        let chain = Chain { aes, pre: self.pre };
        let n = chain.omac(NONCE, self.nonce);
        let h = chain.omac(HEADER, self.header);
        ctr(aes, n, self.buf);
        let c = chain.omac(CIPHERTEXT, self.buf);
        *self.tag = xor(xor(n, &h), &c);
    }
}

/// Frames sealed side by side: at most this many CBC-MAC chains advance
/// together. Eight blocks in flight keep AES-NI's pipeline full.
pub const LANES: usize = 8;

/// Seals frames laid end to end ([`EaxKey::seal_frames_in_place`]).
struct SealFramesJob<'a> {
    pre: &'a Precomputed,
    frames: &'a mut [u8],
    body_lens: &'a [usize],
}
aes_job!(SealFramesJob);

impl BlockCipherEncClosure for SealFramesJob<'_> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, aes: &B) {
        let chain = Chain { aes, pre: self.pre };
        let mut rest = self.frames;
        for lens in self.body_lens.chunks(LANES) {
            let mut group: [&mut [u8]; LANES] = Default::default();
            let mut count = 0;
            for (slot, &len) in group.iter_mut().zip(lens) {
                let Some((frame, after)) =
                    std::mem::take(&mut rest).split_at_mut_checked(OVERHEAD + len)
                else {
                    break;
                };
                *slot = frame;
                rest = after;
                count += 1;
            }
            chain.seal_group(&mut group[..count]);
            if count < lens.len() {
                return;
            }
        }
    }
}

impl<B: BlockCipherEncBackend<BlockSize = U16>> Chain<'_, B> {
    /// Seals up to [`LANES`] frames `nonce ‖ tag ‖ body` at once: their
    /// `N'` in one call, CTR frame by frame (each already runs its blocks
    /// in parallel), then their `C'` chains side by side.
    fn seal_group(&self, frames: &mut [&mut [u8]]) {
        let mut n = [Block::default(); LANES];
        let mut c = [Block::default(); LANES];
        for (n, frame) in n.iter_mut().zip(frames.iter()) {
            // The nonce is one complete block after the prefix: K1.
            *n = xor(
                xor(self.pre.after_prefix[NONCE], &frame[..NONCE_LEN]),
                &self.pre.k1,
            );
        }
        encrypt_all(self.aes, &mut n[..frames.len()]);
        for (n, frame) in n.iter().zip(frames.iter_mut()) {
            ctr(self.aes, *n, &mut frame[OVERHEAD..]);
        }
        let bodies: [&[u8]; LANES] = std::array::from_fn(|i| match frames.get(i) {
            Some(frame) => &frame[OVERHEAD..],
            None => &[],
        });
        self.omac_side_by_side(CIPHERTEXT, &bodies[..frames.len()], &mut c);
        for ((frame, n), c) in frames.iter_mut().zip(&n).zip(&c) {
            let tag = xor(xor(*n, &self.pre.of_empty[HEADER]), c);
            frame[NONCE_LEN..OVERHEAD].copy_from_slice(&tag);
        }
    }

    /// `OMAC_t` of each of up to [`LANES`] messages into `macs`, the chains
    /// advancing together: each step gathers the next block of every chain
    /// not yet finished (a middle block, or the last with its padding and
    /// subkey) and encrypts them in one call.
    fn omac_side_by_side(&self, t: usize, data: &[&[u8]], macs: &mut [Block; LANES]) {
        let mut left: [&[u8]; LANES] = [&[]; LANES];
        let mut open = [false; LANES];
        for (i, message) in data.iter().enumerate() {
            if message.is_empty() {
                macs[i] = self.pre.of_empty[t];
            } else {
                macs[i] = self.pre.after_prefix[t];
                left[i] = message;
                open[i] = true;
            }
        }
        let mut step = [Block::default(); LANES];
        let mut lane_of = [0usize; LANES];
        loop {
            let mut count = 0;
            for lane in 0..data.len() {
                if !open[lane] {
                    continue;
                }
                let message = left[lane];
                step[count] = if message.len() > BLOCK {
                    let (block, after) = message.split_at(BLOCK);
                    left[lane] = after;
                    xor(macs[lane], block)
                } else {
                    open[lane] = false;
                    last_block(self.pre, macs[lane], message)
                };
                lane_of[count] = lane;
                count += 1;
            }
            if count == 0 {
                return;
            }
            encrypt_all(self.aes, &mut step[..count]);
            for (block, &lane) in step.iter().zip(&lane_of[..count]) {
                macs[lane] = *block;
            }
        }
    }
}

/// Encrypts `blocks` in place, independent of each other: the backend's
/// parallel blocks at a time, then the rest, which the CPU overlaps.
fn encrypt_all<B: BlockCipherEncBackend<BlockSize = U16>>(aes: &B, blocks: &mut [Block]) {
    let mut chunks = blocks.chunks_exact_mut(B::ParBlocksSize::USIZE);
    for chunk in &mut chunks {
        if let Ok(par) = <&mut ParBlocks<B>>::try_from(chunk) {
            aes.encrypt_par_blocks_inplace(par);
        }
    }
    aes.encrypt_tail_blocks_inplace(chunks.into_remainder());
}

/// What verifying found: whether the tag matched, and `N'` (CTR's first
/// counter block) for decrypting if it did.
#[derive(Default)]
struct Verified {
    ok: bool,
    counter: Block,
}

/// Verifies a tag; decrypts nothing.
struct VerifyJob<'a> {
    pre: &'a Precomputed,
    nonce: &'a [u8],
    header: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8; TAG_LEN],
    out: &'a mut Verified,
}
aes_job!(VerifyJob);

impl BlockCipherEncClosure for VerifyJob<'_> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, aes: &B) {
        let chain = Chain { aes, pre: self.pre };
        let n = chain.omac(NONCE, self.nonce);
        let h = chain.omac(HEADER, self.header);
        let c = chain.omac(CIPHERTEXT, self.ciphertext);
        let expected = xor(xor(n, &h), &c);
        self.out.ok = equal(&expected, &Block::from(*self.tag));
        self.out.counter = n;
    }
}

/// CTR alone (decryption, after the tag verified).
struct CtrJob<'a> {
    counter: Block,
    buf: &'a mut [u8],
}
aes_job!(CtrJob);

impl BlockCipherEncClosure for CtrJob<'_> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, aes: &B) {
        ctr(aes, self.counter, self.buf);
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

/// Plain CMAC.
struct CmacJob<'a> {
    pre: &'a Precomputed,
    data: &'a [u8],
    mac: &'a mut Block,
}
aes_job!(CmacJob);

impl BlockCipherEncClosure for CmacJob<'_> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, aes: &B) {
        let chain = Chain { aes, pre: self.pre };
        *self.mac = chain.mac_from(Block::default(), self.data);
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
