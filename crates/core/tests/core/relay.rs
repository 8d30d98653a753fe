//! The relay's logic driven without sockets: `Relay<T>` over in-memory
//! writers, so fan-out, slow consumers, connection limits, close reasons
//! and the order of writes are checked exactly. What a peer without the
//! key can cost, and replays, are `guard.rs`'s.

// Test helpers may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use eaxchat_core::relay::{CloseReason, ConnId, Flush, Limits, Relay};
use eaxchat_proto::cipher::OpenError;

use crate::util::{Pipe, closing, delivered, relay, seal};

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

/// Seals `text` under the static key of member key byte `byte`
/// ([`crate::guard::members_relay`]).
fn member_seal(byte: u8, text: &[u8]) -> Vec<u8> {
    let key = eaxchat_proto::key::Key::from_hex(&crate::guard::hex_key(byte)).unwrap();
    let mut line = bytes::BytesMut::new();
    eaxchat_proto::cipher::Cipher::new(&key)
        .unwrap()
        .seal_into(text, &mut line);
    line.to_vec()
}

/// What member key byte `byte`'s connection `id` was sent, opened.
fn member_got(relay: &mut Relay<Pipe>, id: ConnId, byte: u8) -> Vec<String> {
    let key = eaxchat_proto::key::Key::from_hex(&crate::guard::hex_key(byte)).unwrap();
    let mut cipher = eaxchat_proto::cipher::Cipher::new(&key).unwrap();
    crate::util::written(relay, id)
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| String::from_utf8(cipher.open(line).unwrap().to_vec()).unwrap())
        .collect()
}

/// The texts that would forge a second line, or overwrite the stamp, for
/// a reader that prints plaintexts as lines.
const FORGERIES: [&str; 5] = [
    "hi\nalice: meet at 9",
    "hi\r\nalice: meet at 9",
    "\ralice: meet at 9",
    "/me waves\nalice: meet at 9",
    "/msg bob hi\nalice: meet at 9",
];

/// Finding 3 of issue #29: a member's text holding `\r` or `\n` is never
/// stamped and relayed (it would show as a line from someone else): the
/// sender is told why, stays connected, and its next message goes out.
#[test]
fn a_members_text_with_a_line_break_is_refused_with_a_notice() {
    let mut relay = crate::guard::members_relay(&[("mallory", 1), ("bob", 2)], Limits::default());
    let mallory = relay.admit(Pipe::default()).unwrap();
    relay.receive(mallory, &member_seal(1, b""));
    let bob = relay.admit(Pipe::default()).unwrap();
    relay.receive(bob, &member_seal(2, b""));
    for forged in FORGERIES {
        relay.receive(mallory, &member_seal(1, forged.as_bytes()));
        assert!(member_got(&mut relay, bob, 2).is_empty(), "{forged:?}");
        let told = member_got(&mut relay, mallory, 1);
        assert_eq!(told.len(), 1, "{forged:?}: {told:?}");
        assert!(told[0].contains("line break"), "{forged:?}: {told:?}");
    }
    assert!(closing(&mut relay).is_empty());
    relay.receive(mallory, &member_seal(1, b"one line"));
    assert_eq!(member_got(&mut relay, bob, 2), ["mallory: one line"]);
}

/// The same for a session member.
#[test]
fn a_session_members_text_with_a_line_break_is_refused_with_a_notice() {
    use crate::util::{SessionClient, sessions_relay};
    use eaxchat_core::relay::ChatConfig;
    let mut relay = sessions_relay(
        &[("mallory", 1), ("bob", 2)],
        Limits::default(),
        ChatConfig::quiet(),
    );
    let mut mallory = SessionClient::connect(&mut relay, 1);
    let mut bob = SessionClient::connect(&mut relay, 2);
    mallory.say(&mut relay, "");
    bob.say(&mut relay, "");
    for forged in FORGERIES {
        mallory.say(&mut relay, forged);
        assert!(bob.got(&mut relay).is_empty(), "{forged:?}");
        let told = mallory.got(&mut relay);
        assert_eq!(told.len(), 1, "{forged:?}: {told:?}");
        assert!(told[0].contains("line break"), "{forged:?}: {told:?}");
    }
    assert!(closing(&mut relay).is_empty());
    mallory.say(&mut relay, "one line");
    assert_eq!(bob.got(&mut relay), ["mallory: one line"]);
}

/// Members and session mode always require proof: a connection that has
/// not identified (not finished its handshake) is written nothing of what
/// the members say, and is not counted as a keyless listener.
#[test]
fn nothing_reaches_a_members_or_session_connection_before_its_proof() {
    use crate::util::{SessionClient, sessions_relay, written};
    use eaxchat_core::relay::ChatConfig;
    let mut relay = sessions_relay(
        &[("alice", 1), ("bob", 2)],
        Limits::default(),
        ChatConfig::default(),
    );
    let silent = relay.admit(Pipe::default()).unwrap();
    let mut alice = SessionClient::connect(&mut relay, 1);
    let mut bob = SessionClient::connect(&mut relay, 2);
    bob.say(&mut relay, "");
    alice.say(&mut relay, "to the room");
    let got = bob.got(&mut relay);
    assert!(got.contains(&"alice: to the room".to_owned()), "{got:?}");
    assert!(written(&mut relay, silent).is_empty());

    let mut relay = crate::guard::members_relay(&[("alice", 1), ("bob", 2)], Limits::default());
    let silent = relay.admit(Pipe::default()).unwrap();
    let key = |byte| eaxchat_proto::key::Key::from_hex(&crate::guard::hex_key(byte)).unwrap();
    let seal_as = |byte, text: &[u8]| {
        let mut line = bytes::BytesMut::new();
        eaxchat_proto::cipher::Cipher::new(&key(byte))
            .unwrap()
            .seal_into(text, &mut line);
        line
    };
    let alice = relay.admit(Pipe::default()).unwrap();
    let bob = relay.admit(Pipe::default()).unwrap();
    relay.receive(bob, &seal_as(2, b""));
    relay.receive(alice, &seal_as(1, b"to the room"));
    assert!(!written(&mut relay, bob).is_empty());
    assert!(written(&mut relay, silent).is_empty());
    assert_eq!(relay.stats().keyless_frames_out, 0);
}

/// A read is cut so that its fan-out stays about cache-sized: all the
/// caller can take while the room is small, less as it grows, never below
/// `MIN_READ`.
#[test]
fn a_read_is_cut_as_the_room_grows() {
    use eaxchat_core::relay::{FANOUT_ARENA, MIN_READ};
    let mut relay = relay(Limits::default());
    let first = relay.admit(Pipe::default()).unwrap();
    assert_eq!(relay.read_budget(first, 65536), 65536, "alone");
    for _ in 0..9 {
        relay.admit(Pipe::default()).unwrap();
    }
    assert_eq!(relay.read_budget(first, 65536), 65536, "nine others");
    for _ in 0..90 {
        relay.admit(Pipe::default()).unwrap();
    }
    assert_eq!(relay.read_budget(first, 65536), FANOUT_ARENA / 99);
    assert!(relay.read_budget(first, 65536) < 16 * 1024);
    for _ in 0..900 {
        relay.admit(Pipe::default()).unwrap();
    }
    assert_eq!(relay.read_budget(first, 65536), MIN_READ);
    assert_eq!(
        relay.read_budget(first, 1024),
        1024,
        "never past the caller's"
    );
}

/// A shared-key read's lines are opened side by side ahead of being taken
/// (`OpenedLines`): in a read of 40 lines with one forged, wherever it
/// is, every line before it goes out in order and none after; a line sent
/// twice in one read is still refused as a replay; and a read that starts
/// by completing a line of the last read delivers that line too.
#[test]
fn a_read_opened_side_by_side_delivers_what_one_at_a_time_would() {
    let texts: Vec<Vec<u8>> = (0..40).map(|i| format!("m{i}").into_bytes()).collect();
    for bad in [0, 1, 15, 16, 17, 39] {
        let mut relay = relay(Limits::default());
        let sender = relay.admit(Pipe::default()).unwrap();
        let other = relay.admit(Pipe::default()).unwrap();
        let mut input = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let mut line = seal(text);
            if i == bad {
                // A base64 character of the tag changed: still a frame.
                line[30] = if line[30] == b'A' { b'B' } else { b'A' };
            }
            input.extend(line);
        }
        relay.receive(sender, &input);
        assert_eq!(
            closing(&mut relay),
            vec![(sender, CloseReason::BadFrame(OpenError::BadTag))],
            "forged line {bad}"
        );
        assert_eq!(
            delivered(&mut relay, other),
            texts[..bad],
            "forged line {bad}"
        );
    }

    // A line twice in one read.
    let mut replayed = relay(Limits::default());
    let sender = replayed.admit(Pipe::default()).unwrap();
    let other = replayed.admit(Pipe::default()).unwrap();
    let twice = seal(b"twice");
    let mut input = seal(b"first");
    input.extend(&twice);
    input.extend(&twice);
    input.extend(seal(b"after"));
    replayed.receive(sender, &input);
    assert_eq!(closing(&mut replayed), vec![(sender, CloseReason::Replay)]);
    assert_eq!(
        delivered(&mut replayed, other),
        [b"first".to_vec(), b"twice".to_vec()]
    );

    // A read that starts by completing the last read's line.
    let mut split = relay(Limits::default());
    let sender = split.admit(Pipe::default()).unwrap();
    let other = split.admit(Pipe::default()).unwrap();
    let mut input = seal(b"split");
    let cut = input.len() - 5;
    input.extend(seal(b"whole"));
    input.extend(seal(b"third"));
    split.receive(sender, &input[..cut]);
    split.receive(sender, &input[cut..]);
    assert_eq!(
        delivered(&mut split, other),
        [b"split".to_vec(), b"whole".to_vec(), b"third".to_vec()]
    );
    assert!(closing(&mut split).is_empty());
}
