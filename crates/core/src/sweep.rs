//! The write sweep: which connections have frames to write, and in what
//! order the caller writes them.
//!
//! [`WriteSweep`] keeps two lists of connection ids. The *waiting* list
//! holds the connections with frames queued since the sweep last wrote
//! them, oldest first; [`WriteSweep::next_waiting`] hands them out in that
//! order. The *written* list holds the connections the sweep wrote, in the
//! order it wrote them: a fan-out moves them back to the waiting list in
//! that order, so every connection waits one whole sweep, whatever its id.
//!
//! Each connection carries its [`Place`] in the sweep itself (the relay
//! keeps it beside the connection's queue), so a fan-out touches no memory
//! but the recipient's. An entry in a list carries a ticket, and is live
//! only while the connection's place holds the same ticket: an entry left
//! by a connection that is gone is stale, and is never used for a newcomer
//! that reuses its id. Stale entries are skipped when met, and dropped
//! before they outnumber the connections.
//!
//! This module knows nothing of frames, queues or sockets: only ids, places
//! and order. It never allocates per recipient: a fan-out to connections
//! already on a list only flips their places.

use std::collections::VecDeque;

use crate::conn_id::ConnId;

/// Where one connection stands in the write sweep. Starts idle; only
/// [`WriteSweep`] changes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Place(State);

/// The number is the ticket of the connection's entry in the list it is
/// on: it tells that entry from one left by an earlier holder of the same
/// id. A connection written and then given frames keeps its ticket as its
/// entry moves from the written list to the waiting list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Not written by the sweep yet, and nothing queued since it joined.
    #[default]
    Idle,
    /// Has frames the sweep has not written; its entry is in the waiting
    /// list (or, during a fan-out, about to move there).
    Waiting(u64),
    /// In the written list: the sweep wrote it, nothing new since.
    Written(u64),
}

/// The open connections, as the sweep looks them up.
pub(crate) trait Places {
    /// The place of connection `id`, if it is open.
    fn place(&self, id: ConnId) -> Option<Place>;
    /// The place of connection `id`, to change, if it is open.
    fn place_mut(&mut self, id: ConnId) -> Option<&mut Place>;
    /// How many connections are open.
    fn open(&self) -> usize;
}

/// Entries kept in the written list beyond two per open connection before
/// [`WriteSweep::remove`] drops the stale ones.
const STALE_SLACK: usize = 64;

/// The order in which connections with new frames are written.
#[derive(Debug, Default)]
pub(crate) struct WriteSweep {
    /// Connections with frames queued since the sweep last wrote them,
    /// oldest first, with their tickets.
    waiting: VecDeque<(ConnId, u64)>,
    /// Connections the sweep wrote, in the order it wrote them, with their
    /// tickets.
    written: VecDeque<(ConnId, u64)>,
    /// Entries made in either list so far: the last ticket given.
    tickets: u64,
    /// Connections whose place is `Written`: the live entries of `written`.
    written_live: usize,
}

impl WriteSweep {
    /// Starts a fan-out: mark each recipient with [`FanOut::queued`], then
    /// call [`FanOut::finish`].
    pub(crate) fn fan_out(&mut self) -> FanOut<'_> {
        FanOut {
            sweep: self,
            rejoined: 0,
        }
    }

    /// The connection that has waited longest with new frames to write,
    /// taken off the waiting list: write it next. A connection that gets
    /// more frames while waiting keeps its place; ones written and then
    /// given more go to the back, in the order they were written. Writing a
    /// few of these per loop turn, and reading in between, makes the writes
    /// one continuous sweep: a frame read during a fan-out joins the writes
    /// to the connections the sweep has not reached yet instead of waiting
    /// for the whole fan-out.
    pub(crate) fn next_waiting(&mut self, places: &mut impl Places) -> Option<ConnId> {
        while let Some((id, ticket)) = self.waiting.pop_front() {
            if let Some(place) = places.place_mut(id)
                && *place == Place(State::Waiting(ticket))
            {
                self.tickets += 1;
                *place = Place(State::Written(self.tickets));
                self.written.push_back((id, self.tickets));
                self.written_live += 1;
                return Some(id);
            }
        }
        None
    }

    /// Whether some connection may be waiting (the list may hold only
    /// stale entries; [`WriteSweep::next_waiting`] then returns `None`).
    pub(crate) fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Forgets a connection that left, whose place was `place`; `places`
    /// no longer holds it.
    pub(crate) fn remove(&mut self, place: Place, places: &impl Places) {
        if let Place(State::Written(_)) = place {
            self.written_live -= 1;
        }
        // Entries of connections that left go when a fan-out passes them;
        // with no fan-out to existing connections (only newcomers served,
        // then gone) they would pile up, one per connection ever written.
        if self.written.len() > 2 * places.open() + STALE_SLACK {
            self.written
                .retain(|&(id, ticket)| places.place(id) == Some(Place(State::Written(ticket))));
        }
    }

    /// Entries in the written list, stale ones included.
    #[cfg(test)]
    pub(crate) fn written_entries(&self) -> usize {
        self.written.len()
    }
}

/// One fan-out in progress: the recipients marked so far.
#[must_use = "a fan-out must be finished"]
pub(crate) struct FanOut<'a> {
    sweep: &'a mut WriteSweep,
    /// Recipients that moved from `Written` to `Waiting`.
    rejoined: usize,
}

impl FanOut<'_> {
    /// Notes that connection `id`, at `place`, was given frames.
    #[inline]
    pub(crate) fn queued(&mut self, id: ConnId, place: &mut Place) {
        match place.0 {
            State::Idle => {
                let sweep = &mut *self.sweep;
                sweep.tickets += 1;
                *place = Place(State::Waiting(sweep.tickets));
                sweep.waiting.push_back((id, sweep.tickets));
            }
            State::Written(ticket) => {
                *place = Place(State::Waiting(ticket));
                self.rejoined += 1;
            }
            State::Waiting(_) => {}
        }
    }

    /// Moves the recipients that had been written to the back of the
    /// waiting list, in the order they were written.
    pub(crate) fn finish(self, places: &impl Places) {
        let FanOut { sweep, rejoined } = self;
        if rejoined == 0 {
            return;
        }
        // In slab order, high ids would queue behind low ones at every
        // fan-out.
        if rejoined == sweep.written_live {
            // All of them (the common case): the list moves over whole. Its
            // stale entries go with it, and `next_waiting` skips them.
            sweep.waiting.append(&mut sweep.written);
        } else {
            let waiting = &mut sweep.waiting;
            sweep.written.retain(
                |&(id, ticket)| match places.place(id).map(|place| place.0) {
                    Some(State::Waiting(now)) if now == ticket => {
                        waiting.push_back((id, ticket));
                        false
                    }
                    Some(state) => state == State::Written(ticket),
                    None => false,
                },
            );
        }
        sweep.written_live -= rejoined;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slab::Slab;

    /// Open connections as only their places, in a slab that reuses ids as
    /// the relay's does.
    #[derive(Default)]
    struct Conns(Slab<Place>);

    impl Places for Conns {
        fn place(&self, id: ConnId) -> Option<Place> {
            self.0.get(id).copied()
        }
        fn place_mut(&mut self, id: ConnId) -> Option<&mut Place> {
            self.0.get_mut(id)
        }
        fn open(&self) -> usize {
            self.0.len()
        }
    }

    impl Conns {
        fn join(&mut self) -> ConnId {
            self.0.insert(Place::default())
        }

        fn leave(&mut self, sweep: &mut WriteSweep, id: ConnId) {
            let place = self.0.remove(id);
            sweep.remove(place, self);
        }

        /// Gives frames to every connection but `from`.
        fn fan_out(&mut self, sweep: &mut WriteSweep, from: ConnId) {
            let mut fan_out = sweep.fan_out();
            for (id, place) in self.0.iter_mut() {
                if id != from {
                    fan_out.queued(id, place);
                }
            }
            fan_out.finish(self);
        }

        /// Every waiting connection, in the order handed out.
        fn sweep(&mut self, sweep: &mut WriteSweep) -> Vec<ConnId> {
            std::iter::from_fn(|| sweep.next_waiting(self)).collect()
        }
    }

    fn setup(n: usize) -> (WriteSweep, Conns, Vec<ConnId>) {
        let mut conns = Conns::default();
        let ids = (0..n).map(|_| conns.join()).collect();
        (WriteSweep::default(), conns, ids)
    }

    #[test]
    fn newcomers_wait_in_id_order_and_the_written_rejoin_in_written_order() {
        let (mut sweep, mut conns, ids) = setup(4);
        let [s, a, b, c] = ids[..] else { panic!() };
        conns.fan_out(&mut sweep, s);
        assert!(sweep.has_waiting());
        assert_eq!(sweep.next_waiting(&mut conns), Some(a));
        assert_eq!(sweep.next_waiting(&mut conns), Some(b));
        // Mid-sweep, more frames: `c` keeps its place, `a` and `b` rejoin
        // behind it, in the order they were written.
        conns.fan_out(&mut sweep, s);
        assert_eq!(conns.sweep(&mut sweep), vec![c, a, b]);
        assert!(!sweep.has_waiting());
        // Written as c, a, b: that is the next sweep's order, not the ids'.
        conns.fan_out(&mut sweep, s);
        assert_eq!(conns.sweep(&mut sweep), vec![c, a, b]);
        // A fan-out from `a` queues the never-written `s` first, then the
        // others rejoin in written order.
        conns.fan_out(&mut sweep, a);
        assert_eq!(conns.sweep(&mut sweep), vec![s, c, b]);
        conns.fan_out(&mut sweep, s);
        assert_eq!(conns.sweep(&mut sweep), vec![a, c, b]);
    }

    #[test]
    fn frames_given_while_waiting_keep_one_entry() {
        let (mut sweep, mut conns, ids) = setup(3);
        for _ in 0..5 {
            conns.fan_out(&mut sweep, ids[0]);
        }
        assert_eq!(conns.sweep(&mut sweep), vec![ids[1], ids[2]]);
        assert_eq!(sweep.next_waiting(&mut conns), None);
    }

    #[test]
    fn stale_entries_of_connections_that_left_are_skipped() {
        let (mut sweep, mut conns, ids) = setup(4);
        let [s, a, b, c] = ids[..] else { panic!() };
        conns.fan_out(&mut sweep, s);
        // `a` leaves while waiting, `b` after being written.
        conns.leave(&mut sweep, a);
        assert_eq!(sweep.next_waiting(&mut conns), Some(b));
        conns.leave(&mut sweep, b);
        assert_eq!(conns.sweep(&mut sweep), vec![c]);
        // The written list still holds `b`'s stale entry: a fan-out that
        // rejoins every live one moves it along and it is skipped.
        conns.fan_out(&mut sweep, s);
        assert_eq!(conns.sweep(&mut sweep), vec![c]);
        // Only stale entries waiting: `has_waiting` may say so, but nothing
        // is handed out.
        let d = conns.join();
        conns.fan_out(&mut sweep, s);
        conns.leave(&mut sweep, d);
        assert_eq!(conns.sweep(&mut sweep), vec![c]);
        assert!(!sweep.has_waiting());
    }

    #[test]
    fn a_reused_id_is_a_newcomer_and_is_handed_out_once_per_sweep() {
        let (mut sweep, mut conns, ids) = setup(4);
        let [s, a, b, c] = ids[..] else { panic!() };
        conns.fan_out(&mut sweep, s);
        // `b` leaves while waiting, ahead of `c`; a newcomer takes its id.
        conns.leave(&mut sweep, b);
        let newcomer = conns.join();
        assert_eq!(newcomer, b, "the slab reuses the id");
        conns.fan_out(&mut sweep, s);
        assert_eq!(conns.sweep(&mut sweep), vec![a, c, newcomer]);
        // Written once per sweep, not once per entry its id ever had; and
        // the same after it was written and left, with a newcomer again.
        for _ in 0..3 {
            conns.fan_out(&mut sweep, s);
            assert_eq!(conns.sweep(&mut sweep), vec![a, c, newcomer]);
        }
        conns.leave(&mut sweep, newcomer);
        assert_eq!(conns.join(), newcomer);
        conns.fan_out(&mut sweep, s);
        assert_eq!(conns.sweep(&mut sweep), vec![newcomer, a, c]);
    }

    #[test]
    fn a_partial_rejoin_keeps_written_order_and_leaves_the_rest_written() {
        let (mut sweep, mut conns, ids) = setup(4);
        let [s, a, b, c] = ids[..] else { panic!() };
        conns.fan_out(&mut sweep, s);
        assert_eq!(conns.sweep(&mut sweep), vec![a, b, c]);
        // A fan-out that misses `b` (it sent): `a` and `c` rejoin, `b`
        // stays written and rejoins behind them next time.
        conns.fan_out(&mut sweep, b);
        assert_eq!(conns.sweep(&mut sweep), vec![s, a, c]);
        conns.fan_out(&mut sweep, s);
        assert_eq!(conns.sweep(&mut sweep), vec![b, a, c]);
    }

    /// Connections served once and gone, while the connections already
    /// written get nothing, leave entries no fan-out passes: they are
    /// dropped before they pile up, and the live entry among them stays.
    #[test]
    fn stale_written_entries_are_compacted_and_live_ones_kept() {
        let (mut sweep, mut conns, ids) = setup(2);
        let [sender, first] = ids[..] else { panic!() };
        // `sender` is written once, then only sends: it keeps a live entry
        // in the written list that no fan-out passes.
        conns.fan_out(&mut sweep, first);
        assert_eq!(conns.sweep(&mut sweep), vec![sender]);
        conns.leave(&mut sweep, first);
        let mut most = 0;
        for _ in 0..10_000 {
            let mut newcomers: Vec<ConnId> = (0..3).map(|_| conns.join()).collect();
            newcomers.sort_unstable();
            conns.fan_out(&mut sweep, sender);
            assert_eq!(conns.sweep(&mut sweep), newcomers, "in id order");
            most = most.max(sweep.written_entries());
            for id in newcomers {
                conns.leave(&mut sweep, id);
            }
            assert!(sweep.written_entries() <= 2 * conns.open() + STALE_SLACK + 3);
        }
        assert!(most > STALE_SLACK, "compaction was needed");
        // `sender`'s entry survived: a fan-out to it still rejoins it.
        let last = conns.join();
        conns.fan_out(&mut sweep, last);
        assert_eq!(conns.sweep(&mut sweep), vec![sender]);
    }
}
