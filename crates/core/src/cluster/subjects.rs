//! The subjects a cluster's envelopes go on, named so that NATS learns
//! nothing from them:
//!
//! ```text
//! eaxchat.CLUSTER.state          every relay's heartbeat, who is on it
//! eaxchat.CLUSTER.room.TOKEN     a room's messages and presence
//! eaxchat.CLUSTER.to.TOKEN       private messages for a name
//! eaxchat.CLUSTER.hist.TOKEN     a room's history (--cluster-history)
//! ```
//!
//! A token is a keyed hash of a room's or a name's text
//! ([`ClusterKey`]'s), the same on every relay with the key. Room subjects
//! are cached, a bounded number at once. This module never puts a room, a
//! name or any other plaintext in a subject, and never publishes or
//! subscribes: [`super::Cluster`] does.

use std::collections::HashMap;

use super::ClusterKey;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::name::Name;

/// Room subjects kept named at most: past it the cache starts again (a
/// subject costs one CMAC to name).
const MAX_CACHED_SUBJECTS: usize = 4096;

/// The subjects of one cluster under one key.
#[derive(Debug)]
pub struct Subjects {
    prefix: String,
    rooms: HashMap<RoomName, String>,
}

impl Subjects {
    pub(super) fn new(cluster: &str) -> Subjects {
        Subjects {
            prefix: format!("eaxchat.{cluster}"),
            rooms: HashMap::new(),
        }
    }

    /// Every relay's heartbeats.
    pub fn state(&self) -> String {
        format!("{}.state", self.prefix)
    }

    /// Room `room`'s messages and presence.
    pub(super) fn room(&mut self, key: &ClusterKey, room: &RoomName) -> &str {
        if self.rooms.len() >= MAX_CACHED_SUBJECTS && !self.rooms.contains_key(room) {
            self.rooms.clear();
        }
        let prefix = &self.prefix;
        self.rooms
            .entry(room.clone())
            .or_insert_with(|| format!("{prefix}.room.{}", key.token(b'r', room.as_str())))
    }

    /// Private messages to `name`.
    pub(super) fn to(&self, key: &ClusterKey, name: &Name) -> String {
        format!("{}.to.{}", self.prefix, key.token(b'n', name.as_str()))
    }

    /// Room `room`'s history records.
    pub(super) fn history(&self, key: &ClusterKey, room: &RoomName) -> String {
        format!("{}.hist.{}", self.prefix, key.token(b'r', room.as_str()))
    }

    /// Every room's history records: the JetStream stream's subjects.
    pub fn all_history(cluster: &str) -> String {
        format!("eaxchat.{cluster}.hist.*")
    }

    /// The JetStream stream that keeps cluster `cluster`'s history.
    pub fn history_stream(cluster: &str) -> String {
        format!("EAXCHAT_{cluster}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::key::tests::key;

    #[test]
    fn subjects_name_nothing_and_differ_by_key() {
        let room = RoomName::new(b"#lobby").expect("a room");
        let (a, b) = (key(1), key(2));
        let mut subjects = Subjects::new("main");
        let on_a = subjects.room(&a, &room).to_owned();
        assert!(on_a.starts_with("eaxchat.main.room."));
        assert!(!on_a.contains("lobby"));
        assert_eq!(on_a.len(), "eaxchat.main.room.".len() + 24);
        let mut other = Subjects::new("main");
        assert_ne!(other.room(&b, &room), on_a);
        let name = Name::new("lobby").expect("a name");
        assert_ne!(
            subjects.to(&a, &name).rsplit('.').next(),
            on_a.rsplit('.').next(),
            "a room and a name of the same text get different tokens"
        );
    }
}
