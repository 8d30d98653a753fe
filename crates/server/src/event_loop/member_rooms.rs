//! The members' remembered rooms from the poll loop: `MEMBERS.rooms`
//! (`members_file::rooms`) read when the server is bound, and handed to
//! the relay
//! ([`Relay::restore_member_rooms`](eaxchat_core::relay::Relay::restore_member_rooms));
//! written again whenever the relay says they changed, at most once every
//! [`WRITE_GAP`] (a burst of `/join`s costs one write) and once more at
//! shutdown. A line that does not parse is logged with its number and
//! skipped; a file that cannot be read or written is logged, never fatal:
//! the chat goes on, and the members come back in the default room.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use super::Server;
use crate::members_file::rooms;
use eaxchat_core::relay::MemberRooms;

/// The least time between two writes of `MEMBERS.rooms`: a relay killed
/// hard loses at most this much of the members' room changes.
pub const WRITE_GAP: Duration = Duration::from_millis(100);

/// `MEMBERS.rooms` as the loop keeps it.
#[derive(Debug, Default)]
pub(super) struct RoomsFile {
    /// The file; `None` for a relay with no members file.
    path: Option<PathBuf>,
    /// The relay's rooms changed since the last write.
    dirty: bool,
    /// When it was last written.
    written: Option<Instant>,
    /// The rooms read at start, given to the relay again when its chat
    /// layer is set up (which starts it afresh).
    read: Vec<MemberRooms>,
}

impl RoomsFile {
    /// When the loop must write the file next, if it has changes waiting.
    pub(super) fn next_write(&self) -> Option<Instant> {
        if !self.dirty || self.path.is_none() {
            return None;
        }
        Some(self.written.map_or_else(Instant::now, |at| at + WRITE_GAP))
    }
}

impl Server {
    /// A members or session relay: reads `MEMBERS.rooms` beside its
    /// members file and gives the relay the rooms it remembers.
    pub(super) fn read_member_rooms(&mut self) {
        let Some(members) = &self.members else {
            return;
        };
        let path = rooms::rooms_path(members.path());
        match rooms::read(&path) {
            Ok(file) => {
                for bad in &file.bad_lines {
                    warn!("{}: {bad}", path.display());
                }
                if !file.rooms.is_empty() {
                    info!(
                        "{}: the rooms of {} members restored",
                        path.display(),
                        file.rooms.len()
                    );
                }
                self.member_rooms.read = file.rooms;
                self.restore_member_rooms();
            }
            Err(e) => warn!(
                "{}: {e}; members start in the default room, and the file is written anew \
                 when their rooms change",
                path.display()
            ),
        }
        self.member_rooms.path = Some(path);
    }

    /// Gives the relay the rooms read at start.
    pub(super) fn restore_member_rooms(&mut self) {
        self.relay
            .restore_member_rooms(self.member_rooms.read.clone());
    }

    /// Writes `MEMBERS.rooms` if the relay's rooms changed and the last
    /// write is [`WRITE_GAP`] old, or at once when `now_anyway` (shutdown).
    pub(super) fn write_member_rooms(&mut self, now_anyway: bool) {
        let file = &mut self.member_rooms;
        if self.relay.take_member_rooms_changed() {
            file.dirty = true;
        }
        let Some(path) = &file.path else {
            return;
        };
        let now = Instant::now();
        let due = file.written.is_none_or(|at| now >= at + WRITE_GAP);
        if !file.dirty || !(due || now_anyway) {
            return;
        }
        file.written = Some(now);
        match rooms::write(path, &self.relay.member_rooms()) {
            Ok(()) => file.dirty = false,
            Err(e) => error!(
                "{}: the members' rooms were not written: {e}; trying again in {:?}",
                path.display(),
                WRITE_GAP
            ),
        }
    }
}
