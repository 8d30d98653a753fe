//! Identity files: an X25519 secret kept in a file of its own, a member's
//! on their device or the relay's beside it. The client (`chat --key-file`,
//! `chat keygen`) and the relay (`relay --identity`, `relay members add`
//! and `migrate`) read and write them here, so the format has one owner.
//!
//! The format is the protocol's (docs/protocol.md, "Keys and files"): lines
//! starting with `#` are comments, and one line holds the padded standard
//! base64 of the 32-byte secret. [`write_new_identity`] writes one (mode
//! 0600, never over an existing file) with a header comment and the public
//! key as a second comment, so the owner can read it back without tools.
//!
//! A file whose key line is base64 of 32 bytes (44 characters with one
//! `=`, which no hex key is), or that carries [`IDENTITY_HEADER`]'s opening
//! words, is an identity; [`read_identity_file`] leaves any other file
//! (a legacy hex key file) to its own parser. Like ssh, an identity file
//! that group or others can read is refused.
//!
//! Nothing here prints or logs a secret: the file's text and the decoded
//! bytes are wiped from memory once the [`StaticSecret`] holds them. Like
//! [`crate::key`]'s key files, this is the crate's only file access: no
//! sockets, threads or clocks.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::error::SessionError;
use super::identity::StaticSecret;

/// The comment that opens an identity file `chat keygen` writes.
pub const IDENTITY_HEADER: &str = "# eaxchat identity (X25519 secret key): keep it private";

/// The words that mark a comment as an identity file's header.
const HEADER_MARK: &str = "eaxchat identity";

/// Characters of padded base64 in a 32-byte secret.
const SECRET_CHARS: usize = 44;

/// Why an identity file could not be read or written.
#[derive(Debug)]
pub enum IdentityError {
    /// Reading or writing the file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// An identity file whose text is not one.
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// An identity file that group or others can read.
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A new identity was to be written to a file that exists.
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The operating system's random number generator failed.
    Randomness(SessionError),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Io { path, error } => {
                write!(f, "identity file {}: {error}", path.display())
            }
            IdentityError::Malformed { path, problem } => {
                write!(f, "malformed identity file {}: {problem}", path.display())
            }
            IdentityError::Exposed { path, mode } => write!(
                f,
                "identity file {} is readable by group or others (mode {:03o}): \
                 it holds your secret key; run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            ),
            IdentityError::Exists { path } => write!(
                f,
                "{} already exists: an identity is never overwritten; \
                 choose another file, or remove the old one yourself",
                path.display()
            ),
            IdentityError::Randomness(error) => write!(f, "generating a key: {error}"),
        }
    }
}

impl std::error::Error for IdentityError {}

/// Parses a key file's text: `Ok(Some)` for an identity, `Ok(None)` for a
/// text that is not one (a legacy hex key file: its own parser decides),
/// and `Err` for an identity file that is damaged.
pub fn parse_identity(text: &str) -> Result<Option<StaticSecret>, &'static str> {
    let mut header = false;
    let mut data = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        match line.strip_prefix('#') {
            Some(comment) => header |= comment.trim_start().starts_with(HEADER_MARK),
            None => data.push(line),
        }
    }
    let looks_like_secret = |line: &&str| line.len() == SECRET_CHARS && line.ends_with('=');
    let one_secret_line = data.len() == 1 && data.first().is_some_and(looks_like_secret);
    if !header && !one_secret_line {
        return Ok(None);
    }
    let line = match data.as_slice() {
        [line] => *line,
        [] => return Err("no key line (only blank or # lines)"),
        _ => return Err("more than one line besides # comments; expected one key"),
    };
    let mut bytes = Zeroizing::new([0u8; SECRET_CHARS]);
    match STANDARD.decode_slice(line, &mut bytes[..]) {
        Ok(32) => {}
        _ => return Err("the key line is not the padded base64 of 32 bytes"),
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    secret.copy_from_slice(&bytes[..32]);
    StaticSecret::from_bytes(&secret)
        .map(Some)
        .map_err(|_| "the key line is not an X25519 secret")
}

/// Reads `path` if it is an identity file: `Ok(None)` if it does not exist
/// or is a legacy key file. An identity that group or others can read is
/// refused ([`IdentityError::Exposed`]).
pub fn read_identity_file(path: &Path) -> Result<Option<StaticSecret>, IdentityError> {
    let io_error = |error| IdentityError::Io {
        path: path.to_owned(),
        error,
    };
    let text = match fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        // Not UTF-8: no identity file; the legacy parser says what it is.
        Err(error) if error.kind() == io::ErrorKind::InvalidData => return Ok(None),
        Err(error) => return Err(io_error(error)),
    };
    let Some(secret) = parse_identity(&text).map_err(|problem| IdentityError::Malformed {
        path: path.to_owned(),
        problem,
    })?
    else {
        return Ok(None);
    };
    let mode = fs::metadata(path).map_err(io_error)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(IdentityError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(Some(secret))
}

/// The text of an identity file for `secret`.
fn identity_text(secret: &StaticSecret) -> Zeroizing<String> {
    let encoded = Zeroizing::new(STANDARD.encode(secret.expose_secret()));
    Zeroizing::new(format!(
        "{IDENTITY_HEADER}\n# public key {}\n{}\n",
        secret.public_key(),
        encoded.as_str()
    ))
}

/// Writes `secret` to a new identity file at `path`, mode 0600, making its
/// directory (0700) if need be; fails if the file exists
/// ([`IdentityError::Exists`]) rather than replace a key.
pub fn write_new_identity(path: &Path, secret: &StaticSecret) -> Result<(), IdentityError> {
    let io_error = |error: io::Error| match error.kind() {
        io::ErrorKind::AlreadyExists => IdentityError::Exists {
            path: path.to_owned(),
        },
        _ => IdentityError::Io {
            path: path.to_owned(),
            error,
        },
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error)?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error)?;
    file.write_all(identity_text(secret).as_bytes())
        .map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

/// Generates a new identity and writes it to `path` (as
/// [`write_new_identity`]); returns it, for its public key.
pub fn generate_identity(path: &Path) -> Result<StaticSecret, IdentityError> {
    let secret = StaticSecret::generate().map_err(IdentityError::Randomness)?;
    write_new_identity(path, &secret)?;
    Ok(secret)
}

/// Reads the identity at `path`, or generates one there if there is no
/// file (a relay's first start): the secret, and whether it is new. A file
/// that is there but holds no identity is refused, never replaced.
pub fn read_or_generate(path: &Path) -> Result<(StaticSecret, bool), IdentityError> {
    if let Some(secret) = read_identity_file(path)? {
        return Ok((secret, false));
    }
    if path.exists() {
        return Err(IdentityError::Malformed {
            path: path.to_owned(),
            problem: "not an identity file (expected # comments and one line of base64)",
        });
    }
    match generate_identity(path) {
        Ok(secret) => Ok((secret, true)),
        // Made by someone else since we looked: theirs is the one.
        Err(IdentityError::Exists { .. }) => read_identity_file(path)?
            .map(|secret| (secret, false))
            .ok_or_else(|| IdentityError::Malformed {
                path: path.to_owned(),
                problem: "not an identity file (expected # comments and one line of base64)",
            }),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f";

    fn secret_line(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn identity_texts_parse_and_legacy_key_files_are_left_alone() {
        let line = secret_line(7);
        let want = *StaticSecret::from_bytes(&[7; 32]).unwrap().public_key();
        let identities = [
            format!("{line}\n"),
            format!("{IDENTITY_HEADER}\n{line}\n"),
            format!("# eaxchat identity\n\n  {line}  \r\n# trailing comment\n"),
            line.clone(),
        ];
        for text in &identities {
            let secret = parse_identity(text).unwrap().unwrap();
            assert_eq!(secret.public_key(), &want, "{text:?}");
        }
        let legacy = [
            format!("{HEX}\n"),
            format!("# eaxchat member key for alice\n{HEX}\n"),
            String::new(),
            "# just a comment\n".to_owned(),
            format!("{HEX}\n{HEX}\n"),
            "not a key at all\n".to_owned(),
        ];
        for text in &legacy {
            assert!(parse_identity(text).unwrap().is_none(), "{text:?}");
        }
    }

    #[test]
    fn damaged_identity_files_are_refused() {
        let line = secret_line(1);
        let cases = [
            format!("{IDENTITY_HEADER}\n"),
            format!("{IDENTITY_HEADER}\n{line}\n{line}\n"),
            format!("{IDENTITY_HEADER}\n{HEX}\n"),
            format!("{IDENTITY_HEADER}\nAAAA\n"),
            // 44 characters with padding that is not 32 bytes' worth.
            format!("{}==\n", &line[..42]),
            format!("{}=\n", "!".repeat(43)),
        ];
        for text in &cases {
            assert!(parse_identity(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn a_new_identity_is_private_never_overwritten_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/eaxchat/me.identity");
        let secret = generate_identity(&path).unwrap();
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(IDENTITY_HEADER), "{text}");
        assert!(text.contains(&secret.public_key().to_string()), "{text}");
        let read = read_identity_file(&path).unwrap().unwrap();
        assert_eq!(read.public_key(), secret.public_key());

        let again = generate_identity(&path).unwrap_err();
        assert!(matches!(again, IdentityError::Exists { .. }), "{again}");
        assert_eq!(fs::read_to_string(&path).unwrap(), text, "left untouched");
    }

    #[test]
    fn an_identity_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("me.identity");
        generate_identity(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = read_identity_file(&path).unwrap_err();
        assert!(matches!(error, IdentityError::Exposed { .. }), "{error}");
        let text = error.to_string();
        assert!(text.contains("chmod 600") && text.contains("644"), "{text}");
    }

    #[test]
    fn read_or_generate_makes_one_once_and_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.identity");
        let (made, new) = read_or_generate(&path).unwrap();
        assert!(new);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (again, new) = read_or_generate(&path).unwrap();
        assert!(!new);
        assert_eq!(again.public_key(), made.public_key());
        let legacy = dir.path().join("relay.key");
        fs::write(&legacy, format!("{HEX}\n")).unwrap();
        let error = read_or_generate(&legacy).unwrap_err();
        assert!(
            error.to_string().contains("not an identity file"),
            "{error}"
        );
        assert_eq!(fs::read_to_string(&legacy).unwrap(), format!("{HEX}\n"));
    }

    #[test]
    fn missing_and_legacy_files_are_not_identities() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            read_identity_file(&dir.path().join("none"))
                .unwrap()
                .is_none()
        );
        let legacy = dir.path().join("relay.key");
        fs::write(&legacy, format!("{HEX}\n")).unwrap();
        fs::set_permissions(&legacy, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_identity_file(&legacy).unwrap().is_none());
    }
}
