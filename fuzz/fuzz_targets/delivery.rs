//! Fuzz target `delivery`: what members' devices could send the relay's
//! Delivery Service of end-to-end rooms (`eaxchat_core::delivery`).
//!
//! Input: a sequence of operations on one Delivery Service, each
//! `[op][a][b][len: u16 LE][len bytes]` (group messages, KeyPackages; `a`
//! and `b` pick rooms, devices and names). The seeds in
//! `corpus/delivery/seed-*` are a real room's life (made with
//! `cargo run -p eaxchat-core --example delivery_seeds`), so the fuzzer
//! mutates real MLS messages. Checked: nothing panics; a group message taken to be relayed
//! (a commit, a proposal or an application message) reads as one of that
//! kind for the room's own group, at the epoch the service had; a commit
//! taken moves the group on by exactly one; a refused message changes
//! nothing; a Welcome goes only to devices the service handed a
//! KeyPackage of; and the state encodes to bytes that decode to the same
//! state, whose encoding is the same bytes, after every step.

#![no_main]

use eaxchat_core::delivery::{DeliveryService, Taken};
use eaxchat_e2e::ds::{self, Peeked};
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::name::Name;
use libfuzzer_sys::fuzz_target;

fn room(n: u8) -> RoomName {
    RoomName::new(format!("r{}", n % 4).as_bytes()).expect("a room")
}

fn name(n: u8) -> Name {
    Name::new(["alice", "bob", "carol"][usize::from(n % 3)]).expect("a name")
}

fn device(n: u8) -> [u8; 32] {
    [n % 8; 32]
}

/// The next operation's `(op, a, b, bytes)`, if a whole one is left.
fn next<'a>(data: &mut &'a [u8]) -> Option<(u8, u8, u8, &'a [u8])> {
    let [op, a, b, lo, hi, ref rest @ ..] = **data else {
        return None;
    };
    let len = usize::from(u16::from_le_bytes([lo, hi])).min(rest.len());
    let (bytes, rest) = rest.split_at(len);
    *data = rest;
    Some((op, a, b, bytes))
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let mut service = DeliveryService::default();
    let mut handed = Vec::new();
    for _ in 0..64 {
        let Some((op, a, b, bytes)) = next(&mut data) else {
            break;
        };
        match op % 6 {
            0 => {
                let _ = service.make_room(&room(a));
            }
            1 => {
                let room = room(a);
                let (epoch, before) = (service.epoch(&room), service.encode());
                match service.take(&room, Some(device(b)), bytes) {
                    Ok(Taken::Commit { epoch: after }) => {
                        let Ok(Peeked::Commit { group, epoch: at }) = ds::peek(bytes) else {
                            panic!("a commit taken that does not read as one");
                        };
                        assert_eq!(group, eaxchat_e2e::group_id(room.as_str()));
                        assert_eq!((Some(at), after), (epoch, at + 1));
                    }
                    Ok(Taken::Proposal | Taken::Application) => {
                        let group = match ds::peek(bytes) {
                            Ok(Peeked::Proposal { group, .. } | Peeked::Application { group, .. }) => {
                                group
                            }
                            other => panic!("relayed, yet read as {other:?}"),
                        };
                        assert_eq!(group, eaxchat_e2e::group_id(room.as_str()));
                        assert_eq!(service.epoch(&room), epoch);
                    }
                    Ok(Taken::Welcome { devices, unknown }) => {
                        let Ok(Peeked::Welcome { for_key_packages }) = ds::peek(bytes) else {
                            panic!("taken as a Welcome, yet not read as one");
                        };
                        assert!(devices.len() + unknown <= for_key_packages.len());
                        for device in &devices {
                            assert!(
                                handed.contains(device),
                                "a Welcome for a device never handed a KeyPackage"
                            );
                        }
                    }
                    Ok(Taken::Created | Taken::GroupInfo) => {
                        assert!(matches!(ds::peek(bytes), Ok(Peeked::GroupInfo { .. })));
                    }
                    Err(_) => assert_eq!(service.encode(), before, "a refusal changed the state"),
                }
            }
            2 => {
                let _ = service.upload(device(a), &name(b), bytes);
            }
            3 => {
                let devices: Vec<[u8; 32]> = bytes.iter().take(8).map(|&d| device(d)).collect();
                if !service.packages_of(Some(&name(b)), &devices).is_empty() {
                    handed.extend(devices);
                }
            }
            4 => {
                let _ = service.welcomes_for(&device(a));
            }
            _ => service.removal(&room(a), &name(b)),
        }
        let bytes = service.encode();
        let again = DeliveryService::decode(&bytes).expect("its own state reads back");
        assert_eq!(again.encode(), bytes);
    }
});
