//! End-to-end rooms on this device: the MLS driver between the relay's
//! `eaxchat/1` events and what is typed, as a sans-io state machine.
//!
//! [`E2eDriver`] takes each plaintext the relay sent ([`E2eDriver::received`])
//! and each line the user typed ([`E2eDriver::typed`]) and answers with an
//! [`Output`]: lines to send to the relay, lines to show (as `eaxchat/1`
//! events, so pipe mode prints them and the terminal app files them in
//! their room like any other), and whether the original is consumed. It
//! owns the device's [`E2eRooms`] and [`Pins`], kept in the state directory
//! beside the session identity; it opens them once the relay's `welcome`
//! names the member, uploads KeyPackages, makes a new room's group, adds
//! and removes members when the relay asks (`mls-add`, `mls-remove`), one
//! commit per room at a time with bounded retries, encrypts text typed in
//! an end-to-end room, decrypts what arrives, and warns of a new device key.
//! With no member online to add it, it joins a room's group by External
//! Commit after [`EXTERNAL_JOIN_AFTER`]. It never touches a socket, a
//! terminal or a clock: `session` feeds it, with the time
//! ([`E2eDriver::received`], [`E2eDriver::handle_timeout`]). Nothing a
//! peer sends can make it panic: a message it cannot read is a line
//! saying why.
//!
//! | module | owns |
//! |---|---|
//! | this one | [`E2eDriver`], [`Output`], dispatching events and typed lines |
//! | `group` | commits: making, adding, removing, the relay's answers, retries |
//! | `external` | joining by External Commit when no member is online: the wait, the answers |
//! | `resume` | a commit sent on a connection that dropped: found in the history, or made again |
//! | `shown` | the lines shown: messages, notices, warnings, `/verify` |

mod external;
mod group;
mod resume;
mod shown;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use eaxchat_e2e::{E2eRooms, Pins};
use eaxchat_proto::events::{ParsedEvent, ParsedKind};

use group::Commit;

/// Standard base64, padded: what `/mls` and `/keypackage` carry.
pub(crate) const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// KeyPackages uploaded at each start (the relay keeps at most 16).
pub const KEY_PACKAGES_AT_START: usize = 5;

/// Commits refused in a row in one room before giving up until the
/// relay asks again.
pub const MAX_RETRIES: u32 = 4;

/// How long a device in an end-to-end room without its group waits for a
/// member online to add it (a Welcome) before it joins by External Commit,
/// as the Python client and the page do.
pub const EXTERNAL_JOIN_AFTER: Duration = Duration::from_secs(3);

/// How long after a reconnect's `myrooms` a commit sent on the dropped
/// connection waits to be seen in the room's history (which the relay
/// sends right after `myrooms`) before it is taken as lost and made again.
pub const SETTLE_AFTER: Duration = Duration::from_secs(1);

/// What the driver wants done after an event or a typed line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    /// Plaintexts to send to the relay, in order.
    pub send: Vec<Vec<u8>>,
    /// `eaxchat/1` events to show, in order, after the original (if it is
    /// not consumed).
    pub show: Vec<Vec<u8>>,
    /// The original was the driver's: do not show (or send) it.
    pub consumed: bool,
    /// The original was a history message of this room that shows as
    /// nothing (a commit, one already read): the front end counts it
    /// among the history that was announced.
    pub history_skipped: Option<String>,
}

/// The device's open state, once the relay named the member.
pub(crate) struct Device {
    pub(crate) rooms: E2eRooms,
    pub(crate) pins: Pins,
    pub(crate) name: String,
}

/// One room's work in progress.
#[derive(Debug, Default)]
pub(crate) struct RoomWork {
    /// Our commit the relay has not answered.
    pub(crate) pending: Option<Commit>,
    /// Names to add (`mls-add`), in the order asked.
    pub(crate) adds: BTreeSet<String>,
    /// Names to remove (`mls-remove`): committed before anything else.
    pub(crate) removes: BTreeSet<String>,
    /// Text typed while a commit is pending, sent once it is settled.
    pub(crate) queued: Vec<String>,
    /// Commits refused in a row.
    pub(crate) refusals: u32,
    /// `/groupinfo` was asked (once per run).
    pub(crate) asked: bool,
    /// We typed `/join ROOM --e2e`: if the relay has no group, we make it.
    pub(crate) made: bool,
    /// When to ask for the GroupInfo and join by External Commit, unless
    /// a Welcome comes first.
    pub(crate) join_at: Option<Instant>,
    /// `/groupinfo` was asked to join by External Commit: its answer is
    /// used.
    pub(crate) joining: bool,
    /// Our commit went on a connection that dropped: unless the room's
    /// history shows it by `settle_at`, it is dropped and made again.
    pub(crate) unanswered: bool,
    /// When an unanswered commit is taken as lost (set at `myrooms`).
    pub(crate) settle_at: Option<Instant>,
    /// A Welcome that came while our External Commit was pending: used
    /// if the relay refuses that commit.
    pub(crate) welcome: Option<Vec<u8>>,
}

/// The MLS driver of one `chat`: see the module's docs.
pub struct E2eDriver {
    dir: PathBuf,
    pub(crate) device: Option<Device>,
    /// Why the device could not be opened, said once.
    failed: Option<String>,
    /// The end-to-end rooms we are in (from `myrooms` and `/rooms`).
    pub(crate) e2e: BTreeSet<String>,
    /// Where untargeted text goes (the relay's current room).
    current: Option<String>,
    pub(crate) work: BTreeMap<String, RoomWork>,
    /// `/keypackages NAME` asked, for these rooms.
    pub(crate) awaiting: BTreeMap<String, BTreeSet<String>>,
    /// KeyPackages sent that the relay has not said it kept.
    unacked: usize,
    /// Say once that the device is ready, when the relay kept them all.
    announce: bool,
    /// `/join`s typed before the relay answered every KeyPackage: sent
    /// then, so that whoever adds us finds one.
    held: Vec<Vec<u8>>,
    /// The relay's `welcome` came (joins typed before it are held too).
    welcomed: bool,
}

impl std::fmt::Debug for E2eDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2eDriver")
            .field("dir", &self.dir)
            .field("e2e", &self.e2e)
            .field("open", &self.device.is_some())
            .finish_non_exhaustive()
    }
}

/// A room's name as the driver keys it: without `#`.
pub(crate) fn bare(room: &str) -> &str {
    room.strip_prefix('#').unwrap_or(room)
}

impl E2eDriver {
    /// A driver whose device lives in `dir` (made on first use, once the
    /// relay's `welcome` names the member).
    pub fn new(dir: PathBuf) -> E2eDriver {
        E2eDriver {
            dir,
            device: None,
            failed: None,
            e2e: BTreeSet::new(),
            current: None,
            work: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            unacked: 0,
            announce: false,
            held: Vec::new(),
            welcomed: false,
        }
    }

    /// Whether `room` is end-to-end, as the relay said.
    pub fn is_e2e(&self, room: &str) -> bool {
        self.e2e.contains(bare(room))
    }

    /// Whether this device has a group for `room`.
    pub fn has_group(&self, room: &str) -> bool {
        self.device
            .as_ref()
            .is_some_and(|d| d.rooms.rooms().any(|r| r == bare(room)))
    }

    /// Takes one plaintext the relay sent, at `now`.
    pub fn received(&mut self, plaintext: &[u8], now: Instant) -> Output {
        let mut out = Output::default();
        let Some(event) = ParsedEvent::parse(plaintext) else {
            return out;
        };
        let room = event.room.as_deref().map(|r| bare(r).to_owned());
        match (&event.kind, room) {
            (ParsedKind::Welcome { name, .. }, _) => {
                // A new connection: ask again for the groups still missing.
                for work in self.work.values_mut() {
                    work.asked = false;
                    work.join_at = None;
                    work.joining = false;
                }
                self.welcomed = true;
                if let Some(name) = name {
                    self.open(name, &mut out);
                }
                self.connection_dropped();
                if self.unacked == 0 {
                    out.send.append(&mut self.held);
                }
            }
            (ParsedKind::MyRooms, _) => {
                self.e2e = event.e2e.iter().map(|r| bare(r).to_owned()).collect();
                self.current = event.room.as_deref().map(|r| bare(r).to_owned());
                self.forget_left(&event.rooms, &mut out);
                self.settle_later(now);
                self.ask_group_infos(&mut out);
            }
            (ParsedKind::Rooms(list), _) => {
                for entry in list.iter().filter(|e| e.joined && e.mode == "e2e") {
                    self.e2e.insert(bare(&entry.room).to_owned());
                }
            }
            (ParsedKind::Mls, Some(room)) => {
                out.consumed = true;
                self.group_message(&room, &event, &mut out);
            }
            (ParsedKind::MlsTaken { .. }, Some(room)) => {
                out.consumed = true;
                self.taken(&room, &mut out);
            }
            (ParsedKind::MlsRefused { .. }, Some(room)) => {
                out.consumed = true;
                self.refused(&room, &event.text, now, &mut out);
            }
            (ParsedKind::MlsAdd { name }, Some(room)) => {
                out.consumed = true;
                self.work_of(&room).adds.insert(name.clone());
                self.drive(&room, &mut out);
            }
            (ParsedKind::MlsRemove { name }, Some(room)) => {
                out.consumed = true;
                self.work_of(&room).removes.insert(name.clone());
                self.drive(&room, &mut out);
            }
            (ParsedKind::KeyPackages { name }, _) => {
                out.consumed = true;
                self.key_packages(name, &event.packages, &mut out);
            }
            (ParsedKind::GroupInfo { .. }, Some(room)) => {
                out.consumed = true;
                self.group_info(&room, &event.data, now, &mut out);
            }
            (ParsedKind::Error, Some(room))
                if event.text.contains("has no GroupInfo")
                    && self.work.get(&room).is_some_and(|w| w.asked || w.joining) =>
            {
                out.consumed = true;
                self.no_group_yet(&room, &mut out);
            }
            (ParsedKind::Notice, _) if event.text.starts_with("* KeyPackage kept") => {
                out.consumed = true;
                self.key_package_answered(&mut out);
            }
            // A KeyPackage refused: shown, and answered all the same.
            (ParsedKind::Error, None) if self.unacked > 0 => self.key_package_answered(&mut out),
            _ => {}
        }
        out
    }

    /// Takes one line the user typed (as the front end would send it:
    /// bare text, `/in ROOM …`, or a command).
    pub fn typed(&mut self, line: &[u8]) -> Output {
        let mut out = Output::default();
        let Ok(line) = std::str::from_utf8(line) else {
            return out;
        };
        let (room, rest) = match line.strip_prefix("/in ") {
            Some(after) => match after.split_once(' ') {
                Some((room, rest)) => (Some(bare(room).to_owned()), rest),
                None => return out,
            },
            None => (None, line),
        };
        if let Some(name) = rest
            .strip_prefix("/verify")
            .filter(|n| n.is_empty() || n.starts_with(" "))
        {
            out.consumed = true;
            let room = room.or_else(|| self.current.clone());
            out.show.push(self.verify(name.trim(), room.as_deref()));
            return out;
        }
        if let Some(join) = rest.strip_prefix("/join ") {
            let mut words = join.split_whitespace();
            if let Some(joined) = words.next()
                && words.any(|w| w == "--e2e")
            {
                self.work_of(bare(joined)).made = true;
            }
            if self.unacked > 0 || !self.welcomed {
                out.consumed = true;
                self.held.push(line.as_bytes().to_vec());
            }
            return out;
        }
        let Some(room) = room.or_else(|| self.current.clone()) else {
            return out;
        };
        if !self.is_e2e(&room) {
            return out;
        }
        let text = if let Some(escaped) = rest.strip_prefix("//") {
            format!("/{escaped}")
        } else if rest.starts_with("/me ") || !rest.starts_with('/') {
            rest.to_owned()
        } else {
            // Other commands (`/topic`, `/who`, `/part` …) go as typed.
            return out;
        };
        out.consumed = true;
        self.say(&room, text, &mut out);
        out
    }

    /// Opens the device of `name` and uploads KeyPackages.
    fn open(&mut self, name: &str, out: &mut Output) {
        if self.device.as_ref().is_some_and(|d| d.name == name) {
            self.upload(KEY_PACKAGES_AT_START, out);
            return;
        }
        let opened =
            E2eRooms::open(&self.dir, name).and_then(|rooms| Ok((rooms, Pins::open(&self.dir)?)));
        match opened {
            Ok((rooms, pins)) => {
                self.device = Some(Device {
                    rooms,
                    pins,
                    name: name.to_owned(),
                });
                self.announce = true;
                self.upload(KEY_PACKAGES_AT_START, out);
            }
            Err(error) if self.failed.is_none() => {
                let why = format!(
                    "! end-to-end rooms are off: the device in {} cannot be opened: {error}",
                    self.dir.display()
                );
                out.show.push(shown::error(None, &why));
                self.failed = Some(why);
            }
            Err(_) => {}
        }
    }

    /// The relay answered one KeyPackage: once all are, the device is
    /// ready and held `/join`s go.
    fn key_package_answered(&mut self, out: &mut Output) {
        self.unacked = self.unacked.saturating_sub(1);
        if self.unacked > 0 {
            return;
        }
        if std::mem::take(&mut self.announce) {
            out.show.push(self.ready());
        }
        out.send.append(&mut self.held);
    }

    /// Uploads `n` fresh KeyPackages.
    pub(crate) fn upload(&mut self, n: usize, out: &mut Output) {
        let Some(device) = &mut self.device else {
            return;
        };
        match device.rooms.key_packages(n) {
            Ok(packages) => {
                self.unacked += packages.len();
                for package in packages {
                    let line = format!("/keypackage {}", BASE64.encode(package));
                    out.send.push(line.into_bytes());
                }
            }
            Err(error) => out.show.push(shown::error(
                None,
                &format!("! could not make KeyPackages: {error}"),
            )),
        }
    }

    /// Asks the relay for the GroupInfo of each end-to-end room we are in
    /// without a group on this device, once.
    fn ask_group_infos(&mut self, out: &mut Output) {
        if self.device.is_none() {
            return;
        }
        let rooms: Vec<String> = self.e2e.iter().cloned().collect();
        for room in rooms {
            if self.has_group(&room) {
                continue;
            }
            let work = self.work_of(&room);
            if !work.asked {
                work.asked = true;
                out.send.push(format!("/groupinfo {room}").into_bytes());
            }
        }
    }

    /// Drops the groups of rooms we are no longer in: we were removed (or
    /// are about to be), and a later join starts from a Welcome.
    fn forget_left(&mut self, rooms: &[String], out: &mut Output) {
        let Some(device) = &mut self.device else {
            return;
        };
        let ours: BTreeSet<&str> = rooms.iter().map(|r| bare(r)).collect();
        let left: Vec<String> = device
            .rooms
            .rooms()
            .filter(|room| !ours.contains(room))
            .map(str::to_owned)
            .collect();
        for room in left {
            self.work.remove(&room);
            if let Err(error) = device.rooms.forget(&room) {
                out.show
                    .push(shown::error(None, &format!("! #{room}: {error}")));
            }
        }
    }

    /// The relay has no group for `room`: make it if we just made the
    /// room, else wait to be added.
    fn no_group_yet(&mut self, room: &str, out: &mut Output) {
        let made = self.work.get(room).is_some_and(|w| w.made);
        // Asked to join by External Commit, and no group yet: its maker's
        // GroupInfo is on its way; a Welcome brings this device in.
        self.work_of(room).joining = false;
        if made && !self.has_group(room) {
            self.create(room, out);
        } else {
            out.show.push(shown::waiting(room));
        }
    }

    pub(crate) fn work_of(&mut self, room: &str) -> &mut RoomWork {
        self.work.entry(room.to_owned()).or_default()
    }
}

#[cfg(test)]
mod tests;
