//! `eaxchat_proto::eax_key::EaxKey` against the RustCrypto crates it replaces on
//! the hot path (`eax` for EAX, `cmac` for its CBC-MAC chain) and against
//! the published vectors: the EAX paper's, both Wycheproof editions, and
//! RFC 4493's CMAC examples.
//!
//! Every comparison runs both implementations, so a vector that one of them
//! gets wrong, or a length at which they differ, fails here. This file holds
//! the reference and the inputs both modules share: `single_frame` checks
//! one frame at a time (the vectors, every length, headers, CMAC),
//! `joined_frames` many at once (frames sealed side by side, the first of
//! many keys, and finding where joined frames end), `relay_runs` the
//! shared-key and members relays' runs sealed side by side, and `session_runs` a
//! session's runs of frames sealed side by side under counter nonces, and
//! their lines.

// Test helpers may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod joined_frames;
mod opened_frames;
mod relay_runs;
mod session_runs;
mod single_frame;

use aead::{AeadInOut, KeyInit};
use aes::{Aes128, Aes192, Aes256};
use cmac::{Cmac, Mac};
use eax::Eax;
use eaxchat_proto::eax_key::{SEAL_LANES, WIDE_LANES};
use eaxchat_proto::wire::OVERHEAD;

/// The `eax` and `cmac` crates under one key.
enum Reference {
    Aes128(Eax<Aes128>, Cmac<Aes128>),
    Aes192(Eax<Aes192>, Cmac<Aes192>),
    Aes256(Eax<Aes256>, Cmac<Aes256>),
}

macro_rules! each_size {
    ($reference:expr, |$eax:ident, $cmac:ident| $body:expr) => {
        match $reference {
            Reference::Aes128($eax, $cmac) => $body,
            Reference::Aes192($eax, $cmac) => $body,
            Reference::Aes256($eax, $cmac) => $body,
        }
    };
}

impl Reference {
    fn new(key: &[u8]) -> Reference {
        match key.len() {
            16 => Reference::Aes128(
                Eax::new_from_slice(key).unwrap(),
                <Cmac<Aes128> as KeyInit>::new_from_slice(key).unwrap(),
            ),
            24 => Reference::Aes192(
                Eax::new_from_slice(key).unwrap(),
                <Cmac<Aes192> as KeyInit>::new_from_slice(key).unwrap(),
            ),
            32 => Reference::Aes256(
                Eax::new_from_slice(key).unwrap(),
                <Cmac<Aes256> as KeyInit>::new_from_slice(key).unwrap(),
            ),
            len => panic!("no AES key has {len} bytes"),
        }
    }

    fn seal(&self, nonce: &[u8; 16], header: &[u8], buf: &mut [u8]) -> [u8; 16] {
        each_size!(self, |eax, _cmac| eax
            .encrypt_inout_detached(nonce.into(), header, buf.into())
            .unwrap()
            .into())
    }

    fn open(&self, nonce: &[u8; 16], header: &[u8], buf: &mut [u8], tag: &[u8; 16]) -> bool {
        each_size!(self, |eax, _cmac| eax
            .decrypt_inout_detached(nonce.into(), header, buf.into(), tag.into())
            .is_ok())
    }

    fn cmac(&self, data: &[u8]) -> [u8; 16] {
        each_size!(self, |_eax, cmac| {
            let mut mac = cmac.clone();
            mac.update(data);
            mac.finalize().into_bytes().into()
        })
    }

    /// The reference split: every candidate length tried from the start.
    fn verified_prefix_len(
        &self,
        data: &[u8],
        is_candidate: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        (OVERHEAD..=data.len()).find(|&len| {
            is_candidate(len) && {
                let nonce: [u8; 16] = data[..16].try_into().unwrap();
                let tag: [u8; 16] = data[16..32].try_into().unwrap();
                let mut buf = data[32..len].to_vec();
                self.open(&nonce, &[], &mut buf, &tag)
            }
        })
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Deterministic bytes that differ with `seed`.
fn bytes(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 131 + seed * 71 + 17) % 251) as u8)
        .collect()
}

fn keys() -> [Vec<u8>; 3] {
    [bytes(16, 1), bytes(24, 2), bytes(32, 3)]
}

/// Every length from 0 to 300 (past the 128 bytes of eight blocks, the
/// AES-NI backend's parallel call, where a 113- to 127-byte message once
/// ran one block too many through its tail), and some around 1 KiB and
/// 16 KiB.
fn lengths() -> impl Iterator<Item = usize> {
    (0..=300).chain([1023, 1024, 1025, 1040, 16383, 16384, 16385, 16401])
}

/// Frames in one run, to reach every shape of group: every count to a few
/// past two narrow groups (`SEAL_LANES`), which crosses where runs are
/// taken as wide groups (from half of `WIDE_LANES` frames on), then counts
/// around one wide group, one and a half, and two and a narrow one.
fn run_counts() -> impl Iterator<Item = usize> {
    let wide = WIDE_LANES;
    assert!(
        2 * SEAL_LANES + 3 > wide / 2 + 1,
        "the counts cross the threshold"
    );
    (0..=2 * SEAL_LANES + 3).chain([
        wide - 1,
        wide,
        wide + 1,
        wide + wide / 2 - 1,
        wide + wide / 2 + 3,
        2 * wide + SEAL_LANES + 5,
    ])
}
