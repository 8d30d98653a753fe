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
use crate::guard::PerAddressLimits;

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
    /// How long a connection may take to complete its first authenticated
    /// frame (in session mode, its handshake): counted from its admission
    /// in members and session mode and with `require_proof`, else from its
    /// first byte (a silent shared-key connection may be a notebook
    /// receiver).
    pub first_frame_timeout: Duration,
    /// Most connections from one IPv4 address or IPv6 /64; `0` for no
    /// limit.
    pub max_per_address: usize,
    /// Most connections from one IPv6 /56; `0` for no limit.
    pub max_per_ipv6_56: usize,
    /// Most connections from one IPv6 /48; `0` for no limit.
    pub max_per_ipv6_48: usize,
    /// Shared-key mode: a connection is sent nothing (is in no room) until
    /// one of its frames opens. Members and session mode always require
    /// it: a connection is nobody until it identifies.
    pub require_proof: bool,
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
    /// `--max-per-ipv6-56`'s default: twice a /64's, so a home's prefix
    /// (a /56, as most providers hand out) holds two full /64s.
    pub const DEFAULT_MAX_PER_IPV6_56: usize = 64;
    /// `--max-per-ipv6-48`'s default: filling the default `--max-clients`
    /// takes 40 sites' prefixes.
    pub const DEFAULT_MAX_PER_IPV6_48: usize = 256;

    /// The per-address limits, as [`crate::guard::PerAddress`] counts them.
    pub(crate) fn per_address(&self) -> PerAddressLimits {
        PerAddressLimits {
            address: self.max_per_address,
            prefix_56: self.max_per_ipv6_56,
            prefix_48: self.max_per_ipv6_48,
        }
    }
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
            max_per_ipv6_56: Limits::DEFAULT_MAX_PER_IPV6_56,
            max_per_ipv6_48: Limits::DEFAULT_MAX_PER_IPV6_48,
            require_proof: false,
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
    /// Its address had `max_per_address` connections open, or its IPv6
    /// /56 or /48 had `max_per_ipv6_56` or `max_per_ipv6_48`.
    MaxPerAddress,
}

impl<T: Write> Relay<T> {
    /// Changes the limits that can change while connections are open:
    /// `max_clients`, `max_queue`, `pre_auth_budget` and the per-address
    /// limits apply from the next connection, queue or read on, and close
    /// nobody by themselves. `max_frame`, `first_frame_timeout` and
    /// `require_proof` keep the values the relay was made with: each
    /// connection's line reader, the deadline queue and who is in a room
    /// were built on them.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = Limits {
            max_frame: self.limits.max_frame,
            first_frame_timeout: self.limits.first_frame_timeout,
            require_proof: self.limits.require_proof,
            ..limits
        };
        self.pre_auth.set_budget(limits.pre_auth_budget);
        self.per_address.set_max(limits.per_address());
    }
}
