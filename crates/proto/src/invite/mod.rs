//! Invites: one link that gets a new device into a session relay, with
//! nothing secret ever copied by hand but the link itself.
//!
//! An invite is the relay's address, the relay's public key (so the
//! joiner authenticates the relay from its first message), an 8-byte id
//! and a 32-byte one-time secret. Its link is
//! `eaxchat://HOST:PORT/join/TOKEN`, and on a relay that serves the page
//! `http(s)://HOST:PORT/#invite=TOKEN`, where TOKEN is unpadded base64url
//! of `relay key(32) ‖ id(8) ‖ secret(32)`.
//!
//! Joining is one handshake, [`JOIN_PROTOCOL`]: Noise IK with the secret
//! as a PSK mixed in at the end of message 1 (`psk1`). Line 1 is kind
//! 0x03, `id(8) ‖ Noise message 1`: the relay finds the invite by its id,
//! and message 1 decrypts only with both the relay's secret and the
//! invite's, so a wrong secret is refused before the relay answers
//! anything but a refusal, and a relay that is not the one in the invite
//! cannot read it. Line 2 is the ordinary welcome (kind 0x02, the name the
//! relay gave), and frames follow as in any session.
//!
//! This module owns the link's text form and the join's first line. The
//! invites a relay holds, and how many tries each gets, are the relay's.

pub mod code;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::name::Name;
use crate::session::{
    Initiator, Kind, PublicKey, Responder, SessionError, StaticSecret, decode_line,
};

/// The Noise protocol an invite join runs.
pub const JOIN_PROTOCOL: &str = "Noise_IKpsk1_25519_AESGCM_SHA256";

/// The Noise prologue of an invite join.
pub const JOIN_PROLOGUE: &[u8] = b"eaxchat/invite/1";

/// Bytes of an invite id.
pub const ID_LEN: usize = 8;

/// Bytes of an invite secret: the Noise PSK.
pub const SECRET_LEN: usize = 32;

/// Bytes of a link's token before base64url.
const TOKEN_LEN: usize = 32 + ID_LEN + SECRET_LEN;

/// What opens an `eaxchat://` link's path.
const JOIN_PATH: &str = "/join/";

/// What precedes the token in a page link's fragment.
const WEB_MARK: &str = "#invite=";

/// An invite's id: public, shown by `relay invite --list`, sent in clear
/// on the join's first line.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InviteId(pub [u8; ID_LEN]);

impl InviteId {
    /// Parses an id's text form, 16 hex digits.
    pub fn parse(text: &str) -> Result<InviteId, InviteError> {
        let text = text.trim();
        if text.len() != ID_LEN * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InviteError::BadId);
        }
        let mut id = [0; ID_LEN];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)
                .map_err(|_| InviteError::BadId)?;
        }
        Ok(InviteId(id))
    }
}

impl fmt::Display for InviteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for InviteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InviteId({self})")
    }
}

/// An invite secret: the join's PSK. Wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteSecret(Zeroizing<[u8; SECRET_LEN]>);

impl InviteSecret {
    /// A new random secret, from the operating system.
    pub fn generate() -> Result<InviteSecret, InviteError> {
        let mut secret = Zeroizing::new([0; SECRET_LEN]);
        getrandom::fill(secret.as_mut_slice()).map_err(|_| InviteError::NoRandomness)?;
        Ok(InviteSecret(secret))
    }

    /// The secret from its bytes.
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> InviteSecret {
        InviteSecret(Zeroizing::new(bytes))
    }

    /// The secret's bytes, for the handshake and the relay's invites file.
    pub fn expose_secret(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }
}

impl fmt::Debug for InviteSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteSecret(..)")
    }
}

/// One invite as a joiner holds it: where the relay is, its key, the id
/// and the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// `HOST:PORT` of the relay's TCP port; empty for a page link, whose
    /// page connects to its own origin.
    pub addr: String,
    /// The relay's static public key: the joiner pins it.
    pub relay: PublicKey,
    /// The invite's id.
    pub id: InviteId,
    /// The one-time secret.
    pub secret: InviteSecret,
}

impl Invite {
    /// A new invite for the relay at `addr` whose key is `relay`, with a
    /// random id and secret.
    pub fn generate(addr: &str, relay: &PublicKey) -> Result<Invite, InviteError> {
        let mut id = [0; ID_LEN];
        getrandom::fill(&mut id).map_err(|_| InviteError::NoRandomness)?;
        Ok(Invite {
            addr: addr.to_owned(),
            relay: *relay,
            id: InviteId(id),
            secret: InviteSecret::generate()?,
        })
    }

    /// The token: unpadded base64url of `relay key ‖ id ‖ secret`.
    pub fn token(&self) -> String {
        let mut raw = Zeroizing::new([0; TOKEN_LEN]);
        raw[..32].copy_from_slice(self.relay.as_bytes());
        raw[32..32 + ID_LEN].copy_from_slice(&self.id.0);
        raw[32 + ID_LEN..].copy_from_slice(self.secret.expose_secret());
        URL_SAFE_NO_PAD.encode(raw.as_slice())
    }

    /// The `eaxchat://HOST:PORT/join/TOKEN` link.
    pub fn link(&self) -> String {
        format!("eaxchat://{}{JOIN_PATH}{}", self.addr, self.token())
    }

    /// The page's link: `BASE/#invite=TOKEN`, `base` being the page's
    /// origin (`https://HOST:PORT`).
    pub fn web_link(&self, base: &str) -> String {
        format!("{}/{WEB_MARK}{}", base.trim_end_matches('/'), self.token())
    }

    /// Parses a link of either form; a page link gives an empty `addr`.
    pub fn parse(text: &str) -> Result<Invite, InviteError> {
        let text = text.trim();
        let (addr, token) = if let Some(rest) = text.strip_prefix("eaxchat://") {
            let (addr, token) = rest.split_once(JOIN_PATH).ok_or(InviteError::NotALink)?;
            if addr.is_empty() || addr.contains('/') {
                return Err(InviteError::NotALink);
            }
            (addr, token)
        } else if let Some((_, token)) = text.split_once(WEB_MARK) {
            ("", token)
        } else {
            return Err(InviteError::NotALink);
        };
        let mut raw = Zeroizing::new([0; TOKEN_LEN + 3]);
        let len = URL_SAFE_NO_PAD
            .decode_slice(token.trim_end_matches('/'), raw.as_mut_slice())
            .map_err(|_| InviteError::BadToken)?;
        if len != TOKEN_LEN {
            return Err(InviteError::BadToken);
        }
        let take = |from: usize, to: usize| raw.get(from..to).unwrap_or_default();
        let relay = PublicKey::from_slice(take(0, 32)).map_err(|_| InviteError::BadToken)?;
        let id = InviteId(
            take(32, 32 + ID_LEN)
                .try_into()
                .map_err(|_| InviteError::BadToken)?,
        );
        let secret = InviteSecret::from_bytes(
            take(32 + ID_LEN, TOKEN_LEN)
                .try_into()
                .map_err(|_| InviteError::BadToken)?,
        );
        Ok(Invite {
            addr: addr.to_owned(),
            relay,
            id,
            secret,
        })
    }

    /// Starts the join from the device key `local`: the handshake waiting
    /// for the relay's reply ([`Initiator::finish`] reads it, as for any
    /// hello) and line 1 to send, `\n` included.
    pub fn join(&self, local: &StaticSecret) -> Result<(Initiator, Vec<u8>), SessionError> {
        Initiator::start_join(local, &self.relay, &self.id.0, self.secret.expose_secret())
    }
}

/// Splits an invite join line (without its `\n`) into the invite's id and
/// the Noise message; any other line is refused.
pub fn split_join(line: &[u8]) -> Result<(InviteId, Vec<u8>), SessionError> {
    let line = decode_line(line)?;
    if line.kind() != Kind::InviteJoin {
        return Err(SessionError::UnexpectedKind {
            expected: Kind::InviteJoin,
            got: line.kind(),
        });
    }
    let body = line.body();
    let (id, message) = body
        .split_at_checked(ID_LEN)
        .ok_or(SessionError::HelloTooShort { len: body.len() })?;
    let id = InviteId(
        id.try_into()
            .map_err(|_| SessionError::HelloTooShort { len: body.len() })?,
    );
    Ok((id, message.to_vec()))
}

/// The relay's side: reads the Noise message of a join (from
/// [`split_join`]) with its secret and the invite's. What comes back is a
/// [`Responder`] as for a hello: the joiner's new key, then accept or
/// refuse. A wrong secret gives [`SessionError::HelloDidNotDecrypt`].
pub fn read_join(
    relay: &StaticSecret,
    secret: &InviteSecret,
    message: &[u8],
) -> Result<Responder, SessionError> {
    Responder::read_join(relay, secret.expose_secret(), message)
}

/// The hello payload (at most [`crate::session::MAX_PAYLOAD`] bytes of
/// JSON) with which a member asks its relay for a device invite of its own
/// (`chat invite-device`): `{"invite_device":"ID:SECRET"}`, the id in hex
/// and the secret in base64url. The member makes both; the relay holds the
/// invite for the member's own name only.
pub fn device_invite_payload(id: &InviteId, secret: &InviteSecret) -> Vec<u8> {
    let secret = URL_SAFE_NO_PAD.encode(secret.expose_secret());
    format!("{{\"invite_device\":\"{id}:{secret}\"}}").into_bytes()
}

/// The device invite a hello's payload asks for, if it does
/// ([`device_invite_payload`]); anything else in a payload is not one.
pub fn device_invite_request(payload: &[u8]) -> Option<(InviteId, InviteSecret)> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let (id, secret) = value.get("invite_device")?.as_str()?.split_once(':')?;
    let mut raw = Zeroizing::new([0u8; SECRET_LEN + 2]);
    let len = URL_SAFE_NO_PAD
        .decode_slice(secret, raw.as_mut_slice())
        .ok()?;
    let secret: [u8; SECRET_LEN] = raw.get(..len)?.try_into().ok()?;
    Some((InviteId::parse(id).ok()?, InviteSecret::from_bytes(secret)))
}

/// The hello payload (at most [`crate::session::MAX_PAYLOAD`] bytes of
/// JSON) with which a member asks its relay for an invite that adds a
/// new member called `name` (`chat invite NAME`, on a relay run with
/// `--members-invite`): `{"invite_member":"ID:SECRET","name":"NAME"}`,
/// the id in hex and the secret in base64url. The member makes both; the
/// relay holds the invite with the member recorded as its inviter, or
/// refuses the hello saying why.
pub fn member_invite_payload(name: &Name, id: &InviteId, secret: &InviteSecret) -> Vec<u8> {
    let secret = URL_SAFE_NO_PAD.encode(secret.expose_secret());
    format!("{{\"invite_member\":\"{id}:{secret}\",\"name\":\"{name}\"}}").into_bytes()
}

/// The member invite a hello's payload asks for
/// ([`member_invite_payload`]): `None` when it asks for none (no
/// `invite_member` field), `Some(Err(_))` when it asks for one that is
/// malformed (the relay refuses it rather than welcome a member whose
/// link would not work).
pub fn member_invite_request(
    payload: &[u8],
) -> Option<Result<(Name, InviteId, InviteSecret), InviteError>> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let asked = value.get("invite_member")?;
    Some(read_member_request(asked, value.get("name")))
}

fn read_member_request(
    asked: &serde_json::Value,
    name: Option<&serde_json::Value>,
) -> Result<(Name, InviteId, InviteSecret), InviteError> {
    let name = name
        .and_then(serde_json::Value::as_str)
        .and_then(|name| Name::new(name).ok())
        .ok_or(InviteError::BadName)?;
    let (id, secret) = asked
        .as_str()
        .and_then(|asked| asked.split_once(':'))
        .ok_or(InviteError::BadToken)?;
    let mut raw = Zeroizing::new([0u8; SECRET_LEN + 2]);
    let len = URL_SAFE_NO_PAD
        .decode_slice(secret, raw.as_mut_slice())
        .map_err(|_| InviteError::BadToken)?;
    let secret: [u8; SECRET_LEN] = raw
        .get(..len)
        .and_then(|raw| raw.try_into().ok())
        .ok_or(InviteError::BadToken)?;
    let id = InviteId::parse(id)?;
    Ok((name, id, InviteSecret::from_bytes(secret)))
}

/// Why an invite's text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteError {
    /// Not an `eaxchat://HOST:PORT/join/…` or `…#invite=…` link.
    NotALink,
    /// The link's token is not the 72 bytes of an invite in base64url.
    BadToken,
    /// An invite id is not 16 hex digits.
    BadId,
    /// A member invite's name is not a member name (1 to 32 of
    /// `A-Z a-z 0-9 _ - .`).
    BadName,
    /// A short code is not `N-word-word-word` (N from 1 to 999, words
    /// from the list).
    BadCode,
    /// The operating system gave no randomness.
    NoRandomness,
}

impl fmt::Display for InviteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InviteError::NotALink => {
                "not an invite link: expected eaxchat://HOST:PORT/join/TOKEN or a page link \
                 ending in #invite=TOKEN"
            }
            InviteError::BadToken => {
                "the invite link is damaged: its token is not 96 characters of base64url \
                 (copy the whole link)"
            }
            InviteError::BadId => "an invite id is 16 hex digits",
            InviteError::BadName => {
                "an invite's name must be 1 to 32 of A-Z a-z 0-9 _ - . (not 32 hex digits)"
            }
            InviteError::BadCode => {
                "not an invite code: expected N-word-word-word, like 7-acorn-maple-otter \
                 (check the spelling of each word)"
            }
            InviteError::NoRandomness => "the operating system gave no randomness",
        })
    }
}

impl std::error::Error for InviteError {}

#[cfg(test)]
mod tests;
