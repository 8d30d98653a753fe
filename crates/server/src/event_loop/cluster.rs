//! The server's side of a cluster (`--cluster`, the `nats` feature): the
//! NATS thread started (with a copy of the cluster key, for the history
//! records it seals), what it handed over given to the relay each turn,
//! and what the relay has for NATS handed to it, never waiting.

use std::io;
use std::time::Duration;

use super::{CLUSTER_PER_TURN, CLUSTER_WAKE, Server};
use crate::link::{Link, LinkConfig};
use eaxchat_core::cluster::Cluster;

impl Server {
    /// Joins `cluster` through NATS as `link` says: starts the NATS
    /// thread, which connects (and keeps trying) in the background. Call
    /// after [`Server::set_chat`].
    pub fn join_cluster(&mut self, cluster: Cluster, link: LinkConfig) -> io::Result<()> {
        let waker = mio::Waker::new(self.poll.registry(), CLUSTER_WAKE)?;
        let record_key = cluster.record_key()?;
        self.link = Some(Link::start(link, waker, record_key)?);
        self.relay.join_cluster(cluster);
        Ok(())
    }

    /// Gives the relay what the NATS thread handed over, at most
    /// [`CLUSTER_PER_TURN`].
    pub(super) fn take_from_cluster(&mut self) {
        let Some(link) = &mut self.link else {
            return;
        };
        link.rearm();
        let mut taken = 0;
        while taken < CLUSTER_PER_TURN {
            let Some(incoming) = link.try_recv() else {
                break;
            };
            self.relay.cluster_incoming(incoming);
            taken += 1;
        }
        self.link_busy = taken == CLUSTER_PER_TURN;
    }

    /// Hands what the relay has for NATS to the thread, never waiting: a
    /// full queue drops, counted.
    pub(super) fn give_to_cluster(&mut self) {
        let Some(link) = &mut self.link else {
            return;
        };
        self.relay.take_cluster_out(&mut self.outgoing);
        let mut dropped = 0;
        for out in self.outgoing.drain(..) {
            if !link.send(out) {
                dropped += 1;
            }
        }
        dropped += link.take_dropped();
        if dropped > 0 {
            self.relay.count_cluster_dropped(dropped);
        }
    }

    /// Says goodbye to the cluster and lets the NATS thread publish it
    /// (at most 2 s).
    pub(super) fn leave_cluster(&mut self) {
        self.relay.leave_cluster();
        self.give_to_cluster();
        if let Some(link) = self.link.take() {
            link.close(Duration::from_secs(2));
        }
    }
}
