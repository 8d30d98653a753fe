//! One read's frames: opened, checked against replays, and sealed again
//! into one buffer to be queued as one run, with their plaintexts kept
//! while some recipient needs them (a seed receiver, or members mode).

use bytes::BytesMut;

use super::receive::{FrameError, check_replay};
use crate::cipher::{Cipher, Seal};
use crate::replay::{ReplayWindow, Replayed};
use crate::roster::{Roster, Seat};
use crate::seed;
use crate::wire;

/// The lines sealed from one read, gathered to be queued as one run; and
/// their plaintexts, kept only while there are seed receivers.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) sealed: BytesMut,
    pub(super) count: usize,
    /// A frame opened (in members mode, maybe only an empty one).
    pub(super) opened: bool,
    pub(super) keep_plaintexts: bool,
    /// Each kept plaintext followed by `\n`, and their lengths.
    pub(super) plaintexts: BytesMut,
    pub(super) lens: Vec<usize>,
}

impl Batch {
    /// Opens `line`, refuses it if it is a replay under key index `key`
    /// ([`check_replay`]), and reseals it onto the batch; `most` is the
    /// capacity the whole read can need, reserved at the first line. A
    /// frame refused leaves the batch as it was.
    pub(super) fn reseal(
        &mut self,
        cipher: &mut Cipher,
        replays: &mut ReplayWindow,
        key: u32,
        line: &[u8],
        most: usize,
    ) -> Result<(), FrameError> {
        let opened = cipher.open_frame(line).map_err(FrameError::Open)?;
        check_replay(cipher, replays, key, &opened.nonce)
            .map_err(|Replayed| FrameError::Replayed)?;
        if self.sealed.capacity() == 0 {
            self.sealed.reserve(most);
        }
        if self.keep_plaintexts {
            let start = self.plaintexts.len();
            seed::push_message(
                &mut self.plaintexts,
                &mut self.lens,
                cipher.plaintext(&opened),
            );
            let end = self.plaintexts.len() - 1;
            cipher.seal_into(&self.plaintexts[start..end], &mut self.sealed);
        } else {
            cipher.reseal_opened(&opened, &mut self.sealed);
        }
        self.count += 1;
        self.opened = true;
        Ok(())
    }

    /// Members mode: opens `line` under `seat`'s key and keeps its
    /// plaintext stamped with the member's name; an empty plaintext only
    /// identifies, and is not kept.
    /// A replay ([`check_replay`], under the member's replay key) is
    /// refused and leaves the batch as it was.
    pub(super) fn restamp(
        &mut self,
        roster: &mut Roster,
        replays: &mut ReplayWindow,
        seat: Seat,
        line: &[u8],
    ) -> Result<(), FrameError> {
        let start = self.plaintexts.len();
        let stamped = roster
            .open_stamped(seat, line, &mut self.plaintexts)
            .map_err(FrameError::Open)?;
        if roster.is_own_nonce(&stamped.nonce)
            || replays
                .check_and_insert(stamped.replay_key, &stamped.nonce)
                .is_err()
        {
            self.plaintexts.truncate(start);
            return Err(FrameError::Replayed);
        }
        let len = stamped.len;
        self.opened = true;
        if len > 0 {
            self.lens.push(len);
            self.count += 1;
        }
        Ok(())
    }

    /// Bytes the kept plaintexts take sealed, as lines.
    pub(super) fn sealed_len(&self) -> usize {
        self.lens
            .iter()
            .map(|&len| wire::encoded_len(len) + 1)
            .sum()
    }

    /// Seals every kept plaintext, as a line each, into `out`.
    pub(super) fn seal_plaintexts(&self, sealer: &mut impl Seal, out: &mut BytesMut) {
        let mut start = 0;
        for &len in &self.lens {
            if let Some(plaintext) = self.plaintexts.get(start..start + len) {
                sealer.seal_into(plaintext, out);
            }
            start += len + 1;
        }
    }
}
