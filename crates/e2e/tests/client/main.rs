//! A device's side of end-to-end rooms, in memory: devices of alice, bob,
//! carol (and later dave, erin) in one room's group, through the
//! in-test Delivery Service of `ds.rs` (which orders by the relay's own
//! `eaxchat_e2e::ds::peek`). No relay, no sockets.

mod ds;
mod trust;

use ds::{Answer, Client, ROOM, three};
use eaxchat_e2e::{E2eError, E2eRooms, Event, PAST_EPOCHS};

/// Every member reads every other's message, with the sender's name and
/// device key as MLS authenticated them.
#[test]
fn messages_round_trip_between_three_devices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, mut alice, mut bob, mut carol) = three(dir.path());
    alice.say(&mut ds, "hello from alice");
    bob.say(&mut ds, "hello from bob");
    carol.say(&mut ds, "hello from carol");
    assert_eq!(
        Client::texts(alice.catch_up(&ds)),
        ["bob: hello from bob", "carol: hello from carol"]
    );
    let events = bob.catch_up(&ds);
    let Ok(Event::Application {
        from, device_key, ..
    }) = &events[0]
    else {
        panic!("{events:?}");
    };
    assert_eq!(from, "alice");
    assert_eq!(
        device_key.as_deref(),
        Some(alice.rooms.device().signature_key())
    );
    assert_eq!(
        Client::texts(events),
        ["alice: hello from alice", "carol: hello from carol"]
    );
    assert_eq!(
        Client::texts(carol.catch_up(&ds)),
        ["alice: hello from alice", "bob: hello from bob"]
    );
    let names: Vec<String> = bob
        .rooms
        .members(ROOM)
        .expect("members")
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
}

/// carol removed: she learns it, and neither her state after the removal
/// nor a copy kept from before it opens what is said next.
#[test]
fn a_removed_member_cannot_read_what_follows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, mut alice, mut bob, mut carol) = three(dir.path());
    let before = dir.path().join("carol-before");
    copy_dir(&dir.path().join("carol"), &before);

    let commit = alice.rooms.remove(ROOM, "carol").expect("remove");
    assert_eq!(alice.send_commit(&mut ds, &commit), Answer::Ok);
    let events = bob.catch_up(&ds);
    let Ok(Event::Commit {
        by,
        epoch: 2,
        removed,
        removed_me: false,
        ..
    }) = &events[0]
    else {
        panic!("{events:?}");
    };
    assert_eq!(
        (by.as_str(), &removed[..]),
        ("alice", &[carol.member()][..])
    );
    let events = carol.catch_up(&ds);
    assert!(
        matches!(
            events[0],
            Ok(Event::Commit {
                removed_me: true,
                ..
            })
        ),
        "{events:?}"
    );

    alice.say(&mut ds, "carol is gone");
    let secret = ds.log.last().expect("sent").1.clone();
    assert_eq!(Client::texts(bob.catch_up(&ds)), ["alice: carol is gone"]);
    assert!(matches!(carol.catch_up(&ds)[..], [Err(E2eError::Removed)]));
    assert!(matches!(
        carol.rooms.encrypt(ROOM, "hi"),
        Err(E2eError::Removed)
    ));

    // Her state from before the removal has no key to the new epoch.
    let mut kept = E2eRooms::open(&before, "carol").expect("reopen");
    assert!(matches!(
        kept.process(ROOM, &secret),
        Err(E2eError::FutureEpoch {
            epoch: 2,
            current: 1
        })
    ));
}

/// dave, added later, is told distinctly that a message sent before he
/// joined cannot be read, and reads what follows.
#[test]
fn a_late_joiner_cannot_read_what_came_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, mut alice, mut bob, _carol) = three(dir.path());
    alice.say(&mut ds, "before dave");
    let before = ds.log.last().expect("sent").1.clone();
    let mut dave = Client::open(&dir.path().join("dave"), "dave");
    let packages = dave.rooms.key_packages(2).expect("kp");
    let welcome = alice.add(&mut ds, &packages[..1]).expect("accepted");
    assert_eq!(dave.rooms.join_welcome(&welcome).expect("join").1, 2);
    dave.read = ds.log.len();
    let err = dave.rooms.process(ROOM, &before).expect_err("unreadable");
    assert!(
        matches!(
            err,
            E2eError::BeforeJoined {
                epoch: 1,
                joined: 2
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "sent before you joined");

    let events = bob.catch_up(&ds);
    let Some(Ok(Event::Commit { added, .. })) = events.last() else {
        panic!("{events:?}");
    };
    assert_eq!(added, &[dave.member()]);
    bob.say(&mut ds, "hi dave");
    assert_eq!(Client::texts(dave.catch_up(&ds)), ["bob: hi dave"]);
}

/// alice and bob commit at the same epoch; the relay takes alice's, bob is
/// refused, processes hers, retries, and everyone ends at one epoch.
#[test]
fn racing_commits_converge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, mut alice, mut bob, mut carol) = three(dir.path());
    let mut dave = Client::open(&dir.path().join("dave"), "dave");
    let mut erin = Client::open(&dir.path().join("erin"), "erin");
    let dave_kp = dave.rooms.key_packages(1).expect("kp");
    let erin_kp = erin.rooms.key_packages(1).expect("kp");

    let (alice_commit, alice_welcome) = alice.rooms.add(ROOM, &dave_kp).expect("add");
    let (bob_commit, _) = bob.rooms.add(ROOM, &erin_kp).expect("add");
    assert!(bob.rooms.is_pending(ROOM).expect("room"));
    assert!(matches!(
        bob.rooms.add(ROOM, &erin_kp),
        Err(E2eError::CommitPending)
    ));
    assert_eq!(alice.send_commit(&mut ds, &alice_commit), Answer::Ok);
    assert_eq!(bob.send_commit(&mut ds, &bob_commit), Answer::Refused);
    assert!(!bob.rooms.is_pending(ROOM).expect("room"));
    dave.rooms.join_welcome(&alice_welcome).expect("join");
    dave.read = ds.log.len();

    assert!(bob.catch_up(&ds).iter().all(Result::is_ok));
    assert_eq!(bob.rooms.epoch(ROOM).expect("epoch"), 2);
    let welcome = bob.add(&mut ds, &erin_kp).expect("retry accepted");
    erin.rooms.join_welcome(&welcome).expect("join");
    erin.read = ds.log.len();
    for member in [&mut alice, &mut carol, &mut dave] {
        assert!(member.catch_up(&ds).iter().all(Result::is_ok));
    }
    for member in [&alice, &bob, &carol, &dave, &erin] {
        assert_eq!(
            member.rooms.epoch(ROOM).expect("epoch"),
            3,
            "{}",
            member.name
        );
    }
    erin.say(&mut ds, "all here");
    for member in [&mut alice, &mut bob, &mut carol, &mut dave] {
        assert_eq!(Client::texts(member.catch_up(&ds)), ["erin: all here"]);
    }
}

/// A commit the relay took first while bob's own was pending: bob reads it
/// before the refusal arrives, and the refusal then changes nothing.
#[test]
fn a_winning_commit_read_before_the_refusal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, mut alice, mut bob, _carol) = three(dir.path());
    let removal = alice.rooms.remove(ROOM, "carol").expect("remove");
    let bob_removal = bob.rooms.remove(ROOM, "carol").expect("remove");
    assert_eq!(alice.send_commit(&mut ds, &removal), Answer::Ok);
    assert!(bob.catch_up(&ds).iter().all(Result::is_ok));
    assert_eq!(ds.submit("bob", &bob_removal), Answer::Refused);
    bob.rooms.refused(ROOM).expect("drop");
    assert_eq!(bob.rooms.epoch(ROOM).expect("epoch"), 2);
    bob.say(&mut ds, "still here");
    assert_eq!(Client::texts(alice.catch_up(&ds)), ["bob: still here"]);
}

/// A device reloaded from its state directory mid-epoch keeps reading
/// and sending, without reusing a key it used before the restart.
#[test]
fn a_restarted_device_keeps_reading_and_sending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, mut alice, mut bob, mut carol) = three(dir.path());
    alice.say(&mut ds, "one");
    assert_eq!(Client::texts(bob.catch_up(&ds)), ["alice: one"]);
    // Sending is bob's last act before the restart: its ratchet step must
    // already be on disk, or "four" would reuse the key of "two".
    bob.say(&mut ds, "two");
    let key = bob.rooms.device().signature_key().to_vec();
    let read = bob.read;
    drop(bob);

    let mut bob = Client::open(&dir.path().join("bob"), "bob");
    bob.read = read;
    assert_eq!(bob.rooms.device().signature_key(), &key[..]);
    assert_eq!(bob.rooms.rooms().collect::<Vec<_>>(), [ROOM]);
    alice.say(&mut ds, "three");
    assert_eq!(Client::texts(bob.catch_up(&ds)), ["alice: three"]);
    bob.say(&mut ds, "four");
    assert_eq!(
        Client::texts(alice.catch_up(&ds)),
        ["bob: two", "bob: four"]
    );
    assert_eq!(
        Client::texts(carol.catch_up(&ds)),
        ["alice: one", "bob: two", "alice: three", "bob: four"]
    );
    let commit = bob.rooms.remove(ROOM, "carol").expect("remove");
    assert_eq!(bob.send_commit(&mut ds, &commit), Answer::Ok);
    assert!(alice.catch_up(&ds).iter().all(Result::is_ok));
    assert_eq!(alice.rooms.epoch(ROOM).expect("epoch"), 2);
}

/// A device restarted with a commit pending still merges it on `mls-ok`.
#[test]
fn a_pending_commit_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, mut alice, mut bob, _carol) = three(dir.path());
    let commit = alice.rooms.remove(ROOM, "carol").expect("remove");
    drop(alice);
    let mut alice = Client::open(&dir.path().join("alice"), "alice");
    assert!(alice.rooms.is_pending(ROOM).expect("room"));
    assert_eq!(alice.send_commit(&mut ds, &commit), Answer::Ok);
    assert!(bob.catch_up(&ds).iter().all(Result::is_ok));
    alice.say(&mut ds, "after restart");
    assert_eq!(Client::texts(bob.catch_up(&ds)), ["alice: after restart"]);
}

/// The relay took alice's commit but its `mls-ok` was lost, and her
/// device restarted: reading her own commit back from the room says so
/// (openmls matches it to the pending commit), changes nothing, and
/// `accepted` then merges it.
#[test]
fn a_pending_commit_read_back_from_the_room_is_known_as_ours() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, mut alice, mut bob, _carol) = three(dir.path());
    let commit = alice.rooms.remove(ROOM, "carol").expect("remove");
    assert_eq!(
        ds.submit("alice", &commit),
        Answer::Ok,
        "taken; the answer is lost"
    );
    drop(alice);
    let mut alice = Client::open(&dir.path().join("alice"), "alice");
    assert!(matches!(
        alice.rooms.process(ROOM, &commit),
        Err(E2eError::OwnPendingCommit)
    ));
    assert!(
        alice.rooms.is_pending(ROOM).expect("room"),
        "nothing changed"
    );
    assert_eq!(alice.rooms.epoch(ROOM).expect("room"), 1);
    let info = alice.rooms.accepted(ROOM).expect("merge");
    assert_eq!(ds.submit("alice", &info), Answer::Ok);
    assert_eq!(alice.rooms.epoch(ROOM).expect("room"), 2);
    alice.read = ds.log.len();
    assert!(bob.catch_up(&ds).iter().all(Result::is_ok));
    alice.say(&mut ds, "after the lost answer");
    assert_eq!(
        Client::texts(bob.catch_up(&ds)),
        ["alice: after the lost answer"]
    );
}

/// erin's External Commit was taken but its `mls-ok` was lost, and her
/// device restarted: reading her commit back from the room says it is
/// hers (openmls cannot match a commit that adds its own reader, so the
/// device kept its bytes), and `accepted` then makes her a member. Before,
/// it read as "a commit is waiting", was dropped, and a second External
/// Commit left erin in the group twice.
#[test]
fn an_external_commit_read_back_after_a_restart_is_known_as_ours() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, _alice, mut bob, _carol) = three(dir.path());
    let mut erin = Client::open(&dir.path().join("erin"), "erin");
    let info = ds.group_info.clone().expect("uploaded");
    let (_, commit) = erin.rooms.join_external(&info).expect("external commit");
    assert_eq!(
        ds.submit("erin", &commit),
        Answer::Ok,
        "taken; the answer is lost"
    );
    drop(erin);
    let mut erin = Client::open(&dir.path().join("erin"), "erin");
    assert!(erin.rooms.is_pending(ROOM).expect("room"));
    let other = ds.log[0].1.clone();
    assert!(
        matches!(
            erin.rooms.process(ROOM, &other),
            Err(E2eError::CommitPending)
        ),
        "another message is still one she cannot read"
    );
    assert!(matches!(
        erin.rooms.process(ROOM, &commit),
        Err(E2eError::OwnPendingCommit)
    ));
    let info = erin.rooms.accepted(ROOM).expect("merge");
    assert!(!erin.rooms.is_pending(ROOM).expect("room"));
    assert_eq!(ds.submit("erin", &info), Answer::Ok);
    erin.read = ds.log.len();
    assert!(bob.catch_up(&ds).iter().all(Result::is_ok));
    erin.say(&mut ds, "in once, after a restart");
    assert_eq!(
        Client::texts(bob.catch_up(&ds)),
        ["erin: in once, after a restart"]
    );
    assert_eq!(
        bob.rooms
            .members(ROOM)
            .expect("members")
            .iter()
            .filter(|member| member.name == "erin")
            .count(),
        1
    );
}

/// erin joins from the GroupInfo alone (External Commit) and talks.
#[test]
fn a_device_joins_by_external_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, mut alice, mut bob, mut carol) = three(dir.path());
    alice.say(&mut ds, "before erin");
    let mut erin = Client::open(&dir.path().join("erin"), "erin");
    let info = ds.group_info.clone().expect("uploaded");
    let (room, commit) = erin.rooms.join_external(&info).expect("external commit");
    assert_eq!(room, ROOM);
    assert!(matches!(
        erin.rooms.encrypt(ROOM, "x"),
        Err(E2eError::CommitPending)
    ));
    assert_eq!(erin.send_commit(&mut ds, &commit), Answer::Ok);
    erin.read = ds.log.len();
    assert!(matches!(
        erin.rooms.process(ROOM, &ds.log[1].1),
        Err(E2eError::BeforeJoined { .. })
    ));
    let events = bob.catch_up(&ds);
    let Some(Ok(Event::Commit {
        by,
        epoch: 2,
        added,
        ..
    })) = events.last()
    else {
        panic!("{events:?}");
    };
    assert_eq!((by.as_str(), &added[..]), ("erin", &[erin.member()][..]));
    erin.say(&mut ds, "hello, I let myself in");
    for member in [&mut alice, &mut carol] {
        let texts = Client::texts(member.catch_up(&ds));
        assert_eq!(
            texts.last().map(String::as_str),
            Some("erin: hello, I let myself in")
        );
    }
    bob.say(&mut ds, "welcome erin");
    assert_eq!(Client::texts(erin.catch_up(&ds)), ["bob: welcome erin"]);
}

/// A Welcome that comes while the device's own External Commit still waits
/// for the relay's answer (a member online added it meanwhile) replaces the
/// pending group: the device joins by the Welcome and talks.
#[test]
fn a_welcome_replaces_an_external_commit_still_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, mut alice, mut bob, _carol) = three(dir.path());
    let mut erin = Client::open(&dir.path().join("erin"), "erin");
    let info = ds.group_info.clone().expect("uploaded");
    let (_, commit) = erin.rooms.join_external(&info).expect("external commit");
    assert!(erin.rooms.is_pending(ROOM).expect("room"));
    let erin_kp = erin.rooms.key_packages(1).expect("kp");
    let welcome = alice.add(&mut ds, &erin_kp).expect("accepted");
    let (room, epoch) = erin.rooms.join_welcome(&welcome).expect("join");
    assert_eq!((room.as_str(), epoch), (ROOM, 2));
    assert!(!erin.rooms.is_pending(ROOM).expect("room"));
    // The relay refuses the stale commit (the epoch is taken); the device
    // keeps the group it joined.
    assert_eq!(ds.submit("erin", &commit), Answer::Refused);
    erin.read = ds.log.len();
    assert!(bob.catch_up(&ds).iter().all(Result::is_ok));
    erin.say(&mut ds, "in by welcome");
    assert_eq!(Client::texts(bob.catch_up(&ds)), ["erin: in by welcome"]);
}

/// A refused External Commit leaves no group behind; the retry from the
/// new GroupInfo works.
#[test]
fn a_refused_external_commit_is_dropped_and_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, mut alice, _bob, _carol) = three(dir.path());
    let mut erin = Client::open(&dir.path().join("erin"), "erin");
    let stale = ds.group_info.clone().expect("uploaded");
    let (_, commit) = erin.rooms.join_external(&stale).expect("external commit");
    let removal = alice.rooms.remove(ROOM, "carol").expect("remove");
    assert_eq!(alice.send_commit(&mut ds, &removal), Answer::Ok);
    assert_eq!(erin.send_commit(&mut ds, &commit), Answer::Refused);
    assert!(matches!(erin.rooms.epoch(ROOM), Err(E2eError::NoGroup(_))));
    let fresh = ds.group_info.clone().expect("uploaded");
    let (_, commit) = erin.rooms.join_external(&fresh).expect("external commit");
    assert_eq!(erin.send_commit(&mut ds, &commit), Answer::Ok);
    assert_eq!(erin.rooms.epoch(ROOM).expect("epoch"), 3);
}

/// A message sent just before a commit (epoch E−1) still opens after it;
/// one older than the kept epochs is refused as too old.
#[test]
fn past_epochs_open_up_to_the_kept_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, mut alice, mut bob, mut carol) = three(dir.path());
    let late = alice
        .rooms
        .encrypt(ROOM, "sent at epoch 1")
        .expect("encrypt");
    let commit = bob.rooms.remove(ROOM, "carol").expect("remove");
    assert_eq!(bob.send_commit(&mut ds, &commit), Answer::Ok);
    assert_eq!(ds.submit("alice", &late), Answer::Ok);
    let events = bob.catch_up(&ds);
    assert_eq!(Client::texts(events), ["alice: sent at epoch 1"]);
    let events = carol.catch_up(&ds);
    assert!(matches!(
        events[0],
        Ok(Event::Commit {
            removed_me: true,
            ..
        })
    ));
    assert!(alice.catch_up(&ds).iter().all(Result::is_ok));
    let old = alice
        .rooms
        .encrypt(ROOM, "sent at epoch 2")
        .expect("encrypt");
    for _ in 0..=PAST_EPOCHS {
        let mut dave = Client::open(&dir.path().join("dave"), "dave");
        let kp = dave.rooms.key_packages(1).expect("kp");
        alice.add(&mut ds, &kp).expect("accepted");
        let commit = alice.rooms.remove(ROOM, "dave").expect("remove");
        assert_eq!(alice.send_commit(&mut ds, &commit), Answer::Ok);
        assert!(bob.catch_up(&ds).iter().all(Result::is_ok));
    }
    let current = bob.rooms.epoch(ROOM).expect("epoch");
    assert!(matches!(
        bob.rooms.process(ROOM, &old),
        Err(E2eError::TooOld { epoch: 2, current: c }) if c == current
    ));
}

/// Garbage, a message of another room's group, and a room this device has
/// no group for are clear errors that change nothing.
#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ds, mut alice, mut bob, _carol) = three(dir.path());
    assert!(matches!(
        bob.rooms.process(ROOM, b"\x00\x01junk"),
        Err(E2eError::Malformed(_))
    ));
    assert!(matches!(
        bob.rooms.join_welcome(b"junk"),
        Err(E2eError::Malformed(_))
    ));
    assert!(matches!(
        bob.rooms.add(ROOM, &[b"junk".to_vec()]),
        Err(E2eError::Malformed(_))
    ));
    assert!(matches!(
        bob.rooms.process("other", b"x"),
        Err(E2eError::Malformed(_))
    ));
    let mut other = E2eRooms::open(&dir.path().join("other"), "alice").expect("open");
    other.create("elsewhere").expect("create");
    let foreign = other.encrypt("elsewhere", "hi").expect("encrypt");
    assert!(matches!(
        bob.rooms.process(ROOM, &foreign),
        Err(E2eError::WrongGroup)
    ));
    assert!(matches!(
        bob.rooms.process("elsewhere", &foreign),
        Err(E2eError::NoGroup(_))
    ));
    assert!(matches!(
        bob.rooms.remove(ROOM, "nobody"),
        Err(E2eError::NotMember(_))
    ));
    assert!(matches!(
        bob.rooms.accepted(ROOM),
        Err(E2eError::NoPendingCommit)
    ));
    alice.say(&mut ds, "still fine");
    assert_eq!(Client::texts(bob.catch_up(&ds)), ["alice: still fine"]);
    // History replayed after a reconnect: all of it already read (but the
    // commit that added bob, from before he joined).
    bob.say(&mut ds, "mine");
    for (from, bytes) in ds.log.iter().skip(1) {
        let replay = bob.rooms.process(ROOM, bytes);
        if from == "bob" {
            assert!(matches!(replay, Err(E2eError::OwnMessage)), "{replay:?}");
        } else {
            assert!(matches!(replay, Err(E2eError::Duplicate)), "{replay:?}");
        }
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// The last KeyPackage of a batch is last-resort: the relay may hand it
/// out twice, and both Welcomes made with it open; the others open once.
#[test]
fn the_last_key_package_of_a_batch_joins_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut alice = E2eRooms::open(&dir.path().join("alice"), "alice").expect("open");
    let mut bob = E2eRooms::open(&dir.path().join("bob"), "bob").expect("open");
    let packages = bob.key_packages(2).expect("kp");
    let mut welcomes = Vec::new();
    for (room, package) in [
        ("one", &packages[0]),
        ("two", &packages[0]),
        ("three", &packages[1]),
        ("four", &packages[1]),
    ] {
        alice.create(room).expect("create");
        let (_, welcome) = alice.add(room, std::slice::from_ref(package)).expect("add");
        alice.accepted(room).expect("merge");
        welcomes.push(welcome);
    }
    assert_eq!(bob.join_welcome(&welcomes[0]).expect("join").0, "one");
    assert!(matches!(
        bob.join_welcome(&welcomes[1]),
        Err(E2eError::Mls(_))
    ));
    assert_eq!(bob.join_welcome(&welcomes[2]).expect("join").0, "three");
    drop(bob);
    let mut bob = E2eRooms::open(&dir.path().join("bob"), "bob").expect("reopen");
    assert_eq!(bob.join_welcome(&welcomes[3]).expect("join").0, "four");
    assert_eq!(bob.rooms().collect::<Vec<_>>(), ["four", "one", "three"]);
}
