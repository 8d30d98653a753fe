//! EAX (Bellare, Rogaway and Wagner, 2004) over one AES key, with the work
//! that depends only on the key done once.
//!
//! EAX is OMAC (CMAC) and CTR under one block-cipher key:
//!
//! ```text
//! N' = OMAC_K(0 ‖ nonce)   H' = OMAC_K(1 ‖ header)   C = CTR_K(N', M)
//! C' = OMAC_K(2 ‖ C)       tag = N' ^ H' ^ C'
//! ```
//!
//! where `t ‖ X` prefixes X with the block holding `t`. The `eax` crate
//! computes all of it per message, including three CMAC key setups and an
//! AES key expansion, which for a 64-byte chat message costs more than the
//! encryption itself. Here the AES key schedule, the CMAC subkeys, the
//! chaining value after each of the three prefix blocks, and `H'` for the
//! empty header (the relay never sends one) are computed when the key is
//! loaded; a message then costs only its own blocks. The output is the
//! `eax` crate's, bit for bit: the tests below compare the two on every
//! length, key size and header, next to the known-answer vectors in
//! `tests/vectors.rs`.
//!
//! Only the block cipher comes from a library (RustCrypto `aes`). The tag is
//! compared in constant time and nothing is decrypted before it verifies.

use aes::cipher::{Array, BlockCipherEncrypt, BlockSizeUser, KeyInit, consts::U16};

type Block = Array<u8, U16>;

/// Keystream blocks computed per call of the block cipher: enough for the
/// AES-NI pipeline to stay full.
const CTR_BATCH: usize = 16;

/// An AES key ready for EAX.
#[derive(Clone)]
pub(super) struct EaxKey<C> {
    aes: C,
    /// CMAC's subkeys for a complete and for a padded last block.
    k1: u128,
    k2: u128,
    /// `E_K(t)` for the three prefix blocks: OMAC's chaining value once the
    /// prefix is absorbed, when more data follows it.
    after_prefix: [u128; 3],
    /// `H'` for an empty header.
    empty_header: u128,
}

impl<C> EaxKey<C>
where
    C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16> + KeyInit,
{
    /// Expands `key`; `None` unless it is the cipher's key length.
    pub(super) fn new(key: &[u8]) -> Option<EaxKey<C>> {
        let aes = C::new_from_slice(key).ok()?;
        let encrypt = |value: u128| {
            let mut block = to_block(value);
            aes.encrypt_block(&mut block);
            from_block(&block)
        };
        let k1 = double(encrypt(0));
        let k2 = double(k1);
        let after_prefix = [encrypt(0), encrypt(1), encrypt(2)];
        // The prefix block alone is a complete last block.
        let empty_header = encrypt(1 ^ k1);
        Some(EaxKey {
            aes,
            k1,
            k2,
            after_prefix,
            empty_header,
        })
    }

    /// Encrypts `buf` in place and returns the tag.
    pub(super) fn encrypt(&self, nonce: &[u8], header: &[u8], buf: &mut [u8]) -> [u8; 16] {
        let n = self.omac(0, nonce);
        self.ctr(n, buf);
        let tag = n ^ self.header_mac(header) ^ self.omac(2, buf);
        tag.to_be_bytes()
    }

    /// Verifies `tag` over `buf` and, only if it matches, decrypts `buf` in
    /// place.
    pub(super) fn decrypt(
        &self,
        nonce: &[u8],
        header: &[u8],
        tag: &[u8; 16],
        buf: &mut [u8],
    ) -> Result<(), TagMismatch> {
        let n = self.omac(0, nonce);
        let expected = n ^ self.header_mac(header) ^ self.omac(2, buf);
        // One comparison of the whole difference: no early exit that would
        // tell how many leading bytes were right.
        if expected ^ u128::from_be_bytes(*tag) != 0 {
            return Err(TagMismatch);
        }
        self.ctr(n, buf);
        Ok(())
    }

    fn header_mac(&self, header: &[u8]) -> u128 {
        if header.is_empty() {
            self.empty_header
        } else {
            self.omac(1, header)
        }
    }

    /// `OMAC_K(t ‖ data)`: CMAC over the prefix block and `data`.
    fn omac(&self, t: usize, data: &[u8]) -> u128 {
        if data.is_empty() {
            // The prefix block is the whole, complete message.
            return self.encrypt_value(t as u128 ^ self.k1);
        }
        let mut state = to_block(self.after_prefix[t]);
        // The last block, complete or not, is finished with a subkey.
        let last_len = (data.len() - 1) % 16 + 1;
        let (body, last) = data.split_at(data.len() - last_len);
        for block in body.chunks_exact(16) {
            xor_into(&mut state, block);
            self.aes.encrypt_block(&mut state);
        }
        let mut padded = [0u8; 16];
        padded[..last.len()].copy_from_slice(last);
        let subkey = if last.len() == 16 {
            self.k1
        } else {
            padded[last.len()] = 0x80;
            self.k2
        };
        self.encrypt_value(from_block(&state) ^ u128::from_be_bytes(padded) ^ subkey)
    }

    /// CTR with a 128-bit big-endian counter starting at `counter`.
    fn ctr(&self, mut counter: u128, buf: &mut [u8]) {
        let mut keystream = [Block::default(); CTR_BATCH];
        for chunk in buf.chunks_mut(16 * CTR_BATCH) {
            let blocks = chunk.len().div_ceil(16);
            for block in &mut keystream[..blocks] {
                *block = to_block(counter);
                counter = counter.wrapping_add(1);
            }
            self.aes.encrypt_blocks(&mut keystream[..blocks]);
            for (piece, key) in chunk.chunks_mut(16).zip(&keystream) {
                xor_into(piece, key);
            }
        }
    }

    fn encrypt_value(&self, value: u128) -> u128 {
        let mut block = to_block(value);
        self.aes.encrypt_block(&mut block);
        from_block(&block)
    }
}

/// A tag that did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TagMismatch;

/// Doubling in GF(2^128) as CMAC defines it (big-endian, x^128 + x^7 + x^2
/// + x + 1).
fn double(value: u128) -> u128 {
    (value << 1) ^ if value >> 127 == 1 { 0x87 } else { 0 }
}

fn to_block(value: u128) -> Block {
    Block::from(value.to_be_bytes())
}

fn from_block(block: &Block) -> u128 {
    u128::from_be_bytes((*block).into())
}

/// XORs `other` into the front of `target` (as much as both have).
fn xor_into(target: &mut [u8], other: &[u8]) {
    for (byte, other) in target.iter_mut().zip(other) {
        *byte ^= other;
    }
}

#[cfg(test)]
mod tests {
    use aead::{AeadInOut, KeyInit as _};
    use aes::{Aes128, Aes192, Aes256};

    use super::*;

    /// Our EAX against the `eax` crate for one key type, over every length
    /// up to a few hundred bytes and a few longer ones, with and without a
    /// header; and every tampered tag is rejected with `buf` untouched.
    fn matches_the_eax_crate<C>(key: &[u8])
    where
        C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16> + KeyInit + Clone,
    {
        let ours = EaxKey::<C>::new(key).unwrap();
        let theirs = eax::Eax::<C>::new_from_slice(key).unwrap();
        let lengths = (0..300).chain([511, 512, 513, 4096, 4097, 16 * 1024 + 5]);
        for len in lengths {
            for header in [
                &b""[..],
                b"h",
                b"sixteen byte hdr",
                b"a header over one block",
            ] {
                let nonce: [u8; 16] = std::array::from_fn(|i| (i * 13 + len) as u8);
                let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut ours_ct = plaintext.clone();
                let tag = ours.encrypt(&nonce, header, &mut ours_ct);
                let mut theirs_ct = plaintext.clone();
                let their_tag = theirs
                    .encrypt_inout_detached(&nonce.into(), header, theirs_ct.as_mut_slice().into())
                    .unwrap();
                assert_eq!(ours_ct, theirs_ct, "ciphertext, length {len}");
                assert_eq!(&tag[..], &their_tag[..], "tag, length {len}");

                let mut opened = ours_ct.clone();
                ours.decrypt(&nonce, header, &tag, &mut opened).unwrap();
                assert_eq!(opened, plaintext);
                let mut bad_tag = tag;
                bad_tag[len % 16] ^= 1;
                let mut untouched = ours_ct.clone();
                assert_eq!(
                    ours.decrypt(&nonce, header, &bad_tag, &mut untouched),
                    Err(TagMismatch)
                );
                assert_eq!(untouched, ours_ct, "nothing decrypted on a bad tag");
                if len > 0 {
                    let mut flipped = ours_ct.clone();
                    flipped[len / 2] ^= 0x80;
                    assert!(ours.decrypt(&nonce, header, &tag, &mut flipped).is_err());
                }
            }
        }
    }

    #[test]
    fn matches_the_eax_crate_for_every_key_size() {
        let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(9) ^ 0x5a).collect();
        matches_the_eax_crate::<Aes128>(&key[..16]);
        matches_the_eax_crate::<Aes192>(&key[..24]);
        matches_the_eax_crate::<Aes256>(&key[..32]);
    }

    #[test]
    fn a_key_of_the_wrong_length_is_refused() {
        assert!(EaxKey::<Aes128>::new(&[0; 15]).is_none());
        assert!(EaxKey::<Aes256>::new(&[0; 16]).is_none());
    }

    #[test]
    fn doubling_follows_the_cmac_polynomial() {
        assert_eq!(double(1), 2);
        assert_eq!(double(1 << 127), 0x87);
        assert_eq!(double((1 << 127) | 1), 0x85);
    }
}
