//! Joining by External Commit, with the fake relay of `tests` and the
//! test's clock: a device whose room has no member online to add it waits
//! [`EXTERNAL_JOIN_AFTER`], then joins by itself; text typed while its
//! commit is in flight goes once it is taken; a refused commit is tried
//! again after another wait; a GroupInfo that does not check joins
//! nothing; a Welcome within the wait is used instead.

use std::time::Duration;

use eaxchat_e2e::ds::{Peeked, peek};
use eaxchat_proto::events::Event;

use super::super::{EXTERNAL_JOIN_AFTER, SETTLE_AFTER};
use super::Net;

const JOINED_BY_ITSELF: &str = "this device joined #dev's group by itself (no member was \
                                online to add it): you read from now on, not what was said before";

impl Net {
    /// Time passes: each driver whose wait is over is woken.
    pub(super) fn advance(&mut self, by: Duration) {
        self.now += by;
        for i in 0..self.drivers.len() {
            if self.away.contains(&i) {
                continue;
            }
            if self.drivers[i]
                .poll_timeout()
                .is_some_and(|at| at <= self.now)
            {
                let out = self.drivers[i].handle_timeout(self.now);
                self.apply(i, out);
            }
        }
        self.pump();
    }

    /// `i` disconnects (stays a member of its rooms).
    pub(super) fn leave(&mut self, i: usize) {
        self.away.insert(i);
        self.inbox[i].clear();
    }

    /// `i` connects again: as the relay answers its `/hello`, the
    /// welcome, `myrooms`, then each of its rooms' history.
    pub(super) fn back(&mut self, i: usize) {
        self.away.remove(&i);
        let name = self.name(i);
        self.to(
            i,
            &Event::Welcome {
                name: Some(&name),
                room: None,
                rooms: &[],
                members: true,
            },
        );
        self.my_rooms(i, None);
        let rooms: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.members.contains(&i))
            .map(|(n, _)| n.clone())
            .collect();
        for room in rooms {
            let room_name = eaxchat_proto::commands::RoomName::new(room.as_bytes()).unwrap();
            for (from, data, id) in self.rooms[&room].log.clone() {
                let from = self.name(from);
                self.to(
                    i,
                    &Event::Mls {
                        room: &room_name,
                        from: Some(&from),
                        data: data.as_bytes(),
                        ts: 1,
                        id: Some(id),
                        history: true,
                    },
                );
            }
        }
        self.pump();
    }

    fn count(&self, i: usize, needle: &str) -> usize {
        self.shown[i].iter().filter(|l| l.contains(needle)).count()
    }

    /// The epoch of the GroupInfo the fake relay keeps for `room`.
    pub(super) fn info_epoch(&self, room: &str) -> Option<u64> {
        match peek(self.rooms[room].info.as_deref()?) {
            Ok(Peeked::GroupInfo { epoch, .. }) => Some(epoch),
            _ => None,
        }
    }
}

/// Alice makes #dev and goes away; bob joins, and after the wait his
/// External Commit is taken while his connection stalls: its `mls-ok`
/// waits in his inbox, to be lost.
pub(super) fn bobs_external_commit_is_taken_unanswered(net: &mut Net) {
    net.typed(0, "/join dev --e2e");
    net.leave(0);
    net.typed(1, "/join dev");
    net.paused.insert(1);
    net.advance(EXTERNAL_JOIN_AFTER);
    net.deliver(1);
    assert_eq!(
        net.rooms["dev"].epoch,
        Some(1),
        "the External Commit is taken"
    );
}

/// Alice makes #dev and goes away; bob joins with nobody online to add
/// him: after the wait he joins by External Commit, what he typed while it
/// was in flight goes once it is taken, his new GroupInfo goes up; back,
/// alice reads his commit and his message from the history, and both read
/// each other.
#[test]
fn with_no_member_online_a_device_joins_by_itself() {
    let mut net = Net::new(&["alice", "bob"]);
    net.typed(0, "/join dev --e2e");
    net.typed(0, "/in dev said before bob");
    net.leave(0);
    net.typed(1, "/join dev");
    assert!(
        net.saw(1, "waiting to be added to its group"),
        "{:?}",
        net.shown[1]
    );
    // Within the wait: not in the group, and text is refused, clearly.
    net.advance(EXTERNAL_JOIN_AFTER - Duration::from_millis(1));
    assert!(!net.drivers[1].has_group("dev"));
    assert_eq!(net.rooms["dev"].epoch, Some(0));
    net.typed(1, "/in dev too early");
    assert_eq!(net.count(1, "! not sent"), 1, "{:?}", net.shown[1]);

    // The wait is over: bob asks for the GroupInfo and commits; the
    // relay's answer waits in his inbox while he types.
    net.paused.insert(1);
    net.advance(Duration::from_millis(1));
    assert_eq!(net.inbox[1].len(), 1, "the GroupInfo asked for");
    net.deliver(1);
    assert_eq!(
        net.rooms["dev"].epoch,
        Some(1),
        "the External Commit is taken"
    );
    let relayed = net.relayed.len();
    net.typed(1, "/in dev bob came in alone");
    assert_eq!(net.relayed.len(), relayed, "held until the commit is taken");
    assert_eq!(net.count(1, "! not sent"), 1, "{:?}", net.shown[1]);
    net.paused.clear();
    net.pump();
    assert!(net.saw(1, JOINED_BY_ITSELF), "{:?}", net.shown[1]);
    assert_eq!(net.relayed.len(), relayed + 1, "the held text went");
    assert_eq!(net.info_epoch("dev"), Some(1), "the new GroupInfo went up");

    net.back(0);
    assert!(
        net.saw(0, "a device of bob joined #dev's group (epoch 1)"),
        "{:?}",
        net.shown[0]
    );
    assert!(net.saw(0, "bob came in alone"), "{:?}", net.shown[0]);
    assert!(!net.saw(0, "too early"));
    net.typed(0, "/in dev welcome, bob");
    assert!(net.saw(1, "welcome, bob"), "{:?}", net.shown[1]);
    assert!(!net.saw(1, "said before bob"));
    assert!(!net.shown[0].iter().any(|l| l.contains("\"error\"")));
}

/// Carol, then bob, join with nobody online: both commit for epoch 0,
/// the relay takes bob's and refuses carol's; carol waits again and joins
/// from bob's GroupInfo; all three read each other.
#[test]
fn a_refused_external_commit_is_tried_again_after_the_wait() {
    let mut net = Net::new(&["alice", "bob", "carol"]);
    net.typed(0, "/join dev --e2e");
    net.leave(0);
    net.typed(2, "/join dev");
    net.typed(1, "/join dev");
    net.advance(EXTERNAL_JOIN_AFTER);
    assert!(net.saw(1, JOINED_BY_ITSELF), "{:?}", net.shown[1]);
    assert!(!net.drivers[2].has_group("dev"), "{:?}", net.shown[2]);
    assert!(!net.saw(2, "\"error\""), "{:?}", net.shown[2]);
    assert_eq!(net.rooms["dev"].epoch, Some(1));
    assert!(net.drivers[2].poll_timeout().is_some(), "carol waits again");

    net.advance(EXTERNAL_JOIN_AFTER);
    assert!(net.saw(2, JOINED_BY_ITSELF), "{:?}", net.shown[2]);
    assert_eq!(net.rooms["dev"].epoch, Some(2));
    assert!(
        net.saw(1, "a device of carol joined #dev's group (epoch 2)"),
        "{:?}",
        net.shown[1]
    );
    net.typed(2, "/in dev carol here");
    assert!(net.saw(1, "carol here"), "{:?}", net.shown[1]);
    net.back(0);
    assert!(net.saw(0, "carol here"), "{:?}", net.shown[0]);
    net.typed(0, "/in dev hi both");
    assert!(net.saw(1, "hi both") && net.saw(2, "hi both"));
    // Nothing left to wake for.
    assert!(net.drivers.iter().all(|d| d.poll_timeout().is_none()));
}

/// Bob, then carol, join with nobody online: bob joins by himself and
/// adds carol (her `mls-add` waited for his group); her External Commit,
/// in flight meanwhile, is refused, and the Welcome that came before the
/// refusal brings her in.
#[test]
fn a_welcome_during_the_external_commit_is_used_once_it_is_refused() {
    let mut net = Net::new(&["alice", "bob", "carol"]);
    net.typed(0, "/join dev --e2e");
    net.leave(0);
    net.typed(1, "/join dev");
    net.typed(2, "/join dev");
    net.advance(EXTERNAL_JOIN_AFTER);
    assert!(net.saw(1, JOINED_BY_ITSELF), "{:?}", net.shown[1]);
    assert!(net.saw(1, "you added carol"), "{:?}", net.shown[1]);
    assert!(
        net.saw(2, "you are in #dev's end-to-end group now (epoch 2)"),
        "{:?}",
        net.shown[2]
    );
    assert!(!net.saw(2, "group by itself") && !net.saw(2, "\"error\""));
    net.typed(2, "/in dev thanks, bob");
    assert!(net.saw(1, "thanks, bob"), "{:?}", net.shown[1]);
    assert!(net.drivers.iter().all(|d| d.poll_timeout().is_none()));
}

/// A GroupInfo whose signature does not verify joins nothing: a clear
/// line in the room, no commit sent, no group kept.
#[test]
fn a_group_info_that_does_not_verify_joins_nothing() {
    let mut net = Net::new(&["alice", "bob"]);
    net.typed(0, "/join dev --e2e");
    net.leave(0);
    // The relay (or someone in its place) spoils the GroupInfo's signature.
    let info = net.rooms.get_mut("dev").unwrap().info.as_mut().unwrap();
    let last = info.len() - 1;
    info[last] ^= 0x01;
    net.typed(1, "/join dev");
    let relayed = net.relayed.len();
    net.advance(EXTERNAL_JOIN_AFTER);
    assert!(
        net.saw(
            1,
            "! #dev's GroupInfo from the relay did not check: not joined ("
        ),
        "{:?}",
        net.shown[1]
    );
    assert!(!net.drivers[1].has_group("dev"));
    assert_eq!(net.rooms["dev"].epoch, Some(0));
    assert_eq!(net.relayed.len(), relayed);
    assert!(!net.saw(1, "joined #dev's group by itself"));
    assert!(
        net.drivers[1].poll_timeout().is_none(),
        "no loop of retries"
    );
}

/// With a member online, the Welcome comes within the wait and no
/// External Commit is made.
#[test]
fn a_member_online_adds_the_device_before_the_wait_is_over() {
    let mut net = Net::new(&["alice", "bob"]);
    net.typed(0, "/join dev --e2e");
    net.typed(1, "/join dev");
    assert!(net.saw(1, "you are in #dev's end-to-end group now"));
    net.advance(EXTERNAL_JOIN_AFTER * 2);
    assert!(!net.saw(1, "group by itself"), "{:?}", net.shown[1]);
    assert_eq!(net.rooms["dev"].epoch, Some(1));
}

/// Bob's connection drops after the relay took his External Commit but
/// before its `mls-ok` reached him: back, the room's history shows his
/// commit, and the group is his.
#[test]
fn a_commit_taken_while_the_connection_was_down_is_found_in_the_history() {
    let mut net = Net::new(&["alice", "bob"]);
    bobs_external_commit_is_taken_unanswered(&mut net);
    net.typed(1, "/in dev held over the drop");
    net.leave(1);
    net.paused.clear();
    net.back(1);
    assert!(net.saw(1, JOINED_BY_ITSELF), "{:?}", net.shown[1]);
    assert_eq!(net.info_epoch("dev"), Some(1), "the new GroupInfo went up");
    net.back(0);
    assert!(net.saw(0, "held over the drop"), "{:?}", net.shown[0]);
    assert_eq!(net.rooms["dev"].epoch, Some(1), "no second commit");
}

/// Bob's External Commit is lost with his connection: back, the history
/// does not show it, so it is dropped and he joins again after the wait.
#[test]
fn a_commit_lost_with_the_connection_is_dropped_and_made_again() {
    let mut net = Net::new(&["alice", "bob"]);
    net.typed(0, "/join dev --e2e");
    net.leave(0);
    net.typed(1, "/join dev");
    net.paused.insert(1);
    net.advance(EXTERNAL_JOIN_AFTER);
    let info = net.inbox[1].pop_front().unwrap();
    let out = net.drivers[1].received(&info, net.now);
    assert!(out.send[0].starts_with(b"/mls dev "), "{out:?}");
    // The commit never reaches the relay.
    net.leave(1);
    net.paused.clear();
    net.back(1);
    net.advance(SETTLE_AFTER);
    assert!(!net.drivers[1].has_group("dev"), "{:?}", net.shown[1]);
    assert!(!net.saw(1, "group by itself"));
    net.advance(EXTERNAL_JOIN_AFTER);
    assert!(net.saw(1, JOINED_BY_ITSELF), "{:?}", net.shown[1]);
    assert_eq!(net.rooms["dev"].epoch, Some(1));
}
