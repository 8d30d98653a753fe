//! Room names: 1 to [`ROOM_NAME_MAX`] characters of `A-Z a-z 0-9 _ - .`,
//! after an optional leading `#` which is not part of the name. They are
//! folded to lowercase, so `#Lobby` and `lobby` are one room, and shown as
//! `#lobby`. For `/join` as for the relay's `--default-room`.

use std::fmt;

/// The longest room name, in characters (not counting a leading `#`).
pub const ROOM_NAME_MAX: usize = 32;

/// A room's name: 1 to [`ROOM_NAME_MAX`] characters of `A-Z a-z 0-9 _ - .`,
/// lowercase. `Display` shows it with its `#`; [`RoomName::as_str`] without.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

/// Why a text is not a valid [`RoomName`]. Never holds the text itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomNameError {
    /// Nothing after the optional `#`.
    Empty,
    /// More than [`ROOM_NAME_MAX`] bytes after the optional `#`.
    TooLong {
        /// How many bytes it has.
        bytes: usize,
    },
    /// A byte outside `A-Z a-z 0-9 _ - .`.
    BadCharacter {
        /// The 1-based position of the first such byte, after the `#`.
        position: usize,
    },
}

impl fmt::Display for RoomNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomNameError::Empty => f.write_str("the name is empty"),
            RoomNameError::TooLong { bytes } => write!(f, "the name has {bytes} characters"),
            RoomNameError::BadCharacter { position } => {
                write!(f, "character {position} is not allowed")
            }
        }
    }
}

impl std::error::Error for RoomNameError {}

impl RoomName {
    /// Checks `text` (with or without a leading `#`) and folds it to
    /// lowercase. For `--default-room` as for `/join`.
    pub fn new(text: &[u8]) -> Result<RoomName, RoomNameError> {
        let bare = text.strip_prefix(b"#").unwrap_or(text);
        if bare.is_empty() {
            return Err(RoomNameError::Empty);
        }
        if let Some(index) = bare.iter().position(|&b| !is_name_byte(b)) {
            return Err(RoomNameError::BadCharacter {
                position: index + 1,
            });
        }
        if bare.len() > ROOM_NAME_MAX {
            return Err(RoomNameError::TooLong { bytes: bare.len() });
        }
        // Only ASCII is left, so this never replaces anything.
        Ok(RoomName(String::from_utf8_lossy(bare).to_ascii_lowercase()))
    }

    /// The name without its `#`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Whether `b` may be in a room name. The grammar also uses it to point at
/// the first bad byte of a member name that is not UTF-8.
pub(super) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_show_with_their_hash() {
        let room = |text: &str| RoomName::new(text.as_bytes()).expect("a valid test room");
        assert_eq!(room("#Dev").to_string(), "#dev");
        assert_eq!(room("Dev").as_str(), "dev");
    }
}
