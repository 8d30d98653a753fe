//! Soak and chaos test: the real relay binary under steady load from
//! well-behaved clients that come and go, while hostile and broken clients
//! attack it, bursts of connections push it past `--max-clients`, and
//! consumers stop reading. Then a final phase and SIGTERM.
//!
//! At the end it checks that every message a well-behaved client owed
//! another arrived exactly once and in order, that nothing else ever reached
//! them, that every other connection was closed with the reason the relay
//! must log, that the relay's counters agree with what the test did, that
//! its memory stayed under the bound derived in [`rss_bound_kib`], and that
//! SIGTERM delivered what was still queued and exited 0.
//!
//! Short profile (CI, ~45 s): `cargo test --test soak`.
//! Long profile (~5 min, more clients):
//! `EAXCHAT_SOAK=long cargo test --release --test soak -- --nocapture`.
//! `EAXCHAT_SOAK_SECS=N` overrides the length of the chaos phase.
//!
//! The protocol that makes "owed" exact is described in `soak/member.rs`.
//!
//! The third run, `everything`, turns every feature on at once (session
//! relays clustered over NATS, a shared-key relay, WebSockets, the log,
//! flood control, a removal and a `kill -9`); it is described in
//! `soak/everything/mod.rs` and sized by `SOAK_SECONDS`.

// A test or bench binary exports nothing: `pub` marks what its modules share.
#![allow(unreachable_pub)]

// The helpers every test shares, one level up.
use eaxchat_test_support as util;

mod audit;
mod everything;
mod hostile;
mod member;
mod members_run;
mod procfs;
mod removals;
mod wire;
mod world;

use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use audit::LogFacts;
use eaxchat_test_support::sys;
use procfs::{RssSampler, RssSeen, tcp_queued};
use util::RelayProcess;
use world::{Limits, World};

/// The relay's limits for the run. `--max-queue` is small, so stopped
/// consumers are dropped within seconds, but not smaller than what one loop
/// turn of the relay can queue for a healthy reader: the relay reads up to
/// 4 × 64 KiB from each sender per turn and checks the limit as it queues,
/// before that turn's writes, so after the relay itself stalls (a loaded
/// machine) one turn can queue 256 KiB per backlogged sender. 1 MiB leaves
/// room for four of them; with 256 KiB, readers were dropped under load.
const LIMITS: Limits = Limits {
    max_frame: 16 * 1024,
    max_clients: 200,
    max_queue: 1024 * 1024,
};
/// `--pre-auth-budget` for the run: two pre-auth flooders' lines. A third
/// at once closes the one holding the most.
const PRE_AUTH_BUDGET: usize = 2 * 16 * 1024;
/// `--first-frame-timeout` for the run, in seconds: short, so flooders
/// that fit in the budget are closed within the hostile threads' wait.
const FIRST_FRAME_TIMEOUT_SECS: u64 = 3;
/// Late joiners of the final phase whose share the relay must still hold at
/// SIGTERM.
const WITNESSES: u16 = 2;
/// Bound on each wait of the orchestration.
const STEP_WAIT: Duration = Duration::from_secs(60);
const SHUTDOWN_GRACE_MS: u64 = 5000;

/// How hard and how long the run pushes.
#[derive(Debug, Clone)]
struct Profile {
    name: &'static str,
    chaos: Duration,
    members: u16,
    /// Of the members, how many send bulk data.
    bulk: u16,
    data_every: Duration,
    bulk_every: Duration,
    session_ms: (u64, u64),
    hostile_threads: usize,
    hostile_every: Duration,
    churn_every: Duration,
    burst_every: Duration,
    burst_hold: Duration,
    stopped_threads: usize,
}

impl Profile {
    fn from_env() -> Profile {
        let long = std::env::var("EAXCHAT_SOAK").is_ok_and(|v| v == "long");
        let mut profile = if long {
            Profile {
                name: "long",
                chaos: Duration::from_secs(270),
                members: 20,
                bulk: 2,
                data_every: Duration::from_millis(40),
                bulk_every: Duration::from_millis(10),
                session_ms: (2_000, 20_000),
                hostile_threads: 2,
                hostile_every: Duration::from_millis(10),
                churn_every: Duration::from_millis(10),
                burst_every: Duration::from_secs(10),
                burst_hold: Duration::from_millis(500),
                stopped_threads: 2,
            }
        } else {
            Profile {
                name: "short",
                chaos: Duration::from_secs(25),
                members: 8,
                bulk: 2,
                data_every: Duration::from_millis(25),
                bulk_every: Duration::from_millis(10),
                session_ms: (1_000, 8_000),
                hostile_threads: 1,
                hostile_every: Duration::from_millis(15),
                churn_every: Duration::from_millis(20),
                burst_every: Duration::from_secs(6),
                burst_hold: Duration::from_millis(400),
                stopped_threads: 2,
            }
        };
        if let Some(secs) = std::env::var("EAXCHAT_SOAK_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            profile.chaos = Duration::from_secs(secs);
        }
        profile
    }

    fn pace(&self, bulk: bool) -> member::Pace {
        member::Pace {
            every: if bulk {
                self.bulk_every
            } else {
                self.data_every
            },
            bulk,
        }
    }
}

/// The most memory the relay may use beyond its idle start, in KiB, and
/// why. Frames are shared, so what matters is not max-clients × max-queue
/// but how much distinct data can be queued, and how many connections hold
/// references to it:
///
/// - Frame payload. Each queue holds a suffix of the relayed stream (minus
///   the connection's own frames). All queued frames therefore lie in the
///   oldest queue's window, which holds at most max-queue + one line of
///   other senders' frames; the frames it lacks (its own) are in another
///   queue, bounded the same way: 2 × (max-queue + max-frame) of lines.
///   Each line is one allocation plus a shared header (≤ 64 B together)
///   and is at least 72 B here, so ×2 covers the overhead.
/// - Queue slots: a reference is 32 B in a `VecDeque` that may be twice as
///   long as it is full. A connection that stops reading can hold
///   (max-queue + max-frame) / 72 of them before it is dropped. Only the
///   stopped consumers and the paused witnesses stop reading in this test
///   (all other clients read continuously, so their queues hold only what
///   arrived since their last read); allow two more for readers that fall
///   behind for a moment.
/// - Per connection: its slab entry and small kept buffers (a drained
///   queue keeps ≤ 64 slots, a line buffer ≤ 256 B): ≤ 4 KiB each, for
///   every connection max-clients allows.
/// - Unfinished lines: only hostile connections, none of them
///   authenticated, send long ones, and together they hold at most the
///   pre-auth budget plus one read past it (the read that trips it)
///   however many of them there are.
/// - The 64 KiB read buffer, and the allocator: glibc keeps freed memory
///   for reuse rather than returning it, so the dynamic part is doubled.
fn rss_bound_kib(profile: &Profile) -> u64 {
    let kib = |bytes: usize| bytes.div_ceil(1024) as u64;
    let line_min = 72;
    let window = LIMITS.max_queue + LIMITS.max_frame;
    let payload = 2 * kib(2 * window);
    let laggards = profile.stopped_threads + usize::from(WITNESSES) + 2;
    let slots = laggards as u64 * kib(2 * 32 * window / line_min);
    let per_conn = LIMITS.max_clients as u64 * 4;
    let partial_lines = kib(PRE_AUTH_BUDGET + LIMITS.max_frame);
    2 * (payload + slots + per_conn + partial_lines + 64)
}

/// Waits (bounded by [`STEP_WAIT`]) for `done`; records a violation if it
/// never comes.
fn wait_for(world: &World, what: &str, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + STEP_WAIT;
    while !done() {
        if Instant::now() > deadline {
            world.violation(format!("orchestration: no {what} within {STEP_WAIT:?}"));
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Most rounds of the final burst: far more than the kernel's buffers for
/// one connection can absorb (4 MiB of send buffer at most here).
const MAX_ROUNDS: u32 = 400;

/// Runs rounds of the final burst until each paused witness has at least
/// one round's worth queued inside the relay itself (not just in kernel
/// buffers), so that SIGTERM has something to drain. Returns the estimate
/// for each witness.
///
/// The estimate is what a witness is owed since it paused minus what
/// `/proc/net/tcp` shows in the two kernel queues of its connection; data
/// from before the pause that was still in flight makes it an underestimate,
/// so the relay's queue is at most this plus one round when the rounds
/// stop: far under `--max-queue`.
fn burst_until_queued(world: &World, cast: Cast) -> Vec<u64> {
    let finale = &world.finale;
    let target = member::round_bytes(&world.limits) as u64;
    let readers = usize::from(cast.readers);
    for round in 1..=MAX_ROUNDS {
        finale.round.store(round, Ordering::SeqCst);
        let fenced = || finale.fenced.load(Ordering::SeqCst) == readers * round as usize;
        if !wait_for(world, "every fence of the round", fenced) {
            return Vec::new();
        }
        let total = finale.burst_bytes.load(Ordering::SeqCst);
        let queued: Vec<u64> = finale
            .witnesses
            .lock()
            .expect("lock")
            .iter()
            .map(|(addr, own)| {
                let (witness, relay_side) = tcp_queued(*addr, world.relay);
                let in_kernel = witness.unwrap_or(0) + relay_side.unwrap_or(0);
                (total - own).saturating_sub(in_kernel)
            })
            .collect();
        if queued.len() == usize::from(WITNESSES) && queued.iter().all(|&q| q >= target) {
            eprintln!(
                "soak: after {round} rounds the relay holds ~{queued:?} bytes for the paused witnesses"
            );
            return queued;
        }
    }
    world.violation(format!(
        "{MAX_ROUNDS} rounds never filled the witnesses' kernel buffers"
    ));
    Vec::new()
}

/// Who takes part in the final phase: the member sessions that read (one
/// per member thread still running) and the client index of the first
/// witness.
#[derive(Debug, Clone, Copy)]
struct Cast {
    readers: u16,
    first_witness: u16,
}

/// Counts of what the actors did, for the report.
#[derive(Debug, Default)]
struct Actors {
    hostile: usize,
    churn: usize,
    bursts: u32,
    stopped_dropped: usize,
}

/// What the final phase measured just before SIGTERM.
#[derive(Debug, Default)]
struct AtSigterm {
    /// The relay's VmHWM, KiB.
    hwm_kib: u64,
    /// Estimated bytes queued inside the relay for each witness.
    queued_in_relay: Vec<u64>,
}

/// The whole run: load, faults and hostile clients, then the final phase,
/// SIGTERM and the audit.
#[test]
fn relay_survives_load_faults_and_hostile_clients_and_loses_nothing() {
    let _alone = one_at_a_time();
    let profile = Profile::from_env();
    let mut relay = start_relay();
    let pid = relay.pid();
    let rss_start = sys::process_status_kib(pid, "VmRSS").expect("relay's /proc status");
    let bound = rss_start + rss_bound_kib(&profile);
    let sampler = RssSampler::start(pid);
    let world = World::new(relay.addr, relay.key.clone(), relay.log_handle(), LIMITS);
    eprintln!(
        "soak: {} profile: {:?} of chaos, {} members, relay pid {pid}, \
         RSS at start {rss_start} KiB, bound {bound} KiB",
        profile.name, profile.chaos, profile.members
    );
    let started = Instant::now();
    let (actors, at_sigterm) = std::thread::scope(|scope| {
        for client in 0..profile.members {
            let (world, profile) = (&world, &profile);
            let pace = profile.pace(client < profile.bulk);
            scope.spawn(move || member::run(world, client, pace, profile.session_ms));
        }
        let actors = chaos(scope, &world, &profile, &mut relay);
        let cast = Cast {
            readers: profile.members,
            first_witness: profile.members,
        };
        let at_sigterm = finale(scope, &world, &profile, cast, &relay);
        (actors, at_sigterm)
    });

    let Audited {
        rss,
        peak,
        log,
        facts,
        tally,
        ..
    } = wind_down(&world, relay, sampler, at_sigterm.hwm_kib, bound);
    check_exercised(&world, &profile, &facts, &tally);

    eprintln!(
        "soak: {} profile done in {:?}: {} connections ({} admitted, {} refused); \
         {} member connections sent {} messages; {} deliveries, {} of them owed by the protocol; \
         {} hostile connections, {} churn, {} bursts, {} stopped consumers dropped; \
         RSS start {rss_start} KiB, peak {peak} KiB ({} samples), bound {bound} KiB; \
         at SIGTERM ~{:?} bytes queued in the relay for the witnesses",
        profile.name,
        started.elapsed(),
        tally.attempts,
        tally.admitted,
        tally.refused,
        tally.member_conns,
        tally.member_messages,
        tally.deliveries,
        tally.owed,
        actors.hostile,
        actors.churn,
        actors.bursts,
        actors.stopped_dropped,
        rss.samples,
        at_sigterm.queued_in_relay,
    );
    eprintln!("soak: by role (admitted, refused): {:?}", tally.by_role);
    let stats_line = log.lines().rev().find(|l| l.contains("] stats: "));
    eprintln!("soak: relay {}", stats_line.unwrap_or("logged no stats"));
    let violations = world.violations();
    let first: Vec<String> = violations.iter().take(30).cloned().collect();
    assert!(
        violations.is_empty(),
        "{} violations, first ones:\n{}",
        violations.len(),
        first.join("\n")
    );
}

/// Runs the soak tests one after the other: each measures the relay's
/// memory and needs the machine's cores to itself.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ALONE: Mutex<()> = Mutex::new(());
    ALONE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The relay's flags for the test's limits.
fn limit_flags() -> Vec<String> {
    let values = [
        LIMITS.max_frame.to_string(),
        LIMITS.max_clients.to_string(),
        LIMITS.max_queue.to_string(),
        SHUTDOWN_GRACE_MS.to_string(),
        PRE_AUTH_BUDGET.to_string(),
        FIRST_FRAME_TIMEOUT_SECS.to_string(),
    ];
    let names = [
        "--max-frame",
        "--max-clients",
        "--max-queue",
        "--shutdown-grace-ms",
        "--pre-auth-budget",
        "--first-frame-timeout",
    ];
    names
        .iter()
        .zip(values)
        .flat_map(|(name, value)| [name.to_string(), value])
        .collect()
}

/// Starts the relay with the test's limits.
fn start_relay() -> RelayProcess {
    let flags = limit_flags();
    RelayProcess::start(&flags.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The chaos phase: hostile clients, churn, bursts and stopped consumers
/// alongside the members, for the profile's length; then the actors wind
/// down and the relay finishes with their connections.
fn chaos<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    world: &'scope World,
    profile: &'scope Profile,
    relay: &mut RelayProcess,
) -> Actors {
    let hostiles: Vec<_> = (0..profile.hostile_threads)
        .map(|_| scope.spawn(move || hostile::run_hostiles(world, profile.hostile_every)))
        .collect();
    let churn = scope.spawn(move || hostile::run_churn(world, profile.churn_every));
    let bursts =
        scope.spawn(move || hostile::run_bursts(world, profile.burst_every, profile.burst_hold));
    let stopped: Vec<_> = (0..profile.stopped_threads)
        .map(|i| scope.spawn(move || hostile::run_stopped(world, i as u64 + 100)))
        .collect();

    let started = Instant::now();
    let mut next_progress = started + Duration::from_secs(30);
    while started.elapsed() < profile.chaos {
        if !relay.is_running() {
            world.violation("the relay died during the chaos phase".to_owned());
            break;
        }
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(30);
            eprintln!(
                "soak: {:?} in: {} connections opened, {} member sessions ended, \
                 {} violations, relay RSS {:?} KiB",
                started.elapsed(),
                world.attempts().len(),
                world.records.lock().expect("lock").len(),
                world.violations().len(),
                sys::process_status_kib(relay.pid(), "VmRSS").ok(),
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    world.actors_stop.store(true, Ordering::SeqCst);
    let actors = Actors {
        hostile: hostiles
            .into_iter()
            .map(|h| h.join().expect("hostile"))
            .sum(),
        churn: churn.join().expect("churn"),
        bursts: bursts.join().expect("bursts"),
        stopped_dropped: stopped
            .into_iter()
            .map(|h| h.join().expect("stopped"))
            .sum(),
    };
    // Members are still connected; every other connection must be resolved
    // in the log before the final phase, which has only members.
    wait_for(world, "log line for every actor connection", || {
        let facts = LogFacts::parse(&relay.log());
        world
            .attempts()
            .iter()
            .all(|a| a.role == world::Role::Member || facts.resolved(&a.addr))
    });
    actors
}

/// The final phase (see `soak/member.rs`): every member connected, two
/// fresh witnesses join, everyone exchanges `Know`, witnesses stop reading,
/// rounds of a last burst until the relay itself holds data for them; then
/// SIGTERM.
fn finale<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    world: &'scope World,
    profile: &'scope Profile,
    cast: Cast,
    relay: &RelayProcess,
) -> AtSigterm {
    world.final_phase.store(true, Ordering::SeqCst);
    for w in 0..WITNESSES {
        let client = cast.first_witness + w;
        scope.spawn(move || member::run_witness(world, client, profile.pace(false)));
    }
    let finale = &world.finale;
    let everyone = usize::from(cast.readers + WITNESSES);
    let mut at_sigterm = AtSigterm::default();
    let full = wait_for(world, "full roster", || {
        finale.roster.lock().expect("lock").len() == everyone
    });
    finale.roster_complete.store(full, Ordering::SeqCst);
    let passed = || finale.passed.load(Ordering::SeqCst) == everyone;
    if full && wait_for(world, "barrier", passed) {
        finale.pause.store(true, Ordering::SeqCst);
        let paused = || finale.paused.load(Ordering::SeqCst) == usize::from(WITNESSES);
        if wait_for(world, "witnesses pausing", paused) {
            at_sigterm.queued_in_relay = burst_until_queued(world, cast);
        }
    }
    finale.done.store(true, Ordering::SeqCst);
    wait_for(world, "every member ready for SIGTERM", || {
        finale.ready.load(Ordering::SeqCst) == everyone
    });
    at_sigterm.hwm_kib = sys::process_status_kib(relay.pid(), "VmHWM").unwrap_or(0);
    relay.send_sigterm();
    finale.sigterm_sent.store(true, Ordering::SeqCst);
    at_sigterm
}

/// Fails the run if it did not exercise what it claims to.
fn check_exercised(world: &World, profile: &Profile, facts: &LogFacts, tally: &audit::Tally) {
    let stats = facts.stats.clone().unwrap_or_default();
    for name in [
        "rejected_base64",
        "rejected_short",
        "rejected_tag",
        "rejected_too_long",
        "clients_refused",
        "slow_consumers",
    ] {
        if stats.get(name).copied().unwrap_or(0) == 0 {
            world.violation(format!("the run never exercised {name}"));
        }
    }
    if tally.owed == 0 || tally.member_conns <= u64::from(profile.members + WITNESSES) {
        world.violation("members never came and went with messages owed".to_owned());
    }
}

/// After the finale, in either run: waits (bounded) for the relay to exit
/// after SIGTERM and for its last stats line; records a violation for a
/// failed exit, a panic, or RSS over `bound`; then audits connections,
/// deliveries and counters against the log.
fn wind_down(
    world: &World,
    relay: RelayProcess,
    sampler: RssSampler,
    hwm_at_sigterm_kib: u64,
    bound: u64,
) -> Audited {
    let (status, _) = relay.wait_exit(Duration::from_millis(SHUTDOWN_GRACE_MS) + STEP_WAIT);
    let rss = sampler.finish();
    // The stderr reader may lag the exit by a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut log = world.log.since(0).0;
    while !log.contains("] stats: ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        log = world.log.since(0).0;
    }
    if !status.success() {
        world.violation(format!("relay exited with {status} after SIGTERM"));
    }
    if log.contains("panicked") {
        world.violation("the relay panicked".to_owned());
    }
    let peak = rss.max_kib.max(hwm_at_sigterm_kib);
    if peak > bound {
        world.violation(format!(
            "relay RSS peaked at {peak} KiB, over the bound of {bound} KiB"
        ));
    }
    let facts = LogFacts::parse(&log);
    let records = std::mem::take(&mut *world.records.lock().expect("lock"));
    let mut tally = audit::check_connections(world, &facts, &records);
    audit::check_deliveries(world, &records, &mut tally);
    audit::check_counters(world, &facts, &tally);
    Audited {
        rss,
        peak,
        log,
        facts,
        records,
        tally,
    }
}

/// What [`wind_down`] found.
struct Audited {
    rss: RssSeen,
    /// The highest RSS seen, sampled or at SIGTERM, in KiB.
    peak: u64,
    /// The relay's whole log.
    log: String,
    facts: LogFacts,
    records: Vec<member::EpochRecord>,
    tally: audit::Tally,
}
