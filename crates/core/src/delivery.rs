//! The Delivery Service of end-to-end rooms (MLS, RFC 9420): what the
//! relay keeps of each room's group, and its rules, with no group secret.
//!
//! The relay orders and routes; it never opens. For each end-to-end room
//! it keeps the group's epoch, its latest GroupInfo (so that a device can
//! join by External Commit while nobody else is online) and the removals
//! the next commit must make; for each device, the KeyPackages it
//! uploaded and the Welcomes waiting for it. Its rules:
//!
//! - The first GroupInfo of a room, at epoch 0, creates its group; the
//!   group id is always [`eaxchat_e2e::group_id`] of the room.
//! - A Commit must be for the group's epoch: the first wins and moves the
//!   group on; any later one for that epoch is refused (its sender catches
//!   up and retries). A Proposal must be for the epoch too.
//! - An application message may be for the epoch or the one before (sent
//!   just as a commit was taken); none is taken while a removal waits for
//!   its commit.
//! - A Welcome goes to the devices whose KeyPackages it names; the relay
//!   knows which by the KeyPackages it handed out (`delivery_handouts.rs`,
//!   bounded per member who asked, so that one member asking over and
//!   over cannot push out the others' handouts). A KeyPackage it no
//!   longer knows is counted ([`Taken::Welcome`]'s `unknown`), so that the
//!   sender can be told.
//!
//! What a message is, the relay reads with [`eaxchat_e2e::ds`]. Everything
//! here is bounded: [`MAX_PACKAGES_PER_DEVICE`], [`MAX_WELCOMES_PER_DEVICE`],
//! [`MAX_HANDED_OUT`] and [`MAX_HANDED_PER_ASKER`]. The caller keeps it
//! across restarts ([`DeliveryService::encode`], [`DeliveryService::decode`]).

use std::collections::{HashMap, VecDeque};

use eaxchat_e2e::ds::{self, DsError, Peeked};
use eaxchat_e2e::ds_group::GroupView;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::name::Name;

pub use handouts::MAX_HANDED_PER_ASKER;
use handouts::{Asker, Handouts};

/// A device, by its session key.
pub type DeviceKey = [u8; 32];

/// KeyPackages kept per device; the oldest goes first.
pub const MAX_PACKAGES_PER_DEVICE: usize = 16;

/// Welcomes kept for a device that has not come for them.
pub const MAX_WELCOMES_PER_DEVICE: usize = 16;

/// KeyPackages handed out whose Welcome the relay still routes, in all
/// (each member who asked holds at most [`MAX_HANDED_PER_ASKER`]).
pub const MAX_HANDED_OUT: usize = 4096;

/// Devices a group remembers as in it (the oldest forgotten first).
pub const MAX_GROUP_DEVICES: usize = 4096;

/// End-to-end rooms the relay keeps.
pub const MAX_E2E_ROOMS: usize = 1024;

/// One end-to-end room's group, as the relay knows it.
#[derive(Debug, Default)]
struct Group {
    /// Whether its first GroupInfo came: it exists.
    created: bool,
    /// Its epoch: the next commit must be for this one.
    epoch: u64,
    /// Its GroupInfo for `epoch`, if the last committer sent it.
    group_info: Option<Box<[u8]>>,
    /// Members whose removal the next commit must make.
    removals: Vec<Name>,
    /// Devices the relay knows are in the group: its creator and those it
    /// routed a Welcome to. A device of the room's members not among them
    /// is announced for adding (`mls-add`).
    devices: Vec<DeviceKey>,
    /// Its public state (tree, context, proposals), against which every
    /// handshake message and GroupInfo is checked; made by its first
    /// GroupInfo.
    view: Option<Box<GroupView>>,
}

/// What a group message the relay took is, and what it does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// A Commit, taken: the group is at `epoch` now. Relayed to the room;
    /// its sender is told.
    Commit {
        /// The group's new epoch.
        epoch: u64,
    },
    /// A Proposal: relayed to the room.
    Proposal,
    /// An application message: relayed to the room.
    Application,
    /// A Welcome, for these devices (those the relay knows).
    Welcome {
        /// The devices it is for.
        devices: Vec<DeviceKey>,
        /// How many of the KeyPackages it names the relay has no handout
        /// of (let go past the bounds, or never handed out here): their
        /// devices do not get it.
        unknown: usize,
    },
    /// The GroupInfo that made the group.
    Created,
    /// A GroupInfo for the current epoch, kept.
    GroupInfo,
}

/// Why a group message, KeyPackage or request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The room is not end-to-end.
    NotEndToEnd,
    /// The message does not parse or check.
    Message(DsError),
    /// It is for another group than the room's.
    WrongGroup,
    /// The room's group does not exist yet: its first GroupInfo makes it.
    NoGroup,
    /// A GroupInfo at epoch 0 for a group that exists.
    GroupExists,
    /// For another epoch than the group's (`epoch`).
    Stale {
        /// The group's epoch.
        epoch: u64,
    },
    /// A removal waits for its commit.
    RemovalPending(Name),
    /// A KeyPackage sent with `/mls`, or another kind with `/keypackage`.
    WrongPlace,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotEndToEnd => f.write_str("error: that room is not end-to-end"),
            Refused::Message(why) => write!(f, "error: {why}"),
            Refused::WrongGroup => f.write_str("error: that MLS message is for another group"),
            Refused::NoGroup => {
                f.write_str("error: the room has no group yet: its first GroupInfo makes it")
            }
            Refused::GroupExists => {
                f.write_str("error: the room's group exists: join it (/groupinfo ROOM)")
            }
            Refused::Stale { epoch } => write!(
                f,
                "error: the group is at epoch {epoch}: process what came, then retry"
            ),
            Refused::RemovalPending(name) => write!(
                f,
                "error: {name} is to be removed: commit that before sending"
            ),
            Refused::WrongPlace => {
                f.write_str("error: KeyPackages go with /keypackage, group messages with /mls")
            }
        }
    }
}

impl std::error::Error for Refused {}

/// A KeyPackage kept: its `KeyPackageRef` and its `MLSMessage` bytes.
type KeptPackage = (Box<[u8]>, Box<[u8]>);

/// A Welcome waiting for a device: its room and its bytes.
type WaitingWelcome = (RoomName, Box<[u8]>);

/// KeyPackages a device uploaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Packages {
    name: Option<Name>,
    /// `(KeyPackageRef, MLSMessage bytes)`, oldest first.
    kept: VecDeque<KeptPackage>,
}

/// The Delivery Service's state: every end-to-end room's group, and every
/// device's KeyPackages and Welcomes.
#[derive(Debug, Default)]
pub struct DeliveryService {
    groups: HashMap<RoomName, Group>,
    packages: HashMap<DeviceKey, Packages>,
    welcomes: HashMap<DeviceKey, VecDeque<WaitingWelcome>>,
    /// The KeyPackages handed out, for routing Welcomes.
    handouts: Handouts,
    changed: bool,
}

impl DeliveryService {
    /// Makes `room` end-to-end (its group is made by its first GroupInfo);
    /// false when the relay keeps [`MAX_E2E_ROOMS`] already.
    pub fn make_room(&mut self, room: &RoomName) -> bool {
        if self.groups.contains_key(room) {
            return true;
        }
        if self.groups.len() >= MAX_E2E_ROOMS {
            return false;
        }
        self.groups.insert(room.clone(), Group::default());
        self.changed = true;
        true
    }

    /// Forgets end-to-end room `room` whose group was never made.
    pub fn forget_room(&mut self, room: &RoomName) {
        if self.groups.get(room).is_some_and(|group| !group.created) {
            self.groups.remove(room);
            self.changed = true;
        }
    }

    /// Keeps a Welcome for `device` again (it could not be handed yet).
    pub fn hold_welcome(&mut self, device: DeviceKey, room: &RoomName, welcome: &[u8]) {
        let waiting = self.welcomes.entry(device).or_default();
        if waiting.len() >= MAX_WELCOMES_PER_DEVICE {
            waiting.pop_front();
        }
        waiting.push_back((room.clone(), welcome.into()));
        self.changed = true;
    }

    /// Whether `room` is end-to-end.
    pub fn is_e2e(&self, room: &RoomName) -> bool {
        self.groups.contains_key(room)
    }

    /// The end-to-end rooms.
    pub fn rooms(&self) -> impl Iterator<Item = &RoomName> {
        self.groups.keys()
    }

    /// `room`'s group epoch, if it has a group.
    pub fn epoch(&self, room: &RoomName) -> Option<u64> {
        self.groups
            .get(room)
            .filter(|group| group.created)
            .map(|group| group.epoch)
    }

    /// `room`'s stored GroupInfo and its epoch.
    pub fn group_info(&self, room: &RoomName) -> Option<(u64, &[u8])> {
        let group = self.groups.get(room)?;
        Some((group.epoch, group.group_info.as_deref()?))
    }

    /// Whether the relay knows `device` to be in `room`'s group.
    pub fn knows_device(&self, room: &RoomName, device: &DeviceKey) -> bool {
        self.groups
            .get(room)
            .is_some_and(|group| group.devices.contains(device))
    }

    /// Takes one group message device `sender` sent for `room`.
    pub fn take(
        &mut self,
        room: &RoomName,
        sender: Option<DeviceKey>,
        bytes: &[u8],
    ) -> Result<Taken, Refused> {
        let Some(group) = self.groups.get_mut(room) else {
            return Err(Refused::NotEndToEnd);
        };
        let peeked = ds::peek(bytes).map_err(Refused::Message)?;
        let ours = eaxchat_e2e::group_id(room.as_str());
        let (in_group, epoch) = match &peeked {
            Peeked::Commit { group, epoch }
            | Peeked::Proposal { group, epoch }
            | Peeked::Application { group, epoch }
            | Peeked::GroupInfo { group, epoch } => (*group == ours, *epoch),
            Peeked::Welcome { .. } => (true, 0),
            Peeked::KeyPackage => return Err(Refused::WrongPlace),
        };
        if !in_group {
            return Err(Refused::WrongGroup);
        }
        let taken = match peeked {
            Peeked::GroupInfo { .. } if !group.created => {
                if epoch != 0 {
                    return Err(Refused::Stale { epoch: 0 });
                }
                let view = GroupView::from_group_info(bytes).map_err(Refused::Message)?;
                group.view = Some(Box::new(view));
                group.created = true;
                group.group_info = Some(bytes.into());
                group.devices.extend(sender);
                Taken::Created
            }
            Peeked::GroupInfo { .. } if epoch == 0 && group.epoch == 0 => {
                return Err(Refused::GroupExists);
            }
            _ if !group.created => return Err(Refused::NoGroup),
            Peeked::GroupInfo { .. } if epoch == group.epoch => {
                let view = group.view.as_ref().ok_or(Refused::NoGroup)?;
                view.check_group_info(bytes).map_err(Refused::Message)?;
                group.group_info = Some(bytes.into());
                Taken::GroupInfo
            }
            Peeked::Commit { .. } if epoch == group.epoch => {
                let view = group.view.as_mut().ok_or(Refused::NoGroup)?;
                let due: Vec<String> = group
                    .removals
                    .iter()
                    .map(|n| n.as_str().to_owned())
                    .collect();
                let taken = view.take_commit(bytes, &due).map_err(|why| match why {
                    DsError::RemovalMissing(_) => match group.removals.first() {
                        Some(name) => Refused::RemovalPending(name.clone()),
                        None => Refused::Message(why),
                    },
                    why => Refused::Message(why),
                })?;
                group.epoch = taken.epoch;
                group.group_info = None;
                group.removals.clear();
                group.devices.extend(sender);
                Taken::Commit { epoch: group.epoch }
            }
            Peeked::Proposal { .. } if epoch == group.epoch => {
                let view = group.view.as_mut().ok_or(Refused::NoGroup)?;
                view.take_proposal(bytes).map_err(Refused::Message)?;
                Taken::Proposal
            }
            Peeked::Application { .. }
                if group.epoch.saturating_sub(1) <= epoch && epoch <= group.epoch =>
            {
                if let Some(name) = group.removals.first() {
                    return Err(Refused::RemovalPending(name.clone()));
                }
                Taken::Application
            }
            Peeked::Welcome { for_key_packages } => {
                let mut devices: Vec<DeviceKey> = for_key_packages
                    .iter()
                    .filter_map(|reference| self.handouts.device(reference))
                    .collect();
                let unknown = for_key_packages.len() - devices.len();
                devices.sort_unstable();
                devices.dedup();
                for device in &devices {
                    if !group.devices.contains(device) {
                        if group.devices.len() >= MAX_GROUP_DEVICES {
                            group.devices.remove(0);
                        }
                        group.devices.push(*device);
                    }
                    let waiting = self.welcomes.entry(*device).or_default();
                    if waiting.len() >= MAX_WELCOMES_PER_DEVICE {
                        waiting.pop_front();
                    }
                    waiting.push_back((room.clone(), bytes.into()));
                }
                self.changed = true;
                return Ok(Taken::Welcome { devices, unknown });
            }
            _ => return Err(Refused::Stale { epoch: group.epoch }),
        };
        // Application messages and proposals pass through: nothing kept.
        self.changed |= !matches!(taken, Taken::Application | Taken::Proposal);
        Ok(taken)
    }

    /// Keeps a KeyPackage `device` of member `name` uploaded, once it
    /// checks ([`ds::check_key_package`]).
    pub fn upload(&mut self, device: DeviceKey, name: &Name, bytes: &[u8]) -> Result<(), Refused> {
        let checked = match ds::check_key_package(bytes, name.as_str()) {
            Ok(checked) => checked,
            Err(DsError::Unsupported) => return Err(Refused::WrongPlace),
            Err(why) => return Err(Refused::Message(why)),
        };
        let packages = self.packages.entry(device).or_default();
        packages.name = Some(name.clone());
        if packages.kept.len() >= MAX_PACKAGES_PER_DEVICE {
            packages.kept.pop_front();
        }
        packages
            .kept
            .push_back((checked.reference.into(), bytes.into()));
        self.changed = true;
        Ok(())
    }

    /// One KeyPackage of each of `devices` that has any, taken out (a
    /// device's last one is handed out again rather than leaving it none),
    /// handed to member `asker` (`None`: no member in particular).
    pub fn packages_of(&mut self, asker: Option<&Name>, devices: &[DeviceKey]) -> Vec<Box<[u8]>> {
        let asker: Asker = asker.cloned();
        let mut out = Vec::new();
        for device in devices {
            let Some(packages) = self.packages.get_mut(device) else {
                continue;
            };
            let taken = if packages.kept.len() > 1 {
                packages.kept.pop_front()
            } else {
                packages.kept.front().cloned()
            };
            let Some((reference, bytes)) = taken else {
                continue;
            };
            self.handouts.hand(&asker, &reference, *device);
            out.push(bytes);
            self.changed = true;
        }
        out
    }

    /// How many KeyPackages `device` has kept.
    pub fn packages_kept(&self, device: &DeviceKey) -> usize {
        self.packages.get(device).map_or(0, |p| p.kept.len())
    }

    /// The Welcomes waiting for `device`, taken out.
    pub fn welcomes_for(&mut self, device: &DeviceKey) -> Vec<WaitingWelcome> {
        let waiting: Vec<_> = self
            .welcomes
            .remove(device)
            .map(Vec::from)
            .unwrap_or_default();
        if !waiting.is_empty() {
            self.changed = true;
        }
        waiting
    }

    /// `name` left `room`, or the relay: the next commit must remove it.
    pub fn removal(&mut self, room: &RoomName, name: &Name) {
        if let Some(group) = self.groups.get_mut(room).filter(|group| group.created)
            && !group.removals.contains(name)
        {
            group.removals.push(name.clone());
            self.changed = true;
        }
    }

    /// Whether anything changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// How many KeyPackage handouts the relay keeps (at most
    /// [`MAX_HANDED_OUT`]).
    pub fn handouts_kept(&self) -> usize {
        self.handouts.len()
    }
}

#[path = "delivery_codec.rs"]
mod codec;
#[path = "delivery_handouts.rs"]
mod handouts;
