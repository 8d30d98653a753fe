//! A tiny Delivery Service for the tests: one room, ordered by the relay's
//! own reading of each message (`eaxchat_e2e::ds::peek`): the first commit
//! per epoch wins, application messages are taken at epoch E or E−1, and
//! every accepted message goes to each member but its sender, in order.

use std::path::Path;

use eaxchat_e2e::ds::{Peeked, peek};
use eaxchat_e2e::{E2eError, E2eRooms, Event, Member};

/// The room every test uses.
pub(crate) const ROOM: &str = "dev";

/// The relay's view of the room.
#[derive(Default)]
pub(crate) struct Ds {
    /// The group's epoch, as the relay tracks it.
    pub(crate) epoch: u64,
    /// The latest GroupInfo uploaded.
    pub(crate) group_info: Option<Vec<u8>>,
    /// Every accepted group message: (sender, bytes).
    pub(crate) log: Vec<(String, Vec<u8>)>,
}

/// What the relay answered to a commit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `mls-ok`.
    Ok,
    /// `mls-refused`.
    Refused,
}

impl Ds {
    /// Takes (or refuses) one `/mls` message from `from`.
    pub(crate) fn submit(&mut self, from: &str, bytes: &[u8]) -> Answer {
        let group = eaxchat_e2e::group_id(ROOM);
        match peek(bytes).expect("a message the relay reads") {
            Peeked::Commit { group: g, epoch } => {
                assert_eq!(g, group);
                if epoch != self.epoch {
                    return Answer::Refused;
                }
                self.epoch += 1;
            }
            Peeked::Application { group: g, epoch } => {
                assert_eq!(g, group);
                if epoch != self.epoch && epoch + 1 != self.epoch {
                    return Answer::Refused;
                }
            }
            Peeked::Proposal { group: g, epoch } => {
                assert_eq!(g, group);
                if epoch != self.epoch {
                    return Answer::Refused;
                }
            }
            Peeked::GroupInfo { group: g, epoch } => {
                assert_eq!(g, group);
                assert_eq!(epoch, self.epoch, "a GroupInfo of the current epoch");
                self.group_info = Some(bytes.to_vec());
                return Answer::Ok;
            }
            other => panic!("not a room message: {other:?}"),
        }
        self.log.push((from.to_string(), bytes.to_vec()));
        Answer::Ok
    }
}

/// One device in the tests: its rooms and how far it has read the log.
pub(crate) struct Client {
    pub(crate) name: String,
    pub(crate) rooms: E2eRooms,
    pub(crate) read: usize,
}

impl Client {
    /// Opens (or makes) `name`'s device in `dir`.
    pub(crate) fn open(dir: &Path, name: &str) -> Self {
        Self {
            name: name.to_string(),
            rooms: E2eRooms::open(dir, name).expect("open device"),
            read: 0,
        }
    }

    /// Creates the room's group and uploads its GroupInfo.
    pub(crate) fn create(&mut self, ds: &mut Ds) {
        let info = self.rooms.create(ROOM).expect("create");
        assert_eq!(ds.submit(&self.name, &info), Answer::Ok);
    }

    /// Sends a commit; on `mls-ok` merges it and uploads the GroupInfo, on
    /// `mls-refused` drops it.
    pub(crate) fn send_commit(&mut self, ds: &mut Ds, commit: &[u8]) -> Answer {
        let answer = ds.submit(&self.name, commit);
        match answer {
            Answer::Ok => {
                let info = self.rooms.accepted(ROOM).expect("merge");
                assert_eq!(ds.submit(&self.name, &info), Answer::Ok);
            }
            Answer::Refused => self.rooms.refused(ROOM).expect("drop"),
        }
        answer
    }

    /// Adds the devices of these KeyPackages; returns the Welcome if the
    /// relay took the commit.
    pub(crate) fn add(&mut self, ds: &mut Ds, packages: &[Vec<u8>]) -> Option<Vec<u8>> {
        let (commit, welcome) = self.rooms.add(ROOM, packages).expect("add");
        (self.send_commit(ds, &commit) == Answer::Ok).then_some(welcome)
    }

    /// Encrypts and sends `text`.
    pub(crate) fn say(&mut self, ds: &mut Ds, text: &str) {
        let bytes = self.rooms.encrypt(ROOM, text).expect("encrypt");
        assert_eq!(ds.submit(&self.name, &bytes), Answer::Ok);
    }

    /// Processes everything others sent since the last call.
    pub(crate) fn catch_up(&mut self, ds: &Ds) -> Vec<Result<Event, E2eError>> {
        let mut out = Vec::new();
        while self.read < ds.log.len() {
            let (from, bytes) = &ds.log[self.read];
            self.read += 1;
            if *from != self.name {
                out.push(self.rooms.process(ROOM, bytes));
            }
        }
        out
    }

    /// The texts of the application messages in `events`, as "from: text",
    /// failing on any error.
    pub(crate) fn texts(events: Vec<Result<Event, E2eError>>) -> Vec<String> {
        events
            .into_iter()
            .filter_map(|e| match e.expect("readable") {
                Event::Application { from, text, .. } => Some(format!("{from}: {text}")),
                _ => None,
            })
            .collect()
    }

    /// This device as a member.
    pub(crate) fn member(&self) -> Member {
        Member {
            name: self.name.clone(),
            signature_key: self.rooms.device().signature_key().to_vec(),
        }
    }
}

/// alice creates the room and adds bob and carol (one commit); all three
/// are at epoch 1.
pub(crate) fn three(dir: &Path) -> (Ds, Client, Client, Client) {
    let mut ds = Ds::default();
    let mut alice = Client::open(&dir.join("alice"), "alice");
    let mut bob = Client::open(&dir.join("bob"), "bob");
    let mut carol = Client::open(&dir.join("carol"), "carol");
    alice.create(&mut ds);
    let mut packages = bob.rooms.key_packages(1).expect("kp");
    packages.extend(carol.rooms.key_packages(1).expect("kp"));
    let welcome = alice.add(&mut ds, &packages).expect("accepted");
    for joiner in [&mut bob, &mut carol] {
        let (room, epoch) = joiner.rooms.join_welcome(&welcome).expect("join");
        assert_eq!((room.as_str(), epoch), (ROOM, 1));
        joiner.read = ds.log.len();
    }
    (ds, alice, bob, carol)
}
