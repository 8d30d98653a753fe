//! A members relay's members as the relay serves them: each member's key
//! state computed once, which member a connection's first frame comes
//! from, and which connections are each member's.
//!
//! A [`Roster`] is built from a parsed [`Members`] file. Each member's
//! [`EaxKey`] is expanded once, here, so
//! that identifying a first frame costs one [`EaxKey::verifies`] per
//! member tried, in file order ([`Roster::identify`]), and sealing for a
//! member costs one seal. Every member shares the relay's one nonce
//! generator and scratch buffers ([`Roster::sealer`]).
//!
//! This module never reveals key material, and knows nothing of sockets
//! or queues: the relay owns what is sent to whom.

use std::collections::{HashMap, HashSet};

use bytes::{BufMut as _, BytesMut};

use crate::conn_id::ConnId;
use crate::members::Members;
use eaxchat_proto::cipher::{self, KeySealer, OpenError};
use eaxchat_proto::eax_key::EaxKey;
use eaxchat_proto::key::Key;
use eaxchat_proto::name::Name;
use eaxchat_proto::nonce::Nonces;
use eaxchat_proto::wire::{self, NONCE_LEN, OVERHEAD};

/// Longest first-frame ciphertext tried against the members' keys: the
/// work of identifying is the number of members times this length.
pub const IDENTIFY_MAX: usize = 2048;

/// A member's place in the roster: valid until the next
/// [`Roster::replace`].
pub type Seat = usize;

/// Which member a first frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identified {
    /// It opens under this member's key.
    Member(Seat),
    /// It does not open under any member's key (or is not a frame).
    Nobody(OpenError),
    /// Its ciphertext is longer than [`IDENTIFY_MAX`].
    TooLong,
}

/// One member's state.
struct Seated {
    name: Name,
    key: Key,
    eax: EaxKey,
    /// `NAME: `, put before each message the member sends.
    stamp: Box<[u8]>,
    /// The open connections identified as this member.
    conns: Vec<ConnId>,
    /// Its key index in the replay window ([`Stamped::replay_key`]).
    replay_key: u32,
}

/// The first replay key of a member: 0 is shared-key mode's.
const FIRST_REPLAY_KEY: u32 = 1;

/// A frame [`Roster::open_stamped`] opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamped {
    /// Bytes appended without the `\n`: 0 for an empty plaintext, which
    /// only identifies.
    pub len: usize,
    /// The frame's nonce, for the replay check.
    pub nonce: [u8; NONCE_LEN],
    /// The member's key index in the replay window: kept across reloads
    /// while name and key stay, new for a new or re-keyed member.
    pub replay_key: u32,
}

/// What a [`Roster::replace`] changed, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Members new in this file.
    pub added: Vec<Name>,
    /// Members no longer in the file.
    pub removed: Vec<Name>,
    /// Members whose key changed.
    pub rekeyed: Vec<Name>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.rekeyed.is_empty()
    }
}

/// The members, their key states and their connections.
pub struct Roster {
    seats: Vec<Seated>,
    /// The seats with at least one connection, in no order.
    present: Vec<Seat>,
    /// The next replay key to hand out ([`Stamped::replay_key`]).
    next_replay_key: u32,
    nonces: Nonces,
    /// Scratch for decoding and opening.
    frame: Vec<u8>,
    /// Scratch for sealing.
    seal_frame: Vec<u8>,
}

impl std::fmt::Debug for Roster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roster")
            .field("members", &self.seats.len())
            .field("present", &self.present.len())
            .finish_non_exhaustive()
    }
}

impl Roster {
    /// The roster of `members`, its nonces seeded from the OS.
    pub fn new(members: &Members) -> std::io::Result<Roster> {
        Ok(Roster::with_nonces(members, Nonces::from_os()?))
    }

    /// The roster of `members`, sealing with `nonces` (a fixed seed only
    /// in tests, benches and fuzzing).
    pub fn with_nonces(members: &Members, nonces: Nonces) -> Roster {
        let mut next_replay_key = FIRST_REPLAY_KEY;
        Roster {
            seats: seats(members, &mut next_replay_key),
            next_replay_key,
            present: Vec::new(),
            nonces,
            frame: Vec::new(),
            seal_frame: Vec::new(),
        }
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.seats.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.seats.is_empty()
    }

    /// A member's name.
    pub fn name(&self, seat: Seat) -> Option<&Name> {
        self.seats.get(seat).map(|seated| &seated.name)
    }

    /// How long the stamp put before each of a member's messages is: its
    /// text starts there.
    pub fn stamp_len(&self, seat: Seat) -> usize {
        self.seats.get(seat).map_or(0, |seated| seated.stamp.len())
    }

    /// Every member's name, in file order.
    pub fn names(&self) -> impl Iterator<Item = &Name> {
        self.seats.iter().map(|seated| &seated.name)
    }

    /// The open connections of the member called `name`, if there is one.
    pub fn connections_of(&self, name: &Name) -> Option<&[ConnId]> {
        self.seats
            .iter()
            .find(|seated| seated.name == *name)
            .map(|seated| seated.conns.as_slice())
    }

    /// A member's expanded key, for splitting their newline-less frames.
    pub fn eax_key(&self, seat: Seat) -> Option<&EaxKey> {
        self.seats.get(seat).map(|seated| &seated.eax)
    }

    /// Finds the member whose key opens `line` (base64 without its
    /// terminator): the first in file order. Decrypts nothing.
    pub fn identify(&mut self, line: &[u8]) -> Identified {
        let frame_len = match wire::decode_line(line, &mut self.frame) {
            Ok(len) => len,
            Err(error) => return Identified::Nobody(error.into()),
        };
        let Some(frame) = self.frame.get(..frame_len) else {
            return Identified::Nobody(OpenError::TooShort);
        };
        if frame.len() < OVERHEAD {
            return Identified::Nobody(OpenError::TooShort);
        }
        if frame.len() - OVERHEAD > IDENTIFY_MAX {
            return Identified::TooLong;
        }
        match EaxKey::first_verifying(self.seats.iter().map(|seated| &seated.eax), frame) {
            Some(seat) => Identified::Member(seat),
            None => Identified::Nobody(OpenError::BadTag),
        }
    }

    /// Opens `line` under `seat`'s key and, unless its plaintext is empty,
    /// appends `NAME: ` and the plaintext and `\n` to `out`. Returns the
    /// length appended without the `\n` (0 for an empty plaintext).
    pub fn open_stamped(
        &mut self,
        seat: Seat,
        line: &[u8],
        out: &mut BytesMut,
    ) -> Result<Stamped, OpenError> {
        let Some(seated) = self.seats.get(seat) else {
            return Err(OpenError::BadTag);
        };
        let frame_len = wire::decode_line(line, &mut self.frame)?;
        let frame = self.frame.get_mut(..frame_len).ok_or(OpenError::TooShort)?;
        let nonce = frame
            .first_chunk::<NONCE_LEN>()
            .copied()
            .ok_or(OpenError::TooShort)?;
        let plaintext = cipher::open_decoded(&seated.eax, frame)?;
        let mut stamped = Stamped {
            len: 0,
            nonce,
            replay_key: seated.replay_key,
        };
        if !plaintext.is_empty() {
            out.extend_from_slice(&seated.stamp);
            out.extend_from_slice(plaintext);
            out.put_u8(b'\n');
            stamped.len = seated.stamp.len() + plaintext.len();
        }
        Ok(stamped)
    }

    /// Whether `nonce` is one this roster sealed with: a relay frame a
    /// client sent back.
    pub fn is_own_nonce(&self, nonce: &[u8; NONCE_LEN]) -> bool {
        self.nonces.is_own(nonce)
    }

    /// A sealer for `seat`'s key over the shared nonces and buffer.
    pub fn sealer(&mut self, seat: Seat) -> Option<KeySealer<'_>> {
        let seated = self.seats.get(seat)?;
        Some(KeySealer {
            key: &seated.eax,
            nonces: &mut self.nonces,
            frame: &mut self.seal_frame,
        })
    }

    /// Notes that connection `id` is `seat`'s.
    pub fn join(&mut self, seat: Seat, id: ConnId) {
        if let Some(seated) = self.seats.get_mut(seat) {
            if seated.conns.is_empty() {
                self.present.push(seat);
            }
            seated.conns.push(id);
        }
    }

    /// Notes that connection `id`, `seat`'s, left.
    pub fn leave(&mut self, seat: Seat, id: ConnId) {
        if let Some(seated) = self.seats.get_mut(seat) {
            seated.conns.retain(|&conn| conn != id);
            if seated.conns.is_empty() {
                self.present.retain(|&present| present != seat);
            }
        }
    }

    /// How many members have connections.
    pub fn present(&self) -> usize {
        self.present.len()
    }

    /// Calls `each` for every member with connections, with those
    /// connections and a sealer for the member's key.
    pub fn for_each_present(&mut self, mut each: impl FnMut(&[ConnId], &mut KeySealer<'_>)) {
        for &seat in &self.present {
            let Some(seated) = self.seats.get(seat) else {
                continue;
            };
            let mut sealer = KeySealer {
                key: &seated.eax,
                nonces: &mut self.nonces,
                frame: &mut self.seal_frame,
            };
            each(&seated.conns, &mut sealer);
        }
    }

    /// Replaces the members with `members`. Returns what changed and, for
    /// each old seat, its new seat if the member stayed with the same key
    /// (their connections are carried over) or `None`.
    pub fn replace(&mut self, members: &Members) -> (Changes, Vec<Option<Seat>>) {
        let mut new = seats(members, &mut self.next_replay_key);
        let new_seat: HashMap<Name, Seat> = new
            .iter()
            .enumerate()
            .map(|(seat, seated)| (seated.name.clone(), seat))
            .collect();
        let mut changes = Changes::default();
        let mut moved = Vec::with_capacity(self.seats.len());
        for old in &mut self.seats {
            let Some(&seat) = new_seat.get(&old.name) else {
                changes.removed.push(old.name.clone());
                moved.push(None);
                continue;
            };
            match new.get_mut(seat) {
                Some(seated) if seated.key == old.key => {
                    seated.conns = std::mem::take(&mut old.conns);
                    seated.replay_key = old.replay_key;
                    moved.push(Some(seat));
                }
                _ => {
                    changes.rekeyed.push(old.name.clone());
                    moved.push(None);
                }
            }
        }
        let old_names: HashSet<&Name> = self.seats.iter().map(|old| &old.name).collect();
        changes.added = new
            .iter()
            .filter(|seated| !old_names.contains(&seated.name))
            .map(|seated| seated.name.clone())
            .collect();
        self.present = (0..new.len())
            .filter(|&seat| new.get(seat).is_some_and(|seated| !seated.conns.is_empty()))
            .collect();
        self.seats = new;
        (changes, moved)
    }
}

fn seats(members: &Members, next_replay_key: &mut u32) -> Vec<Seated> {
    members
        .iter()
        .map(|member| {
            let replay_key = *next_replay_key;
            *next_replay_key = next_replay_key.wrapping_add(1).max(FIRST_REPLAY_KEY);
            let mut stamp = member.name().as_str().as_bytes().to_vec();
            stamp.extend_from_slice(b": ");
            Seated {
                name: member.name().clone(),
                key: member.key().clone(),
                eax: cipher::eax_key(member.key()),
                stamp: stamp.into_boxed_slice(),
                conns: Vec::new(),
                replay_key,
            }
        })
        .collect()
}
