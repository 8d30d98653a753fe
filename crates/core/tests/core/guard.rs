//! The relay's guards driven without sockets: what a peer without the key
//! can cost (the pre-auth budget, the first-frame deadline, connections
//! per address) and the replay check every frame passes, each checked
//! exactly over in-memory writers with the clock passed in.

// Test helpers may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use eaxchat_core::relay::{CloseReason, ConnId, Limits};
use eaxchat_proto::cipher::Cipher;

use crate::util::{Pipe, closing, delivered, key, relay, seal};

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

/// A members relay of `(name, key byte)` members, without history or
/// join notices.
pub fn members_relay(list: &[(&str, u8)], limits: Limits) -> eaxchat_core::relay::Relay<Pipe> {
    use eaxchat_core::members::Members;
    use eaxchat_core::roster::Roster;
    let text: String = list
        .iter()
        .map(|(name, byte)| format!("{name} {}\n", hex_key(*byte)))
        .collect();
    let members = Members::parse(text.as_bytes(), std::path::Path::new("members.txt")).unwrap();
    let mut relay = eaxchat_core::relay::Relay::with_members(
        Roster::new(&members).unwrap(),
        limits,
        std::time::Instant::now(),
        std::time::SystemTime::now(),
    );
    relay.set_chat(eaxchat_core::relay::ChatConfig::quiet());
    relay
}

pub fn hex_key(byte: u8) -> String {
    format!("{byte:02x}").repeat(16)
}

/// Finding 1 of issue #29: in members and session mode a connection that
/// never sends a byte is closed at the first-frame deadline, counted from
/// its admission; with a shared key (and no `require_proof`) a silent
/// connection may be an original notebook receiver, and stays.
#[test]
fn silent_connections_of_members_and_session_relays_are_closed_at_the_deadline() {
    use crate::util::{relay_identity, session_members};
    use std::time::{Duration, Instant};
    let limits = Limits {
        first_frame_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let mut relays = [
        ("members", members_relay(&[("alice", 1)], limits)),
        (
            "sessions",
            eaxchat_core::relay::Relay::with_sessions(
                &session_members(&[("alice", 1)]),
                relay_identity(),
                limits,
                Instant::now(),
                std::time::SystemTime::now(),
            ),
        ),
    ];
    for (mode, relay) in &mut relays {
        let t0 = Instant::now();
        relay.set_now(t0);
        let silent: Vec<ConnId> = (0..5)
            .map(|_| relay.admit(Pipe::default()).unwrap())
            .collect();
        assert_eq!(
            relay.next_timer(),
            Some(t0 + Duration::from_secs(10)),
            "{mode}"
        );
        relay.set_now(t0 + Duration::from_millis(9_999));
        relay.run_timers();
        assert!(closing(relay).is_empty(), "{mode}: not yet due");
        relay.set_now(t0 + Duration::from_secs(10));
        relay.run_timers();
        let closed = closing(relay);
        assert_eq!(
            closed,
            silent
                .iter()
                .map(|&id| (id, CloseReason::FirstFrameTimeout))
                .collect::<Vec<_>>(),
            "{mode}"
        );
        assert_eq!(relay.stats().first_frame_timeouts, 5, "{mode}");
    }
    // A shared key: the silent one may be a notebook receiver.
    let mut shared = relay(limits);
    let t0 = Instant::now();
    shared.set_now(t0);
    let listener = shared.admit(Pipe::default()).unwrap();
    assert_eq!(shared.next_timer(), None);
    shared.set_now(t0 + Duration::from_secs(60));
    shared.run_timers();
    assert_eq!(shared.peer(listener).unwrap().closing(), None);
}

/// A members connection that identifies in time is not closed by the
/// deadline its admission started.
#[test]
fn a_members_connection_that_identifies_in_time_stays() {
    use std::time::{Duration, Instant};
    let mut relay = members_relay(&[("alice", 1)], Limits::default());
    let t0 = Instant::now();
    relay.set_now(t0);
    let alice = relay.admit(Pipe::default()).unwrap();
    relay.set_now(t0 + Duration::from_secs(9));
    let mut line = BytesMut::new();
    let alice_key = eaxchat_proto::key::Key::from_hex(&hex_key(1)).unwrap();
    Cipher::new(&alice_key).unwrap().seal_into(b"", &mut line);
    relay.receive(alice, &line);
    assert!(relay.peer(alice).unwrap().is_authenticated());
    relay.set_now(t0 + Duration::from_secs(60));
    relay.run_timers();
    assert!(closing(&mut relay).is_empty());
}

/// One IPv6 /56 (a home's prefix) or /48 cannot hold every slot: with the
/// default limits, connections from many /64s of one /56 are refused past
/// the /56's limit, and those of many /56s of one /48 past the /48's.
#[test]
fn one_ipv6_home_prefix_cannot_hold_every_slot() {
    use eaxchat_core::relay::Refusal;
    use std::net::{IpAddr, Ipv6Addr};
    let mut relay = relay(Limits::default());
    let per_64 = Limits::DEFAULT_MAX_PER_ADDRESS;
    // /64s inside 2001:db8:1:100::/56: the fourth byte pair's low byte.
    let in_56 = |net: u16, host: u16| {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0x100 + net, 0, 0, 0, host))
    };
    let mut admitted = 0;
    'fill: for net in 0..=255 {
        for host in 0..per_64 as u16 {
            if relay
                .admit_from(Pipe::default(), Some(in_56(net, host)))
                .is_err()
            {
                break 'fill;
            }
            admitted += 1;
        }
    }
    assert!(
        admitted < 256 * per_64,
        "one /56 held {admitted} connections"
    );
    let refused = relay
        .admit_from(Pipe::default(), Some(in_56(255, 1)))
        .unwrap_err();
    assert_eq!(refused.limit, Refusal::MaxPerAddress);
    // Another /56 of the same /48 still gets in, until the /48 is full.
    let in_48 = |net56: u16, net64: u16, host: u16| {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            1,
            (net56 << 8) | net64,
            0,
            0,
            0,
            host,
        ))
    };
    relay
        .admit_from(Pipe::default(), Some(in_48(7, 0, 1)))
        .unwrap();
    let mut from_48 = admitted + 1;
    let mut full_48 = false;
    'fill48: for net56 in 8..=255 {
        let mut in_this_56 = 0;
        for net64 in 0..=255 {
            for host in 0..per_64 as u16 {
                let ip = in_48(net56, net64, host);
                if relay.admit_from(Pipe::default(), Some(ip)).is_err() {
                    // A /56 refused at its first connection: the /48 is full.
                    full_48 = in_this_56 == 0;
                    if full_48 {
                        break 'fill48;
                    }
                    continue 'fill48;
                }
                in_this_56 += 1;
                from_48 += 1;
            }
        }
    }
    assert!(full_48, "the /48 was never full");
    assert!(
        from_48 < Limits::DEFAULT_MAX_CLIENTS,
        "one /48 held {from_48} connections"
    );
    // Another /48 is counted apart.
    let elsewhere: IpAddr = "2001:db8:2::1".parse().unwrap();
    relay.admit_from(Pipe::default(), Some(elsewhere)).unwrap();
}

/// Finding 2 of issue #29: with `require_proof` a shared-key connection is
/// sent nothing until one of its frames opens (then it is in the room,
/// owed the history from then on), and a silent one is closed at the
/// deadline. Without it a silent listener is sent everything, and what it
/// costs is counted.
#[test]
fn require_proof_sends_a_keyless_listener_nothing() {
    use std::time::Instant;
    let limits = Limits {
        require_proof: true,
        ..Limits::default()
    };
    let mut relay = relay(limits);
    // Counting every frame: no history on arrival.
    relay.set_chat(eaxchat_core::relay::ChatConfig::quiet());
    let t0 = Instant::now();
    relay.set_now(t0);
    let alice = relay.admit(Pipe::default()).unwrap();
    let silent = relay.admit(Pipe::default()).unwrap();
    let late = relay.admit(Pipe::default()).unwrap();
    relay.receive(alice, &seal(b""));
    relay.receive(alice, &seal(b"before"));
    assert!(delivered(&mut relay, silent).is_empty());
    assert!(delivered(&mut relay, late).is_empty());
    relay.receive(late, &seal(b""));
    relay.receive(alice, &seal(b"after"));
    assert!(delivered(&mut relay, silent).is_empty(), "still nothing");
    assert_eq!(delivered(&mut relay, late), vec![b"after".to_vec()]);
    assert_eq!(relay.stats().keyless_frames_out, 0);
    relay.set_now(t0 + limits.first_frame_timeout);
    relay.run_timers();
    assert_eq!(
        closing(&mut relay),
        vec![(silent, CloseReason::FirstFrameTimeout)]
    );

    // Without it: the notebook receiver that never sends gets everything,
    // and is counted.
    let mut relay = crate::util::relay(Limits::default());
    let alice = relay.admit(Pipe::default()).unwrap();
    let listener = relay.admit(Pipe::default()).unwrap();
    let line = seal(b"to everyone");
    relay.receive(alice, &line);
    assert_eq!(
        delivered(&mut relay, listener),
        vec![b"to everyone".to_vec()]
    );
    let stats = relay.stats();
    assert_eq!(stats.keyless_frames_out, 1);
    assert_eq!(stats.keyless_bytes_out, line.len() as u64);
}

/// The IPv6 /56 and /48 limits are the relay's to set, `0` for none.
#[test]
fn the_ipv6_prefix_limits_are_configurable() {
    use eaxchat_core::relay::Refusal;
    use std::net::IpAddr;
    let mut relay = relay(Limits {
        max_per_address: 1,
        max_per_ipv6_56: 2,
        max_per_ipv6_48: 3,
        ..Limits::default()
    });
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    relay
        .admit_from(Pipe::default(), Some(ip("2001:db8:0:100::1")))
        .unwrap();
    relay
        .admit_from(Pipe::default(), Some(ip("2001:db8:0:101::1")))
        .unwrap();
    let refused = relay
        .admit_from(Pipe::default(), Some(ip("2001:db8:0:102::1")))
        .unwrap_err();
    assert_eq!(refused.limit, Refusal::MaxPerAddress);
    relay
        .admit_from(Pipe::default(), Some(ip("2001:db8:0:200::1")))
        .unwrap();
    let refused = relay
        .admit_from(Pipe::default(), Some(ip("2001:db8:0:300::1")))
        .unwrap_err();
    assert_eq!(refused.limit, Refusal::MaxPerAddress);
    // IPv4 is counted per address only.
    for n in 1..=20 {
        relay
            .admit_from(Pipe::default(), Some(ip(&format!("192.0.2.{n}"))))
            .unwrap();
    }
    assert_eq!(relay.stats().refused_per_address, 2);
}
