//! The log on disk: the segment files (`DIR/NNNNNNNN.log`, their names,
//! listing and rotation under the size bound), each opened by an 8-byte
//! header ([`SEGMENT_MAGIC`]), and the sealed record's frame in them
//! (`len ‖ crc32 ‖ nonce ‖ tag ‖ ciphertext`, the module docs of
//! [`super`]), sealed with the record's place ([`Position`]: segment
//! number and index) as associated data. The plaintext inside a frame is
//! `eaxchat_core::record`'s.
//!
//! [`Sealer`] writes frames and [`Segments`] appends them, both on the
//! writer thread; reading frames back is `recovery`'s. Nothing here ever
//! writes plaintext, and no file but the current segment is ever written:
//! old segments are only deleted, oldest first, never the current one.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::Rng as _;

use eaxchat_proto::eax_key::EaxKey;
use eaxchat_proto::wire::{NONCE_LEN, OVERHEAD};

use super::{LogConfig, LogError, Record, io_error};

/// The largest sealed record accepted, written or read: 1 MiB, far above
/// any chat frame. A length above it is corruption.
pub const MAX_SEALED_LEN: usize = 1 << 20;

/// Bytes before the sealed bytes of a record: its length and CRC.
pub(super) const RECORD_HEADER: usize = 8;

/// The first bytes of every segment written in the current format
/// (version 2): records bound to their place. A segment without them is
/// in the previous format (version 1: no header, no associated data); its
/// first bytes as a length would be far over [`MAX_SEALED_LEN`], so the
/// two are never mistaken for each other.
pub const SEGMENT_MAGIC: [u8; 8] = *b"EAXLOG\x00\x02";

/// Where a record sits: its segment's number and its index in it, from
/// 0. Sealed as the record's associated data, so a record moved to another
/// place (reordered, spliced from another segment, a segment renamed) does
/// not open there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Position {
    pub(super) segment: u32,
    pub(super) index: u64,
}

impl Position {
    /// The associated data: a label, then the segment and index, big-endian.
    pub(super) fn associated_data(self) -> [u8; 24] {
        let mut ad = [0u8; 24];
        ad[..12].copy_from_slice(b"eaxchat-log2");
        ad[12..16].copy_from_slice(&self.segment.to_be_bytes());
        ad[16..].copy_from_slice(&self.index.to_be_bytes());
        ad
    }
}

/// The segments in `dir`, by number; creates `dir` if missing.
pub(super) fn list_segments(dir: &Path) -> Result<Vec<(u32, PathBuf)>, LogError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(dir))?;
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(number) = name.to_str().and_then(segment_number) else {
            continue;
        };
        segments.push((number, entry.path()));
    }
    segments.sort_unstable();
    Ok(segments)
}

fn segment_number(file_name: &str) -> Option<u32> {
    let digits = file_name.strip_suffix(".log")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(super) fn segment_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("{number:08}.log"))
}

/// CRC-32 (IEEE 802.3, as zlib's `crc32`), bytewise over a table built at
/// compile time: records are small and written at chat speed.
pub(super) fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut n = 0;
        while n < 256 {
            let mut c = n as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[n] = c;
            n += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |crc, &b| {
        TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8)
    })
}

/// Seals records into their on-disk form.
pub(super) struct Sealer {
    key: EaxKey,
    nonces: ChaCha20Rng,
    record: Vec<u8>,
}

impl Sealer {
    /// Seals under `key`, with nonces drawn from `nonces`.
    pub(super) fn new(key: EaxKey, nonces: ChaCha20Rng) -> Sealer {
        Sealer {
            key,
            nonces,
            record: Vec::new(),
        }
    }

    /// Encodes `record`; returns its on-disk length, or `None` if over
    /// [`MAX_SEALED_LEN`]. [`Sealer::seal`] then seals it for its place.
    pub(super) fn encode(&mut self, record: &Record) -> Option<u64> {
        let buf = &mut self.record;
        buf.clear();
        buf.resize(RECORD_HEADER + OVERHEAD, 0);
        record.encode(buf);
        let sealed_len = buf.len() - RECORD_HEADER;
        (sealed_len <= MAX_SEALED_LEN).then_some(buf.len() as u64)
    }

    /// The on-disk bytes of the record last encoded, sealed for `at`.
    pub(super) fn seal(&mut self, at: Position) -> &[u8] {
        let buf = &mut self.record;
        let sealed_len = buf.len() - RECORD_HEADER;
        let mut nonce = [0u8; NONCE_LEN];
        self.nonces.fill_bytes(&mut nonce);
        let (header, sealed) = buf.split_at_mut(RECORD_HEADER);
        let (nonce_tag, plaintext) = sealed.split_at_mut(OVERHEAD);
        let tag = self
            .key
            .seal_with_header(&nonce, &at.associated_data(), plaintext);
        nonce_tag[..NONCE_LEN].copy_from_slice(&nonce);
        nonce_tag[NONCE_LEN..].copy_from_slice(&tag);
        let crc = crc32(sealed);
        header[..4].copy_from_slice(&(sealed_len as u32).to_le_bytes());
        header[4..].copy_from_slice(&crc.to_le_bytes());
        buf
    }
}

/// The segment files as the writer sees them: their numbers and sizes,
/// and the open current one.
pub(super) struct Segments {
    config: LogConfig,
    /// Every segment, oldest first, with its size; the last is current.
    sizes: VecDeque<(u32, u64)>,
    total: u64,
    current: Option<fs::File>,
    /// Records written to the current segment.
    index: u64,
}

impl Segments {
    /// The segments already in `config.dir`, none of them open.
    pub(super) fn open(config: LogConfig) -> Result<Segments, LogError> {
        let mut sizes = VecDeque::new();
        let mut total = 0;
        for (number, path) in list_segments(&config.dir)? {
            let len = fs::metadata(&path).map_err(io_error(&path))?.len();
            sizes.push_back((number, len));
            total += len;
        }
        Ok(Segments {
            config,
            sizes,
            total,
            current: None,
            index: 0,
        })
    }

    /// The settings the segments were opened with.
    pub(super) fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Closes the current segment (synced) and creates the next.
    pub(super) fn begin_next(&mut self) -> Result<(), LogError> {
        if self.current.is_some() {
            self.sync()?;
        }
        let number = self.sizes.back().map_or(0, |&(n, _)| n.saturating_add(1));
        let path = segment_path(&self.config.dir, number);
        let file = fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error(&path))?;
        (&file).write_all(&SEGMENT_MAGIC).map_err(io_error(&path))?;
        // The new file's name must survive a crash as well as its bytes.
        fs::File::open(&self.config.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(&self.config.dir))?;
        self.current = Some(file);
        let header = SEGMENT_MAGIC.len() as u64;
        self.sizes.push_back((number, header));
        self.total += header;
        self.index = 0;
        Ok(())
    }

    /// Where the next record, `len` bytes on disk, goes: the current
    /// segment, or the next one (begun now) if it would take the current
    /// past [`LogConfig::segment_bytes`].
    pub(super) fn place(&mut self, len: u64) -> Result<Position, LogError> {
        let current_len = self.sizes.back().map_or(0, |&(_, size)| size);
        if self.index > 0 && current_len + len > self.config.segment_bytes {
            self.begin_next()?;
        }
        Ok(Position {
            segment: self.sizes.back().map_or(0, |&(n, _)| n),
            index: self.index,
        })
    }

    /// Appends `bytes` (sealed for [`Segments::place`]'s answer) to the
    /// current segment, and deletes the oldest segments while all of them
    /// pass [`LogConfig::max_bytes`].
    pub(super) fn write(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        let len = bytes.len() as u64;
        let number = self.sizes.back().map_or(0, |&(n, _)| n);
        let path = segment_path(&self.config.dir, number);
        let Some(file) = self.current.as_mut() else {
            return Err(io_error(&path)(io::Error::other("no open segment")));
        };
        file.write_all(bytes).map_err(io_error(&path))?;
        if let Some((_, size)) = self.sizes.back_mut() {
            *size += len;
        }
        self.index += 1;
        self.total += len;
        while self.total > self.config.max_bytes && self.sizes.len() > 1 {
            let Some((oldest, size)) = self.sizes.pop_front() else {
                break;
            };
            let path = segment_path(&self.config.dir, oldest);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_error(&path)(error)),
            }
            self.total -= size;
        }
        Ok(())
    }

    /// The byte offset the next record written to the current segment
    /// starts at.
    pub(super) fn offset(&self) -> u64 {
        self.sizes.back().map_or(0, |&(_, size)| size)
    }

    /// The oldest segment still on disk.
    pub(super) fn oldest(&self) -> Option<u32> {
        self.sizes.front().map(|&(number, _)| number)
    }

    /// Syncs the current segment's data to disk.
    pub(super) fn sync(&mut self) -> Result<(), LogError> {
        match &self.current {
            Some(file) => file.sync_data().map_err(io_error(&self.config.dir)),
            None => Ok(()),
        }
    }
}
