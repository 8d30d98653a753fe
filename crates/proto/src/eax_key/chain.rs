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

/// Whether two blocks are equal, in constant time. The 16 bytes' difference
/// is folded into one word first: `subtle` then makes one comparison, where
/// its slice comparison would make sixteen, each behind an optimisation
/// barrier.
pub(super) fn equal(a: &Block, b: &Block) -> bool {
    let diff = u128::from_ne_bytes(xor(*a, b).into());
    let folded = diff as u64 | (diff >> 64) as u64;
    bool::from(folded.ct_eq(&0))
}

/// What CMAC's chain encrypts for the message's last block `last` (at most
/// 16 bytes; an empty one is all padding) after the chaining value
/// `state`: 10* padding and K2 unless it is complete, K1 if it is.
pub(super) fn last_block(pre: &Precomputed, state: Block, last: &[u8]) -> Block {
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
    pub(super) fn finish(&self, state: Block, last: &[u8]) -> Block {
        let mut state = last_block(self.pre, state, last);
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
        self.finish(state, last)
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
        for (byte, key) in pieces.into_remainder().iter_mut().zip(key) {
            *byte ^= key;
        }
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
