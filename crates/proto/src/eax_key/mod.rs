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
//! `eax` and `cmac` crates', bit for bit, which `tests/proto/eax_key/` and
//! the `eax_key` fuzz target check on every length, key size and vector.
//!
//! This file owns the key (its expansion, what it precomputes) and one
//! frame at a time: seal, open, verify, and plain CMAC. The rest is split
//! by concern:
//! - `chain`: the blocks every job is built from (the CBC-MAC chain, CTR,
//!   the xor and the constant-time compare);
//! - `side_by_side`: many chains at once, for speed: frames sealed side by
//!   side ([`EaxKey::seal_frames_in_place`]) and the first of many keys
//!   that verifies a frame ([`EaxKey::first_verifying`]);
//! - `scan`: where a frame ends when frames are joined without separators
//!   ([`EaxKey::verified_prefix_len`], [`TagScan`]).
//!
//! The frame's lengths are [`crate::wire`]'s: this module builds on them.
//! It never allocates, never decrypts before the tag verifies, and never
//! says why a tag failed.
//!
//! ```
//! use eaxchat_proto::eax_key::{EaxKey, TagError};
//!
//! let key = EaxKey::new(&[0x42; 16])?;
//! let nonce = [7; 16];
//! let mut buf = *b"hello";
//! let tag = key.seal_in_place_detached(&nonce, &mut buf);
//! assert_ne!(&buf, b"hello");
//!
//! let mut wrong = tag;
//! wrong[0] ^= 1;
//! assert_eq!(key.open_in_place_detached(&nonce, &mut buf, &wrong), Err(TagError));
//! key.open_in_place_detached(&nonce, &mut buf, &tag)?;
//! assert_eq!(&buf, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod chain;
mod scan;
mod side_by_side;

pub use scan::TagScan;
pub use side_by_side::{LANES, SEAL_LANES, WIDE_LANES};

use std::fmt;

use aes::cipher::consts::U16;
use aes::cipher::{BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, KeyInit};
use aes::{Aes128Enc, Aes192Enc, Aes256Enc};
use dbl::Dbl as _;
use zeroize::Zeroize as _;

use crate::wire::{NONCE_LEN, TAG_LEN};
use chain::{BLOCK, Block, Chain, aes_job, ctr, equal, xor};

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

/// What CMAC and EAX compute from the key alone: secrets like the key
/// itself, wiped from memory on drop.
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

impl Drop for Precomputed {
    fn drop(&mut self) {
        let blocks = [&mut self.k1, &mut self.k2]
            .into_iter()
            .chain(&mut self.after_prefix)
            .chain(&mut self.of_empty);
        for block in blocks {
            block.as_mut_slice().zeroize();
        }
    }
}

/// One AES key ready for EAX with a 16-byte tag, as PyCryptodome's
/// `AES.MODE_EAX` and the `eax` crate compute it.
///
/// Its key schedule and everything computed from the key are wiped from
/// memory when it is dropped (the `aes` crate's `zeroize` feature, and
/// [`zeroize`] for the rest). A clone is a second copy of the key, wiped
/// on its own drop; it holds no nonce state.
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

/// Splits a decoded frame into nonce, tag and ciphertext.
fn split_frame(frame: &[u8]) -> Option<(&[u8], &[u8; TAG_LEN], &[u8])> {
    let (nonce, rest) = frame.split_at_checked(NONCE_LEN)?;
    let (tag, ciphertext) = rest.split_first_chunk::<TAG_LEN>()?;
    Some((nonce, tag, ciphertext))
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
