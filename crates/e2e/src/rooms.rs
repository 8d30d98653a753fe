//! A device's MLS groups, one per end-to-end room: creating, adding,
//! removing, joining (Welcome or External Commit), encrypting, and the
//! relay's answer to each commit. Sans-io: every method takes bytes and
//! returns bytes or an [`Event`]; the caller sends them with `/mls`.
//!
//! A commit this device makes is *pending* until the relay answers:
//! [`E2eRooms::accepted`] on `mls-ok` merges it (and gives the GroupInfo
//! to upload), [`E2eRooms::refused`] on `mls-refused` drops it; the caller
//! then processes the commit that won and retries if still needed. Every
//! change is saved to the state directory before the method returns.
//! Reading incoming messages ([`E2eRooms::process`]) is in `inbound.rs`.

use std::collections::BTreeMap;
use std::path::Path;

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    GroupId, KeyPackage, KeyPackageIn, LeafNodeIndex, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY, MlsGroup,
    MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn, ProtocolVersion,
    StagedWelcome,
};
use openmls_traits::OpenMlsProvider as _;

use crate::error::mls;
use crate::state::{Reader, put_bytes};
use crate::{CIPHERSUITE, Device, E2eError, group_id};

/// How many past epochs' secrets a group keeps, so that an application
/// message sent just before a commit (the relay takes epoch E−1 after a
/// commit to E) still opens, with one to spare.
pub const PAST_EPOCHS: usize = 2;

/// One member's device as the group knows it: the credential's name and
/// the leaf's signature key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    /// The member's name (the basic credential's identity).
    pub name: String,
    /// The device's Ed25519 signature key.
    pub signature_key: Vec<u8>,
}

/// One room's group on this device.
pub(crate) struct Room {
    pub(crate) group: MlsGroup,
    /// The first epoch this device had in the group.
    pub(crate) joined: u64,
    /// The group came from an External Commit the relay has not answered:
    /// it is not a member yet.
    pub(crate) external_pending: bool,
    /// That External Commit's bytes, kept (on disk too) so that, read back
    /// from the room after a restart, it is known as this device's own:
    /// openmls cannot match a commit that adds its own reader to the
    /// pending state. Empty when not pending, or in a record written
    /// before the bytes were kept.
    pub(crate) external_commit: Vec<u8>,
}

/// A device's end-to-end rooms: the [`Device`] and its group per room.
pub struct E2eRooms {
    pub(crate) device: Device,
    pub(crate) rooms: BTreeMap<String, Room>,
}

impl std::fmt::Debug for E2eRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2eRooms")
            .field("device", &self.device)
            .field("rooms", &self.rooms.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(PAST_EPOCHS)
        .build()
}

pub(crate) fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(PAST_EPOCHS)
        .build()
}

/// The room of an eaxchat group id (`eaxchat:` + room).
fn room_of(group: &GroupId) -> Result<String, E2eError> {
    group
        .as_slice()
        .strip_prefix(b"eaxchat:")
        .and_then(|room| std::str::from_utf8(room).ok())
        .map(str::to_string)
        .ok_or(E2eError::WrongGroup)
}

/// The name in a basic credential's identity.
pub(crate) fn name_of(credential: &openmls::prelude::Credential) -> String {
    String::from_utf8_lossy(credential.serialized_content()).into_owned()
}

impl E2eRooms {
    /// Opens member `name`'s device in `dir` (made on first use) with
    /// every group it kept.
    pub fn open(dir: &Path, name: &str) -> Result<Self, E2eError> {
        let device = Device::open(dir, name)?;
        let mut rooms = BTreeMap::new();
        let corrupt = || E2eError::CorruptState("mls rooms");
        if !device.rooms_record.is_empty() {
            let mut reader = Reader(&device.rooms_record);
            for _ in 0..reader.u32().ok_or_else(corrupt)? {
                let room = reader.bytes().ok_or_else(corrupt)?;
                let room = std::str::from_utf8(room)
                    .map_err(|_| corrupt())?
                    .to_string();
                let joined = reader.u64().ok_or_else(corrupt)?;
                // 0: no External Commit pending; 1: one pending, its bytes
                // not kept (an older record); 2: one pending, its bytes next.
                let (external_pending, external_commit) =
                    match reader.take(1).ok_or_else(corrupt)? {
                        [0] => (false, Vec::new()),
                        [1] => (true, Vec::new()),
                        [2] => (true, reader.bytes().ok_or_else(corrupt)?.to_vec()),
                        _ => return Err(corrupt()),
                    };
                let group = MlsGroup::load(
                    device.provider.storage(),
                    &GroupId::from_slice(&group_id(&room)),
                )
                .map_err(mls("load group"))?
                .ok_or_else(corrupt)?;
                let state = Room {
                    group,
                    joined,
                    external_pending,
                    external_commit,
                };
                rooms.insert(room, state);
            }
        }
        Ok(Self { device, rooms })
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// `n` fresh KeyPackages of this device (see [`Device::key_packages`]).
    pub fn key_packages(&mut self, n: usize) -> Result<Vec<Vec<u8>>, E2eError> {
        self.device.key_packages(n)
    }

    /// The rooms this device has a group for.
    pub fn rooms(&self) -> impl Iterator<Item = &str> {
        self.rooms.keys().map(String::as_str)
    }

    /// The group's current epoch in `room`.
    pub fn epoch(&self, room: &str) -> Result<u64, E2eError> {
        Ok(self.room(room)?.group.epoch().as_u64())
    }

    /// The members' devices in `room`, in leaf order.
    pub fn members(&self, room: &str) -> Result<Vec<Member>, E2eError> {
        Ok(self
            .room(room)?
            .group
            .members()
            .map(|m| Member {
                name: name_of(&m.credential),
                signature_key: m.signature_key,
            })
            .collect())
    }

    /// Whether a commit of this device waits for the relay's answer.
    pub fn is_pending(&self, room: &str) -> Result<bool, E2eError> {
        let room = self.room(room)?;
        Ok(room.external_pending || room.group.pending_commit().is_some())
    }

    /// Creates `room`'s group at epoch 0 with this device alone; returns
    /// the GroupInfo to upload with `/mls` (the first for a room creates
    /// it at the relay).
    pub fn create(&mut self, room: &str) -> Result<Vec<u8>, E2eError> {
        if self.rooms.contains_key(room) {
            return Err(E2eError::GroupExists(room.to_string()));
        }
        let group = MlsGroup::new_with_group_id(
            &self.device.provider,
            &self.device.signer,
            &create_config(),
            GroupId::from_slice(&group_id(room)),
            self.device.credential.clone(),
        )
        .map_err(mls("create group"))?;
        let state = Room {
            group,
            joined: 0,
            external_pending: false,
            external_commit: Vec::new(),
        };
        self.rooms.insert(room.to_string(), state);
        self.save()?;
        self.group_info(room)
    }

    /// The GroupInfo of `room` at its current epoch (with the ratchet tree
    /// and the external public key, so a device can join by External
    /// Commit), as MLSMessage bytes.
    pub fn group_info(&self, room: &str) -> Result<Vec<u8>, E2eError> {
        let group = &self.room(room)?.group;
        group
            .export_group_info(self.device.provider.crypto(), &self.device.signer, true)
            .map_err(mls("group info"))?
            .to_bytes()
            .map_err(mls("encode group info"))
    }

    /// Commits adding the devices whose KeyPackages (MLSMessage bytes, as
    /// `/keypackages` gives them) are given. Returns (commit, welcome);
    /// the commit is pending until [`accepted`](Self::accepted) or
    /// [`refused`](Self::refused), and the Welcome goes out only after it
    /// is accepted.
    pub fn add(
        &mut self,
        room: &str,
        key_packages: &[Vec<u8>],
    ) -> Result<(Vec<u8>, Vec<u8>), E2eError> {
        let mut packages: Vec<KeyPackage> = Vec::with_capacity(key_packages.len());
        for bytes in key_packages {
            let message = MlsMessageIn::tls_deserialize_exact(bytes)
                .map_err(|_| E2eError::Malformed("KeyPackage"))?;
            let MlsMessageBodyIn::KeyPackage(package) = message.extract() else {
                return Err(E2eError::Malformed("KeyPackage"));
            };
            packages.push(validate(package, &self.device)?);
        }
        let device = &self.device;
        let group = ready_group(&mut self.rooms, room)?;
        let (commit, welcome, _) = group
            .add_members(&device.provider, &device.signer, &packages)
            .map_err(mls("add"))?;
        let commit = commit.to_bytes().map_err(mls("encode commit"))?;
        let welcome = welcome.to_bytes().map_err(mls("encode welcome"))?;
        self.save()?;
        Ok((commit, welcome))
    }

    /// Commits removing every device of `name` (this device aside);
    /// returns the commit, pending like [`add`](Self::add)'s.
    pub fn remove(&mut self, room: &str, name: &str) -> Result<Vec<u8>, E2eError> {
        let device = &self.device;
        let group = ready_group(&mut self.rooms, room)?;
        let own = group.own_leaf_index();
        let leaves: Vec<LeafNodeIndex> = group
            .members()
            .filter(|m| m.index != own && m.credential.serialized_content() == name.as_bytes())
            .map(|m| m.index)
            .collect();
        if leaves.is_empty() {
            return Err(E2eError::NotMember(name.to_string()));
        }
        let (commit, _, _) = group
            .remove_members(&device.provider, &device.signer, &leaves)
            .map_err(mls("remove"))?;
        let commit = commit.to_bytes().map_err(mls("encode commit"))?;
        self.save()?;
        Ok(commit)
    }

    /// Commits the proposals received so far (e.g. a Remove the relay
    /// proposed); returns the commit, pending like [`add`](Self::add)'s.
    pub fn commit_proposals(&mut self, room: &str) -> Result<Vec<u8>, E2eError> {
        let device = &self.device;
        let group = ready_group(&mut self.rooms, room)?;
        let (commit, _, _) = group
            .commit_to_pending_proposals(&device.provider, &device.signer)
            .map_err(mls("commit proposals"))?;
        let commit = commit.to_bytes().map_err(mls("encode commit"))?;
        self.save()?;
        Ok(commit)
    }

    /// The relay accepted this device's commit in `room` (`mls-ok`): merge
    /// it. Returns the GroupInfo of the new epoch, to upload with `/mls`.
    pub fn accepted(&mut self, room: &str) -> Result<Vec<u8>, E2eError> {
        let device = &self.device;
        let state = room_entry(&mut self.rooms, room)?;
        if !state.external_pending && state.group.pending_commit().is_none() {
            return Err(E2eError::NoPendingCommit);
        }
        state
            .group
            .merge_pending_commit(&device.provider)
            .map_err(mls("merge commit"))?;
        if state.external_pending {
            state.external_pending = false;
            state.external_commit = Vec::new();
            state.joined = state.group.epoch().as_u64();
        }
        self.save()?;
        self.group_info(room)
    }

    /// The relay refused this device's commit in `room` (`mls-refused`):
    /// drop it (an External Commit's group goes with it). The caller
    /// processes the commit that won, then retries if still needed.
    pub fn refused(&mut self, room: &str) -> Result<(), E2eError> {
        let device = &self.device;
        let state = room_entry(&mut self.rooms, room)?;
        if state.external_pending {
            state
                .group
                .delete(device.provider.storage())
                .map_err(mls("delete group"))?;
            self.rooms.remove(room);
        } else {
            state
                .group
                .clear_pending_commit(device.provider.storage())
                .map_err(mls("clear commit"))?;
        }
        self.save()
    }

    /// Joins a group from a Welcome (MLSMessage bytes) made for one of
    /// this device's KeyPackages. Returns the room and its epoch. A group
    /// the device had for that room before (it was removed, or its External
    /// Commit is still waiting for the relay's answer) is replaced, once the
    /// Welcome has verified.
    pub fn join_welcome(&mut self, welcome: &[u8]) -> Result<(String, u64), E2eError> {
        let message = MlsMessageIn::tls_deserialize_exact(welcome)
            .map_err(|_| E2eError::Malformed("Welcome"))?;
        let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
            return Err(E2eError::Malformed("Welcome"));
        };
        let provider = &self.device.provider;
        // Verified first; the group this device may still have for the
        // room (an External Commit in flight, or one it was removed from)
        // goes only once the Welcome has checked.
        let staged = StagedWelcome::build_from_welcome(provider, &join_config(), welcome)
            .map_err(mls("welcome"))?
            .replace_old_group()
            .build()
            .map_err(mls("welcome"))?;
        let room = room_of(staged.group_context().group_id())?;
        self.forget(&room)?;
        let group = staged
            .into_group(&self.device.provider)
            .map_err(mls("join"))?;
        let epoch = group.epoch().as_u64();
        let state = Room {
            group,
            joined: epoch,
            external_pending: false,
            external_commit: Vec::new(),
        };
        self.rooms.insert(room.clone(), state);
        self.save()?;
        Ok((room, epoch))
    }

    /// Joins a group by External Commit from its GroupInfo (MLSMessage
    /// bytes, as `/groupinfo` gives it). Returns the room and the commit
    /// to send; the device is a member once the relay accepts it.
    pub fn join_external(&mut self, group_info: &[u8]) -> Result<(String, Vec<u8>), E2eError> {
        let message = MlsMessageIn::tls_deserialize_exact(group_info)
            .map_err(|_| E2eError::Malformed("GroupInfo"))?;
        let MlsMessageBodyIn::GroupInfo(info) = message.extract() else {
            return Err(E2eError::Malformed("GroupInfo"));
        };
        let room = room_of(info.group_id())?;
        if self.rooms.get(&room).is_some_and(|r| r.group.is_active()) {
            return Err(E2eError::GroupExists(room));
        }
        self.forget(&room)?;
        let device = &self.device;
        let (group, bundle) = MlsGroup::external_commit_builder()
            .with_config(join_config())
            .build_group(&device.provider, info, device.credential.clone())
            .map_err(mls("external commit"))?
            .load_psks(device.provider.storage())
            .map_err(mls("external commit psks"))?
            .build(
                device.provider.rand(),
                device.provider.crypto(),
                &device.signer,
                |_| true,
            )
            .map_err(mls("external commit"))?
            .finalize(&device.provider)
            .map_err(mls("external commit"))?;
        let (commit, _, _) = bundle.into_contents();
        let commit = commit.to_bytes().map_err(mls("encode commit"))?;
        let state = Room {
            joined: group.epoch().as_u64(),
            group,
            external_pending: true,
            external_commit: commit.clone(),
        };
        self.rooms.insert(room.clone(), state);
        self.save()?;
        Ok((room, commit))
    }

    /// Encrypts `text` for `room`'s group: PrivateMessage bytes for `/mls`.
    pub fn encrypt(&mut self, room: &str, text: &str) -> Result<Vec<u8>, E2eError> {
        let device = &self.device;
        let state = room_entry(&mut self.rooms, room)?;
        if !state.group.is_active() {
            return Err(E2eError::Removed);
        }
        if state.external_pending {
            return Err(E2eError::CommitPending);
        }
        let message = state
            .group
            .create_message(&device.provider, &device.signer, text.as_bytes())
            .map_err(mls("encrypt"))?;
        let bytes = message.to_bytes().map_err(mls("encode message"))?;
        self.save()?;
        Ok(bytes)
    }

    /// Deletes this device's group for `room` if it has one.
    pub fn forget(&mut self, room: &str) -> Result<(), E2eError> {
        if let Some(mut state) = self.rooms.remove(room) {
            state
                .group
                .delete(self.device.provider.storage())
                .map_err(mls("delete group"))?;
            self.save()?;
        }
        Ok(())
    }

    pub(crate) fn room(&self, room: &str) -> Result<&Room, E2eError> {
        self.rooms
            .get(room)
            .ok_or_else(|| E2eError::NoGroup(room.to_string()))
    }

    /// Saves the rooms record and openmls's storage.
    pub(crate) fn save(&mut self) -> Result<(), E2eError> {
        let mut record = Vec::new();
        record.extend_from_slice(&(self.rooms.len() as u32).to_be_bytes());
        for (name, room) in &self.rooms {
            put_bytes(&mut record, name.as_bytes());
            record.extend_from_slice(&room.joined.to_be_bytes());
            if !room.external_pending {
                record.push(0);
            } else if room.external_commit.is_empty() {
                record.push(1);
            } else {
                record.push(2);
                put_bytes(&mut record, &room.external_commit);
            }
        }
        self.device.rooms_record = record;
        self.device.save()
    }
}

/// `room`'s entry in `rooms` (a free function, so the device can be
/// borrowed beside it).
pub(crate) fn room_entry<'a>(
    rooms: &'a mut BTreeMap<String, Room>,
    room: &str,
) -> Result<&'a mut Room, E2eError> {
    rooms
        .get_mut(room)
        .ok_or_else(|| E2eError::NoGroup(room.to_string()))
}

/// The group of `room` if it can commit now: active, no commit pending.
fn ready_group<'a>(
    rooms: &'a mut BTreeMap<String, Room>,
    room: &str,
) -> Result<&'a mut MlsGroup, E2eError> {
    let state = room_entry(rooms, room)?;
    if !state.group.is_active() {
        return Err(E2eError::Removed);
    }
    if state.external_pending || state.group.pending_commit().is_some() {
        return Err(E2eError::CommitPending);
    }
    Ok(&mut state.group)
}

fn validate(package: KeyPackageIn, device: &Device) -> Result<KeyPackage, E2eError> {
    let package = package
        .validate(device.provider.crypto(), ProtocolVersion::Mls10)
        .map_err(mls("KeyPackage"))?;
    if package.ciphersuite() != CIPHERSUITE {
        return Err(E2eError::Mls("KeyPackage of another ciphersuite".into()));
    }
    Ok(package)
}
