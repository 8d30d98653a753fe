//! A stream subscriber's checks against a session relay: every record's
//! counter read in its own session and its share opened (or every record
//! opened by the protocol's session); a repeated, lost, reordered or
//! forged frame counted as what it is.

use eaxchat_proto::session::StaticSecret;

use super::*;
use crate::inbox::tests::{feed, record};
use crate::report::Errors;
use crate::wire::tests::{session_delivery, session_pair, session_roster};
use crate::wire::{Checking, Protocol, Wire};

const MESSAGES: u64 = 40;

/// The errors a session subscriber counts in what a session relay
/// delivers to it of probe, barrier and messages 0..MESSAGES, after
/// `fault`, opening one in `sample` (every one with `Checking::Every`);
/// and how many records it opened.
fn errors_with(
    fault: impl Fn(&mut Vec<Vec<u8>>),
    checking: Checking,
    sample: u64,
) -> (Errors, u64) {
    let relay = StaticSecret::generate().unwrap();
    let (publisher, subscriber) = (
        StaticSecret::generate().unwrap(),
        StaticSecret::generate().unwrap(),
    );
    let roster = session_roster(&["pub", "sub"], &relay);
    let mut wire = Wire::new(&Protocol::Sessions(roster), 64).unwrap();
    let (pub_client, mut pub_relay) = session_pair(&relay, &publisher, "pub");
    let (sub_client, mut sub_relay) = session_pair(&relay, &subscriber, "sub");
    wire.start_session(pub_client.session);
    let mut ledger = Ledger::new(64, wire.record_len());
    let mut sent = vec![record(&mut wire, PROBE, 0), record(&mut wire, BARRIER, 0)];
    for seq in 0..MESSAGES {
        ledger.sent(seq, 0);
        sent.push(record(&mut wire, 0, seq));
    }
    let mut records: Vec<Vec<u8>> = sent
        .iter()
        .map(|line| session_delivery(&mut pub_relay, "pub", &mut sub_relay, line))
        .collect();
    fault(&mut records);
    let reader = wire.session_reader(sub_client, checking).unwrap();
    let open_all = checking == Checking::Every;
    let mut inbox = StreamInbox::for_session(wire.record_len(), sample, open_all, reader, 1);
    let mut check = Checker::new(wire);
    feed(&mut inbox, &records, 97, &mut check, &mut ledger);
    assert!(inbox.ready());
    let mut errors = check.errors;
    errors.lost += MESSAGES.saturating_sub(inbox.next_seq());
    (errors, check.opened)
}

/// Every way a subscriber reads a session stream.
const READERS: [(Checking, u64); 3] = [
    (Checking::Every, 1),
    (Checking::Counters, 1),
    (Checking::Counters, 16),
];

#[test]
fn a_clean_session_stream_has_no_errors_and_opens_its_share() {
    for (checking, sample) in READERS {
        let (errors, opened) = errors_with(|_| {}, checking, sample);
        assert_eq!(errors, Errors::default(), "{checking:?} {sample}");
        // Phase 1: messages k with (k + 1) % sample == 0 are opened.
        let share = (0..MESSAGES).filter(|k| (k + 1) % sample == 0).count();
        assert_eq!(opened, share as u64, "{checking:?} {sample}");
    }
}

#[test]
fn each_kind_of_fault_is_counted_as_what_it_is() {
    for (checking, sample) in READERS {
        let with = |fault: fn(&mut Vec<Vec<u8>>)| errors_with(fault, checking, sample).0;
        let only = |errors: Errors| Errors {
            lost: errors.lost,
            duplicated: errors.duplicated,
            ..Errors::default()
        };
        // Message k is record k + 2, after the probe and the barrier.
        let errors = with(|r| r.insert(8, r[7].clone()));
        assert_eq!(errors.duplicated, 1, "{checking:?} {sample}: {errors:?}");
        assert_eq!(errors, only(errors), "{checking:?} {sample}");
        let errors = with(|r| {
            r.remove(12);
        });
        assert_eq!(errors.lost, 1, "{checking:?} {sample}: {errors:?}");
        if checking == Checking::Every {
            // After the gap the protocol's opener has lost its place: every
            // record after the one that showed the gap is out of step.
            assert_eq!(errors.out_of_step, MESSAGES - 12, "{errors:?}");
        } else {
            assert_eq!(errors, only(errors), "{sample}");
        }
        let errors = with(|r| r.swap(5, 6));
        assert!(errors.lost >= 1 && errors.total() >= 2, "{errors:?}");
        // A changed counter shows in every record; a changed body where the
        // record is opened (every record but with a sample).
        let errors = with(|r| r[9][20] = if r[9][20] == b'A' { b'B' } else { b'A' });
        assert!(errors.total() >= 1, "{checking:?} {sample}: {errors:?}");
        if sample == 1 {
            let errors = with(|r| r[9][30] = if r[9][30] == b'A' { b'B' } else { b'A' });
            assert!(errors.forged >= 1, "{checking:?}: {errors:?}");
        }
        let errors = with(|r| {
            r.pop();
        });
        assert_eq!(
            errors,
            Errors {
                lost: 1,
                ..Errors::default()
            }
        );
    }
}
