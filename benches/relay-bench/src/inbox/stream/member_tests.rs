//! A stream subscriber's checks against a members relay: every record
//! under its own key, and the publisher's name checked.

use super::*;
use crate::inbox::tests::{feed, record};
use crate::report::Errors;
use crate::wire::tests::{member_delivery, roster};
use crate::wire::{Protocol, Wire};

const MESSAGES: u64 = 40;

/// What subscriber 1 of a members relay receives from publisher 0:
/// probe, barrier, messages 0..MESSAGES, stamped `pub: `; and the
/// same stamped with `name` instead, to forge one with.
fn deliveries(wire: &mut Wire, ledger: &mut Ledger, name: &str) -> Vec<Vec<u8>> {
    let roster = roster(&["pub", "sub", "eve"]);
    let mut sent = vec![record(wire, PROBE, 0), record(wire, BARRIER, 0)];
    for seq in 0..MESSAGES {
        ledger.sent(seq, 0);
        sent.push(record(wire, 0, seq));
    }
    sent.iter()
        .map(|line| member_delivery(&roster, 0, name, 1, line))
        .collect()
}

/// The errors subscriber 1 counts in `records` (after `fault`), opening
/// one in `sample`.
fn errors_with(fault: impl Fn(&mut Vec<Vec<u8>>, &[Vec<u8>]), sample: u64) -> Errors {
    let roster = roster(&["pub", "sub", "eve"]);
    let mut wire = Wire::new(&Protocol::Members(roster.clone()), 64).unwrap();
    let mut ledger = Ledger::new(64, wire.record_len());
    let mut records = deliveries(&mut wire, &mut ledger, "pub");
    let misnamed = deliveries(&mut wire, &mut ledger, "eve");
    fault(&mut records, &misnamed);
    let reader = wire
        .member_reader(roster.member(1).unwrap().1)
        .unwrap()
        .unwrap();
    let len = wire.record_len();
    let mut check = Checker::new(wire);
    let mut inbox =
        StreamInbox::for_member(len, sample, false, Opener::Member(Box::new(reader)), 1);
    feed(&mut inbox, &records, 97, &mut check, &mut ledger);
    assert!(inbox.ready());
    let mut errors = check.errors;
    errors.lost += MESSAGES.saturating_sub(inbox.next_seq());
    if sample == 1 {
        // Every record after the barrier opened.
        assert_eq!(check.opened as usize, records.len() - 2, "{errors:?}");
    }
    errors
}

#[test]
fn a_clean_member_stream_has_no_errors_and_opens_its_share() {
    for sample in [1, 4, 16] {
        assert_eq!(errors_with(|_, _| {}, sample), Errors::default());
    }
}

#[test]
fn a_delivery_stamped_with_another_name_is_forged() {
    let errors = errors_with(|r, misnamed| r[7] = misnamed[7].clone(), 1);
    assert_eq!(errors.forged, 1, "{errors:?}");
    // In the setup, too: a probe under another name is no probe.
    let errors = errors_with(|r, misnamed| r[0] = misnamed[0].clone(), 1);
    assert_eq!(errors.forged, 1, "{errors:?}");
}

#[test]
fn losses_and_duplicates_show_at_the_next_record_opened() {
    type Fault = fn(&mut Vec<Vec<u8>>, &[Vec<u8>]);
    let cases: [(&str, Fault); 4] = [
        ("lost", |r, _| {
            r.remove(7);
        }),
        ("lost at the end", |r, _| {
            r.pop();
        }),
        ("duplicated", |r, _| r.insert(9, r[8].clone())),
        ("reordered", |r, _| r.swap(5, 6)),
    ];
    for (name, fault) in cases {
        for sample in [1, 4] {
            let errors = errors_with(fault, sample);
            assert!(errors.total() > 0, "{name}, sample {sample}: {errors:?}");
        }
    }
}
