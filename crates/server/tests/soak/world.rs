//! What every actor of the soak test shares: the relay's address, key,
//! limits and log; the phase of the run; the registry of every connection
//! the test opened (each from its own loopback address, so the relay's log
//! names it unambiguously); and the list of violations found along the way.
//! In members mode it also holds each member's key and whether the test has
//! removed or re-keyed it ([`Roll`]).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use eaxchat_proto::key::Key;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::hostile::Hostile;
use crate::member::EpochRecord;
use crate::util::LogHandle;

/// The relay's limits as the test started it.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `--max-frame`.
    pub max_frame: usize,
    /// `--max-clients`.
    pub max_clients: usize,
    /// `--max-queue`.
    pub max_queue: usize,
}

/// Why the test opened a connection; decides what the relay must log for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A well-behaved client's connection (its record says how it ended).
    Member,
    /// A hostile or broken client.
    Hostile(Hostile),
    /// One of the connections of burst number `n`, held past the limit.
    Burst(u32),
    /// Connect and close at once.
    Churn,
    /// A consumer that never reads.
    Stopped,
}

/// Receive buffer of a client that reads continuously. Large, so that a
/// reader the test machine descheduled for a few seconds is not mistaken for
/// a slow consumer: the kernel holds what arrives meanwhile (the kernel
/// caps it at `net.core.rmem_max`).
pub const READER_RCVBUF: usize = 4 << 20;

/// One connection the test opened.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// Its (unique) local address.
    pub addr: SocketAddr,
    /// What it was for.
    pub role: Role,
}

/// Coordination of the final phase (see `member.rs`).
#[derive(Default)]
pub struct Finale {
    /// Connection numbers of the members taking part.
    pub roster: Mutex<Vec<u32>>,
    /// Set once every member has joined the roster.
    pub roster_complete: AtomicBool,
    /// Members that saw a `Know` from, and sent one to, every other.
    pub passed: AtomicUsize,
    /// Set once every member has passed: witnesses stop reading.
    pub pause: AtomicBool,
    /// Witnesses that have stopped reading.
    pub paused: AtomicUsize,
    /// The last round of the burst started; members send one when it grows.
    pub round: AtomicU32,
    /// Rounds finished, summed over reading members (each has seen every
    /// other member's fence for that round).
    pub fenced: AtomicUsize,
    /// Set when no more rounds will start.
    pub done: AtomicBool,
    /// Members (witnesses included) that saw `done` and wait for the end.
    pub ready: AtomicUsize,
    /// Set right after SIGTERM: witnesses read again.
    pub sigterm_sent: AtomicBool,
    /// Bytes of every member's rounds, fences included.
    pub burst_bytes: AtomicU64,
    /// Each witness's address → the bytes of its own rounds.
    pub witnesses: Mutex<HashMap<SocketAddr, u64>>,
}

/// State shared by every thread of the test.
pub struct World {
    /// Where the relay listens.
    pub relay: SocketAddr,
    /// The relay's key.
    pub key: Key,
    /// The relay's log, as it grows.
    pub log: LogHandle,
    /// The relay's limits.
    pub limits: Limits,
    /// Set when hostile, burst, churn and stopped actors must wind down.
    pub actors_stop: AtomicBool,
    /// Set when members must stop churning and enter the final phase.
    pub final_phase: AtomicBool,
    /// Final-phase coordination.
    pub finale: Finale,
    /// Every member connection's record, once it has ended.
    pub records: Mutex<Vec<EpochRecord>>,
    /// Members mode: every member's name, key and standing.
    pub roll: Option<Roll>,
    attempts: Mutex<Vec<Attempt>>,
    next_source: AtomicU32,
    next_conn: AtomicU32,
    violations: Mutex<Vec<String>>,
}

impl World {
    /// A world around a running relay.
    pub fn new(relay: SocketAddr, key: Key, log: LogHandle, limits: Limits) -> World {
        World {
            relay,
            key,
            log,
            limits,
            actors_stop: AtomicBool::new(false),
            final_phase: AtomicBool::new(false),
            finale: Finale::default(),
            records: Mutex::new(Vec::new()),
            roll: None,
            attempts: Mutex::new(Vec::new()),
            next_source: AtomicU32::new(0),
            next_conn: AtomicU32::new(1),
            violations: Mutex::new(Vec::new()),
        }
    }

    /// A world around a members relay: `key` is no member's.
    pub fn with_roll(
        relay: SocketAddr,
        key: Key,
        log: LogHandle,
        limits: Limits,
        roll: Roll,
    ) -> World {
        World {
            roll: Some(roll),
            ..World::new(relay, key, log, limits)
        }
    }

    /// The key a new session of `client` uses and the generation it is
    /// of; `None` once the member is removed. While the test re-keys the
    /// member this waits (bounded) for the relay to have reloaded, so that
    /// a new session never holds a key the relay does not know yet.
    pub fn session_key(&self, client: u16) -> Option<(Key, u32)> {
        let Some(roll) = &self.roll else {
            return Some((self.key.clone(), 0));
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            {
                let states = roll.states.lock().expect("lock");
                let state = states.get(usize::from(client))?;
                if state.removed {
                    return None;
                }
                if state.settled || Instant::now() > deadline {
                    return Some((state.key.clone(), state.generation));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Members mode: the name the relay stamps on `client`'s messages.
    pub fn name_of(&self, client: u16) -> Option<String> {
        let roll = self.roll.as_ref()?;
        let states = roll.states.lock().expect("lock");
        states.get(usize::from(client)).map(|s| s.name.clone())
    }

    /// Notes that member connection `conn` of `client` opened from `addr`
    /// with the key of `generation`.
    pub fn register_session(&self, conn: u32, client: u16, generation: u32, addr: SocketAddr) {
        if let Some(roll) = &self.roll {
            roll.sessions.lock().expect("lock").insert(
                conn,
                Session {
                    client,
                    generation,
                    addr,
                },
            );
        }
    }

    /// Whether the test removed or re-keyed the member of connection
    /// `conn` since it opened: the relay may (must, once it reloads) close
    /// it.
    pub fn is_doomed(&self, conn: u32) -> bool {
        self.standing(conn).is_some_and(|(doomed, _)| doomed)
    }

    /// Whether `conn` is doomed and the relay has closed it and every other
    /// connection of its member's old key: nothing more comes from it.
    pub fn is_gone(&self, conn: u32) -> bool {
        self.standing(conn) == Some((true, true))
    }

    fn standing(&self, conn: u32) -> Option<(bool, bool)> {
        let roll = self.roll.as_ref()?;
        let session = *roll.sessions.lock().expect("lock").get(&conn)?;
        let states = roll.states.lock().expect("lock");
        let state = states.get(usize::from(session.client))?;
        let doomed = state.removed || state.generation != session.generation;
        Some((doomed, doomed && state.settled))
    }

    /// Connects to the relay from a loopback address no other connection of
    /// this run uses, and registers the attempt. `rcvbuf` is set before
    /// connecting, so it also bounds the window the relay sees.
    pub fn dial(&self, role: Role, rcvbuf: Option<usize>) -> Option<TcpStream> {
        let addr = SocketAddr::from((self.fresh_source(), 0));
        let connected = (|| {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            socket.bind(&SockAddr::from(addr))?;
            if let Some(size) = rcvbuf {
                socket.set_recv_buffer_size(size)?;
            }
            socket.connect_timeout(&SockAddr::from(self.relay), Duration::from_secs(10))?;
            let stream = TcpStream::from(socket);
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        })();
        match connected {
            Ok(stream) => {
                let addr = stream.local_addr().expect("bound socket has an address");
                self.attempts
                    .lock()
                    .expect("lock")
                    .push(Attempt { addr, role });
                Some(stream)
            }
            Err(e) => {
                self.violation(format!("{role:?}: cannot connect from {addr}: {e}"));
                None
            }
        }
    }

    /// 127.10.0.1, 127.10.0.2, ...: one source address per connection, so
    /// a port reused by the kernel never makes two connections look alike.
    fn fresh_source(&self) -> Ipv4Addr {
        let n = self.next_source.fetch_add(1, Ordering::Relaxed);
        // 254 usable last octets (.1 to .254), 65536 per second octet.
        let (high, low) = (n / 254, n % 254 + 1);
        Ipv4Addr::new(127, 10 + (high >> 8) as u8, high as u8, low as u8)
    }

    /// A connection number no other member connection has.
    pub fn fresh_conn(&self) -> u32 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Every connection opened so far.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().expect("lock").clone()
    }

    /// Records something that must not happen; the test fails at the end.
    pub fn violation(&self, what: String) {
        eprintln!("soak: VIOLATION: {what}");
        self.violations.lock().expect("lock").push(what);
    }

    /// The violations found so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().expect("lock").clone()
    }

    /// Whether hostile and other actors must stop.
    pub fn actors_stopping(&self) -> bool {
        self.actors_stop.load(Ordering::SeqCst)
    }

    /// Whether members are in the final phase.
    pub fn is_final(&self) -> bool {
        self.final_phase.load(Ordering::SeqCst)
    }

    /// Sleeps up to `wait`, waking early when actors must stop.
    pub fn nap(&self, wait: Duration) {
        let end = Instant::now() + wait;
        while !self.actors_stopping() {
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                return;
            };
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// A small deterministic generator for jitter and choices (the test's
/// randomness needs no cryptographic quality, and a seed in the log makes
/// a run easier to reason about).
pub struct Jitter(u64);

impl Jitter {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    /// A duration between `lo` and `hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

/// Members mode: what the test knows of each member (index = client).
#[derive(Default)]
pub struct Roll {
    /// Each member's standing, by client index.
    pub states: Mutex<Vec<Standing>>,
    /// Member connection → whose and with which key it opened.
    pub sessions: Mutex<HashMap<u32, Session>>,
}

/// One member as the test last wrote it to the members file.
#[derive(Debug, Clone)]
pub struct Standing {
    /// Its name in the file.
    pub name: String,
    /// Its current key.
    pub key: Key,
    /// How many times the test gave it a new key.
    pub generation: u32,
    /// Removed from the file.
    pub removed: bool,
    /// The relay has applied the last change: it reloaded, and closed every
    /// connection the change dooms.
    pub settled: bool,
}

/// A member connection's owner.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    /// The member's client index.
    pub client: u16,
    /// The generation of the key it opened with.
    pub generation: u32,
    /// Its local address.
    pub addr: SocketAddr,
}
