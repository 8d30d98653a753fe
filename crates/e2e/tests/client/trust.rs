//! Pins (trust on first use) and safety numbers, fed from real groups.

use eaxchat_e2e::{E2eError, Event, Pin, Pins, safety_number};

use crate::ds::{Client, ROOM, three};

/// Observes every member of the room, as the terminal app does after each
/// commit; returns what the pins said for each.
fn observe_all(pins: &mut Pins, client: &Client) -> Vec<(String, Pin)> {
    client
        .rooms
        .members(ROOM)
        .expect("members")
        .into_iter()
        .map(|m| {
            let pin = pins.observe(&m.name, &m.signature_key).expect("pin");
            (m.name, pin)
        })
        .collect()
}

/// bob pins alice's device on first sight; a second device of alice's is
/// reported as Added, and the pins survive a restart.
#[test]
fn a_new_device_of_a_known_name_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, mut alice, mut bob, _carol) = three(dir.path());
    let bob_dir = dir.path().join("bob");
    let mut pins = Pins::open(&bob_dir).expect("pins");
    let first = observe_all(&mut pins, &bob);
    assert!(first.iter().all(|(_, pin)| *pin == Pin::New), "{first:?}");
    assert!(
        observe_all(&mut pins, &bob)
            .iter()
            .all(|(_, pin)| *pin == Pin::Known)
    );

    let mut phone = Client::open(&dir.path().join("alice-phone"), "alice");
    let packages = phone.rooms.key_packages(1).expect("kp");
    alice.add(&mut ds, &packages).expect("accepted");
    let events = bob.catch_up(&ds);
    let Some(Ok(Event::Commit { added, .. })) = events.last() else {
        panic!("{events:?}");
    };
    assert_eq!(added, &[phone.member()]);
    drop(pins);
    let mut pins = Pins::open(&bob_dir).expect("reopen");
    assert_eq!(
        pins.observe("alice", &added[0].signature_key).expect("pin"),
        Pin::Added
    );
    assert_eq!(pins.keys("alice").len(), 2);
    assert_eq!(
        pins.observe("alice", alice.rooms.device().signature_key())
            .expect("pin"),
        Pin::Known
    );
}

/// alice's safety number for bob is bob's for alice; it changes when one
/// of bob's device keys does.
#[test]
fn safety_numbers_match_on_both_sides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ds, alice, bob, _carol) = three(dir.path());
    let mut alice_pins = Pins::open(&dir.path().join("alice")).expect("pins");
    let mut bob_pins = Pins::open(&dir.path().join("bob")).expect("pins");
    observe_all(&mut alice_pins, &alice);
    observe_all(&mut bob_pins, &bob);
    let view = |pins: &Pins, me: &str, them: &str| {
        safety_number((me, &pins.keys(me)), (them, &pins.keys(them)))
    };
    let alice_view = view(&alice_pins, "alice", "bob");
    assert_eq!(alice_view, view(&bob_pins, "bob", "alice"));
    assert_eq!(alice_view.len(), 60 + 11);
    assert_ne!(alice_view, view(&alice_pins, "alice", "carol"));

    let laptop = Client::open(&dir.path().join("bob-laptop"), "bob");
    alice_pins
        .observe("bob", laptop.rooms.device().signature_key())
        .expect("pin");
    assert_ne!(alice_view, view(&alice_pins, "alice", "bob"));
}

/// A state directory holds one member's device: opening it as another
/// name is refused, and the files are the owner's only.
#[test]
fn a_state_directory_is_one_members_and_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ds, _alice, bob, _carol) = three(dir.path());
    let key = bob.rooms.device().signature_key().to_vec();
    drop(bob);
    let err = eaxchat_e2e::E2eRooms::open(&dir.path().join("bob"), "mallory").expect_err("refused");
    assert!(
        matches!(err, E2eError::OtherMember(ref name) if name == "bob"),
        "{err:?}"
    );
    let again = eaxchat_e2e::Device::open(&dir.path().join("bob"), "bob").expect("open");
    assert_eq!(again.signature_key(), &key[..]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for file in ["device", "mls"] {
            let meta = std::fs::metadata(dir.path().join("bob").join(file)).expect("file");
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
        }
    }
}

/// Damaged state files are reported as such when opened, never a panic.
#[test]
fn damaged_state_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ds, _alice, bob, _carol) = three(dir.path());
    let bob_dir = dir.path().join("bob");
    let mut pins = Pins::open(&bob_dir).expect("pins");
    pins.observe("alice", b"key").expect("pin");
    drop((bob, pins));
    let whole = std::fs::read(bob_dir.join("mls")).expect("mls file");
    for cut in [0, 7, 8, 100, whole.len() / 2, whole.len() - 1] {
        std::fs::write(bob_dir.join("mls"), &whole[..cut]).expect("write");
        let err = eaxchat_e2e::E2eRooms::open(&bob_dir, "bob").expect_err("damaged");
        assert!(
            matches!(err, E2eError::CorruptState(_)),
            "cut at {cut}: {err:?}"
        );
    }
    std::fs::write(bob_dir.join("mls"), &whole).expect("write");
    assert!(eaxchat_e2e::E2eRooms::open(&bob_dir, "bob").is_ok());
    std::fs::write(bob_dir.join("pins"), b"{\"alice\": [\"zz\"]}").expect("write");
    assert!(matches!(
        Pins::open(&bob_dir),
        Err(E2eError::CorruptState("pins"))
    ));
    std::fs::write(bob_dir.join("device"), b"EAXDEV01").expect("write");
    assert!(matches!(
        eaxchat_e2e::Device::open(&bob_dir, "bob"),
        Err(E2eError::CorruptState("device"))
    ));
}
