//! The review's findings on end-to-end rooms, each a test that failed
//! before its fix: a commit of another group with the same id, a commit
//! that skips a due removal, an epoch of `u64::MAX`, a Welcome outside its
//! room, unmade rooms kept forever, the default room made end-to-end, and
//! a room whose log shows it was end-to-end.

use base64::Engine as _;
use eaxchat_core::delivery::DeliveryService;
use eaxchat_proto::events::ParsedKind;

use crate::chat_layer::{ALICE, BOB, CAROL};
use crate::e2e::{B64, alice_and_bob, connect, events, group_messages, mls, relay};
use crate::mls_device::Device;

#[test]
fn a_commit_of_another_group_with_the_same_id_is_refused() {
    let mut relay = relay();
    let (mut alice, mut alice_mls, _bob, _bob_mls) = alice_and_bob(&mut relay);
    let mut carol = connect(&mut relay, CAROL);
    carol.say(&mut relay, "/join dev");
    carol.got(&mut relay);
    alice.got(&mut relay);
    // Carol is in the room but not the group: she makes her own group of
    // the same (public) id and moves it to the group's epoch.
    let mut forger = Device::new("carol");
    forger.create("dev");
    let (_, _) = forger.add(&[Device::new("carol").key_package()]);
    forger.merge();
    let (forged, _) = forger.add(&[Device::new("carol").key_package()]);
    mls(&mut relay, &mut carol, "dev", &forged);
    let got = events(&mut relay, &mut carol);
    assert!(
        matches!(got[0].kind, ParsedKind::MlsRefused { epoch: 1 }),
        "{got:?}"
    );
    assert!(group_messages(&events(&mut relay, &mut alice)).is_empty());
    // Nor can she replace the GroupInfo devices join by.
    mls(&mut relay, &mut carol, "dev", &forger.group_info());
    assert!(matches!(
        events(&mut relay, &mut carol)[0].kind,
        ParsedKind::MlsRefused { .. }
    ));
    // The group goes on.
    let (honest, _) = alice_mls.add(&[Device::new("carol").key_package()]);
    mls(&mut relay, &mut alice, "dev", &honest);
    let got = events(&mut relay, &mut alice);
    assert!(
        got.iter()
            .any(|e| e.kind == ParsedKind::MlsTaken { epoch: 2 }),
        "{got:?}"
    );
}

#[test]
fn a_commit_that_does_not_make_a_due_removal_is_refused() {
    let mut relay = relay();
    let (mut alice, mut alice_mls, mut bob, mut bob_mls) = alice_and_bob(&mut relay);
    let carol_mls = Device::new("carol");
    let mut carol = connect(&mut relay, CAROL);
    carol.say(
        &mut relay,
        &format!("/keypackage {}", B64.encode(carol_mls.key_package())),
    );
    alice.say(&mut relay, "/keypackages carol");
    let packages = events(&mut relay, &mut alice)
        .into_iter()
        .find(|e| matches!(e.kind, ParsedKind::KeyPackages { .. }))
        .expect("carol's KeyPackages")
        .packages;
    let (add, _) = alice_mls.add(&packages);
    bob.say(&mut relay, "/part dev");
    bob.got(&mut relay);
    alice.got(&mut relay);
    mls(&mut relay, &mut alice, "dev", &add);
    let got = events(&mut relay, &mut alice);
    assert!(
        matches!(got[0].kind, ParsedKind::MlsRefused { epoch: 1 }),
        "{got:?}"
    );
    assert!(got[0].text.contains("bob is to be removed"), "{got:?}");
    alice_mls.discard();
    let secret = alice_mls.encrypt("after bob left");
    mls(&mut relay, &mut alice, "dev", &secret);
    assert!(matches!(
        events(&mut relay, &mut alice)[0].kind,
        ParsedKind::MlsRefused { .. }
    ));
    let remove = alice_mls.remove("bob");
    mls(&mut relay, &mut alice, "dev", &remove);
    assert_eq!(
        events(&mut relay, &mut alice)[0].kind,
        ParsedKind::MlsTaken { epoch: 2 }
    );
    // What was refused never reached bob, and what comes after the
    // removal does not open for him.
    alice_mls.merge();
    let after = alice_mls.encrypt("after the removal");
    mls(&mut relay, &mut alice, "dev", &after);
    assert!(group_messages(&events(&mut relay, &mut bob)).is_empty());
    assert!(bob_mls.process(&after).is_err());
}

#[test]
fn an_application_message_of_the_last_epoch_there_is_refused_without_a_panic() {
    let mut relay = relay();
    let (mut alice, _alice_mls, _bob, _bob_mls) = alice_and_bob(&mut relay);
    let group = eaxchat_e2e::group_id("dev");
    let mut message = vec![0x00, 0x01, 0x00, 0x02, group.len() as u8];
    message.extend_from_slice(&group);
    message.extend_from_slice(&[0xff; 8]); // epoch u64::MAX
    message.extend_from_slice(&[1, 0]); // application, no associated data
    message.extend_from_slice(&[4, 1, 2, 3, 4, 4, 1, 2, 3, 4]);
    mls(&mut relay, &mut alice, "dev", &message);
    let got = events(&mut relay, &mut alice);
    assert!(
        matches!(got[0].kind, ParsedKind::MlsRefused { .. }),
        "{got:?}"
    );
}

#[test]
fn a_welcome_goes_only_into_its_room() {
    let mut relay = relay();
    let (mut alice, mut bob) = (connect(&mut relay, ALICE), connect(&mut relay, BOB));
    let (mut alice_mls, mut bob_mls) = (Device::new("alice"), Device::new("bob"));
    bob.say(
        &mut relay,
        &format!("/keypackage {}", B64.encode(bob_mls.key_package())),
    );
    bob.got(&mut relay);
    alice.say(&mut relay, "/join evil --e2e");
    mls(&mut relay, &mut alice, "evil", &alice_mls.create("evil"));
    alice.say(&mut relay, "/keypackages bob");
    let packages = events(&mut relay, &mut alice)
        .into_iter()
        .find(|e| matches!(e.kind, ParsedKind::KeyPackages { .. }))
        .expect("bob's KeyPackages")
        .packages;
    let (commit, welcome) = alice_mls.add(&packages);
    mls(&mut relay, &mut alice, "evil", &commit);
    alice_mls.merge();
    mls(&mut relay, &mut alice, "evil", &welcome);
    assert!(group_messages(&events(&mut relay, &mut bob)).is_empty());
    // It waits until bob is in the room.
    bob.say(&mut relay, "/join evil");
    let got = events(&mut relay, &mut bob);
    let welcome = got
        .iter()
        .find(|e| e.kind == ParsedKind::Mls && e.id.is_none())
        .expect("the Welcome");
    bob_mls.join(&welcome.data);
    assert_eq!(bob_mls.epoch(), 1);
}

#[test]
fn end_to_end_rooms_whose_group_was_never_made_are_forgotten() {
    let mut relay = relay();
    let mut alice = connect(&mut relay, ALICE);
    for i in 0..200 {
        alice.say(&mut relay, &format!("/join r{i} --e2e"));
        alice.say(&mut relay, &format!("/part r{i}"));
        alice.got(&mut relay);
    }
    assert_eq!(relay.delivery().rooms().count(), 0);
}

#[test]
fn the_default_room_never_becomes_end_to_end() {
    let mut relay = relay();
    let mut alice = connect(&mut relay, ALICE);
    alice.say(&mut relay, "/part lobby");
    alice.say(&mut relay, "/join lobby --e2e");
    let got = events(&mut relay, &mut alice);
    assert!(
        got.iter()
            .any(|e| e.kind == ParsedKind::Error && e.text.contains("cannot be end-to-end")),
        "{got:?}"
    );
    let lobby = eaxchat_proto::commands::RoomName::new(b"lobby").unwrap();
    assert!(!relay.delivery().is_e2e(&lobby));
}

#[test]
fn a_room_whose_log_holds_group_messages_stays_end_to_end() {
    let mut relay = relay();
    let dev = eaxchat_proto::commands::RoomName::new(b"dev").unwrap();
    let record = eaxchat_core::record::Record::Message {
        room: dev.clone(),
        sender: Some(eaxchat_proto::name::Name::new("alice").unwrap()),
        text: B64.encode(b"ciphertext").into_bytes().into(),
        ts_millis: 1,
        kind: eaxchat_core::history::EntryKind::Mls,
        id: Some(0),
    };
    relay.restore_history([&record]);
    // Even when the Delivery Service's own state comes back empty.
    relay.restore_delivery(DeliveryService::default());
    let mut alice = connect(&mut relay, ALICE);
    alice.say(&mut relay, "/join dev");
    alice.say(&mut relay, "/in dev the plan, in the clear");
    let got = events(&mut relay, &mut alice);
    assert!(relay.delivery().is_e2e(&dev));
    assert!(
        got.iter()
            .any(|e| e.kind == ParsedKind::Error && e.text.contains("end-to-end")),
        "{got:?}"
    );
}
