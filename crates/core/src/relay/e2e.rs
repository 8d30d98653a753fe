//! End-to-end rooms in the relay: `/join ROOM --e2e`, the group messages
//! members' devices send (`/mls`), their KeyPackages (`/keypackage`,
//! `/keypackages`) and GroupInfo (`/groupinfo`), and what the rooms are
//! told when their membership changes.
//!
//! The rules of the groups are the Delivery Service's
//! ([`crate::delivery`]); this file applies its answers: a group message
//! taken is relayed as it came, in `eaxchat/1`'s `mls` event, to everyone
//! else in the room, and kept in the room's history (and so in the
//! message log) as the base64 it came as: the relay holds ciphertext only.
//! A commit's sender is told it was taken, or why not. A Welcome goes only
//! to the devices it is for, now or when they next connect; its sender is
//! told when it names KeyPackages the relay no longer knows.
//!
//! End-to-end rooms need members' devices (session mode), clients that
//! speak `eaxchat/1`, and a relay that is not in a cluster (the group's
//! order is this relay's). Text, `/me` and their history never enter one:
//! a room never changes mode.

use std::io::Write;

use base64::Engine as _;
use log::info;

use super::MAX_COMMAND_TEXT;
use super::batch::Batch;
use super::{ConnId, Mode, Relay};
use crate::delivery::{DeliveryService, DeviceKey, MAX_E2E_ROOMS, Taken};
use crate::history::EntryKind;
use crate::rooms::RoomId;
use eaxchat_proto::commands::{self, Command, Input, RoomName};
use eaxchat_proto::events::{Event, GroupNotice};
use eaxchat_proto::name::Name;

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl<T: Write> Relay<T> {
    /// The Delivery Service: every end-to-end room's group.
    pub fn delivery(&self) -> &DeliveryService {
        &self.chat.delivery
    }

    /// Sets the Delivery Service's state (read back at start). Rooms the
    /// message log showed to be end-to-end stay so.
    pub fn restore_delivery(&mut self, delivery: DeliveryService) {
        let marked: Vec<RoomName> = self.chat.delivery.rooms().cloned().collect();
        self.chat.delivery = delivery;
        for room in &marked {
            self.chat.delivery.make_room(room);
        }
    }

    /// Whether the Delivery Service's state changed since the last call.
    pub fn take_delivery_changed(&mut self) -> bool {
        self.chat.delivery.take_changed()
    }

    /// Whether `room` is end-to-end.
    pub(super) fn is_e2e(&self, room: RoomId) -> bool {
        self.chat
            .rooms
            .get(room)
            .is_some_and(|r| self.chat.delivery.is_e2e(r.name()))
    }

    /// Why `from` cannot be in an end-to-end room, if it cannot.
    fn e2e_refusal(&self, from: ConnId) -> Option<&'static str> {
        if !self.is_sessions() {
            Some("error: end-to-end rooms need a relay with members' devices (session mode)")
        } else if !self.is_multi_room(from) {
            Some("error: end-to-end rooms need a client that speaks eaxchat/1")
        } else if self.cluster.is_some() {
            Some("error: end-to-end rooms are not kept across a cluster; use a relay of its own")
        } else {
            None
        }
    }

    /// `/join ROOM --e2e`: makes `name` an end-to-end room if it is new,
    /// and joins it.
    pub(super) fn join_e2e(&mut self, from: ConnId, name: &RoomName) {
        if let Some(why) = self.e2e_refusal(from) {
            self.send_event(from, &Event::error(why));
            return;
        }
        if *name == self.chat.rooms.config().default_room {
            let text = format!(
                "error: {name} is where everyone starts, plain clients too: it cannot be end-to-end"
            );
            self.room_error(from, Some(name), &text);
            return;
        }
        if self.chat.rooms.find(name).is_some() && !self.chat.delivery.is_e2e(name) {
            let text = format!(
                "error: {name} is not end-to-end, and a room never changes mode; pick another name"
            );
            self.room_error(from, Some(name), &text);
            return;
        }
        if !self.chat.delivery.make_room(name) {
            let text = format!(
                "error: the relay keeps at most {MAX_E2E_ROOMS} end-to-end rooms; join one that exists"
            );
            self.room_error(from, Some(name), &text);
            return;
        }
        info!("conn {from}: made or joined end-to-end room {name}");
        self.join(from, name);
    }

    /// Whether `from` may join room `name`: any connection may join a
    /// relayed room; an end-to-end one takes what [`Self::e2e_refusal`]
    /// allows.
    pub(super) fn may_join(&mut self, from: ConnId, name: &RoomName) -> bool {
        if !self.chat.delivery.is_e2e(name) {
            return true;
        }
        match self.e2e_refusal(from) {
            Some(why) => {
                self.room_error(from, Some(name), why);
                false
            }
            None => true,
        }
    }

    /// `from` came into end-to-end room `room`: the room is told that its
    /// member's devices are to be added, and that it reads from now on.
    pub(super) fn e2e_joined(&mut self, from: ConnId, room: RoomId) {
        let (Some(name), Some(room_name)) = (
            self.name_of(from).cloned(),
            self.chat.rooms.get(room).map(|r| r.name().clone()),
        ) else {
            return;
        };
        if let Some(device) = self.device_of(from) {
            self.hand_welcomes(&device);
        }
        let text =
            format!("* {name} joined {room_name}: they read from now on, not what was said before");
        self.tell_room(
            room,
            None,
            &Event::Notice {
                room: Some(&room_name),
                text: &text,
            },
        );
        if self.chat.delivery.epoch(&room_name).is_some() {
            self.tell_room(
                room,
                Some(from),
                &Event::Group {
                    what: GroupNotice::Add(&name),
                    room: &room_name,
                },
            );
        }
    }

    /// `from` said `/hello`, or uploaded its device's first KeyPackage:
    /// once the device has one to be added with, each end-to-end room it
    /// is in whose group the relay does not know it to be in is told that
    /// its member's devices are to be added. A new device of a member is
    /// never added quietly: the members add it, and their clients show it.
    pub(super) fn e2e_device_arrived(&mut self, from: ConnId) {
        let (Some(device), Some(name)) = (self.device_of(from), self.name_of(from).cloned()) else {
            return;
        };
        if self.chat.delivery.packages_kept(&device) == 0 {
            return;
        }
        let rooms: Vec<RoomId> = self
            .peers
            .get(from)
            .map(|peer| peer.chat.rooms.clone())
            .unwrap_or_default();
        for room in rooms {
            let Some(room_name) = self.chat.rooms.get(room).map(|r| r.name().clone()) else {
                continue;
            };
            let delivery = &self.chat.delivery;
            if delivery.epoch(&room_name).is_none() || delivery.knows_device(&room_name, &device) {
                continue;
            }
            self.tell_room(
                room,
                Some(from),
                &Event::Group {
                    what: GroupNotice::Add(&name),
                    room: &room_name,
                },
            );
        }
    }

    /// Member `name` left end-to-end room `room_name` (or the relay): the
    /// next commit must remove its devices, and the room is told so.
    pub(super) fn e2e_left(&mut self, name: &Name, room_name: &RoomName) {
        if !self.chat.delivery.is_e2e(room_name) {
            return;
        }
        self.chat.delivery.removal(room_name, name);
        if let Some(room) = self.chat.rooms.find(room_name) {
            self.tell_room(
                room,
                None,
                &Event::Group {
                    what: GroupNotice::Remove(name),
                    room: room_name,
                },
            );
        }
    }

    /// End-to-end room `room` whose group was never made, and which is now
    /// empty, is forgotten: it is made again by the next `--e2e` join.
    pub(super) fn forget_unmade_e2e(&mut self, room: &RoomName) {
        let empty = self
            .chat
            .rooms
            .find(room)
            .and_then(|id| self.chat.rooms.get(id))
            .is_none_or(|r| r.is_empty());
        if empty && self.chat.delivery.epoch(room).is_none() {
            self.chat.delivery.forget_room(room);
        }
    }

    /// Members removed from the relay leave every end-to-end room.
    pub(super) fn e2e_members_gone(&mut self, names: &[Name]) {
        let rooms: Vec<RoomName> = self.chat.delivery.rooms().cloned().collect();
        for name in names {
            for room in &rooms {
                self.e2e_left(name, room);
            }
        }
    }

    /// `/mls ROOM BASE64` as a command: a group message of `from`'s for
    /// `room_name`, relayed on its own.
    pub(super) fn mls(&mut self, from: ConnId, room_name: &RoomName, message: &[u8]) {
        self.group_message(from, room_name, message, None);
    }

    /// A frame of `from`'s whose plaintext starts `/mls `: when it is for
    /// `from`'s current room, its group message joins `batch` (relayed with
    /// the rest of the read, as text is); otherwise it is a command of its
    /// own. Returns whether it was taken here.
    pub(super) fn take_group_frame(
        &mut self,
        from: ConnId,
        text: &[u8],
        batch: &mut Batch,
    ) -> bool {
        let arrived = self.peers.get(from).is_some_and(|peer| peer.chat.arrived);
        let Ok(Input::Command(Command::Mls { room, message })) =
            commands::parse(text, MAX_COMMAND_TEXT)
        else {
            return false;
        };
        if !arrived || self.room_of(from) != Some(&room) {
            return false;
        }
        if !self.flood_allows(from) {
            return true;
        }
        self.stats.commands += 1;
        self.group_message(from, &room, &message, Some(batch));
        true
    }

    /// A group message of `from`'s for `room_name`, taken by the Delivery
    /// Service or refused. Relayed messages join `batch` when there is one
    /// (it is for `from`'s current room), or go on their own.
    fn group_message(
        &mut self,
        from: ConnId,
        room_name: &RoomName,
        message: &[u8],
        batch: Option<&mut Batch>,
    ) {
        let Some(room) = self
            .chat
            .rooms
            .find(room_name)
            .filter(|&room| self.is_in(from, room))
        else {
            let text = format!("error: you are not in {room_name}");
            self.room_error(from, Some(room_name), &text);
            return;
        };
        let device = self.device_of(from);
        let taken = match self.chat.delivery.take(room_name, device, message) {
            Ok(taken) => taken,
            Err(why) => {
                let epoch = self.chat.delivery.epoch(room_name).unwrap_or(0);
                let text = why.to_string();
                self.send_event(
                    from,
                    &Event::Group {
                        what: GroupNotice::Refused { epoch, text: &text },
                        room: room_name,
                    },
                );
                return;
            }
        };
        match taken {
            Taken::Commit { epoch } => {
                self.relay_group_message(from, room, message, batch);
                self.send_event(
                    from,
                    &Event::Group {
                        what: GroupNotice::Taken { epoch },
                        room: room_name,
                    },
                );
            }
            Taken::Proposal | Taken::Application => {
                self.relay_group_message(from, room, message, batch);
            }
            Taken::Created => self.send_event(
                from,
                &Event::Group {
                    what: GroupNotice::Taken { epoch: 0 },
                    room: room_name,
                },
            ),
            Taken::GroupInfo => {}
            Taken::Welcome { devices, unknown } => {
                for device in devices {
                    self.hand_welcomes(&device);
                }
                if unknown > 0 {
                    let text = format!(
                        "error: your Welcome to {room_name} names {unknown} KeyPackage(s) this \
                         relay no longer knows (handed out too long ago): those devices will \
                         not get it; they can still join by External Commit"
                    );
                    self.room_error(from, Some(room_name), &text);
                }
            }
        }
    }

    /// Relays a group message to everyone else in `room`, and keeps it in
    /// the room's history as the base64 it came as: onto `batch` (one of
    /// group messages only: what it held before goes first), or on its own.
    fn relay_group_message(
        &mut self,
        from: ConnId,
        room: RoomId,
        message: &[u8],
        batch: Option<&mut Batch>,
    ) {
        let text = BASE64.encode(message);
        let sender = self.name_of(from).cloned();
        let stamp = sender
            .as_ref()
            .map(|name| format!("{name}: "))
            .unwrap_or_default();
        let ts = self.wall_millis();
        self.remember_in(room, sender.clone(), text.as_bytes(), EntryKind::Mls, ts);
        match batch {
            Some(batch) => {
                if batch.count > 0 && batch.kind != EntryKind::Mls {
                    let before = batch.take();
                    self.queue_batch(from, &before);
                }
                batch.kind = EntryKind::Mls;
                batch.push_stamped(stamp.as_bytes(), text.as_bytes());
            }
            None => {
                let mut alone = Batch::new(ts);
                alone.kind = EntryKind::Mls;
                alone.push_stamped(stamp.as_bytes(), text.as_bytes());
                self.stats.frames_in += 1;
                self.queue_in_room(room, Some(from), sender.as_ref(), &alone);
            }
        }
    }

    /// Sends the connected devices `device` the Welcomes waiting for it.
    pub(super) fn hand_welcomes(&mut self, device: &DeviceKey) {
        let conns: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(_, peer)| {
                peer.chat.events
                    && peer
                        .session
                        .device()
                        .is_some_and(|k| k.as_bytes() == device)
            })
            .map(|(id, _)| id)
            .collect();
        if conns.is_empty() {
            return;
        }
        let ts = self.wall_millis();
        for (room, welcome) in self.chat.delivery.welcomes_for(device) {
            // Only into the room: a Welcome for a room the device's member
            // is not in waits until it is.
            let here: Vec<ConnId> = match self.chat.rooms.find(&room) {
                Some(id) => conns
                    .iter()
                    .copied()
                    .filter(|&c| self.is_in(c, id))
                    .collect(),
                None => Vec::new(),
            };
            if here.is_empty() {
                self.chat.delivery.hold_welcome(*device, &room, &welcome);
                continue;
            }
            let data = BASE64.encode(&welcome);
            let sender = None;
            for &id in &here {
                self.send_event(
                    id,
                    &Event::Mls {
                        room: &room,
                        from: sender,
                        data: data.as_bytes(),
                        ts,
                        id: None,
                        history: false,
                    },
                );
            }
        }
    }

    /// `/keypackage BASE64`: a KeyPackage of `from`'s device, kept.
    pub(super) fn key_package(&mut self, from: ConnId, package: &[u8]) {
        let (Some(device), Some(name)) = (self.device_of(from), self.name_of(from).cloned()) else {
            self.send_event(
                from,
                &Event::error("error: KeyPackages are kept for members' devices (session mode)"),
            );
            return;
        };
        match self.chat.delivery.upload(device, &name, package) {
            Ok(()) => {
                let kept = self.chat.delivery.packages_kept(&device);
                let text = format!("* KeyPackage kept ({kept} for this device)");
                self.send_event(from, &Event::notice(&text));
                if kept == 1 {
                    self.e2e_device_arrived(from);
                }
            }
            Err(why) => self.send_event(from, &Event::error(&why.to_string())),
        }
    }

    /// `/keypackages NAME`: one KeyPackage of each of `name`'s devices.
    pub(super) fn key_packages(&mut self, from: ConnId, name: &Name) {
        let devices: Vec<DeviceKey> = match &self.mode {
            Mode::Sessions(roster) => roster
                .members()
                .filter(|(member, _)| *member == name)
                .flat_map(|(_, keys)| keys.iter().map(|key| *key.as_bytes()))
                .collect(),
            _ => Vec::new(),
        };
        let asker = self.name_of(from).cloned();
        let packages: Vec<String> = self
            .chat
            .delivery
            .packages_of(asker.as_ref(), &devices)
            .iter()
            .map(|package| BASE64.encode(package))
            .collect();
        let packages: Vec<&[u8]> = packages.iter().map(|p| p.as_bytes()).collect();
        self.send_event(
            from,
            &Event::KeyPackages {
                name,
                packages: &packages,
            },
        );
    }

    /// `/groupinfo ROOM`: the stored GroupInfo of one of `from`'s rooms.
    pub(super) fn group_info(&mut self, from: ConnId, room_name: &RoomName) {
        let in_room = self
            .chat
            .rooms
            .find(room_name)
            .is_some_and(|room| self.is_in(from, room));
        let info = self
            .chat
            .delivery
            .group_info(room_name)
            .map(|(epoch, info)| (epoch, BASE64.encode(info)));
        match (in_room, info) {
            (true, Some((epoch, data))) => self.send_event(
                from,
                &Event::GroupInfo {
                    room: room_name,
                    epoch,
                    data: data.as_bytes(),
                },
            ),
            (true, None) => {
                let text = format!("error: {room_name} has no GroupInfo now; ask again later");
                self.room_error(from, Some(room_name), &text);
            }
            (false, _) => {
                let text = format!("error: you are not in {room_name}");
                self.room_error(from, Some(room_name), &text);
            }
        }
    }

    /// The device key of `from`'s session, if it has one.
    pub(super) fn device_of(&self, from: ConnId) -> Option<DeviceKey> {
        let peer = self.peers.get(from)?;
        peer.session.device().map(|key| *key.as_bytes())
    }
}
