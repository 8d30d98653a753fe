//! A members relay's subscriber: what the relay sealed under its own
//! member's key, stamped with the publisher's name.

use bytes::BytesMut;
use eaxchat_proto::cipher::Cipher;

use super::{Forged, Header, parse_plaintext};

/// How a subscriber of a members relay opens what the relay sealed for it:
/// under its own member's key, and only when the relay stamped it with the
/// publisher's name.
pub struct MemberReader {
    pub(super) cipher: Cipher,
    /// `NAME: ` of the publisher.
    pub(super) stamp: Vec<u8>,
    pub(super) record_len: usize,
}

impl MemberReader {
    /// The empty frame that identifies this subscriber, and its `\n`.
    pub fn greeting(&mut self) -> Vec<u8> {
        let mut out = BytesMut::new();
        self.cipher.seal_into(&[], &mut out);
        out.to_vec()
    }

    /// Decodes one whole record, as [`Wire::decode`] does; a delivery
    /// stamped with any other name than the publisher's is forged.
    pub fn decode(&mut self, record: &[u8]) -> Result<Header, Forged> {
        if record.len() != self.record_len {
            return Err(Forged);
        }
        let (line, terminator) = record.split_at(self.record_len - 1);
        if terminator != b"\n" {
            return Err(Forged);
        }
        let plaintext = self.cipher.open(line).map_err(|_| Forged)?;
        let text = plaintext.strip_prefix(&self.stamp[..]).ok_or(Forged)?;
        parse_plaintext(text)
    }
}
