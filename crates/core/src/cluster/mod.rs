//! Relays joined through NATS into one chat (`relay --cluster`): what a
//! relay says to the others, and what it knows of them.
//!
//! This module owns [`Cluster`], one relay's share of the cluster as a
//! state machine: what it has subscribed, its heartbeat, its sequence
//! numbers, and the [`ToNats`] hand-overs it queues; the relay core
//! ([`crate::relay`]) decides what to publish and what a [`FromNats`]
//! means for its clients. Beside it are the sealed envelopes
//! ([`envelope`]), the cluster key that seals them ([`ClusterKey`], in
//! `key.rs`), the subjects they go on ([`Subjects`], in `subjects.rs`) and
//! who is on the other relays ([`remote`]). The one thread that talks to
//! NATS is the server crate's `link`; the poll loop only carries
//! [`ToNats`] and [`FromNats`] between the two.
//!
//! Every envelope is sealed under the cluster key (AES-EAX, a fresh nonce
//! each), and subjects are named by a keyed hash: NATS, and anyone else on
//! it, sees subjects, sizes and timing, never a name, a room or a message.
//! Each envelope carries this relay's [`Standing`] (its mode and members
//! fingerprint), each heartbeat the relays it has heard (so they can tell
//! its envelopes were sent after they started), and history records are
//! sealed by the NATS thread for the stream sequence they are stored at.
//! Nothing here touches a socket, a thread or the clock: the time is
//! passed in.

pub mod envelope;
mod key;
pub mod remote;
mod standing;
mod subjects;

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;

use eaxchat_proto::commands::RoomName;
use eaxchat_proto::name::Name;
use envelope::{Body, Envelope, Standing};
pub use key::{ClusterKey, PayloadError};
use remote::Remotes;
pub use subjects::Subjects;

/// How often a relay tells the others who is on it.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a relay may be quiet before the others count it lost.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Envelopes queued for NATS at most; past it they are dropped, counted.
pub const OUT_QUEUE: usize = 8192;

/// Envelopes from NATS waiting for the relay at most; past it they are
/// dropped, counted.
pub const IN_QUEUE: usize = 8192;

/// How one relay joins the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The cluster's name: its subjects start `eaxchat.NAME.`.
    pub name: String,
    /// How this relay calls itself to the others (its listen address).
    pub label: String,
    /// How often it sends its heartbeat.
    pub heartbeat: Duration,
    /// How long another relay may be quiet before it is lost.
    pub timeout: Duration,
    /// Whether room history is kept in a JetStream stream.
    pub history: bool,
}

impl ClusterConfig {
    /// A cluster called `name`, heartbeats and timeout as default, no
    /// JetStream history.
    pub fn new(name: &str, label: &str) -> ClusterConfig {
        ClusterConfig {
            name: name.to_owned(),
            label: label.to_owned(),
            heartbeat: DEFAULT_HEARTBEAT,
            timeout: DEFAULT_TIMEOUT,
            history: false,
        }
    }
}

/// What the relay hands the NATS thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToNats {
    /// Publish a sealed envelope.
    Publish {
        /// Where.
        subject: String,
        /// The sealed envelope.
        payload: Bytes,
    },
    /// Store a history record in the JetStream stream, waiting for the
    /// stream's acknowledgement (and trying again) off the loop. The NATS
    /// thread seals it ([`ClusterKey::seal_record`]) for the stream
    /// sequence it is stored at, which it learns only there.
    Store {
        /// The room's history subject.
        subject: String,
        /// The record's plaintext: an encoded envelope.
        plain: Bytes,
    },
    /// Start receiving a subject.
    Subscribe(String),
    /// Stop receiving a subject.
    Unsubscribe(String),
}

/// What the NATS thread hands the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromNats {
    /// A sealed envelope from a subject this relay receives.
    Envelope(Bytes),
    /// NATS is reachable: connected, or reconnected.
    Up,
    /// NATS was lost; the thread is reconnecting.
    Down,
    /// The history records of the JetStream stream, oldest first, each
    /// with the stream sequence it was read at, read after (re)connecting.
    History(Vec<(u64, Bytes)>),
}

/// A relay's share of the cluster: what it has published and subscribed,
/// and what it knows of the others.
pub struct Cluster {
    config: ClusterConfig,
    key: ClusterKey,
    subjects: Subjects,
    /// This relay's random id for this run.
    origin: u64,
    seq: u64,
    /// The other relays.
    pub remotes: Remotes,
    out: Vec<ToNats>,
    /// Subjects subscribed for rooms and names, by what they are for.
    rooms: HashMap<RoomName, String>,
    names: HashMap<Name, String>,
    /// Rooms or names changed since the subscriptions were last matched.
    pub interest_changed: bool,
    next_heartbeat: Instant,
    /// Whether NATS is reachable now.
    pub up: bool,
    /// Whether NATS was ever reached.
    pub was_connected: bool,
    /// This relay's mode and members, said in every envelope.
    standing: Standing,
    /// For each relay whose standing differs from this one's, the standing
    /// last logged: a change is logged once, not every envelope.
    mismatches: HashMap<u64, Standing>,
    scratch: Vec<u8>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.config.name)
            .field("origin", &format_args!("{:016x}", self.origin))
            .field("up", &self.up)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Joins `config`'s cluster under `key`, as the relay with random id
    /// `origin`, at `now`. The heartbeat subject is subscribed at once.
    pub fn new(config: ClusterConfig, key: ClusterKey, origin: u64, now: Instant) -> Cluster {
        let subjects = Subjects::new(&config.name);
        let out = vec![ToNats::Subscribe(subjects.state())];
        Cluster {
            remotes: Remotes::new(config.timeout),
            config,
            key,
            subjects,
            origin,
            seq: 0,
            out,
            rooms: HashMap::new(),
            names: HashMap::new(),
            interest_changed: true,
            next_heartbeat: now,
            up: false,
            was_connected: false,
            standing: Standing::SHARED,
            mismatches: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    /// This relay's mode and members fingerprint, as its envelopes say.
    pub fn standing(&self) -> Standing {
        self.standing
    }

    /// Sets this relay's mode and members fingerprint (at start, and
    /// after the members file is read again).
    pub fn set_standing(&mut self, standing: Standing) {
        self.standing = standing;
    }

    /// Notes that `origin` says `standing`, unlike this relay's; `true`
    /// the first time it says this one (log it then, not at every
    /// envelope).
    pub fn note_mismatch(&mut self, origin: u64, standing: Standing) -> bool {
        if self.mismatches.get(&origin) == Some(&standing) {
            return false;
        }
        if self.mismatches.len() >= remote::MAX_RELAYS {
            self.mismatches.clear();
        }
        self.mismatches.insert(origin, standing);
        true
    }

    /// `origin` says the same as this relay again: a later difference is
    /// logged anew.
    pub fn clear_mismatch(&mut self, origin: u64) -> bool {
        self.mismatches.remove(&origin).is_some()
    }

    /// Opens a history record read from the stream at `stream_seq`.
    pub fn open_record(&self, payload: &[u8], stream_seq: u64) -> Result<Envelope, PayloadError> {
        self.key.open_record(payload, stream_seq)
    }

    /// A copy of the cluster key with its own nonces, for the NATS thread
    /// to seal history records with.
    pub fn record_key(&self) -> std::io::Result<ClusterKey> {
        self.key.duplicate()
    }

    /// How this relay is set up in the cluster.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// This relay's id for this run.
    pub fn origin(&self) -> u64 {
        self.origin
    }

    /// The subjects.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// Opens a payload from NATS.
    pub fn open(&self, payload: &[u8]) -> Result<Envelope, PayloadError> {
        self.key.open(payload)
    }

    /// Moves what is to be handed to NATS into `out`.
    pub fn take_out(&mut self, out: &mut Vec<ToNats>) {
        out.append(&mut self.out);
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Seals `body` and queues it for `subject`.
    fn publish(&mut self, subject: String, body: Body, ts_millis: u64) {
        let payload = self.seal(body, ts_millis);
        self.out.push(ToNats::Publish { subject, payload });
    }

    /// Seals `body` as this relay's next envelope.
    fn seal(&mut self, body: Body, ts_millis: u64) -> Bytes {
        let plain = self.encode(body, ts_millis);
        let payload = self.key.seal(&plain);
        self.scratch = plain;
        payload
    }

    /// Encodes `body` as this relay's next envelope, in the scratch
    /// buffer (the caller puts it back).
    fn encode(&mut self, body: Body, ts_millis: u64) -> Vec<u8> {
        let envelope = Envelope {
            origin: self.origin,
            seq: self.next_seq(),
            ts_millis,
            standing: self.standing,
            body,
        };
        let mut plain = std::mem::take(&mut self.scratch);
        plain.clear();
        envelope.encode(&mut plain);
        plain
    }

    /// Publishes `messages`, said in `room` by `from`, on the room's
    /// subject (one envelope for up to [`envelope::MAX_MESSAGES`]), and,
    /// with `--cluster-history`, each message again as a history record.
    pub fn publish_room(
        &mut self,
        room: &RoomName,
        from: Option<&Name>,
        messages: &[(crate::history::EntryKind, &[u8])],
        ts_millis: u64,
    ) {
        if messages.is_empty() {
            return;
        }
        let mut plain = std::mem::take(&mut self.scratch);
        for chunk in messages.chunks(envelope::MAX_MESSAGES) {
            let seq = self.next_seq();
            plain.clear();
            envelope::encode_head(self.origin, seq, ts_millis, self.standing, &mut plain);
            envelope::encode_room_head(room, from, chunk.len() as u16, &mut plain);
            for &(kind, text) in chunk {
                envelope::put_message(&mut plain, kind, text);
            }
            let payload = self.key.seal(&plain);
            let subject = self.subjects.room(&self.key, room).to_owned();
            self.out.push(ToNats::Publish { subject, payload });
        }
        self.scratch = plain;
        if self.config.history {
            for &(kind, text) in messages {
                let subject = self.subjects.history(&self.key, room);
                let body = Body::Room {
                    room: room.clone(),
                    from: from.cloned(),
                    messages: vec![(kind, text.into())],
                };
                let plain = self.encode(body, ts_millis);
                let record = Bytes::copy_from_slice(&plain);
                self.scratch = plain;
                self.out.push(ToNats::Store {
                    subject,
                    plain: record,
                });
            }
        }
    }

    /// Publishes a private message for `to`, wherever it is.
    pub fn publish_private(&mut self, from: Option<&Name>, to: &Name, text: &[u8], ts: u64) {
        let subject = self.subjects.to(&self.key, to);
        let body = Body::Private {
            from: from.cloned(),
            to: to.clone(),
            text: text.into(),
        };
        self.publish(subject, body, ts);
    }

    /// Publishes a join, leave or rename of `name` in the room of `here`
    /// (who is in it on this relay now).
    pub fn publish_presence(
        &mut self,
        name: &Name,
        change: envelope::Change,
        here: envelope::RoomState,
        ts: u64,
    ) {
        let subject = self.subjects.room(&self.key, &here.room).to_owned();
        let body = Body::Presence {
            room: here.room.clone(),
            name: name.clone(),
            change,
            here,
        };
        self.publish(subject, body, ts);
    }

    /// Whether the heartbeat is due at `now`.
    pub fn heartbeat_due(&self, now: Instant) -> bool {
        now >= self.next_heartbeat
    }

    /// Sends the heartbeat soon: another relay is new, and should learn who
    /// is here without waiting a whole interval.
    pub fn heartbeat_soon(&mut self, now: Instant) {
        self.next_heartbeat = self.next_heartbeat.min(now);
    }

    /// Publishes the heartbeat: `rooms`, who is in each here, and the
    /// relays heard from.
    pub fn publish_state(&mut self, rooms: Vec<envelope::RoomState>, now: Instant, ts: u64) {
        self.next_heartbeat = now + self.config.heartbeat;
        let body = Body::State {
            label: self.config.label.clone(),
            rooms,
            heard: self.remotes.heard(),
        };
        let subject = self.subjects.state();
        self.publish(subject, body, ts);
    }

    /// Skips the heartbeat due now (NATS is down).
    pub fn skip_heartbeat(&mut self, now: Instant) {
        self.next_heartbeat = now + self.config.heartbeat;
    }

    /// Says goodbye: the others let this relay's people go at once.
    pub fn publish_bye(&mut self, ts: u64) {
        let subject = self.subjects.state();
        self.publish(subject, Body::Bye, ts);
    }

    /// When the cluster next has timed work: the heartbeat, or another
    /// relay's timeout.
    pub fn next_timer(&self) -> Instant {
        match self.remotes.next_expiry() {
            Some(at) => at.min(self.next_heartbeat),
            None => self.next_heartbeat,
        }
    }

    /// Subscribes to what `rooms` and `names` need, and unsubscribes what
    /// they no longer do; a new room brings the heartbeat forward to `now`.
    pub fn want(&mut self, rooms: &[RoomName], names: &[Name], now: Instant) {
        self.interest_changed = false;
        let mut dropped: Vec<String> = Vec::new();
        self.rooms.retain(|room, subject| {
            let keep = rooms.contains(room);
            if !keep {
                dropped.push(std::mem::take(subject));
            }
            keep
        });
        self.names.retain(|name, subject| {
            let keep = names.contains(name);
            if !keep {
                dropped.push(std::mem::take(subject));
            }
            keep
        });
        self.out
            .extend(dropped.into_iter().map(ToNats::Unsubscribe));
        for room in rooms {
            if !self.rooms.contains_key(room) {
                let subject = self.subjects.room(&self.key, room).to_owned();
                self.out.push(ToNats::Subscribe(subject.clone()));
                self.rooms.insert(room.clone(), subject);
                // The others hear of the room at once, and answer with who
                // they have in it.
                self.next_heartbeat = self.next_heartbeat.min(now);
            }
        }
        for name in names {
            if !self.names.contains_key(name) {
                let subject = self.subjects.to(&self.key, name);
                self.out.push(ToNats::Subscribe(subject.clone()));
                self.names.insert(name.clone(), subject);
            }
        }
    }

    /// The subject names subscribed now (heartbeats, rooms, names).
    pub fn subscriptions(&self) -> usize {
        1 + self.rooms.len() + self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::key::tests::key;

    #[test]
    fn subscriptions_follow_what_is_wanted() {
        let mut cluster = Cluster::new(
            ClusterConfig::new("main", "test"),
            key(1),
            7,
            Instant::now(),
        );
        let mut out = Vec::new();
        cluster.take_out(&mut out);
        assert_eq!(out, vec![ToNats::Subscribe("eaxchat.main.state".into())]);
        let lobby = RoomName::new(b"#lobby").expect("a room");
        let alice = Name::new("alice").expect("a name");
        cluster.want(
            std::slice::from_ref(&lobby),
            std::slice::from_ref(&alice),
            Instant::now(),
        );
        out.clear();
        cluster.take_out(&mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|o| matches!(o, ToNats::Subscribe(_))));
        cluster.want(std::slice::from_ref(&lobby), &[], Instant::now());
        out.clear();
        cluster.take_out(&mut out);
        assert!(matches!(&out[..], [ToNats::Unsubscribe(s)] if s.contains(".to.")));
        assert_eq!(cluster.subscriptions(), 2);
    }
}
