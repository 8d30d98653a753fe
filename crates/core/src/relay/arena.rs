//! The memory a read's fan-out is sealed into when every recipient seals
//! under a key of its own (members and session mode): a few blocks kept
//! from one read to the next.
//!
//! Each recipient's run is cut from the read's block as a [`Bytes`] handle
//! and queued; the block is free again once every one of those runs has
//! been written and dropped. A read takes the first free block it finds,
//! already mapped and likely in the cache. Only when every kept block still
//! holds a run waiting to be written does it ask the allocator for a new
//! one. Keeping a few blocks rather than one matters: at 1→100 a
//! recipient's run is often still waiting when the next read comes, and a
//! block of a megabyte or more freed to the allocator goes back to the
//! system, so the next one is page-faulted in afresh (with one block kept,
//! 150,000–330,000 page faults in 4 s of a 1→100 session fan-out, about a
//! tenth of the relay's CPU; `docs/performance.md`, "Round seven").
//!
//! A new block is the read's size rounded up to a power of two (at least
//! [`MIN_BLOCK`]), so that reads of about the same size, as a busy room's
//! are, fit in each other's blocks, and a block takes the next reads into
//! what the last left free. The blocks kept are bounded: at most [`KEPT`]
//! of them and [`KEPT_BYTES`] in all; a block that is too small for a read
//! is passed over, and the least recently used gives way when a new one is
//! made (its memory goes back once its runs are written), so a block left
//! small by a quiet room does not stay for ever. Only the pages a read
//! writes are ever touched: a quiet relay's blocks cost it little memory.
//!
//! [`Bytes`]: bytes::Bytes

use bytes::BytesMut;

/// How many blocks are kept: at 1→100 eight cover the reads whose runs
/// still wait (four did not).
pub(super) const KEPT: usize = 8;

/// How many bytes of blocks are kept at most (the one in use may pass it
/// alone).
pub(super) const KEPT_BYTES: usize = 32 << 20;

/// The smallest block made.
pub(super) const MIN_BLOCK: usize = 64 << 10;

/// One kept block.
#[derive(Debug)]
struct Block {
    /// What is left of it to write into (all of it, once reclaimed).
    bytes: BytesMut,
    /// Its size when made.
    size: usize,
}

/// The kept blocks; see the module's doc.
#[derive(Debug, Default)]
pub(crate) struct Arena {
    /// The block the last read was sealed into, first; then the others,
    /// most recently used first.
    blocks: Vec<Block>,
}

impl Arena {
    /// An empty block with room for `len` bytes: a kept one whose runs are
    /// all written (or with that much left free) if there is one, else a
    /// new one.
    pub(super) fn block(&mut self, len: usize) -> &mut BytesMut {
        let free = self.blocks.iter_mut().position(|block| {
            block.bytes.clear();
            block.bytes.try_reclaim(len)
        });
        match free {
            Some(at) => self.blocks[..=at].rotate_right(1),
            None => {
                let size = len
                    .max(MIN_BLOCK)
                    .checked_next_power_of_two()
                    .unwrap_or(len);
                while self.blocks.len() == KEPT
                    || (!self.blocks.is_empty() && self.kept_bytes() + size > KEPT_BYTES)
                {
                    self.blocks.pop();
                }
                let bytes = BytesMut::with_capacity(size);
                self.blocks.insert(0, Block { bytes, size });
            }
        }
        &mut self.blocks[0].bytes
    }

    /// The sum of the kept blocks' sizes (at most [`KEPT`] to add up).
    fn kept_bytes(&self) -> usize {
        self.blocks.iter().map(|block| block.size).sum()
    }

    /// The block the last read was sealed into, if any.
    #[cfg(test)]
    pub(super) fn current(&mut self) -> Option<&mut BytesMut> {
        self.blocks.first_mut().map(|block| &mut block.bytes)
    }

    /// How many blocks are kept.
    #[cfg(test)]
    pub(super) fn kept(&self) -> usize {
        self.blocks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills `len` bytes of a block and cuts them off as a queued run
    /// would be.
    fn run(arena: &mut Arena, len: usize) -> bytes::Bytes {
        let block = arena.block(len);
        block.resize(len, 7);
        block.split().freeze()
    }

    #[test]
    fn a_block_whose_runs_are_written_is_used_again() {
        let mut arena = Arena::default();
        let first = run(&mut arena, MIN_BLOCK);
        let at = first.as_ptr();
        drop(first);
        let second = run(&mut arena, MIN_BLOCK);
        assert_eq!(second.as_ptr(), at, "the same memory");
        assert_eq!(arena.kept(), 1);
    }

    #[test]
    fn the_next_reads_go_where_the_last_left_room() {
        let mut arena = Arena::default();
        let first = run(&mut arena, 1000);
        let second = run(&mut arena, 1000);
        assert_eq!(second.as_ptr(), first.as_ptr().wrapping_add(1000));
        assert_eq!(arena.kept(), 1);
        // No room left while they wait: a new block.
        let third = run(&mut arena, MIN_BLOCK);
        assert_eq!(arena.kept(), 2);
        assert!(first.iter().chain(&second).all(|&byte| byte == 7));
        drop(third);
    }

    #[test]
    fn a_block_with_a_run_waiting_is_not_written_over() {
        let mut arena = Arena::default();
        let waiting = run(&mut arena, MIN_BLOCK);
        let next = run(&mut arena, MIN_BLOCK);
        assert_ne!(next.as_ptr(), waiting.as_ptr());
        assert!(waiting.iter().all(|&byte| byte == 7));
        assert_eq!(arena.kept(), 2);
        // Once the first is written its block serves the read after.
        let at = waiting.as_ptr();
        drop(waiting);
        let third = run(&mut arena, MIN_BLOCK);
        assert_eq!(third.as_ptr(), at);
        assert_eq!(arena.kept(), 2);
        drop(next);
    }

    #[test]
    fn at_most_kept_blocks_and_the_least_recently_used_gives_way() {
        let mut arena = Arena::default();
        let waiting: Vec<bytes::Bytes> =
            (0..KEPT + 3).map(|_| run(&mut arena, MIN_BLOCK)).collect();
        assert_eq!(arena.kept(), KEPT);
        // The blocks of the first runs were let go, the last KEPT kept,
        // the most recent first.
        let last = waiting[KEPT + 2].as_ptr();
        drop(waiting);
        for _ in 0..KEPT {
            assert_eq!(run(&mut arena, MIN_BLOCK).as_ptr(), last);
        }
        assert_eq!(arena.kept(), KEPT);
    }

    #[test]
    fn at_most_kept_bytes_are_kept() {
        let mut arena = Arena::default();
        let waiting: Vec<bytes::Bytes> = (0..3).map(|_| run(&mut arena, KEPT_BYTES / 2)).collect();
        assert_eq!(arena.kept(), 2);
        assert!(arena.kept_bytes() <= KEPT_BYTES);
        // One read larger than the bound still gets its block, alone.
        let huge = run(&mut arena, KEPT_BYTES + 1);
        assert_eq!(arena.kept(), 1);
        drop((waiting, huge));
    }

    #[test]
    fn a_block_is_made_at_least_min_block_and_a_power_of_two() {
        let mut arena = Arena::default();
        assert_eq!(arena.block(100).capacity(), MIN_BLOCK);
        let mut arena = Arena::default();
        assert_eq!(arena.block(MIN_BLOCK + 1).capacity(), 2 * MIN_BLOCK);
        // So a read a little larger than the last fits in its block.
        let mut arena = Arena::default();
        let first = run(&mut arena, 3 * MIN_BLOCK);
        let at = first.as_ptr();
        drop(first);
        assert_eq!(run(&mut arena, 4 * MIN_BLOCK).as_ptr(), at);
        assert_eq!(arena.kept(), 1);
    }

    #[test]
    fn a_free_block_too_small_is_passed_over() {
        let mut arena = Arena::default();
        drop(run(&mut arena, 100));
        let big = run(&mut arena, 2 * MIN_BLOCK);
        assert_eq!(big.len(), 2 * MIN_BLOCK);
        assert_eq!(arena.kept(), 2);
        // The small one is still there for a small read.
        let small = run(&mut arena, 50);
        assert_ne!(small.as_ptr(), big.as_ptr());
        assert_eq!(arena.kept(), 2);
    }
}
