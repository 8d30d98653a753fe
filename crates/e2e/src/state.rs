//! A device's state directory: its files are written whole and atomically
//! (a temporary file, fsync, rename, fsync of the directory), readable by
//! the owner only (0600; the directory 0700), so a crash leaves either the
//! old file or the new one, never half of one.
//!
//! It also owns the layout of the `mls` file: openmls's storage (every
//! group, epoch secret and unused KeyPackage key of the device) with the
//! device's own record of its rooms. This module never interprets either:
//! it only frames them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::E2eError;

/// The state directory of one device.
#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Opens `path`, making it (0700) if it does not exist.
    pub(crate) fn open(path: &Path) -> Result<Self, E2eError> {
        if !path.exists() {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(path)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// The whole of file `name`, or `None` if it does not exist yet.
    pub(crate) fn read(&self, name: &str) -> Result<Option<Vec<u8>>, E2eError> {
        match fs::read(self.path.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces file `name` with `bytes`, atomically, mode 0600.
    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> Result<(), E2eError> {
        let target = self.path.join(name);
        let temporary = self.path.join(format!(".{name}.tmp"));
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, &target)?;
        // The rename is durable once the directory is.
        File::open(&self.path)?.sync_all()?;
        Ok(())
    }
}

const MLS_MAGIC: &[u8; 8] = b"EAXMLS01";

/// Frames the `mls` file: magic, the rooms record, then openmls's
/// storage entries (key, value), each length-prefixed (u32, big-endian).
pub(crate) fn encode_mls<'a>(
    rooms: &[u8],
    entries: impl ExactSizeIterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * 1024);
    out.extend_from_slice(MLS_MAGIC);
    put_bytes(&mut out, rooms);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (key, value) in entries {
        put_bytes(&mut out, key);
        put_bytes(&mut out, value);
    }
    out
}

/// The rooms record and storage entries of an `mls` file.
pub(crate) type MlsFile = (Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>);

/// Reads what [`encode_mls`] wrote.
pub(crate) fn decode_mls(bytes: &[u8]) -> Result<MlsFile, E2eError> {
    let corrupt = || E2eError::CorruptState("mls");
    let mut reader = Reader(bytes);
    if reader.take(MLS_MAGIC.len()).ok_or_else(corrupt)? != MLS_MAGIC {
        return Err(corrupt());
    }
    let rooms = reader.bytes().ok_or_else(corrupt)?.to_vec();
    let count = reader.u32().ok_or_else(corrupt)?;
    let mut entries = Vec::new();
    for _ in 0..count {
        let key = reader.bytes().ok_or_else(corrupt)?.to_vec();
        let value = reader.bytes().ok_or_else(corrupt)?.to_vec();
        entries.push((key, value));
    }
    if !reader.0.is_empty() {
        return Err(corrupt());
    }
    Ok((rooms, entries))
}

/// Appends `bytes` with a u32 length prefix.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A cursor over a state file; every read is bounds-checked.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    /// The next `n` bytes, if there are that many.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// A big-endian u32.
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }

    /// A big-endian u64.
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_be_bytes)
    }

    /// A u32-length-prefixed byte string.
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mls_file_round_trips_and_rejects_damage() {
        let entries = vec![(b"k1".to_vec(), b"v1".to_vec()), (vec![], vec![9; 300])];
        let bytes = encode_mls(b"rooms", entries.iter().map(|(k, v)| (k, v)));
        let (rooms, back) = decode_mls(&bytes).expect("decodes");
        assert_eq!(rooms, b"rooms");
        assert_eq!(back, entries);
        for cut in 0..bytes.len() {
            assert!(decode_mls(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_mls(&longer).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(&dir.path().join("s")).expect("open");
        assert_eq!(state.read("x").expect("read"), None);
        state.write("x", b"one").expect("write");
        state.write("x", b"two").expect("write");
        assert_eq!(state.read("x").expect("read").as_deref(), Some(&b"two"[..]));
        let mode = fs::metadata(dir.path().join("s/x"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = fs::metadata(dir.path().join("s"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
