//! Fuzz target `members`: a members relay (`Relay::with_members`, in
//! memory) driven by a script of client actions: connect with a member's
//! key, a stale key or a stranger's, as a newline client or as the original
//! notebook client (newline-less frames); send frames (messages, empty
//! identify frames, several joined); send garbage; hang up; reload the
//! members with some removed, re-keyed or added.
//!
//! After every action the harness does what the server's loop does (flush
//! until nothing waits, run the seed timers, remove what is closing) and
//! checks the relay against a model of who is which member:
//! - a connection is identified exactly as the model says, and only ever as
//!   the member whose current key it holds; a stranger never is;
//! - every delivery opens under the recipient's own key, and each message
//!   in it is `NAME: TEXT` with TEXT one sent this turn by another
//!   connection and NAME exactly that sender's member name;
//! - every message an identified member sends reaches every other
//!   identified connection exactly once; nothing reaches an unidentified
//!   one, and nothing a non-member sends reaches anyone;
//! - after a reload the removed and re-keyed members' connections are
//!   closed (`MemberRemoved`) and get nothing more; the others stay, as the
//!   same member;
//! - two newline connections of one member get identical bytes.

#![no_main]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use arbitrary::Arbitrary;
use bytes::BytesMut;
use eaxchat_proto::cipher::{Cipher, OpenError};
use eaxchat_proto::key::Key;
use eaxchat_core::members::Members;
use eaxchat_proto::nonce::Nonces;
use eaxchat_core::relay::{ChatConfig, CloseReason, ConnId, Limits, Relay};
use eaxchat_core::roster::{IDENTIFY_MAX, Roster};
use libfuzzer_sys::fuzz_target;

/// Names `n0`…`n5`, each with 3 possible keys (a re-key moves to the next).
const NAMES: usize = 6;
const GENERATIONS: usize = 3;
const MAX_CLIENTS: usize = 12;
const MAX_TEXTS: usize = 4;
/// Long enough to pass the identification cap now and then.
const MAX_TEXT: usize = IDENTIFY_MAX + 64;

#[derive(Arbitrary, Debug)]
struct Script {
    /// Bit `i` puts `n{i}` in the first members file, with its first key.
    initial: u8,
    actions: Vec<Action>,
}

#[derive(Arbitrary, Debug)]
enum Action {
    /// Connects holding key `key` (`% (NAMES × GENERATIONS + 1)`; the last
    /// is a stranger's); `newline: false` is the notebook client.
    Connect { key: u8, newline: bool },
    /// Sends up to 4 frames in two reads, cut at `split`.
    Send {
        client: u8,
        texts: Vec<Text>,
        split: u16,
    },
    /// Sends a line that is not a frame.
    Garbage { client: u8, bytes: Vec<u8> },
    /// Hangs up.
    Disconnect { client: u8 },
    /// Rewrites the members file: each edit removes, re-keys or adds one
    /// name, then the relay reloads it.
    Reload { edits: Vec<(u8, u8)> },
}

/// One frame's plaintext: empty (an identify frame), or a unique message
/// of about `len` letters.
#[derive(Arbitrary, Debug)]
struct Text {
    empty: bool,
    len: u16,
    fill: u8,
}

fuzz_target!(|script: Script| {
    let mut harness = Harness::new(script.initial);
    for action in script.actions.into_iter().take(64) {
        harness.apply(action);
        harness.end_turn();
    }
});

fn key(name: usize, generation: usize) -> Key {
    let byte = 1 + (name * GENERATIONS + generation) as u8;
    Key::from_bytes(&[byte; 16]).expect("16-byte key")
}

fn stranger() -> Key {
    Key::from_bytes(&[0xee; 16]).expect("16-byte key")
}

/// The members file the model holds: name → key generation.
fn members_file(members: &BTreeMap<usize, usize>) -> Option<Members> {
    let text: String = members
        .iter()
        .map(|(&name, &generation)| format!("n{name} {}\n", key(name, generation).to_hex()))
        .collect();
    Members::parse(text.as_bytes(), Path::new("members.txt")).ok()
}

/// The model's view of one connected client.
struct Client {
    id: ConnId,
    /// The (name, generation) whose key it holds; `None`: a stranger.
    holds: Option<(usize, usize)>,
    key: Key,
    newline: bool,
    /// The member the model says it identified as.
    identity: Option<usize>,
    /// A notebook client whose newline-less bytes can no longer be a lone
    /// first frame: it may be open or closed, but never identifies.
    stuck: bool,
    /// Each flush's bytes this turn.
    chunks: Vec<Vec<u8>>,
}

/// A message sent this turn: who sent it, as which member, and its text.
struct Sent {
    from: ConnId,
    name: usize,
    text: String,
}

struct Harness {
    relay: Relay<Vec<u8>>,
    members: BTreeMap<usize, usize>,
    clients: Vec<Client>,
    serial: u64,
    /// This turn's messages, by serial.
    sent: HashMap<u64, Sent>,
    /// Clients identified when the turn began (by id): this turn's
    /// recipients.
    recipients: HashSet<ConnId>,
    /// Clients the model says the relay must close this turn.
    expect_closed: HashMap<ConnId, CloseReason>,
    /// Clients that may or may not be closed this turn.
    may_close: HashSet<ConnId>,
}

impl Harness {
    fn new(initial: u8) -> Harness {
        let members: BTreeMap<usize, usize> = (0..NAMES)
            .filter(|i| initial & (1 << i) != 0)
            .map(|i| (i, 0))
            .collect();
        // An empty file does not parse: start with n0 then.
        let members = if members.is_empty() {
            BTreeMap::from([(0, 0)])
        } else {
            members
        };
        let roster = Roster::with_nonces(
            &members_file(&members).expect("a valid members file"),
            Nonces::from_seed([5; 32]),
        );
        let mut relay =
            Relay::with_members(roster, Limits::default(), Instant::now(), SystemTime::now());
        relay.set_seed_write_gap(Duration::ZERO);
        // The model counts every frame: no history or join notices (the
        // commands a script sends are modelled one by one).
        relay.set_chat(ChatConfig::quiet());
        Harness {
            relay,
            members,
            clients: Vec::new(),
            serial: 0,
            sent: HashMap::new(),
            recipients: HashSet::new(),
            expect_closed: HashMap::new(),
            may_close: HashSet::new(),
        }
    }

    fn pick(&self, client: u8) -> Option<usize> {
        (!self.clients.is_empty()).then(|| usize::from(client) % self.clients.len())
    }

    /// Whether `holds` is a current member's key.
    fn is_member_key(&self, holds: Option<(usize, usize)>) -> bool {
        holds.is_some_and(|(name, generation)| self.members.get(&name) == Some(&generation))
    }

    fn apply(&mut self, action: Action) {
        self.sent.clear();
        self.expect_closed.clear();
        self.may_close.clear();
        self.recipients = self
            .clients
            .iter()
            .filter(|c| c.identity.is_some())
            .map(|c| c.id)
            .collect();
        match action {
            Action::Connect { key: k, newline } => {
                if self.clients.len() >= MAX_CLIENTS {
                    return;
                }
                let k = usize::from(k) % (NAMES * GENERATIONS + 1);
                let holds = (k < NAMES * GENERATIONS).then(|| (k / GENERATIONS, k % GENERATIONS));
                let key = holds.map_or_else(stranger, |(n, g)| key(n, g));
                let id = self.relay.admit(Vec::new()).expect("room for a client");
                self.clients.push(Client {
                    id,
                    holds,
                    key,
                    newline,
                    identity: None,
                    stuck: false,
                    chunks: Vec::new(),
                });
            }
            Action::Send {
                client,
                texts,
                split,
            } => {
                if let Some(c) = self.pick(client) {
                    self.send(c, &texts, split);
                }
            }
            Action::Garbage { client, bytes } => {
                let Some(c) = self.pick(client) else { return };
                let mut line = vec![b'!'];
                line.extend(bytes.into_iter().filter(|&b| b != b'\n'));
                line.push(b'\n');
                let id = self.clients[c].id;
                self.relay.receive(id, &line);
                // Not base64: it closes whatever the connection held.
                self.may_close.insert(id);
                self.expect_closed
                    .insert(id, CloseReason::BadFrame(OpenError::Base64));
            }
            Action::Disconnect { client } => {
                let Some(c) = self.pick(client) else { return };
                let id = self.clients[c].id;
                self.relay.close(id, CloseReason::PeerClosed);
                self.expect_closed.insert(id, CloseReason::PeerClosed);
            }
            Action::Reload { edits } => self.reload(&edits),
        }
    }

    fn send(&mut self, c: usize, texts: &[Text], split: u16) {
        let texts = &texts[..texts.len().min(MAX_TEXTS)];
        if texts.is_empty() {
            return;
        }
        let member_key = self.is_member_key(self.clients[c].holds);
        let client = &self.clients[c];
        let (id, newline) = (client.id, client.newline);
        let mut bytes = BytesMut::new();
        let mut first_len = 0;
        let mut first_end = 0;
        let mut messages = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            self.serial += 1;
            let plaintext = if text.empty {
                String::new()
            } else {
                let letters = usize::from(text.len) % MAX_TEXT;
                let letter = char::from(b'a' + text.fill % 26);
                let mut s = format!("#{} ", self.serial);
                s.extend(std::iter::repeat_n(letter, letters));
                messages.push((self.serial, s.clone()));
                s
            };
            if i == 0 {
                first_len = plaintext.len();
            }
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&self.serial.to_le_bytes());
            Cipher::with_nonce_seed(&client.key, seed).seal_into(plaintext.as_bytes(), &mut bytes);
            if !newline {
                bytes.truncate(bytes.len() - 1);
            }
            if i == 0 {
                first_end = bytes.len();
            }
        }
        let cut = usize::from(split) % (bytes.len() + 1);
        let (a, b) = bytes.split_at(cut);
        self.relay.receive(id, a);
        self.relay.receive(id, b);

        // What the model expects of the sender.
        let client = &mut self.clients[c];
        let identified = match client.identity {
            Some(name) => Some(name),
            None if client.stuck => None,
            None if !member_key => {
                if newline {
                    self.expect_closed
                        .insert(id, CloseReason::BadFrame(OpenError::BadTag));
                } else {
                    client.stuck = true;
                }
                self.may_close.insert(id);
                None
            }
            None if first_len > IDENTIFY_MAX => {
                self.expect_closed
                    .insert(id, CloseReason::FirstFrameTooLong);
                None
            }
            // Joined newline-less frames are split only after
            // identification: the first must arrive alone.
            None if !newline && texts.len() > 1 && cut != first_end => {
                client.stuck = true;
                self.may_close.insert(id);
                None
            }
            None => client.holds.map(|(name, _)| name),
        };
        if client.stuck {
            // Its buffer may pass the identification cap some day.
            self.may_close.insert(id);
        }
        client.identity = identified;
        if let Some(name) = identified {
            for (serial, text) in messages {
                self.sent.insert(
                    serial,
                    Sent {
                        from: id,
                        name,
                        text,
                    },
                );
            }
        }
    }

    fn reload(&mut self, edits: &[(u8, u8)]) {
        let mut next = self.members.clone();
        for &(name, op) in edits.iter().take(8) {
            let name = usize::from(name) % NAMES;
            match (op % 3, next.get(&name).copied()) {
                (0, Some(_)) => {
                    next.remove(&name);
                }
                (1, Some(generation)) => {
                    next.insert(name, (generation + 1) % GENERATIONS);
                }
                (2, None) => {
                    next.insert(name, usize::from(op / 3) % GENERATIONS);
                }
                _ => {}
            }
        }
        let Some(file) = members_file(&next) else {
            return; // The server keeps the old members on a file that does not parse.
        };
        let changes = self.relay.reload_members(&file).expect("a members relay");
        let names = |list: &[eaxchat_proto::name::Name]| -> Vec<String> {
            list.iter().map(|n| n.as_str().to_owned()).collect()
        };
        let diff = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
            (0..NAMES)
                .filter(|&n| keep(n))
                .map(|n| format!("n{n}"))
                .collect()
        };
        let (old, new) = (&self.members, &next);
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        assert_eq!(
            sorted(names(&changes.removed)),
            sorted(diff(&|n| old.contains_key(&n) && !new.contains_key(&n)))
        );
        assert_eq!(
            sorted(names(&changes.rekeyed)),
            sorted(diff(&|n| old
                .get(&n)
                .is_some_and(|g| new.get(&n).is_some_and(|h| g != h))))
        );
        assert_eq!(
            sorted(names(&changes.added)),
            sorted(diff(&|n| !old.contains_key(&n) && new.contains_key(&n)))
        );
        self.members = next;
        for client in &mut self.clients {
            let Some(name) = client.identity else {
                continue;
            };
            if client
                .holds
                .is_some_and(|(n, g)| self.members.get(&n) == Some(&g))
            {
                assert_eq!(n_of(&self.relay, client.id), Some(name), "kept its member");
            } else {
                self.expect_closed
                    .insert(client.id, CloseReason::MemberRemoved);
                client.identity = None;
            }
        }
    }

    /// The server loop's end of a turn, and every check.
    fn end_turn(&mut self) {
        let index: HashMap<ConnId, usize> = self
            .clients
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();
        loop {
            while let Some(id) = self.relay.next_waiting() {
                self.relay.flush(id);
                if let (Some(&i), Some(io)) = (index.get(&id), self.relay.io_mut(id)) {
                    let bytes = std::mem::take(io);
                    if !bytes.is_empty() {
                        self.clients[i].chunks.push(bytes);
                    }
                }
            }
            self.relay.run_timers();
            if !self.relay.has_waiting() {
                break;
            }
        }
        let mut closing = Vec::new();
        self.relay.take_closing(&mut closing);
        let closing: HashMap<ConnId, CloseReason> = closing
            .into_iter()
            .map(|id| {
                let reason = self.relay.peer(id).and_then(|p| p.closing());
                (id, reason.expect("a closing connection has a reason"))
            })
            .collect();
        for (&id, &expected) in &self.expect_closed {
            let got = closing.get(&id).copied();
            match expected {
                CloseReason::BadFrame(_) => assert!(
                    matches!(
                        got,
                        Some(CloseReason::BadFrame(_) | CloseReason::FirstFrameTooLong)
                    ),
                    "conn {id}: closed {got:?}, expected a rejected frame"
                ),
                _ => assert_eq!(got, Some(expected), "conn {id}: how it closed"),
            }
        }
        for (&id, reason) in &closing {
            assert!(
                self.expect_closed.contains_key(&id) || self.may_close.contains(&id),
                "conn {id} closed unexpectedly: {reason}"
            );
        }
        self.check_deliveries(&closing);
        for id in closing.keys() {
            self.relay.remove(*id);
        }
        self.clients.retain(|c| !closing.contains_key(&c.id));
        for client in &mut self.clients {
            client.chunks.clear();
        }
    }

    fn check_deliveries(&mut self, closing: &HashMap<ConnId, CloseReason>) {
        let mut by_member: HashMap<usize, Vec<&Client>> = HashMap::new();
        for client in &self.clients {
            let id = client.id;
            if !closing.contains_key(&id) {
                assert_eq!(
                    n_of(&self.relay, id),
                    client.identity,
                    "conn {id} holding {:?}: identified as the model says",
                    client.holds
                );
                let seed = self.relay.peer(id).is_some_and(|p| p.is_seed());
                assert_eq!(
                    seed,
                    !client.newline && client.identity.is_some(),
                    "conn {id}: seed"
                );
            }
            let received = opened(client);
            if !self.recipients.contains(&id) {
                assert!(
                    received.is_empty(),
                    "conn {id} unidentified, got {received:?}"
                );
                continue;
            }
            let mut seen = HashSet::new();
            for message in &received {
                let (name, text) = message.split_once(": ").expect("stamped `NAME: `");
                let serial: u64 = text
                    .strip_prefix('#')
                    .and_then(|t| t.split(' ').next())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("conn {id}: not a message sent: {message:?}"));
                let sent = self.sent.get(&serial).unwrap_or_else(|| {
                    panic!("conn {id}: {message:?} was not sent this turn by a member")
                });
                assert_eq!(
                    name,
                    format!("n{}", sent.name),
                    "stamped with its sender's name"
                );
                assert_eq!(text, sent.text);
                assert_ne!(sent.from, id, "a sender never gets its own message");
                assert!(seen.insert(serial), "conn {id}: {message:?} twice");
            }
            if closing.contains_key(&id) {
                continue;
            }
            for (serial, sent) in &self.sent {
                if sent.from != id {
                    assert!(seen.contains(serial), "conn {id} missed #{serial}");
                }
            }
            if client.newline
                && let Some(name) = client.identity
            {
                by_member.entry(name).or_default().push(client);
            }
        }
        for devices in by_member.values() {
            let sender = |c: &Client| self.sent.values().any(|s| s.from == c.id);
            let quiet: Vec<&&Client> = devices
                .iter()
                .filter(|c| self.recipients.contains(&c.id) && !sender(c))
                .collect();
            for pair in quiet.windows(2) {
                assert_eq!(
                    pair[0].chunks.concat(),
                    pair[1].chunks.concat(),
                    "one seal per member"
                );
            }
        }
    }
}

/// The member index the relay says connection `id` identified as.
fn n_of(relay: &Relay<Vec<u8>>, id: ConnId) -> Option<usize> {
    let name = relay.member_name(id)?;
    let index = name.as_str().strip_prefix('n')?.parse().ok();
    assert!(index.is_some(), "a name from the file: {name:?}");
    index
}

/// Every message `client` received this turn, each frame opened under its
/// own key: lines for a newline client, one frame per flush (its messages
/// joined by `\n`) for a notebook client.
fn opened(client: &Client) -> Vec<String> {
    let mut cipher = Cipher::with_nonce_seed(&client.key, [0; 32]);
    let mut open = |frame: &[u8]| -> String {
        let plaintext = cipher.open(frame).unwrap_or_else(|e| {
            panic!(
                "conn {}: a delivery that does not open under its key: {e}",
                client.id
            )
        });
        String::from_utf8(plaintext.to_vec()).expect("utf-8 plaintext")
    };
    if client.newline {
        let all = client.chunks.concat();
        assert!(all.is_empty() || all.ends_with(b"\n"), "whole lines");
        all.split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(&mut open)
            .collect()
    } else {
        client
            .chunks
            .iter()
            .flat_map(|frame| {
                // One frame per read, its line's `\n` kept.
                let frame = frame.strip_suffix(b"\n").unwrap_or(frame);
                assert!(!frame.contains(&b'\n'), "one frame per flush");
                open(frame)
                    .split('\n')
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}
