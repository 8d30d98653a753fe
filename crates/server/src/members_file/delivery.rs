//! The Delivery Service's state on disk: `MEMBERS.e2e` beside a session
//! relay's members file, mode 0600. It holds what the relay keeps of its
//! end-to-end rooms (each group's epoch and GroupInfo, pending removals,
//! devices' KeyPackages and waiting Welcomes: public keys and ciphertext,
//! never a group secret), in the core's own encoding
//! ([`DeliveryService::encode`]).
//!
//! The relay reads it at start ([`read`]) and writes it whole, atomically,
//! every time the core says it changed ([`write`]), before the frames of
//! that turn go out: a commit the relay answered as taken is on disk, so a
//! restarted relay orders the group from the epoch its members are at.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use eaxchat_core::delivery::DeliveryService;

use super::replace_file;

/// The Delivery Service's file of the members file `members`: `MEMBERS.e2e`.
pub fn delivery_path(members: &Path) -> PathBuf {
    let mut name = members.as_os_str().to_owned();
    name.push(".e2e");
    PathBuf::from(name)
}

/// Reads the state at `path`; a missing file is an empty state.
pub fn read(path: &Path) -> io::Result<DeliveryService> {
    match fs::read(path) {
        Ok(bytes) => DeliveryService::decode(&bytes)
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidData, why)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(DeliveryService::default()),
        Err(e) => Err(e),
    }
}

/// Replaces the file at `path` with `delivery`'s state.
pub fn write(path: &Path, delivery: &DeliveryService) -> io::Result<()> {
    replace_file(path, &delivery.encode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use eaxchat_proto::commands::RoomName;

    #[test]
    fn the_state_goes_to_disk_and_back_privately() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = delivery_path(&dir.path().join("members"));
        assert_eq!(
            read(&path).expect("no file yet").encode(),
            DeliveryService::default().encode()
        );
        let mut state = DeliveryService::default();
        state.make_room(&RoomName::new(b"dev").expect("a room"));
        write(&path, &state).expect("written");
        assert_eq!(read(&path).expect("read").encode(), state.encode());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&path).expect("there").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::write(&path, b"EAXDS\x01\x05").expect("damaged");
        assert!(read(&path).is_err());
    }
}
