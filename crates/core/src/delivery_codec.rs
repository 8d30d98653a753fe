//! The Delivery Service's state as bytes, for the caller to keep across
//! restarts: a version tag, then the groups, the KeyPackages, the waiting
//! Welcomes and the KeyPackages handed out (with the member each was
//! handed to), each length-prefixed. Reading checks every length and name,
//! and refuses trailing bytes. A state of the first version (`EAXDS\x01`,
//! handouts with no asker) still reads: its handouts count as one asker's.

use std::collections::VecDeque;

use super::{DeliveryService, DeviceKey, Group, Packages};
use eaxchat_e2e::ds_group::GroupView;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::name::Name;

const MAGIC: &[u8] = b"EAXDS\x02";
/// The first version: the same, but handouts without their asker.
const MAGIC_V1: &[u8] = b"EAXDS\x01";
const NONE: u32 = u32::MAX;

impl DeliveryService {
    /// Its state as bytes ([`DeliveryService::decode`] reads them back).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        let mut groups: Vec<_> = self.groups.iter().collect();
        groups.sort_by(|a, b| a.0.cmp(b.0));
        put_u32(&mut out, groups.len());
        for (room, group) in groups {
            put_short(&mut out, room.as_str().as_bytes());
            out.push(u8::from(group.created));
            out.extend_from_slice(&group.epoch.to_le_bytes());
            match &group.group_info {
                Some(info) => put_long(&mut out, info),
                None => out.extend_from_slice(&NONE.to_le_bytes()),
            }
            put_u32(&mut out, group.removals.len());
            for name in &group.removals {
                put_short(&mut out, name.as_str().as_bytes());
            }
            put_u32(&mut out, group.devices.len());
            for device in &group.devices {
                out.extend_from_slice(device);
            }
            match &group.view {
                Some(view) => put_long(&mut out, &view.encode()),
                None => out.extend_from_slice(&NONE.to_le_bytes()),
            }
        }
        let mut packages: Vec<_> = self.packages.iter().collect();
        packages.sort_by(|a, b| a.0.cmp(b.0));
        put_u32(&mut out, packages.len());
        for (device, packages) in packages {
            out.extend_from_slice(device);
            put_short(
                &mut out,
                packages
                    .name
                    .as_ref()
                    .map_or(&b""[..], |n| n.as_str().as_bytes()),
            );
            put_u32(&mut out, packages.kept.len());
            for (reference, bytes) in &packages.kept {
                put_short(&mut out, reference);
                put_long(&mut out, bytes);
            }
        }
        let mut welcomes: Vec<_> = self.welcomes.iter().collect();
        welcomes.sort_by(|a, b| a.0.cmp(b.0));
        put_u32(&mut out, welcomes.len());
        for (device, waiting) in welcomes {
            out.extend_from_slice(device);
            put_u32(&mut out, waiting.len());
            for (room, bytes) in waiting {
                put_short(&mut out, room.as_str().as_bytes());
                put_long(&mut out, bytes);
            }
        }
        let handouts = self.handouts.all();
        put_u32(&mut out, handouts.len());
        for (asker, reference, device) in handouts {
            put_short(
                &mut out,
                asker.as_ref().map_or(&b""[..], |n| n.as_str().as_bytes()),
            );
            put_short(&mut out, reference);
            out.extend_from_slice(&device);
        }
        out
    }

    /// Reads back what [`DeliveryService::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<DeliveryService, String> {
        let mut r = Reader(bytes);
        let first_version = match r.take(MAGIC.len())? {
            MAGIC => false,
            MAGIC_V1 => true,
            _ => return Err("not a Delivery Service state (or another version)".into()),
        };
        let mut ds = DeliveryService::default();
        for _ in 0..r.u32()? {
            let room = r.room()?;
            let created = r.u8()? == 1;
            let epoch = u64::from_le_bytes(r.array()?);
            let info_len = r.u32()?;
            let group_info = if info_len == NONE {
                None
            } else {
                Some(r.take(info_len as usize)?.into())
            };
            let mut removals = Vec::new();
            for _ in 0..r.u32()? {
                removals.push(r.name()?);
            }
            let mut devices = Vec::new();
            for _ in 0..r.u32()? {
                devices.push(r.array()?);
            }
            let view_len = r.u32()?;
            let view = if view_len == NONE {
                None
            } else {
                let bytes = r.take(view_len as usize)?;
                let group_id = eaxchat_e2e::group_id(room.as_str());
                let view = GroupView::decode(bytes, &group_id)
                    .map_err(|e| format!("the group of {room}: {e}"))?;
                Some(Box::new(view))
            };
            ds.groups.insert(
                room,
                Group {
                    created,
                    epoch,
                    group_info,
                    removals,
                    devices,
                    view,
                },
            );
        }
        for _ in 0..r.u32()? {
            let device: DeviceKey = r.array()?;
            let name = match r.short()? {
                b"" => None,
                name => Some(to_name(name)?),
            };
            let mut kept = VecDeque::new();
            for _ in 0..r.u32()? {
                let reference = r.short()?.into();
                kept.push_back((reference, r.long()?.into()));
            }
            ds.packages.insert(device, Packages { name, kept });
        }
        for _ in 0..r.u32()? {
            let device: DeviceKey = r.array()?;
            let mut waiting = VecDeque::new();
            for _ in 0..r.u32()? {
                let room = r.room()?;
                waiting.push_back((room, r.long()?.into()));
            }
            ds.welcomes.insert(device, waiting);
        }
        for _ in 0..r.u32()? {
            let asker = match first_version {
                true => None,
                false => match r.short()? {
                    b"" => None,
                    name => Some(to_name(name)?),
                },
            };
            let reference = r.short()?;
            let device: DeviceKey = r.array()?;
            ds.handouts.restore(&asker, reference, device);
        }
        if !r.0.is_empty() {
            return Err("trailing bytes after the Delivery Service state".into());
        }
        Ok(ds)
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_short(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_long(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn to_name(bytes: &[u8]) -> Result<Name, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "a name that is not UTF-8")?;
    Name::new(text).map_err(|e| format!("a bad name: {e}"))
}

/// Reads the state, every length checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("the Delivery Service state is cut short".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn short(&mut self) -> Result<&'a [u8], String> {
        let n = u16::from_le_bytes(self.array()?) as usize;
        self.take(n)
    }

    fn long(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn room(&mut self) -> Result<RoomName, String> {
        RoomName::new(self.short()?).map_err(|e| format!("a bad room name: {e}"))
    }

    fn name(&mut self) -> Result<Name, String> {
        to_name(self.short()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state kept by a relay before handouts recorded their asker: it
    /// reads, and its handouts still route Welcomes.
    #[test]
    fn a_state_of_the_first_version_still_reads() {
        let mut old = MAGIC_V1.to_vec();
        for _ in 0..3 {
            put_u32(&mut old, 0); // no groups, packages or Welcomes
        }
        put_u32(&mut old, 2);
        for (reference, device) in [(&b"ref-a"[..], [1u8; 32]), (&b"ref-b"[..], [2u8; 32])] {
            put_short(&mut old, reference);
            old.extend_from_slice(&device);
        }
        let ds = DeliveryService::decode(&old).expect("the first version reads");
        assert_eq!(ds.handouts_kept(), 2);
        assert_eq!(ds.handouts.device(b"ref-b"), Some([2; 32]));
        let again = ds.encode();
        assert!(again.starts_with(MAGIC));
        let read = DeliveryService::decode(&again).expect("reads back");
        assert_eq!(read.encode(), again);
        assert_eq!(read.handouts.device(b"ref-a"), Some([1; 32]));
    }

    #[test]
    fn handouts_keep_their_asker_across_a_restart() {
        let mut ds = DeliveryService::default();
        let alice = Name::new("alice").expect("a name");
        ds.handouts.hand(&Some(alice.clone()), b"ref-a", [1; 32]);
        ds.handouts.hand(&None, b"ref-n", [3; 32]);
        let bytes = ds.encode();
        let read = DeliveryService::decode(&bytes).expect("reads back");
        assert_eq!(read.encode(), bytes);
        let all = read.handouts.all();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], (&Some(alice), &b"ref-a"[..], [1; 32]));
        let mut cut = bytes.clone();
        cut.pop();
        assert!(DeliveryService::decode(&cut).is_err());
    }
}
