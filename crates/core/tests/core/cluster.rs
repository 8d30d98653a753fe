//! The relay core in a cluster, in memory: envelopes sealed as another
//! relay would, handed in as the NATS thread would. A relay of another
//! mode is refused; a relay with other members is taken only for names
//! that are members here; nothing is taken from a relay before its
//! heartbeat names this one (a replay captured before this relay started
//! is refused); a history record opens only at its stream sequence; an
//! end-to-end group message is refused.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use eaxchat_core::cluster::envelope::{Body, ClusterMode, Envelope, Standing, members_print};
use eaxchat_core::cluster::{Cluster, ClusterConfig, ClusterKey, FromNats};
use eaxchat_core::history::EntryKind;
use eaxchat_core::relay::{ChatConfig, Relay};
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::key::Key;
use eaxchat_proto::name::Name;
use eaxchat_proto::nonce::Nonces;

use crate::util::{KeyClient, Pipe, members_relay};

/// This relay's origin in every test.
const HERE: u64 = 1;
/// The other relay's.
const THERE: u64 = 0x0bad_cafe;

fn cluster_key() -> Key {
    Key::from_bytes(&[5; 16]).unwrap()
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// A members relay serving alice (key 1) and bob (key 2) in a cluster,
/// with bob connected and arrived in the lobby.
fn relay_with_bob() -> (Relay<Pipe>, KeyClient) {
    let mut relay = members_relay(&[("alice", 1), ("bob", 2)], ChatConfig::quiet());
    let key = ClusterKey::with_nonces(&cluster_key(), Nonces::from_seed([8; 32]));
    let cluster = Cluster::new(ClusterConfig::new("t", "here"), key, HERE, Instant::now());
    relay.join_cluster(cluster);
    relay.cluster_incoming(FromNats::Up);
    let bob = KeyClient::admit(&mut relay, 2);
    bob.say(&mut relay, "");
    let _ = bob.got(&mut relay);
    (relay, bob)
}

/// The standing of a static-key relay serving `names`.
fn members_of(names: &[&str]) -> Standing {
    Standing {
        mode: ClusterMode::Members,
        members: members_print(names.iter().map(|name| (*name, Vec::new()))),
    }
}

/// Another relay: seals what it says as a relay of the cluster would.
struct There {
    key: ClusterKey,
    seq: u64,
    standing: Standing,
}

impl There {
    fn new(standing: Standing) -> There {
        There {
            key: ClusterKey::with_nonces(&cluster_key(), Nonces::from_seed([9; 32])),
            seq: 0,
            standing,
        }
    }

    fn envelope(&mut self, body: Body) -> Envelope {
        self.seq += 1;
        Envelope {
            origin: THERE,
            seq: self.seq,
            ts_millis: now_millis(),
            standing: self.standing,
            body,
        }
    }

    fn seal(&mut self, envelope: &Envelope) -> Bytes {
        let mut plain = Vec::new();
        envelope.encode(&mut plain);
        self.key.seal(&plain)
    }

    /// Its heartbeat, naming this relay.
    fn hello(&mut self) -> Bytes {
        let envelope = self.envelope(Body::State {
            label: "there".into(),
            rooms: Vec::new(),
            heard: vec![HERE],
        });
        self.seal(&envelope)
    }

    /// `text` said in the lobby by `from`.
    fn says(&mut self, from: &str, text: &str) -> Bytes {
        let envelope = self.envelope(lobby_message(from, text));
        self.seal(&envelope)
    }
}

fn lobby_message(from: &str, text: &str) -> Body {
    Body::Room {
        room: RoomName::new(b"#lobby").unwrap(),
        from: Some(Name::new(from).unwrap()),
        messages: vec![(EntryKind::Message, text.as_bytes().into())],
    }
}

fn give(relay: &mut Relay<Pipe>, payload: Bytes) {
    relay.cluster_incoming(FromNats::Envelope(payload));
}

#[test]
fn a_shared_key_relay_s_nick_never_passes_for_a_member() {
    let (mut relay, bob) = relay_with_bob();
    let mut shared = There::new(Standing::SHARED);
    give(&mut relay, shared.hello());
    give(&mut relay, shared.says("alice", "meet me at the gate"));
    assert!(bob.got(&mut relay).is_empty());
    assert_eq!(relay.stats().cluster_rejected, 2);
    assert_eq!(relay.stats().cluster_in, 0);
}

#[test]
fn a_relay_with_other_members_is_taken_only_for_members_here() {
    let (mut relay, bob) = relay_with_bob();
    // Its file has mallory too (or lacks a removal made here).
    let mut other = There::new(members_of(&["alice", "bob", "mallory"]));
    give(&mut relay, other.hello());
    give(&mut relay, other.says("mallory", "not a member here"));
    give(&mut relay, other.says("alice", "a member here"));
    assert_eq!(bob.got(&mut relay), ["alice: a member here"]);
    assert_eq!(relay.stats().cluster_rejected, 1);
    // The same members: taken as before.
    let mut same = There::new(members_of(&["bob", "alice"]));
    same.seq = other.seq;
    give(&mut relay, same.says("alice", "same files"));
    assert_eq!(bob.got(&mut relay), ["alice: same files"]);
}

#[test]
fn nothing_is_taken_before_the_other_relay_has_heard_this_one() {
    let (mut relay, bob) = relay_with_bob();
    let mut there = There::new(members_of(&["alice", "bob"]));
    // Captured before this relay started, published again now.
    let old = there.says("alice", "said before this relay started");
    give(&mut relay, old.clone());
    assert!(bob.got(&mut relay).is_empty());
    give(&mut relay, there.hello());
    give(&mut relay, old);
    assert!(bob.got(&mut relay).is_empty(), "a replay after the hello");
    give(&mut relay, there.says("alice", "said after"));
    assert_eq!(bob.got(&mut relay), ["alice: said after"]);
    assert_eq!(relay.stats().cluster_replayed, 2);
}

#[test]
fn a_history_record_opens_only_at_its_stream_sequence() {
    let mut relay = members_relay(&[("alice", 1), ("bob", 2)], ChatConfig::default());
    let key = ClusterKey::with_nonces(&cluster_key(), Nonces::from_seed([8; 32]));
    relay.join_cluster(Cluster::new(
        ClusterConfig::new("t", "here"),
        key,
        HERE,
        Instant::now(),
    ));
    let mut there = There::new(members_of(&["alice", "bob"]));
    let said = there.envelope(lobby_message("alice", "kept in the stream"));
    let replayed = there.envelope(lobby_message("alice", "published again"));
    let live = there.envelope(lobby_message("alice", "a live envelope"));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    said.encode(&mut a);
    replayed.encode(&mut b);
    let records = vec![
        (7, there.key.seal_record(&a, 7)),
        // A record stored at 8, published again: the stream put it at 9.
        (9, there.key.seal_record(&b, 8)),
        (10, there.seal(&live)),
    ];
    relay.cluster_incoming(FromNats::History(records));
    assert_eq!(relay.stats().cluster_rejected, 2);
    let bob = KeyClient::admit(&mut relay, 2);
    bob.say(&mut relay, "");
    let got = bob.got(&mut relay);
    assert!(
        got.iter().any(|line| line.contains("kept in the stream")),
        "{got:?}"
    );
    assert!(
        !got.iter().any(|line| line.contains("published again")),
        "{got:?}"
    );
    assert!(
        !got.iter().any(|line| line.contains("a live envelope")),
        "{got:?}"
    );
}

#[test]
fn an_end_to_end_group_message_from_another_relay_is_refused_and_the_rest_of_its_batch_taken() {
    // An end-to-end room is one relay's (its Delivery Service orders the
    // group), so no relay publishes one; one that comes anyway is counted.
    let (mut relay, bob) = relay_with_bob();
    let mut there = There::new(members_of(&["alice", "bob"]));
    give(&mut relay, there.hello());
    let envelope = there.envelope(Body::Room {
        room: RoomName::new(b"#lobby").unwrap(),
        from: Some(Name::new("alice").unwrap()),
        messages: vec![
            (EntryKind::Mls, b"a group message".as_slice().into()),
            (EntryKind::Message, b"said after it".as_slice().into()),
        ],
    });
    let sealed = there.seal(&envelope);
    give(&mut relay, sealed);
    assert_eq!(bob.got(&mut relay), ["alice: said after it"]);
    assert_eq!(relay.stats().cluster_rejected, 1);
}
