//! The relay's logic driven without sockets: `Relay<T>` over in-memory
//! writers, so fan-out, limits and close reasons are checked exactly.

// Test helpers may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::{self, Write};

use bytes::BytesMut;
use eaxchat_core::relay::{CloseReason, ConnId, Flush, Limits, Relay};
use eaxchat_proto::cipher::{Cipher, OpenError};
use eaxchat_proto::key::Key;

/// An in-memory connection that takes at most `room` more bytes.
#[derive(Debug, Default)]
struct Pipe {
    received: Vec<u8>,
    room: Option<usize>,
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match self.room {
            Some(0) => return Err(io::ErrorKind::WouldBlock.into()),
            Some(room) => buf.len().min(room),
            None => buf.len(),
        };
        if let Some(room) = &mut self.room {
            *room -= n;
        }
        self.received.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn key() -> Key {
    Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap()
}

fn relay(limits: Limits) -> Relay<Pipe> {
    Relay::new(Cipher::new(&key()).unwrap(), limits)
}

fn seal(text: &[u8]) -> Vec<u8> {
    let mut line = BytesMut::new();
    Cipher::new(&key()).unwrap().seal_into(text, &mut line);
    line.to_vec()
}

/// Flushes every waiting connection and returns the plaintexts `id` has
/// received.
fn delivered(relay: &mut Relay<Pipe>, id: ConnId) -> Vec<Vec<u8>> {
    while let Some(other) = relay.next_waiting() {
        relay.flush(other);
    }
    let mut cipher = Cipher::new(&key()).unwrap();
    let received = &relay.io_mut(id).unwrap().received;
    received
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| cipher.open(line).unwrap().to_vec())
        .collect()
}

fn closing(relay: &mut Relay<Pipe>) -> Vec<(ConnId, CloseReason)> {
    let mut ids = Vec::new();
    relay.take_closing(&mut ids);
    ids.into_iter()
        .map(|id| (id, relay.peer(id).unwrap().closing().unwrap()))
        .collect()
}

/// Each line reaches every other connection once, in order, never the sender.
#[test]
fn fans_out_to_everyone_but_the_sender() {
    let mut relay = relay(Limits::default());
    let ids: Vec<ConnId> = (0..3)
        .map(|_| relay.admit(Pipe::default()).unwrap())
        .collect();
    let mut input = seal(b"one");
    input.extend(seal(b"two"));
    // Split mid-line to exercise the reader across reads.
    relay.receive(ids[0], &input[..10]);
    relay.receive(ids[0], &input[10..]);
    relay.receive(ids[1], &seal(b"three"));
    assert_eq!(delivered(&mut relay, ids[0]), vec![b"three".to_vec()]);
    for &id in &ids[1..] {
        let got = delivered(&mut relay, id);
        let from_zero: Vec<_> = got.iter().filter(|m| *m != b"three").collect();
        assert_eq!(from_zero, [b"one", b"two"]);
    }
    assert_eq!(delivered(&mut relay, ids[2]).len(), 3);
    let stats = relay.stats();
    assert_eq!((stats.frames_in, stats.frames_out), (3, 6));
}

/// Every kind of bad line closes only its sender, is counted by reason, and
/// reaches nobody; lines before it in the same read still go out.
#[test]
fn bad_lines_close_the_sender_only() {
    // A fresh frame for each use: the relay refuses one sent twice.
    let good = || seal(b"fine");
    // Flip a bit of the decoded frame and re-encode, so the line stays valid
    // base64 whatever the nonce and only the tag check can catch it.
    let forged = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let sealed = seal(b"forged");
        let mut frame = b64.decode(&sealed[..sealed.len() - 1]).unwrap();
        frame[20] ^= 1;
        let mut line = b64.encode(frame).into_bytes();
        line.push(b'\n');
        line
    };
    let cases: [(&[u8], CloseReason); 4] = [
        (b"not base64!\n", CloseReason::BadFrame(OpenError::Base64)),
        (b"QUJD\n", CloseReason::BadFrame(OpenError::TooShort)),
        (&forged, CloseReason::BadFrame(OpenError::BadTag)),
        (&[b'A'; 200], CloseReason::LineTooLong),
    ];
    for (bad, reason) in cases {
        let mut relay = relay(Limits {
            max_frame: 100,
            ..Limits::default()
        });
        let sender = relay.admit(Pipe::default()).unwrap();
        let other = relay.admit(Pipe::default()).unwrap();
        let mut input = good();
        input.extend_from_slice(bad);
        input.extend_from_slice(&good());
        relay.receive(sender, &input);
        relay.receive(sender, &good());
        assert_eq!(closing(&mut relay), vec![(sender, reason)]);
        assert_eq!(
            delivered(&mut relay, other),
            vec![b"fine".to_vec()],
            "{reason}"
        );
        assert_eq!(relay.stats().rejected.total(), 1);
        relay.remove(sender).unwrap();
        relay.receive(other, &good());
        assert_eq!(relay.stats().frames_in, 2, "the relay carries on");
    }
}

/// A consumer that stops reading is dropped once its queue passes the
/// limit; a consumer that keeps up gets everything.
#[test]
fn slow_consumer_is_dropped_and_fast_one_is_not() {
    let mut relay = relay(Limits {
        max_queue: 10_000,
        ..Limits::default()
    });
    let sender = relay.admit(Pipe::default()).unwrap();
    let fast = relay.admit(Pipe::default()).unwrap();
    let slow = relay
        .admit(Pipe {
            room: Some(0),
            ..Pipe::default()
        })
        .unwrap();
    for _ in 0..100 {
        relay.receive(sender, &seal(&[7u8; 500]));
        while let Some(id) = relay.next_waiting() {
            let flush = relay.flush(id);
            if id == slow {
                assert_ne!(flush, Flush::Drained);
            }
        }
        assert!(relay.peer(slow).unwrap().queued_bytes() <= 10_000);
    }
    assert_eq!(closing(&mut relay), vec![(slow, CloseReason::SlowConsumer)]);
    assert_eq!(
        relay.peer(slow).unwrap().queued_bytes(),
        0,
        "memory released"
    );
    assert_eq!(delivered(&mut relay, fast).len(), 100);
    assert_eq!(relay.stats().slow_consumers, 1);
}

/// Past `max_clients` a connection is handed back and counted.
#[test]
fn refuses_past_max_clients() {
    let mut relay = relay(Limits {
        max_clients: 2,
        ..Limits::default()
    });
    let first = relay.admit(Pipe::default()).unwrap();
    relay.admit(Pipe::default()).unwrap();
    assert!(relay.admit(Pipe::default()).is_err());
    assert_eq!(relay.stats().clients_refused, 1);
    relay.close(first, CloseReason::PeerClosed);
    relay.take_closing(&mut Vec::new());
    relay.remove(first).unwrap();
    assert!(relay.admit(Pipe::default()).is_ok());
    assert_eq!(relay.stats().connections, 2);
}

/// A frame without a newline is relayed while the connection has never sent
/// a newline; after its first newline, it waits for the line to end.
#[test]
fn newline_less_frames_only_before_the_first_newline() {
    let mut relay = relay(Limits::default());
    let legacy = relay.admit(Pipe::default()).unwrap();
    let other = relay.admit(Pipe::default()).unwrap();
    let frame = seal(b"legacy");
    let bare = &frame[..frame.len() - 1];
    // Half a frame does not authenticate: held, not rejected.
    relay.receive(legacy, &bare[..20]);
    assert!(delivered(&mut relay, other).is_empty());
    relay.receive(legacy, &bare[20..]);
    assert_eq!(delivered(&mut relay, other), vec![b"legacy".to_vec()]);
    let again = seal(b"legacy");
    relay.receive(legacy, &again[..again.len() - 1]);
    assert_eq!(delivered(&mut relay, other).len(), 2);
    assert!(closing(&mut relay).is_empty());
    assert_eq!(relay.stats().rejected.total(), 0);

    let modern = relay.admit(Pipe::default()).unwrap();
    relay.receive(modern, &seal(b"with newline"));
    let late = seal(b"legacy");
    relay.receive(modern, &late[..late.len() - 1]);
    assert_eq!(
        delivered(&mut relay, other).len(),
        3,
        "no probe after a newline"
    );
    relay.receive(modern, b"\n");
    assert_eq!(delivered(&mut relay, other).len(), 4);
}

/// The limit is inclusive: a queue of exactly `max_queue` bytes that cannot
/// be written stays; one byte more and the consumer is dropped.
#[test]
fn slow_consumer_limit_is_exact() {
    let frame = seal(b"boundary");
    for (max_queue, dropped_after) in [
        (frame.len(), 2),
        (2 * frame.len(), 3),
        (2 * frame.len() - 1, 2),
    ] {
        let mut relay = relay(Limits {
            max_queue,
            ..Limits::default()
        });
        let sender = relay.admit(Pipe::default()).unwrap();
        let stuck = relay
            .admit(Pipe {
                room: Some(0),
                ..Pipe::default()
            })
            .unwrap();
        for sent in 1..=dropped_after {
            // Fresh frames of one length: the relay refuses one sent twice.
            relay.receive(sender, &seal(b"boundary"));
            assert_eq!(
                relay.flush(stuck),
                if sent < dropped_after {
                    Flush::Blocked
                } else {
                    Flush::Closed
                }
            );
        }
        assert_eq!(
            closing(&mut relay),
            vec![(stuck, CloseReason::SlowConsumer)],
            "max_queue {max_queue}"
        );
    }
}

/// Hands out every waiting connection, flushing each, in sweep order.
fn sweep(relay: &mut Relay<Pipe>) -> Vec<ConnId> {
    let mut order = Vec::new();
    while let Some(id) = relay.next_waiting() {
        assert_eq!(relay.flush(id), Flush::Drained);
        order.push(id);
    }
    order
}

/// Connections with new frames are written oldest first: one that gets
/// more frames while waiting keeps its place, one already written goes to
/// the back, and connections that left are skipped.
#[test]
fn writes_sweep_oldest_first() {
    let mut relay = relay(Limits::default());
    let a = relay.admit(Pipe::default()).unwrap();
    let b = relay.admit(Pipe::default()).unwrap();
    let c = relay.admit(Pipe::default()).unwrap();
    let d = relay.admit(Pipe::default()).unwrap();
    relay.receive(a, &seal(b"one"));
    assert!(relay.has_waiting());
    assert_eq!(relay.next_waiting(), Some(b));
    assert_eq!(relay.flush(b), Flush::Drained);

    // Mid-sweep, `d` sends: `c` keeps its place and takes both frames in
    // one write; `a` and `b` queue behind `d`.
    relay.receive(d, &seal(b"two"));
    assert_eq!(relay.next_waiting(), Some(c));
    assert_eq!(relay.flush(c), Flush::Drained);
    assert_eq!(
        relay.io_mut(c).unwrap().received.len(),
        seal(b"one").len() + seal(b"two").len()
    );

    // `d` leaves and a new connection takes its id: `d`'s entry is stale.
    relay.close(d, CloseReason::PeerClosed);
    assert!(relay.remove(d).is_some());
    let newcomer = relay.admit(Pipe::default()).unwrap();
    assert_eq!(newcomer, d, "the slab reuses the id");

    assert_eq!(sweep(&mut relay), vec![a, b]);
    assert!(!relay.has_waiting());
    assert_eq!(delivered(&mut relay, a), vec![b"two".to_vec()]);
    assert_eq!(
        delivered(&mut relay, b),
        vec![b"one".to_vec(), b"two".to_vec()]
    );
    assert_eq!(
        delivered(&mut relay, c),
        vec![b"one".to_vec(), b"two".to_vec()]
    );
    assert!(delivered(&mut relay, newcomer).is_empty());
}

#[test]
fn written_connections_rejoin_the_sweep_in_the_order_they_were_written() {
    let mut relay = relay(Limits::default());
    let sender = relay.admit(Pipe::default()).unwrap();
    let a = relay.admit(Pipe::default()).unwrap();
    let b = relay.admit(Pipe::default()).unwrap();
    let c = relay.admit(Pipe::default()).unwrap();

    // The sweep writes `a` and `b`, then a second frame arrives: `c` still
    // waits for the first, and is written before them.
    relay.receive(sender, &seal(b"one"));
    assert_eq!(relay.next_waiting(), Some(a));
    assert_eq!(relay.flush(a), Flush::Drained);
    assert_eq!(relay.next_waiting(), Some(b));
    assert_eq!(relay.flush(b), Flush::Drained);
    relay.receive(sender, &seal(b"two"));
    assert_eq!(sweep(&mut relay), vec![c, a, b]);

    // Written last to first as c, a, b: the next frame finds them in that
    // order, not in the order of their ids. Each waits one whole sweep.
    relay.receive(sender, &seal(b"three"));
    assert_eq!(sweep(&mut relay), vec![c, a, b]);

    // The sender was never written, so it has no place yet: a frame from
    // `a` queues it as a newcomer, ahead of `c` and `b`, who rejoin in the
    // order they were written.
    relay.receive(a, &seal(b"four"));
    assert_eq!(sweep(&mut relay), vec![sender, c, b]);
    // `a` sent the last frame and got nothing, so it is ahead of the rest.
    relay.receive(sender, &seal(b"five"));
    assert_eq!(sweep(&mut relay), vec![a, c, b]);
    for id in [a, b, c] {
        let got = delivered(&mut relay, id);
        assert_eq!(got.len(), if id == a { 4 } else { 5 }, "conn {id}");
    }
}

#[test]
fn a_reused_id_takes_the_newcomers_place_not_the_old_one() {
    let mut relay = relay(Limits::default());
    let sender = relay.admit(Pipe::default()).unwrap();
    let a = relay.admit(Pipe::default()).unwrap();
    let b = relay.admit(Pipe::default()).unwrap();
    let c = relay.admit(Pipe::default()).unwrap();
    relay.receive(sender, &seal(b"one"));

    // `b` leaves while it waits, and a newcomer takes its id: `b`'s entry,
    // ahead of `c`, is not the newcomer's.
    relay.close(b, CloseReason::PeerClosed);
    assert!(relay.remove(b).is_some());
    let newcomer = relay.admit(Pipe::default()).unwrap();
    assert_eq!(newcomer, b, "the slab reuses the id");
    relay.receive(sender, &seal(b"two"));
    assert_eq!(sweep(&mut relay), vec![a, c, newcomer]);

    // And it is written once per sweep, not once per entry.
    for text in [b"three", b"four!"] {
        relay.receive(sender, &seal(text));
        assert_eq!(sweep(&mut relay), vec![a, c, newcomer]);
    }
    assert_eq!(delivered(&mut relay, newcomer).len(), 3);
    assert_eq!(delivered(&mut relay, a).len(), 4);
}

/// Limits with a pre-auth budget of `budget` bytes and the rest default.
fn with_budget(budget: usize) -> Limits {
    Limits {
        pre_auth_budget: budget,
        ..Limits::default()
    }
}

/// Peers without the key hold at most the budget in all: past it, the one
/// holding the most is closed, counted, and its bytes let go; a peer that
/// has authenticated is never closed by the budget, however much it holds.
#[test]
fn unauthenticated_bytes_stay_within_the_budget_and_the_biggest_goes() {
    let mut relay = relay(with_budget(10_000));
    let trusted = relay.admit(Pipe::default()).unwrap();
    relay.receive(trusted, &seal(b"hello"));
    // Well past the budget, but authenticated: not counted.
    relay.receive(trusted, &[b'A'; 20_000]);
    let small = relay.admit(Pipe::default()).unwrap();
    relay.receive(small, &[b'A'; 1_000]);
    let big = relay.admit(Pipe::default()).unwrap();
    relay.receive(big, &[b'A'; 8_000]);
    assert_eq!(relay.stats().pre_auth_over_budget, 0);
    let third = relay.admit(Pipe::default()).unwrap();
    relay.receive(third, &[b'A'; 2_000]);
    assert_eq!(
        relay.peer(big).unwrap().closing(),
        Some(CloseReason::PreAuthOverBudget)
    );
    assert_eq!(relay.peer(big).unwrap().buffered(), 0, "let go at once");
    for id in [trusted, small, third] {
        assert_eq!(relay.peer(id).unwrap().closing(), None, "conn {id}");
    }
    assert_eq!(relay.stats().pre_auth_over_budget, 1);
    assert!(relay.peer(trusted).unwrap().is_authenticated());
    assert_eq!(relay.peer(trusted).unwrap().buffered(), 20_000);
}

/// A flood of keyless connections, each topping up its unfinished line in
/// turn, never makes the relay hold more than the budget for them, and a
/// chatting pair keeps getting everything.
#[test]
fn a_flood_of_keyless_lines_never_holds_more_than_the_budget() {
    let budget = 64 * 1024;
    let mut relay = relay(with_budget(budget));
    let alice = relay.admit(Pipe::default()).unwrap();
    let bob = relay.admit(Pipe::default()).unwrap();
    relay.receive(bob, &seal(b"bob is here"));
    let flooders: Vec<ConnId> = (0..50)
        .map(|_| relay.admit(Pipe::default()).unwrap())
        .collect();
    let mut sent = Vec::new();
    for round in 0..40 {
        for &id in &flooders {
            relay.receive(id, &[b'Q'; 500]);
            let held: usize = relay
                .ids()
                .filter_map(|id| relay.peer(id))
                .filter(|peer| !peer.is_authenticated())
                .map(|peer| peer.buffered())
                .sum();
            assert!(held <= budget, "held {held} > {budget}");
        }
        let text = format!("round {round}");
        relay.receive(alice, &seal(text.as_bytes()));
        sent.push(text.into_bytes());
    }
    assert!(relay.stats().pre_auth_over_budget > 0);
    assert_eq!(relay.peer(alice).unwrap().closing(), None);
    assert_eq!(relay.peer(bob).unwrap().closing(), None);
    assert_eq!(delivered(&mut relay, bob), sent);
}

/// The first-frame deadline closes a connection that sent bytes but no
/// frame that opened, and leaves alone one that sent nothing and one that
/// authenticated.
#[test]
fn the_first_frame_deadline_closes_only_the_unproven() {
    let limits = Limits {
        first_frame_timeout: std::time::Duration::from_secs(10),
        ..Limits::default()
    };
    let mut relay = relay(limits);
    let t0 = std::time::Instant::now();
    relay.set_now(t0);
    let silent = relay.admit(Pipe::default()).unwrap();
    let slow = relay.admit(Pipe::default()).unwrap();
    let proven = relay.admit(Pipe::default()).unwrap();
    let whole = seal(b"a whole frame");
    relay.receive(slow, &seal(b"half a frame")[..20]);
    relay.receive(proven, &whole[..20]);
    relay.set_now(t0 + std::time::Duration::from_secs(5));
    relay.receive(proven, &whole[20..]);
    assert!(relay.peer(proven).unwrap().is_authenticated());
    assert_eq!(
        relay.next_timer(),
        Some(t0 + std::time::Duration::from_secs(10))
    );
    relay.set_now(t0 + std::time::Duration::from_millis(9_999));
    relay.run_timers();
    assert_eq!(relay.peer(slow).unwrap().closing(), None, "not yet due");
    relay.set_now(t0 + std::time::Duration::from_secs(60));
    relay.run_timers();
    assert_eq!(
        relay.peer(slow).unwrap().closing(),
        Some(CloseReason::FirstFrameTimeout)
    );
    assert_eq!(relay.peer(silent).unwrap().closing(), None);
    assert_eq!(relay.peer(proven).unwrap().closing(), None);
    assert_eq!(relay.stats().first_frame_timeouts, 1);
    assert_eq!(relay.next_timer(), None);
}

/// A reused id does not inherit the deadline of the connection that held
/// it before.
#[test]
fn a_deadline_does_not_outlive_its_connection() {
    let mut relay = relay(Limits::default());
    let t0 = std::time::Instant::now();
    relay.set_now(t0);
    let first = relay.admit(Pipe::default()).unwrap();
    relay.receive(first, b"AAAA");
    relay.close(first, CloseReason::PeerClosed);
    relay.remove(first).unwrap();
    let second = relay.admit(Pipe::default()).unwrap();
    assert_eq!(first, second, "the slab reuses the id");
    relay.set_now(t0 + std::time::Duration::from_secs(9));
    relay.receive(second, b"BBBB");
    relay.set_now(t0 + std::time::Duration::from_secs(11));
    relay.run_timers();
    assert_eq!(relay.peer(second).unwrap().closing(), None);
    relay.set_now(t0 + std::time::Duration::from_secs(19));
    relay.run_timers();
    assert_eq!(
        relay.peer(second).unwrap().closing(),
        Some(CloseReason::FirstFrameTimeout)
    );
}

/// Connections per address: refused past the limit (and counted), and
/// accepted again once one closes; other addresses are counted apart.
#[test]
fn the_per_address_limit_refuses_then_accepts_again() {
    use eaxchat_core::relay::Refusal;
    use std::net::IpAddr;
    let mut relay = relay(Limits {
        max_per_address: 2,
        ..Limits::default()
    });
    let home: IpAddr = "192.0.2.7".parse().unwrap();
    let other: IpAddr = "2001:db8::1".parse().unwrap();
    let a = relay.admit_from(Pipe::default(), Some(home)).unwrap();
    relay.admit_from(Pipe::default(), Some(home)).unwrap();
    let refused = relay.admit_from(Pipe::default(), Some(home)).unwrap_err();
    assert_eq!(refused.limit, Refusal::MaxPerAddress);
    assert_eq!(relay.stats().refused_per_address, 1);
    relay.admit_from(Pipe::default(), Some(other)).unwrap();
    relay.close(a, CloseReason::PeerClosed);
    relay.remove(a).unwrap();
    relay.admit_from(Pipe::default(), Some(home)).unwrap();
    assert_eq!(relay.stats().connections, 3);
}

/// A frame sent again, on the same connection or another, is refused as a
/// replay: its sender is closed, it reaches nobody, frames before it in the
/// same read still go out and frames after it do not.
#[test]
fn a_replayed_line_closes_its_sender_and_is_not_relayed() {
    let mut relay = relay(Limits::default());
    let alice = relay.admit(Pipe::default()).unwrap();
    let mallory = relay.admit(Pipe::default()).unwrap();
    let bob = relay.admit(Pipe::default()).unwrap();
    let captured = seal(b"pay bob 10");
    relay.receive(alice, &captured);
    assert_eq!(delivered(&mut relay, bob), vec![b"pay bob 10".to_vec()]);

    let mut input = seal(b"before");
    input.extend_from_slice(&captured);
    input.extend_from_slice(&seal(b"after"));
    relay.receive(mallory, &input);
    assert_eq!(closing(&mut relay), vec![(mallory, CloseReason::Replay)]);
    assert_eq!(
        CloseReason::Replay.to_string(),
        "rejected frame: replayed nonce"
    );
    assert_eq!(
        delivered(&mut relay, bob),
        vec![b"pay bob 10".to_vec(), b"before".to_vec()]
    );
    assert_eq!(relay.stats().rejected.replayed, 1);
    assert_eq!(relay.stats().frames_in, 2);

    // The first sender sending it again is refused too.
    relay.receive(alice, &captured);
    assert_eq!(closing(&mut relay), vec![(alice, CloseReason::Replay)]);
    assert_eq!(relay.stats().rejected.replayed, 2);
    assert_eq!(delivered(&mut relay, bob).len(), 2);
}

/// The original notebook client's newline-less frames pass the same check:
/// one sent again, in the same read or on another connection, is refused.
#[test]
fn a_replayed_newline_less_frame_is_refused() {
    let mut relay = relay(Limits::default());
    let legacy = relay.admit(Pipe::default()).unwrap();
    let other = relay.admit(Pipe::default()).unwrap();
    let copycat = relay.admit(Pipe::default()).unwrap();
    let frame = seal(b"legacy");
    let bare = &frame[..frame.len() - 1];
    relay.receive(legacy, bare);
    assert_eq!(delivered(&mut relay, other), vec![b"legacy".to_vec()]);

    relay.receive(copycat, bare);
    assert_eq!(closing(&mut relay), vec![(copycat, CloseReason::Replay)]);

    let next = seal(b"next");
    let mut twice = next[..next.len() - 1].to_vec();
    twice.extend_from_slice(&next[..next.len() - 1]);
    relay.receive(legacy, &twice);
    assert_eq!(closing(&mut relay), vec![(legacy, CloseReason::Replay)]);
    assert_eq!(
        delivered(&mut relay, other),
        vec![b"legacy".to_vec(), b"next".to_vec()],
        "the first copy went out, the second did not"
    );
    assert_eq!(relay.stats().rejected.replayed, 2);
}

/// A frame the relay sealed, sent back to it by a client, is refused: the
/// relay knows its own nonces without remembering them.
#[test]
fn a_relay_frame_reflected_back_is_refused() {
    for newline in [true, false] {
        let mut relay = relay(Limits::default());
        let alice = relay.admit(Pipe::default()).unwrap();
        let mirror = relay.admit(Pipe::default()).unwrap();
        relay.receive(alice, &seal(b"hello"));
        assert_eq!(delivered(&mut relay, mirror), vec![b"hello".to_vec()]);
        let mut reflected = relay.io_mut(mirror).unwrap().received.clone();
        if !newline {
            reflected.pop();
        }
        relay.receive(mirror, &reflected);
        assert_eq!(
            closing(&mut relay),
            vec![(mirror, CloseReason::Replay)],
            "newline {newline}"
        );
        assert!(delivered(&mut relay, alice).is_empty());
        assert_eq!(relay.stats().rejected.replayed, 1);
    }
}

/// The documented limit: the window holds the last 262,144 accepted
/// nonces (and at most twice that); a frame older than all of them is
/// accepted again.
#[test]
fn a_frame_older_than_the_window_is_accepted_again() {
    use eaxchat_proto::replay::WINDOW;
    let mut relay = relay(Limits::default());
    let sender = relay.admit(Pipe::default()).unwrap();
    let old = seal(b"very old");
    relay.receive(sender, &old);
    let mut client = Cipher::new(&key()).unwrap();
    let mut lines = BytesMut::new();
    for sent in 1..2 * WINDOW {
        client.seal_into(b"", &mut lines);
        if sent % 4096 == 0 || sent == 2 * WINDOW - 1 {
            relay.receive(sender, &lines);
            lines.clear();
        }
    }
    assert!(closing(&mut relay).is_empty());
    assert_eq!(relay.stats().frames_in, 2 * WINDOW as u64);
    let late = relay.admit(Pipe::default()).unwrap();
    let listener = relay.admit(Pipe::default()).unwrap();
    relay.receive(late, &old);
    assert!(closing(&mut relay).is_empty());
    assert_eq!(delivered(&mut relay, listener), vec![b"very old".to_vec()]);
    assert_eq!(relay.stats().rejected.replayed, 0);
}
