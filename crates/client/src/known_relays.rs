//! The relay keys this user pinned: the known_relays file, and which key a
//! session is started for ([`RelayTrust`], [`RelayPin`]).
//!
//! The file is text, one relay a line: `HOST:PORT x25519:BASE64` (the
//! address as given to `--connect`, then the relay's public key); blank
//! lines and lines starting with `#` are skipped. Its default place is
//! `$XDG_CONFIG_HOME/eaxchat/known_relays`, else
//! `~/.config/eaxchat/known_relays`; it is created with mode 0600 and its
//! directory 0700. A line that is not an entry is refused with its number
//! rather than skipped: a pin that silently stops counting is worse than
//! an error.
//!
//! Trust works like ssh's `accept-new`. The first key for a relay comes
//! from `--relay-key` (which `relay key show` prints on the relay's
//! machine) or, with neither a pin nor `--relay-key`, from the relay
//! itself: the client asks for it (the key request,
//! [`RelayTrust::FirstUse`]) unless `--no-trust-new` forbids it. Either
//! way it is recorded here only once a handshake made for it has proved
//! it. After that the pin is used and no key is asked for, and a different
//! key, given or met, is refused naming both fingerprints; this module
//! never replaces an entry.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use eaxchat_proto::session::{Fingerprint, PublicKey};

/// Where the file lives under the configuration directory.
const RELATIVE_PATH: &str = "eaxchat/known_relays";

/// The relays pinned in one known_relays file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownRelays {
    path: PathBuf,
    entries: Vec<(String, PublicKey)>,
}

/// Why the known_relays file could not be read or written, or a pin could
/// not be had.
#[derive(Debug)]
pub enum KnownRelaysError {
    /// Neither `$XDG_CONFIG_HOME` nor `$HOME` is set.
    NoDefaultPath,
    /// Reading or writing the file (or making its directory) failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// A line that is not `HOST:PORT x25519:…`.
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
    },
    /// An address that cannot be a known_relays entry (empty, with
    /// spaces, or starting with `#`).
    BadAddress(String),
    /// No key is pinned for the relay, none was given, and trusting a
    /// new relay is off (`--no-trust-new`).
    NoPin {
        /// The relay's address.
        relay: String,
        /// The file searched.
        path: PathBuf,
    },
    /// The key given (with `--relay-key`, or proved by a handshake) is not
    /// the one pinned for the relay.
    Conflict {
        /// The relay's address.
        relay: String,
        /// The fingerprint of the key given.
        given: Fingerprint,
        /// The fingerprint of the key pinned.
        pinned: Fingerprint,
        /// The file that pins it.
        path: PathBuf,
    },
}

impl fmt::Display for KnownRelaysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KnownRelaysError::NoDefaultPath => {
                f.write_str("neither $XDG_CONFIG_HOME nor $HOME is set: give --known-relays FILE")
            }
            KnownRelaysError::Io { path, error } => {
                write!(f, "known relays file {}: {error}", path.display())
            }
            KnownRelaysError::Malformed { path, line } => write!(
                f,
                "known relays file {} line {line}: expected \"HOST:PORT x25519:BASE64\"",
                path.display()
            ),
            KnownRelaysError::BadAddress(relay) => write!(
                f,
                "cannot pin a key for {relay:?}: a known relays entry's address has no spaces \
                 and does not start with #"
            ),
            KnownRelaysError::NoPin { relay, path } => write!(
                f,
                "no key is pinned for the relay at {relay} (in {}), and --no-trust-new \
                 refuses a relay not pinned: give its key with --relay-key x25519:… \
                 (`relay key show` prints it on the relay's machine), and chat pins it",
                path.display()
            ),
            KnownRelaysError::Conflict {
                relay,
                given,
                pinned,
                path,
            } => write!(
                f,
                "the relay key given for {relay} ({given}) is not the one pinned for it in {} \
                 ({pinned}): refusing; if the relay's key really changed, remove its line \
                 from that file",
                path.display()
            ),
        }
    }
}

impl std::error::Error for KnownRelaysError {}

/// Where the relay key a session starts for came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// `--relay-key`, not yet in the known_relays file: recorded there
    /// after the first handshake that proves it.
    Given {
        /// The known_relays file to record it in.
        record_in: PathBuf,
    },
    /// `--relay-key`, matching the known_relays entry.
    GivenAndKnown(PathBuf),
    /// The known_relays file's entry.
    Known(PathBuf),
    /// Sent by the relay when asked (trust on first use): recorded in the
    /// known_relays file after the first handshake that proves it.
    FirstUse {
        /// The known_relays file to record it in.
        record_in: PathBuf,
    },
}

/// The relay key a session is started for, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayPin {
    /// The relay's public key.
    pub key: PublicKey,
    /// Where it came from.
    pub source: PinSource,
}

/// What sessions with a relay start from: a key, or none yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayTrust {
    /// A key given or pinned.
    Pinned(RelayPin),
    /// Neither pinned nor given: the first connection asks the relay for
    /// its key, whose fingerprint is shown and which is recorded in
    /// `record_in` once a handshake proves it.
    FirstUse {
        /// The known_relays file to record it in.
        record_in: PathBuf,
    },
}

impl fmt::Display for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinSource::Given { .. } => f.write_str("given with --relay-key"),
            PinSource::GivenAndKnown(path) | PinSource::Known(path) => {
                write!(f, "pinned in {}", path.display())
            }
            PinSource::FirstUse { .. } => f.write_str("it sent when asked (trust on first use)"),
        }
    }
}

impl KnownRelays {
    /// The default file: `$XDG_CONFIG_HOME/eaxchat/known_relays`, else
    /// `$HOME/.config/eaxchat/known_relays`.
    pub fn default_path() -> Result<PathBuf, KnownRelaysError> {
        default_path_from(
            std::env::var_os("XDG_CONFIG_HOME"),
            std::env::var_os("HOME"),
        )
        .ok_or(KnownRelaysError::NoDefaultPath)
    }

    /// Reads the file at `path`; a missing file pins nothing.
    pub fn load(path: &Path) -> Result<KnownRelays, KnownRelaysError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => String::new(),
            Err(error) => {
                return Err(KnownRelaysError::Io {
                    path: path.to_owned(),
                    error,
                });
            }
        };
        let entries = parse(&text).map_err(|line| KnownRelaysError::Malformed {
            path: path.to_owned(),
            line,
        })?;
        Ok(KnownRelays {
            path: path.to_owned(),
            entries,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key pinned for `relay` (its `HOST:PORT` as given); the first
    /// entry wins.
    pub fn get(&self, relay: &str) -> Option<&PublicKey> {
        self.entries
            .iter()
            .find_map(|(host, key)| (host == relay).then_some(key))
    }

    /// The key to start a session with `relay` for: `given` (from
    /// `--relay-key`) or the pinned one. Refuses a given key that differs
    /// from the pin, and a relay with neither.
    pub fn pin_for(
        &self,
        relay: &str,
        given: Option<PublicKey>,
    ) -> Result<RelayPin, KnownRelaysError> {
        let path = self.path.clone();
        match (given, self.get(relay)) {
            (Some(given), Some(pinned)) if given != *pinned => Err(KnownRelaysError::Conflict {
                relay: relay.to_owned(),
                given: given.fingerprint(),
                pinned: pinned.fingerprint(),
                path,
            }),
            (Some(key), Some(_)) => Ok(RelayPin {
                key,
                source: PinSource::GivenAndKnown(path),
            }),
            (Some(key), None) => Ok(RelayPin {
                key,
                source: PinSource::Given { record_in: path },
            }),
            (None, Some(&key)) => Ok(RelayPin {
                key,
                source: PinSource::Known(path),
            }),
            (None, None) => Err(KnownRelaysError::NoPin {
                relay: relay.to_owned(),
                path,
            }),
        }
    }

    /// What sessions with `relay` start from: as [`KnownRelays::pin_for`],
    /// except that a relay with neither a pin nor a `given` key is trusted
    /// on first use when `trust_new` (ssh's `accept-new`), and refused
    /// otherwise.
    pub fn trust_for(
        &self,
        relay: &str,
        given: Option<PublicKey>,
        trust_new: bool,
    ) -> Result<RelayTrust, KnownRelaysError> {
        match self.pin_for(relay, given) {
            Ok(pin) => Ok(RelayTrust::Pinned(pin)),
            Err(KnownRelaysError::NoPin { path, .. }) if trust_new => {
                Ok(RelayTrust::FirstUse { record_in: path })
            }
            Err(error) => Err(error),
        }
    }
}

/// Records `key` for `relay` in the file at `path` (accept-new), making
/// the file (0600) and its directory (0700) if need be. Reads the file
/// again first: an entry another `chat` wrote meanwhile is kept, and
/// refused if it pins another key. Returns whether a line was added.
pub fn record(path: &Path, relay: &str, key: &PublicKey) -> Result<bool, KnownRelaysError> {
    if relay.is_empty() || relay.contains(char::is_whitespace) || relay.starts_with('#') {
        return Err(KnownRelaysError::BadAddress(relay.to_owned()));
    }
    let known = KnownRelays::load(path)?;
    match known.get(relay) {
        Some(pinned) if pinned == key => return Ok(false),
        Some(pinned) => {
            return Err(KnownRelaysError::Conflict {
                relay: relay.to_owned(),
                given: key.fingerprint(),
                pinned: pinned.fingerprint(),
                path: path.to_owned(),
            });
        }
        None => {}
    }
    let io_error = |error| KnownRelaysError::Io {
        path: path.to_owned(),
        error,
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error)?;
    }
    let mut file = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error)?;
    let ends_open = fs::read(path)
        .map_err(io_error)?
        .last()
        .is_some_and(|&byte| byte != b'\n');
    let line = format!("{}{relay} {key}\n", if ends_open { "\n" } else { "" });
    file.write_all(line.as_bytes()).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    Ok(true)
}

/// The entries of a known_relays text, or the number (from 1) of the first
/// line that is not one.
pub fn parse(text: &str) -> Result<Vec<(String, PublicKey)>, usize> {
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let entry = match (words.next(), words.next(), words.next()) {
            (Some(host), Some(key), None) => key.parse().ok().map(|key| (host.to_owned(), key)),
            _ => None,
        };
        entries.push(entry.ok_or(number + 1)?);
    }
    Ok(entries)
}

/// The default file, given `$XDG_CONFIG_HOME` and `$HOME`. The XDG base
/// directory spec ignores a relative or empty `$XDG_CONFIG_HOME`.
fn default_path_from(xdg: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let config = xdg
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| {
            home.filter(|home| !home.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(config.join(RELATIVE_PATH))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn key(byte: u8) -> PublicKey {
        PublicKey::from_bytes([byte; 32])
    }

    #[test]
    fn entries_parse_and_bad_lines_are_named() {
        let (a, b) = (key(1), key(2));
        let text = format!("# pins\n\nrelay.example:8080 {a}\n  10.0.0.1:9 {b}  \r\n");
        assert_eq!(
            parse(&text).unwrap(),
            [
                ("relay.example:8080".to_owned(), a),
                ("10.0.0.1:9".to_owned(), b)
            ]
        );
        let bad = [
            (format!("relay:1 {a}\nrelay:2\n"), 2),
            (format!("relay:1 {a} extra\n"), 1),
            ("relay:1 x25519:AAAA\n".to_owned(), 1),
            (format!("\n\nrelay:1 {}\n", a.fingerprint()), 3),
        ];
        for (text, line) in bad {
            assert_eq!(parse(&text), Err(line), "{text:?}");
        }
    }

    #[test]
    fn the_default_path_follows_xdg_then_home() {
        let path = |xdg: Option<&str>, home: Option<&str>| {
            default_path_from(xdg.map(OsString::from), home.map(OsString::from))
        };
        assert_eq!(
            path(Some("/cfg"), Some("/home/a")),
            Some(PathBuf::from("/cfg/eaxchat/known_relays"))
        );
        for xdg in [None, Some(""), Some("relative")] {
            assert_eq!(
                path(xdg, Some("/home/a")),
                Some(PathBuf::from("/home/a/.config/eaxchat/known_relays")),
                "{xdg:?}"
            );
        }
        assert_eq!(path(None, None), None);
        assert_eq!(path(None, Some("")), None);
    }

    #[test]
    fn a_pin_comes_from_the_flag_or_the_file_and_never_both_differing() {
        let (a, b) = (key(1), key(2));
        let known = KnownRelays {
            path: PathBuf::from("/k"),
            entries: vec![("r:1".to_owned(), a)],
        };
        let pin = known.pin_for("r:1", None).unwrap();
        assert_eq!((pin.key, pin.source), (a, PinSource::Known("/k".into())));
        let pin = known.pin_for("r:1", Some(a)).unwrap();
        assert_eq!(pin.source, PinSource::GivenAndKnown("/k".into()));
        let pin = known.pin_for("r:2", Some(b)).unwrap();
        assert_eq!(
            pin.source,
            PinSource::Given {
                record_in: "/k".into()
            }
        );
        let conflict = known.pin_for("r:1", Some(b)).unwrap_err().to_string();
        assert!(
            conflict.contains(&a.fingerprint().to_string())
                && conflict.contains(&b.fingerprint().to_string()),
            "{conflict}"
        );
        let none = known.pin_for("r:2", None).unwrap_err().to_string();
        assert!(none.contains("--relay-key"), "{none}");
    }

    #[test]
    fn an_unknown_relay_is_trusted_on_first_use_unless_refused() {
        let (a, b) = (key(1), key(2));
        let known = KnownRelays {
            path: PathBuf::from("/k"),
            entries: vec![("r:1".to_owned(), a)],
        };
        assert_eq!(
            known.trust_for("r:2", None, true).unwrap(),
            RelayTrust::FirstUse {
                record_in: "/k".into()
            }
        );
        let strict = known.trust_for("r:2", None, false).unwrap_err().to_string();
        assert!(
            strict.contains("--no-trust-new") && strict.contains("--relay-key"),
            "{strict}"
        );
        for trust_new in [true, false] {
            let pinned = known.trust_for("r:1", None, trust_new).unwrap();
            assert_eq!(
                pinned,
                RelayTrust::Pinned(RelayPin {
                    key: a,
                    source: PinSource::Known("/k".into())
                }),
                "a pinned relay is never asked"
            );
            assert!(matches!(
                known.trust_for("r:1", Some(b), trust_new),
                Err(KnownRelaysError::Conflict { .. })
            ));
            assert!(matches!(
                known.trust_for("r:2", Some(b), trust_new),
                Ok(RelayTrust::Pinned(RelayPin {
                    source: PinSource::Given { .. },
                    ..
                }))
            ));
        }
    }

    #[test]
    fn recording_makes_private_files_adds_once_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/eaxchat/known_relays");
        let (a, b) = (key(1), key(2));
        assert!(record(&path, "r:1", &a).unwrap());
        assert!(!record(&path, "r:1", &a).unwrap(), "already there");
        assert!(record(&path, "r:2", &b).unwrap());
        assert!(matches!(
            record(&path, "r:1", &b),
            Err(KnownRelaysError::Conflict { .. })
        ));
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let known = KnownRelays::load(&path).unwrap();
        assert_eq!((known.get("r:1"), known.get("r:2")), (Some(&a), Some(&b)));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("r:1 {a}\nr:2 {b}\n")
        );
    }

    #[test]
    fn recording_after_a_hand_edit_keeps_lines_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_relays");
        fs::write(&path, format!("# mine\nr:1 {}", key(1))).unwrap();
        assert!(record(&path, "r:2", &key(2)).unwrap());
        assert_eq!(KnownRelays::load(&path).unwrap().entries.len(), 2);
        assert!(record(&path, "has space:1", &key(3)).is_err());
        assert!(
            KnownRelays::load(&dir.path().join("none"))
                .unwrap()
                .entries
                .is_empty()
        );
    }
}
