//! The untimed part of an end-to-end fan-out: a real MLS group of the
//! publisher's device and one device per subscriber, made over the wire
//! exactly as `chat` makes one, so that the relay's Delivery Service holds
//! the group of 1 + N devices a room of that size has.
//!
//! Every connection shakes hands as its member and says `/hello
//! eaxchat/1`. Each subscriber makes a device ([`eaxchat_e2e::Device`], in
//! a scratch directory on tmpfs when there is one) and uploads one
//! KeyPackage. The publisher joins a new room with `--e2e` (a fresh name
//! each run: the relay keeps groups), makes its group with
//! [`E2eRooms::create`] and uploads the GroupInfo; the subscribers join
//! the room; the publisher fetches every subscriber's KeyPackage and
//! commits the Adds, as many to a commit as keep the Welcome within the
//! relay's line limit, each commit answered `mls-ok` before its Welcome
//! and GroupInfo go out. Subscribers do not process their Welcomes: they
//! only count what the publisher sends next.
//!
//! Until then every frame a connection receives is opened by its session
//! and read as an event ([`Conn`]); a refusal or an error event fails the
//! setup with the relay's words.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use eaxchat_e2e::{Device, E2eRooms};
use eaxchat_proto::events::{ParsedEvent, ParsedKind};
use eaxchat_proto::session::Session;
use eaxchat_proto::wire;
use memchr::memchr;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::inbox::base64;
use crate::sessions::{self, SessionRoster};
use crate::{LoadError, Options, scenario, would_block};

/// The publisher's token; subscriber i is `Token(i)`.
pub(super) const PUBLISHER: Token = Token(usize::MAX);

/// The longest frame line the relay takes by default, less room to spare.
const MAX_SENT_LINE: usize = wire::DEFAULT_MAX_FRAME - 1024;

/// Most subscribers added by one commit (fewer if the Welcome is too long).
const ADDS_PER_COMMIT: usize = 50;

/// One connection in the setup: its session, and the events it has
/// received and not yet looked at.
pub(super) struct Conn {
    pub stream: TcpStream,
    pub session: Session,
    /// The session's relay-to-client key, for the run's inbox.
    pub relay_to_client: [u8; 32],
    pub name: String,
    /// Bytes read past the last whole line.
    pub partial: Vec<u8>,
    events: VecDeque<Vec<u8>>,
}

impl Conn {
    /// Seals `plaintext` as this connection's next frame and writes it
    /// whole, waiting (up to `deadline`) while the socket is full.
    pub fn send(&mut self, plaintext: &[u8], deadline: Instant) -> Result<(), LoadError> {
        let mut out = BytesMut::new();
        self.session
            .seal_into(plaintext, &mut out)
            .map_err(|e| LoadError::Setup(format!("{}: cannot seal: {e}", self.name)))?;
        loop {
            if scenario::write_out(&mut self.stream, &mut out)? {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LoadError::Setup(format!(
                    "{}: the relay stopped reading",
                    self.name
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Reads what the socket holds and opens every whole line.
    fn read(&mut self, buf: &mut [u8]) -> Result<(), LoadError> {
        loop {
            match self.stream.read(buf) {
                Ok(0) => {
                    return Err(LoadError::Setup(format!(
                        "the relay closed {}'s connection during the setup",
                        self.name
                    )));
                }
                Ok(n) => {
                    self.partial.extend_from_slice(&buf[..n]);
                    let mut pos = 0;
                    while let Some(newline) = memchr(b'\n', &self.partial[pos..]) {
                        let line = &self.partial[pos..pos + newline];
                        let plaintext = self.session.open(line).map_err(|e| {
                            LoadError::Setup(format!("{}: a frame did not open: {e}", self.name))
                        })?;
                        self.events.push_back(plaintext.to_vec());
                        pos += newline + 1;
                    }
                    self.partial.drain(..pos);
                }
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LoadError::Io(e)),
            }
        }
    }
}

/// The group, made: every connection, the publisher's device, the room.
pub(super) struct Group {
    pub publisher: Conn,
    pub subscribers: Vec<Conn>,
    pub device: E2eRooms,
    pub room: String,
    /// Where the devices live; removed when the group is dropped.
    pub scratch: Scratch,
}

/// A scratch directory, removed on drop.
pub(super) struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh scratch directory for this run's devices: on tmpfs
/// (`/dev/shm`) when there is one, so that their state files' fsyncs cost
/// nothing.
fn scratch() -> Result<Scratch, LoadError> {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = base.join(format!("relay-bench-e2e-{}-{nanos:x}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(Scratch(dir))
}

/// The setup's connections and their poll.
struct Talk<'a> {
    poll: &'a mut Poll,
    events: Events,
    /// The publisher first, then subscriber i at i + 1.
    conns: Vec<Conn>,
    deadline: Instant,
    buf: Vec<u8>,
}

fn e2e_error(what: &str) -> impl Fn(eaxchat_e2e::E2eError) -> LoadError + '_ {
    move |e| LoadError::Setup(format!("{what}: {e}"))
}

impl Talk<'_> {
    /// Polls once and reads every connection that has something.
    fn turn(&mut self) -> Result<(), LoadError> {
        if Instant::now() > self.deadline {
            return Err(LoadError::Setup(
                "the end-to-end group was not made within the setup timeout".into(),
            ));
        }
        scenario::poll_once(self.poll, &mut self.events, Some(Duration::from_millis(50)))?;
        let tokens: Vec<Token> = self.events.iter().map(|e| e.token()).collect();
        for token in tokens {
            let index = if token == PUBLISHER { 0 } else { token.0 + 1 };
            if let Some(conn) = self.conns.get_mut(index) {
                conn.read(&mut self.buf)?;
            }
        }
        Ok(())
    }

    /// Sends `plaintext` on connection `index`.
    fn send(&mut self, index: usize, plaintext: &[u8]) -> Result<(), LoadError> {
        let deadline = self.deadline;
        self.conns[index].send(plaintext, deadline)
    }

    /// Waits until every connection in `who` has received an event that
    /// `done` takes (returns `Some`), in order, each answer kept; other
    /// events are let by, and an error or refusal fails the setup.
    fn wait_each<T>(
        &mut self,
        who: std::ops::Range<usize>,
        mut done: impl FnMut(&ParsedEvent) -> Option<T>,
    ) -> Result<Vec<T>, LoadError> {
        let mut answers: Vec<Option<T>> = who.clone().map(|_| None).collect();
        loop {
            for (slot, index) in answers.iter_mut().zip(who.clone()) {
                let conn = &mut self.conns[index];
                while slot.is_none() {
                    let Some(plaintext) = conn.events.pop_front() else {
                        break;
                    };
                    let Some(event) = ParsedEvent::parse(&plaintext) else {
                        continue;
                    };
                    if matches!(
                        event.kind,
                        ParsedKind::Error | ParsedKind::MlsRefused { .. }
                    ) {
                        return Err(LoadError::Setup(format!(
                            "the relay refused {}: {}",
                            conn.name, event.text
                        )));
                    }
                    *slot = done(&event);
                }
            }
            if answers.iter().all(Option::is_some) {
                return Ok(answers.into_iter().flatten().collect());
            }
            self.turn()?;
        }
    }
}

/// Connects the publisher (member 0) and `options.clients` subscribers
/// (members 1…), registers them with `poll`, and makes the group.
pub(super) fn build(
    options: &Options,
    roster: &SessionRoster,
    poll: &mut Poll,
) -> Result<Group, LoadError> {
    let n = options.clients;
    let mut conns = Vec::with_capacity(n + 1);
    for index in 0..=n {
        let (mut stream, established) =
            sessions::connect(options.addr, roster, index, options.setup_timeout)?;
        let token = if index == 0 {
            PUBLISHER
        } else {
            Token(index - 1)
        };
        let interest = if index == 0 {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        poll.registry().register(&mut stream, token, interest)?;
        conns.push(Conn {
            stream,
            session: established.session,
            relay_to_client: *established.keys.relay_to_client(),
            name: established.name,
            partial: Vec::new(),
            events: VecDeque::new(),
        });
    }
    let mut talk = Talk {
        poll,
        events: Events::with_capacity(1024),
        conns,
        deadline: Instant::now() + options.setup_timeout,
        buf: vec![0; 256 * 1024],
    };
    for index in 0..=n {
        talk.send(index, b"/hello eaxchat/1")?;
    }
    talk.wait_each(0..n + 1, |e| {
        matches!(e.kind, ParsedKind::Welcome { .. }).then_some(())
    })?;

    let scratch = scratch()?;
    // Each subscriber's device, and one KeyPackage of it kept by the relay.
    for index in 1..=n {
        let name = talk.conns[index].name.clone();
        let mut device = Device::open(&scratch.0.join(format!("s{index}")), &name)
            .map_err(e2e_error("a subscriber's device"))?;
        let packages = device.key_packages(1).map_err(e2e_error("a KeyPackage"))?;
        let mut line = b"/keypackage ".to_vec();
        line.extend_from_slice(&base64(&packages[0]));
        talk.send(index, &line)?;
    }
    let kept = |e: &ParsedEvent| {
        (e.kind == ParsedKind::Notice && e.text.contains("KeyPackage kept")).then_some(())
    };
    talk.wait_each(1..n + 1, kept)?;

    // The room and its group, made by the publisher.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let room = format!(
        "e2e-{:x}-{:x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff
    );
    let publisher_name = talk.conns[0].name.clone();
    let mut device = E2eRooms::open(&scratch.0.join("publisher"), &publisher_name)
        .map_err(e2e_error("the publisher's device"))?;
    talk.send(0, format!("/join {room} --e2e").as_bytes())?;
    let in_room = |e: &ParsedEvent| {
        (e.kind == ParsedKind::MyRooms && e.room.as_deref() == Some(room.as_str())).then_some(())
    };
    talk.wait_each(0..1, in_room)?;
    let info = device.create(&room).map_err(e2e_error("the group"))?;
    talk.send(0, &mls_line(&room, &info))?;
    let taken = |e: &ParsedEvent| matches!(e.kind, ParsedKind::MlsTaken { .. }).then_some(());
    talk.wait_each(0..1, taken)?;

    // Everyone joins; the publisher fetches their KeyPackages.
    for index in 1..=n {
        talk.send(index, format!("/join {room}").as_bytes())?;
    }
    talk.wait_each(1..n + 1, in_room)?;
    for index in 1..=n {
        let name = talk.conns[index].name.clone();
        talk.send(0, format!("/keypackages {name}").as_bytes())?;
    }
    let mut packages = BTreeMap::new();
    while packages.len() < n {
        let got = talk.wait_each(0..1, |e| match &e.kind {
            ParsedKind::KeyPackages { name } => Some((name.clone(), e.packages.clone())),
            _ => None,
        })?;
        for (name, list) in got {
            let package = list.into_iter().next().ok_or_else(|| {
                LoadError::Setup(format!("the relay has no KeyPackage of {name}"))
            })?;
            packages.insert(name, package);
        }
    }
    let ordered: Vec<Vec<u8>> = talk.conns[1..]
        .iter()
        .map(|conn| packages.remove(&conn.name).unwrap_or_default())
        .collect();
    add_all(&mut talk, &mut device, &room, &ordered)?;

    let mut conns = talk.conns.into_iter();
    let publisher = conns
        .next()
        .ok_or_else(|| LoadError::Setup("no publisher".into()))?;
    Ok(Group {
        publisher,
        subscribers: conns.collect(),
        device,
        room,
        scratch,
    })
}

/// `/mls ROOM BASE64` for `message`.
pub(super) fn mls_line(room: &str, message: &[u8]) -> Vec<u8> {
    let mut line = format!("/mls {room} ").into_bytes();
    line.extend_from_slice(&base64(message));
    line
}

/// Commits the Adds of every KeyPackage in `packages`, a few at a time:
/// each commit sent and answered `mls-ok`, then its Welcome and the new
/// GroupInfo sent.
fn add_all(
    talk: &mut Talk<'_>,
    device: &mut E2eRooms,
    room: &str,
    packages: &[Vec<u8>],
) -> Result<(), LoadError> {
    let mut rest = packages;
    let mut per_commit = ADDS_PER_COMMIT;
    while !rest.is_empty() {
        let take = per_commit.min(rest.len());
        let (commit, welcome) = device
            .add(room, &rest[..take])
            .map_err(e2e_error("the Adds"))?;
        let (commit, welcome) = (mls_line(room, &commit), mls_line(room, &welcome));
        let longest = commit.len().max(welcome.len());
        if wire::encoded_len(longest) > MAX_SENT_LINE {
            if take == 1 {
                return Err(LoadError::Setup(
                    "one device's Welcome is longer than the relay takes".into(),
                ));
            }
            device
                .refused(room)
                .map_err(e2e_error("dropping a commit"))?;
            per_commit = take / 2;
            continue;
        }
        talk.send(0, &commit)?;
        let taken = |e: &ParsedEvent| matches!(e.kind, ParsedKind::MlsTaken { .. }).then_some(());
        talk.wait_each(0..1, taken)?;
        let info = device
            .accepted(room)
            .map_err(e2e_error("merging the Adds"))?;
        talk.send(0, &welcome)?;
        // The GroupInfo is kept for External Commits, which nobody makes
        // here: one too long for a line is left out.
        let info = mls_line(room, &info);
        if wire::encoded_len(info.len()) <= MAX_SENT_LINE {
            talk.send(0, &info)?;
        }
        rest = &rest[take..];
    }
    Ok(())
}
