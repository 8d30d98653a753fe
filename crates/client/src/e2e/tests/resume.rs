//! A commit of ours in flight when the connection drops (`resume`), with
//! the relay's order on the next connection (welcome, `myrooms`, then the
//! history): an add the relay took is found in the room's history and
//! finished (the Welcome goes, the GroupInfo goes up); an add the relay
//! never got is made again once the history had its time; an External
//! Commit taken before a restart is merged, not made twice. Before, either
//! add left the room waiting for an answer that never came: the added
//! device never got its Welcome, and the relay kept no GroupInfo to join
//! by.

use super::super::{E2eDriver, EXTERNAL_JOIN_AFTER, SETTLE_AFTER};
use super::Net;
use super::external::bobs_external_commit_is_taken_unanswered;

/// Alice makes #dev; her connection stalls (nothing reaches her) as bob
/// joins, so his `mls-add` waits for her.
fn alice_makes_dev_and_stalls_as_bob_joins(net: &mut Net) {
    net.typed(0, "/join dev --e2e");
    net.paused.insert(0);
    net.typed(1, "/join dev");
}

/// Alice reads the `mls-add`, then the KeyPackages; the commit she makes
/// from them never reaches the relay.
fn lose_alices_add(net: &mut Net) {
    net.deliver(0);
    let packages = net.inbox[0].pop_front().unwrap();
    let out = net.drivers[0].received(&packages, net.now);
    assert!(out.send[0].starts_with(b"/mls dev "), "{out:?}");
}

/// `chat` of `i` restarts: a new driver on the same state directory.
fn restart(net: &mut Net, i: usize) {
    net.drivers[i] = E2eDriver::new(net._dirs[i].path().to_owned());
}

/// Delivers what waits for alice until the fake relay has taken her add
/// of bob (its `mls-ok` then waits in her inbox, to be lost).
fn until_alices_add_is_taken(net: &mut Net) {
    for _ in 0..10 {
        if net.rooms["dev"].epoch == Some(1) {
            return;
        }
        assert!(!net.inbox[0].is_empty(), "{:?}", net.shown[0]);
        net.deliver(0);
    }
    panic!("alice's add was never taken: {:?}", net.shown[0]);
}

/// Alice makes #dev; bob joins while her connection stalls; her add of
/// bob is taken, but her connection drops before its `mls-ok` reaches
/// her. Back, the history shows her commit: bob gets his Welcome, the
/// GroupInfo of epoch 1 goes up, and they talk.
#[test]
fn an_add_taken_while_the_connection_was_down_is_found_in_the_history() {
    let mut net = Net::new(&["alice", "bob"]);
    alice_makes_dev_and_stalls_as_bob_joins(&mut net);
    until_alices_add_is_taken(&mut net);
    net.leave(0);
    net.paused.clear();
    net.back(0);
    assert!(
        net.saw(1, "you are in #dev's end-to-end group now"),
        "{:?}\n{:?}",
        net.shown[1],
        net.shown[0]
    );
    assert!(net.saw(0, "you added bob"), "{:?}", net.shown[0]);
    assert_eq!(net.info_epoch("dev"), Some(1), "the new GroupInfo went up");
    net.typed(0, "/in dev after the drop");
    assert!(net.saw(1, "after the drop"), "{:?}", net.shown[1]);
    assert_eq!(net.rooms["dev"].epoch, Some(1), "no second commit");
}

/// Alice's add of bob is lost with her connection (the relay never gets
/// it): back, the history does not show it, so it is made again, and bob
/// is added.
#[test]
fn an_add_lost_with_the_connection_is_made_again() {
    let mut net = Net::new(&["alice", "bob"]);
    alice_makes_dev_and_stalls_as_bob_joins(&mut net);
    lose_alices_add(&mut net);
    net.leave(0);
    net.paused.clear();
    net.back(0);
    assert!(
        !net.saw(0, "lost with the connection"),
        "not before the history had its time"
    );
    net.advance(SETTLE_AFTER);
    assert!(net.saw(0, "lost with the connection"), "{:?}", net.shown[0]);
    assert!(
        net.saw(1, "you are in #dev's end-to-end group now"),
        "{:?}\n{:?}",
        net.shown[1],
        net.shown[0]
    );
    assert_eq!(net.rooms["dev"].epoch, Some(1));
    net.typed(0, "/in dev made again");
    assert!(net.saw(1, "made again"), "{:?}", net.shown[1]);
}

/// As above, but alice's `chat` restarts while the answer is lost: her
/// device alone knows the commit (pending on disk). Read back from the
/// history it is merged and its GroupInfo goes up; its Welcome went with
/// the old run, so bob joins by External Commit from that GroupInfo.
#[test]
fn an_add_taken_before_a_restart_is_merged_from_the_history() {
    let mut net = Net::new(&["alice", "bob"]);
    alice_makes_dev_and_stalls_as_bob_joins(&mut net);
    until_alices_add_is_taken(&mut net);
    net.leave(0);
    restart(&mut net, 0);
    net.paused.clear();
    net.back(0);
    assert!(
        net.saw(0, "made before a restart was taken (epoch 1)"),
        "{:?}",
        net.shown[0]
    );
    assert_eq!(net.info_epoch("dev"), Some(1), "the new GroupInfo went up");
    net.advance(EXTERNAL_JOIN_AFTER);
    assert!(net.saw(1, "group by itself"), "{:?}", net.shown[1]);
    net.typed(0, "/in dev after the restart");
    assert!(net.saw(1, "after the restart"), "{:?}", net.shown[1]);
}

/// alice's add is lost with her connection and her `chat` restarts: the
/// commit pending on her device is dropped once the history had its time,
/// so she can commit again: carol, joining next, is added.
#[test]
fn an_add_lost_before_a_restart_is_dropped() {
    let mut net = Net::new(&["alice", "bob", "carol"]);
    alice_makes_dev_and_stalls_as_bob_joins(&mut net);
    lose_alices_add(&mut net);
    net.leave(0);
    restart(&mut net, 0);
    net.paused.clear();
    net.back(0);
    net.advance(SETTLE_AFTER);
    net.typed(2, "/join dev");
    assert!(
        net.saw(2, "you are in #dev's end-to-end group now"),
        "{:?}\n{:?}",
        net.shown[2],
        net.shown[0]
    );
    assert_eq!(net.rooms["dev"].epoch, Some(1));
}

/// Bob joins #dev by External Commit with nobody online; the relay takes
/// it, but his connection drops before its `mls-ok` and his `chat`
/// restarts. Back, his commit in the history is known as his (the device
/// kept its bytes): merged, its GroupInfo goes up, and no second External
/// Commit puts him in the group twice. Before, it was dropped after the
/// settling time and made again.
#[test]
fn an_external_commit_taken_before_a_restart_is_merged_from_the_history() {
    let mut net = Net::new(&["alice", "bob"]);
    bobs_external_commit_is_taken_unanswered(&mut net);
    net.leave(1);
    restart(&mut net, 1);
    net.paused.clear();
    net.back(1);
    assert!(
        net.saw(1, "made before a restart was taken (epoch 1)"),
        "{:?}",
        net.shown[1]
    );
    assert_eq!(net.info_epoch("dev"), Some(1), "the new GroupInfo went up");
    net.advance(SETTLE_AFTER);
    net.advance(EXTERNAL_JOIN_AFTER);
    assert_eq!(net.rooms["dev"].epoch, Some(1), "no second External Commit");
    net.back(0);
    net.typed(1, "/in dev in once");
    assert!(net.saw(0, "in once"), "{:?}", net.shown[0]);
    net.typed(0, "/in dev welcome");
    assert!(net.saw(1, "welcome"), "{:?}", net.shown[1]);
}
