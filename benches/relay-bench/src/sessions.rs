//! Who is who in a run against a session relay (`relay --members FILE
//! --identity FILE`, a members file of `NAME x25519:KEY` lines), and the
//! client's side of its handshake.
//!
//! A [`SessionRoster`] holds the members file's devices in file order,
//! where their identities (each member's X25519 secret, in its own
//! identity file) are, and the relay's public key that every handshake
//! pins. As in [`super::roster`], the publisher is member 0 and subscriber
//! i is member i + 1; the idle scenario's connection i is member i.
//! Identities are read when a connection needs one, each checked against
//! its line in the members file.
//!
//! [`make_sessions_files`] writes a sessions members file of N members and
//! each member's identity file for `benches/run.sh`: the same format the
//! relay and `chat` read (`eaxchat_proto::session::identity_file`), so
//! relay-bench is a session client like any other. [`connect`] opens one
//! connection and runs the handshake on it: the hello, the welcome
//! verified, and the session that seals and opens every frame after it.
//!
//! This module never prints a secret.

use std::fmt;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eaxchat_core::members::SessionMembers;
use eaxchat_proto::name::Name;
use eaxchat_proto::session::identity_file::{IdentityError, generate_identity, read_identity_file};
use eaxchat_proto::session::{Established, Initiator, MAX_LINE, PublicKey, StaticSecret};

use super::LoadError;
use super::roster::member_name;

/// The members of a sessions members file, where their identities are,
/// and the relay's key. Cloning shares them.
#[derive(Debug, Clone)]
pub struct SessionRoster {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    devices: Vec<(Name, PublicKey)>,
    identity_dir: PathBuf,
    relay: PublicKey,
}

/// The directory of the members' identity files when none is given: the
/// members file's path with `.identities` after it.
pub fn default_identity_dir(members_file: &Path) -> PathBuf {
    let mut dir = members_file.as_os_str().to_owned();
    dir.push(".identities");
    PathBuf::from(dir)
}

/// Member `name`'s identity file in `dir`.
pub fn identity_file(dir: &Path, name: &Name) -> PathBuf {
    dir.join(format!("{name}.identity"))
}

impl SessionRoster {
    /// Reads a sessions members file as the relay would; every device's
    /// identity is to be found in `identity_dir` as `NAME.identity`, so a
    /// member may have only one device here.
    pub fn read_file(
        path: &Path,
        identity_dir: &Path,
        relay: PublicKey,
    ) -> Result<SessionRoster, String> {
        let text = fs::read(path).map_err(|e| format!("members file {}: {e}", path.display()))?;
        let members = SessionMembers::parse(&text, path).map_err(|e| e.to_string())?;
        if members.is_empty() {
            return Err(format!("members file {} has no members", path.display()));
        }
        if let Some(name) = members
            .names()
            .into_iter()
            .find(|name| members.devices_of(name.as_str()).nth(1).is_some())
        {
            return Err(format!(
                "{name} has more than one device in {}: relay-bench needs one identity per member",
                path.display()
            ));
        }
        let devices = members
            .iter()
            .map(|device| (device.name().clone(), *device.key()))
            .collect();
        Ok(SessionRoster::new(devices, identity_dir, relay))
    }

    /// The roster of these devices, their identities in `identity_dir`.
    pub fn new(
        devices: Vec<(Name, PublicKey)>,
        identity_dir: &Path,
        relay: PublicKey,
    ) -> SessionRoster {
        SessionRoster {
            shared: Arc::new(Shared {
                devices,
                identity_dir: identity_dir.to_owned(),
                relay,
            }),
        }
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.shared.devices.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.shared.devices.is_empty()
    }

    /// Member `index`'s name, if there is one.
    pub fn name(&self, index: usize) -> Option<&Name> {
        self.shared.devices.get(index).map(|(name, _)| name)
    }

    /// The relay's public key, pinned by every handshake.
    pub fn relay_key(&self) -> &PublicKey {
        &self.shared.relay
    }

    /// Member `index`'s secret, read from its identity file and checked
    /// against the members file's key.
    pub fn secret(&self, index: usize) -> Result<StaticSecret, LoadError> {
        let (name, key) =
            self.shared.devices.get(index).ok_or_else(|| {
                LoadError::Options(format!("the members file has no member {index}"))
            })?;
        let path = identity_file(&self.shared.identity_dir, name);
        let secret = read_identity_file(&path)
            .map_err(|e| LoadError::Options(e.to_string()))?
            .ok_or_else(|| {
                LoadError::Options(format!("no identity for {name} at {}", path.display()))
            })?;
        if secret.public_key() != key {
            return Err(LoadError::Options(format!(
                "the identity at {} is not {name}'s key in the members file",
                path.display()
            )));
        }
        Ok(secret)
    }

    /// Fails unless there is a member for every one of `connections`.
    pub fn check_enough(&self, connections: usize, who: &str) -> Result<(), String> {
        if self.len() < connections {
            return Err(format!(
                "the members file has {} members; {who} needs {connections}",
                self.len()
            ));
        }
        Ok(())
    }
}

/// The relay's public key from `--relay-key x25519:…` or, failing that,
/// from the relay's identity file.
pub fn relay_key(key: Option<&str>, identity: Option<&Path>) -> Result<PublicKey, String> {
    match (key, identity) {
        (Some(_), Some(_)) => Err("--relay-key and --relay-identity exclude each other".into()),
        (Some(key), None) => key.parse().map_err(|e| format!("--relay-key {key:?}: {e}")),
        (None, Some(path)) => read_identity_file(path)
            .map_err(|e| e.to_string())?
            .map(|secret| *secret.public_key())
            .ok_or_else(|| format!("no relay identity at {}", path.display())),
        (None, None) => Err(
            "a session relay's key is needed: --relay-key x25519:… or --relay-identity FILE".into(),
        ),
    }
}

/// Why session files could not be made.
#[derive(Debug)]
pub enum MakeError {
    /// No members asked for, or too many.
    Count(usize),
    /// The members file exists already, or could not be written.
    Io(io::Error),
    /// An identity file could not be written.
    Identity(IdentityError),
}

impl fmt::Display for MakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MakeError::Count(count) => {
                write!(
                    f,
                    "cannot make {count} members: 1 to {MAKE_MAX} are allowed"
                )
            }
            MakeError::Io(error) => write!(f, "{error}"),
            MakeError::Identity(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for MakeError {}

/// Most members [`make_sessions_files`] makes: each is a file.
const MAKE_MAX: usize = 100_000;

/// Writes a new sessions members file at `path` (mode 0600; never over an
/// existing file) of `count` members named by [`member_name`], each with a
/// fresh identity written to `identity_dir` (made, mode 0700, if need be)
/// as `NAME.identity`, mode 0600.
pub fn make_sessions_files(
    path: &Path,
    identity_dir: &Path,
    count: usize,
) -> Result<(), MakeError> {
    if count == 0 || count > MAKE_MAX {
        return Err(MakeError::Count(count));
    }
    // Claim the members file first: an existing one stops everything.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(MakeError::Io)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(identity_dir)
        .map_err(MakeError::Io)?;
    let mut text = format!("# {count} session members made by relay-bench make-members\n");
    for index in 0..count {
        let name = member_name(index, count);
        let secret = generate_identity(&identity_dir.join(format!("{name}.identity")))
            .map_err(MakeError::Identity)?;
        text.push_str(&format!("{name} {}\n", secret.public_key()));
    }
    file.write_all(text.as_bytes()).map_err(MakeError::Io)
}

/// Opens a connection to `addr` as member `index` of `roster` and runs the
/// handshake: sends the hello, waits (at most `timeout`) for the relay's
/// reply and verifies it. Returns the socket, non-blocking for the poll
/// loop, and the finished handshake: the session and its keys. A refusal
/// is an error that names the member.
pub fn connect(
    addr: SocketAddr,
    roster: &SessionRoster,
    index: usize,
    timeout: Duration,
) -> Result<(mio::net::TcpStream, Established), LoadError> {
    let secret = roster.secret(index)?;
    let name = roster.name(index).map_or("?", Name::as_str);
    let (initiator, hello) = Initiator::start(&secret, roster.relay_key(), b"")
        .map_err(|e| LoadError::Setup(format!("{name}'s hello: {e}")))?;
    let connect_error = |error| LoadError::Connect { addr, error };
    let stream = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(connect_error)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    (&stream).write_all(&hello)?;
    let reply = read_reply(&stream).map_err(|e| {
        LoadError::Setup(format!("{name}'s handshake: no reply from the relay: {e}"))
    })?;
    let established = initiator
        .finish(&reply)
        .map_err(|e| LoadError::Setup(format!("{name}'s handshake failed: {e}")))?;
    stream.set_read_timeout(None)?;
    stream.set_nonblocking(true)?;
    Ok((mio::net::TcpStream::from_std(stream), established))
}

/// Reads the relay's one-line reply, without its `\n`, a byte at a time so
/// that nothing after it is taken from the socket: frames may follow.
fn read_reply(stream: &std::net::TcpStream) -> io::Result<Vec<u8>> {
    let mut line = Vec::with_capacity(128);
    let mut byte = [0u8; 1];
    loop {
        match (&*stream).read(&mut byte) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) if byte[0] == b'\n' => return Ok(line),
            Ok(_) if line.len() > MAX_LINE + 1 => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a line longer than {MAX_LINE} bytes"),
                ));
            }
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "relay-bench-sessions-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn made_files_read_back_with_every_identity_matching_its_line() {
        let dir = scratch("make");
        let path = dir.join("sessions.txt");
        let identities = default_identity_dir(&path);
        make_sessions_files(&path, &identities, 12).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let relay = *StaticSecret::generate().unwrap().public_key();
        let roster = SessionRoster::read_file(&path, &identities, relay).unwrap();
        assert_eq!(roster.len(), 12);
        assert_eq!(roster.name(0).unwrap().as_str(), "m00");
        assert_eq!(roster.relay_key(), &relay);
        for index in 0..12 {
            roster.secret(index).unwrap();
        }
        assert!(roster.secret(12).is_err());
        assert!(roster.check_enough(12, "fanout").is_ok());
        assert!(roster.check_enough(13, "fanout").is_err());
        // Another member's identity in the wrong place is refused.
        let m00 = identity_file(&identities, roster.name(0).unwrap());
        let m01 = identity_file(&identities, roster.name(1).unwrap());
        fs::rename(&m01, &m00).unwrap();
        assert!(matches!(roster.secret(0), Err(LoadError::Options(_))));
        // Nothing is made over an existing members file.
        assert!(matches!(
            make_sessions_files(&path, &identities, 3),
            Err(MakeError::Io(e)) if e.kind() == io::ErrorKind::AlreadyExists
        ));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_relay_key_comes_from_the_flag_or_the_relay_identity() {
        let dir = scratch("relay-key");
        let path = dir.join("relay.identity");
        let secret = generate_identity(&path).unwrap();
        let text = secret.public_key().to_string();
        assert_eq!(relay_key(Some(&text), None).unwrap(), *secret.public_key());
        assert_eq!(relay_key(None, Some(&path)).unwrap(), *secret.public_key());
        assert!(relay_key(Some(&text), Some(&path)).is_err());
        assert!(relay_key(None, None).is_err());
        assert!(relay_key(Some("x25519:nope"), None).is_err());
        assert!(relay_key(None, Some(&dir.join("none"))).is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
