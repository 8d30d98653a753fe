//! Many CBC-MAC chains at once: EAX's speed-ups for the members relay.
//!
//! One chain is a run of dependent AES blocks, each waiting for the one
//! before; blocks of different chains are independent, so the CPU overlaps
//! them when they go in one call. Three jobs use that: sealing frames laid
//! end to end, [`SEAL_LANES`] at a time, or [`WIDE_LANES`] in longer runs
//! ([`EaxKey::seal_frames_in_place`]: one read's messages for one member
//! or one session), opening them the
//! same way ([`EaxKey::open_frames_in_place`]: one read's lines under the
//! shared key), and finding which of many keys a frame verifies under
//! ([`EaxKey::first_verifying`]: who sent a first frame, [`LANES`] keys at
//! a time). A group of frames also
//! gets its CTR keystream in one go, so a backend that encrypts many
//! blocks per call (VAES: four per instruction) gets whole calls.
//! Each gives exactly what the parent module's single-frame code gives one
//! frame or one key at a time, which the tests check.

use aes::cipher::consts::U16;
use aes::cipher::typenum::Unsigned as _;
use aes::cipher::{BlockCipherEncBackend, BlockCipherEncClosure};

use super::chain::{
    BLOCK, Block, Chain, aes_job, ctr, encrypt_all, equal, last_block, xor, xor_keystream,
};
use super::{CIPHERTEXT, EaxKey, HEADER, NONCE, Precomputed, split_frame};
use crate::wire::{NONCE_LEN, OVERHEAD};

/// Keys tried side by side by [`EaxKey::first_verifying`]: eight blocks
/// in flight keep AES-NI's pipeline full.
pub const LANES: usize = 8;

/// Frames sealed side by side by [`EaxKey::seal_frames_in_place`]: at most
/// this many CBC-MAC chains advance together, while fewer than half of
/// [`WIDE_LANES`] frames are left. Sixteen independent blocks per step fill
/// two of AES-NI's eight-block calls and give the VAES backends (whose
/// single blocks run on AES-NI) twice eight's blocks to overlap. Measured on VAES-512
/// (`cargo bench --bench eax_key`, 100 frames of 70 bytes under AES-256):
/// 8 lanes 54.7 ns a frame, 16 lanes 51.4, 32 lanes 53.5.
pub const SEAL_LANES: usize = 16;

/// Chains advanced together while at least half this many frames are
/// left: a VAES-512 backend's whole call each step (a step of at least
/// half a call is rounded up to one), four blocks an instruction with its
/// round keys held in registers, where its single blocks are each a call of
/// the AES-NI code that loads all the round keys again. Measured (frames
/// of 70 bytes under AES-256, alternating with [`SEAL_LANES`] alone): 0.91x
/// the time for 512 frames, 0.90x for 40.
pub const WIDE_LANES: usize = 64;

/// Keystream blocks of a group made in one go: up to sixteen frames of up
/// to eight blocks (128 bytes) each, two whole calls of the VAES-512
/// backend (64 blocks each), sixteen of AES-NI's. A longer frame runs its
/// own CTR, long enough for whole parallel calls by itself.
const GROUP_KEYSTREAM: usize = 128;

impl EaxKey {
    /// Seals frames laid end to end in `frames`, in place: frame `i` is
    /// `nonce ‖ tag ‖ body` with a body of `body_lens[i]` bytes, its nonce
    /// and plaintext body filled in by the caller; each body is encrypted
    /// and each tag written, exactly as [`EaxKey::seal_in_place_detached`]
    /// would, one frame at a time. Bytes after the last frame are left
    /// alone; a length that runs past the end of `frames` stops there.
    ///
    /// Faster than one frame at a time: the frames are taken
    /// [`SEAL_LANES`] at a time, their CTR keystreams made in one call, and
    /// their CBC-MAC chains, each a run of dependent AES blocks, advance
    /// side by side, one block of every chain in one call, so the CPU
    /// overlaps the blocks of different frames.
    pub fn seal_frames_in_place(&self, frames: &mut [u8], body_lens: &[usize]) {
        self.aes.run(SealFramesJob {
            pre: &self.pre,
            frames,
            body_lens,
        });
    }

    /// Opens frames laid end to end in `frames`, in place: frame `i` is
    /// `nonce ‖ tag ‖ ciphertext` with `body_lens[i]` bytes of ciphertext.
    /// Returns how many frames, from the first, verify; each of those is
    /// decrypted, exactly as [`EaxKey::open_in_place_detached`] would one
    /// frame at a time. The first frame that does not verify, and every
    /// frame after it, are left as they were; a length that runs past the
    /// end of `frames` counts as not verifying.
    ///
    /// Faster than one frame at a time, as [`EaxKey::seal_frames_in_place`]
    /// is: [`SEAL_LANES`] frames' CBC-MAC chains advance side by side, and
    /// the keystreams of those that verified are made together.
    pub fn open_frames_in_place(&self, frames: &mut [u8], body_lens: &[usize]) -> usize {
        let mut opened = 0;
        self.aes.run(OpenFramesJob {
            pre: &self.pre,
            frames,
            body_lens,
            opened: &mut opened,
        });
        opened
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
                    last_block(&key.pre, &mut state[i], ciphertext, last.len());
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
}

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
        let (mut rest, mut lens) = (self.frames, self.body_lens);
        while !lens.is_empty() {
            let sealed = if lens.len() >= WIDE_LANES / 2 {
                chain.seal_next::<WIDE_LANES>(&mut rest, lens)
            } else {
                chain.seal_next::<SEAL_LANES>(&mut rest, lens)
            };
            let Some(count) = sealed else {
                return;
            };
            lens = &lens[count..];
        }
    }
}

/// Opens frames laid end to end ([`EaxKey::open_frames_in_place`]).
struct OpenFramesJob<'a> {
    pre: &'a Precomputed,
    frames: &'a mut [u8],
    body_lens: &'a [usize],
    /// How many frames, from the first, verified and were decrypted.
    opened: &'a mut usize,
}
aes_job!(OpenFramesJob);

impl BlockCipherEncClosure for OpenFramesJob<'_> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, aes: &B) {
        let chain = Chain { aes, pre: self.pre };
        let (mut rest, mut lens) = (self.frames, self.body_lens);
        while !lens.is_empty() {
            let opened = if lens.len() >= WIDE_LANES / 2 {
                chain.open_next::<WIDE_LANES>(&mut rest, lens, self.opened)
            } else {
                chain.open_next::<SEAL_LANES>(&mut rest, lens, self.opened)
            };
            let Some(count) = opened else {
                return;
            };
            lens = &lens[count..];
        }
    }
}

/// The next frames of `rest` (at most `L`), frame `i` of `lens[i]` bytes of
/// body, and how many there are: fewer than `L` only where `lens` ends, or
/// where a frame would run past the end of `rest`. `rest` moves past them.
fn next_group<'f, const L: usize>(
    rest: &mut &'f mut [u8],
    lens: &[usize],
) -> ([&'f mut [u8]; L], usize) {
    let mut group: [&mut [u8]; L] = std::array::from_fn(|_| Default::default());
    let mut count = 0;
    for (slot, &len) in group.iter_mut().zip(lens) {
        let Some((frame, after)) = std::mem::take(rest).split_at_mut_checked(OVERHEAD + len) else {
            break;
        };
        *slot = frame;
        *rest = after;
        count += 1;
    }
    (group, count)
}

impl<B: BlockCipherEncBackend<BlockSize = U16>> Chain<'_, B> {
    /// Seals the next frames of `rest` ([`next_group`], at most `L`) and
    /// says how many, or `None` where one runs past the end of `rest` (the
    /// frames before it are sealed).
    fn seal_next<const L: usize>(&self, rest: &mut &mut [u8], lens: &[usize]) -> Option<usize> {
        let (mut group, count) = next_group::<L>(rest, lens);
        self.seal_group::<L>(&mut group[..count]);
        (count == L.min(lens.len())).then_some(count)
    }

    /// Opens the next frames of `rest` ([`next_group`], at most `L`),
    /// adding to `opened` how many from the first verified and were
    /// decrypted. Says how many there were if all of them were, `None`
    /// where one did not verify or ran past the end of `rest`.
    fn open_next<const L: usize>(
        &self,
        rest: &mut &mut [u8],
        lens: &[usize],
        opened: &mut usize,
    ) -> Option<usize> {
        let (mut group, count) = next_group::<L>(rest, lens);
        let verified = self.open_group::<L>(&mut group[..count]);
        *opened += verified;
        (verified == L.min(lens.len())).then_some(verified)
    }

    /// Seals up to `L` frames `nonce ‖ tag ‖ body` at once: their `N'` in
    /// one call, their CTR keystreams together, then their `C'` chains side
    /// by side.
    fn seal_group<const L: usize>(&self, frames: &mut [&mut [u8]]) {
        let mut n = [Block::default(); L];
        let mut c = [Block::default(); L];
        for (n, frame) in n.iter_mut().zip(frames.iter()) {
            // The nonce is one complete block after the prefix: K1.
            *n = xor(
                xor(self.pre.after_prefix[NONCE], &frame[..NONCE_LEN]),
                &self.pre.k1,
            );
        }
        encrypt_all(self.aes, &mut n[..step_width::<B>(frames.len(), L)]);
        self.ctr_group::<L>(&n[..frames.len()], frames);
        let bodies: [&[u8]; L] = std::array::from_fn(|i| match frames.get(i) {
            Some(frame) => &frame[OVERHEAD..],
            None => &[],
        });
        self.omac_side_by_side::<L>(CIPHERTEXT, &bodies[..frames.len()], &mut c);
        for ((frame, n), c) in frames.iter_mut().zip(&n).zip(&c) {
            let tag = xor(xor(*n, &self.pre.of_empty[HEADER]), c);
            frame[NONCE_LEN..OVERHEAD].copy_from_slice(&tag);
        }
    }

    /// Opens up to `L` frames `nonce ‖ tag ‖ ciphertext` at once: their
    /// `N'` in one call, their `C'` chains side by side over the
    /// ciphertexts, then the keystreams of the frames, from the first,
    /// whose tags match, decrypting those. Returns how many that is.
    fn open_group<const L: usize>(&self, frames: &mut [&mut [u8]]) -> usize {
        let mut n = [Block::default(); L];
        let mut c = [Block::default(); L];
        for (n, frame) in n.iter_mut().zip(frames.iter()) {
            *n = xor(
                xor(self.pre.after_prefix[NONCE], &frame[..NONCE_LEN]),
                &self.pre.k1,
            );
        }
        encrypt_all(self.aes, &mut n[..step_width::<B>(frames.len(), L)]);
        let bodies: [&[u8]; L] = std::array::from_fn(|i| match frames.get(i) {
            Some(frame) => &frame[OVERHEAD..],
            None => &[],
        });
        self.omac_side_by_side::<L>(CIPHERTEXT, &bodies[..frames.len()], &mut c);
        let verified = frames
            .iter()
            .zip(n.iter().zip(&c))
            .take_while(|(frame, (n, c))| {
                let expected = xor(xor(**n, &self.pre.of_empty[HEADER]), c);
                let tag = xor(Block::default(), &frame[NONCE_LEN..OVERHEAD]);
                equal(&expected, &tag)
            })
            .count();
        self.ctr_group::<L>(&n[..verified], &mut frames[..verified]);
        verified
    }

    /// EAX's CTR over each frame's body from its counter `counters[i]`
    /// (`N'`): the keystream of every short frame in one buffer, encrypted
    /// in as few calls as the backend allows, then xored in frame by frame.
    /// A frame of more than half the buffer runs [`ctr`] by itself.
    fn ctr_group<const L: usize>(&self, counters: &[Block], frames: &mut [&mut [u8]]) {
        let mut keystream = [Block::default(); GROUP_KEYSTREAM];
        let mut filled = 0;
        let mut waiting = [0usize; L];
        let mut waiting_count = 0;
        for (i, counter) in counters.iter().enumerate() {
            let Some(body) = frames.get_mut(i).map(|frame| &mut frame[OVERHEAD..]) else {
                break;
            };
            let blocks = body.len().div_ceil(BLOCK);
            if blocks > GROUP_KEYSTREAM / 2 {
                ctr(self.aes, *counter, body);
                continue;
            }
            if filled + blocks > GROUP_KEYSTREAM {
                self.xor_keystreams(&mut keystream, filled, frames, &waiting[..waiting_count]);
                (filled, waiting_count) = (0, 0);
            }
            let start = u128::from_be_bytes((*counter).into());
            for (j, block) in keystream[filled..filled + blocks].iter_mut().enumerate() {
                *block = Block::from(start.wrapping_add(j as u128).to_be_bytes());
            }
            filled += blocks;
            waiting[waiting_count] = i;
            waiting_count += 1;
        }
        self.xor_keystreams(&mut keystream, filled, frames, &waiting[..waiting_count]);
    }

    /// Encrypts the first `filled` counter blocks in `keystream` (the
    /// backend's parallel calls, then the rest; rounded up to a whole call
    /// as [`step_width`] says, the blocks after `filled` encrypted and not
    /// read) and xors them into the bodies of the frames `waiting`, whose
    /// counter blocks they are, in order.
    fn xor_keystreams(
        &self,
        keystream: &mut [Block; GROUP_KEYSTREAM],
        filled: usize,
        frames: &mut [&mut [u8]],
        waiting: &[usize],
    ) {
        encrypt_all(
            self.aes,
            &mut keystream[..step_width::<B>(filled, GROUP_KEYSTREAM)],
        );
        let mut keystream = &keystream[..filled];
        for &i in waiting {
            let Some(frame) = frames.get_mut(i) else {
                return;
            };
            let body = &mut frame[OVERHEAD..];
            let (mine, rest) = keystream.split_at(body.len().div_ceil(BLOCK));
            xor_keystream(body, mine);
            keystream = rest;
        }
    }

    /// `OMAC_t` of each of up to `L` messages into `macs`, the chains
    /// advancing together: while every chain has a middle block left, each
    /// step encrypts all the chains where they are; then each step gathers
    /// the next block of every chain not yet finished (a middle block, or
    /// the last with its padding and subkey) and encrypts them in one call
    /// ([`step_width`]).
    fn omac_side_by_side<const L: usize>(&self, t: usize, data: &[&[u8]], macs: &mut [Block; L]) {
        let mut left: [&[u8]; L] = [&[]; L];
        let mut open = [false; L];
        for (i, message) in data.iter().enumerate() {
            if message.is_empty() {
                macs[i] = self.pre.of_empty[t];
            } else {
                macs[i] = self.pre.after_prefix[t];
                open[i] = true;
            }
        }
        // The steps in which every chain takes a middle block (as many as
        // the shortest message has): each chain's block xored in and every
        // chain encrypted where it is, nothing gathered or scattered. (A
        // step rounded up to whole calls encrypts `macs` past the messages
        // too; nothing reads those.)
        let shared = data
            .iter()
            .map(|message| message.len().saturating_sub(1) / BLOCK)
            .min()
            .unwrap_or(0);
        for at in (0..shared).map(|step| step * BLOCK) {
            for (mac, message) in macs.iter_mut().zip(data) {
                if let Some(block) = message.get(at..at + BLOCK) {
                    *mac = xor(*mac, block);
                }
            }
            encrypt_all(self.aes, &mut macs[..step_width::<B>(data.len(), L)]);
        }
        for (left, message) in left.iter_mut().zip(data) {
            *left = message.get(shared * BLOCK..).unwrap_or_default();
        }
        // The rest: the chains still open gathered into one call a step.
        let mut step = [Block::default(); L];
        let mut lane_of = [0usize; L];
        loop {
            let mut count = 0;
            for lane in 0..data.len() {
                if !open[lane] {
                    continue;
                }
                let message = left[lane];
                if message.len() > BLOCK {
                    let (block, after) = message.split_at(BLOCK);
                    left[lane] = after;
                    step[count] = xor(macs[lane], block);
                } else {
                    open[lane] = false;
                    step[count] = macs[lane];
                    last_block(self.pre, &mut step[count], data[lane], message.len());
                }
                lane_of[count] = lane;
                count += 1;
            }
            if count == 0 {
                return;
            }
            encrypt_all(self.aes, &mut step[..step_width::<B>(count, L)]);
            for (block, &lane) in step.iter().zip(&lane_of[..count]) {
                macs[lane] = *block;
            }
        }
    }
}

/// How many of `count` independent blocks (chains, `N'`s or counters, in
/// room for `lanes`) to encrypt: `count`, or, on a backend whose calls
/// take at least two narrow groups ([`SEAL_LANES`]) of blocks, `count`
/// rounded up to whole calls where the last would be at least half full.
/// The blocks past `count` (an earlier step's, or still zero) are
/// encrypted and not used: on those backends a whole call costs less than
/// half as many single blocks.
fn step_width<B: BlockCipherEncBackend<BlockSize = U16>>(count: usize, lanes: usize) -> usize {
    let par = B::ParBlocksSize::USIZE;
    let rest = count % par;
    let rounded = count - rest + par;
    if par >= 2 * SEAL_LANES && rest * 2 >= par && rounded <= lanes {
        rounded
    } else {
        count
    }
}
