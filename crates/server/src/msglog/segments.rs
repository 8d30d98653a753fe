//! The log on disk: the segment files (`DIR/NNNNNNNN.log`, their names,
//! listing and rotation under the size bound) and the sealed record's frame
//! in them (`len ‖ crc32 ‖ nonce ‖ tag ‖ ciphertext`, the module docs of
//! [`super`]). The plaintext inside a frame is `eaxchat_core::record`'s.
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

fn segment_path(dir: &Path, number: u32) -> PathBuf {
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

    /// The on-disk bytes of `record`, or `None` if over [`MAX_SEALED_LEN`].
    pub(super) fn seal(&mut self, record: &Record) -> Option<&[u8]> {
        let buf = &mut self.record;
        buf.clear();
        buf.resize(RECORD_HEADER + OVERHEAD, 0);
        record.encode(buf);
        let sealed_len = buf.len() - RECORD_HEADER;
        if sealed_len > MAX_SEALED_LEN {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        self.nonces.fill_bytes(&mut nonce);
        let (header, sealed) = buf.split_at_mut(RECORD_HEADER);
        let (nonce_tag, plaintext) = sealed.split_at_mut(OVERHEAD);
        let tag = self.key.seal_in_place_detached(&nonce, plaintext);
        nonce_tag[..NONCE_LEN].copy_from_slice(&nonce);
        nonce_tag[NONCE_LEN..].copy_from_slice(&tag);
        let crc = crc32(sealed);
        header[..4].copy_from_slice(&(sealed_len as u32).to_le_bytes());
        header[4..].copy_from_slice(&crc.to_le_bytes());
        Some(buf)
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
        // The new file's name must survive a crash as well as its bytes.
        fs::File::open(&self.config.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(&self.config.dir))?;
        self.current = Some(file);
        self.sizes.push_back((number, 0));
        Ok(())
    }

    /// Appends `bytes` to the current segment, beginning the next one first
    /// if they would take it past [`LogConfig::segment_bytes`], and deletes
    /// the oldest segments while all of them pass [`LogConfig::max_bytes`].
    pub(super) fn write(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        let len = bytes.len() as u64;
        let current_len = self.sizes.back().map_or(0, |&(_, size)| size);
        if current_len > 0 && current_len + len > self.config.segment_bytes {
            self.begin_next()?;
        }
        let number = self.sizes.back().map_or(0, |&(n, _)| n);
        let path = segment_path(&self.config.dir, number);
        let Some(file) = self.current.as_mut() else {
            return Err(io_error(&path)(io::Error::other("no open segment")));
        };
        file.write_all(bytes).map_err(io_error(&path))?;
        if let Some((_, size)) = self.sizes.back_mut() {
            *size += len;
        }
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

    /// Syncs the current segment's data to disk.
    pub(super) fn sync(&mut self) -> Result<(), LogError> {
        match &self.current {
            Some(file) => file.sync_data().map_err(io_error(&self.config.dir)),
            None => Ok(()),
        }
    }
}
