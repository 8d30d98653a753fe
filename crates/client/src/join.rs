//! `chat --join LINK` (or `chat --connect HOST:PORT --join CODE`): a new
//! device joins a relay by an invite, or by its short code (a SPAKE2
//! exchange first, `eaxchat_proto::invite::code`).
//!
//! The device's identity is read from its file, or made there (mode 0600)
//! if there is none; one connection runs the invite join
//! (`eaxchat_proto::invite`), whose welcome proves the relay is the one
//! the invite names and that it added this device's public key to the
//! members file; then the relay's key is pinned in the known relays file
//! for the link's address. The connection then closes, and `chat`
//! connects as any member does, with that identity and that pin.
//!
//! A member makes invites the same way, in its own hello: `chat
//! invite-device` for a device of its own, `chat invite NAME` for a new
//! member (on a relay run with `--members-invite`).
//!
//! Nothing is stored before the welcome: a refused join (a spent, expired
//! or revoked invite, a wrong secret, another relay's key) leaves no pin,
//! and an identity made for it is the only trace.

use std::fmt;
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::{Path, PathBuf};

use eaxchat_proto::invite::code::InviteCode;
use eaxchat_proto::invite::{
    Invite, InviteError, InviteId, InviteSecret, device_invite_payload, member_invite_payload,
};
use eaxchat_proto::name::{Name, NameError};
use eaxchat_proto::session::{PublicKey, StaticSecret};

use crate::handshake::{
    HANDSHAKE_TIMEOUT, HandshakeError, code_exchange, handshake_with, join_handshake,
};
use crate::identity::{IdentityError, generate_identity, read_key_file};
use crate::known_relays::{self, KnownRelays, KnownRelaysError};

/// What a join gave: where to connect from now on, as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The relay's `HOST:PORT`, as the link gave it (and as pinned).
    pub addr: String,
    /// The name the relay gave this device's member.
    pub name: String,
    /// The identity file the device uses.
    pub identity: PathBuf,
    /// Whether that identity was made for this join.
    pub new_identity: bool,
}

/// Why a join failed.
#[derive(Debug)]
pub enum JoinError {
    /// The link does not parse.
    Link(InviteError),
    /// The link is a page link, which names no TCP port.
    PageLink,
    /// The identity file could not be read or made.
    Identity(IdentityError),
    /// The relay could not be reached, or refused the join.
    Handshake(String, HandshakeError),
    /// The relay's key could not be pinned, or the pins not read.
    Pin(KnownRelaysError),
    /// `chat invite-device` and `chat invite` need an identity file there.
    NoIdentity(PathBuf),
    /// `chat invite-device` needs the relay's key pinned (connect once).
    NotPinned(String),
    /// `chat invite NAME`: NAME is not a member name.
    Name(String, NameError),
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Link(error) => error.fmt(f),
            JoinError::PageLink => f.write_str(
                "this is the page's invite link; chat needs the eaxchat://HOST:PORT/join/… link \
                 (relay invite prints both)",
            ),
            JoinError::Identity(error) => error.fmt(f),
            JoinError::Handshake(addr, error) => write!(f, "joining {addr}: {error}"),
            JoinError::Pin(error) => write!(f, "the relay key was not pinned: {error}"),
            JoinError::NoIdentity(path) => write!(
                f,
                "{} is not an identity file: an invite is made by the member whose identity \
                 it is (--key-file)",
                path.display()
            ),
            JoinError::NotPinned(addr) => write!(
                f,
                "no relay key is pinned for {addr}: connect once with chat first"
            ),
            JoinError::Name(name, error) => write!(f, "{name:?}: {error}"),
        }
    }
}

impl std::error::Error for JoinError {}

/// Joins by the invite `link`, or by a short code (`N-word-word-word`) at
/// the relay `connect` (`HOST:PORT`), with the identity at `identity`
/// (made if missing), pinning the relay's key in the known relays file
/// `known`.
pub fn join(link: &str, connect: &str, identity: &Path, known: &Path) -> Result<Joined, JoinError> {
    // A code starts with its nameplate; a link never starts with a digit.
    let code = match link.trim().starts_with(|c: char| c.is_ascii_digit()) {
        true => Some(InviteCode::parse(link).map_err(JoinError::Link)?),
        false => None,
    };
    let invite = match &code {
        // A code names no relay key: the exchange gives it, and the join
        // that follows proves it.
        Some(_) => Invite {
            addr: connect.to_owned(),
            relay: PublicKey::from_bytes([0; 32]),
            id: InviteId([0; 8]),
            secret: InviteSecret::from_bytes([0; 32]),
        },
        None => Invite::parse(link).map_err(JoinError::Link)?,
    };
    if invite.addr.is_empty() {
        return Err(JoinError::PageLink);
    }
    let (secret, new_identity) = identity_for(identity)?;
    let dialled = invite.addr.clone();
    let failed = |error| JoinError::Handshake(dialled.clone(), error);
    let addr = invite
        .addr
        .to_socket_addrs()
        .map_err(|error| failed(HandshakeError::Io(error)))?
        .next()
        .ok_or_else(|| {
            failed(HandshakeError::Io(std::io::Error::other(
                "the address resolves to nothing",
            )))
        })?;
    let mut stream = TcpStream::connect_timeout(&addr, HANDSHAKE_TIMEOUT)
        .map_err(|error| failed(HandshakeError::Io(error)))?;
    let invite = match &code {
        Some(code) => {
            code_exchange(&mut stream, code, &invite.addr, HANDSHAKE_TIMEOUT).map_err(failed)?
        }
        None => invite,
    };
    let established =
        join_handshake(&mut stream, &secret, &invite, HANDSHAKE_TIMEOUT).map_err(failed)?;
    known_relays::record(known, &invite.addr, &invite.relay).map_err(JoinError::Pin)?;
    Ok(Joined {
        addr: invite.addr,
        name: established.name,
        identity: identity.to_owned(),
        new_identity,
    })
}

/// `chat invite-device`: connects to `connect` as the member whose
/// identity is at `identity`, with the relay key pinned for it in `known`,
/// and asks for a device invite in the hello (one use, an hour, adding a
/// device to this member only). Returns the invite (its link to print) and
/// the member's name.
pub fn invite_device(
    connect: &str,
    identity: &Path,
    known: &Path,
) -> Result<(Invite, String), JoinError> {
    ask_for_invite(connect, identity, known, |invite| {
        device_invite_payload(&invite.id, &invite.secret)
    })
}

/// `chat invite NAME`: as [`invite_device`], but asks for an invite that
/// adds a new member called `name` (one use, a day), with this member
/// recorded as its inviter. The relay refuses unless its operator turned
/// on `--members-invite`, and refuses a name that is a member's already;
/// its refusal is the error's text. Returns the invite and the inviting
/// member's name.
pub fn invite_member(
    connect: &str,
    identity: &Path,
    known: &Path,
    name: &str,
) -> Result<(Invite, String), JoinError> {
    let name = Name::new(name).map_err(|error| JoinError::Name(name.to_owned(), error))?;
    ask_for_invite(connect, identity, known, |invite| {
        member_invite_payload(&name, &invite.id, &invite.secret)
    })
}

/// Connects to `connect` as the member whose identity is at `identity`
/// and makes an invite for the relay pinned for it in `known`, asking for
/// it with the hello payload `payload` gives; the welcome says the relay
/// holds it.
fn ask_for_invite(
    connect: &str,
    identity: &Path,
    known: &Path,
    payload: impl FnOnce(&Invite) -> Vec<u8>,
) -> Result<(Invite, String), JoinError> {
    let secret = read_key_file(identity)
        .map_err(JoinError::Identity)?
        .ok_or_else(|| JoinError::NoIdentity(identity.to_owned()))?;
    let relays = KnownRelays::load(known).map_err(JoinError::Pin)?;
    let relay = *relays
        .get(connect)
        .ok_or_else(|| JoinError::NotPinned(connect.to_owned()))?;
    let invite = Invite::generate(connect, &relay).map_err(JoinError::Link)?;
    let failed = |error| JoinError::Handshake(connect.to_owned(), error);
    let addr = connect
        .to_socket_addrs()
        .map_err(|error| failed(HandshakeError::Io(error)))?
        .next()
        .ok_or_else(|| {
            failed(HandshakeError::Io(std::io::Error::other(
                "the address resolves to nothing",
            )))
        })?;
    let mut stream = TcpStream::connect_timeout(&addr, HANDSHAKE_TIMEOUT)
        .map_err(|error| failed(HandshakeError::Io(error)))?;
    let payload = payload(&invite);
    let established = handshake_with(&mut stream, &secret, &relay, &payload, HANDSHAKE_TIMEOUT)
        .map_err(failed)?;
    Ok((invite, established.name))
}

fn identity_for(path: &Path) -> Result<(StaticSecret, bool), JoinError> {
    if let Some(secret) = read_key_file(path).map_err(JoinError::Identity)? {
        return Ok((secret, false));
    }
    generate_identity(path)
        .map(|secret| (secret, true))
        .map_err(JoinError::Identity)
}
