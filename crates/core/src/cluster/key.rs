//! The cluster key, kept ready: it seals and opens envelopes, and names
//! subjects with a keyed hash ([`super::Subjects`]).
//!
//! A payload on NATS is `nonce ‖ tag ‖ ciphertext`, sealed with AES-EAX
//! under the cluster key and a fresh nonce each, with associated data that
//! says what it is: a live envelope (`eaxchat-cluster-live`), or a history
//! record stored in JetStream at stream sequence `N`
//! (`eaxchat-cluster-history ‖ N`, big-endian). So a live envelope never
//! opens as a history record, and a record opens only read from the stream
//! at the sequence it was sealed for: published again later, it lands at
//! another sequence and is refused. Subject tokens come from a key of their
//! own, derived from the cluster key, so a token says nothing of the key
//! that seals. [`ClusterKey::open`] refuses a payload with one
//! [`PayloadError`]: too short, not opening, or not an envelope.
//!
//! This module never shows key material (its `Debug` is redacted), never
//! says why a tag failed beyond "it does not open", and knows nothing of
//! what an envelope means or where it goes: that is [`super::Cluster`]'s
//! and the relay's.

use std::fmt;

use bytes::Bytes;

use super::envelope::{Envelope, EnvelopeError};
use eaxchat_proto::eax_key::EaxKey;
use eaxchat_proto::key::Key;
use eaxchat_proto::nonce::Nonces;
use eaxchat_proto::wire::{NONCE_LEN, TAG_LEN};

/// Why a payload from NATS was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadError {
    /// Shorter than a nonce and a tag.
    TooShort,
    /// It does not open under the cluster key.
    BadTag,
    /// It opened but is not an envelope.
    Malformed(EnvelopeError),
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::TooShort => f.write_str("too short for an envelope"),
            PayloadError::BadTag => f.write_str("does not open under the cluster key"),
            PayloadError::Malformed(error) => write!(f, "{error}"),
        }
    }
}

/// What a live envelope is sealed with.
const LIVE: &[u8] = b"eaxchat-cluster-live";

/// What a history record is sealed with, before its stream sequence.
const HISTORY: &[u8] = b"eaxchat-cluster-history";

fn record_data(stream_seq: u64) -> [u8; 31] {
    let mut data = [0u8; 31];
    data[..HISTORY.len()].copy_from_slice(HISTORY);
    data[HISTORY.len()..].copy_from_slice(&stream_seq.to_be_bytes());
    data
}

/// The cluster key, kept ready: seals and opens envelopes, and names
/// subjects.
pub struct ClusterKey {
    key: Key,
    eax: EaxKey,
    /// A key of its own for subject names, derived from the cluster key.
    subjects: EaxKey,
    nonces: Nonces,
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    /// Readies `key`, with nonces from the operating system.
    pub fn new(key: &Key) -> std::io::Result<ClusterKey> {
        Ok(ClusterKey::with_nonces(key, Nonces::from_os()?))
    }

    /// Readies `key` with the nonce generator `nonces` (fixed in tests).
    pub fn with_nonces(key: &Key, nonces: Nonces) -> ClusterKey {
        let eax = eaxchat_proto::cipher::eax_key(key);
        let derived = eax.cmac(b"eaxchat subjects");
        ClusterKey {
            key: key.clone(),
            eax,
            subjects: EaxKey::aes128(&derived),
            nonces,
        }
    }

    /// The same key with nonces of its own from the operating system: the
    /// NATS thread seals history records with it.
    pub fn duplicate(&self) -> std::io::Result<ClusterKey> {
        ClusterKey::new(&self.key)
    }

    /// Seals the plaintext `plain` as a live envelope, `nonce ‖ tag ‖
    /// ciphertext`.
    pub fn seal(&mut self, plain: &[u8]) -> Bytes {
        self.seal_with(plain, LIVE)
    }

    /// Seals the plaintext `plain` as the history record stored at
    /// `stream_seq` in the JetStream stream.
    pub fn seal_record(&mut self, plain: &[u8], stream_seq: u64) -> Bytes {
        self.seal_with(plain, &record_data(stream_seq))
    }

    fn seal_with(&mut self, plain: &[u8], data: &[u8]) -> Bytes {
        let nonce = self.nonces.next_nonce();
        let mut out = Vec::with_capacity(NONCE_LEN + TAG_LEN + plain.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&[0; TAG_LEN]);
        out.extend_from_slice(plain);
        let tag = self
            .eax
            .seal_with_header(&nonce, data, &mut out[NONCE_LEN + TAG_LEN..]);
        out[NONCE_LEN..NONCE_LEN + TAG_LEN].copy_from_slice(&tag);
        Bytes::from(out)
    }

    /// Opens a live envelope and reads it.
    pub fn open(&self, payload: &[u8]) -> Result<Envelope, PayloadError> {
        self.open_with(payload, LIVE)
    }

    /// Opens the history record read from the stream at `stream_seq`.
    pub fn open_record(&self, payload: &[u8], stream_seq: u64) -> Result<Envelope, PayloadError> {
        self.open_with(payload, &record_data(stream_seq))
    }

    fn open_with(&self, payload: &[u8], data: &[u8]) -> Result<Envelope, PayloadError> {
        if payload.len() < NONCE_LEN + TAG_LEN {
            return Err(PayloadError::TooShort);
        }
        let (nonce, rest) = payload.split_at(NONCE_LEN);
        let (tag, ciphertext) = rest.split_at(TAG_LEN);
        let mut plain = ciphertext.to_vec();
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| PayloadError::TooShort)?;
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| PayloadError::TooShort)?;
        self.eax
            .open_with_header(nonce, data, &mut plain, tag)
            .map_err(|_| PayloadError::BadTag)?;
        Envelope::decode(&plain).map_err(PayloadError::Malformed)
    }

    /// The subject token for `what` (a room's or a name's text, after a
    /// kind byte): 24 hex digits of a keyed hash, the same on every relay
    /// with this key and unguessable without it.
    pub(super) fn token(&self, kind: u8, what: &str) -> String {
        let mut input = Vec::with_capacity(what.len() + 1);
        input.push(kind);
        input.extend_from_slice(what.as_bytes());
        let mac = self.subjects.cmac(&input);
        mac[..12].iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cluster::envelope::{Body, Standing};

    /// A key made from one byte, with seeded nonces: the cluster's unit tests
    /// share it.
    pub(crate) fn key(byte: u8) -> ClusterKey {
        let key = Key::from_bytes(&[byte; 16]).expect("a 16-byte key");
        ClusterKey::with_nonces(&key, Nonces::from_seed([byte; 32]))
    }

    #[test]
    fn envelopes_open_only_under_their_key() {
        let (mut a, b) = (key(1), key(2));
        let envelope = Envelope {
            origin: 1,
            seq: 1,
            ts_millis: 5,
            standing: Standing::SHARED,
            body: Body::Bye,
        };
        let mut plain = Vec::new();
        envelope.encode(&mut plain);
        let sealed = a.seal(&plain);
        assert_eq!(a.open(&sealed), Ok(envelope));
        assert_eq!(b.open(&sealed), Err(PayloadError::BadTag));
        assert_eq!(a.open(&sealed[..31]), Err(PayloadError::TooShort));
        let mut flipped = sealed.to_vec();
        *flipped.last_mut().expect("not empty") ^= 1;
        assert_eq!(a.open(&flipped), Err(PayloadError::BadTag));
        let garbage = a.seal(b"not an envelope");
        assert!(matches!(a.open(&garbage), Err(PayloadError::Malformed(_))));
    }

    #[test]
    fn a_record_opens_only_at_its_stream_sequence() {
        let mut a = key(1);
        let envelope = Envelope {
            origin: 1,
            seq: 1,
            ts_millis: 5,
            standing: Standing::SHARED,
            body: Body::Bye,
        };
        let mut plain = Vec::new();
        envelope.encode(&mut plain);
        let record = a.seal_record(&plain, 42);
        assert_eq!(a.open_record(&record, 42), Ok(envelope));
        assert_eq!(a.open_record(&record, 43), Err(PayloadError::BadTag));
        assert_eq!(a.open(&record), Err(PayloadError::BadTag));
        let live = a.seal(&plain);
        assert_eq!(a.open_record(&live, 42), Err(PayloadError::BadTag));
    }
}
