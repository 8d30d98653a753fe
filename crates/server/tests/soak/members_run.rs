//! The members phase: a `relay --members FILE` relay with members who each
//! hold their own key, come and go (several sessions each, some with two
//! devices at once), while the test removes members and gives one a new
//! key (`soak/removals.rs`), hostile clients with non-member keys and
//! removed members' old keys attack, and the same final phase and SIGTERM
//! as the shared-key run end it. The audit is the shared-key run's, with
//! the cut-off members' connections expected to close and owed nothing.

use std::time::{Duration, Instant};

use eaxchat_test_support::sys;

use super::{
    Audited, Cast, LIMITS, PRE_AUTH_BUDGET, Profile, WITNESSES, finale, limit_flags, one_at_a_time,
    wait_for, wind_down,
};
use crate::audit::{LogFacts, Tally};
use crate::procfs::RssSampler;
use crate::removals::{self, Change, Step};
use crate::util::RelayProcess;
use crate::world::{Role, World};
use crate::{hostile, member};

/// The members run's size.
#[derive(Debug, Clone)]
struct Plan {
    chaos: Duration,
    /// Members in the file.
    in_file: u16,
    /// Members that connect (clients `0..active`; the witnesses are the
    /// next two).
    active: u16,
    /// Of those, how many (from client 0) run two devices at once.
    two_devices: u16,
}

/// The changes to the members file, in order: a one-device member removed
/// (file change), a two-device member removed (SIGHUP), a two-device
/// member re-keyed (file change), then one more connected member and one
/// that never connected removed together (SIGHUP).
const STEPS: [Step; 4] = [
    Step {
        at: 0.2,
        change: Change::Remove(&[5]),
        sighup: false,
    },
    Step {
        at: 0.4,
        change: Change::Remove(&[2]),
        sighup: true,
    },
    Step {
        at: 0.6,
        change: Change::Rekey(1),
        sighup: false,
    },
    Step {
        at: 0.8,
        change: Change::Remove(&[6, 29]),
        sighup: true,
    },
];

impl Plan {
    fn for_profile(profile: &Profile) -> Plan {
        if profile.name == "long" {
            Plan {
                chaos: Duration::from_secs(90),
                in_file: 30,
                active: 20,
                two_devices: 6,
            }
        } else {
            Plan {
                chaos: Duration::from_secs(14),
                in_file: 30,
                active: 14,
                two_devices: 4,
            }
        }
    }

    fn devices(&self, client: u16) -> u16 {
        if client < self.two_devices { 2 } else { 1 }
    }

    /// Member threads still running at the final phase.
    fn readers(&self) -> u16 {
        let removed: Vec<u16> = STEPS
            .iter()
            .filter_map(|step| match step.change {
                Change::Remove(clients) => Some(clients),
                Change::Rekey(_) => None,
            })
            .flatten()
            .copied()
            .collect();
        (0..self.active)
            .filter(|c| !removed.contains(c))
            .map(|c| self.devices(c))
            .sum()
    }
}

/// [`super::rss_bound_kib`] for a members relay. Frames are no longer
/// shared between members: each read's messages are sealed once per member
/// present, all into one arena, and an arena lives while any of its seals
/// is queued. So the queued frames still lie in the oldest queue's window
/// (two windows of the stream, as with a shared key), but each of those
/// reads costs up to `present` seals of the same length. The members'
/// precomputed key states are small (a few hundred bytes each): 4 KiB per
/// member in the file covers them. Only the witnesses stop reading here
/// (no stopped consumers), plus two readers falling behind for a moment.
fn members_rss_bound_kib(present: usize, in_file: usize) -> u64 {
    let kib = |bytes: usize| bytes.div_ceil(1024) as u64;
    let line_min = 72;
    let window = LIMITS.max_queue + LIMITS.max_frame;
    let payload = 2 * kib(present * 2 * window);
    let laggards = usize::from(WITNESSES) + 2;
    let slots = laggards as u64 * kib(2 * 32 * window / line_min);
    let per_conn = LIMITS.max_clients as u64 * 4;
    let partial_lines = kib(PRE_AUTH_BUDGET + LIMITS.max_frame);
    let roster = in_file as u64 * 4;
    2 * (payload + slots + per_conn + partial_lines + roster + 64)
}

/// Members mode: removed members are cut off and refused, a re-keyed member
/// comes back under its new key, and every member who stays gets every
/// message owed to it exactly once, in order, under its own key, stamped
/// with its sender's name.
#[test]
fn members_relay_cuts_off_removed_members_and_the_others_lose_nothing() {
    let _alone = one_at_a_time();
    let profile = Profile::from_env();
    let plan = Plan::for_profile(&profile);
    let dir = removals::scratch();
    let file = dir.join("members.txt");
    let roll = removals::write_members(&file, plan.in_file);
    let flags = limit_flags();
    let mut relay =
        RelayProcess::start_members(&file, &flags.iter().map(String::as_str).collect::<Vec<_>>());
    let pid = relay.pid();
    let rss_start = sys::process_status_kib(pid, "VmRSS").expect("relay's /proc status");
    let present = usize::from(plan.active + WITNESSES);
    let bound = rss_start + members_rss_bound_kib(present, usize::from(plan.in_file));
    let sampler = RssSampler::start(pid);
    // The world's own key is no member's: hostile clients seal under it.
    let world = World::with_roll(
        relay.addr,
        relay.key.clone(),
        relay.log_handle(),
        LIMITS,
        roll,
    );
    eprintln!(
        "soak members: {:?} of chaos, {} members in the file, {} connecting ({} with two \
         devices), relay pid {pid}, RSS at start {rss_start} KiB, bound {bound} KiB",
        plan.chaos, plan.in_file, plan.active, plan.two_devices
    );
    let started = Instant::now();
    let (old_keys, hostiles, at_sigterm) = std::thread::scope(|scope| {
        let (world, profile) = (&world, &profile);
        for client in 0..plan.active {
            for _ in 0..plan.devices(client) {
                let pace = profile.pace(false);
                scope.spawn(move || member::run(world, client, pace, profile.session_ms));
            }
        }
        let hostile = scope.spawn(move || hostile::run_hostiles(world, profile.hostile_every));
        let mut old_keys = 0;
        for step in STEPS {
            let when = started + plan.chaos.mul_f64(step.at);
            while Instant::now() < when && relay.is_running() {
                std::thread::sleep(Duration::from_millis(50));
            }
            old_keys += removals::apply(world, &file, pid, step);
        }
        while started.elapsed() < plan.chaos && relay.is_running() {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !relay.is_running() {
            world.violation("the relay died during the members chaos phase".to_owned());
        }
        world
            .actors_stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let hostiles = hostile.join().expect("hostile");
        wait_for(world, "log line for every hostile connection", || {
            let facts = LogFacts::parse(&relay.log());
            world
                .attempts()
                .iter()
                .all(|a| a.role == Role::Member || facts.resolved(&a.addr))
        });
        let cast = Cast {
            readers: plan.readers(),
            first_witness: plan.active,
        };
        let at_sigterm = finale(scope, world, profile, cast, &relay);
        (old_keys, hostiles, at_sigterm)
    });

    let Audited {
        rss,
        peak,
        log,
        facts,
        records,
        tally,
    } = wind_down(&world, relay, sampler, at_sigterm.hwm_kib, bound);
    let siblings = check_members_exercised(&world, &plan, &facts, &records, &tally);
    let _ = std::fs::remove_dir_all(&dir);

    eprintln!(
        "soak members: done in {:?}: {} connections; {} member connections ({} cut off by \
         removals and the re-key) sent {} messages; {} deliveries, {} of them owed by the \
         protocol; {} pairs of one member's devices met; {} hostile connections, {} old keys \
         refused; RSS start {rss_start} KiB, peak {peak} KiB ({} samples), bound {bound} KiB; \
         at SIGTERM ~{:?} bytes queued in the relay for the witnesses",
        started.elapsed(),
        tally.attempts,
        tally.member_conns,
        tally.cut,
        tally.member_messages,
        tally.deliveries,
        tally.owed,
        siblings,
        hostiles,
        old_keys,
        rss.samples,
        at_sigterm.queued_in_relay,
    );
    let stats_line = log.lines().rev().find(|l| l.contains("] stats: "));
    eprintln!(
        "soak members: relay {}",
        stats_line.unwrap_or("logged no stats")
    );
    let violations = world.violations();
    let first: Vec<String> = violations.iter().take(30).cloned().collect();
    assert!(
        violations.is_empty(),
        "{} violations, first ones:\n{}",
        violations.len(),
        first.join("\n")
    );
}

/// Fails the run if it did not exercise what it claims to; returns how many
/// times two connections of one member exchanged `Know` (were identified
/// at once).
fn check_members_exercised(
    world: &World,
    plan: &Plan,
    facts: &LogFacts,
    records: &[member::EpochRecord],
    tally: &Tally,
) -> usize {
    let stats = facts.stats.clone().unwrap_or_default();
    for name in [
        "rejected_base64",
        "rejected_short",
        "rejected_tag",
        "members_removed",
    ] {
        if stats.get(name).copied().unwrap_or(0) == 0 {
            world.violation(format!("the members run never exercised {name}"));
        }
    }
    let client_of: std::collections::HashMap<u32, u16> =
        records.iter().map(|r| (r.conn, r.client)).collect();
    let siblings = records
        .iter()
        .flat_map(|r| r.know_at.keys().map(move |peer| (r.client, peer)))
        .filter(|(client, peer)| client_of.get(peer) == Some(client))
        .count();
    if siblings == 0 {
        world.violation("no two devices of one member were ever identified at once".to_owned());
    }
    if tally.cut == 0 {
        world.violation("no member connection was cut off by a removal".to_owned());
    }
    if tally.owed == 0 || tally.member_conns <= u64::from(plan.readers() + WITNESSES) {
        world.violation("members never came and went with messages owed".to_owned());
    }
    siblings
}
