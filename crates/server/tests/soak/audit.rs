//! The audit at the end of a run: what the relay logged for every
//! connection the test opened, whether its counters agree with what the
//! test did, and whether every member received exactly what it had to.
//!
//! Every connection comes from its own loopback address, so each of the
//! relay's `connected from`, `refused` and `closed:` lines belongs to
//! exactly one connection the test knows the purpose of.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use crate::hostile::{BURST_EXTRA, SLOW_CONSUMER, left_reason_ok, pre_auth_counter};
use crate::member::{End, EpochRecord};
use crate::world::{Attempt, Role, World};

/// What the relay's log says about connections, and its last stats line.
#[derive(Debug, Default)]
pub struct LogFacts {
    /// Address → how many times it was admitted.
    pub admitted: HashMap<SocketAddr, usize>,
    /// Address → how many times it was refused.
    pub refused: HashMap<SocketAddr, usize>,
    /// Address → the close reasons logged for it.
    pub closed: HashMap<SocketAddr, Vec<String>>,
    /// The last `stats:` line, as counter → value.
    pub stats: Option<BTreeMap<String, u64>>,
}

impl LogFacts {
    /// Reads the relay's log (env_logger lines: `[time LEVEL target] message`).
    pub fn parse(log: &str) -> LogFacts {
        let mut facts = LogFacts::default();
        for line in log.lines() {
            let Some((_, message)) = line.split_once("] ") else {
                continue;
            };
            if let Some(rest) = message.strip_prefix("stats: ") {
                let counters = rest
                    .split_whitespace()
                    .filter_map(|pair| pair.split_once('='))
                    .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                    .collect();
                facts.stats = Some(counters);
            } else if let Some(rest) = message.strip_prefix("refused ") {
                if let Some(addr) = rest.split(": ").next().and_then(|a| a.parse().ok()) {
                    *facts.refused.entry(addr).or_default() += 1;
                }
            } else if let Some((_, addr)) = message.split_once(": connected from ") {
                if let Ok(addr) = addr.trim().parse() {
                    *facts.admitted.entry(addr).or_default() += 1;
                }
            } else if let Some((head, reason)) = message.split_once("): closed: ")
                && let Some(addr) = head.split_once(" (").and_then(|(_, a)| a.parse().ok())
            {
                facts
                    .closed
                    .entry(addr)
                    .or_default()
                    .push(reason.to_owned());
            }
        }
        facts
    }

    /// Whether the relay has finished with `addr`: refused it, or closed it.
    pub fn resolved(&self, addr: &SocketAddr) -> bool {
        self.refused.contains_key(addr) || self.closed.contains_key(addr)
    }
}

/// What the test did, counted from its own records and the per-connection
/// log lines; compared with the relay's counters.
#[derive(Debug, Default)]
pub struct Tally {
    /// Connections the test opened.
    pub attempts: u64,
    /// Of those, admitted.
    pub admitted: u64,
    /// Of those, refused.
    pub refused: u64,
    /// Admitted connections by role, for the report.
    pub by_role: BTreeMap<String, (u64, u64)>,
    /// Counter name → value the relay must report.
    pub expected: BTreeMap<&'static str, u64>,
    /// Member connections (admitted).
    pub member_conns: u64,
    /// Messages members sent on admitted connections.
    pub member_messages: u64,
    /// Messages members received.
    pub deliveries: u64,
    /// Deliveries the protocol proved were owed, all checked.
    pub owed: u64,
    /// How far `frames_in` may exceed its expected value: messages cut-off
    /// members wrote that the relay may or may not have read before it
    /// closed them.
    pub frames_in_slack: u64,
    /// Members mode: member connections the relay closed because the test
    /// removed or re-keyed their member.
    pub cut: u64,
}

/// Checks every connection's fate against its role and counts what the
/// relay's counters must say.
pub fn check_connections(world: &World, facts: &LogFacts, records: &[EpochRecord]) -> Tally {
    let mut tally = Tally::default();
    for name in [
        "rejected_base64",
        "rejected_short",
        "rejected_tag",
        "rejected_too_long",
        "slow_consumers",
        "frames_in",
        "pre_auth_over_budget",
        "first_frame_timeouts",
        "refused_per_address",
    ] {
        tally.expected.insert(name, 0);
    }
    let members = world.roll.is_some();
    if members {
        tally.expected.insert("members_removed", 0);
    }
    let by_addr: HashMap<SocketAddr, &EpochRecord> = records.iter().map(|r| (r.addr, r)).collect();
    let attempts = world.attempts();
    let processed = processed_by_relay(records);
    let mut burst_refused: BTreeMap<u32, u64> = BTreeMap::new();
    for Attempt { addr, role } in &attempts {
        tally.attempts += 1;
        let admitted = facts.admitted.get(addr).copied().unwrap_or(0);
        let refused = facts.refused.get(addr).copied().unwrap_or(0);
        let closes = facts.closed.get(addr).map(Vec::as_slice).unwrap_or(&[]);
        if admitted + refused != 1 || closes.len() != admitted {
            world.violation(format!(
                "{role:?} {addr}: admitted {admitted}, refused {refused}, closed {closes:?}"
            ));
            continue;
        }
        let role_name = match role {
            Role::Hostile(kind) => format!("hostile {kind:?}"),
            Role::Burst(_) => "burst".to_owned(),
            other => format!("{other:?}").to_lowercase(),
        };
        let entry = tally.by_role.entry(role_name).or_default();
        if refused == 1 {
            entry.1 += 1;
            tally.refused += 1;
            if let Role::Burst(n) = role {
                *burst_refused.entry(*n).or_default() += 1;
            }
            if let (Role::Member, Some(record)) = (role, by_addr.get(addr))
                && record.end != End::ClosedAtOnce
            {
                world.violation(format!(
                    "member {addr} was refused but ended {:?}",
                    record.end
                ));
            }
            continue;
        }
        entry.0 += 1;
        tally.admitted += 1;
        let reason = closes[0].as_str();
        let ok = match role {
            Role::Member => check_member_close(
                world,
                *addr,
                by_addr.get(addr),
                reason,
                &processed,
                &mut tally,
            ),
            Role::Hostile(kind) if let Some(counter) = pre_auth_counter(reason) => {
                *tally.expected.entry(counter).or_default() += 1;
                kind.holds_unfinished_bytes()
            }
            Role::Hostile(kind) => {
                if let Some(counter) = kind.counter_in(members) {
                    *tally.expected.entry(counter).or_default() += 1;
                }
                kind.reason_in(members)
                    .map_or(left_reason_ok(reason), |want| reason == want)
            }
            // Burst connections read what arrives: never slow consumers.
            Role::Burst(_) => reason != SLOW_CONSUMER && left_reason_ok(reason),
            Role::Churn => left_reason_ok(reason),
            Role::Stopped => reason == SLOW_CONSUMER,
        };
        if reason == SLOW_CONSUMER {
            *tally.expected.entry("slow_consumers").or_default() += 1;
        }
        if !ok {
            world.violation(format!("{role:?} {addr} closed with {reason:?}"));
        }
    }
    for (burst, refused) in burst_refused.iter() {
        if *refused < BURST_EXTRA as u64 {
            world.violation(format!(
                "burst {burst}: only {refused} of max-clients + {BURST_EXTRA} were refused"
            ));
        }
    }
    let ours: std::collections::HashSet<SocketAddr> = attempts.iter().map(|a| a.addr).collect();
    for addr in facts.admitted.keys().chain(facts.refused.keys()) {
        if !ours.contains(addr) {
            world.violation(format!(
                "relay logged a connection from {addr} the test never made"
            ));
        }
    }
    tally.expected.insert("connections_total", tally.admitted);
    tally.expected.insert("clients_refused", tally.refused);
    tally.expected.insert("connections", 0);
    tally.expected.insert("accept_errors", 0);
    tally
}

/// Sender connection → how many of its messages the relay certainly read:
/// up to the last one any member received (the relay reads a connection's
/// lines in order).
fn processed_by_relay(records: &[EpochRecord]) -> HashMap<u32, u32> {
    let mut processed: HashMap<u32, u32> = HashMap::new();
    for receiver in records {
        for (sender, (_, last)) in &receiver.received {
            let seen = processed.entry(*sender).or_default();
            *seen = (*seen).max(last + 1);
        }
    }
    processed
}

fn check_member_close(
    world: &World,
    addr: SocketAddr,
    record: Option<&&EpochRecord>,
    reason: &str,
    processed: &HashMap<u32, u32>,
    tally: &mut Tally,
) -> bool {
    let Some(record) = record else {
        world.violation(format!("member {addr} has no record"));
        return true;
    };
    tally.member_conns += 1;
    tally.member_messages += u64::from(record.sent);
    if record.cut {
        // The relay closed it when its member was removed or re-keyed, or
        // refused its first frame after the reload; it may have left first.
        let certain = processed.get(&record.conn).copied().unwrap_or(0);
        *tally.expected.entry("frames_in").or_default() += u64::from(certain);
        tally.frames_in_slack += u64::from(record.sent - certain);
        tally.cut += 1;
        let counter = match reason {
            MEMBER_REMOVED => "members_removed",
            TAG_MISMATCH => "rejected_tag",
            _ => return record.end == End::Left && reason == "peer closed",
        };
        *tally.expected.entry(counter).or_default() += 1;
        return true;
    }
    *tally.expected.entry("frames_in").or_default() += u64::from(record.sent);
    match record.end {
        End::Left => reason == "peer closed",
        End::Shutdown => reason == "relay shutting down",
        End::ClosedAtOnce => {
            world.violation(format!("member {addr} was admitted, then closed at once"));
            true
        }
        End::ClosedByRelay => {
            world.violation(format!("relay closed member {addr}: {reason}"));
            true
        }
        // Already reported when the session ended.
        End::Abandoned => true,
    }
}

/// The close reason of a connection whose member was removed or re-keyed.
pub const MEMBER_REMOVED: &str = "member removed from the members file";
/// The close reason of a frame that opens under no key the relay has.
pub const TAG_MISMATCH: &str = "rejected frame: tag mismatch";

/// Compares the relay's stats line with the tally.
pub fn check_counters(world: &World, facts: &LogFacts, tally: &Tally) {
    let Some(stats) = &facts.stats else {
        world.violation("the relay logged no stats line".to_owned());
        return;
    };
    for (name, want) in &tally.expected {
        let slack = if *name == "frames_in" {
            tally.frames_in_slack
        } else {
            0
        };
        match stats.get(*name) {
            Some(got) if got >= want && *got <= want + slack => {}
            got => world.violation(format!(
                "relay counter {name} = {got:?}, the test did {want} (+ up to {slack})"
            )),
        }
    }
    // Every frame a member received was written whole by the relay.
    let frames_out = stats.get("frames_out").copied().unwrap_or(0);
    if frames_out < tally.deliveries {
        world.violation(format!(
            "frames_out {frames_out} < {} frames members received",
            tally.deliveries
        ));
    }
}

/// Checks that every message a member owed another reached it (the run
/// checks on receipt, in `member.rs`, order, uniqueness and origin).
pub fn check_deliveries(world: &World, records: &[EpochRecord], tally: &mut Tally) {
    let by_conn: HashMap<u32, &EpochRecord> = records.iter().map(|r| (r.conn, r)).collect();
    for receiver in records {
        tally.deliveries += receiver.delivered;
        for (sender, (first, last)) in &receiver.received {
            match by_conn.get(sender) {
                Some(s) if *last < s.sent && first <= last => {}
                Some(s) => world.violation(format!(
                    "conn {} got seqs {first}..={last} from conn {sender}, which sent {}",
                    receiver.conn, s.sent
                )),
                None => world.violation(format!(
                    "conn {} got messages from unknown conn {sender}",
                    receiver.conn
                )),
            }
        }
    }
    let processed = processed_by_relay(records);
    for sender in records {
        for (receiver, &from) in &sender.know_at {
            let mut until = sender.bye_at.get(receiver).copied().unwrap_or(sender.sent);
            if sender.cut {
                // Of a cut-off sender, only what the relay certainly read.
                until = until.min(processed.get(&sender.conn).copied().unwrap_or(0));
            }
            if from >= until {
                continue;
            }
            tally.owed += u64::from(until - from);
            let Some(r) = by_conn.get(receiver) else {
                world.violation(format!(
                    "conn {} knows unknown conn {receiver}",
                    sender.conn
                ));
                continue;
            };
            if r.cut {
                // Nothing is owed to a member the test cut off.
                tally.owed -= u64::from(until - from);
                continue;
            }
            let got = r.received.get(&sender.conn).copied();
            if !matches!(got, Some((first, last)) if first <= from && last + 1 >= until) {
                world.violation(format!(
                    "conn {receiver} (client {}, {:?}) owed seqs {from}..{until} of conn {} \
                     (client {}), received {got:?}",
                    r.client, r.end, sender.conn, sender.client
                ));
            }
        }
    }
}
