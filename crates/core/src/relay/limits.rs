//! The limits a relay enforces, and the connections it refuses for them.
//!
//! [`Limits`] holds every bound, with the command line's defaults;
//! [`Refused`] hands back a connection [`super::Relay::admit_from`] would
//! not take, saying which limit it met. The limits are plain values: this
//! module never enforces them itself, and never holds a connection.
//! [`Relay::set_limits`] changes the ones that can change on a running
//! relay (`relay`'s SIGHUP rereading its config file).

use std::io::Write;
use std::time::Duration;

use super::Relay;

/// The limits a relay enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line accepted, terminator excluded.
    pub max_frame: usize,
    /// Most connections open at once.
    pub max_clients: usize,
    /// Most bytes queued for one consumer before it is dropped.
    pub max_queue: usize,
    /// Most bytes held, in all, for connections that have not
    /// authenticated yet.
    pub pre_auth_budget: usize,
    /// How long a connection that has sent bytes may take to complete its
    /// first authenticated frame.
    pub first_frame_timeout: Duration,
    /// Most connections from one IPv4 address or IPv6 /64; `0` for no
    /// limit.
    pub max_per_address: usize,
}

impl Limits {
    /// `--max-clients`' default.
    pub const DEFAULT_MAX_CLIENTS: usize = 10_000;
    /// `--max-queue`'s default: 4 MiB.
    pub const DEFAULT_MAX_QUEUE: usize = 4 * 1024 * 1024;
    /// `--pre-auth-budget`'s default: 4 MiB, as much as 64 unauthenticated
    /// connections each holding a whole default `--max-frame` line.
    pub const DEFAULT_PRE_AUTH_BUDGET: usize = 4 * 1024 * 1024;
    /// `--first-frame-timeout`'s default. Every client sends its first
    /// frame in one write; ten seconds leaves room for the slowest link.
    pub const DEFAULT_FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
    /// `--max-per-address`' default. A household or an office behind one
    /// NAT address rarely has more people in one chat, and filling the
    /// default `--max-clients` takes 313 addresses.
    pub const DEFAULT_MAX_PER_ADDRESS: usize = 32;
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame: eaxchat_proto::wire::DEFAULT_MAX_FRAME,
            max_clients: Limits::DEFAULT_MAX_CLIENTS,
            max_queue: Limits::DEFAULT_MAX_QUEUE,
            pre_auth_budget: Limits::DEFAULT_PRE_AUTH_BUDGET,
            first_frame_timeout: Limits::DEFAULT_FIRST_FRAME_TIMEOUT,
            max_per_address: Limits::DEFAULT_MAX_PER_ADDRESS,
        }
    }
}

/// A connection [`Relay::admit_from`](super::Relay::admit_from) would not
/// take, handed back.
#[derive(Debug)]
pub struct Refused<T> {
    /// The transport, to be closed.
    pub io: T,
    /// The limit it met.
    pub limit: Refusal,
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_clients` were connected.
    MaxClients,
    /// Its address had `max_per_address` connections open.
    MaxPerAddress,
}

impl<T: Write> Relay<T> {
    /// Changes the limits that can change while connections are open:
    /// `max_clients`, `max_queue`, `pre_auth_budget` and `max_per_address`
    /// apply from the next connection, queue or read on, and close nobody
    /// by themselves. `max_frame` and `first_frame_timeout` keep the values
    /// the relay was made with: each connection's line reader and the
    /// deadline queue were built on them.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = Limits {
            max_frame: self.limits.max_frame,
            first_frame_timeout: self.limits.first_frame_timeout,
            ..limits
        };
        self.pre_auth.set_budget(limits.pre_auth_budget);
        self.per_address.set_max(limits.max_per_address);
    }
}
