//! The end-to-end rooms' Delivery Service state from the poll loop:
//! `MEMBERS.e2e` (`members_file::delivery`) read when a session relay is
//! set up and handed to the relay
//! ([`Relay::restore_delivery`](eaxchat_core::relay::Relay::restore_delivery)),
//! and written after every read that changed it, before this turn's frames
//! are written: a commit answered as taken is on disk first. A file that
//! cannot be read stops the relay before it serves anyone (starting afresh
//! would forget which rooms are end-to-end, and their groups' order); one
//! that cannot be written is logged at every try.

use std::path::PathBuf;

use log::{error, info};

use super::Server;
use crate::members_file::delivery;

/// `MEMBERS.e2e` as the loop keeps it.
#[derive(Debug, Default)]
pub(super) struct DeliveryFile {
    /// The file; `None` for a relay that is not in session mode.
    path: Option<PathBuf>,
    /// Why it could not be read: the relay does not start.
    pub(super) unreadable: Option<String>,
}

impl Server {
    /// A session relay: reads `MEMBERS.e2e` beside its members file and
    /// gives the relay its end-to-end rooms' state.
    pub(super) fn read_delivery(&mut self) {
        let Some(members) = self.members.as_ref().filter(|_| self.relay.is_sessions()) else {
            return;
        };
        let path = delivery::delivery_path(members.path());
        match delivery::read(&path) {
            Ok(state) => {
                let rooms = state.rooms().count();
                if rooms > 0 {
                    info!("{}: {rooms} end-to-end rooms restored", path.display());
                }
                self.relay.restore_delivery(state);
            }
            Err(e) => {
                let why = format!(
                    "{}: {e}; the relay does not start without its end-to-end rooms' state \
                     (restore it from a backup, or move it aside to start those rooms afresh: \
                     their members then make their groups again)",
                    path.display()
                );
                error!("{why}");
                self.delivery.unreadable = Some(why);
            }
        }
        self.delivery.path = Some(path);
    }

    /// Writes `MEMBERS.e2e` if the relay's Delivery Service changed.
    pub(super) fn write_delivery(&mut self) {
        if !self.relay.take_delivery_changed() {
            return;
        }
        let Some(path) = &self.delivery.path else {
            return;
        };
        if let Err(e) = delivery::write(path, self.relay.delivery()) {
            error!(
                "{}: the end-to-end rooms' state was not written: {e}; a restart now would \
                 lose what changed since",
                path.display()
            );
        }
    }
}
