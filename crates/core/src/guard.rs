//! What a peer without the key can cost: the pre-authentication byte
//! budget, the first-frame deadline, and connections per address.
//!
//! A connection is *unauthenticated* until one of its frames opens under a
//! valid key (in session mode: until its handshake finishes). Until then
//! the relay holds its unfinished bytes on trust. This module bounds that
//! trust in memory (one budget shared by every unauthenticated
//! connection), in time (a deadline counted from its admission, or from
//! its first byte where a silent connection may be a listener the relay
//! serves) and in file descriptors (connections per IPv4 address, and per
//! IPv6 /64, /56 and /48, so one home's prefix cannot hold every slot). It
//! only keeps the accounts; the relay decides whom to close, and never
//! closes an authenticated connection for any of these reasons.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::conn_id::ConnId;

/// What connections are counted under: an IPv4 address, or an IPv6
/// address's /64 (one customer's network, as a provider hands them out),
/// /56 (one home's prefix) or /48 (one site's). An IPv4-mapped IPv6
/// address counts as its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    /// One IPv4 address.
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix([u8; 8]),
    /// The first 56 bits of an IPv6 address.
    V6Prefix56([u8; 7]),
    /// The first 48 bits of an IPv6 address.
    V6Prefix48([u8; 6]),
}

impl From<IpAddr> for AddressKey {
    /// The finest key `ip` is counted under: its IPv4 address or its /64.
    fn from(ip: IpAddr) -> AddressKey {
        AddressKey::all(ip)[0].0
    }
}

/// Which of [`PerAddressLimits`]' limits a key is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grain {
    Address,
    Prefix56,
    Prefix48,
}

impl AddressKey {
    /// Every key `ip` is counted under, finest first, with the limit that
    /// applies to each: one for IPv4, three for IPv6.
    fn all(ip: IpAddr) -> [(AddressKey, Grain); 3] {
        let v4 = |octets: [u8; 4]| {
            let key = (AddressKey::V4(octets), Grain::Address);
            [key; 3]
        };
        match ip {
            IpAddr::V4(v4_addr) => v4(v4_addr.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4_addr) => v4(v4_addr.octets()),
                None => {
                    let octets = v6.octets();
                    let mut p64 = [0; 8];
                    let mut p56 = [0; 7];
                    let mut p48 = [0; 6];
                    p64.copy_from_slice(&octets[..8]);
                    p56.copy_from_slice(&octets[..7]);
                    p48.copy_from_slice(&octets[..6]);
                    [
                        (AddressKey::V6Prefix(p64), Grain::Address),
                        (AddressKey::V6Prefix56(p56), Grain::Prefix56),
                        (AddressKey::V6Prefix48(p48), Grain::Prefix48),
                    ]
                }
            },
        }
    }

    /// The keys of [`AddressKey::all`] without repeats (IPv4's one key).
    fn distinct(ip: IpAddr) -> impl Iterator<Item = (AddressKey, Grain)> {
        let all = AddressKey::all(ip);
        let count = if all[0].0 == all[1].0 { 1 } else { 3 };
        all.into_iter().take(count)
    }
}

/// The most connections open at once per address key; `0` for no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerAddressLimits {
    /// Per IPv4 address, and per IPv6 /64.
    pub address: usize,
    /// Per IPv6 /56.
    pub prefix_56: usize,
    /// Per IPv6 /48.
    pub prefix_48: usize,
}

impl PerAddressLimits {
    fn of(&self, grain: Grain) -> usize {
        match grain {
            Grain::Address => self.address,
            Grain::Prefix56 => self.prefix_56,
            Grain::Prefix48 => self.prefix_48,
        }
    }
}

/// Open connections per [`AddressKey`]. Holds an entry only for keys with
/// a connection open, so its size follows the connections.
#[derive(Debug, Default)]
pub struct PerAddress {
    open: HashMap<AddressKey, u32>,
    max: PerAddressLimits,
}

impl PerAddress {
    /// Counts at most `max` connections per key.
    pub fn new(max: PerAddressLimits) -> PerAddress {
        PerAddress {
            open: HashMap::new(),
            max,
        }
    }

    /// Counts a new connection from `ip`, or returns `false` (counting
    /// nothing) when one of its keys already has the most it may.
    pub fn admit(&mut self, ip: IpAddr) -> bool {
        let full = AddressKey::distinct(ip).any(|(key, grain)| {
            let max = self.max.of(grain);
            max != 0
                && self
                    .open
                    .get(&key)
                    .is_some_and(|&open| open as usize >= max)
        });
        if full {
            return false;
        }
        for (key, _) in AddressKey::distinct(ip) {
            *self.open.entry(key).or_insert(0) += 1;
        }
        true
    }

    /// Changes the limits; the connections open stay open.
    pub fn set_max(&mut self, max: PerAddressLimits) {
        self.max = max;
    }

    /// Uncounts a connection from `ip` that [`PerAddress::admit`] counted.
    pub fn release(&mut self, ip: IpAddr) {
        for (key, _) in AddressKey::distinct(ip) {
            if let Some(open) = self.open.get_mut(&key) {
                *open -= 1;
                if *open == 0 {
                    self.open.remove(&key);
                }
            }
        }
    }

    /// Connections open from `ip`'s address (its IPv6 /64).
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
/// connection's start (its admission or its first byte) plus the same
/// timeout, so the order they are
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
    /// Deadlines `timeout` after each connection's start.
    pub fn new(timeout: Duration) -> Deadlines {
        Deadlines {
            queue: VecDeque::new(),
            timeout,
        }
    }

    /// Starts the clock for connection `id` (serial `serial`), admitted or
    /// sending its first byte at `now`.
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

    fn limits(address: usize, prefix_56: usize, prefix_48: usize) -> PerAddressLimits {
        PerAddressLimits {
            address,
            prefix_56,
            prefix_48,
        }
    }

    #[test]
    fn ipv6_is_counted_per_64_56_and_48_and_released_from_each() {
        let mut per = PerAddress::new(limits(2, 3, 4));
        let cases = [
            ("2001:db8:0:100::1", true),
            ("2001:db8:0:100::2", true),
            ("2001:db8:0:100::3", false), // the /64 is full
            ("2001:db8:0:1ff::1", true),
            ("2001:db8:0:101::1", false), // the /56 is full
            ("2001:db8:0:200::1", true),
            ("2001:db8:0:300::1", false), // the /48 is full
            ("2001:db8:1::1", true),      // another /48
            ("192.0.2.1", true),
            ("192.0.2.1", true),
            ("::ffff:192.0.2.1", false), // IPv4's one key, by address
        ];
        for (addr, admitted) in cases {
            assert_eq!(per.admit(ip(addr)), admitted, "{addr}");
        }
        for (addr, admitted) in cases {
            if admitted {
                per.release(ip(addr));
            }
        }
        assert!(per.open.is_empty(), "no entry outlives its connections");
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
        let mut per = PerAddress::new(limits(2, 0, 0));
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
        let mut per = PerAddress::new(limits(0, 0, 0));
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
