//! End-to-end rooms driven without sockets: real MLS devices (openmls, in
//! `mls_device.rs`) talk through the relay's Delivery Service. The relay
//! makes the group only from its creator's GroupInfo, takes the first
//! commit of an epoch and refuses the rest, routes Welcomes to the devices
//! they are for (now, or at their next connection), refuses text and
//! anything from another group, holds removals until they are committed,
//! and keeps nothing but ciphertext.

use base64::Engine as _;
use eaxchat_core::delivery::DeliveryService;
use eaxchat_core::relay::{ChatConfig, Relay};
use eaxchat_proto::events::{ParsedEvent, ParsedKind};

use crate::chat_layer::{ALICE, BOB, CAROL};
use crate::mls_device::{Device, Seen};
use crate::util::{Pipe, SessionClient, sessions_relay};

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub fn relay() -> Relay<Pipe> {
    sessions_relay(
        &[("alice", ALICE), ("bob", BOB), ("carol", CAROL)],
        Default::default(),
        ChatConfig {
            presence: false,
            ..ChatConfig::default()
        },
    )
}

/// A member's connection that said `/hello eaxchat/1`.
pub fn connect(relay: &mut Relay<Pipe>, device: u8) -> SessionClient {
    let mut client = SessionClient::connect(relay, device);
    client.say(relay, "/hello eaxchat/1");
    client.got(relay);
    client
}

pub fn events(relay: &mut Relay<Pipe>, client: &mut SessionClient) -> Vec<ParsedEvent> {
    client
        .got(relay)
        .iter()
        .map(|line| ParsedEvent::parse(line.as_bytes()).unwrap_or_else(|| panic!("{line}")))
        .collect()
}

pub fn mls(relay: &mut Relay<Pipe>, client: &mut SessionClient, room: &str, bytes: &[u8]) {
    client.say(relay, &format!("/mls {room} {}", B64.encode(bytes)));
}

/// The group messages in `events`.
pub fn group_messages(events: &[ParsedEvent]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter(|e| e.kind == ParsedKind::Mls)
        .map(|e| e.data.clone())
        .collect()
}

/// Alice makes end-to-end room `dev`, bob joins it and is added: both
/// devices in one group at epoch 1.
pub fn alice_and_bob(relay: &mut Relay<Pipe>) -> (SessionClient, Device, SessionClient, Device) {
    let (mut alice, mut bob) = (connect(relay, ALICE), connect(relay, BOB));
    let (mut alice_mls, mut bob_mls) = (Device::new("alice"), Device::new("bob"));
    alice.say(relay, "/join dev --e2e");
    let info = alice_mls.create("dev");
    mls(relay, &mut alice, "dev", &info);
    let got = events(relay, &mut alice);
    assert_eq!(
        got.last().map(|e| &e.kind),
        Some(&ParsedKind::MlsTaken { epoch: 0 }),
        "{got:?}"
    );
    bob.say(
        relay,
        &format!("/keypackage {}", B64.encode(bob_mls.key_package())),
    );
    bob.say(relay, "/join dev");
    bob.got(relay);
    let got = events(relay, &mut alice);
    assert!(
        got.iter()
            .any(|e| e.kind == ParsedKind::MlsAdd { name: "bob".into() }),
        "{got:?}"
    );
    alice.say(relay, "/keypackages bob");
    let got = events(relay, &mut alice);
    assert_eq!(got[0].packages.len(), 1, "{got:?}");
    let (commit, welcome) = alice_mls.add(&got[0].packages);
    mls(relay, &mut alice, "dev", &commit);
    let got = events(relay, &mut alice);
    assert_eq!(got[0].kind, ParsedKind::MlsTaken { epoch: 1 });
    alice_mls.merge();
    mls(relay, &mut alice, "dev", &welcome);
    mls(relay, &mut alice, "dev", &alice_mls.group_info());
    let got = events(relay, &mut bob);
    let messages = group_messages(&got);
    // Bob sees the commit (which he cannot use: he was not in the group)
    // and his Welcome, routed to his device only.
    assert_eq!(messages.len(), 2, "{got:?}");
    assert_eq!(
        got.iter()
            .filter(|e| e.kind == ParsedKind::Mls && e.id.is_none())
            .count(),
        1
    );
    bob_mls.join(&messages[1]);
    assert_eq!(bob_mls.epoch(), 1);
    (alice, alice_mls, bob, bob_mls)
}

#[test]
fn three_devices_talk_and_the_relay_holds_only_ciphertext() {
    let mut relay = relay();
    let (mut alice, mut alice_mls, mut bob, mut bob_mls) = alice_and_bob(&mut relay);
    let secret = "the launch code is 0000";
    mls(&mut relay, &mut alice, "dev", &alice_mls.encrypt(secret));
    let got = events(&mut relay, &mut bob);
    let messages = group_messages(&got);
    assert_eq!(
        bob_mls.process(&messages[0]),
        Ok(Seen::Application(secret.into()))
    );
    assert_eq!(got[0].from.as_deref(), Some("alice"));
    let ack = "ack: heard you, the code is safe with me";
    mls(&mut relay, &mut bob, "dev", &bob_mls.encrypt(ack));
    let got = events(&mut relay, &mut alice);
    assert_eq!(
        alice_mls.process(&group_messages(&got)[0]),
        Ok(Seen::Application(ack.as_bytes().to_vec()))
    );
    // The room's history holds the group messages as they came, base64,
    // and neither plaintext is in them. (The check is on the decoded
    // bytes: base64 text can spell a short word by chance.)
    let dev = eaxchat_proto::commands::RoomName::new(b"dev").unwrap();
    let room = relay.rooms().find(&dev).unwrap();
    let history = relay.rooms().get(room).unwrap().history();
    // The commit that added bob, then the two messages.
    assert_eq!(history.len(), 3);
    for entry in history {
        let bytes = B64.decode(&*entry.text).expect("history holds base64");
        for plain in [secret, ack] {
            let found = bytes.windows(plain.len()).any(|w| w == plain.as_bytes());
            assert!(!found, "{plain:?} in {:?}", &*entry.text);
        }
    }
    // Text and actions never enter the room.
    alice.say(&mut relay, "/in dev in the clear");
    alice.say(&mut relay, "/in dev /me waves");
    let got = events(&mut relay, &mut alice);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|e| e.kind == ParsedKind::Error), "{got:?}");
    assert_eq!(
        group_messages(&events(&mut relay, &mut bob)),
        Vec::<Vec<u8>>::new()
    );
}

#[test]
fn the_first_commit_of_an_epoch_wins_and_both_converge() {
    let mut relay = relay();
    let (mut alice, mut alice_mls, mut bob, mut bob_mls) = alice_and_bob(&mut relay);
    let carol_mls = Device::new("carol");
    let mut carol = connect(&mut relay, CAROL);
    carol.say(
        &mut relay,
        &format!("/keypackage {}", B64.encode(carol_mls.key_package())),
    );
    carol.say(
        &mut relay,
        &format!("/keypackage {}", B64.encode(carol_mls.key_package())),
    );
    alice.say(&mut relay, "/keypackages carol");
    let package = events(&mut relay, &mut alice)[0].packages.clone();
    bob.say(&mut relay, "/keypackages carol");
    let other = events(&mut relay, &mut bob)[0].packages.clone();
    // Both commit at epoch 1; alice's comes first.
    let (alice_commit, _) = alice_mls.add(&package);
    let (bob_commit, _) = bob_mls.add(&other);
    mls(&mut relay, &mut alice, "dev", &alice_commit);
    mls(&mut relay, &mut bob, "dev", &bob_commit);
    assert_eq!(
        events(&mut relay, &mut alice)[0].kind,
        ParsedKind::MlsTaken { epoch: 2 }
    );
    alice_mls.merge();
    let got = events(&mut relay, &mut bob);
    let refused = got
        .iter()
        .find(|e| matches!(e.kind, ParsedKind::MlsRefused { .. }))
        .expect("bob's commit refused");
    assert_eq!(refused.kind, ParsedKind::MlsRefused { epoch: 2 });
    bob_mls.discard();
    let winner = &group_messages(&got)[0];
    assert_eq!(
        bob_mls.process(winner),
        Ok(Seen::Commit {
            epoch: 2,
            removed_me: false
        })
    );
    assert_eq!((alice_mls.epoch(), bob_mls.epoch()), (2, 2));
    mls(&mut relay, &mut bob, "dev", &bob_mls.encrypt("converged"));
    let got = events(&mut relay, &mut alice);
    assert_eq!(
        alice_mls.process(&group_messages(&got)[0]),
        Ok(Seen::Application(b"converged".to_vec()))
    );
}

#[test]
fn a_member_who_leaves_is_removed_before_anyone_sends_again() {
    let mut relay = relay();
    let (mut alice, mut alice_mls, mut bob, mut bob_mls) = alice_and_bob(&mut relay);
    bob.say(&mut relay, "/part dev");
    let got = events(&mut relay, &mut alice);
    assert!(
        got.iter()
            .any(|e| e.kind == ParsedKind::MlsRemove { name: "bob".into() }),
        "{got:?}"
    );
    // Nothing is taken until the removal is committed.
    mls(
        &mut relay,
        &mut alice,
        "dev",
        &alice_mls.encrypt("too soon"),
    );
    let got = events(&mut relay, &mut alice);
    assert!(
        matches!(got[0].kind, ParsedKind::MlsRefused { epoch: 1 }),
        "{got:?}"
    );
    assert!(got[0].text.contains("bob is to be removed"), "{got:?}");
    let commit = alice_mls.remove("bob");
    mls(&mut relay, &mut alice, "dev", &commit);
    assert_eq!(
        events(&mut relay, &mut alice)[0].kind,
        ParsedKind::MlsTaken { epoch: 2 }
    );
    alice_mls.merge();
    let after = alice_mls.encrypt("after bob left");
    mls(&mut relay, &mut alice, "dev", &after);
    assert!(events(&mut relay, &mut alice).is_empty());
    // Bob's own state, kept, cannot open what came after: he gets nothing
    // from the room, and the message itself does not open for him.
    assert!(group_messages(&events(&mut relay, &mut bob)).is_empty());
    assert!(bob_mls.process(&after).is_err());
}

#[test]
fn a_welcome_waits_for_a_device_that_is_away() {
    let mut relay = relay();
    let (mut alice, mut alice_mls, _bob, _bob_mls) = alice_and_bob(&mut relay);
    let mut carol_mls = Device::new("carol");
    let mut carol = connect(&mut relay, CAROL);
    carol.say(
        &mut relay,
        &format!("/keypackage {}", B64.encode(carol_mls.key_package())),
    );
    carol.say(&mut relay, "/join dev");
    let carol_id = carol.id;
    relay.close(carol_id, eaxchat_core::relay::CloseReason::PeerClosed);
    relay.remove(carol_id);
    alice.say(&mut relay, "/keypackages carol");
    let packages = events(&mut relay, &mut alice)
        .into_iter()
        .find(|e| matches!(e.kind, ParsedKind::KeyPackages { .. }))
        .expect("carol's KeyPackages")
        .packages;
    let (commit, welcome) = alice_mls.add(&packages);
    mls(&mut relay, &mut alice, "dev", &commit);
    alice_mls.merge();
    mls(&mut relay, &mut alice, "dev", &welcome);
    // The relay keeps its state across a restart of the caller's.
    let kept = DeliveryService::decode(&relay.delivery().encode()).expect("decodes");
    assert_eq!(kept.encode(), relay.delivery().encode());
    let mut carol = SessionClient::connect(&mut relay, CAROL);
    carol.say(&mut relay, "/hello eaxchat/1");
    let got = events(&mut relay, &mut carol);
    let welcome = got
        .iter()
        .find(|e| e.kind == ParsedKind::Mls && e.id.is_none())
        .expect("the Welcome, at hello");
    carol_mls.join(&welcome.data);
    assert_eq!(carol_mls.epoch(), 2);
}

#[test]
fn bad_group_messages_are_refused_and_hurt_nobody() {
    let mut relay = relay();
    let (mut alice, mut alice_mls, mut bob, mut bob_mls) = alice_and_bob(&mut relay);
    let mut other = Device::new("bob");
    let foreign = other.create("elsewhere");
    for bytes in [&b"garbage"[..], &foreign, &bob_mls.key_package()] {
        mls(&mut relay, &mut bob, "dev", bytes);
        let got = events(&mut relay, &mut bob);
        assert!(
            matches!(got[0].kind, ParsedKind::MlsRefused { .. }),
            "{got:?}"
        );
    }
    // A KeyPackage naming someone else is refused.
    let carol_mls = Device::new("carol");
    bob.say(
        &mut relay,
        &format!("/keypackage {}", B64.encode(carol_mls.key_package())),
    );
    assert!(
        events(&mut relay, &mut bob)[0]
            .text
            .contains("does not name you")
    );
    // A relayed room cannot become end-to-end; not a member of the room.
    bob.say(&mut relay, "/join ops");
    bob.got(&mut relay);
    bob.say(&mut relay, "/join ops --e2e");
    assert!(
        events(&mut relay, &mut bob)[0]
            .text
            .contains("never changes mode")
    );
    mls(&mut relay, &mut bob, "lobby", &bob_mls.encrypt("x"));
    assert!(matches!(
        events(&mut relay, &mut bob)[0].kind,
        ParsedKind::MlsRefused { .. }
    ));
    assert!(group_messages(&events(&mut relay, &mut alice)).is_empty());
    // And the group still works.
    mls(&mut relay, &mut bob, "dev", &bob_mls.encrypt("still here"));
    let got = events(&mut relay, &mut alice);
    assert_eq!(
        alice_mls.process(&group_messages(&got)[0]),
        Ok(Seen::Application(b"still here".to_vec()))
    );
}

#[test]
fn end_to_end_rooms_need_devices_and_eaxchat_1() {
    let mut relay = relay();
    let mut plain = SessionClient::connect(&mut relay, ALICE);
    plain.say(&mut relay, "/join dev --e2e");
    let got = plain.got(&mut relay);
    assert!(got[0].contains("eaxchat/1"), "{got:?}");
}

#[test]
fn group_messages_of_one_read_go_out_together_in_order() {
    let mut relay = relay();
    let (mut alice, mut alice_mls, mut bob, mut bob_mls) = alice_and_bob(&mut relay);
    let mut read = Vec::new();
    for i in 0..5 {
        let message = alice_mls.encrypt(&format!("m{i}"));
        read.extend(alice.seal(&format!("/mls dev {}", B64.encode(message))));
    }
    // One in another room of alice's goes on its own, after those before.
    read.extend(alice.seal("/join ops"));
    relay.receive(alice.id, &read);
    let got = events(&mut relay, &mut bob);
    let ids: Vec<u64> = got
        .iter()
        .filter_map(|e| e.id.filter(|_| e.kind == ParsedKind::Mls))
        .collect();
    assert_eq!(ids.len(), 5, "{got:?}");
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    let texts: Vec<Seen> = group_messages(&got)
        .iter()
        .map(|m| bob_mls.process(m).unwrap())
        .collect();
    let want: Vec<Seen> = (0..5)
        .map(|i| Seen::Application(format!("m{i}").into_bytes()))
        .collect();
    assert_eq!(texts, want);
}

#[test]
fn a_new_device_of_a_member_is_announced_for_adding() {
    const LAPTOP: u8 = 12;
    let mut relay = sessions_relay(
        &[("alice", ALICE), ("bob", BOB), ("bob", LAPTOP)],
        Default::default(),
        ChatConfig {
            presence: false,
            ..ChatConfig::default()
        },
    );
    let (mut alice, _alice_mls, bob, _bob_mls) = alice_and_bob(&mut relay);
    // Bob's phone, welcomed, comes back: nothing to announce.
    let bob_id = bob.id;
    relay.close(bob_id, eaxchat_core::relay::CloseReason::PeerClosed);
    relay.remove(bob_id);
    alice.got(&mut relay);
    let _phone = connect(&mut relay, BOB);
    let got = events(&mut relay, &mut alice);
    assert!(
        !got.iter()
            .any(|e| matches!(e.kind, ParsedKind::MlsAdd { .. })),
        "{got:?}"
    );
    // His laptop, new to the group, comes into the room (his rooms are
    // remembered); once it has a KeyPackage to be added with, the room is
    // told to add bob's devices.
    let mut laptop = connect(&mut relay, LAPTOP);
    let got = events(&mut relay, &mut alice);
    assert!(
        !got.iter()
            .any(|e| matches!(e.kind, ParsedKind::MlsAdd { .. })),
        "{got:?}"
    );
    let laptop_mls = Device::new("bob");
    laptop.say(
        &mut relay,
        &format!("/keypackage {}", B64.encode(laptop_mls.key_package())),
    );
    let got = events(&mut relay, &mut alice);
    assert!(
        got.iter()
            .any(|e| e.kind == ParsedKind::MlsAdd { name: "bob".into() }),
        "{got:?}"
    );
}

#[test]
fn a_relay_in_a_cluster_makes_no_end_to_end_room() {
    use eaxchat_core::cluster::{Cluster, ClusterConfig, ClusterKey};
    use eaxchat_proto::key::Key;
    use eaxchat_proto::nonce::Nonces;
    use std::time::Instant;

    let mut relay = relay();
    let key = ClusterKey::with_nonces(
        &Key::from_bytes(&[5; 16]).unwrap(),
        Nonces::from_seed([8; 32]),
    );
    relay.join_cluster(Cluster::new(
        ClusterConfig::new("t", "here"),
        key,
        1,
        Instant::now(),
    ));
    let mut alice = connect(&mut relay, ALICE);
    alice.say(&mut relay, "/join dev --e2e");
    let got = events(&mut relay, &mut alice);
    assert_eq!(got[0].kind, ParsedKind::Error);
    assert!(got[0].text.contains("cluster"), "{got:?}");
    assert!(relay.delivery().rooms().next().is_none());
}
