//! The room history kept in the cluster's JetStream stream
//! (`--cluster-history`), as read back after (re)connecting: each record
//! opened for the stream sequence it was read at (a record published again
//! later sits at another sequence and does not open), checked against this
//! relay's mode and members as a live envelope is, and each room's history
//! replaced by what the stream holds.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use bytes::Bytes;
use log::info;

use super::super::Relay;
use crate::cluster::envelope::Body;
use crate::history::Entry;
use eaxchat_proto::commands::RoomName;

impl<T: Write> Relay<T> {
    /// The history records read from the JetStream stream, oldest first,
    /// each with its stream sequence: each room's history becomes what the
    /// stream holds.
    pub(super) fn fill_history(&mut self, records: &[(u64, Bytes)]) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let mut refused = 0;
        let opened: Vec<_> = records
            .iter()
            .filter_map(|(stream_seq, record)| {
                let opened = cluster.open_record(record, *stream_seq).ok();
                refused += u64::from(opened.is_none());
                opened
            })
            .collect();
        let mut rooms: BTreeMap<RoomName, Vec<(u64, u64, u64, Entry)>> = BTreeMap::new();
        let mut seen = HashSet::new();
        for mut envelope in opened {
            if !self.admit_standing(&mut envelope) {
                refused += 1;
                continue;
            }
            if !seen.insert((envelope.origin, envelope.seq)) {
                continue;
            }
            if let Body::Room {
                room,
                from,
                messages,
            } = envelope.body
            {
                let entries = rooms.entry(room).or_default();
                for (kind, text) in messages {
                    let entry = Entry {
                        sender: from.clone(),
                        text,
                        ts_millis: envelope.ts_millis,
                        kind,
                    };
                    entries.push((envelope.ts_millis, envelope.origin, envelope.seq, entry));
                }
            }
        }
        self.stats.cluster_rejected += refused;
        let (room_count, entries) = (rooms.len(), rooms.values().map(Vec::len).sum::<usize>());
        for (room, mut entries) in rooms {
            // In the order they were said (records stored after a retry
            // may come later in the stream), each relay's in its order.
            entries.sort_by_key(|&(ts, origin, seq, _)| (ts, origin, seq));
            let entries = entries.into_iter().map(|(_, _, _, entry)| entry);
            self.chat.rooms.replace_history(&room, entries);
        }
        info!(
            "cluster: history of {room_count} rooms filled from the stream \
             ({entries} messages, {refused} records refused)"
        );
    }
}
