//! Fuzz target `handshake`: a session relay (`Relay::with_sessions`, in
//! memory) driven by a script of steps from several connections: hellos
//! made from fixed device identities (whole, cut over two reads, followed
//! by more bytes in the same read, or made for another relay's key),
//! garbage, frames of the connections' sessions and of a session the relay
//! never saw, replays and reflections of lines seen earlier, a clock moved
//! past the handshake deadline, hang-ups, and reloads of the members file.
//!
//! The script is bytes read as steps (`Harness::step`), not `arbitrary`, so
//! hand-made seeds stay meaningful (`fuzz/make_seeds.py` writes them):
//! the first byte is the members file (bit i: device i is in it), then each
//! step is an opcode byte (mod 13) and its arguments; a missing byte reads
//! as 0. `c` and `s` pick a connection (mod how many are open), `d` a device
//! (mod 5; 4 is device 0 for another relay's key):
//!
//! | op | arguments | step |
//! | --- | --- | --- |
//! | 0 | | connect |
//! | 1 | c d cut | a new hello, in two reads cut at `cut` |
//! | 2 | c n bytes… | `n % 65` raw bytes |
//! | 3 | c n | a message of `n % 48` letters in its session (else the decoy's) |
//! | 4 | c s | `s`'s last whole line again, on `c` |
//! | 5 | c s | the last line `s` was written, sent back on `c` |
//! | 6 | t | the clock moves `t` tenths of a second on |
//! | 7 | c | hang up |
//! | 8 | m | reload with the devices of bits `m` |
//! | 9 | c d n bytes… | a new hello and `n % 8 + 1` more bytes, in one read |
//! | 10 | c n | an empty frame (as 3) |
//! | 11 | c d cut | the first `cut` bytes of a new hello, no `\n` |
//! | 12 | c | a key request (kind 0x04, trust on first use) |
//! | 13 | c k | an invite join (kind 0x03) for device 3: `k % 3` 0 the invite's secret, 1 a wrong one, 2 an id the relay does not hold |
//! | 14 | c w | a code exchange's start (kind 0x06, SPAKE2) for the invite's code (`w` odd: a wrong code) |
//!
//! After every step the harness does what the server's loop does (flush
//! until nothing waits, take what is closing, remove it) and checks the
//! relay against a model of each connection (`handshake/model.rs`):
//! - nothing panics;
//! - before its handshake finishes a connection is written nothing but one
//!   welcome or one refusal line; after a refusal nothing, and it closes
//!   once that is written;
//! - its first key request before its hello is answered with one line
//!   holding the relay's key, and it still waits for its hello; a second
//!   one is a first line like any other;
//! - its first line decides it as the model says: a hello the harness made
//!   for a device in the file gets a welcome naming that device's member
//!   (which the hello's initiator finishes), one for a device not in the
//!   file a refusal naming its fingerprint, anything else a refusal naming
//!   the relay's; a line growing past 1024 bytes is refused before its
//!   `\n`; bytes after the hello in the same read close it unfinished;
//! - every line an established session is written opens, in order, in that
//!   session, and is `NAME: #N …` for a message N that an established
//!   session of member NAME sent, never its own, never twice; every such
//!   message reaches every other established session; nothing sent before
//!   a welcome, and no frame of a session the relay never saw, reaches
//!   anyone;
//! - an established session is closed exactly when it sends a line that
//!   is not its next frame (a replay, a reflection, another session's frame,
//!   garbage), hangs up, or loses its device in a reload;
//! - a connection still waiting for its hello is closed at the deadline
//!   counted from its admission, not before;
//! - every counter only moves forward, and the handshake and session
//!   counters are the model's;
//! - an invite join is welcomed (as carol, device 3) only with the
//!   invite's id and secret, while it has uses left and fewer than
//!   `WRONG_PER_INVITE` wrong secrets, and while carol's key is no member's;
//!   every other join is refused; each welcomed join is handed to the
//!   server once (`take_joined`), and carol is a member from then on;
//! - a code start (the invite has a short code) is answered with one code
//!   reply line (kind 0x07) while the invite is open, and counted as a
//!   try, right code or wrong; the connection still waits for its join,
//!   which then must prove the exchange's secret (the harness's joins never
//!   do: refused, not counted again).
//!
//! The handshakes' ephemeral keys come from the operating system, so an
//! input repeats its path through the relay, not its bytes. Each hello
//! costs about ten X25519 operations: an input makes at most twelve.

#![no_main]

#[path = "handshake/invites.rs"]
mod invites;
#[path = "handshake/model.rs"]
mod model;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use eaxchat_core::members::SessionMembers;
use eaxchat_core::relay::CloseReason;
use eaxchat_proto::invite::code::{CodeJoin, InviteCode};
use eaxchat_proto::invite::{Invite, InviteId, InviteSecret};
use eaxchat_proto::session::{Initiator, StaticSecret};
use libfuzzer_sys::fuzz_target;

use model::{Conn, Expect, Harness, Hello, State};

/// The devices a script may connect as: (member, identity byte). Device 4
/// is device 0 with a hello made for another relay's key.
const DEVICES: [(&str, u8); 4] = [("alice", 1), ("alice", 2), ("bob", 3), ("carol", 4)];
const OTHER_RELAY: u8 = 0x77;
const RELAY: u8 = 0xee;
const MAX_CONNS: usize = 8;
const MAX_STEPS: usize = 64;
/// Hellos cost a few X25519 operations each: bounded per input.
const MAX_HELLOS: usize = 12;
/// A key request line, without its `\n`.
const KEY_REQUEST: &[u8] = b"BA==";
/// The one invite the relay holds: for carol (device 3), two uses.
const INVITE_ID: InviteId = InviteId([0x1d; 8]);
const INVITE_SECRET: [u8; 32] = [0x5e; 32];
const INVITE_USES: u32 = 2;
/// Its short code, and one a word off.
const INVITE_CODE: &str = "7-acorn-amber-anchor";
const WRONG_CODE: &str = "7-acorn-amber-apple";

fuzz_target!(|data: &[u8]| {
    let mut script = Script { data, at: 0 };
    let mut harness = Harness::new(script.byte());
    for _ in 0..MAX_STEPS {
        if script.at >= data.len() {
            break;
        }
        harness.step(&mut script);
        harness.end_turn();
    }
});

/// The input, read a byte at a time.
struct Script<'a> {
    data: &'a [u8],
    at: usize,
}

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let byte = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        byte
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }
}

fn identity(byte: u8) -> StaticSecret {
    StaticSecret::from_bytes(&[byte; 32]).expect("any 32 bytes are a secret")
}

fn members_file(devices: &[StaticSecret], mask: u8) -> SessionMembers {
    let text: String = DEVICES
        .iter()
        .zip(devices)
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, ((name, _), secret))| format!("{name} {}\n", secret.public_key()))
        .collect();
    SessionMembers::parse(text.as_bytes(), Path::new("members.txt")).expect("a valid file")
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The steps: each reads its arguments from the script and acts on the
/// relay and the model together.
impl Harness {
    fn step(&mut self, script: &mut Script<'_>) {
        self.sent.clear();
        self.expect.clear();
        self.recipients = self
            .conns
            .iter()
            .filter(|c| matches!(c.state, State::Established { .. }))
            .map(|c| c.id)
            .collect();
        let joined = self.relay.take_joined();
        assert_eq!(joined.len(), self.joined, "joins handed to the server");
        for join in &joined {
            assert_eq!(join.key, *self.devices[3].public_key());
            assert_eq!(join.name.as_str(), DEVICES[3].0);
        }
        self.joined = 0;
        let op = script.byte() % 15;
        match op {
            0 => {
                if self.conns.len() < MAX_CONNS {
                    let id = self.relay.admit(Vec::new()).expect("room for a client");
                    self.conns.push(Conn {
                        id,
                        admitted: self.now,
                        state: State::Awaiting {
                            pending: Vec::new(),
                        },
                        outgoing: Vec::new(),
                        last_sent: None,
                        last_written: None,
                        inbox: Vec::new(),
                        seen: HashSet::new(),
                        asked_key: false,
                        key_due: false,
                        coded: false,
                        code_due: false,
                    });
                }
            }
            1 => {
                let (c, device, cut) = (script.byte(), script.byte(), script.byte());
                let Some(c) = self.pick(c) else { return };
                let Some(line) = self.make_hello(usize::from(device) % 5) else {
                    return;
                };
                let cut = usize::from(cut) % line.len();
                self.send(c, &line[..cut]);
                self.send(c, &line[cut..]);
            }
            2 => {
                let (c, len) = (script.byte(), script.byte());
                let bytes = script.bytes(usize::from(len) % 65);
                if let Some(c) = self.pick(c) {
                    self.send(c, &bytes);
                }
            }
            3 | 10 => {
                let (c, len) = (script.byte(), script.byte());
                if let Some(c) = self.pick(c) {
                    self.say(c, op == 10, usize::from(len) % 48);
                }
            }
            4 => {
                let (c, source) = (script.byte(), script.byte());
                let (Some(c), Some(source)) = (self.pick(c), self.pick(source)) else {
                    return;
                };
                if let Some(line) = self.conns[source].last_sent.clone() {
                    self.send(c, &line);
                }
            }
            5 => {
                let (c, source) = (script.byte(), script.byte());
                let (Some(c), Some(source)) = (self.pick(c), self.pick(source)) else {
                    return;
                };
                if let Some(line) = self.conns[source].last_written.clone() {
                    self.send(c, &line);
                }
            }
            6 => self.tick(script.byte()),
            7 => {
                let Some(c) = self.pick(script.byte()) else {
                    return;
                };
                let id = self.conns[c].id;
                self.relay.close(id, CloseReason::PeerClosed);
                self.conns[c].state = State::Closed;
                self.expect
                    .insert(id, Expect::Exactly(CloseReason::PeerClosed));
            }
            8 => self.reload(script.byte() & 0x0f),
            12 => {
                if let Some(c) = self.pick(script.byte()) {
                    self.send(c, &[KEY_REQUEST, b"\n"].concat());
                }
            }
            14 => {
                let (c, wrong) = (script.byte(), script.byte() % 2 == 1);
                let Some(c) = self.pick(c) else { return };
                if self.made >= MAX_HELLOS {
                    return;
                }
                self.made += 1;
                let code = InviteCode::parse(if wrong { WRONG_CODE } else { INVITE_CODE });
                let (_, mut line) = CodeJoin::start(&code.expect("a code")).expect("a start");
                line.pop();
                self.codes.insert(line.clone());
                line.push(b'\n');
                self.send(c, &line);
            }
            13 => {
                let (c, kind) = (script.byte(), script.byte());
                let Some(c) = self.pick(c) else { return };
                if let Some(line) = self.make_join(kind % 3) {
                    self.send(c, &line);
                }
            }
            11 => {
                let (c, device, cut) = (script.byte(), script.byte(), script.byte());
                let Some(c) = self.pick(c) else { return };
                let Some(line) = self.make_hello(usize::from(device) % 5) else {
                    return;
                };
                self.send(c, &line[..usize::from(cut) % line.len()]);
            }
            _ => {
                let (c, device, len) = (script.byte(), script.byte(), script.byte());
                let extra = script.bytes(usize::from(len) % 8 + 1);
                let Some(c) = self.pick(c) else { return };
                let Some(mut line) = self.make_hello(usize::from(device) % 5) else {
                    return;
                };
                line.extend_from_slice(&extra);
                self.send(c, &line);
            }
        }
    }

    /// A new hello line (with its `\n`) of device `device` (4: device 0's,
    /// for another relay's key), remembered with its initiator.
    fn make_hello(&mut self, device: usize) -> Option<Vec<u8>> {
        if self.made >= MAX_HELLOS {
            return None;
        }
        self.made += 1;
        let (index, relay) = match device {
            4 => (0, self.other_relay),
            device => (device, self.relay_key),
        };
        let (initiator, mut line) =
            Initiator::start(&self.devices[index], &relay, b"").expect("a hello");
        line.pop();
        self.hellos.insert(
            line.clone(),
            Hello {
                device: index,
                for_relay: relay == self.relay_key,
                initiator: Some(initiator),
            },
        );
        line.push(b'\n');
        Some(line)
    }

    /// A new invite join line (with its `\n`) for device 3: `kind` 0 with
    /// the invite's secret, 1 with a wrong one, 2 for an unknown id.
    fn make_join(&mut self, kind: u8) -> Option<Vec<u8>> {
        if self.made >= MAX_HELLOS {
            return None;
        }
        self.made += 1;
        let invite = Invite {
            addr: String::new(),
            relay: self.relay_key,
            id: if kind == 2 {
                InviteId([0xab; 8])
            } else {
                INVITE_ID
            },
            secret: InviteSecret::from_bytes(if kind == 1 { [0x11; 32] } else { INVITE_SECRET }),
        };
        let (initiator, mut line) = invite.join(&self.devices[3]).expect("a join");
        line.pop();
        self.joins.insert(
            line.clone(),
            invites::Join {
                known_id: kind != 2,
                right_secret: kind != 1,
                initiator: Some(initiator),
            },
        );
        line.push(b'\n');
        Some(line)
    }

    /// Seals a message (or an empty frame) and sends it on connection `c`:
    /// in its session if the harness holds one, else in the decoy's.
    fn say(&mut self, c: usize, empty: bool, len: usize) {
        self.serial += 1;
        let serial = self.serial;
        let text = if empty {
            String::new()
        } else {
            format!("#{serial} {}", "x".repeat(len))
        };
        let mut line = BytesMut::new();
        match &mut self.conns[c].state {
            State::Established { session, next, .. } => {
                session
                    .seal_into(text.as_bytes(), &mut line)
                    .expect("a counter left");
                let frame = line[..line.len() - 1].to_vec();
                *next = Some((frame, (!empty).then_some(serial)));
            }
            _ => self
                .decoy
                .seal_into(text.as_bytes(), &mut line)
                .expect("a counter left"),
        }
        self.send(c, &line);
    }

    /// Moves the clock on and runs the relay's timers.
    fn tick(&mut self, tenths: u8) {
        self.now += Duration::from_millis(100 * u64::from(tenths));
        self.relay.set_now(self.now);
        self.relay.run_timers();
        for conn in &mut self.conns {
            if matches!(conn.state, State::Awaiting { .. })
                && conn.admitted + self.timeout <= self.now
            {
                conn.state = State::Closed;
                self.model.first_frame_timeouts += 1;
                self.expect
                    .insert(conn.id, Expect::Exactly(CloseReason::FirstFrameTimeout));
            }
        }
    }

    /// Rewrites the members file with the devices in `mask`.
    fn reload(&mut self, mask: u8) {
        let changes = self
            .relay
            .reload_members(&members_file(&self.devices, mask))
            .expect("a session relay takes a sessions file");
        let devices = |mask: u8, name: &str| -> Vec<usize> {
            (0..DEVICES.len())
                .filter(|&i| mask & (1 << i) != 0 && DEVICES[i].0 == name)
                .collect()
        };
        for name in ["alice", "bob", "carol"] {
            let (old, new) = (devices(self.mask, name), devices(mask, name));
            let has = |list: &[eaxchat_proto::name::Name]| list.iter().any(|n| n.as_str() == name);
            assert_eq!(
                has(&changes.removed),
                !old.is_empty() && new.is_empty(),
                "{name}"
            );
            assert_eq!(
                has(&changes.added),
                old.is_empty() && !new.is_empty(),
                "{name}"
            );
            assert_eq!(
                has(&changes.rekeyed),
                !old.is_empty() && !new.is_empty() && old != new,
                "{name}"
            );
        }
        self.mask = mask;
        for c in 0..self.conns.len() {
            let device = match &self.conns[c].state {
                State::Established { device, .. } | State::Opaque { device, .. } => *device,
                _ => continue,
            };
            if !self.in_file(device) {
                let id = self.conns[c].id;
                self.model.members_removed += 1;
                self.conns[c].state = self.closed(id, Expect::Exactly(CloseReason::MemberRemoved));
            }
        }
    }
}
