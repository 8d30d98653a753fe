//! A stream subscriber's checks with a shared key: a clean stream has no
//! errors, and every kind of fault is counted whoever reads first.

use super::*;
use crate::inbox::tests::{feed, record};
use crate::report::Errors;
use crate::wire::{Protocol, Wire};
use eaxchat_proto::key::Key;

const MESSAGES: u64 = 40;

/// The records a publisher sends: probe, barrier, messages 0..MESSAGES.
fn stream(wire: &mut Wire, ledger: &mut Ledger) -> Vec<Vec<u8>> {
    let mut records = vec![record(wire, PROBE, 0), record(wire, BARRIER, 0)];
    for seq in 0..MESSAGES {
        ledger.sent(seq, 0);
        records.push(record(wire, 0, seq));
    }
    records
}

/// What one faulty subscriber's errors are, next to a healthy one that
/// reads first or second.
fn errors_with(fault: impl Fn(&mut Vec<Vec<u8>>), sample: u64, faulty_first: bool) -> Errors {
    let key = Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
    let mut wire = Wire::new(&Protocol::Eaxchat(key), 64).unwrap();
    let mut ledger = Ledger::new(64, wire.record_len());
    let records = stream(&mut wire, &mut ledger);
    let mut bad = records.clone();
    fault(&mut bad);
    let len = wire.record_len();
    let mut check = Checker::new(wire);
    let mut good_inbox = StreamInbox::new(len, 0, sample, false);
    let mut bad_inbox = StreamInbox::new(len, 0, sample, false);
    for turn in 0..2 {
        if (turn == 0) == faulty_first {
            feed(&mut bad_inbox, &bad, 97, &mut check, &mut ledger);
        } else {
            feed(&mut good_inbox, &records, 1000, &mut check, &mut ledger);
        }
    }
    assert!(good_inbox.ready() && bad_inbox.ready());
    assert_eq!(good_inbox.next_seq(), MESSAGES);
    let mut errors = check.errors;
    errors.lost += MESSAGES.saturating_sub(bad_inbox.next_seq());
    errors
}

#[test]
fn a_clean_stream_has_no_errors_and_opens_one_in_sample() {
    for faulty_first in [false, true] {
        assert_eq!(errors_with(|_| {}, 16, faulty_first), Errors::default());
    }
    let key = Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
    let mut wire = Wire::new(&Protocol::Eaxchat(key), 64).unwrap();
    let mut ledger = Ledger::new(64, wire.record_len());
    let records = stream(&mut wire, &mut ledger);
    let len = wire.record_len();
    let mut check = Checker::new(wire);
    let mut inboxes: Vec<StreamInbox> = (0..3)
        .map(|_| StreamInbox::new(len, 0, 16, false))
        .collect();
    for inbox in &mut inboxes {
        feed(inbox, &records, 333, &mut check, &mut ledger);
        assert_eq!(inbox.delivered(), MESSAGES);
    }
    // Two setup records per inbox, then messages 0, 16 and 32 once.
    assert_eq!(check.opened, 3);
    assert_eq!(check.errors, Errors::default());
}

/// Where message `seq` sits in the records `stream` returns.
fn at(seq: usize) -> usize {
    seq + 2
}

#[test]
fn every_kind_of_fault_is_counted_whoever_reads_first() {
    type Fault = fn(&mut Vec<Vec<u8>>);
    let cases: [(&str, Fault); 5] = [
        ("lost", |r| {
            r.remove(at(5));
        }),
        ("lost at the end", |r| {
            r.pop();
        }),
        ("duplicated", |r| r.insert(at(8), r[at(7)].clone())),
        ("reordered", |r| r.swap(at(3), at(4))),
        ("forged", |r| {
            let record = &mut r[at(9)];
            record[40] = if record[40] == b'A' { b'B' } else { b'A' };
        }),
    ];
    for (name, fault) in cases {
        for sample in [1, 16] {
            for faulty_first in [false, true] {
                let errors = errors_with(fault, sample, faulty_first);
                assert!(
                    errors.total() > 0,
                    "{name}, sample {sample}, faulty first {faulty_first}: {errors:?}"
                );
            }
        }
    }
}

#[test]
fn a_record_that_does_not_end_in_newline_is_malformed() {
    let errors = errors_with(
        |r| {
            let record = &mut r[5];
            record.pop();
        },
        16,
        false,
    );
    assert!(errors.malformed > 0, "{errors:?}");
}
