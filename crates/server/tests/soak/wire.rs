//! The plaintext the soak test's well-behaved clients exchange.
//!
//! Every message names its sender (client index and connection number) and
//! carries a sequence number counted per connection over *every* message it
//! sends, whatever the kind, so a receiver can check each sender's stream for
//! gaps, duplicates and reordering. The padding is a pattern derived from the
//! header, so a receiver also checks the body arrived intact and whole.
//!
//! Anything that does not decode as one of these messages is, by
//! construction, not from a well-behaved client.

/// Magic bytes at the front of every well-behaved message.
const MAGIC: &[u8; 2] = b"SK";
/// magic(2) kind(1) client(2) conn(4) seq(4) target(4) pad_len(2).
const HEADER_LEN: usize = 19;

/// What a message is for; see `member.rs` for the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// First message on a connection.
    Hello = 1,
    /// Steady traffic.
    Data = 2,
    /// "I have seen `target` and will receive what it sends from now on."
    Know = 3,
    /// "I am leaving; I send nothing after this."
    Goodbye = 4,
    /// "I saw `target`'s goodbye; everything I sent before it is ahead of this."
    Ack = 5,
    /// Last message of the final phase.
    Fence = 6,
}

impl Kind {
    fn from_u8(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Hello,
            2 => Kind::Data,
            3 => Kind::Know,
            4 => Kind::Goodbye,
            5 => Kind::Ack,
            6 => Kind::Fence,
            _ => return None,
        })
    }
}

/// One well-behaved message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msg {
    /// What the message is for.
    pub kind: Kind,
    /// The sending client's index (stable across its connections).
    pub client: u16,
    /// The sending connection's number (unique in the run).
    pub conn: u32,
    /// Position in the sending connection's stream, from 0.
    pub seq: u32,
    /// The connection a `Know` or `Ack` is about; 0 otherwise.
    pub target: u32,
    /// Bytes of padding after the header.
    pub pad_len: u16,
}

impl Msg {
    /// The plaintext: header then the padding pattern.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + usize::from(self.pad_len));
        out.extend_from_slice(MAGIC);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.client.to_le_bytes());
        out.extend_from_slice(&self.conn.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.target.to_le_bytes());
        out.extend_from_slice(&self.pad_len.to_le_bytes());
        out.extend((0..usize::from(self.pad_len)).map(|i| self.pad_byte(i)));
        out
    }

    /// Parses a plaintext; `Err` says why it is not a well-behaved message.
    pub fn decode(plaintext: &[u8]) -> Result<Msg, String> {
        let Some((header, pad)) = plaintext.split_at_checked(HEADER_LEN) else {
            return Err(format!("{} bytes, shorter than a header", plaintext.len()));
        };
        if &header[..2] != MAGIC {
            return Err(format!("no magic: {:?}", String::from_utf8_lossy(header)));
        }
        let u16_at = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]);
        let u32_at = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let kind = Kind::from_u8(header[2]).ok_or_else(|| format!("kind {}", header[2]))?;
        let msg = Msg {
            kind,
            client: u16_at(3),
            conn: u32_at(5),
            seq: u32_at(9),
            target: u32_at(13),
            pad_len: u16_at(17),
        };
        if pad.len() != usize::from(msg.pad_len) {
            return Err(format!("{msg:?} carries {} bytes of padding", pad.len()));
        }
        if pad.iter().enumerate().any(|(i, &b)| b != msg.pad_byte(i)) {
            return Err(format!("{msg:?} has corrupt padding"));
        }
        Ok(msg)
    }

    fn pad_byte(&self, i: usize) -> u8 {
        (self.conn as usize ^ (self.seq as usize).wrapping_mul(31) ^ i) as u8
    }
}

/// Padding for the `seq`th data message of connection `conn`: mostly short
/// chat lines with some of a few KiB, or (`bulk`) all 2–4 KiB, so frame
/// sizes vary.
pub fn data_pad_len(conn: u32, seq: u32, bulk: bool) -> u16 {
    let h = (conn.wrapping_mul(0x9e37_79b9) ^ seq.wrapping_mul(0x85eb_ca6b)).rotate_left(13);
    if bulk {
        2048 + (h >> 8) as u16 % 2048
    } else if h % 100 < 8 {
        1024 + (h >> 8) as u16 % 3072
    } else {
        (h >> 8) as u16 % 240
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_plaintext() {
        let msg = Msg {
            kind: Kind::Ack,
            client: 7,
            conn: 123_456,
            seq: 42,
            target: 99,
            pad_len: data_pad_len(123_456, 42, true),
        };
        let bytes = msg.encode();
        assert_eq!(Msg::decode(&bytes), Ok(msg));
        assert!(Msg::decode(b"HOSTILE hello").is_err());
        assert!(Msg::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(Msg::decode(&flipped).is_err());
    }
}
