//! The soak with everything on at once: two session relays joined through
//! a real `nats-server` and a shared-key relay, each with history,
//! presence, flood control, the message log with `--log-fsync always` and
//! the web listener. Session members on TCP and on WebSockets (as the page
//! speaks), shared-key clients on both too, churners that come and go, a
//! flooder, a member removed from the members file halfway to the middle,
//! hostile clients of every kind against every relay, and a `kill -9` of
//! one session relay at the middle, restarted on the same identity, log and
//! members file, whose clients reconnect.
//!
//! It ends asserting, beside what each phase checks on the way:
//! - 0 messages lost among live connections (`ledger.rs` defines "live"
//!   and "owed" exactly), none duplicated, reordered, forged, misnamed or
//!   leaked into the other chat;
//! - 0 panics in any relay's stderr, the killed one's included, and every
//!   relay that was not killed exits 0 on SIGTERM;
//! - each relay's RSS under a bound, and in runs of 2 minutes or more no
//!   growth from the first third to the last;
//! - the relays' counters (their last `stats:` line, and `/metrics` just
//!   before) consistent with what the clients sent and did.
//!
//! Short form (CI, about 40 s): `cargo test -p eaxchat-server --test soak
//! everything`. Long form: `SOAK_SECONDS=600 cargo test --release -p
//! eaxchat-server --test soak everything -- --nocapture`
//! (docs/operating.md, "Soak with everything on").

mod attackers;
mod ledger;
mod peer;
mod relays;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eaxchat_proto::key::Key;
use eaxchat_proto::session::StaticSecret;
use eaxchat_test_support::{RelayProcess, random_key};

use ledger::{Audit, Chat, Ledger};
use peer::{Conn, Credentials, Pace, Via};
use relays::{Address, Endpoint, Logs, Memory, MemoryOf, Nats};

/// The short form's length: CI's.
const SHORT_SECONDS: u64 = 40;
/// Bound on waiting for the last messages after the senders stop, and for a
/// removed member's sessions to close.
const SETTLE: Duration = Duration::from_secs(30);
/// A steady sender's gap: 5 messages a second, under `--rate`.
const STEADY: Duration = Duration::from_millis(200);

/// One client slot: who it is, where it connects, how it behaves. A slot
/// reconnects (as a new connection) whenever its connection ends, until
/// the senders stop.
struct Slot {
    relay: usize,
    chat: Chat,
    via: Via,
    /// A member device's secret, or `None` for the shared key.
    secret: Option<Arc<StaticSecret>>,
    pace: Pace,
    flooder: bool,
}

/// The members file: `m0`..`m9` with one device each, `leaver` with two,
/// `flooder` with one. Returns the secrets by name (leaver's twice).
fn write_members(path: &Path, skip: &str, secrets: &BTreeMap<String, Arc<StaticSecret>>) {
    let mut text = String::from("# the everything-on soak\n");
    for (name, secret) in secrets {
        let member = name.split('#').next().unwrap_or_default();
        if member != skip {
            text.push_str(&format!("{member} {}\n", secret.public_key()));
        }
    }
    fs::write(path, text).expect("members file");
}

fn slots(secrets: &BTreeMap<String, Arc<StaticSecret>>) -> Vec<Slot> {
    let steady = Pace {
        every: Some(STEADY),
        life: None,
        burst: 0,
    };
    let churn = Pace {
        every: Some(STEADY),
        life: Some((1_000, 4_000)),
        burst: 0,
    };
    let reader = Pace {
        every: None,
        life: None,
        burst: 0,
    };
    let flood = Pace {
        every: Some(Duration::from_millis(100)),
        life: Some((3_000, 6_000)),
        burst: 3 * relays::BURST,
    };
    let member = |name: &str| Some(Arc::clone(&secrets[name]));
    let mut slots = Vec::new();
    let mut session = |relay, via, name: &str, pace, flooder| {
        slots.push(Slot {
            relay,
            chat: Chat::Cluster,
            via,
            secret: member(name),
            pace,
            flooder,
        });
    };
    // Relay a (0) and relay b (1): three TCP members, one on the web port,
    // a churner, a device of the leaver; the flooder on a.
    for (relay, first) in [(0, 0), (1, 5)] {
        for i in 0..3 {
            session(relay, Via::Tcp, &format!("m{}", first + i), steady, false);
        }
        session(relay, Via::Web, &format!("m{}", first + 3), steady, false);
        session(relay, Via::Tcp, &format!("m{}", first + 4), churn, false);
        session(relay, Via::Tcp, &format!("leaver#{relay}"), reader, false);
    }
    session(0, Via::Tcp, "flooder", flood, true);
    // Relay c (2), shared key: three TCP clients, two web, a churner.
    let shared = |via, pace| Slot {
        relay: 2,
        chat: Chat::Shared,
        via,
        secret: None,
        pace,
        flooder: false,
    };
    slots.extend([
        shared(Via::Tcp, steady),
        shared(Via::Tcp, steady),
        shared(Via::Tcp, steady),
        shared(Via::Web, steady),
        shared(Via::Web, steady),
        shared(Via::Tcp, churn),
    ]);
    slots
}

/// Runs a slot's connections until the senders stop.
fn run_slot(ledger: &Ledger, address: &Address, key: &Key, slot: &Slot, seed: u64) {
    let mut rng = seed | 1;
    while !ledger.senders_stopped() {
        let Some(endpoint) = address.get() else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let credentials = match (&slot.secret, &endpoint.relay_key) {
            (Some(secret), Some(relay)) => Credentials::Session {
                secret: Arc::clone(secret),
                relay: *relay,
            },
            _ => Credentials::Shared(key.clone()),
        };
        let Some(conn) = Conn::open(slot.via, endpoint.tcp, endpoint.web, &credentials) else {
            // Down, restarting, or (the leaver, once removed) refused.
            std::thread::sleep(Duration::from_millis(300));
            continue;
        };
        let peer = ledger.admit(slot.chat, endpoint.name, conn.name.clone(), slot.flooder);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let life = slot.pace.life.map_or(Duration::MAX, |(lo, hi)| {
            Duration::from_millis(lo + rng % (hi - lo))
        });
        peer::run_connection(ledger, peer, conn, slot.pace, life);
    }
}

/// Sleeps until `at` after `start`, unless the run is over.
fn sleep_until(start: Instant, at: Duration) {
    if let Some(left) = (start + at).checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

/// The relays of the run and what the test keeps of them.
struct Relays {
    dir: tempfile::TempDir,
    nats: Nats,
    members: std::path::PathBuf,
    cluster_key: std::path::PathBuf,
    running: [Option<(RelayProcess, Memory)>; 3],
    names: [&'static str; 3],
    shared_key: Key,
    logs: Logs,
    /// RSS series of every relay process, by name.
    memory: Vec<MemoryOf>,
}

impl Relays {
    fn start(secrets: &BTreeMap<String, Arc<StaticSecret>>, addresses: &[Address; 3]) -> Relays {
        let dir = tempfile::tempdir().expect("tempdir");
        let members = dir.path().join("members.txt");
        write_members(&members, "", secrets);
        let cluster_key = dir.path().join("cluster.key");
        let nats = Nats::start();
        let shared_key = random_key();
        let mut relays = Relays {
            running: [None, None, None],
            names: ["a", "b1", "c"],
            logs: Logs::default(),
            memory: Vec::new(),
            members,
            cluster_key,
            nats,
            shared_key,
            dir,
        };
        relays.start_session(0, "a", addresses);
        relays.start_session(1, "b1", addresses);
        let log_dir = relays.dir.path().join("c-log");
        let (c, endpoint) = relays::start_shared_relay(relays.shared_key.clone(), &log_dir);
        relays.run(2, c, endpoint, addresses);
        relays
    }

    fn start_session(&mut self, index: usize, name: &'static str, addresses: &[Address; 3]) {
        let side = ["a", "b"][index];
        let (relay, endpoint) = relays::start_session_relay(
            &self.members,
            &self.dir.path().join(format!("{side}.identity")),
            &self.nats,
            &self.cluster_key,
            &self.dir.path().join(format!("{side}-log")),
            name,
        );
        self.run(index, relay, endpoint, addresses);
    }

    fn run(
        &mut self,
        index: usize,
        relay: RelayProcess,
        endpoint: Endpoint,
        addresses: &[Address; 3],
    ) {
        let memory = Memory::sample(relay.pid());
        self.names[index] = endpoint.name;
        addresses[index].set(Some(endpoint));
        self.running[index] = Some((relay, memory));
    }

    /// Takes relay `index` out of the address book and stops it: SIGKILL,
    /// or SIGTERM (returning its exit status and log).
    fn stop(
        &mut self,
        index: usize,
        kill: bool,
        addresses: &[Address; 3],
    ) -> Option<(std::process::ExitStatus, String)> {
        let name = self.names[index];
        addresses[index].set(None);
        let (relay, memory) = self.running[index].take()?;
        let pid = relay.pid();
        let stopped = if kill {
            let log = relay.log_handle();
            let status = relay.kill_hard();
            (status, log.since(0).0)
        } else {
            relay.terminate()
        };
        self.memory.push((name, u64::from(pid), memory.finish()));
        self.logs.keep(name, stopped.1.clone());
        Some(stopped)
    }
}

/// Every feature at once; see the module's doc.
#[test]
fn everything_at_once_loses_nothing_among_live_members() {
    let _alone = crate::one_at_a_time();
    let seconds = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SHORT_SECONDS);
    let run = Duration::from_secs(seconds);
    let mut secrets = BTreeMap::new();
    let mut names: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    names.extend(["leaver#0", "leaver#1", "flooder"].map(str::to_owned));
    for name in names {
        let secret = StaticSecret::generate().expect("a key pair");
        secrets.insert(name, Arc::new(secret));
    }
    let addresses: [Address; 3] = Default::default();
    let mut relays = Relays::start(&secrets, &addresses);
    let shared_key = relays.shared_key.clone();
    let slots = slots(&secrets);
    let ledger = Ledger::default();
    let start = Instant::now();
    eprintln!("soak everything: {seconds} s, {} client slots", slots.len());
    let mut killed_at = None;
    let hostile = std::thread::scope(|scope| {
        for (i, slot) in slots.iter().enumerate() {
            let (ledger, address, key) = (&ledger, &addresses[slot.relay], &shared_key);
            scope.spawn(move || run_slot(ledger, address, key, slot, i as u64 * 7919 + 1));
        }
        let attackers: Vec<_> = [(0, Chat::Cluster), (1, Chat::Cluster), (2, Chat::Shared)]
            .into_iter()
            .map(|(index, chat)| {
                let (ledger, address) = (&ledger, &addresses[index]);
                scope.spawn(move || attackers::run(ledger, address, chat, index as u64 + 17))
            })
            .collect();

        // At 30%: the leaver leaves the members file; both its sessions
        // close on the relays' reload.
        sleep_until(start, run * 3 / 10);
        write_members(&relays.members, "leaver", &secrets);
        let removal = Instant::now();
        while !ledger.open_named("leaver").is_empty() && removal.elapsed() < SETTLE {
            std::thread::sleep(Duration::from_millis(50));
        }
        let open = ledger.open_named("leaver");
        if !open.is_empty() {
            ledger.violation(format!("the removed member still has {open:?} open"));
        }
        eprintln!("soak everything: removal took {:?}", removal.elapsed());

        // At 50%: kill -9 of relay b, restarted on its identity and log.
        sleep_until(start, run / 2);
        relays.stop(1, true, &addresses);
        killed_at = Some(Instant::now());
        relays.start_session(1, "b2", &addresses);
        eprintln!(
            "soak everything: b killed and back in {:?}",
            killed_at.map(|t| t.elapsed())
        );

        sleep_until(start, run);
        ledger.stop_senders();
        let settle = Instant::now();
        while ledger.missing() > 0 && settle.elapsed() < SETTLE {
            std::thread::sleep(Duration::from_millis(200));
        }
        ledger.stop();
        attackers
            .into_iter()
            .map(|a| a.join().expect("attacker"))
            .collect::<Vec<_>>()
    });
    let audit = ledger.audit();
    let killed_at = killed_at.expect("b was killed");
    check_end(&ledger, &mut relays, &addresses, &audit, killed_at);
    eprintln!(
        "soak everything: {audit:?}; hostile connections by kind {:?}: {hostile:?}",
        attackers::kinds()
    );
    let violations = ledger.violations();
    assert!(
        violations.is_empty(),
        "{} violations, the first:\n{}",
        violations.len(),
        violations
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Stops the relays with SIGTERM and checks exits, panics, memory and
/// counters.
fn check_end(
    ledger: &Ledger,
    relays: &mut Relays,
    addresses: &[Address; 3],
    audit: &Audit,
    killed_at: Instant,
) {
    if audit.owed == 0 || audit.missing > 0 {
        ledger.violation(format!(
            "{} of {} owed messages lost",
            audit.missing, audit.owed
        ));
    }
    if audit.presence_seen == 0 {
        ledger.violation("no client ever saw a member join".to_owned());
    }
    let history = ledger.history_received_on("b2", killed_at);
    if history == 0 {
        ledger.violation("b2 gave no history from before the kill (its log)".to_owned());
    }
    let metrics: Vec<_> = (0..3)
        .map(|i| {
            let web = addresses[i].get().and_then(|e| e.web);
            web.map(relays::metrics).unwrap_or_default()
        })
        .collect();
    let sent = ledger.sent_by_relay();
    let admitted = ledger.admitted_by_relay();
    let mut flood_refused = 0;
    for (i, metrics) in metrics.iter().enumerate() {
        let name = relays.names[i];
        let Some((status, log)) = relays.stop(i, false, addresses) else {
            continue;
        };
        if !status.success() {
            ledger.violation(format!("relay {name} exited with {status} on SIGTERM"));
        }
        let stats = relays::last_stats(&log);
        let get = |k: &str| stats.get(k).copied().unwrap_or(0);
        eprintln!("soak everything: relay {name}: {stats:?}");
        flood_refused += get("flood_refused");
        let sent = sent.get(name).copied().unwrap_or(0);
        if get("frames_in") + get("flood_refused") != sent {
            ledger.violation(format!(
                "relay {name}: frames_in {} + flood_refused {} != {sent} messages sent to it",
                get("frames_in"),
                get("flood_refused")
            ));
        }
        if metrics.get("frames_in_total").copied() != Some(get("frames_in")) {
            ledger.violation(format!(
                "relay {name}: /metrics frames_in_total {:?} != stats frames_in {}",
                metrics.get("frames_in_total"),
                get("frames_in")
            ));
        }
        let admitted = admitted.get(name).copied().unwrap_or(0);
        let (counter, floor) = if name == "c" {
            ("commands", admitted)
        } else {
            ("handshakes_accepted", admitted)
        };
        if get(counter) < floor {
            ledger.violation(format!(
                "relay {name}: {counter} {} < {floor} connections admitted",
                get(counter)
            ));
        }
        let must_see: &[&str] = if name == "c" {
            &["rejected_tag", "rejected_too_long", "rejected_replay"]
        } else {
            &["handshakes_refused_bad_hello", "cluster_in"]
        };
        for counter in must_see {
            if get(counter) == 0 {
                ledger.violation(format!("relay {name}: the run never exercised {counter}"));
            }
        }
        if name == "a" && get("members_removed") == 0 {
            ledger.violation("relay a never counted the removal".to_owned());
        }
    }
    if flood_refused == 0 {
        ledger.violation("flood control never refused the flooder".to_owned());
    }
    for (name, log) in relays.logs.0.lock().expect("lock").iter() {
        if log.contains("panicked") {
            ledger.violation(format!("relay {name} panicked"));
        }
    }
    check_memory(ledger, &relays.memory);
}

/// RSS bound: what the run's connections may hold queued (each at most
/// `--max-queue` plus a line) twice over for the allocator, plus 16 MiB for
/// the relay's fixed part beyond its start (the NATS thread's runtime and
/// buffers, the log writer's channel, history): a leak of a few bytes per
/// message passes this in a long run only if it is tiny, which the growth
/// check catches.
fn check_memory(ledger: &Ledger, memory: &[MemoryOf]) {
    const CONNECTIONS: u64 = 40;
    let queued_kib = CONNECTIONS * (relays::MAX_QUEUE + relays::MAX_FRAME) as u64 / 1024;
    for (name, pid, series) in memory {
        let Some(&(_, first)) = series.first() else {
            ledger.violation(format!("relay {name} (pid {pid}): no RSS samples"));
            continue;
        };
        let peak = series.iter().map(|&(_, kib)| kib).max().unwrap_or(0);
        let bound = first + 2 * queued_kib + 16 * 1024;
        eprintln!(
            "soak everything: relay {name} (pid {pid}) RSS start {first} KiB, peak {peak} KiB, \
             bound {bound} KiB, {} samples",
            series.len()
        );
        if peak > bound {
            ledger.violation(format!(
                "relay {name}: RSS peak {peak} KiB over {bound} KiB"
            ));
        }
        let span = series.last().map_or(Duration::ZERO, |&(t, _)| t);
        if span >= Duration::from_secs(120) {
            let third = span / 3;
            let early = series
                .iter()
                .filter(|(t, _)| *t <= third)
                .map(|&(_, k)| k)
                .max();
            let late = series
                .iter()
                .filter(|(t, _)| *t >= 2 * third)
                .map(|&(_, k)| k)
                .max();
            if let (Some(early), Some(late)) = (early, late) {
                eprintln!(
                    "soak everything: relay {name} RSS peak first third {early} KiB, last third {late} KiB"
                );
                if late > early + early / 10 + 8 * 1024 {
                    ledger.violation(format!(
                        "relay {name}: RSS grew from {early} KiB (first third) to {late} KiB (last)"
                    ));
                }
            }
        }
    }
}
