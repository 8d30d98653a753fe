//! Names: who a person is in a chat line, as the relay stamps it and as
//! the members file lists them. A name is 1 to [`NAME_MAX`] characters of
//! `A-Z a-z 0-9 _ - .`, compared exactly; 32 hex digits are refused, as they
//! look like a key written in the wrong place.

use std::fmt;
use std::str::FromStr;

/// The longest name allowed, in characters.
pub const NAME_MAX: usize = 32;

/// A member's name: 1 to [`NAME_MAX`] characters of `A-Z a-z 0-9 _ - .`,
/// and not 32 hex digits (which would look like a key).
///
/// The character set keeps names safe to print after `NAME: ` in a chat
/// line and to use as a file name (`NAME.key`).
///
/// ```
/// use eaxchat_proto::name::{Name, NameError};
///
/// let alice: Name = "alice".parse()?;
/// assert_eq!(alice.as_str(), "alice");
/// assert_eq!(Name::new("bob smith"), Err(NameError::BadCharacter { position: 4 }));
/// assert_eq!(
///     Name::new("000102030405060708090a0b0c0d0e0f"),
///     Err(NameError::LooksLikeKey),
/// );
/// # Ok::<(), NameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// Why a text is not a valid [`Name`]. Never holds the text itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name has more than [`NAME_MAX`] characters.
    TooLong {
        /// How many characters it has.
        chars: usize,
    },
    /// The name holds a character outside `A-Z a-z 0-9 _ - .`.
    BadCharacter {
        /// The 1-based position of the first such character.
        position: usize,
    },
    /// The name is 32 hex digits, the form of an AES-128 key. Refused so
    /// that a key written where a name belongs is never shown as a name.
    LooksLikeKey,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("the name is empty"),
            NameError::TooLong { chars } => write!(
                f,
                "the name has {chars} characters; at most {NAME_MAX} are allowed"
            ),
            NameError::BadCharacter { position } => write!(
                f,
                "character {position} of the name is not one of A-Z a-z 0-9 _ - ."
            ),
            NameError::LooksLikeKey => {
                f.write_str("the name is 32 hex digits, which looks like a key")
            }
        }
    }
}

impl std::error::Error for NameError {}

impl Name {
    /// Checks `text` is a valid name.
    pub fn new(text: &str) -> Result<Name, NameError> {
        let chars = text.chars().count();
        if chars == 0 {
            return Err(NameError::Empty);
        }
        if chars > NAME_MAX {
            return Err(NameError::TooLong { chars });
        }
        if let Some(index) = text.chars().position(|c| !is_name_char(c)) {
            return Err(NameError::BadCharacter {
                position: index + 1,
            });
        }
        if chars == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NameError::LooksLikeKey);
        }
        Ok(Name(text.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = NameError;

    fn from_str(text: &str) -> Result<Name, NameError> {
        Name::new(text)
    }
}

// A `Name` hashes and compares as its text, so maps keyed by `Name` can be
// searched with a `&str`.
impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

#[cfg(test)]
mod tests {
    // Tests may unwrap: a panic is the failure report.
    #![allow(clippy::unwrap_used)]

    use super::*;

    const K128: &str = "000102030405060708090a0b0c0d0e0f";

    #[test]
    fn names_are_checked() {
        assert_eq!(Name::new("").unwrap_err(), NameError::Empty);
        assert_eq!(Name::new("b").unwrap().as_str(), "b");
        assert!(Name::new(&"z".repeat(32)).is_ok());
        assert_eq!(
            Name::new(&"z".repeat(33)).unwrap_err(),
            NameError::TooLong { chars: 33 }
        );
        for (bad, position) in [("a b", 2), ("a\tb", 2), ("ab#", 3), ("x/y", 2), ("ü", 1)] {
            assert_eq!(
                Name::new(bad).unwrap_err(),
                NameError::BadCharacter { position },
                "{bad:?}"
            );
        }
        assert_eq!("Bob.2".parse::<Name>().unwrap().to_string(), "Bob.2");
        assert_eq!(Name::new(K128).unwrap_err(), NameError::LooksLikeKey);
        assert_eq!(
            Name::new(&K128.to_uppercase()).unwrap_err(),
            NameError::LooksLikeKey
        );
        assert!(Name::new(&K128[..31]).is_ok());
        assert!(Name::new(&format!("{}g", &K128[..31])).is_ok());
    }
}
