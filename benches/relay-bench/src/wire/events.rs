//! Subscribers that speak `eaxchat/1` (`relay-bench --events`): each says
//! `/hello eaxchat/1` (and with `--extra-rooms K` joins K more rooms)
//! before the run, and the relay then delivers every message to it as a
//! `msg` event, `{"kind":"msg","room":…,"text":…,"ts":…,…}`, sealed.
//!
//! The event's JSON carries the publisher's text as a string, so the
//! header must survive it: with events the publisher writes the header in
//! hex (ASCII, never escaped) instead of 7 bits to a byte. An event's
//! length changes with its room's message id and its timestamp, so these
//! deliveries are lines, not fixed-length records: a subscriber splits
//! them on `\n` (`crate::inbox::Records`), and [`Wire::record_len`] is the
//! longest one can be.

use memchr::{memchr, memmem};

use super::{
    FILL, Forged, Header, Kind, PLAIN_HEADER_LEN, SizeError, Wire, parse_plain_line, wire,
};

/// The most bytes a `msg` event adds around its text: kind, a room name
/// of up to 32 characters, a null sender, a 20-digit timestamp and id.
const EVENT_OVERHEAD: usize = 192;

/// What one line a subscriber that said `/hello eaxchat/1` received is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventLine {
    /// A `msg` event carrying one of the publisher's messages.
    Message(Header),
    /// The answer to its `/hello` (`welcome`) or to one of its `/join`s
    /// (`myrooms`): what a subscriber waits for before the run.
    Setup,
    /// Any other event (a notice, a message from the room's history sent
    /// on arrival), or a message in the plain form it got before the relay
    /// read its `/hello`.
    Other,
}

impl Wire {
    /// Subscribers speak `eaxchat/1`: the publisher's header goes in hex,
    /// and a delivery is a line of up to [`Wire::record_len`] bytes. For a
    /// shared-key eaxchat relay over TCP only.
    pub fn with_events(mut self) -> Result<Wire, SizeError> {
        let Kind::Sealed { plaintext, .. } = &self.kind else {
            return Err(SizeError(
                "--events needs an eaxchat relay with a shared key".into(),
            ));
        };
        if self.members.is_some() || self.websocket.is_some() {
            return Err(SizeError(
                "--events needs an eaxchat relay with a shared key, over TCP".into(),
            ));
        }
        if plaintext.len() < PLAIN_HEADER_LEN {
            return Err(SizeError(format!(
                "--events needs --size of at least {PLAIN_HEADER_LEN} (the header in hex)"
            )));
        }
        self.record_len = wire::encoded_len(plaintext.len() + EVENT_OVERHEAD) + 1;
        self.events = true;
        Ok(self)
    }

    /// Whether subscribers speak `eaxchat/1`.
    pub fn events(&self) -> bool {
        self.events
    }

    /// `text` sealed under the shared key, with its `\n`: a command a
    /// client sends. Empty for any other relay.
    pub fn seal_command(&mut self, text: &[u8]) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        if let Kind::Sealed { cipher, .. } = &mut self.kind {
            cipher.seal_into(text, &mut out);
        }
        out.to_vec()
    }

    /// Opens one line a subscriber that said `/hello eaxchat/1` received
    /// (with its `\n`): one of the publisher's messages, another event, or
    /// forged (it does not open, or is a `msg` event whose text is not a
    /// message of the run).
    pub fn decode_event(&mut self, line: &[u8]) -> Result<EventLine, Forged> {
        let Kind::Sealed { cipher, .. } = &mut self.kind else {
            return Err(Forged);
        };
        let line = line.strip_suffix(b"\n").ok_or(Forged)?;
        let plaintext = cipher.open(line).map_err(|_| Forged)?;
        let Some(event) = plaintext.strip_prefix(br#"{"kind":"msg","#) else {
            let setup = plaintext.starts_with(br#"{"kind":"welcome","#)
                || plaintext.starts_with(br#"{"kind":"myrooms","#);
            return Ok(if setup {
                EventLine::Setup
            } else {
                EventLine::Other
            });
        };
        if memmem::find(event, br#""history":true"#).is_some() {
            // Said before it came (an earlier run's): not this run's.
            return Ok(EventLine::Other);
        }
        const TEXT: &[u8] = br#""text":""#;
        let at = memmem::find(event, TEXT).ok_or(Forged)? + TEXT.len();
        let text = &event[at..];
        let end = memchr(b'"', text).ok_or(Forged)?;
        parse_plain_line(&text[..end]).map(EventLine::Message)
    }
}

/// Writes `header` in hex (seq, sender, stamp) over the start of a
/// plaintext whose rest is filler.
pub(super) fn put_text_header(header: Header, plaintext: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let fields = [
        (header.seq, 16),
        (u64::from(header.sender), 8),
        (header.stamp_ns, 16),
    ];
    let mut at = 0;
    for (value, digits) in fields {
        for i in (0..digits).rev() {
            plaintext[at] = HEX[((value >> (i * 4)) & 0xf) as usize];
            at += 1;
        }
    }
    debug_assert_eq!(at, PLAIN_HEADER_LEN);
    debug_assert!(plaintext[at..].iter().all(|&b| b == FILL));
}

#[cfg(test)]
mod tests {
    use eaxchat_proto::cipher::Cipher;
    use eaxchat_proto::key::Key;

    use super::*;
    use crate::wire::Protocol;

    /// A message's event, as the relay writes it, decodes to its header;
    /// the welcome is another event; a changed line is forged.
    #[test]
    fn a_msg_event_carries_the_header() {
        let key = Key::from_bytes(&[7; 16]).unwrap();
        let mut wire = Wire::new(&Protocol::Eaxchat(key.clone()), 64)
            .unwrap()
            .with_events()
            .unwrap();
        let header = Header {
            sender: 0,
            seq: 41,
            stamp_ns: 123_456_789,
        };
        let mut frame = bytes::BytesMut::new();
        wire.encode(header, &mut frame);
        let mut relay = Cipher::new(&key).unwrap();
        let text = relay.open(&frame[..frame.len() - 1]).unwrap().to_vec();
        let mut json = Vec::new();
        eaxchat_proto::events::Event::Message {
            room: &eaxchat_proto::commands::RoomName::new(b"lobby").unwrap(),
            from: None,
            text: &text,
            ts: 1_750_000_000_000,
            history: false,
            action: false,
            stamped: false,
            id: 12_345,
        }
        .json(&mut json);
        let mut line = bytes::BytesMut::new();
        relay.seal_into(&json, &mut line);
        assert!(line.len() <= wire.record_len());
        assert_eq!(wire.decode_event(&line), Ok(EventLine::Message(header)));
        let welcome = wire.seal_command(br#"{"kind":"welcome","protocol":"eaxchat/1"}"#);
        assert_eq!(wire.decode_event(&welcome), Ok(EventLine::Setup));
        let notice = wire.seal_command(br#"{"kind":"notice","room":"lobby","text":"x"}"#);
        assert_eq!(wire.decode_event(&notice), Ok(EventLine::Other));
        line[10] ^= 1;
        assert_eq!(wire.decode_event(&line), Err(Forged));
    }
}
