//! The plain line every baseline broker carries (`ncat --broker`, Redis,
//! NATS) and an `eaxchat/1` event's text: the header in hex, then filler,
//! all ASCII.

use bytes::{BufMut as _, BytesMut};

use super::{FILL, Forged, Header, PLAIN_HEADER_LEN};

/// Appends the header in hex and filler up to `line_len` characters.
pub(super) fn put_plain_line(header: Header, line_len: usize, out: &mut BytesMut) {
    let start = out.len();
    put_hex(header.seq, 16, out);
    put_hex(u64::from(header.sender), 8, out);
    put_hex(header.stamp_ns, 16, out);
    out.put_bytes(FILL, line_len - (out.len() - start));
}

fn put_hex(value: u64, digits: usize, out: &mut BytesMut) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.put_u8(HEX[((value >> (i * 4)) & 0xf) as usize]);
    }
}

pub(super) fn parse_plain_line(line: &[u8]) -> Result<Header, Forged> {
    let (head, fill) = line.split_at_checked(PLAIN_HEADER_LEN).ok_or(Forged)?;
    if fill.iter().any(|&b| b != FILL) {
        return Err(Forged);
    }
    let sender = parse_hex(&head[16..24])?;
    Ok(Header {
        seq: parse_hex(&head[..16])?,
        sender: u32::try_from(sender).map_err(|_| Forged)?,
        stamp_ns: parse_hex(&head[24..])?,
    })
}

fn parse_hex(digits: &[u8]) -> Result<u64, Forged> {
    digits.iter().try_fold(0u64, |value, &digit| {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return Err(Forged),
        };
        Ok(value << 4 | u64::from(nibble))
    })
}
