//! The relay in a cluster: what it publishes of its own clients, and what
//! an envelope from another relay means for them.
//!
//! Room messages, actions, private messages for names not here and
//! presence are handed to [`Cluster`] as they are accepted; the rooms and
//! names this relay's clients have decide what it subscribes to. An
//! envelope from another relay is delivered as local messages are: sealed
//! for each recipient (once per key), stamped with its sender's name, in
//! the order its relay sent it, and kept in the room's history. `/who`,
//! `/rooms` and the counts in presence notices add what the other relays
//! have (`apply/` and `chat_layer.rs` ask [`Relay::people_in`] and the
//! like).
//!
//! This file never talks to NATS: it queues [`ToNats`] hand-overs and takes
//! [`FromNats`] ones, and the server carries them. It never relays an
//! envelope that fails [`crate::cluster::ClusterKey::open`], the replay,
//! age and start checks of [`crate::cluster::remote`], or the mode and
//! members checks of `cluster/standing.rs`. The history read from the
//! JetStream stream is `cluster/history.rs`'s.

mod history;
mod standing;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::Instant;

use log::{debug, info, warn};

use super::batch::Batch;
use super::{ConnId, Mode, Relay};
use crate::cluster::envelope::{Body, Change, RoomState};
use crate::cluster::remote::{Lost, Stale};
use crate::cluster::{Cluster, FromNats, ToNats};
use crate::history::EntryKind;
use crate::rooms::RoomId;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::events::Event;
use eaxchat_proto::name::Name;

impl<T: Write> Relay<T> {
    /// Joins a cluster: from now on this relay publishes what its clients
    /// say and takes what the others publish ([`Relay::cluster_incoming`]).
    pub fn join_cluster(&mut self, mut cluster: Cluster) {
        cluster.set_standing(self.own_standing());
        self.cluster = Some(Box::new(cluster));
    }

    /// The cluster, if this relay is in one.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_deref()
    }

    /// Moves what is to be handed to NATS into `out`, the subscriptions
    /// matched to the rooms and names here first.
    pub fn take_cluster_out(&mut self, out: &mut Vec<ToNats>) {
        if self
            .cluster
            .as_ref()
            .is_some_and(|cluster| cluster.interest_changed)
        {
            let rooms: Vec<RoomName> = self
                .chat
                .rooms
                .occupied()
                .into_iter()
                .map(|(name, _)| name.clone())
                .collect();
            let names = self.local_names();
            if let Some(cluster) = &mut self.cluster {
                cluster.want(&rooms, &names, self.now);
            }
        }
        if let Some(cluster) = &mut self.cluster {
            cluster.take_out(out);
        }
    }

    /// Counts envelopes lost on the way to or from NATS: a queue was full.
    pub fn count_cluster_dropped(&mut self, dropped: u64) {
        self.stats.cluster_dropped += dropped;
    }

    /// The names of this relay's connections: what private messages are
    /// subscribed for.
    fn local_names(&self) -> Vec<Name> {
        match &self.mode {
            Mode::Shared(_) => self.chat.nicks.keys().cloned().collect(),
            Mode::Members(_) | Mode::Sessions(_) => {
                let names: HashSet<Name> = self
                    .peers
                    .iter()
                    .filter_map(|(id, _)| self.name_of(id).cloned())
                    .collect();
                names.into_iter().collect()
            }
        }
    }

    /// The rooms or names here changed: the subscriptions are matched
    /// again before the next hand-over.
    pub(super) fn cluster_interest_changed(&mut self) {
        if let Some(cluster) = &mut self.cluster {
            cluster.interest_changed = true;
        }
    }

    /// Connections in room `id`, called `room`, here and on the other
    /// relays: the count presence notices give.
    pub(super) fn people_in(&self, id: RoomId, room: &RoomName) -> usize {
        let here = self.chat.rooms.get(id).map_or(0, |r| r.len());
        let elsewhere = self
            .cluster
            .as_ref()
            .map_or(0, |cluster| cluster.remotes.count(room));
        here + elsewhere
    }

    /// Names in `room` on the other relays, and connections with none.
    pub(super) fn remote_who(&self, room: &RoomName) -> (Vec<Name>, usize) {
        self.cluster
            .as_ref()
            .map_or((Vec::new(), 0), |cluster| cluster.remotes.who(room))
    }

    /// Rooms with someone on the other relays, and how many.
    pub(super) fn remote_rooms(&self) -> Vec<(RoomName, usize)> {
        self.cluster.as_ref().map_or(Vec::new(), |cluster| {
            cluster.remotes.occupied().into_iter().collect()
        })
    }

    /// Whether `name` is on another relay.
    pub(super) fn remote_has(&self, name: &Name) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|cluster| cluster.up && cluster.remotes.has_name(name))
    }

    /// Publishes a batch `from` said in its room.
    pub(super) fn publish_batch(&mut self, from: ConnId, batch: &Batch) {
        // An end-to-end room's group messages stay on this relay, whose
        // Delivery Service orders them (`e2e.rs`).
        if self.cluster.is_none() || batch.count == 0 || batch.kind == EntryKind::Mls {
            return;
        }
        let Some(room) = self.room_of(from).cloned() else {
            return;
        };
        let sender = self.name_of(from).cloned();
        let messages = batch.texts();
        if let Some(cluster) = &mut self.cluster {
            cluster.publish_room(&room, sender.as_ref(), &messages, batch.ts);
        }
    }

    /// Publishes a `/me` action.
    pub(super) fn publish_action(&mut self, room: &RoomName, from: Option<&Name>, text: &[u8]) {
        let ts = self.wall_millis();
        if let Some(cluster) = &mut self.cluster {
            cluster.publish_room(room, from, &[(EntryKind::Action, text)], ts);
        }
    }

    /// Publishes a join, leave or rename in `room`, with who is in it
    /// here now.
    pub(super) fn publish_presence(&mut self, room: &RoomName, name: &Name, change: Change) {
        if self.cluster.is_none() {
            return;
        }
        let ts = self.wall_millis();
        let Some(here) = self
            .chat
            .rooms
            .find(room)
            .map(|id| self.room_state(id, room))
        else {
            return;
        };
        if let Some(cluster) = &mut self.cluster {
            cluster.publish_presence(name, change, here, ts);
        }
    }

    /// Publishes a private message for `to`, who is on another relay.
    pub(super) fn publish_private(&mut self, from: Option<&Name>, to: &Name, text: &[u8]) {
        let ts = self.wall_millis();
        if let Some(cluster) = &mut self.cluster {
            cluster.publish_private(from, to, text, ts);
        }
    }

    /// Says goodbye to the cluster: the relay is shutting down.
    pub fn leave_cluster(&mut self) {
        let ts = self.wall_millis();
        if let Some(cluster) = &mut self.cluster
            && cluster.up
        {
            cluster.publish_bye(ts);
        }
    }

    /// When the cluster next has timed work.
    pub(super) fn cluster_next_timer(&self) -> Option<Instant> {
        self.cluster.as_ref().map(|cluster| cluster.next_timer())
    }

    /// The cluster's timed work: the heartbeat, and the relays gone quiet.
    pub(super) fn cluster_timers(&mut self) {
        let now = self.now;
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let lost = cluster.remotes.expire(now);
        let timeout = cluster.remotes.timeout();
        let due = cluster.heartbeat_due(now);
        for relay in lost {
            info!(
                "cluster: relay {} lost: nothing heard for {timeout:?}",
                relay.label
            );
            self.announce_lost(&relay);
        }
        if !due {
            return;
        }
        // While NATS is down nothing would reach anyone: no heartbeat.
        if self.cluster.as_ref().is_some_and(|cluster| cluster.up) {
            let rooms = self.room_states();
            let ts = self.wall_millis();
            // The members file may have been read again since.
            let standing = self.own_standing();
            if let Some(cluster) = &mut self.cluster {
                cluster.set_standing(standing);
                cluster.publish_state(rooms, now, ts);
            }
        } else if let Some(cluster) = &mut self.cluster {
            cluster.skip_heartbeat(now);
        }
    }

    /// Who is in each room here, for the heartbeat.
    fn room_states(&self) -> Vec<RoomState> {
        self.chat
            .rooms
            .occupied()
            .into_iter()
            .filter_map(|(name, _)| Some(self.room_state(self.chat.rooms.find(name)?, name)))
            .collect()
    }

    /// Who is in room `id` (called `name`) here: the names of those who
    /// arrived, and how many connections have none (as `/who` counts).
    fn room_state(&self, id: RoomId, name: &RoomName) -> RoomState {
        let mut names: BTreeMap<Name, u16> = BTreeMap::new();
        let mut named = 0;
        let conns = self.chat.rooms.get(id).map_or(&[][..], |room| room.conns());
        for &conn in conns {
            if !self.peers.get(conn).is_some_and(|peer| peer.chat.arrived) {
                continue;
            }
            if let Some(name) = self.name_of(conn) {
                let count = names.entry(name.clone()).or_default();
                *count = count.saturating_add(1);
                named += 1;
            }
        }
        RoomState {
            room: name.clone(),
            names: names.into_iter().collect(),
            unnamed: (conns.len() - named) as u32,
        }
    }

    /// Takes what the NATS thread handed over.
    pub fn cluster_incoming(&mut self, from_nats: FromNats) {
        match from_nats {
            FromNats::Envelope(payload) => self.take_envelope(&payload),
            FromNats::Up => self.link_up(),
            FromNats::Down => self.link_down(),
            FromNats::History(records) => self.fill_history(&records),
        }
    }

    fn link_up(&mut self) {
        let now = self.now;
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let was_lost = cluster.was_connected && !cluster.up;
        cluster.up = true;
        cluster.was_connected = true;
        cluster.heartbeat_soon(now);
        info!("cluster: connected to NATS");
        if was_lost {
            self.notice_everyone("* the cluster link is back: you reach every relay again");
        }
    }

    fn link_down(&mut self) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        if !cluster.up {
            return;
        }
        cluster.up = false;
        let forgotten = cluster.remotes.forget_people();
        warn!(
            "cluster: lost NATS; serving this relay's clients alone until it is back \
             ({} relays' people set aside)",
            forgotten.len()
        );
        self.notice_everyone(
            "* the cluster link is down: until it is back, only people on this relay hear you",
        );
    }

    /// Sends `text` as a notice to every connection that has arrived.
    fn notice_everyone(&mut self, text: &str) {
        let ids: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.chat.arrived && peer.closing.is_none())
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            self.send_event(id, &Event::notice(text));
        }
    }

    /// One payload from NATS: opened, checked against this relay's mode
    /// and members, against replays and against this relay's start, and
    /// taken.
    fn take_envelope(&mut self, payload: &[u8]) {
        let (now, wall) = (self.now, self.wall_millis());
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let mut envelope = match cluster.open(payload) {
            Ok(envelope) => envelope,
            Err(why) => {
                self.stats.cluster_rejected += 1;
                debug!(
                    "cluster: refused a payload of {} bytes: {why}",
                    payload.len()
                );
                return;
            }
        };
        if envelope.origin == cluster.origin() {
            return;
        }
        if !self.admit_standing(&mut envelope) {
            self.stats.cluster_rejected += 1;
            return;
        }
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let (origin, seq, ts) = (envelope.origin, envelope.seq, envelope.ts_millis);
        let names_me = matches!(&envelope.body, Body::State { heard, .. }
            if heard.contains(&cluster.origin()));
        match cluster.remotes.take(origin, seq, ts, now, wall, names_me) {
            Ok(new) => {
                if new {
                    info!("cluster: relay {origin:016x} heard from");
                    cluster.heartbeat_soon(now);
                }
            }
            Err(Stale::Unconfirmed { first }) => {
                // It learns of this relay from the next heartbeat, sent
                // now; its envelopes are taken once one of its own names
                // this relay. Its heartbeats until then are expected, not
                // counted; anything else cannot be told from a replay.
                if first {
                    debug!("cluster: relay {origin:016x} heard, not yet hearing this one");
                    cluster.heartbeat_soon(now);
                }
                if !matches!(envelope.body, Body::State { .. }) {
                    self.stats.cluster_replayed += 1;
                }
                return;
            }
            Err(why) => {
                self.stats.cluster_replayed += 1;
                debug!("cluster: refused envelope {seq} of {origin:016x}: {why:?}");
                return;
            }
        }
        self.stats.cluster_in += 1;
        match envelope.body {
            Body::Room {
                room,
                from,
                messages,
            } => self.remote_room(&room, from.as_ref(), &messages, ts),
            Body::Private { from, to, text } => self.remote_private(from.as_ref(), &to, &text, ts),
            Body::Presence {
                room,
                name,
                change,
                here,
            } => {
                cluster.remotes.change(origin, seq, here);
                self.remote_presence(&room, &name, &change, ts);
            }
            Body::State { label, rooms, .. } => {
                // Someone there just came into a room: they learn who is
                // here from this relay's heartbeat, sent now.
                if cluster.remotes.set_state(origin, seq, label, rooms) {
                    cluster.heartbeat_soon(now);
                }
            }
            Body::Bye => {
                if let Some(relay) = cluster.remotes.depart(origin) {
                    info!("cluster: relay {} left the cluster", relay.label);
                    self.announce_lost(&relay);
                }
            }
        }
    }

    /// Messages said in `room` on another relay: queued for everyone here
    /// in it, in order, and kept in its history.
    fn remote_room(
        &mut self,
        room: &RoomName,
        from: Option<&Name>,
        messages: &[(EntryKind, Box<[u8]>)],
        ts: u64,
    ) {
        let Some(room_id) = self.chat.rooms.find(room) else {
            return;
        };
        let stamp = match (&self.mode, from) {
            (Mode::Members(_) | Mode::Sessions(_), Some(name)) => format!("{name}: "),
            _ => String::new(),
        };
        let mut batch = Batch::new(ts);
        for (kind, text) in messages {
            // Stamped, a line break would forge a line: the relay it came
            // from should have refused it (`receive.rs`).
            if !stamp.is_empty() && eaxchat_proto::sanitize::has_line_break(text) {
                self.stats.cluster_rejected += 1;
                continue;
            }
            match kind {
                // End-to-end rooms are one relay's: their group order is
                // its Delivery Service's (`e2e.rs`), not a cluster's.
                EntryKind::Mls => {
                    self.stats.cluster_rejected += 1;
                    continue;
                }
                EntryKind::Message => {
                    batch.push_stamped(stamp.as_bytes(), text);
                }
                EntryKind::Action => {
                    let before = batch.take();
                    self.queue_in_room(room_id, None, from, &before);
                    self.tell_room(
                        room_id,
                        None,
                        &Event::Message {
                            room,
                            from,
                            text,
                            ts,
                            history: false,
                            action: true,
                            stamped: self.is_members(),
                            id: self.chat.rooms.get(room_id).map_or(0, |r| r.said()),
                        },
                    );
                }
            }
            self.remember_in(room_id, from.cloned(), text, *kind, ts);
        }
        self.queue_in_room(room_id, None, from, &batch);
    }

    /// A private message from another relay for `to`, if `to` is here.
    fn remote_private(&mut self, from: Option<&Name>, to: &Name, text: &[u8], ts: u64) {
        let recipients = self.connections_named(to);
        for id in recipients {
            self.send_event(
                id,
                &Event::Private {
                    from,
                    to,
                    text,
                    ts,
                    echo: false,
                },
            );
        }
    }

    /// Someone on another relay joined, left or was renamed in `room`: the
    /// people here in it are told.
    fn remote_presence(&mut self, room: &RoomName, name: &Name, change: &Change, ts: u64) {
        if !self.chat.presence {
            return;
        }
        let Some(room_id) = self.chat.rooms.find(room) else {
            return;
        };
        let count = self.people_in(room_id, room);
        let event = match change {
            Change::Joined | Change::Left => Event::Presence {
                room,
                name,
                count,
                ts,
                joined: *change == Change::Joined,
            },
            Change::Renamed(old) => Event::Nick {
                room,
                from: Some(old),
                to: name,
                ts,
            },
        };
        self.tell_room(room_id, None, &event);
    }

    /// A relay was lost or left: the people here are told its people left.
    fn announce_lost(&mut self, relay: &Lost) {
        if !self.chat.presence {
            return;
        }
        let ts = self.wall_millis();
        for state in &relay.rooms {
            let Some(room_id) = self.chat.rooms.find(&state.room) else {
                continue;
            };
            let count = self.people_in(room_id, &state.room);
            for (name, _) in &state.names {
                self.tell_room(
                    room_id,
                    None,
                    &Event::Presence {
                        room: &state.room,
                        name,
                        count,
                        ts,
                        joined: false,
                    },
                );
            }
        }
    }

    /// The arrived connections here that go by `name`.
    pub(super) fn connections_named(&self, name: &Name) -> Vec<ConnId> {
        let ids: Vec<ConnId> = match &self.mode {
            Mode::Members(roster) => roster
                .connections_of(name)
                .map(<[ConnId]>::to_vec)
                .unwrap_or_default(),
            Mode::Sessions(roster) => roster
                .connections_of(name)
                .map(<[ConnId]>::to_vec)
                .unwrap_or_default(),
            Mode::Shared(_) => self
                .chat
                .nicks
                .get(name)
                .map(|&id| vec![id])
                .unwrap_or_default(),
        };
        ids.into_iter()
            .filter(|&id| self.peers.get(id).is_some_and(|peer| peer.chat.arrived))
            .collect()
    }
}
