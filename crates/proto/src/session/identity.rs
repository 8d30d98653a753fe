//! Static X25519 keys: a [`StaticSecret`] (a member's or the relay's
//! identity, wiped from memory when dropped), its [`PublicKey`], and the
//! [`Fingerprint`] people compare.
//!
//! Text forms, shared with the page and the Python client:
//! - a public key is `x25519:` and the padded standard base64 of its 32
//!   bytes;
//! - a fingerprint is `SHA256:` and the unpadded standard base64 of the
//!   SHA-256 of the public key, as ssh prints one.
//!
//! This module never writes a secret anywhere: no `Display`, and a `Debug`
//! that shows only the public half. Key files are the caller's business.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest as _, Sha256};
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver as _, DefaultResolver};
use zeroize::Zeroizing;

use super::error::SessionError;

/// Length of an X25519 key, public or secret.
pub(crate) const KEY_LEN: usize = 32;

const PUBLIC_PREFIX: &str = "x25519:";
const FINGERPRINT_PREFIX: &str = "SHA256:";
/// Characters of unpadded base64 in a fingerprint (32 bytes).
const FINGERPRINT_CHARS: usize = 43;

/// A static X25519 public key: who a member or a relay is.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// The key with these 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> PublicKey {
        PublicKey(bytes)
    }

    /// The key from a slice that must be 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<PublicKey, SessionError> {
        bytes
            .try_into()
            .map(PublicKey)
            .map_err(|_| SessionError::BadPublicKey)
    }

    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key's fingerprint, `SHA256:…`.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.0)
    }
}

impl fmt::Display for PublicKey {
    /// `x25519:` and the padded standard base64 of the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = SessionError;

    /// Parses the `x25519:` text form, strictly: canonical base64 of exactly
    /// 32 bytes, nothing around it.
    fn from_str(text: &str) -> Result<PublicKey, SessionError> {
        let encoded = text
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or(SessionError::BadPublicKey)?;
        let mut bytes = [0; KEY_LEN + 2];
        match STANDARD.decode_slice(encoded, &mut bytes) {
            Ok(KEY_LEN) => PublicKey::from_slice(&bytes[..KEY_LEN]),
            _ => Err(SessionError::BadPublicKey),
        }
    }
}

/// The SHA-256 of a public key, shown as `SHA256:` and unpadded base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of the public key `public`.
    pub fn of(public: &[u8; KEY_LEN]) -> Fingerprint {
        Fingerprint(Sha256::digest(public).into())
    }

    /// The fingerprint that follows `mark` in `text`, if one does: how a
    /// client reads the relay's own fingerprint out of a refusal, where it
    /// follows [`super::RELAY_KEY_MARK`].
    pub fn find_after(text: &str, mark: &str) -> Option<Fingerprint> {
        text.match_indices(mark).find_map(|(at, _)| {
            let start = at + mark.len();
            let candidate =
                text.get(start..start + FINGERPRINT_PREFIX.len() + FINGERPRINT_CHARS)?;
            candidate.parse().ok()
        })
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{FINGERPRINT_PREFIX}{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = SessionError;

    /// Parses `SHA256:` and exactly 43 characters of unpadded base64.
    fn from_str(text: &str) -> Result<Fingerprint, SessionError> {
        let encoded = text
            .strip_prefix(FINGERPRINT_PREFIX)
            .filter(|rest| rest.len() == FINGERPRINT_CHARS)
            .ok_or(SessionError::BadFingerprint)?;
        let mut digest = [0; 33];
        match STANDARD_NO_PAD.decode_slice(encoded, &mut digest) {
            Ok(32) => {
                let mut out = [0; 32];
                out.copy_from_slice(&digest[..32]);
                Ok(Fingerprint(out))
            }
            _ => Err(SessionError::BadFingerprint),
        }
    }
}

/// A static X25519 secret key and its public key: a member's identity on
/// one device, or the relay's. The secret is wiped from memory on drop.
pub struct StaticSecret {
    // On the heap, so moving a `StaticSecret` leaves no copy of the secret
    // behind on the stack; wiped where it lies when dropped.
    secret: Box<Zeroizing<[u8; KEY_LEN]>>,
    public: PublicKey,
}

impl StaticSecret {
    /// A new secret from the operating system's random number generator.
    pub fn generate() -> Result<StaticSecret, SessionError> {
        let mut secret = Box::new(Zeroizing::new([0; KEY_LEN]));
        getrandom::fill(&mut secret[..]).map_err(|_| SessionError::Randomness)?;
        StaticSecret::from_secret(secret)
    }

    /// The secret with these 32 bytes (as a key file holds them). Any 32
    /// bytes are a valid X25519 secret; the caller should wipe its copy.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Result<StaticSecret, SessionError> {
        let mut secret = Box::new(Zeroizing::new([0; KEY_LEN]));
        secret.copy_from_slice(bytes);
        StaticSecret::from_secret(secret)
    }

    fn from_secret(secret: Box<Zeroizing<[u8; KEY_LEN]>>) -> Result<StaticSecret, SessionError> {
        // snow's own X25519, so the public key is the one its handshakes
        // prove possession of.
        let mut dh = DefaultResolver
            .resolve_dh(&DHChoice::Curve25519)
            .ok_or_else(|| SessionError::Noise("no X25519 in snow's resolver".into()))?;
        dh.set(&secret[..]);
        let public = PublicKey::from_slice(dh.pubkey())
            .map_err(|_| SessionError::Noise("X25519 public key is not 32 bytes".into()))?;
        Ok(StaticSecret { secret, public })
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The secret's 32 bytes, to write into a key file (mode 0600) or hand
    /// to the Noise library. Never log them.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.secret
    }
}

impl fmt::Debug for StaticSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticSecret {{ public: {} }}", self.public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> [u8; 32] {
        let mut out = [0; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn the_public_key_is_rfc_7748s() {
        // RFC 7748, section 6.1: Alice's key pair.
        let secret = StaticSecret::from_bytes(&hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ))
        .unwrap();
        assert_eq!(
            secret.public_key().as_bytes(),
            &hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
    }

    #[test]
    fn generated_secrets_differ_and_debug_shows_only_the_public_key() {
        let a = StaticSecret::generate().unwrap();
        let b = StaticSecret::generate().unwrap();
        assert_ne!(a.public_key(), b.public_key());
        let debug = format!("{a:?}");
        assert!(debug.contains(&a.public_key().to_string()), "{debug}");
        assert!(
            !debug.contains(&STANDARD.encode(a.expose_secret())),
            "{debug}"
        );
    }

    #[test]
    fn the_fingerprint_is_ssh_style() {
        // head -c 32 /dev/zero | openssl dgst -sha256 -binary | base64
        let zero = PublicKey::from_bytes([0; 32]);
        assert_eq!(
            zero.fingerprint().to_string(),
            "SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU"
        );
        let fingerprint = zero.fingerprint();
        assert_eq!(fingerprint.to_string().parse(), Ok(fingerprint));
    }

    #[test]
    fn a_public_key_round_trips_through_text_and_bad_texts_are_refused() {
        let key = *StaticSecret::generate().unwrap().public_key();
        let text = key.to_string();
        assert!(text.starts_with("x25519:") && text.ends_with('='), "{text}");
        assert_eq!(text.parse(), Ok(key));
        let bad = [
            "",
            "x25519:",
            "x25519:AAAA",
            "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "x25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "x25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=",
            "x25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            " x25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ];
        for text in bad {
            assert_eq!(
                text.parse::<PublicKey>(),
                Err(SessionError::BadPublicKey),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_fingerprint_is_found_after_its_mark_only() {
        let relay = PublicKey::from_bytes([7; 32]).fingerprint();
        let client = PublicKey::from_bytes([8; 32]).fingerprint();
        let mark = "relay's key is ";
        let text = format!("unknown key {client}; this relay's key is {relay}.");
        assert_eq!(Fingerprint::find_after(&text, mark), Some(relay));
        assert_eq!(
            Fingerprint::find_after(&format!("unknown key {client}"), mark),
            None
        );
        for text in ["relay's key is SHA256:short", "relay's key is SHA256:é", ""] {
            assert_eq!(Fingerprint::find_after(text, mark), None, "{text:?}");
        }
    }
}
