//! The other relays of the cluster as this one knows them: who is on each,
//! room by room, when each was last heard from, and which of its
//! envelopes were taken already.
//!
//! A relay is heard from its first envelope that opens, but nothing of it
//! is taken until one of its heartbeats names this relay's origin (random
//! at every start, so that heartbeat was sent after this relay started);
//! every envelope it numbered before that heartbeat is refused, a replay
//! captured before this relay started among them. It is forgotten (its
//! people announced gone) after the cluster timeout of silence, or when it
//! says goodbye. Replays are refused per origin by sequence number (the
//! highest taken and a window of [`WINDOW`] before it, for envelopes NATS
//! hands over a little out of order), and by stamp (more than [`MAX_AGE`]
//! from this relay's clock); a relay's numbers are kept for [`REMEMBER`]
//! after it is lost, so a captured envelope is refused at any age.
//!
//! It only keeps accounts: it never opens or seals an envelope, never tells
//! a client anything, and never reads the clock (the time is passed in).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::envelope::RoomState;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::name::Name;

/// Sequence numbers below the highest taken that may still arrive.
pub const WINDOW: u64 = 1024;

/// The farthest an envelope's stamp may be from this relay's clock.
pub const MAX_AGE: Duration = Duration::from_secs(120);

/// How long a lost or departed relay's numbers are kept.
pub const REMEMBER: Duration = Duration::from_secs(600);

/// Most relays known at once (alive or remembered); a new one past this
/// evicts the one heard from least recently.
pub const MAX_RELAYS: usize = 4096;

/// Why an envelope from another relay is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Its sequence number was taken before, or is too far behind.
    Replayed,
    /// Its stamp is more than [`MAX_AGE`] from this relay's clock.
    OutOfTime,
    /// It comes from a relay that said goodbye or was lost.
    Departed,
    /// Its relay has not yet named this one in a heartbeat: it may have
    /// been sent before this relay started.
    Unconfirmed {
        /// Whether it is the first envelope heard from that relay.
        first: bool,
    },
}

/// The sequence numbers taken from one origin.
#[derive(Debug, Clone, Default)]
struct SeqWindow {
    highest: u64,
    /// Bit `i` set: `highest - i` was taken.
    seen: [u64; (WINDOW / 64) as usize],
}

impl SeqWindow {
    fn take(&mut self, seq: u64) -> bool {
        if seq > self.highest {
            let shift = seq - self.highest;
            self.shift(shift);
            self.highest = seq;
            self.set(0);
            return true;
        }
        let back = self.highest - seq;
        if back >= WINDOW || self.get(back) {
            return false;
        }
        self.set(back);
        true
    }

    fn get(&self, back: u64) -> bool {
        self.seen[(back / 64) as usize] & (1 << (back % 64)) != 0
    }

    fn set(&mut self, back: u64) {
        self.seen[(back / 64) as usize] |= 1 << (back % 64);
    }

    /// Moves every bit `by` places older.
    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.seen = Default::default();
            return;
        }
        let words = (by / 64) as usize;
        let bits = by % 64;
        let len = self.seen.len();
        for i in (0..len).rev() {
            let from = i.checked_sub(words);
            let high = from.map_or(0, |j| self.seen[j] << bits);
            let low = match (from.and_then(|j| j.checked_sub(1)), bits) {
                (Some(j), bits) if bits > 0 => self.seen[j] >> (64 - bits),
                _ => 0,
            };
            self.seen[i] = high | low;
        }
    }
}

/// Whether a relay is in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Alive,
    /// Quiet past the timeout: back if it speaks again.
    Lost,
    /// It said goodbye: a relay starts again under a new origin, so nothing
    /// more of this one's is taken.
    Departed,
}

/// One other relay.
#[derive(Debug)]
struct Relay {
    label: String,
    last_heard: Instant,
    window: SeqWindow,
    /// The sequence number of the envelope its rooms were last set from.
    applied: u64,
    /// The sequence number of its first heartbeat that named this relay:
    /// only envelopes after it are taken. `None` until then.
    floor: Option<u64>,
    /// Lost or departed: kept only for its numbers, until
    /// `last_heard + REMEMBER`.
    standing: Standing,
    rooms: HashMap<RoomName, RoomState>,
}

/// A relay that went quiet or said goodbye, and who was on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// How it called itself.
    pub label: String,
    /// The rooms it had people in, and their names.
    pub rooms: Vec<RoomState>,
}

/// Every other relay this one knows.
#[derive(Debug)]
pub struct Remotes {
    relays: HashMap<u64, Relay>,
    timeout: Duration,
}

impl Remotes {
    /// No relays known; a relay heard from nothing for `timeout` is lost.
    pub fn new(timeout: Duration) -> Remotes {
        Remotes {
            relays: HashMap::new(),
            timeout,
        }
    }

    /// The cluster timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Takes envelope `seq` of `origin`, stamped `ts_millis`, at `now`
    /// (`wall_millis` on this relay's clock), or says why not; `names_me`:
    /// it is a heartbeat that lists this relay among those its origin has
    /// heard. Returns whether `origin` is new (or back) in the cluster.
    pub fn take(
        &mut self,
        origin: u64,
        seq: u64,
        ts_millis: u64,
        now: Instant,
        wall_millis: u64,
        names_me: bool,
    ) -> Result<bool, Stale> {
        if ts_millis.abs_diff(wall_millis) > MAX_AGE.as_millis() as u64 {
            return Err(Stale::OutOfTime);
        }
        let new = !self.relays.contains_key(&origin);
        if new && self.relays.len() >= MAX_RELAYS {
            self.evict_one();
        }
        let relay = self.relays.entry(origin).or_insert_with(|| Relay {
            label: format!("{origin:016x}"),
            last_heard: now,
            window: SeqWindow::default(),
            applied: 0,
            floor: None,
            standing: Standing::Alive,
            rooms: HashMap::new(),
        });
        if relay.standing == Standing::Departed {
            return Err(Stale::Departed);
        }
        let Some(floor) = relay.floor else {
            // Heard (so this relay's heartbeats list it), not yet taken.
            relay.last_heard = now;
            if !names_me {
                return Err(Stale::Unconfirmed { first: new });
            }
            relay.floor = Some(seq);
            relay.window = SeqWindow::default();
            relay.window.take(seq);
            return Ok(true);
        };
        if seq <= floor || !relay.window.take(seq) {
            return Err(Stale::Replayed);
        }
        relay.last_heard = now;
        let back = relay.standing == Standing::Lost;
        relay.standing = Standing::Alive;
        Ok(new || back)
    }

    fn evict_one(&mut self) {
        if let Some(oldest) = self
            .relays
            .iter()
            .min_by_key(|(_, relay)| (relay.standing == Standing::Alive, relay.last_heard))
            .map(|(&origin, _)| origin)
        {
            self.relays.remove(&oldest);
        }
    }

    /// `origin`'s whole state, from its envelope `seq`: replaces what was
    /// known, unless a later envelope set it already. Returns whether it
    /// has people in a room it had none in before (its people there have
    /// not heard who is here yet).
    pub fn set_state(
        &mut self,
        origin: u64,
        seq: u64,
        label: String,
        rooms: Vec<RoomState>,
    ) -> bool {
        let Some(relay) = self.alive_mut(origin) else {
            return false;
        };
        relay.label = label;
        if seq < relay.applied {
            return false;
        }
        relay.applied = seq;
        let new_room = rooms
            .iter()
            .any(|state| !relay.rooms.contains_key(&state.room));
        relay.rooms = rooms
            .into_iter()
            .map(|state| (state.room.clone(), state))
            .collect();
        new_room
    }

    /// Someone on `origin` joined, left or was renamed in a room, by its
    /// envelope `seq`: `here` is who is in that room there now.
    pub fn change(&mut self, origin: u64, seq: u64, here: RoomState) {
        let Some(relay) = self.alive_mut(origin) else {
            return;
        };
        if seq < relay.applied {
            return;
        }
        relay.applied = seq;
        if here.names.is_empty() && here.unnamed == 0 {
            relay.rooms.remove(&here.room);
        } else {
            relay.rooms.insert(here.room.clone(), here);
        }
    }

    fn alive_mut(&mut self, origin: u64) -> Option<&mut Relay> {
        self.relays
            .get_mut(&origin)
            .filter(|relay| relay.standing == Standing::Alive && relay.floor.is_some())
    }

    /// The relays heard from and not lost or departed (taken from or
    /// not): what this relay's heartbeat lists, so that they take its
    /// envelopes.
    pub fn heard(&self) -> Vec<u64> {
        let mut heard: Vec<u64> = self
            .relays
            .iter()
            .filter(|(_, relay)| relay.standing == Standing::Alive)
            .map(|(&origin, _)| origin)
            .collect();
        heard.sort_unstable();
        heard
    }

    /// `origin` said goodbye: returns who was on it.
    pub fn depart(&mut self, origin: u64) -> Option<Lost> {
        let relay = self.relays.get_mut(&origin)?;
        if relay.standing == Standing::Departed {
            return None;
        }
        relay.standing = Standing::Departed;
        Some(Lost {
            label: relay.label.clone(),
            rooms: relay.rooms.drain().map(|(_, state)| state).collect(),
        })
    }

    /// The relays heard from nothing for the timeout, as of `now`: they are
    /// lost, their people returned. Relays quiet past [`REMEMBER`] are
    /// forgotten.
    pub fn expire(&mut self, now: Instant) -> Vec<Lost> {
        let timeout = self.timeout;
        self.relays.retain(|_, relay| {
            let quiet = now.saturating_duration_since(relay.last_heard);
            if relay.floor.is_none() {
                // Never taken from: nothing to announce or remember.
                return quiet < timeout;
            }
            relay.standing == Standing::Alive || quiet < REMEMBER
        });
        let mut lost = Vec::new();
        for relay in self.relays.values_mut() {
            if relay.standing == Standing::Alive
                && now.saturating_duration_since(relay.last_heard) >= timeout
            {
                relay.standing = Standing::Lost;
                lost.push(Lost {
                    label: relay.label.clone(),
                    rooms: relay.rooms.drain().map(|(_, state)| state).collect(),
                });
            }
        }
        lost
    }

    /// When the next relay will be lost if it stays quiet.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.relays
            .values()
            .filter(|relay| relay.standing == Standing::Alive)
            .map(|relay| relay.last_heard + self.timeout)
            .min()
    }

    /// Forgets who is on every relay (their numbers are kept): this relay
    /// lost NATS, and will hear their state again when it is back.
    pub fn forget_people(&mut self) -> Vec<Lost> {
        let mut lost = Vec::new();
        for relay in self
            .relays
            .values_mut()
            .filter(|relay| relay.standing == Standing::Alive)
        {
            let rooms: Vec<RoomState> = relay.rooms.drain().map(|(_, state)| state).collect();
            if !rooms.is_empty() {
                lost.push(Lost {
                    label: relay.label.clone(),
                    rooms,
                });
            }
        }
        lost
    }

    /// Connections in `room` on the other relays.
    pub fn count(&self, room: &RoomName) -> usize {
        self.rooms_named(room)
            .map(|state| {
                state.unnamed as usize
                    + state
                        .names
                        .iter()
                        .map(|&(_, conns)| conns as usize)
                        .sum::<usize>()
            })
            .sum()
    }

    /// The names in `room` on the other relays, and connections with none.
    pub fn who(&self, room: &RoomName) -> (Vec<Name>, usize) {
        let mut names = Vec::new();
        let mut unnamed = 0;
        for state in self.rooms_named(room) {
            names.extend(state.names.iter().map(|(name, _)| name.clone()));
            unnamed += state.unnamed as usize;
        }
        (names, unnamed)
    }

    /// Every room with someone on another relay, and how many.
    pub fn occupied(&self) -> HashMap<RoomName, usize> {
        let mut rooms: HashMap<RoomName, usize> = HashMap::new();
        for relay in self
            .relays
            .values()
            .filter(|relay| relay.standing == Standing::Alive)
        {
            for room in relay.rooms.keys() {
                rooms
                    .entry(room.clone())
                    .or_insert_with(|| self.count(room));
            }
        }
        rooms
    }

    /// Whether `name` is on another relay, in any room.
    pub fn has_name(&self, name: &Name) -> bool {
        self.relays
            .values()
            .filter(|relay| relay.standing == Standing::Alive)
            .flat_map(|relay| relay.rooms.values())
            .any(|state| state.names.iter().any(|(n, _)| n == name))
    }

    /// Relays alive now (and taken from).
    pub fn alive(&self) -> usize {
        self.relays
            .values()
            .filter(|relay| relay.standing == Standing::Alive && relay.floor.is_some())
            .count()
    }

    fn rooms_named<'a>(&'a self, room: &'a RoomName) -> impl Iterator<Item = &'a RoomState> {
        self.relays
            .values()
            .filter(|relay| relay.standing == Standing::Alive)
            .filter_map(move |relay| relay.rooms.get(room))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::new(text).expect("a valid name")
    }

    fn room(text: &str) -> RoomName {
        RoomName::new(text.as_bytes()).expect("a valid room")
    }

    const WALL: u64 = 1_800_000_000_000;

    fn here(room_name: &str, names: &[&str], unnamed: u32) -> RoomState {
        RoomState {
            room: room(room_name),
            names: names.iter().map(|n| (name(n), 1)).collect(),
            unnamed,
        }
    }

    #[test]
    fn sequence_numbers_are_taken_once_within_the_window() {
        let mut window = SeqWindow::default();
        assert!(window.take(1));
        assert!(!window.take(1));
        assert!(window.take(5));
        assert!(window.take(3), "a little out of order");
        assert!(!window.take(3));
        assert!(window.take(5 + WINDOW - 1));
        assert!(!window.take(5), "still in the window, taken");
        assert!(window.take(6), "still in the window, not taken");
        assert!(window.take(200 + WINDOW));
        assert!(!window.take(100), "behind the window");
        for seq in (200 + WINDOW + 1..200 + 3 * WINDOW).step_by(7) {
            assert!(window.take(seq));
            assert!(!window.take(seq));
        }
    }

    #[test]
    fn a_window_shift_keeps_every_bit_in_its_place() {
        let mut window = SeqWindow::default();
        let taken: Vec<u64> = (1..=WINDOW).filter(|seq| seq % 3 == 0).collect();
        for &seq in &taken {
            assert!(window.take(seq));
        }
        assert!(window.take(WINDOW + 70));
        for seq in 71..=WINDOW {
            assert_eq!(!window.take(seq), seq % 3 == 0, "seq {seq}");
        }
    }

    #[test]
    fn replays_stale_stamps_and_departed_relays_are_refused() {
        let now = Instant::now();
        let mut remotes = Remotes::new(Duration::from_secs(5));
        assert_eq!(remotes.take(9, 1, WALL, now, WALL, true), Ok(true));
        assert_eq!(remotes.take(9, 2, WALL, now, WALL, false), Ok(false));
        assert_eq!(
            remotes.take(9, 2, WALL, now, WALL, false),
            Err(Stale::Replayed)
        );
        assert_eq!(
            remotes.take(9, 3, WALL - 121_000, now, WALL, false),
            Err(Stale::OutOfTime)
        );
        assert!(remotes.depart(9).is_some());
        assert_eq!(
            remotes.take(9, 4, WALL, now, WALL, false),
            Err(Stale::Departed)
        );
    }

    #[test]
    fn presence_state_and_counts() {
        let now = Instant::now();
        let mut remotes = Remotes::new(Duration::from_secs(5));
        remotes.take(1, 1, WALL, now, WALL, true).expect("fresh");
        remotes.set_state(
            1,
            1,
            "a".into(),
            vec![RoomState {
                room: room("#lobby"),
                names: vec![(name("alice"), 2)],
                unnamed: 1,
            }],
        );
        remotes.take(2, 1, WALL, now, WALL, true).expect("fresh");
        remotes.change(2, 1, here("#lobby", &["bob"], 0));
        assert_eq!(remotes.count(&room("#lobby")), 4);
        let (mut names, unnamed) = remotes.who(&room("#lobby"));
        names.sort();
        assert_eq!((names, unnamed), (vec![name("alice"), name("bob")], 1));
        assert!(remotes.has_name(&name("bob")));
        remotes.change(2, 2, here("#lobby", &[], 0));
        assert!(!remotes.has_name(&name("bob")));
        // An older state does not undo a later change.
        remotes.change(1, 3, here("#lobby", &[], 1));
        remotes.set_state(1, 2, "a".into(), Vec::new());
        assert_eq!(remotes.count(&room("#lobby")), 1);
        assert_eq!(remotes.occupied().get(&room("#lobby")), Some(&1));
    }

    #[test]
    fn a_quiet_relay_is_lost_with_its_people() {
        let now = Instant::now();
        let mut remotes = Remotes::new(Duration::from_secs(5));
        remotes.take(1, 1, WALL, now, WALL, true).expect("fresh");
        remotes.change(1, 1, here("#lobby", &["alice"], 0));
        assert_eq!(remotes.next_expiry(), Some(now + Duration::from_secs(5)));
        assert!(remotes.expire(now + Duration::from_secs(4)).is_empty());
        let lost = remotes.expire(now + Duration::from_secs(5));
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].rooms[0].names, vec![(name("alice"), 1)]);
        assert_eq!(remotes.count(&room("#lobby")), 0);
        assert_eq!(remotes.alive(), 0);
        // It speaks again (it had lost NATS): it is back, its numbers kept.
        let later = now + Duration::from_secs(6);
        assert_eq!(
            remotes.take(1, 1, WALL, later, WALL, false),
            Err(Stale::Replayed)
        );
        assert_eq!(remotes.take(1, 2, WALL, later, WALL, false), Ok(true));
        assert_eq!(remotes.alive(), 1);
        assert!(remotes.depart(1).is_some());
        assert_eq!(
            remotes.take(1, 3, WALL, later, WALL, false),
            Err(Stale::Departed)
        );
    }

    #[test]
    fn nothing_is_taken_before_a_heartbeat_names_this_relay() {
        let now = Instant::now();
        let mut remotes = Remotes::new(Duration::from_secs(5));
        // Captured before this relay started, replayed now: refused.
        for seq in [3, 4] {
            assert_eq!(
                remotes.take(7, seq, WALL, now, WALL, false),
                Err(Stale::Unconfirmed { first: seq == 3 })
            );
        }
        assert_eq!(remotes.heard(), vec![7], "heard, so named in heartbeats");
        assert_eq!(remotes.alive(), 0);
        // Its heartbeat names this relay: from it on, taken.
        assert_eq!(remotes.take(7, 10, WALL, now, WALL, true), Ok(true));
        assert_eq!(
            remotes.take(7, 5, WALL, now, WALL, false),
            Err(Stale::Replayed)
        );
        assert_eq!(
            remotes.take(7, 10, WALL, now, WALL, true),
            Err(Stale::Replayed)
        );
        assert_eq!(remotes.take(7, 11, WALL, now, WALL, false), Ok(false));
        // A relay never taken from is forgotten quietly.
        remotes
            .take(8, 1, WALL, now, WALL, false)
            .expect_err("unconfirmed");
        assert!(remotes.expire(now + Duration::from_secs(5)).len() == 1);
        assert!(remotes.heard().is_empty());
    }
}
