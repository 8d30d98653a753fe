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
//!
//! The header is hex and the padding letters: a members or session relay
//! refuses a member's text holding `\r` or `\n`, so no byte is either.

/// Magic bytes at the front of every well-behaved message.
const MAGIC: &[u8; 2] = b"SK";
/// magic(2), then in hex digits: kind(1) client(4) conn(8) seq(8)
/// target(8) pad_len(4).
const HEADER_LEN: usize = 35;

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
        put_hex(&mut out, u64::from(self.kind as u8), 1);
        put_hex(&mut out, u64::from(self.client), 4);
        put_hex(&mut out, u64::from(self.conn), 8);
        put_hex(&mut out, u64::from(self.seq), 8);
        put_hex(&mut out, u64::from(self.target), 8);
        put_hex(&mut out, u64::from(self.pad_len), 4);
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
        let mut at = 2;
        let mut field = |digits: usize| -> Result<u64, String> {
            let text = &header[at..at + digits];
            at += digits;
            std::str::from_utf8(text)
                .ok()
                .and_then(|text| u64::from_str_radix(text, 16).ok())
                .ok_or_else(|| format!("not hex: {:?}", String::from_utf8_lossy(text)))
        };
        let kind_byte = field(1)? as u8;
        let kind = Kind::from_u8(kind_byte).ok_or_else(|| format!("kind {kind_byte}"))?;
        let msg = Msg {
            kind,
            client: field(4)? as u16,
            conn: field(8)? as u32,
            seq: field(8)? as u32,
            target: field(8)? as u32,
            pad_len: field(4)? as u16,
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
        b'a' + ((self.conn as usize ^ (self.seq as usize).wrapping_mul(31) ^ i) % 26) as u8
    }
}

/// Appends `value` as `digits` lowercase hex digits.
fn put_hex(out: &mut Vec<u8>, value: u64, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend(
        (0..digits)
            .rev()
            .map(|i| HEX[((value >> (i * 4)) & 0xf) as usize]),
    );
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
        assert!(!bytes.contains(&b'\n') && !bytes.contains(&b'\r'));
        assert!(Msg::decode(b"HOSTILE hello").is_err());
        assert!(Msg::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(Msg::decode(&flipped).is_err());
    }
}
