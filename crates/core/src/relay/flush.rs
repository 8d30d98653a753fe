//! The queues written out: which connection to write next (the write
//! sweep, [`crate::sweep`]), and each queue written into its `io` until it
//! drains or would block. It never reads, seals or queues a frame, and
//! never waits: a writer that would block is left for the caller's next
//! writable event.

use std::io::{self, Write};

use slab::Slab;

use super::trust::Trust;
use super::{CloseReason, ConnId, Peer, Relay};
use crate::stats::Stats;
use crate::sweep::{Place, Places};

/// What a flush left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Everything queued was written.
    Drained,
    /// The writer would block with frames still queued: write again when it
    /// is writable.
    Blocked,
    /// The connection is closing (or gone); nothing was written.
    Closed,
}

impl<T: Write> Relay<T> {
    /// The connection that has waited longest with new frames to write,
    /// taken off the waiting list: flush it next. A connection that gets
    /// more frames while waiting keeps its place; ones flushed and then
    /// given more go to the back, in the order they were flushed. Flushing
    /// a few of these per loop turn, and reading in between, makes the
    /// writes one continuous sweep: a frame read during a fan-out joins the
    /// writes to the connections the sweep has not reached yet instead of
    /// waiting for the whole fan-out.
    pub fn next_waiting(&mut self) -> Option<ConnId> {
        self.sweep.next_waiting(&mut self.peers)
    }

    /// Whether some connection may have new frames to write (the waiting
    /// list may hold only connections that left; [`Relay::next_waiting`]
    /// then returns `None`).
    pub fn has_waiting(&self) -> bool {
        self.sweep.has_waiting()
    }

    /// Writes `id`'s queue into its `io` until it drains or would block.
    /// A write error closes the connection; so does a queue still over
    /// `max_queue` when the writer blocks: a consumer that cannot keep up.
    /// In session mode a refused connection closes once its refusal is
    /// written (it is then in [`Relay::take_closing`]'s list).
    pub fn flush(&mut self, id: ConnId) -> Flush {
        let Some(peer) = self.peers.get_mut(id) else {
            return Flush::Closed;
        };
        if peer.closing.is_some() {
            return Flush::Closed;
        }
        match write_queue(peer, &mut self.stats) {
            Ok(Flush::Drained) => {
                if let Some(paced) = &mut peer.paced {
                    paced.written(self.now);
                }
                if let Some(why) = peer.session.refusing() {
                    // Its refusal is written: session mode closes it now.
                    self.close(id, CloseReason::HandshakeRefused(why));
                }
                Flush::Drained
            }
            Ok(Flush::Blocked) if peer.outbox.queued_bytes() > self.limits.max_queue => {
                peer.outbox.clear();
                self.stats.slow_consumers += 1;
                self.close(id, CloseReason::SlowConsumer);
                Flush::Closed
            }
            Ok(flush) => flush,
            Err(error) => {
                self.close(id, CloseReason::IoError(error.kind()));
                Flush::Closed
            }
        }
    }

    /// Writes what is queued for a connection that is closing, best effort
    /// and without blocking: used for a graceful shutdown.
    pub fn flush_closing(&mut self, id: ConnId) -> Flush {
        match self.peers.get_mut(id) {
            Some(peer) => write_queue(peer, &mut self.stats).unwrap_or(Flush::Closed),
            None => Flush::Closed,
        }
    }
}

impl<T> Places for Slab<Peer<T>> {
    fn place(&self, id: ConnId) -> Option<Place> {
        self.get(id).map(|peer| peer.place)
    }

    fn place_mut(&mut self, id: ConnId) -> Option<&mut Place> {
        self.get_mut(id).map(|peer| &mut peer.place)
    }

    fn open(&self) -> usize {
        self.len()
    }
}

fn write_queue<T: Write>(peer: &mut Peer<T>, stats: &mut Stats) -> io::Result<Flush> {
    while !peer.outbox.is_empty() {
        match peer.outbox.write_to(&mut peer.io) {
            Ok(written) if written.bytes == 0 => {
                return Err(io::ErrorKind::WriteZero.into());
            }
            Ok(written) => {
                stats.bytes_out += written.bytes as u64;
                stats.frames_out += written.frames as u64;
                if peer.trust != Trust::Authenticated && !peer.chat.rooms.is_empty() {
                    stats.keyless_bytes_out += written.bytes as u64;
                    stats.keyless_frames_out += written.frames as u64;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Flush::Drained)
}
