//! Fuzz target `cluster`: what another relay of a cluster could send.
//!
//! Input: arbitrary bytes, taken three ways. Checked: `Envelope::decode`
//! never panics, and what it accepts encodes to bytes that decode to it; the
//! bytes as a payload from NATS never open under the cluster key (they were
//! not sealed under it) and are counted refused; and an envelope that
//! decodes, sealed under the key, stamped now and said by a shared-key
//! relay that has heard this one (its heartbeat names this relay first), is
//! taken by a relay with two clients in its lobby without a panic, refused
//! only for its end-to-end group messages to the lobby (an end-to-end
//! room is one relay's), and reaches neither client unless it is a room
//! message or a private message (presence notices are off, as in the
//! other targets that count frames).

#![no_main]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use eaxchat_proto::cipher::Cipher;
use eaxchat_core::cluster::envelope::{Body, Envelope, Standing};
use eaxchat_core::cluster::{Cluster, ClusterConfig, ClusterKey, FromNats};
use eaxchat_core::history::EntryKind;
use eaxchat_proto::key::Key;
use eaxchat_proto::nonce::Nonces;
use eaxchat_core::relay::{ChatConfig, Limits, Relay};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = Key::from_bytes(&[7; 16]).expect("a 16-byte key");
    let mut sealer = ClusterKey::with_nonces(&key, Nonces::from_seed([1; 32]));
    let decoded = Envelope::decode(data);
    if let Ok(envelope) = &decoded {
        // Rooms are read as the relay names them (`#lobby` is `lobby`):
        // the value, not the bytes, comes back.
        let mut again = Vec::new();
        envelope.encode(&mut again);
        assert_eq!(Envelope::decode(&again).as_ref(), Ok(envelope));
    }

    let mut relay: Relay<Vec<u8>> = Relay::new(
        Cipher::with_nonce_seed(&key, [2; 32]),
        Limits::default(),
        Instant::now(),
        SystemTime::now(),
    );
    relay.set_chat(ChatConfig::quiet());
    let cluster = Cluster::new(
        ClusterConfig::new("fuzz", "fuzz"),
        ClusterKey::with_nonces(
            &Key::from_bytes(&[9; 16]).expect("key"),
            Nonces::from_seed([3; 32]),
        ),
        1,
        Instant::now(),
    );
    relay.join_cluster(cluster);
    let ids: Vec<_> = (0..2)
        .map(|_| relay.admit(Vec::new()).expect("room"))
        .collect();
    relay.cluster_incoming(FromNats::Envelope(bytes::Bytes::copy_from_slice(data)));
    assert_eq!(relay.stats().cluster_rejected, 1);
    for &id in &ids {
        assert!(relay.peer(id).expect("open").queued_bytes() == 0);
    }

    // The same relay's key, this time: the envelope, if it decoded, sealed
    // as a relay of the cluster would.
    let Ok(mut envelope) = decoded else { return };
    let mut relay: Relay<Vec<u8>> = Relay::new(
        Cipher::with_nonce_seed(&key, [2; 32]),
        Limits::default(),
        Instant::now(),
        SystemTime::now(),
    );
    relay.set_chat(ChatConfig::quiet());
    relay.join_cluster(Cluster::new(
        ClusterConfig::new("fuzz", "fuzz"),
        ClusterKey::with_nonces(&key, Nonces::from_seed([4; 32])),
        1,
        Instant::now(),
    ));
    let ids: Vec<_> = (0..2)
        .map(|_| relay.admit(Vec::new()).expect("room"))
        .collect();
    envelope.origin = envelope.origin.max(2);
    envelope.seq = envelope.seq.max(2);
    envelope.standing = Standing::SHARED;
    envelope.ts_millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    // The other relay's heartbeat names this one (origin 1) first.
    let hello = Envelope {
        origin: envelope.origin,
        seq: 1,
        ts_millis: envelope.ts_millis,
        standing: Standing::SHARED,
        body: Body::State {
            label: "other".into(),
            rooms: Vec::new(),
            heard: vec![1],
        },
    };
    let mut plain = Vec::new();
    hello.encode(&mut plain);
    relay.cluster_incoming(FromNats::Envelope(sealer.seal(&plain)));
    assert_eq!(relay.stats().cluster_in, 1);
    plain.clear();
    envelope.encode(&mut plain);
    relay.cluster_incoming(FromNats::Envelope(sealer.seal(&plain)));
    let stats = relay.stats();
    // Rooms nobody here is in are not looked into.
    let group_messages = match &envelope.body {
        Body::Room { room, messages, .. } if room.as_str() == "lobby" => messages
            .iter()
            .filter(|(kind, _)| *kind == EntryKind::Mls)
            .count() as u64,
        _ => 0,
    };
    assert_eq!(stats.cluster_rejected, group_messages);
    assert_eq!(stats.cluster_in + stats.cluster_replayed, 2);
    let may_reach = matches!(envelope.body, Body::Room { .. } | Body::Private { .. });
    for &id in &ids {
        if !may_reach {
            assert_eq!(relay.peer(id).expect("open").queued_bytes(), 0);
        }
    }
    // Taken twice, it is a replay.
    relay.cluster_incoming(FromNats::Envelope(sealer.seal(&plain)));
    assert_eq!(relay.stats().cluster_replayed, stats.cluster_replayed + 1);
});
