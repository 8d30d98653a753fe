//! The driver without a terminal or a socket: three devices (real
//! openmls, state in temporary directories) driven against each other
//! through a fake relay of a few dozen lines that orders group messages as
//! the real Delivery Service does (first commit of an epoch wins, removals
//! held until committed, Welcomes routed by KeyPackage reference), read
//! with `eaxchat_e2e::ds`. Members can be away (what is sent to them is
//! lost; back, they get the room's history) and time is the test's.

mod external;
mod resume;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use base64::Engine as _;
use eaxchat_e2e::ds::{Peeked, check_key_package, peek};
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::events::{Event, GroupNotice};
use eaxchat_proto::name::Name;

use super::{BASE64, E2eDriver, Output};

#[derive(Default)]
struct FakeRoom {
    members: Vec<usize>,
    epoch: Option<u64>,
    info: Option<Vec<u8>>,
    removing: BTreeSet<String>,
    next_id: u64,
    /// The group messages relayed, for history: sender, base64, id.
    log: Vec<(usize, String, u64)>,
}

/// The fake relay and its members' drivers.
struct Net {
    names: Vec<String>,
    drivers: Vec<E2eDriver>,
    inbox: Vec<VecDeque<Vec<u8>>>,
    shown: Vec<Vec<String>>,
    rooms: BTreeMap<String, FakeRoom>,
    /// Per member: the KeyPackages kept, oldest first.
    packages: BTreeMap<String, Vec<Vec<u8>>>,
    /// Every KeyPackage reference uploaded, and whose device it is.
    refs: BTreeMap<Vec<u8>, usize>,
    /// Everything relayed as a group message, for the plaintext check.
    relayed: Vec<Vec<u8>>,
    /// The drivers' clock.
    now: Instant,
    /// Members not connected: what is sent to them is lost.
    away: BTreeSet<usize>,
    /// Members whose inbox `pump` leaves alone.
    paused: BTreeSet<usize>,
    _dirs: Vec<tempfile::TempDir>,
}

fn event(event: &Event<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    event.json(&mut out);
    out
}

impl Net {
    fn new(names: &[&str]) -> Net {
        let dirs: Vec<_> = names.iter().map(|_| tempfile::tempdir().unwrap()).collect();
        let mut net = Net {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            drivers: dirs
                .iter()
                .map(|d| E2eDriver::new(d.path().to_owned()))
                .collect(),
            inbox: names.iter().map(|_| VecDeque::new()).collect(),
            shown: names.iter().map(|_| Vec::new()).collect(),
            rooms: BTreeMap::new(),
            packages: BTreeMap::new(),
            relayed: Vec::new(),
            refs: BTreeMap::new(),
            now: Instant::now(),
            away: BTreeSet::new(),
            paused: BTreeSet::new(),
            _dirs: dirs,
        };
        for (i, name) in names.iter().enumerate() {
            let name = Name::new(name).unwrap();
            let welcome = event(&Event::Welcome {
                name: Some(&name),
                room: None,
                rooms: &[],
                members: true,
            });
            net.inbox[i].push_back(welcome);
        }
        net.pump();
        net
    }

    fn name(&self, i: usize) -> Name {
        Name::new(&self.names[i]).unwrap()
    }

    fn to(&mut self, i: usize, e: &Event<'_>) {
        if !self.away.contains(&i) {
            self.inbox[i].push_back(event(e));
        }
    }

    fn send_others(&mut self, room: &str, from: usize, e: &Event<'_>) {
        let members = self.rooms[room].members.clone();
        for j in members.into_iter().filter(|&j| j != from) {
            self.to(j, e);
        }
    }

    fn my_rooms(&mut self, i: usize, current: Option<&str>) {
        let names: Vec<RoomName> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.members.contains(&i))
            .map(|(n, _)| RoomName::new(n.as_bytes()).unwrap())
            .collect();
        let refs: Vec<&RoomName> = names.iter().collect();
        let current = current.map(|c| RoomName::new(c.as_bytes()).unwrap());
        self.to(
            i,
            &Event::MyRooms {
                room: current.as_ref(),
                rooms: &refs,
                e2e: &refs,
            },
        );
    }

    /// The user of `i` types `line`.
    fn typed(&mut self, i: usize, line: &str) {
        let out = self.drivers[i].typed(line.as_bytes());
        if !out.consumed {
            self.command(i, line);
        }
        self.apply(i, out);
        self.pump();
    }

    /// Shows what the driver of `i` asked to show and sends what it asked
    /// to send.
    fn apply(&mut self, i: usize, out: Output) {
        self.shown[i].extend(
            out.show
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned()),
        );
        for line in out.send {
            self.command(i, std::str::from_utf8(&line).unwrap());
        }
    }

    /// Delivers everything queued, and what it makes, until quiet.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let next = (0..self.inbox.len())
                .find(|&i| !self.inbox[i].is_empty() && !self.paused.contains(&i));
            let Some(i) = next else {
                return;
            };
            self.deliver(i);
        }
        panic!("the drivers never went quiet");
    }

    /// Hands the first plaintext in the inbox of `i` to its driver.
    fn deliver(&mut self, i: usize) {
        let plaintext = self.inbox[i].pop_front().unwrap();
        let out = self.drivers[i].received(&plaintext, self.now);
        if !out.consumed {
            self.shown[i].push(String::from_utf8_lossy(&plaintext).into_owned());
        }
        self.apply(i, out);
    }

    /// The fake relay takes one command of member `i`.
    fn command(&mut self, i: usize, line: &str) {
        let me = self.name(i);
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "/keypackage" => {
                let bytes = BASE64.decode(rest).unwrap();
                let checked = check_key_package(&bytes, me.as_str()).unwrap();
                self.refs.insert(checked.reference.clone(), i);
                let kept = self.packages.entry(me.as_str().to_owned()).or_default();
                kept.push(bytes);
                self.to(i, &Event::notice("* KeyPackage kept"));
            }
            "/keypackages" => {
                // One of the device's, the last one handed out again.
                let kept = self.packages.entry(rest.to_owned()).or_default();
                let package = if kept.len() > 1 {
                    Some(kept.remove(0))
                } else {
                    kept.first().cloned()
                };
                let encoded: Vec<String> = package.iter().map(|p| BASE64.encode(p)).collect();
                let packages: Vec<&[u8]> = encoded.iter().map(|p| p.as_bytes()).collect();
                let name = Name::new(rest).unwrap();
                self.to(
                    i,
                    &Event::KeyPackages {
                        name: &name,
                        packages: &packages,
                    },
                );
            }
            "/groupinfo" => {
                let room = RoomName::new(rest.as_bytes()).unwrap();
                let none = format!("error: {rest} has no GroupInfo now; ask again later");
                let e = match &self.rooms[rest].info {
                    Some(info) => event(&Event::GroupInfo {
                        room: &room,
                        epoch: 0,
                        data: BASE64.encode(info).as_bytes(),
                    }),
                    None => event(&Event::Error {
                        room: Some(&room),
                        text: &none,
                    }),
                };
                self.inbox[i].push_back(e);
            }
            "/join" => {
                let name = rest.split(' ').next().unwrap().to_owned();
                let room = self.rooms.entry(name.clone()).or_default();
                room.members.push(i);
                let exists = room.epoch.is_some();
                self.my_rooms(i, Some(&name));
                if exists {
                    let room_name = RoomName::new(name.as_bytes()).unwrap();
                    self.send_others(
                        &name,
                        i,
                        &Event::Group {
                            what: GroupNotice::Add(&me),
                            room: &room_name,
                        },
                    );
                }
            }
            "/part" => {
                let room = self.rooms.get_mut(rest).unwrap();
                room.members.retain(|&j| j != i);
                room.removing.insert(me.as_str().to_owned());
                let room_name = RoomName::new(rest.as_bytes()).unwrap();
                self.my_rooms(i, None);
                self.send_others(
                    rest,
                    i,
                    &Event::Group {
                        what: GroupNotice::Remove(&me),
                        room: &room_name,
                    },
                );
            }
            "/mls" => {
                let (room, data) = rest.split_once(' ').unwrap();
                self.mls(i, room, &BASE64.decode(data).unwrap());
            }
            other => panic!("the fake relay does not know {other} ({line})"),
        }
    }

    fn mls(&mut self, i: usize, room: &str, bytes: &[u8]) {
        let me = self.name(i);
        let room_name = RoomName::new(room.as_bytes()).unwrap();
        let data = BASE64.encode(bytes);
        let state = self.rooms.get_mut(room).unwrap();
        let answer = |epoch| GroupNotice::Taken { epoch };
        let refused = |epoch| GroupNotice::Refused {
            epoch,
            text: "error: refused",
        };
        let what = match peek(bytes).unwrap() {
            Peeked::GroupInfo { epoch, .. } => match state.epoch {
                None if epoch == 0 => {
                    state.epoch = Some(0);
                    state.info = Some(bytes.to_vec());
                    answer(0)
                }
                Some(current) if current == epoch => {
                    state.info = Some(bytes.to_vec());
                    return;
                }
                current => refused(current.unwrap_or_default()),
            },
            Peeked::Commit { epoch, .. } if state.epoch == Some(epoch) => {
                state.epoch = Some(epoch + 1);
                state.removing.clear();
                self.relay(i, room, &data);
                answer(epoch + 1)
            }
            Peeked::Commit { .. } => refused(state.epoch.unwrap_or_default()),
            Peeked::Application { .. } if !state.removing.is_empty() => {
                refused(state.epoch.unwrap_or_default())
            }
            Peeked::Application { .. } => return self.relay(i, room, &data),
            Peeked::Welcome { for_key_packages } => {
                let to: BTreeSet<usize> = for_key_packages
                    .iter()
                    .filter_map(|r| self.refs.get(r).copied())
                    .collect();
                for j in to {
                    let e = Event::Mls {
                        room: &room_name,
                        from: Some(&me),
                        data: data.as_bytes(),
                        ts: 1,
                        id: None,
                        history: false,
                    };
                    self.to(j, &e);
                }
                return;
            }
            other => panic!("unexpected {other:?}"),
        };
        self.to(
            i,
            &Event::Group {
                what,
                room: &room_name,
            },
        );
    }

    fn relay(&mut self, i: usize, room: &str, data: &str) {
        self.relayed.push(BASE64.decode(data).unwrap());
        let me = self.name(i);
        let room_name = RoomName::new(room.as_bytes()).unwrap();
        let state = self.rooms.get_mut(room).unwrap();
        let id = state.next_id;
        state.next_id += 1;
        state.log.push((i, data.to_owned(), id));
        let e = Event::Mls {
            room: &room_name,
            from: Some(&me),
            data: data.as_bytes(),
            ts: 1,
            id: Some(id),
            history: false,
        };
        self.send_others(room, i, &e);
    }

    fn saw(&self, i: usize, needle: &str) -> bool {
        self.shown[i].iter().any(|line| line.contains(needle))
    }
}

/// Alice makes `dev`, bob and carol join and are added; each reads the
/// others; nothing relayed holds the text.
#[test]
fn three_devices_make_join_and_talk() {
    let mut net = Net::new(&["alice", "bob", "carol"]);
    assert!(net.saw(0, "end-to-end rooms ready"), "{:?}", net.shown[0]);
    net.typed(0, "/join dev --e2e");
    assert!(net.saw(0, "you made its group"), "{:?}", net.shown[0]);
    net.typed(1, "/join dev");
    assert!(
        net.saw(1, "you are in #dev's end-to-end group now"),
        "{:?}\n{:?}",
        net.shown[1],
        net.shown[0]
    );
    net.typed(2, "/join dev");
    assert!(
        net.saw(2, "you are in #dev's end-to-end group now"),
        "{:?}",
        net.shown[2]
    );
    assert!(net.saw(1, "added carol"), "{:?}", net.shown[1]);
    net.typed(0, "/in dev a secret word: zebra");
    net.typed(2, "/me nods");
    for i in [1, 2] {
        assert!(net.saw(i, "a secret word: zebra"), "{:?}", net.shown[i]);
    }
    assert!(
        net.saw(0, "\"action\":true") || net.saw(0, "nods"),
        "{:?}",
        net.shown[0]
    );
    for bytes in &net.relayed {
        assert!(!bytes.windows(5).any(|w| w == b"zebra"));
    }
    // Bob's /verify names the number alice sees for him.
    net.typed(1, "/verify alice");
    net.typed(0, "/verify bob");
    let number = |lines: &[String]| {
        let line = lines
            .iter()
            .rfind(|l| l.contains("safety number"))
            .unwrap()
            .clone();
        line.split(": ")
            .nth(1)
            .unwrap()
            .split(" —")
            .next()
            .unwrap()
            .to_owned()
    };
    let (a, b) = (number(&net.shown[0]), number(&net.shown[1]));
    assert_eq!(a, b);
    assert_eq!(a.split(' ').count(), 12, "{a}");
}

/// Bob leaves: the next member commits his removal before anything else,
/// text typed meanwhile goes after it, and bob reads none of it.
#[test]
fn a_member_who_leaves_is_removed_before_the_next_message() {
    let mut net = Net::new(&["alice", "bob", "carol"]);
    net.typed(0, "/join dev --e2e");
    net.typed(1, "/join dev");
    net.typed(2, "/join dev");
    net.typed(1, "/part dev");
    // Both alice and carol commit the removal; one wins, the other sees it.
    assert!(net.saw(0, "removed bob") && net.saw(2, "removed bob"));
    net.typed(2, "/in dev after bob");
    assert!(net.saw(0, "after bob"), "{:?}", net.shown[0]);
    assert!(!net.saw(1, "after bob"));
    assert!(
        !net.shown[0].iter().any(|l| l.contains("refused")),
        "{:?}",
        net.shown[0]
    );
}

/// Text in an end-to-end room before this device is in the group is not
/// sent, and a message sent before it joined is a dim line, not an error.
#[test]
fn before_joining_nothing_is_sent_or_read() {
    let mut net = Net::new(&["alice", "bob"]);
    net.typed(0, "/join dev --e2e");
    // Bob's KeyPackages are gone: he is in the room but not the group.
    net.packages.remove("bob");
    net.packages.insert("bob".into(), Vec::new());
    net.rooms.get_mut("dev").unwrap().members.push(1);
    net.my_rooms(1, Some("dev"));
    net.pump();
    net.typed(1, "/in dev hello?");
    assert!(net.saw(1, "not sent"), "{:?}", net.shown[1]);
    net.typed(0, "/in dev to the group");
    assert!(net.saw(1, "sent before you joined"), "{:?}", net.shown[1]);
}

/// A second device of a name already pinned is a loud line in the room,
/// naming `/verify`; the first device of a name is pinned quietly.
#[test]
fn a_new_device_key_for_a_known_name_is_a_loud_warning() {
    let mut net = Net::new(&["alice", "bob"]);
    net.typed(0, "/join dev --e2e");
    net.typed(1, "/join dev");
    net.typed(1, "/in dev hi from the laptop");
    assert!(net.saw(0, "hi from the laptop"), "{:?}", net.shown[0]);
    assert!(!net.saw(0, "new device"), "{:?}", net.shown[0]);
    // Bob's phone: a new device of the same name.
    let dir = tempfile::tempdir().unwrap();
    net.drivers[1] = E2eDriver::new(dir.path().to_owned());
    net._dirs.push(dir);
    net.packages.insert("bob".into(), Vec::new());
    let bob = net.name(1);
    net.to(
        1,
        &Event::Welcome {
            name: Some(&bob),
            room: None,
            rooms: &[],
            members: true,
        },
    );
    net.pump();
    let dev = RoomName::new(b"dev").unwrap();
    net.to(
        0,
        &Event::Group {
            what: GroupNotice::Add(&bob),
            room: &dev,
        },
    );
    net.pump();
    assert!(
        net.saw(0, "! bob has a new device (key "),
        "{:?}",
        net.shown[0]
    );
    assert!(net.saw(0, "/verify bob"));
    assert!(
        net.saw(1, "you are in #dev's end-to-end group now"),
        "{:?}",
        net.shown[1]
    );
}

/// A `/join` typed before the relay kept this device's KeyPackages waits
/// for them, so that whoever adds us finds one; then it goes as typed.
#[test]
fn a_join_waits_for_the_key_packages() {
    let dir = tempfile::tempdir().unwrap();
    let mut driver = E2eDriver::new(dir.path().to_owned());
    let out = driver.typed(b"/join dev");
    assert!(out.consumed && out.send.is_empty(), "{out:?}");
    let bob = Name::new("bob").unwrap();
    let now = Instant::now();
    let out = driver.received(
        &event(&Event::Welcome {
            name: Some(&bob),
            room: None,
            rooms: &[],
            members: true,
        }),
        now,
    );
    assert_eq!(out.send.len(), super::KEY_PACKAGES_AT_START);
    assert!(
        out.send
            .iter()
            .all(|line| line.starts_with(b"/keypackage "))
    );
    let kept = event(&Event::notice("* KeyPackage kept (1 for this device)"));
    for _ in 1..super::KEY_PACKAGES_AT_START {
        let out = driver.received(&kept, now);
        assert!(out.consumed && out.send.is_empty(), "{out:?}");
    }
    let out = driver.received(&kept, now);
    assert_eq!(out.send, [b"/join dev".to_vec()]);
    assert!(String::from_utf8_lossy(&out.show[0]).contains("ready"));
}
