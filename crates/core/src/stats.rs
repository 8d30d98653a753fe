//! The relay's counters, and the one-line summary it logs.
//!
//! Plain integers updated by the single relay thread; reading them needs no
//! locking. Everything here is a count: no plaintext, no key, no address.

use std::fmt;

use eaxchat_proto::cipher::OpenError;

/// Frames rejected, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    /// Lines that were not valid padded base64.
    pub bad_base64: u64,
    /// Decoded frames shorter than nonce + tag.
    pub too_short: u64,
    /// Frames whose tag did not verify.
    pub bad_tag: u64,
    /// Lines longer than `--max-frame`.
    pub too_long: u64,
    /// Frames whose nonce was accepted before under their key, or was one
    /// the relay sealed with ([`eaxchat_proto::replay`]).
    pub replayed: u64,
}

impl Rejected {
    /// Counts one rejected frame.
    pub fn count(&mut self, error: OpenError) {
        match error {
            OpenError::Base64 => self.bad_base64 += 1,
            OpenError::TooShort => self.too_short += 1,
            OpenError::BadTag => self.bad_tag += 1,
        }
    }

    /// All rejected frames.
    pub fn total(&self) -> u64 {
        self.bad_base64 + self.too_short + self.bad_tag + self.too_long + self.replayed
    }
}

/// Session mode's handshakes and the frames its sessions refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounts {
    /// Handshakes accepted: a welcome sent, the session established.
    pub accepted: u64,
    /// Handshakes refused because the hello's key is in no member's line.
    pub refused_unknown_key: u64,
    /// Handshakes refused because the first line was not a hello that
    /// opens under the relay's key (garbage, truncated, oversized, another
    /// kind of line, or a client that pinned another relay key).
    pub refused_bad_hello: u64,
    /// Connections closed for a line that came after their hello but
    /// before the welcome could have reached them: a second hello, or a
    /// frame the client could not have sealed yet.
    pub unfinished: u64,
    /// Session frames refused for a counter already used: a replay, or a
    /// reorder.
    pub rejected_replay: u64,
    /// Session frames refused for a counter that skips ahead: a gap, or a
    /// reorder.
    pub rejected_gap: u64,
    /// Session frames whose tag failed: of another session, reflected
    /// back, or changed on the way.
    pub rejected_tag: u64,
    /// Session frames that were not frames: not base64, too short, or
    /// without a counter nonce.
    pub rejected_malformed: u64,
}

impl SessionCounts {
    /// All session frames refused.
    pub fn rejected(&self) -> u64 {
        self.rejected_replay + self.rejected_gap + self.rejected_tag + self.rejected_malformed
    }
}

/// Everything the relay counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Frames received that opened.
    pub frames_in: u64,
    /// Frames written whole to recipients.
    pub frames_out: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Frames rejected, by reason.
    pub rejected: Rejected,
    /// Connections refused because `--max-clients` were connected.
    pub clients_refused: u64,
    /// Consumers dropped for passing `--max-queue`.
    pub slow_consumers: u64,
    /// `accept` calls that failed (for example out of file descriptors).
    pub accept_errors: u64,
    /// Connections refused because their address had `--max-per-address`
    /// open already.
    pub refused_per_address: u64,
    /// Unauthenticated connections closed to keep what they held within
    /// `--pre-auth-budget`.
    pub pre_auth_over_budget: u64,
    /// Connections closed for no authenticated frame (in session mode: no
    /// finished handshake) within `--first-frame-timeout`.
    pub first_frame_timeouts: u64,
    /// Frames written whole to connections in a room that have never
    /// proven a key (shared-key listeners without `--require-proof`).
    pub keyless_frames_out: u64,
    /// Bytes written to connections in a room that have never proven a key.
    pub keyless_bytes_out: u64,
    /// Connections closed because their member was removed from the
    /// members file, or given a new key.
    pub members_removed: u64,
    /// Frames refused by flood control (`--rate`).
    pub flood_refused: u64,
    /// `/` commands run or refused.
    pub commands: u64,
    /// Envelopes taken from the other relays of the cluster.
    pub cluster_in: u64,
    /// Payloads from NATS that did not open under the cluster key, or
    /// were not envelopes.
    pub cluster_rejected: u64,
    /// Envelopes from NATS refused as replays, or stamped too far from
    /// this relay's clock.
    pub cluster_replayed: u64,
    /// Envelopes lost because a queue to or from NATS was full, or NATS
    /// was down.
    pub cluster_dropped: u64,
    /// Session mode: handshakes, and the frames its sessions refused.
    pub sessions: SessionCounts,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.rejected;
        let s = &self.sessions;
        write!(
            f,
            "stats: connections={} connections_total={} frames_in={} frames_out={} \
             bytes_in={} bytes_out={} rejected_base64={} rejected_short={} \
             rejected_tag={} rejected_too_long={} clients_refused={} slow_consumers={} \
             accept_errors={} refused_per_address={} pre_auth_over_budget={} \
             first_frame_timeouts={} keyless_frames_out={} keyless_bytes_out={} \
             members_removed={} rejected_replay={} \
             flood_refused={} commands={} cluster_in={} cluster_rejected={} \
             cluster_replayed={} cluster_dropped={} handshakes_accepted={} \
             handshakes_refused_unknown_key={} handshakes_refused_bad_hello={} \
             handshakes_unfinished={} session_rejected_replay={} session_rejected_gap={} \
             session_rejected_tag={} session_rejected_malformed={}",
            self.connections,
            self.connections_total,
            self.frames_in,
            self.frames_out,
            self.bytes_in,
            self.bytes_out,
            r.bad_base64,
            r.too_short,
            r.bad_tag,
            r.too_long,
            self.clients_refused,
            self.slow_consumers,
            self.accept_errors,
            self.refused_per_address,
            self.pre_auth_over_budget,
            self.first_frame_timeouts,
            self.keyless_frames_out,
            self.keyless_bytes_out,
            self.members_removed,
            r.replayed,
            self.flood_refused,
            self.commands,
            self.cluster_in,
            self.cluster_rejected,
            self.cluster_replayed,
            self.cluster_dropped,
            s.accepted,
            s.refused_unknown_key,
            s.refused_bad_hello,
            s.unfinished,
            s.rejected_replay,
            s.rejected_gap,
            s.rejected_tag,
            s.rejected_malformed,
        )
    }
}
