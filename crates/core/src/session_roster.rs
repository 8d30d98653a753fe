//! A session relay's members as the relay serves them: the relay's own
//! identity, each device key found by one hash lookup, each member's stamp
//! built once, and which connections are each member's.
//!
//! A [`SessionRoster`] is built from a parsed [`SessionMembers`] file and
//! the relay's static secret. A hello's key is looked up
//! ([`SessionRoster::seat_of`]), never tried against every member, so
//! identification costs the same with ten members or ten thousand. Every
//! session shares the roster's two scratch buffers, one for opening and
//! one for sealing, so an idle session holds none.
//!
//! This module holds the relay's secret but never shows it, and knows
//! nothing of sockets or queues: the relay owns what is sent to whom, and
//! each connection's session keys live with the connection.

use std::collections::{HashMap, HashSet};

use bytes::{BufMut as _, BytesMut};

use crate::conn_id::ConnId;
use crate::members::SessionMembers;
use crate::roster::{Changes, Seat};
use eaxchat_proto::name::Name;
use eaxchat_proto::session::{Opener, PublicKey, Sealer, SessionError, StaticSecret};

/// One member's state: every device shares it.
struct Seated {
    name: Name,
    /// `NAME: `, put before each message the member sends.
    stamp: Box<[u8]>,
    /// The member's device keys, in file order.
    keys: Vec<PublicKey>,
    /// The established sessions of this member's devices.
    conns: Vec<ConnId>,
}

/// The members, their device keys and their sessions.
pub struct SessionRoster {
    identity: StaticSecret,
    seats: Vec<Seated>,
    by_key: HashMap<PublicKey, Seat>,
    by_name: HashMap<Name, Seat>,
    /// Scratch for decoding and opening a frame.
    open_frame: Vec<u8>,
    /// Scratch for sealing a frame.
    seal_frame: Vec<u8>,
}

impl std::fmt::Debug for SessionRoster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRoster")
            .field("relay", self.identity.public_key())
            .field("members", &self.seats.len())
            .field("devices", &self.by_key.len())
            .finish_non_exhaustive()
    }
}

impl SessionRoster {
    /// The roster of `members`, served under the relay's `identity`.
    pub fn new(members: &SessionMembers, identity: StaticSecret) -> SessionRoster {
        let (seats, by_key, by_name) = seats(members);
        SessionRoster {
            identity,
            seats,
            by_key,
            by_name,
            open_frame: Vec::new(),
            seal_frame: Vec::new(),
        }
    }

    /// The relay's static secret, for reading hellos.
    pub fn identity(&self) -> &StaticSecret {
        &self.identity
    }

    /// The relay's public key: what clients pin.
    pub fn public_key(&self) -> &PublicKey {
        self.identity.public_key()
    }

    /// How many members (names) there are.
    pub fn len(&self) -> usize {
        self.seats.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.seats.is_empty()
    }

    /// How many devices there are.
    pub fn devices(&self) -> usize {
        self.by_key.len()
    }

    /// The member whose device holds `key`, if any.
    pub fn seat_of(&self, key: &PublicKey) -> Option<Seat> {
        self.by_key.get(key).copied()
    }

    /// A member's name.
    pub fn name(&self, seat: Seat) -> Option<&Name> {
        self.seats.get(seat).map(|seated| &seated.name)
    }

    /// How long the stamp put before each of a member's messages is.
    pub fn stamp_len(&self, seat: Seat) -> usize {
        self.seats.get(seat).map_or(0, |seated| seated.stamp.len())
    }

    /// Every member's name and device keys, in file order.
    pub fn members(&self) -> impl Iterator<Item = (&Name, &[PublicKey])> {
        self.seats
            .iter()
            .map(|seated| (&seated.name, seated.keys.as_slice()))
    }

    /// The established sessions of the member called `name`, if there is
    /// one.
    pub fn connections_of(&self, name: &Name) -> Option<&[ConnId]> {
        let seat = self.by_name.get(name)?;
        self.seats.get(*seat).map(|seated| seated.conns.as_slice())
    }

    /// Opens `line` with `opener` (the session of one of `seat`'s devices)
    /// and, unless its plaintext is empty, appends `NAME: `, the plaintext
    /// and `\n` to `out`. Returns the length appended without the `\n` (0
    /// for an empty plaintext, which appends nothing).
    pub fn open_stamped(
        &mut self,
        seat: Seat,
        opener: &mut Opener,
        line: &[u8],
        out: &mut BytesMut,
    ) -> Result<usize, SessionError> {
        let Some(seated) = self.seats.get(seat) else {
            return Err(SessionError::BadTag);
        };
        let plaintext = opener.open(line, &mut self.open_frame)?;
        if plaintext.is_empty() {
            return Ok(0);
        }
        out.extend_from_slice(&seated.stamp);
        out.extend_from_slice(plaintext);
        out.put_u8(b'\n');
        Ok(seated.stamp.len() + plaintext.len())
    }

    /// Seals `plaintext` as `sealer`'s next frame and appends the line and
    /// its `\n` to `out`, over the shared sealing buffer.
    pub fn seal_into(
        &mut self,
        sealer: &mut Sealer,
        plaintext: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), SessionError> {
        sealer.seal_into(plaintext, &mut self.seal_frame, out)
    }

    /// Seals `\n`-joined plaintexts of lengths `lens`, a line each, as
    /// `sealer`'s next frames, into `out`, side by side over the shared
    /// sealing buffer ([`Sealer::seal_joined`]). A length past the end of
    /// `plaintexts` ends the run there.
    pub fn seal_joined(
        &mut self,
        sealer: &mut Sealer,
        plaintexts: &[u8],
        lens: &[usize],
        out: &mut BytesMut,
    ) -> Result<(), SessionError> {
        sealer.seal_joined(plaintexts, lens, &mut self.seal_frame, out)
    }

    /// Notes that connection `id` is a session of `seat`'s.
    pub fn join(&mut self, seat: Seat, id: ConnId) {
        if let Some(seated) = self.seats.get_mut(seat) {
            seated.conns.push(id);
        }
    }

    /// Notes that connection `id`, a session of `seat`'s, left.
    pub fn leave(&mut self, seat: Seat, id: ConnId) {
        if let Some(seated) = self.seats.get_mut(seat) {
            seated.conns.retain(|&conn| conn != id);
        }
    }

    /// Adds device `key` to member `name` (a new member if there is none
    /// such), as an invite join does before the members file is rewritten
    /// with it. Returns its seat; a key that is some member's already
    /// keeps its seat.
    pub fn add_device(&mut self, name: &Name, key: PublicKey) -> Seat {
        if let Some(&seat) = self.by_key.get(&key) {
            return seat;
        }
        let seat = *self.by_name.entry(name.clone()).or_insert_with(|| {
            let mut stamp = name.as_str().as_bytes().to_vec();
            stamp.extend_from_slice(b": ");
            self.seats.push(Seated {
                name: name.clone(),
                stamp: stamp.into_boxed_slice(),
                keys: Vec::new(),
                conns: Vec::new(),
            });
            self.seats.len() - 1
        });
        if let Some(seated) = self.seats.get_mut(seat) {
            seated.keys.push(key);
        }
        self.by_key.insert(key, seat);
        seat
    }

    /// Replaces the members with `members`, keeping the relay's identity.
    /// Every member starts with no sessions: the relay joins again those it
    /// keeps. Returns what changed by name: `rekeyed` are the members whose
    /// devices changed (one added or removed).
    pub fn replace(&mut self, members: &SessionMembers) -> Changes {
        let (seats, by_key, by_name) = seats(members);
        let mut changes = Changes::default();
        for old in &self.seats {
            match by_name.get(&old.name).and_then(|&seat| seats.get(seat)) {
                None => changes.removed.push(old.name.clone()),
                Some(new) => {
                    let before: HashSet<&PublicKey> = old.keys.iter().collect();
                    let after: HashSet<&PublicKey> = new.keys.iter().collect();
                    if before != after {
                        changes.rekeyed.push(old.name.clone());
                    }
                }
            }
        }
        changes.added = seats
            .iter()
            .filter(|seated| !self.by_name.contains_key(&seated.name))
            .map(|seated| seated.name.clone())
            .collect();
        self.seats = seats;
        self.by_key = by_key;
        self.by_name = by_name;
        changes
    }
}

type Seats = (Vec<Seated>, HashMap<PublicKey, Seat>, HashMap<Name, Seat>);

fn seats(members: &SessionMembers) -> Seats {
    let mut seats: Vec<Seated> = Vec::new();
    let mut by_key = HashMap::with_capacity(members.len());
    let mut by_name: HashMap<Name, Seat> = HashMap::new();
    for device in members {
        let seat = *by_name.entry(device.name().clone()).or_insert_with(|| {
            let mut stamp = device.name().as_str().as_bytes().to_vec();
            stamp.extend_from_slice(b": ");
            seats.push(Seated {
                name: device.name().clone(),
                stamp: stamp.into_boxed_slice(),
                keys: Vec::new(),
                conns: Vec::new(),
            });
            seats.len() - 1
        });
        if let Some(seated) = seats.get_mut(seat) {
            seated.keys.push(*device.key());
        }
        by_key.insert(*device.key(), seat);
    }
    (seats, by_key, by_name)
}

#[cfg(test)]
mod tests {
    // Tests may unwrap: a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;

    fn public(byte: u8) -> PublicKey {
        PublicKey::from_bytes([byte; 32])
    }

    fn members(list: &[(&str, u8)]) -> SessionMembers {
        let text: String = list
            .iter()
            .map(|(name, byte)| format!("{name} {}\n", public(*byte)))
            .collect();
        SessionMembers::parse(text.as_bytes(), Path::new("m")).unwrap()
    }

    fn names(list: &[Name]) -> Vec<&str> {
        list.iter().map(Name::as_str).collect()
    }

    #[test]
    fn devices_are_found_by_key_and_share_their_members_seat() {
        let identity = StaticSecret::from_bytes(&[9; 32]).unwrap();
        let relay_key = *identity.public_key();
        let roster = SessionRoster::new(
            &members(&[("alice", 1), ("bob", 2), ("alice", 3)]),
            identity,
        );
        assert_eq!((roster.len(), roster.devices()), (2, 3));
        assert_eq!(roster.public_key(), &relay_key);
        let alice = roster.seat_of(&public(1)).unwrap();
        assert_eq!(roster.seat_of(&public(3)), Some(alice));
        assert_eq!(roster.name(alice).unwrap().as_str(), "alice");
        assert_eq!(roster.stamp_len(alice), "alice: ".len());
        assert_ne!(roster.seat_of(&public(2)), Some(alice));
        assert_eq!(roster.seat_of(&public(4)), None);
        let debug = format!("{roster:?}");
        assert!(debug.contains(&relay_key.to_string()), "{debug}");
    }

    #[test]
    fn a_replacement_says_who_was_added_removed_or_changed_devices() {
        let identity = StaticSecret::from_bytes(&[9; 32]).unwrap();
        let mut roster = SessionRoster::new(
            &members(&[("alice", 1), ("alice", 2), ("bob", 3), ("carol", 4)]),
            identity,
        );
        let alice = roster.seat_of(&public(1)).unwrap();
        roster.join(alice, 7);
        let name = Name::new("alice").unwrap();
        assert_eq!(roster.connections_of(&name), Some(&[7][..]));
        let changes = roster.replace(&members(&[("alice", 1), ("carol", 4), ("dave", 5)]));
        assert_eq!(names(&changes.removed), ["bob"]);
        assert_eq!(names(&changes.rekeyed), ["alice"]);
        assert_eq!(names(&changes.added), ["dave"]);
        assert_eq!(roster.seat_of(&public(2)), None);
        assert_eq!(roster.connections_of(&name), Some(&[][..]));
        assert!(
            roster
                .replace(&members(&[("alice", 1), ("carol", 4), ("dave", 5)]))
                .is_empty()
        );
    }
}
