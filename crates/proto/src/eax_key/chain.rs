//! The blocks every EAX job is built from, over one AES backend: the
//! CBC-MAC chain of CMAC (and so of EAX's three OMACs), EAX's CTR keystream,
//! the xor of two blocks and their constant-time comparison.
//!
//! Everything here runs inside a job the `aes` crate's backend calls (each
//! job a struct made a `BlockSizeUser` by `aes_job!`); nothing here holds a
//! key, allocates, or knows what a frame is.

use aes::cipher::consts::U16;
use aes::cipher::{Array, BlockCipherEncBackend, ParBlocks, typenum::Unsigned};
use subtle::ConstantTimeEq as _;

use super::Precomputed;

/// One AES block.
pub(super) type Block = Array<u8, U16>;

/// The length of an AES block.
pub(super) const BLOCK: usize = 16;

/// `a ^ b`.
pub(super) fn xor(mut a: Block, b: &[u8]) -> Block {
    for (byte, other) in a.iter_mut().zip(b) {
        *byte ^= other;
    }
    a
}

/// A block as one 128-bit word (little-endian): a padded last block is
/// made as one ([`padded_last`]), and xored as one, where xoring its bytes
/// would have the compiler write them one by one.
fn block_word(block: &Block) -> u128 {
    u128::from_le_bytes((*block).into())
}

/// Writes `word` into `block` ([`block_word`]'s inverse) as two 8-byte
/// halves, in memory: a block returned from a word, the compiler builds
/// byte by byte in a vector register, sixteen moves and shuffles.
fn put_word(block: &mut Block, word: u128) {
    let (low, high) = block.split_at_mut(BLOCK / 2);
    low.copy_from_slice(&(word as u64).to_le_bytes());
    high.copy_from_slice(&((word >> 64) as u64).to_le_bytes());
}

/// Whether two blocks are equal, in constant time. The 16 bytes' difference
/// is folded into one word first: `subtle` then makes one comparison, where
/// its slice comparison would make sixteen, each behind an optimisation
/// barrier.
pub(super) fn equal(a: &Block, b: &Block) -> bool {
    let diff = u128::from_ne_bytes(xor(*a, b).into());
    let folded = diff as u64 | (diff >> 64) as u64;
    bool::from(folded.ct_eq(&0))
}

/// Turns the chaining value `state` into what CMAC's chain encrypts for a
/// message's last block: xored with the last `len` bytes of `data` (at
/// most 16; none is all padding), with K1 if they fill a block, with 10*
/// padding and K2 if not ([`padded_last`]).
///
/// Always inlined: called once a chain inside the side-by-side loops, a
/// call out of them would have the compiler spill and reload every vector
/// register holding the VAES backends' round keys around it (measured:
/// 0.83x the seal's time with it inlined).
#[inline(always)]
pub(super) fn last_block(pre: &Precomputed, state: &mut Block, data: &[u8], len: usize) {
    match data.last_chunk::<BLOCK>() {
        Some(tail) if len >= BLOCK => *state = xor(xor(*state, tail), &pre.k1),
        _ => {
            let word = block_word(state) ^ padded_last(data, len) ^ block_word(&pre.k2);
            put_word(state, word);
        }
    }
}

/// The last `len` bytes of `data` (at most 16) as one block, padded with
/// 10* unless they fill it, as a word ([`block_word`]).
///
/// Where `data` holds 16 bytes, the block is made in registers from the 16
/// that end it, shifted: a copy byte by byte, read back as one block, would
/// stall the CPU on a store it cannot forward to the load.
fn padded_last(data: &[u8], len: usize) -> u128 {
    let len = len.min(BLOCK).min(data.len());
    let mut word = match data.last_chunk::<BLOCK>() {
        // Little-endian: the last `len` bytes move to the bottom.
        Some(tail) => u128::from_le_bytes(*tail)
            .checked_shr(8 * (BLOCK - len) as u32)
            .unwrap_or(0),
        // A byte at a time: a copy of `len` bytes would be a call to
        // `memcpy`, around which the compiler spills and reloads every
        // vector register the VAES backends keep their round keys in.
        None => data[data.len() - len..]
            .iter()
            .enumerate()
            .fold(0, |word, (i, &byte)| word | u128::from(byte) << (8 * i)),
    };
    if len < BLOCK {
        word |= 0x80 << (8 * len);
    }
    word
}

/// The CBC-MAC chain of CMAC over one AES backend.
pub(super) struct Chain<'a, B> {
    pub(super) aes: &'a B,
    pub(super) pre: &'a Precomputed,
}

impl<B: BlockCipherEncBackend<BlockSize = U16>> Chain<'_, B> {
    /// Absorbs one complete block that is not the message's last.
    pub(super) fn absorb(&self, state: Block, block: &[u8]) -> Block {
        let mut state = xor(state, block);
        self.aes.encrypt_block_inplace(&mut state);
        state
    }

    /// Finishes the chain with its last block `last` (at most 16 bytes; an
    /// empty one is all padding): 10* padding and K2 unless it is complete,
    /// K1 if it is.
    pub(super) fn finish(&self, mut state: Block, last: &[u8]) -> Block {
        last_block(self.pre, &mut state, last, last.len());
        self.aes.encrypt_block_inplace(&mut state);
        state
    }

    /// CMAC over `data`, from the chaining value `state` of what came before
    /// it.
    pub(super) fn mac_from(&self, mut state: Block, data: &[u8]) -> Block {
        let body_len = data.len().saturating_sub(1) / BLOCK * BLOCK;
        let (body, last) = data.split_at(body_len);
        for block in body.chunks_exact(BLOCK) {
            state = self.absorb(state, block);
        }
        last_block(self.pre, &mut state, data, last.len());
        self.aes.encrypt_block_inplace(&mut state);
        state
    }

    /// `OMAC_t(data)`: CMAC over the block `0…0‖t` and `data`.
    pub(super) fn omac(&self, t: usize, data: &[u8]) -> Block {
        if data.is_empty() {
            self.pre.of_empty[t]
        } else {
            self.mac_from(self.pre.after_prefix[t], data)
        }
    }
}

/// EAX's CTR: XORs into `buf` the keystream from the 128-bit big-endian
/// counter `counter`, the backend's parallel blocks at a time.
pub(super) fn ctr<B: BlockCipherEncBackend<BlockSize = U16>>(
    aes: &B,
    counter: Block,
    buf: &mut [u8],
) {
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

/// XORs `keystream` into `chunk`, block by block (the last maybe partial):
/// a whole block as one 128-bit word.
pub(super) fn xor_keystream(chunk: &mut [u8], keystream: &[Block]) {
    let mut pieces = chunk.chunks_exact_mut(BLOCK);
    let mut keys = keystream.iter();
    for (piece, key) in (&mut pieces).zip(&mut keys) {
        if let Ok(piece) = <&mut [u8; BLOCK]>::try_from(piece) {
            let key: [u8; BLOCK] = (*key).into();
            *piece = (u128::from_ne_bytes(*piece) ^ u128::from_ne_bytes(key)).to_ne_bytes();
        }
    }
    if let Some(key) = keys.next() {
        // At most 15 bytes: 8, 4, 2 and 1 at a time, each one operation.
        let tail = pieces.into_remainder();
        let mut at = 0;
        xor_piece::<8>(tail, key, &mut at);
        xor_piece::<4>(tail, key, &mut at);
        xor_piece::<2>(tail, key, &mut at);
        xor_piece::<1>(tail, key, &mut at);
    }
}

/// XORs `key[at..at + W]` into `chunk[at..at + W]` and moves `at` past
/// them, if `chunk` holds that many bytes from `at`.
fn xor_piece<const W: usize>(chunk: &mut [u8], key: &Block, at: &mut usize) {
    if let (Some(piece), Some(key)) = (chunk.get_mut(*at..*at + W), key.get(*at..*at + W)) {
        for (byte, key) in piece.iter_mut().zip(key) {
            *byte ^= key;
        }
        *at += W;
    }
}

/// Encrypts `blocks` in place, independent of each other: the backend's
/// parallel blocks at a time, then the rest, which the CPU overlaps.
pub(super) fn encrypt_all<B: BlockCipherEncBackend<BlockSize = U16>>(
    aes: &B,
    blocks: &mut [Block],
) {
    let mut chunks = blocks.chunks_exact_mut(B::ParBlocksSize::USIZE);
    for chunk in &mut chunks {
        if let Ok(par) = <&mut ParBlocks<B>>::try_from(chunk) {
            aes.encrypt_par_blocks_inplace(par);
        }
    }
    aes.encrypt_tail_blocks_inplace(chunks.into_remainder());
}

/// Implements `BlockSizeUser` for a job run inside the AES backend. Its
/// paths are whole, so a module using it needs no imports for it.
macro_rules! aes_job {
    ($job:ident $(<$($param:ident),*>)?) => {
        impl<'a $(, $($param),*)?> aes::cipher::BlockSizeUser for $job<'a $(, $($param),*)?> {
            type BlockSize = aes::cipher::consts::U16;
        }
    };
}
pub(super) use aes_job;
