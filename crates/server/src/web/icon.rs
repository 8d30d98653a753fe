//! The page's app icons (`/icon-192.png`, `/icon-512.png`, named in its
//! manifest), drawn here at first request rather than kept as binary files:
//! a white speech bubble with three dots on the page's teal. The PNG is
//! two-colour (a 1-bit palette), its image data in stored (uncompressed)
//! deflate blocks, so no image or compression crate is needed and a
//! 512 px icon is 33 KB.

use std::sync::OnceLock;

/// The sizes served, in pixels.
pub const SIZES: [u32; 2] = [192, 512];

/// The background, the page's theme colour (`#0b6e69`).
const TEAL: [u8; 3] = [0x0b, 0x6e, 0x69];
/// The bubble.
const WHITE: [u8; 3] = [0xff, 0xff, 0xff];

/// The PNG of the icon `size` pixels wide and high, if it is one served.
pub fn png(size: u32) -> Option<&'static [u8]> {
    static ICONS: [OnceLock<Vec<u8>>; 2] = [OnceLock::new(), OnceLock::new()];
    let at = SIZES.iter().position(|s| *s == size)?;
    Some(ICONS[at].get_or_init(|| encode(size, &draw(size))))
}

/// Whether pixel (x, y) of a `size` icon is the bubble's.
fn bubble(size: u32, x: u32, y: u32) -> bool {
    let s = size as f32;
    let (x, y) = ((x as f32 + 0.5) / s, (y as f32 + 0.5) / s);
    let ellipse = ((x - 0.5) / 0.33).powi(2) + ((y - 0.45) / 0.25).powi(2) <= 1.0;
    // The tail: a triangle under the bubble's lower left.
    let tail = (0.6..=0.82).contains(&y) && x >= 0.3 && x <= 0.3 + (0.82 - y) * 1.1;
    let dot = [0.36f32, 0.5, 0.64]
        .iter()
        .any(|cx| (x - cx).powi(2) + (y - 0.45).powi(2) <= 0.045f32.powi(2));
    (ellipse || tail) && !dot
}

/// One bit per pixel, rows with their filter byte (0, none) first.
fn draw(size: u32) -> Vec<u8> {
    let row_bytes = size.div_ceil(8) as usize;
    let mut data = vec![0u8; (row_bytes + 1) * size as usize];
    for y in 0..size {
        let row = &mut data[y as usize * (row_bytes + 1)..][..row_bytes + 1];
        for x in 0..size {
            if bubble(size, x, y) {
                row[1 + (x / 8) as usize] |= 0x80 >> (x % 8);
            }
        }
    }
    data
}

/// A PNG of 1-bit palette pixels `data` (rows with filter bytes).
fn encode(size: u32, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&size.to_be_bytes());
    header.extend_from_slice(&size.to_be_bytes());
    // Bit depth 1, colour type 3 (palette), deflate, filtering 0, no
    // interlace.
    header.extend_from_slice(&[1, 3, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"PLTE", &[TEAL, WHITE].concat());
    chunk(&mut out, b"IDAT", &zlib_stored(data));
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of stored deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(0xffff).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for byte in data {
        a = (a + u32::from(*byte)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_icons_are_pngs_of_their_size() {
        for size in SIZES {
            let png = png(size).expect("served");
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
            assert_eq!(&png[12..16], b"IHDR");
            assert_eq!(png[16..20], size.to_be_bytes());
            assert!(png.ends_with(&[0xae, 0x42, 0x60, 0x82]), "IEND's CRC");
        }
        assert!(png(100).is_none());
    }

    #[test]
    fn checksums_match_their_published_values() {
        // zlib's and PNG's CRC-32 of "123456789" (the check value).
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        let stream = zlib_stored(b"Wikipedia");
        // Adler-32 of "Wikipedia", the example in its article.
        assert!(stream.ends_with(&0x11e6_0398u32.to_be_bytes()));
    }
}
