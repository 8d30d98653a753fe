//! A members relay driven without sockets: `Relay::with_members` over
//! in-memory writers, so identification, stamping, per-member sealing and
//! reloads are checked exactly.

// Test helpers may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Instant, SystemTime};

use bytes::BytesMut;
use eaxchat_core::members::Members;
use eaxchat_core::relay::ChatConfig;
use eaxchat_core::relay::{CloseReason, ConnId, Limits, Relay};
use eaxchat_core::roster::{IDENTIFY_MAX, Roster};
use eaxchat_proto::cipher::{Cipher, OpenError};
use eaxchat_proto::key::Key;

use crate::util::{
    Pipe, closing, member_key as key, members_relay, opened as delivered, seal_as as seal,
    static_members as members,
};

/// A members relay without history or join notices: these tests count
/// every frame a member gets (the chat layer's are in `chat_layer.rs`).
fn relay(list: &[(&str, u8)]) -> Relay<Pipe> {
    members_relay(list, ChatConfig::quiet())
}

/// Admits a connection and identifies it with an empty frame.
fn join(relay: &mut Relay<Pipe>, byte: u8) -> ConnId {
    let id = relay.admit(Pipe::default()).unwrap();
    relay.receive(id, &seal(byte, b""));
    assert!(relay.peer(id).unwrap().is_authenticated());
    id
}

/// A member's text arrives under their name, whatever name it claims.
#[test]
fn every_message_is_stamped_with_its_senders_name() {
    let mut relay = relay(&[("alice", 1), ("bob", 2)]);
    let alice = join(&mut relay, 1);
    let bob = join(&mut relay, 2);
    relay.receive(alice, &seal(1, b"bob: hi"));
    assert_eq!(delivered(&mut relay, bob, 2), ["alice: bob: hi"]);
    assert!(delivered(&mut relay, alice, 1).is_empty());
    assert_eq!(relay.member_name(alice).unwrap().as_str(), "alice");
    assert_eq!(
        relay.stats().frames_in,
        1,
        "the empty frames were not relayed"
    );
}

/// A first frame under no member's key closes the connection as a bad tag,
/// and nothing of it reaches anyone.
#[test]
fn a_frame_under_a_non_member_key_is_refused() {
    let mut relay = relay(&[("alice", 1)]);
    let alice = join(&mut relay, 1);
    let stranger = relay.admit(Pipe::default()).unwrap();
    relay.receive(stranger, &seal(9, b"alice: trust me"));
    assert_eq!(
        closing(&mut relay),
        [(stranger, CloseReason::BadFrame(OpenError::BadTag))]
    );
    assert_eq!(relay.stats().rejected.bad_tag, 1);
    assert!(delivered(&mut relay, alice, 1).is_empty());
    // Once identified, a frame under another member's key is a bad tag too.
    let mut relay = self::relay(&[("alice", 1), ("bob", 2)]);
    let alice = join(&mut relay, 1);
    relay.receive(alice, &seal(2, b"as bob"));
    assert_eq!(
        closing(&mut relay),
        [(alice, CloseReason::BadFrame(OpenError::BadTag))]
    );
}

/// Two devices of one member both get a message, in the same sealed bytes.
#[test]
fn two_devices_of_one_member_share_one_seal() {
    let mut relay = relay(&[("alice", 1), ("bob", 2)]);
    let alice = join(&mut relay, 1);
    let phone = join(&mut relay, 2);
    let laptop = join(&mut relay, 2);
    relay.receive(alice, &seal(1, b"one"));
    relay.receive(laptop, &seal(2, b"from the laptop"));
    while let Some(id) = relay.next_waiting() {
        relay.flush(id);
    }
    let phone_bytes = relay.io_mut(phone).unwrap().received.clone();
    let laptop_bytes = relay.io_mut(laptop).unwrap().received.clone();
    let first_line = |bytes: &[u8]| bytes.split(|&b| b == b'\n').next().unwrap().to_vec();
    assert_eq!(
        first_line(&phone_bytes),
        first_line(&laptop_bytes),
        "one seal for both devices"
    );
    assert_eq!(
        delivered(&mut relay, phone, 2),
        ["alice: one", "bob: from the laptop"]
    );
    assert_eq!(delivered(&mut relay, alice, 1), ["bob: from the laptop"]);
}

/// An empty frame identifies a listen-only member and reaches nobody.
#[test]
fn an_empty_frame_identifies_and_is_never_relayed() {
    let mut relay = relay(&[("alice", 1), ("bob", 2)]);
    let alice = join(&mut relay, 1);
    let bob = relay.admit(Pipe::default()).unwrap();
    assert!(!relay.peer(bob).unwrap().is_authenticated());
    relay.receive(bob, &seal(2, b""));
    assert!(relay.peer(bob).unwrap().is_authenticated());
    assert!(delivered(&mut relay, alice, 1).is_empty());
    relay.receive(alice, &seal(1, b"hello bob"));
    assert_eq!(delivered(&mut relay, bob, 2), ["alice: hello bob"]);
    // An unidentified connection receives nothing.
    let silent = relay.admit(Pipe::default()).unwrap();
    relay.receive(alice, &seal(1, b"again"));
    assert!(delivered(&mut relay, silent, 1).is_empty());
}

/// The original notebook client's newline-less first frame identifies it;
/// later joined frames are split with its key.
#[test]
fn a_newline_less_first_frame_identifies_a_notebook_client() {
    let mut relay = relay(&[("alice", 1), ("bob", 2)]);
    let bob = join(&mut relay, 2);
    let notebook = relay.admit(Pipe::default()).unwrap();
    let bare = |text: &[u8]| {
        let mut line = seal(1, text);
        line.pop();
        line
    };
    relay.receive(notebook, &bare(b"hi"));
    assert_eq!(relay.member_name(notebook).unwrap().as_str(), "alice");
    assert!(relay.peer(notebook).unwrap().is_seed());
    let joined = [bare(b"two"), bare(b"three")].concat();
    relay.receive(notebook, &joined);
    assert_eq!(
        delivered(&mut relay, bob, 2),
        ["alice: hi", "alice: two", "alice: three"]
    );
}

/// A first frame longer than the identification cap is closed, counted as
/// a bad tag; one at the cap identifies.
#[test]
fn a_first_frame_past_the_cap_is_refused() {
    let mut relay = relay(&[("alice", 1)]);
    let long = relay.admit(Pipe::default()).unwrap();
    relay.receive(long, &seal(1, &vec![b'x'; IDENTIFY_MAX + 1]));
    assert_eq!(
        closing(&mut relay),
        [(long, CloseReason::FirstFrameTooLong)]
    );
    assert_eq!(
        CloseReason::FirstFrameTooLong.to_string(),
        "first frame too long to identify"
    );
    assert_eq!(relay.stats().rejected.bad_tag, 1);
    let at_cap = relay.admit(Pipe::default()).unwrap();
    relay.receive(at_cap, &seal(1, &vec![b'x'; IDENTIFY_MAX]));
    assert!(relay.peer(at_cap).unwrap().is_authenticated());
}

/// A reload closes the removed and the re-keyed members' connections,
/// keeps the others, and identification uses the new members.
#[test]
fn a_reload_cuts_off_removed_and_rekeyed_members_only() {
    let mut relay = relay(&[("alice", 1), ("bob", 2), ("carol", 3)]);
    let alice = join(&mut relay, 1);
    let bob = join(&mut relay, 2);
    let carol = join(&mut relay, 3);
    let changes = relay
        .reload_members(&members(&[("alice", 1), ("carol", 4), ("dave", 5)]))
        .unwrap();
    let names = |list: &[eaxchat_proto::name::Name]| {
        list.iter()
            .map(|n| n.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&changes.removed), ["bob"]);
    assert_eq!(names(&changes.rekeyed), ["carol"]);
    assert_eq!(names(&changes.added), ["dave"]);
    let mut closed = closing(&mut relay);
    closed.sort_by_key(|(id, _)| *id);
    assert_eq!(
        closed,
        [
            (bob, CloseReason::MemberRemoved),
            (carol, CloseReason::MemberRemoved)
        ]
    );
    assert_eq!(relay.stats().members_removed, 2);
    assert_eq!(
        CloseReason::MemberRemoved.to_string(),
        "member removed from the members file"
    );
    for id in [bob, carol] {
        relay.remove(id);
    }
    // The removed can no longer identify; the re-keyed only with the new key.
    let bob_again = relay.admit(Pipe::default()).unwrap();
    relay.receive(bob_again, &seal(2, b""));
    assert_eq!(
        closing(&mut relay),
        [(bob_again, CloseReason::BadFrame(OpenError::BadTag))]
    );
    let carol_again = join(&mut relay, 4);
    let dave = join(&mut relay, 5);
    relay.receive(alice, &seal(1, b"still here"));
    assert_eq!(delivered(&mut relay, carol_again, 4), ["alice: still here"]);
    assert_eq!(delivered(&mut relay, dave, 5), ["alice: still here"]);
    assert_eq!(relay.member_name(alice).unwrap().as_str(), "alice");
}

/// With 10,000 members the last one in the file identifies.
#[test]
fn the_last_of_ten_thousand_members_identifies() {
    let text: String = (0..10_000u32)
        .map(|i| {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            bytes[15] = 0xa5;
            format!("m{i} {}\n", Key::from_bytes(&bytes).unwrap().to_hex())
        })
        .collect();
    let all = Members::parse(text.as_bytes(), Path::new("members.txt")).unwrap();
    let last_key = all.iter().last().unwrap().key().clone();
    let mut relay: Relay<Pipe> = Relay::with_members(
        Roster::new(&all).unwrap(),
        Limits::default(),
        Instant::now(),
        SystemTime::now(),
    );
    let id = relay.admit(Pipe::default()).unwrap();
    let mut line = BytesMut::new();
    Cipher::new(&last_key).unwrap().seal_into(b"", &mut line);
    relay.receive(id, &line);
    assert_eq!(relay.member_name(id).unwrap().as_str(), "m9999");
}

/// A shared-key relay has no members to reload.
#[test]
fn a_shared_key_relay_does_not_reload() {
    let mut relay: Relay<Pipe> = Relay::new(
        Cipher::new(&key(1)).unwrap(),
        Limits::default(),
        Instant::now(),
        SystemTime::now(),
    );
    assert!(!relay.is_members());
    assert!(relay.reload_members(&members(&[("alice", 1)])).is_none());
}

/// A member's frame sent again (on another of their connections, as a
/// captured frame would be) closes that connection as a replay, and is
/// not relayed a second time; so does a relay frame a member sends back.
#[test]
fn replayed_and_reflected_frames_are_refused_in_members_mode() {
    let mut relay = relay(&[("alice", 1), ("bob", 2)]);
    let alice = join(&mut relay, 1);
    let bob = join(&mut relay, 2);
    let frame = seal(1, b"once");
    relay.receive(alice, &frame);
    let again = join(&mut relay, 1);
    relay.receive(again, &frame);
    assert_eq!(closing(&mut relay), [(again, CloseReason::Replay)]);
    assert_eq!(delivered(&mut relay, bob, 2), ["alice: once"]);
    assert_eq!(relay.stats().rejected.replayed, 1);

    // What bob received, sent back by bob: it opens under his key, but the
    // relay sealed it, so it is refused.
    relay.receive(alice, &seal(1, b"twice"));
    while let Some(id) = relay.next_waiting() {
        relay.flush(id);
    }
    let received = std::mem::take(&mut relay.io_mut(bob).unwrap().received);
    relay.receive(bob, &received);
    assert_eq!(closing(&mut relay), [(bob, CloseReason::Replay)]);
    assert_eq!(relay.stats().rejected.replayed, 2);
    assert!(
        delivered(&mut relay, alice, 1).is_empty(),
        "nothing relayed"
    );
}
