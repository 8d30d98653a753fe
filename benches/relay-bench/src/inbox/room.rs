//! The inbox of a room's client: every record opened and checked against
//! the next sequence number expected from its sender (see [`super`]).

use super::{Checker, Inbox, Records};
use crate::wire::PROBE;

/// Client `me`'s receive state in a room: what it expects from each sender.
pub struct RoomInbox {
    records: Records,
    senders: Senders,
}

/// What a room's client has heard from each of the others.
struct Senders {
    me: u32,
    /// For each sender, the sequence number expected next.
    expected: Vec<u64>,
    probed_by: Vec<bool>,
    probes: usize,
    deliveries: u64,
}

impl RoomInbox {
    /// Client `me` of a room of `clients`, opening every record.
    pub fn new(record_len: usize, me: u32, clients: usize) -> RoomInbox {
        RoomInbox {
            records: Records::new(record_len, 0),
            senders: Senders {
                me,
                expected: vec![0; clients],
                probed_by: vec![false; clients],
                probes: 0,
                deliveries: 0,
            },
        }
    }

    /// Whether every other client has been heard from.
    pub fn ready(&self) -> bool {
        self.senders.probes + 1 >= self.senders.expected.len()
    }

    /// Data records received: messages delivered to this client.
    pub fn delivered(&self) -> u64 {
        self.senders.deliveries
    }

    /// The next sequence number expected from `sender`: how many of its
    /// messages arrived, in order.
    pub fn received_from(&self, sender: usize) -> u64 {
        self.senders.expected.get(sender).copied().unwrap_or(0)
    }
}

impl Inbox for RoomInbox {
    /// Room deliveries are all opened and carry their send time.
    type Against = ();

    fn carry(&self) -> &[u8] {
        self.records.carry()
    }

    fn absorb(&mut self, data: &[u8], now_ns: u64, check: &mut Checker, _: &mut ()) -> usize {
        let len = self.records.record_len();
        let senders = &mut self.senders;
        self.records.split(data, check, |rest, check| {
            senders.on_record(&rest[..len], now_ns, check);
            1
        })
    }
}

impl Senders {
    fn on_record(&mut self, record: &[u8], now_ns: u64, check: &mut Checker) {
        let Ok(header) = check.wire.decode(record) else {
            check.errors.forged += 1;
            return;
        };
        if header.sender == PROBE {
            // A probe's seq is its sender's index.
            match self.probed_by.get_mut(header.seq as usize) {
                Some(seen) if header.seq != u64::from(self.me) => {
                    if !*seen {
                        *seen = true;
                        self.probes += 1;
                    }
                }
                _ => check.errors.forged += 1,
            }
            return;
        }
        check.opened += 1;
        let from = header.sender as usize;
        let me = self.me;
        let Some(want) = self.expected.get_mut(from).filter(|_| header.sender != me) else {
            check.errors.forged += 1;
            return;
        };
        self.deliveries += 1;
        check.record_latency(now_ns.saturating_sub(header.stamp_ns), 1);
        if header.seq > *want {
            check.errors.lost += header.seq - *want;
        } else if header.seq < *want {
            check.errors.duplicated += 1;
            return;
        }
        *want = header.seq + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::tests::{feed, record};
    use crate::wire::{Protocol, Wire};

    #[test]
    fn a_room_checks_each_sender_separately() {
        let mut wire = Wire::new(&Protocol::Plain, 64).unwrap();
        let len = wire.record_len();
        let records = [
            record(&mut wire, PROBE, 1),
            record(&mut wire, PROBE, 2),
            record(&mut wire, 1, 0),
            record(&mut wire, 2, 0),
            record(&mut wire, 1, 1),
            record(&mut wire, 2, 2),
            record(&mut wire, 1, 1),
            record(&mut wire, 0, 0),
        ];
        let mut check = Checker::new(Wire::new(&Protocol::Plain, 64).unwrap());
        let mut inbox = RoomInbox::new(len, 0, 3);
        feed(&mut inbox, &records, 50, &mut check, &mut ());
        assert!(inbox.ready());
        assert_eq!(inbox.received_from(1), 2);
        assert_eq!(inbox.received_from(2), 3);
        assert_eq!(check.errors.lost, 1, "2's message 1");
        assert_eq!(check.errors.duplicated, 1, "1's message 1 again");
        assert_eq!(check.errors.forged, 1, "a message from itself");
    }
}
