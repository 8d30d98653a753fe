//! The clients that misbehave: hostile and broken senders, connection
//! bursts past `--max-clients`, connect-and-close churn, and consumers that
//! never read. Each connection is opened through [`World::dial`], so the
//! audit can find what the relay logged for it; each kind says which close
//! reason and which counter the relay must give it.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BytesMut;
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::Key;
use eaxchat_proto::wire::NONCE_LEN;

use crate::world::{Jitter, READER_RCVBUF, Role, World};

/// How long the relay may take to close a connection it must close.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// Receive buffer of a consumer that never reads: small, so the relay's own
/// queue (not the kernel's buffers) fills.
const STOPPED_RCVBUF: usize = 4096;
/// How long a stopped consumer may wait to be dropped. Members send
/// hundreds of KiB a second, so this is many times what it needs.
const STOPPED_WAIT: Duration = Duration::from_secs(60);
/// Connections each burst opens beyond `--max-clients`.
pub const BURST_EXTRA: usize = 20;

/// One kind of hostile or broken client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hostile {
    /// A line that is not base64.
    BadBase64,
    /// Base64 of fewer bytes than nonce + tag.
    TooShort,
    /// A frame sealed under the key with one tag byte flipped.
    WrongTag,
    /// A frame sealed under another key.
    WrongKey,
    /// A line longer than `--max-frame`, newline and all.
    Oversized,
    /// Base64 bytes without a newline, dribbled until the relay gives up.
    NeverEnding,
    /// Half of a valid frame, then a clean close.
    HalfFrameClose,
    /// Half of a valid frame, then a reset.
    HalfFrameReset,
    /// Base64 letters up to just under `--max-frame`, no newline, then
    /// waits: only the pre-auth budget or the first-frame deadline ends it.
    PreAuthFlood,
    /// Members mode: a member the test removed or re-keyed, back with its
    /// old key ([`run_old_key`]).
    OldKey,
}

impl Hostile {
    /// Every kind, in the order they take turns.
    pub const ALL: [Hostile; 10] = [
        Hostile::BadBase64,
        Hostile::TooShort,
        Hostile::WrongTag,
        Hostile::WrongKey,
        Hostile::Oversized,
        Hostile::NeverEnding,
        Hostile::HalfFrameClose,
        Hostile::HalfFrameReset,
        Hostile::PreAuthFlood,
        Hostile::PreAuthFlood,
    ];

    /// The close reason the relay must log (`None`: the peer left first, so
    /// any of [`left_reason_ok`]).
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Hostile::BadBase64 => Some("rejected frame: bad base64"),
            Hostile::TooShort => Some("rejected frame: frame too short"),
            Hostile::WrongTag | Hostile::WrongKey => Some("rejected frame: tag mismatch"),
            Hostile::Oversized | Hostile::NeverEnding => Some("line longer than --max-frame"),
            Hostile::HalfFrameClose | Hostile::HalfFrameReset => None,
            Hostile::PreAuthFlood => Some(PRE_AUTH_OVER_BUDGET),
            Hostile::OldKey => Some("rejected frame: tag mismatch"),
        }
    }

    /// [`Hostile::reason`] for a shared-key relay (`members` false) or a
    /// members relay, which closes a connection whose unterminated first
    /// frame grows past what it identifies before any other limit.
    pub fn reason_in(self, members: bool) -> Option<&'static str> {
        match self {
            Hostile::Oversized | Hostile::NeverEnding | Hostile::PreAuthFlood if members => {
                Some(FIRST_FRAME_TOO_LONG)
            }
            kind => kind.reason(),
        }
    }

    /// [`Hostile::counter`] for a shared-key or a members relay (a first
    /// frame too long to identify counts as a bad tag).
    pub fn counter_in(self, members: bool) -> Option<&'static str> {
        match self {
            Hostile::Oversized | Hostile::NeverEnding | Hostile::PreAuthFlood if members => {
                Some("rejected_tag")
            }
            kind => kind.counter(),
        }
    }

    /// The stats counter this kind increments once per admitted connection.
    pub fn counter(self) -> Option<&'static str> {
        match self {
            Hostile::BadBase64 => Some("rejected_base64"),
            Hostile::TooShort => Some("rejected_short"),
            Hostile::WrongTag | Hostile::WrongKey | Hostile::OldKey => Some("rejected_tag"),
            Hostile::Oversized | Hostile::NeverEnding => Some("rejected_too_long"),
            Hostile::HalfFrameClose | Hostile::HalfFrameReset | Hostile::PreAuthFlood => None,
        }
    }

    /// Whether it holds unfinished bytes across reads, so that the pre-auth
    /// budget or the first-frame deadline may close it before its own
    /// reason does ([`pre_auth_counter`]).
    pub fn holds_unfinished_bytes(self) -> bool {
        matches!(
            self,
            Hostile::Oversized
                | Hostile::NeverEnding
                | Hostile::HalfFrameClose
                | Hostile::HalfFrameReset
                | Hostile::PreAuthFlood
        )
    }
}

/// The reason the relay logs for a consumer that stopped reading.
pub const SLOW_CONSUMER: &str = "slow consumer: over --max-queue";

/// The close reason of an unauthenticated connection over the budget.
const PRE_AUTH_OVER_BUDGET: &str = "unauthenticated, holding the most past --pre-auth-budget";
/// The close reason of a members relay for a first frame past its
/// identification cap.
const FIRST_FRAME_TOO_LONG: &str = "first frame too long to identify";
/// The close reason of a connection past its first-frame deadline.
const FIRST_FRAME_TIMEOUT: &str = "no authenticated frame within --first-frame-timeout";

/// The counter a pre-authentication close reason is counted under, if
/// `reason` is one.
pub fn pre_auth_counter(reason: &str) -> Option<&'static str> {
    match reason {
        PRE_AUTH_OVER_BUDGET => Some("pre_auth_over_budget"),
        FIRST_FRAME_TIMEOUT => Some("first_frame_timeouts"),
        _ => None,
    }
}

/// Whether `reason` is what the relay may log for a client that closed or
/// reset its end first: it sees the close, or a failed write to it, or (if
/// it queued more than `--max-queue` for it before either) a consumer that
/// stopped reading, which a vanished client is.
pub fn left_reason_ok(reason: &str) -> bool {
    reason == "peer closed" || reason.starts_with("socket error:") || reason == SLOW_CONSUMER
}

/// Hostile clients, one kind after another, until actors stop. Returns how
/// many connections it opened.
pub fn run_hostiles(world: &World, every: Duration) -> usize {
    let mut other_key = Cipher::new(&Key::generate().expect("randomness")).expect("cipher");
    let mut cipher = Cipher::new(&world.key).expect("cipher");
    let mut opened = 0;
    for kind in Hostile::ALL.iter().cycle() {
        if world.actors_stopping() {
            break;
        }
        if let Some(stream) = world.dial(Role::Hostile(*kind), None) {
            opened += 1;
            attack(world, stream, *kind, &mut cipher, &mut other_key);
        }
        world.nap(every);
    }
    opened
}

fn attack(
    world: &World,
    mut stream: TcpStream,
    kind: Hostile,
    cipher: &mut Cipher,
    other: &mut Cipher,
) {
    let max_frame = world.limits.max_frame;
    let sealed = |cipher: &mut Cipher, text: &[u8]| {
        let mut line = BytesMut::new();
        cipher.seal_into(text, &mut line);
        line.to_vec()
    };
    // Writes may fail once the relay has closed the connection: that is
    // the point, so their errors are ignored; the close itself is checked.
    let line: Vec<u8> = match kind {
        Hostile::BadBase64 => b"@@ this is not base64 @@\n".to_vec(),
        Hostile::TooShort => format!("{}\n", BASE64.encode([7u8; 20])).into_bytes(),
        Hostile::WrongTag => {
            let good = sealed(cipher, b"HOSTILE: tag flipped");
            let mut frame = BASE64.decode(&good[..good.len() - 1]).expect("own frame");
            frame[NONCE_LEN] ^= 0x01;
            format!("{}\n", BASE64.encode(frame)).into_bytes()
        }
        Hostile::WrongKey => sealed(other, b"HOSTILE: sealed under another key"),
        Hostile::Oversized => {
            let mut line = vec![b'A'; max_frame + 1 + max_frame / 3];
            line.push(b'\n');
            line
        }
        Hostile::NeverEnding => {
            let chunk = [b'A'; 1024];
            let start = Instant::now();
            while start.elapsed() < CLOSE_WAIT && stream.write_all(&chunk).is_ok() {
                std::thread::sleep(Duration::from_millis(1));
            }
            Vec::new()
        }
        Hostile::PreAuthFlood => {
            let chunk = [b'A'; 4096];
            let mut left = max_frame - 1;
            while left > 0 {
                let n = left.min(chunk.len());
                if stream.write_all(&chunk[..n]).is_err() {
                    break;
                }
                left -= n;
            }
            Vec::new()
        }
        Hostile::OldKey => sealed(cipher, b""),
        Hostile::HalfFrameClose | Hostile::HalfFrameReset => {
            let frame = sealed(cipher, b"HOSTILE: this frame never ends");
            let _ = stream.write_all(&frame[..frame.len() / 2]);
            if kind == Hostile::HalfFrameReset {
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            }
            return;
        }
    };
    let _ = stream.write_all(&line);
    if !closed_within(&mut stream, CLOSE_WAIT) {
        world.violation(format!(
            "{kind:?} connection {:?} still open after {CLOSE_WAIT:?}",
            stream.local_addr()
        ));
    }
}

/// Members mode: connects as a member with `key`, one the test removed or
/// replaced, and identifies; the relay must close the connection.
pub fn run_old_key(world: &World, key: &Key) {
    let mut cipher = Cipher::new(key).expect("cipher");
    let mut other = Cipher::new(&world.key).expect("cipher");
    if let Some(stream) = world.dial(Role::Hostile(Hostile::OldKey), None) {
        attack(world, stream, Hostile::OldKey, &mut cipher, &mut other);
    }
}

/// Reads (and discards) until the relay closes the connection.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 16 * 1024];
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    false
}

/// Every `every`, opens `--max-clients` + [`BURST_EXTRA`] connections as
/// fast as it can, holds them all (reading what arrives, into large
/// buffers, so none is a slow consumer) for `hold`, then closes them. Returns the number of bursts.
pub fn run_bursts(world: &World, every: Duration, hold: Duration) -> u32 {
    let mut bursts = 0;
    loop {
        world.nap(every);
        if world.actors_stopping() {
            return bursts;
        }
        let mut held = Vec::new();
        for _ in 0..world.limits.max_clients + BURST_EXTRA {
            if let Some(stream) = world.dial(Role::Burst(bursts), Some(READER_RCVBUF)) {
                stream.set_nonblocking(true).expect("nonblocking");
                held.push(stream);
            }
        }
        let until = Instant::now() + hold;
        let mut buf = [0u8; 16 * 1024];
        while Instant::now() < until {
            for stream in &mut held {
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        bursts += 1;
    }
}

/// Connects and closes at once, every `every`, every third time with a
/// reset instead of a clean close. Returns how many it opened.
pub fn run_churn(world: &World, every: Duration) -> usize {
    let mut opened = 0;
    while !world.actors_stopping() {
        if let Some(stream) = world.dial(Role::Churn, None) {
            if opened % 3 == 2 {
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            }
            opened += 1;
        }
        world.nap(every);
    }
    opened
}

/// Consumers that never read, one after another: each must be dropped as a
/// slow consumer (or refused, during a burst). Returns how many were
/// dropped.
pub fn run_stopped(world: &World, seed: u64) -> usize {
    let mut jitter = Jitter::new(seed);
    let mut dropped = 0;
    while !world.actors_stopping() {
        let Some(stream) = world.dial(Role::Stopped, Some(STOPPED_RCVBUF)) else {
            break;
        };
        let addr = stream.local_addr().expect("local address");
        let closed = format!("({addr}): closed: ");
        let refused = format!("refused {addr}:");
        let deadline = Instant::now() + STOPPED_WAIT;
        let mut offset = 0;
        let mut seen = String::new();
        loop {
            let (more, end) = world.log.since(offset);
            offset = end;
            seen.push_str(&more);
            if seen.contains(&refused) {
                break;
            }
            if seen.contains(&closed) {
                dropped += 1;
                break;
            }
            if Instant::now() > deadline {
                world.violation(format!(
                    "stopped consumer {addr} not dropped within {STOPPED_WAIT:?}"
                ));
                break;
            }
            // Keep only a tail that can hold a partial line.
            if seen.len() > 64 * 1024 {
                let mut cut = seen.len() - 4096;
                while !seen.is_char_boundary(cut) {
                    cut += 1;
                }
                seen.drain(..cut);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(stream);
        std::thread::sleep(jitter.millis(0, 300));
    }
    dropped
}
