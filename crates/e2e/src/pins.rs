//! Trust on first use: per peer name, the set of device signature keys
//! this device has seen in its groups, kept in the state directory
//! (`pins`, JSON, 0600). The first key seen for a name is pinned quietly;
//! any later new key for that name is [`Pin::Added`], which the caller
//! shows as a loud warning in the room (`! alice has a new device …`).
//!
//! This module is the client's half of the Authentication Service: it
//! never decides who a name is, only whether a key is one seen before.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::E2eError;
use crate::state::StateDir;

const PINS_FILE: &str = "pins";

/// What [`Pins::observe`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// The first key seen for this name: now pinned.
    New,
    /// A key already pinned for this name.
    Known,
    /// A new key for a name that had others: pinned too, and the caller
    /// warns loudly in that room.
    Added,
}

/// The pinned device keys per peer name.
#[derive(Debug)]
pub struct Pins {
    state: StateDir,
    keys: BTreeMap<String, BTreeSet<Vec<u8>>>,
}

impl Pins {
    /// Opens the pins kept in `dir` (none yet if it has no `pins` file).
    pub fn open(dir: &Path) -> Result<Self, E2eError> {
        let state = StateDir::open(dir)?;
        let mut keys = BTreeMap::new();
        if let Some(bytes) = state.read(PINS_FILE)? {
            let stored: BTreeMap<String, Vec<String>> =
                serde_json::from_slice(&bytes).map_err(|_| E2eError::CorruptState("pins"))?;
            for (name, hexes) in stored {
                let set = hexes
                    .iter()
                    .map(|h| unhex(h).ok_or(E2eError::CorruptState("pins")))
                    .collect::<Result<BTreeSet<_>, _>>()?;
                keys.insert(name, set);
            }
        }
        Ok(Self { state, keys })
    }

    /// Records that `name`'s device with signature key `key` was seen in a
    /// group; saves before returning when it is new.
    pub fn observe(&mut self, name: &str, key: &[u8]) -> Result<Pin, E2eError> {
        let pin = match self.keys.get_mut(name) {
            Some(set) if set.contains(key) => return Ok(Pin::Known),
            Some(set) => {
                set.insert(key.to_vec());
                Pin::Added
            }
            None => {
                self.keys
                    .insert(name.to_string(), BTreeSet::from([key.to_vec()]));
                Pin::New
            }
        };
        self.save()?;
        Ok(pin)
    }

    /// The keys pinned for `name`, sorted (what its half of a safety
    /// number covers).
    pub fn keys(&self, name: &str) -> Vec<Vec<u8>> {
        self.keys
            .get(name)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Unpins `key` of `name` (e.g. the user checked a removed device is
    /// gone for good); returns whether it was pinned.
    pub fn forget(&mut self, name: &str, key: &[u8]) -> Result<bool, E2eError> {
        let Some(set) = self.keys.get_mut(name) else {
            return Ok(false);
        };
        if !set.remove(key) {
            return Ok(false);
        }
        if set.is_empty() {
            self.keys.remove(name);
        }
        self.save()?;
        Ok(true)
    }

    fn save(&self) -> Result<(), E2eError> {
        let stored: BTreeMap<&str, Vec<String>> = self
            .keys
            .iter()
            .map(|(name, set)| (name.as_str(), set.iter().map(|k| hex(k)).collect()))
            .collect();
        let bytes = serde_json::to_vec_pretty(&stored).map_err(|e| E2eError::Io(e.into()))?;
        self.state.write(PINS_FILE, &bytes)
    }
}

/// Lowercase hex of `bytes` (keys in warnings and the pins file).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lowercase or uppercase hex, or `None`.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
