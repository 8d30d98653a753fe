//! The `handshake` target's model of a session relay: what the harness
//! believes of each connection (`State`), how each read it sends moves that
//! belief (`Harness::send`: the first line decides a handshake, then each
//! line must be the session's next frame), and every check made at the end
//! of a turn (`Harness::end_turn`), after the writes the server's loop
//! would do. The steps that drive it are in `handshake.rs`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use eaxchat_core::relay::{
    ChatConfig, CloseReason, ConnId, HandshakeRefusal, Limits, PendingInvite, Relay,
};
use eaxchat_core::stats::Stats;
use eaxchat_proto::invite::InviteSecret;
use eaxchat_proto::invite::code::InviteCode;
use eaxchat_proto::session::{
    Initiator, Kind, MAX_LINE, PublicKey, RELAY_KEY_MARK, Responder, Session, StaticSecret,
    decode_line, read_relay_key,
};

use crate::invites::Join;
use crate::{
    DEVICES, INVITE_CODE, INVITE_ID, INVITE_SECRET, INVITE_USES, KEY_REQUEST, OTHER_RELAY, RELAY,
    identity, members_file, strip_cr,
};

/// A hello line the harness made.
pub(crate) struct Hello {
    pub(crate) device: usize,
    /// Made for this relay's key.
    pub(crate) for_relay: bool,
    /// Its handshake, until a connection's welcome takes it; a replayed
    /// hello finds none.
    pub(crate) initiator: Option<Initiator>,
}

/// How the model expects a connection to close this turn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Expect {
    Exactly(CloseReason),
    /// A frame that does not open in its session, for any reason.
    SessionFrame,
}

pub(crate) enum State {
    /// Waiting for its hello: the bytes of its first line so far.
    Awaiting { pending: Vec<u8> },
    /// Refused this turn: one refusal line is due, then the close.
    Refused(HandshakeRefusal, Option<usize>),
    /// Welcomed this turn: the welcome line is due. Without an initiator
    /// (a replayed hello) the harness cannot read its session.
    Welcomed {
        initiator: Option<Initiator>,
        device: usize,
    },
    /// Established, its session held by the harness.
    Established {
        session: Session,
        device: usize,
        /// Bytes of an unfinished line it sent.
        partial: Vec<u8>,
        /// The frame it may send next (without `\n`) and its message.
        next: Option<(Vec<u8>, Option<u64>)>,
    },
    /// Established for a replayed hello: its session is not the harness's.
    Opaque { device: usize, partial: Vec<u8> },
    /// Closed this turn (the close is in `expect`).
    Closed,
}

pub(crate) struct Conn {
    pub(crate) id: ConnId,
    pub(crate) admitted: Instant,
    pub(crate) state: State,
    /// What it sent since its last `\n`.
    pub(crate) outgoing: Vec<u8>,
    /// Its last whole line, for replays.
    pub(crate) last_sent: Option<Vec<u8>>,
    /// The last line it was written, for reflections.
    pub(crate) last_written: Option<Vec<u8>>,
    /// What it was written this turn.
    pub(crate) inbox: Vec<u8>,
    /// The messages it received, over the whole run.
    pub(crate) seen: HashSet<u64>,
    /// It asked for the relay's key (a key request before its hello).
    pub(crate) asked_key: bool,
    /// The relay's key is due to it this turn, before anything else.
    pub(crate) key_due: bool,
    /// It made a code exchange (kind 0x06); its reply is due this turn.
    pub(crate) coded: bool,
    pub(crate) code_due: bool,
}

pub(crate) struct Harness {
    pub(crate) relay: Relay<Vec<u8>>,
    /// The devices' identities, then the relay's, then another relay's:
    /// computed once (each is a scalar multiplication).
    pub(crate) devices: Vec<StaticSecret>,
    pub(crate) relay_key: PublicKey,
    pub(crate) other_relay: PublicKey,
    pub(crate) now: Instant,
    pub(crate) timeout: Duration,
    pub(crate) mask: u8,
    pub(crate) conns: Vec<Conn>,
    pub(crate) hellos: HashMap<Vec<u8>, Hello>,
    pub(crate) made: usize,
    /// The invite joins the harness made, by line (without `\n`).
    pub(crate) joins: HashMap<Vec<u8>, Join>,
    /// The code starts (kind 0x06) the harness made, by line.
    pub(crate) codes: HashSet<Vec<u8>>,
    /// The invite's uses left and wrong secrets, as the model counts them.
    pub(crate) invite_uses: u32,
    pub(crate) invite_wrong: u32,
    /// Joins the model accepted this turn: the relay's `take_joined`.
    pub(crate) joined: usize,
    /// A session the relay never saw: its frames must never open.
    pub(crate) decoy: Session,
    pub(crate) serial: u64,
    /// This turn's messages: serial → (sender, member).
    pub(crate) sent: HashMap<u64, (ConnId, &'static str)>,
    /// Established sessions when the turn began: this turn's recipients.
    pub(crate) recipients: HashSet<ConnId>,
    pub(crate) expect: HashMap<ConnId, Expect>,
    /// The model's counts of what the relay counts.
    pub(crate) model: Stats,
    pub(crate) before: Stats,
}

impl Harness {
    pub(crate) fn new(mask: u8) -> Harness {
        let mask = mask & 0x0f;
        let now = Instant::now();
        let limits = Limits::default();
        let devices: Vec<StaticSecret> = DEVICES.iter().map(|(_, byte)| identity(*byte)).collect();
        let mut relay = Relay::with_sessions(
            &members_file(&devices, mask),
            identity(RELAY),
            limits,
            now,
            SystemTime::now(),
        );
        relay.set_chat(ChatConfig::quiet());
        relay.set_invites(vec![PendingInvite {
            id: INVITE_ID,
            name: eaxchat_proto::name::Name::new(DEVICES[3].0).expect("a name"),
            secret: InviteSecret::from_bytes(INVITE_SECRET),
            expires_at_millis: u64::MAX,
            uses_left: INVITE_USES,
            used: 0,
            device: false,
            revoked: false,
            inviter: None,
            code: Some(InviteCode::parse(INVITE_CODE).expect("a code")),
        }]);
        // A handshake of device 0's the relay never sees.
        let relay_key = *relay.relay_key().expect("a session relay");
        let (initiator, hello) = Initiator::start(&devices[0], &relay_key, b"").expect("a hello");
        let responder = Responder::read_hello(&identity(RELAY), &hello).expect("reads");
        let (welcome, _) = responder.accept("decoy").expect("accepts");
        let decoy = initiator.finish(&welcome).expect("finishes").session;
        Harness {
            relay,
            devices,
            relay_key,
            other_relay: *identity(OTHER_RELAY).public_key(),
            now,
            timeout: limits.first_frame_timeout,
            mask,
            conns: Vec::new(),
            hellos: HashMap::new(),
            made: 0,
            joins: HashMap::new(),
            codes: HashSet::new(),
            invite_uses: INVITE_USES,
            invite_wrong: 0,
            joined: 0,
            decoy,
            serial: 0,
            sent: HashMap::new(),
            recipients: HashSet::new(),
            expect: HashMap::new(),
            model: Stats::default(),
            before: Stats::default(),
        }
    }

    pub(crate) fn pick(&self, byte: u8) -> Option<usize> {
        (!self.conns.is_empty()).then(|| usize::from(byte) % self.conns.len())
    }

    pub(crate) fn in_file(&self, device: usize) -> bool {
        self.mask & (1 << device) != 0
    }

    /// Sends `data` on connection `c` in one read, and moves the model on.
    pub(crate) fn send(&mut self, c: usize, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let id = self.conns[c].id;
        self.relay.receive(id, data);
        let conn = &mut self.conns[c];
        for &byte in data {
            conn.outgoing.push(byte);
            if byte == b'\n' {
                conn.last_sent = Some(std::mem::take(&mut conn.outgoing));
            }
        }
        let state = std::mem::replace(&mut self.conns[c].state, State::Closed);
        self.conns[c].state = match state {
            State::Awaiting { pending } => self.take_first_line(c, pending, data, true),
            State::Established {
                session,
                device,
                partial,
                next,
            } => self.take_frames(id, session, device, partial, next, data),
            State::Opaque {
                device,
                mut partial,
            } => match data.iter().position(|&b| b == b'\n') {
                None => {
                    partial.extend_from_slice(data);
                    State::Opaque { device, partial }
                }
                Some(_) => self.closed(id, Expect::SessionFrame),
            },
            // A read after the welcome's own, before the welcome is
            // written: frames it cannot have sealed (no step sends one).
            State::Welcomed { initiator, device } => match data.contains(&b'\n') {
                true => self.closed(id, Expect::SessionFrame),
                false => State::Welcomed { initiator, device },
            },
            // Nothing more is read from it.
            other @ (State::Refused(..) | State::Closed) => other,
        };
    }

    pub(crate) fn closed(&mut self, id: ConnId, expect: Expect) -> State {
        match expect {
            Expect::SessionFrame => self.model.sessions.rejected_tag += 1,
            Expect::Exactly(CloseReason::HandshakeUnfinished) => {
                self.model.sessions.unfinished += 1
            }
            Expect::Exactly(_) => {}
        }
        self.expect.insert(id, expect);
        State::Closed
    }

    pub(crate) fn refused(&mut self, why: HandshakeRefusal, device: Option<usize>) -> State {
        match why {
            HandshakeRefusal::BadHello => self.model.sessions.refused_bad_hello += 1,
            HandshakeRefusal::UnknownKey => self.model.sessions.refused_unknown_key += 1,
        }
        State::Refused(why, device)
    }

    /// The model of an awaiting connection's read (`first`: from its
    /// start): its first line decides, unless it is the connection's first
    /// key request, which is answered and leaves it awaiting its hello.
    pub(crate) fn take_first_line(
        &mut self,
        c: usize,
        mut pending: Vec<u8>,
        data: &[u8],
        first: bool,
    ) -> State {
        let id = self.conns[c].id;
        let newline = data.iter().position(|&b| b == b'\n');
        // The relay measures the line its read starts in, before any work.
        if first && pending.len() + newline.unwrap_or(data.len()) > MAX_LINE + 1 {
            return self.refused(HandshakeRefusal::BadHello, None);
        }
        let Some(newline) = newline else {
            pending.extend_from_slice(data);
            return State::Awaiting { pending };
        };
        pending.extend_from_slice(&data[..newline]);
        let rest = &data[newline + 1..];
        let line = strip_cr(strip_cr(&pending));
        if self.codes.contains(line) && !self.conns[c].coded {
            return match self.take_code(c) {
                true => self.take_first_line(c, Vec::new(), rest, false),
                false => self.refused(HandshakeRefusal::BadHello, None),
            };
        }
        if line == KEY_REQUEST && !self.conns[c].asked_key {
            self.conns[c].asked_key = true;
            self.conns[c].key_due = true;
            return self.take_first_line(c, Vec::new(), rest, false);
        }
        if self.joins.contains_key(line) {
            return self.take_join(c, line, rest);
        }
        let Some(hello) = self.hellos.get_mut(line) else {
            self.count_stray_join(c, line);
            return self.refused(HandshakeRefusal::BadHello, None);
        };
        let device = hello.device;
        if !hello.for_relay {
            return self.refused(HandshakeRefusal::BadHello, None);
        }
        if self.mask & (1 << device) == 0 {
            return self.refused(HandshakeRefusal::UnknownKey, Some(device));
        }
        let initiator = hello.initiator.take();
        self.model.sessions.accepted += 1;
        if !rest.is_empty() {
            return self.closed(id, Expect::Exactly(CloseReason::HandshakeUnfinished));
        }
        State::Welcomed { initiator, device }
    }

    /// The model of an established session's read: its next frame is taken,
    /// any other line closes it.
    pub(crate) fn take_frames(
        &mut self,
        id: ConnId,
        session: Session,
        device: usize,
        mut partial: Vec<u8>,
        mut next: Option<(Vec<u8>, Option<u64>)>,
        mut data: &[u8],
    ) -> State {
        while let Some(newline) = data.iter().position(|&b| b == b'\n') {
            partial.extend_from_slice(&data[..newline]);
            data = &data[newline + 1..];
            let line = std::mem::take(&mut partial);
            match next.take() {
                Some((frame, message)) if strip_cr(strip_cr(&line)) == frame.as_slice() => {
                    if let Some(serial) = message {
                        self.sent.insert(serial, (id, DEVICES[device].0));
                    }
                }
                _ => return self.closed(id, Expect::SessionFrame),
            }
        }
        partial.extend_from_slice(data);
        State::Established {
            session,
            device,
            partial,
            next,
        }
    }

    /// The server loop's end of a turn, and every check.
    pub(crate) fn end_turn(&mut self) {
        let index: HashMap<ConnId, usize> = self
            .conns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, i))
            .collect();
        while let Some(id) = self.relay.next_waiting() {
            self.relay.flush(id);
            if let (Some(&i), Some(io)) = (index.get(&id), self.relay.io_mut(id)) {
                self.conns[i].inbox.append(io);
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
        for c in 0..self.conns.len() {
            self.read_inbox(c, &closing);
        }
        for (id, reason) in &closing {
            match self.expect.get(id) {
                Some(Expect::Exactly(want)) => assert_eq!(reason, want, "conn {id}"),
                Some(Expect::SessionFrame) => assert!(
                    matches!(reason, CloseReason::SessionFrame(_)),
                    "conn {id}: {reason}"
                ),
                None => panic!("conn {id} closed unexpectedly: {reason}"),
            }
        }
        for id in self.expect.keys() {
            assert!(closing.contains_key(id), "conn {id} should have closed");
        }
        for (serial, (from, _)) in &self.sent {
            for conn in &self.conns {
                if conn.id != *from
                    && self.recipients.contains(&conn.id)
                    && !closing.contains_key(&conn.id)
                {
                    assert!(
                        conn.seen.contains(serial),
                        "conn {} missed #{serial}",
                        conn.id
                    );
                }
            }
        }
        for id in closing.keys() {
            self.relay.remove(*id);
        }
        self.conns.retain(|c| !closing.contains_key(&c.id));
        self.check_stats();
    }

    /// Reads what connection `c` was written this turn, as its state says.
    pub(crate) fn read_inbox(&mut self, c: usize, closing: &HashMap<ConnId, CloseReason>) {
        let inbox = std::mem::take(&mut self.conns[c].inbox);
        let id = self.conns[c].id;
        assert!(
            inbox.is_empty() || inbox.ends_with(b"\n"),
            "conn {id}: whole lines"
        );
        let mut lines: Vec<&[u8]> = inbox.split(|&b| b == b'\n').collect();
        lines.pop();
        if let Some(last) = lines.last() {
            self.conns[c].last_written = Some([last, &b"\n"[..]].concat());
        }
        if std::mem::take(&mut self.conns[c].key_due) {
            let key_line = lines.first().expect("conn {id}: the relay's key is due");
            let key = read_relay_key(key_line).expect("the relay's key line");
            assert_eq!(key, self.relay_key, "conn {id}: the relay's own key");
            lines.remove(0);
        }
        if std::mem::take(&mut self.conns[c].code_due) {
            let reply = decode_line(lines.first().expect("a code reply is due"));
            assert_eq!(reply.map(|l| l.kind()), Ok(Kind::CodeReply), "conn {id}");
            lines.remove(0);
        }
        let relay_fingerprint = self.relay_key.fingerprint();
        let state = std::mem::replace(&mut self.conns[c].state, State::Closed);
        self.conns[c].state = match state {
            State::Awaiting { pending } => {
                assert!(lines.is_empty(), "conn {id}: written before its hello");
                State::Awaiting { pending }
            }
            State::Refused(why, device) => {
                assert_eq!(lines.len(), 1, "conn {id}: one refusal, nothing else");
                let line = decode_line(lines[0]).expect("a handshake line");
                assert_eq!(line.kind(), Kind::Refusal, "conn {id}");
                let text = String::from_utf8_lossy(line.body());
                match device {
                    Some(device) => {
                        let key = self.devices[device].public_key().fingerprint();
                        assert!(text.contains(&format!("unknown key {key}")), "{text}");
                    }
                    None => assert!(
                        text.contains(&format!("{RELAY_KEY_MARK}{relay_fingerprint}")),
                        "{text}"
                    ),
                }
                self.expect
                    .insert(id, Expect::Exactly(CloseReason::HandshakeRefused(why)));
                State::Closed
            }
            State::Welcomed { initiator, device } => {
                let (welcome, rest) = lines.split_first().expect("conn {id}: a welcome");
                assert!(
                    rest.is_empty(),
                    "conn {id}: nothing else in its welcome's turn"
                );
                let line = decode_line(welcome).expect("a handshake line");
                assert_eq!(line.kind(), Kind::Welcome, "conn {id}");
                assert!(!closing.contains_key(&id), "conn {id}: welcomed and closed");
                let name = self.relay.member_name(id).map(|n| n.as_str().to_owned());
                assert_eq!(name.as_deref(), Some(DEVICES[device].0), "conn {id}");
                match initiator {
                    Some(initiator) => {
                        let established = initiator.finish(welcome).expect("the welcome verifies");
                        assert_eq!(established.name, DEVICES[device].0);
                        State::Established {
                            session: established.session,
                            device,
                            partial: Vec::new(),
                            next: None,
                        }
                    }
                    None => State::Opaque {
                        device,
                        partial: Vec::new(),
                    },
                }
            }
            State::Established {
                mut session,
                device,
                partial,
                next,
            } => {
                for line in &lines {
                    let plaintext = session.open(line).expect("opens in order in its session");
                    let text = std::str::from_utf8(plaintext).expect("utf-8");
                    let (name, message) = text.split_once(": ").expect("stamped");
                    let serial: u64 = message
                        .strip_prefix('#')
                        .and_then(|m| m.split(' ').next())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("conn {id}: not a message: {text:?}"));
                    let (from, sender) = self.sent.get(&serial).unwrap_or_else(|| {
                        panic!("conn {id}: #{serial} was not sent by a session")
                    });
                    assert_eq!(name, *sender, "stamped with its sender's name");
                    assert_ne!(*from, id, "a sender never gets its own message");
                    assert!(
                        self.recipients.contains(&id),
                        "conn {id}: welcomed this turn"
                    );
                    assert!(
                        self.conns[c].seen.insert(serial),
                        "conn {id}: #{serial} twice"
                    );
                }
                let peer = self.relay.peer(id).expect("open");
                assert_eq!(peer.session_key(), Some(self.devices[device].public_key()));
                assert!(peer.is_authenticated());
                State::Established {
                    session,
                    device,
                    partial,
                    next,
                }
            }
            State::Opaque { device, partial } => State::Opaque { device, partial },
            State::Closed => {
                assert!(lines.is_empty(), "conn {id}: written while closing");
                State::Closed
            }
        };
        if matches!(self.conns[c].state, State::Awaiting { .. }) {
            let peer = self.relay.peer(id).expect("open");
            assert!(!peer.is_authenticated() && self.relay.member_name(id).is_none());
        }
    }

    pub(crate) fn check_stats(&mut self) {
        let stats = self.relay.stats();
        let (got, was) = (counters(&stats), counters(&self.before));
        for (i, (now, then)) in got.iter().zip(was.iter()).enumerate() {
            assert!(now >= then, "counter {i} went back: {then} -> {now}");
        }
        let (s, m) = (&stats.sessions, &self.model.sessions);
        assert_eq!(s.accepted, m.accepted, "handshakes accepted");
        assert_eq!(s.refused_bad_hello, m.refused_bad_hello, "bad hellos");
        assert_eq!(s.refused_unknown_key, m.refused_unknown_key, "unknown keys");
        assert_eq!(s.unfinished, m.unfinished, "unfinished");
        assert_eq!(s.rejected(), m.rejected_tag, "session frames refused");
        assert_eq!(stats.first_frame_timeouts, self.model.first_frame_timeouts);
        assert_eq!(stats.members_removed, self.model.members_removed);
        assert_eq!(stats.connections as usize, self.conns.len());
        self.before = stats;
    }
}

/// Every counter but the open connections, which may go down.
fn counters(s: &Stats) -> Vec<u64> {
    let (r, x) = (&s.rejected, &s.sessions);
    vec![
        s.connections_total,
        s.frames_in,
        s.frames_out,
        s.bytes_in,
        s.bytes_out,
        r.bad_base64,
        r.too_short,
        r.bad_tag,
        r.too_long,
        r.replayed,
        s.clients_refused,
        s.slow_consumers,
        s.accept_errors,
        s.refused_per_address,
        s.pre_auth_over_budget,
        s.first_frame_timeouts,
        s.members_removed,
        s.flood_refused,
        s.commands,
        s.cluster_in,
        s.cluster_rejected,
        s.cluster_replayed,
        s.cluster_dropped,
        x.accepted,
        x.refused_unknown_key,
        x.refused_bad_hello,
        x.unfinished,
        x.rejected_replay,
        x.rejected_gap,
        x.rejected_tag,
        x.rejected_malformed,
    ]
}
