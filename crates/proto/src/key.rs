//! The shared key: parsing it from hex, and the key file the relay and
//! clients read it from.
//!
//! A key is 16, 24 or 32 bytes (AES-128/192/256), written as 32, 48 or 64
//! hex digits; whitespace around the digits is ignored. In a key file,
//! blank lines and lines starting with `#` are skipped, so a member's key
//! file (`# eaxchat member key for NAME`, then the hex key, as
//! `relay members add` writes it) reads like any other, and says whose it
//! is. This module never logs or displays key material: `Key`'s `Debug`
//! prints only its length.
//!
//! Two errors, one per boundary: [`KeyParseError`] says why a text is not
//! a key (parsing, which touches nothing else), and [`KeyError`] why a key
//! could not be had from where it was looked for (a flag, the variable, a
//! file), naming that place.
//!
//! ```
//! use eaxchat_proto::key::{Key, KeyParseError};
//!
//! let key = Key::from_hex(" 000102030405060708090a0b0c0d0e0f\n")?;
//! assert_eq!(key.as_bytes().len(), 16);
//! assert_eq!(key.to_hex(), "000102030405060708090a0b0c0d0e0f");
//! assert_eq!(format!("{key:?}"), "Key(AES-128, redacted)");
//!
//! assert_eq!(Key::from_hex("abc"), Err(KeyParseError::WrongLength { found: 3 }));
//! let typo = Key::from_hex("000102030405060708090a0b0c0d0e0g").unwrap_err();
//! assert_eq!(typo.to_string(), "not a hex digit at position 31");
//! # Ok::<(), KeyParseError>(())
//! ```

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Environment variable that may carry the key in hex, for scripts.
pub const KEY_ENV: &str = "EAXCHAT_KEY";

/// Length of the key the relay generates when its key file is missing.
pub const GENERATED_KEY_LEN: usize = 16;

/// The comment that opens a member's key file, before the member's name.
pub const MEMBER_COMMENT: &str = "# eaxchat member key for ";

/// An AES key of 16, 24 or 32 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(KeyBytes);

/// A key's bytes, as the array its AES size takes: a cipher is built from
/// it without a length check that could fail.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum KeyBytes {
    Aes128([u8; 16]),
    Aes192([u8; 24]),
    Aes256([u8; 32]),
}

/// The key's bytes are wiped from memory when it is dropped.
impl Drop for KeyBytes {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        match self {
            KeyBytes::Aes128(bytes) => bytes.zeroize(),
            KeyBytes::Aes192(bytes) => bytes.zeroize(),
            KeyBytes::Aes256(bytes) => bytes.zeroize(),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(AES-{}, redacted)", self.as_bytes().len() * 8)
    }
}

/// Why a text is not a key, or a key file's text holds none. `Display` is
/// the problem as users read it (after `malformed key in SOURCE: `).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyParseError {
    /// Not 32, 48 or 64 hex digits long once surrounding whitespace is
    /// trimmed.
    WrongLength {
        /// How long it is, in bytes.
        found: usize,
    },
    /// A character that is not a hex digit.
    NotHexDigit {
        /// The 1-based position of the first digit of the pair holding it.
        position: usize,
    },
    /// A key file with more than one line besides `#` comments.
    MoreThanOneKey,
    /// A key file with only blank or `#` lines.
    NoKey,
}

impl fmt::Display for KeyParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyParseError::WrongLength { found } => write!(
                f,
                "expected 32, 48 or 64 hex digits, found {found} characters"
            ),
            KeyParseError::NotHexDigit { position } => {
                write!(f, "not a hex digit at position {position}")
            }
            KeyParseError::MoreThanOneKey => {
                f.write_str("more than one line besides # comments; expected one key")
            }
            KeyParseError::NoKey => f.write_str("no key in it (only blank or # lines)"),
        }
    }
}

impl std::error::Error for KeyParseError {}

/// Why a key could not be had.
#[derive(Debug)]
pub enum KeyError {
    /// The text is not a key ([`KeyParseError`]).
    Malformed {
        /// Where the text came from (a path, a flag or the variable's name).
        source: String,
        /// What is wrong with it.
        problem: KeyParseError,
    },
    /// The key file could not be read or written.
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Malformed { source, problem } => {
                write!(f, "malformed key in {source}: {problem}")
            }
            KeyError::Io { path, error } => {
                write!(f, "key file {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for KeyError {}

impl Key {
    /// Takes raw key bytes; `None` unless there are 16, 24 or 32 of them.
    pub fn from_bytes(bytes: &[u8]) -> Option<Key> {
        let sized = match bytes.len() {
            16 => KeyBytes::Aes128(bytes.try_into().ok()?),
            24 => KeyBytes::Aes192(bytes.try_into().ok()?),
            32 => KeyBytes::Aes256(bytes.try_into().ok()?),
            _ => return None,
        };
        Some(Key(sized))
    }

    /// Parses 32, 48 or 64 hex digits, ignoring surrounding whitespace.
    pub fn from_hex(text: &str) -> Result<Key, KeyParseError> {
        let digits = text.trim().as_bytes();
        let sized = match digits.len() {
            32 => KeyBytes::Aes128(decode_hex(digits)?),
            48 => KeyBytes::Aes192(decode_hex(digits)?),
            64 => KeyBytes::Aes256(decode_hex(digits)?),
            found => return Err(KeyParseError::WrongLength { found }),
        };
        Ok(Key(sized))
    }

    /// A fresh random key of [`GENERATED_KEY_LEN`] bytes from the OS.
    pub fn generate() -> io::Result<Key> {
        let mut bytes = [0u8; GENERATED_KEY_LEN];
        getrandom::fill(&mut bytes).map_err(io::Error::other)?;
        Ok(Key(KeyBytes::Aes128(bytes)))
    }

    /// The key in lowercase hex, for writing a key file.
    pub fn to_hex(&self) -> String {
        self.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key as the array its AES size takes.
    pub(crate) fn sized(&self) -> &KeyBytes {
        &self.0
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            KeyBytes::Aes128(bytes) => bytes,
            KeyBytes::Aes192(bytes) => bytes,
            KeyBytes::Aes256(bytes) => bytes,
        }
    }

    /// Reads a key file. `Ok(None)` if it does not exist.
    pub fn read_file(path: &Path) -> Result<Option<Key>, KeyError> {
        Ok(KeyFile::read(path)?.map(|file| file.key))
    }

    /// Writes this key to a new file readable only by its owner (mode 0600).
    /// Fails if the file already exists rather than replace a key.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyError> {
        write_new(path, &format!("{}\n", self.to_hex()))
    }

    /// Writes this key as `member`'s key file: the line
    /// `# eaxchat member key for MEMBER`, then the key in hex. Mode 0600,
    /// and never over an existing file, as [`Key::write_new_file`].
    pub fn write_new_member_file(&self, path: &Path, member: &str) -> Result<(), KeyError> {
        write_new(
            path,
            &format!("{MEMBER_COMMENT}{member}\n{}\n", self.to_hex()),
        )
    }
}

/// A key file's contents: the key, and the member it belongs to when the
/// file says so (its `# eaxchat member key for NAME` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// The key.
    pub key: Key,
    /// The member's name, from a member key file; `None` for a shared key.
    pub member: Option<String>,
}

impl KeyFile {
    /// Reads a key file. `Ok(None)` if it does not exist.
    pub fn read(path: &Path) -> Result<Option<KeyFile>, KeyError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(KeyError::Io {
                    path: path.to_owned(),
                    error,
                });
            }
        };
        KeyFile::parse(&text)
            .map(Some)
            .map_err(|problem| KeyError::Malformed {
                source: path.display().to_string(),
                problem,
            })
    }

    /// Parses a key file's text: one line of hex, with blank lines and
    /// `#` comment lines skipped; a `# eaxchat member key for NAME` comment
    /// names the member.
    pub fn parse(text: &str) -> Result<KeyFile, KeyParseError> {
        let mut member = None;
        let mut hex = None;
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
            if let Some(comment) = line.strip_prefix('#') {
                member = member.or_else(|| member_name(comment));
            } else if hex.replace(line).is_some() {
                return Err(KeyParseError::MoreThanOneKey);
            }
        }
        let hex = hex.ok_or(KeyParseError::NoKey)?;
        let key = Key::from_hex(hex)?;
        Ok(KeyFile { key, member })
    }
}

/// The member named by a comment (the text after its `#`), if it is the
/// member key file's `eaxchat member key for NAME` line.
fn member_name(comment: &str) -> Option<String> {
    let name = comment
        .trim_start()
        .strip_prefix(MEMBER_COMMENT.trim_start_matches('#').trim_start())?
        .trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// Writes `contents` to a new file readable only by its owner (mode 0600);
/// fails if the file already exists.
fn write_new(path: &Path, contents: &str) -> Result<(), KeyError> {
    let io_error = |error| KeyError::Io {
        path: path.to_owned(),
        error,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error)?;
    file.write_all(contents.as_bytes()).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

/// Where a key came from, for the start-up log (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The `--key-hex` flag.
    Flag,
    /// The `EAXCHAT_KEY` environment variable.
    Env,
    /// An existing key file.
    File(PathBuf),
    /// A key file that did not exist and was just generated.
    Generated(PathBuf),
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOrigin::Flag => f.write_str("--key-hex"),
            KeyOrigin::Env => write!(f, "${KEY_ENV}"),
            KeyOrigin::File(path) => write!(f, "key file {}", path.display()),
            KeyOrigin::Generated(path) => write!(f, "new key file {}", path.display()),
        }
    }
}

/// How a program wants its key found.
#[derive(Debug, Clone)]
pub struct KeySource<'a> {
    /// The `--key-hex` value, which wins over everything else.
    pub hex: Option<&'a str>,
    /// The `EAXCHAT_KEY` value, used when there is no flag.
    pub env: Option<String>,
    /// The key file, used when there is neither.
    pub file: &'a Path,
    /// Whether a missing key file is generated (the relay) or an error (clients).
    pub generate_missing: bool,
}

impl KeySource<'_> {
    /// Finds the key: `--key-hex`, then `EAXCHAT_KEY`, then the key file.
    pub fn resolve(&self) -> Result<(Key, KeyOrigin), KeyError> {
        self.resolve_key_file()
            .map(|(found, origin)| (found.key, origin))
    }

    /// As [`KeySource::resolve`], with the member the key file names, if
    /// the key came from a member's key file.
    pub fn resolve_key_file(&self) -> Result<(KeyFile, KeyOrigin), KeyError> {
        let shared = |key| KeyFile { key, member: None };
        if let Some(hex) = self.hex {
            return parse_named(hex, "--key-hex").map(|key| (shared(key), KeyOrigin::Flag));
        }
        if let Some(hex) = self.env.as_deref().filter(|v| !v.trim().is_empty()) {
            return parse_named(hex, KEY_ENV).map(|key| (shared(key), KeyOrigin::Env));
        }
        if let Some(found) = KeyFile::read(self.file)? {
            return Ok((found, KeyOrigin::File(self.file.to_owned())));
        }
        if !self.generate_missing {
            return Err(KeyError::Io {
                path: self.file.to_owned(),
                error: io::Error::new(io::ErrorKind::NotFound, "no such file"),
            });
        }
        let key = Key::generate().map_err(|error| KeyError::Io {
            path: self.file.to_owned(),
            error,
        })?;
        key.write_new_file(self.file)?;
        Ok((shared(key), KeyOrigin::Generated(self.file.to_owned())))
    }
}

/// True when `path` can be read by its group or by others.
pub fn readable_by_others(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0)
}

fn parse_named(hex: &str, source: &str) -> Result<Key, KeyError> {
    Key::from_hex(hex).map_err(|problem| KeyError::Malformed {
        source: source.to_owned(),
        problem,
    })
}

/// Decodes `2 * N` hex digits; `digits` holds exactly that many.
fn decode_hex<const N: usize>(digits: &[u8]) -> Result<[u8; N], KeyParseError> {
    let mut bytes = [0u8; N];
    for (i, (byte, pair)) in bytes.iter_mut().zip(digits.chunks_exact(2)).enumerate() {
        let (Some(hi), Some(lo)) = (hex_value(pair[0]), hex_value(pair[1])) else {
            return Err(KeyParseError::NotHexDigit {
                position: i * 2 + 1,
            });
        };
        *byte = hi << 4 | lo;
    }
    Ok(bytes)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_key_length_and_rejects_others() {
        let ok = [
            ("000102030405060708090a0b0c0d0e0f", 16),
            ("  000102030405060708090A0B0C0D0E0F1011121314151617\n", 24),
            (
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                32,
            ),
        ];
        for (hex, len) in ok {
            assert_eq!(Key::from_hex(hex).unwrap().as_bytes().len(), len);
        }
        for bad in [
            "",
            "00",
            "000102030405060708090a0b0c0d0e0",
            "000102030405060708090a0b0c0d0e0g",
            "000102030405060708090a0b0c0d0e0f00",
            "0001020304050607 8090a0b0c0d0e0f",
        ] {
            assert!(Key::from_hex(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Key::from_hex("000102030405060708090a0b0c0d0e0f")
                .unwrap()
                .to_hex(),
            "000102030405060708090a0b0c0d0e0f"
        );
    }

    #[test]
    fn key_files_skip_comments_and_name_their_member() {
        let hex = "000102030405060708090a0b0c0d0e0f";
        let key = Key::from_hex(hex).unwrap();
        let cases = [
            (format!("{hex}\n"), None),
            (format!("\n  {hex}  \n\n"), None),
            (format!("# a note\n{hex}\n"), None),
            (
                format!("# eaxchat member key for alice\n{hex}\n"),
                Some("alice"),
            ),
            (
                format!("{hex}\n  # eaxchat member key for bob.x-1 \n"),
                Some("bob.x-1"),
            ),
            (format!("# eaxchat member key for \n{hex}\n"), None),
        ];
        for (text, member) in cases {
            let file = KeyFile::parse(&text).unwrap();
            assert_eq!(file.key, key, "{text:?}");
            assert_eq!(file.member.as_deref(), member, "{text:?}");
        }
        for bad in [
            String::new(),
            "# eaxchat member key for alice\n".to_owned(),
            format!("{hex}\n{hex}\n"),
            format!("# eaxchat member key for alice {hex}\n"),
        ] {
            assert!(KeyFile::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn member_key_files_are_private_never_overwritten_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.key");
        let key = Key::from_hex("00112233445566778899aabbccddeeff").unwrap();
        key.write_new_member_file(&path, "alice").unwrap();
        assert!(!readable_by_others(&path));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# eaxchat member key for alice\n00112233445566778899aabbccddeeff\n"
        );
        let read = KeyFile::read(&path).unwrap().unwrap();
        assert_eq!(read.key, key);
        assert_eq!(read.member.as_deref(), Some("alice"));
        assert_eq!(Key::read_file(&path).unwrap(), Some(key.clone()));
        let other = Key::from_hex("ffeeddccbbaa99887766554433221100").unwrap();
        assert!(other.write_new_member_file(&path, "bob").is_err());
        assert_eq!(KeyFile::read(&path).unwrap().unwrap().key, key);

        let source = KeySource {
            hex: None,
            env: None,
            file: &path,
            generate_missing: false,
        };
        let (found, origin) = source.resolve_key_file().unwrap();
        assert_eq!(found.member.as_deref(), Some("alice"));
        assert_eq!(origin, KeyOrigin::File(path.clone()));
        let flagged = KeySource {
            hex: Some("ffeeddccbbaa99887766554433221100"),
            ..source
        };
        assert_eq!(flagged.resolve_key_file().unwrap().0.member, None);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = Key::from_hex("abababababababababababababababab").unwrap();
        assert!(!format!("{key:?}").contains("ab"));
    }

    #[test]
    fn generates_a_private_key_file_once_then_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.key");
        let source = KeySource {
            hex: None,
            env: None,
            file: &path,
            generate_missing: true,
        };
        let (key, origin) = source.resolve().unwrap();
        assert_eq!(origin, KeyOrigin::Generated(path.clone()));
        assert_eq!(key.as_bytes().len(), GENERATED_KEY_LEN);
        assert!(!readable_by_others(&path));
        let (again, origin) = source.resolve().unwrap();
        assert_eq!(origin, KeyOrigin::File(path.clone()));
        assert_eq!(again, key);

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(readable_by_others(&path));
    }

    #[test]
    fn flag_beats_env_beats_file_and_errors_name_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.key");
        let env = Some("11111111111111111111111111111111".to_owned());
        let flag = "22222222222222222222222222222222";
        let source = KeySource {
            hex: Some(flag),
            env: env.clone(),
            file: &path,
            generate_missing: false,
        };
        assert_eq!(source.resolve().unwrap().1, KeyOrigin::Flag);
        let source = KeySource {
            hex: None,
            ..source
        };
        assert_eq!(source.resolve().unwrap().1, KeyOrigin::Env);
        let source = KeySource {
            env: None,
            ..source
        };
        assert!(matches!(source.resolve(), Err(KeyError::Io { .. })));
        assert!(!path.exists(), "clients never create a key file");

        fs::write(&path, "not a key\n").unwrap();
        let err = source.resolve().unwrap_err().to_string();
        assert!(err.contains("missing.key"), "{err}");
        let bad_env = KeySource {
            env: Some("xyz".into()),
            ..source
        };
        assert!(bad_env.resolve().unwrap_err().to_string().contains(KEY_ENV));
    }
}
