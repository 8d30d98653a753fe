//! What a peer without the key can cost: the pre-authentication byte
//! budget, the first-frame deadline, and connections per address.
//!
//! A connection is *unauthenticated* until one of its frames opens under a
//! valid key. Until then the relay holds its unfinished bytes on trust.
//! This module bounds that trust in memory (one budget shared by every
//! unauthenticated connection), in time (a deadline counted from its first
//! byte) and in file descriptors (connections per IP address, IPv6 per
//! /64). It only keeps the accounts; the relay decides whom to close, and
//! never closes an authenticated connection for any of these reasons.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::conn_id::ConnId;

/// What connections are counted under: an IPv4 address, or an IPv6
/// address's /64 (one customer's network, as a provider hands them out).
/// An IPv4-mapped IPv6 address counts as its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    /// One IPv4 address.
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix([u8; 8]),
}

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(v4.octets()),
                None => {
                    let mut prefix = [0; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    AddressKey::V6Prefix(prefix)
                }
            },
        }
    }
}

/// Open connections per [`AddressKey`]. Holds an entry only for addresses
/// with a connection open, so its size follows the connections.
#[derive(Debug, Default)]
pub struct PerAddress {
    open: HashMap<AddressKey, u32>,
    max: usize,
}

impl PerAddress {
    /// Counts at most `max` connections per address; `0` for no limit.
    pub fn new(max: usize) -> PerAddress {
        PerAddress {
            open: HashMap::new(),
            max,
        }
    }

    /// Counts a new connection from `ip`, or returns `false` (counting
    /// nothing) when that address already has the most it may.
    pub fn admit(&mut self, ip: IpAddr) -> bool {
        let open = self.open.entry(AddressKey::from(ip)).or_insert(0);
        if self.max != 0 && *open as usize >= self.max {
            return false;
        }
        *open += 1;
        true
    }

    /// Changes the most connections per address; those open stay open.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Uncounts a connection from `ip` that [`PerAddress::admit`] counted.
    pub fn release(&mut self, ip: IpAddr) {
        let key = AddressKey::from(ip);
        if let Some(open) = self.open.get_mut(&key) {
            *open -= 1;
            if *open == 0 {
                self.open.remove(&key);
            }
        }
    }

    /// Connections open from `ip`'s address.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.open
            .get(&AddressKey::from(ip))
            .map_or(0, |&n| n as usize)
    }
}

/// The total held for unauthenticated connections, against the budget.
#[derive(Debug, Default, Clone, Copy)]
pub struct PreAuthBudget {
    held: usize,
    budget: usize,
}

impl PreAuthBudget {
    /// A budget of `budget` bytes, nothing held.
    pub fn new(budget: usize) -> PreAuthBudget {
        PreAuthBudget { held: 0, budget }
    }

    /// Notes that one connection now holds `now` bytes where it held
    /// `before`.
    pub fn update(&mut self, before: usize, now: usize) {
        self.held = self.held - before.min(self.held) + now;
    }

    /// Changes the budget; what is held now is checked against it at the
    /// next read.
    pub fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
    }

    /// Bytes held, in all.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Whether more is held than the budget allows.
    pub fn is_over(&self) -> bool {
        self.held > self.budget
    }
}

/// First-frame deadlines, soonest first. Every deadline is its
/// connection's first byte plus the same timeout, so the order they are
/// started in is the order they fall due: a queue, not a heap.
///
/// An entry names a connection by id and serial (its admission number),
/// so an entry left by a connection that authenticated or left is told
/// apart from a newcomer that reuses the id; the relay drops such entries
/// when they fall due, and [`Deadlines::compact`] drops them before they
/// outnumber the connections.
#[derive(Debug, Default)]
pub struct Deadlines {
    queue: VecDeque<Deadline>,
    timeout: Duration,
}

/// A connection that must have authenticated by `due`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// The connection.
    pub id: ConnId,
    /// Its admission number, to tell it from a later holder of `id`.
    pub serial: u64,
    /// When it falls due.
    pub due: Instant,
}

impl Deadlines {
    /// Deadlines `timeout` after each connection's first byte.
    pub fn new(timeout: Duration) -> Deadlines {
        Deadlines {
            queue: VecDeque::new(),
            timeout,
        }
    }

    /// Starts the clock for connection `id` (serial `serial`), whose first
    /// byte came at `now`.
    pub fn start(&mut self, id: ConnId, serial: u64, now: Instant) {
        let due = now + self.timeout;
        // A clock that stepped back still yields a queue in order.
        let due = self.queue.back().map_or(due, |last| due.max(last.due));
        self.queue.push_back(Deadline { id, serial, due });
    }

    /// The next deadline that has fallen due by `now`, taken off.
    pub fn pop_due(&mut self, now: Instant) -> Option<Deadline> {
        match self.queue.front() {
            Some(first) if first.due <= now => self.queue.pop_front(),
            _ => None,
        }
    }

    /// When the next deadline falls due, if any is running.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|first| first.due)
    }

    /// Entries queued, live or stale.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no deadline is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drops the entries `is_live` says are stale, once they outnumber the
    /// `live` connections that may have one: amortised O(1) per removal.
    pub fn compact(&mut self, live: usize, mut is_live: impl FnMut(&Deadline) -> bool) {
        if self.queue.len() > 2 * live + 64 {
            self.queue.retain(|entry| is_live(entry));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn addresses_count_per_ipv4_and_per_ipv6_64() {
        let cases = [
            ("192.0.2.1", "192.0.2.1", true),
            ("192.0.2.1", "192.0.2.2", false),
            ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true),
            ("2001:db8:1:2::1", "2001:db8:1:3::1", false),
            ("::ffff:192.0.2.1", "192.0.2.1", true),
            ("::1", "127.0.0.1", false),
        ];
        for (a, b, same) in cases {
            let (ka, kb) = (AddressKey::from(ip(a)), AddressKey::from(ip(b)));
            assert_eq!(ka == kb, same, "{a} vs {b}");
        }
    }

    #[test]
    fn the_limit_refuses_past_max_and_frees_a_place_on_release() {
        let mut per = PerAddress::new(2);
        let a = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let b = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(per.admit(a));
        assert!(per.admit(a));
        assert!(!per.admit(a), "a third from one address is refused");
        assert!(per.admit(b), "another address is counted apart");
        assert_eq!(per.open_from(a), 2);
        per.release(a);
        assert!(per.admit(a), "a place freed is taken again");
        per.release(a);
        per.release(a);
        per.release(b);
        assert!(per.open.is_empty(), "no entry outlives its connections");
    }

    #[test]
    fn zero_means_no_limit() {
        let mut per = PerAddress::new(0);
        for _ in 0..1000 {
            assert!(per.admit(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        }
    }

    #[test]
    fn the_budget_follows_what_each_connection_holds() {
        let mut budget = PreAuthBudget::new(100);
        budget.update(0, 60);
        budget.update(0, 40);
        assert!(!budget.is_over());
        budget.update(40, 41);
        assert!(budget.is_over());
        budget.update(60, 0);
        assert_eq!(budget.held(), 41);
        assert!(!budget.is_over());
    }

    #[test]
    fn deadlines_fall_due_in_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut deadlines = Deadlines::new(Duration::from_secs(10));
        deadlines.start(1, 1, t0);
        deadlines.start(2, 2, t0 + Duration::from_secs(1));
        assert_eq!(deadlines.next_due(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(deadlines.pop_due(t0 + Duration::from_secs(9)), None);
        let first = deadlines.pop_due(t0 + Duration::from_secs(10));
        assert_eq!(first.map(|d| d.id), Some(1));
        assert_eq!(deadlines.pop_due(t0 + Duration::from_secs(10)), None);
        let second = deadlines.pop_due(t0 + Duration::from_secs(11));
        assert_eq!(second.map(|d| (d.id, d.serial)), Some((2, 2)));
        assert!(deadlines.is_empty());
    }

    #[test]
    fn compaction_keeps_live_entries_and_bounds_stale_ones() {
        let t0 = Instant::now();
        let mut deadlines = Deadlines::new(Duration::from_secs(10));
        deadlines.start(0, 0, t0);
        for serial in 1..1000 {
            deadlines.start(1, serial, t0);
            // Only serial 0 and the newest holder of id 1 are live.
            deadlines.compact(2, |d| d.serial == 0 || d.serial == serial);
            assert!(deadlines.len() <= 2 * 2 + 64 + 1);
        }
        let due = t0 + Duration::from_secs(10);
        assert_eq!(deadlines.pop_due(due).map(|d| d.serial), Some(0));
    }
}
