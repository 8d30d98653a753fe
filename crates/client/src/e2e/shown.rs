//! The lines the driver shows, as `eaxchat/1` events built with the
//! protocol crate's own writer, so that both front ends show them like the
//! relay's: a decrypted message as a `message` from its sender (with the
//! relay's id and time, for scrollback), a notice, an error (loud: new
//! device keys, refusals), and the safety number of `/verify`.

use eaxchat_e2e::{hex, safety_number};
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::events::{Event, ParsedEvent};
use eaxchat_proto::name::Name;

use super::E2eDriver;

fn room_name(room: Option<&str>) -> Option<RoomName> {
    room.and_then(|room| RoomName::new(room.as_bytes()).ok())
}

fn json(event: &Event<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    event.json(&mut out);
    out
}

/// A notice (`* …`) about `room`.
pub(super) fn notice(room: Option<&str>, text: &str) -> Vec<u8> {
    let room = room_name(room);
    json(&Event::Notice {
        room: room.as_ref(),
        text,
    })
}

/// A loud line about `room` (shown as an error).
pub(super) fn error(room: Option<&str>, text: &str) -> Vec<u8> {
    let room = room_name(room);
    json(&Event::Error {
        room: room.as_ref(),
        text,
    })
}

/// This device waits for a Welcome into `room`.
pub(super) fn waiting(room: &str) -> Vec<u8> {
    notice(
        Some(room),
        &format!(
            "* #{room} is end-to-end: waiting to be added to its group by a member who is online \
             (with none, this device joins by itself in a few seconds)"
        ),
    )
}

/// The line for a message this device cannot read because it was sent
/// before it joined: a message from its sender, numbered as the relay
/// numbered it, saying so.
pub(super) fn before_joined(room: &str, event: &ParsedEvent) -> Vec<u8> {
    let from = event.from.as_deref().unwrap_or("someone");
    message(
        room,
        from,
        "(sent before you joined: not readable, by design)",
        event,
    )
}

/// A decrypted message from `from`, as the relay would have sent it;
/// `/me …` is an action.
pub(super) fn message(room: &str, from: &str, text: &str, event: &ParsedEvent) -> Vec<u8> {
    let Some(room_name) = room_name(Some(room)) else {
        return notice(None, text);
    };
    let name = Name::new(from).ok();
    let (text, action) = match text.strip_prefix("/me ") {
        Some(action) => (action, true),
        None => (text, false),
    };
    json(&Event::Message {
        room: &room_name,
        from: name.as_ref(),
        text: text.as_bytes(),
        ts: event.ts.unwrap_or_default(),
        history: event.history,
        action,
        stamped: true,
        id: event.id.unwrap_or_default(),
    })
}

impl E2eDriver {
    /// The device is open and its KeyPackages are at the relay.
    pub(super) fn ready(&self) -> Vec<u8> {
        let key = self
            .device
            .as_ref()
            .map(|d| hex(d.rooms.device().signature_key()))
            .unwrap_or_default();
        let short: String = key.chars().take(16).collect();
        notice(
            None,
            &format!(
                "* end-to-end rooms ready on this device (key {short}…); /join ROOM --e2e makes one"
            ),
        )
    }

    /// `/verify NAME`: the safety number of this member and NAME over the
    /// device keys pinned, to compare out of band.
    pub(super) fn verify(&self, name: &str, room: Option<&str>) -> Vec<u8> {
        let Some(device) = &self.device else {
            return error(
                room,
                "! /verify: end-to-end rooms are not open on this device",
            );
        };
        if name.is_empty() {
            return error(room, "! usage: /verify NAME");
        }
        let theirs = device.pins.keys(name);
        if theirs.is_empty() {
            return error(
                room,
                &format!(
                    "! /verify {name}: no device of {name}'s seen in your end-to-end rooms yet"
                ),
            );
        }
        let mut ours = device.pins.keys(&device.name);
        let own = device.rooms.device().signature_key().to_vec();
        if !ours.contains(&own) {
            ours.push(own);
            ours.sort();
        }
        let number = safety_number((&device.name, &ours), (name, &theirs));
        let count = theirs.len();
        let plural = if count == 1 { "" } else { "s" };
        notice(
            room,
            &format!(
                "* safety number with {name} ({count} device{plural}): {number} — compare it \
                 with {name} out of band \
                 (in person, or on a call you trust); if both of you see the same digits, \
                 no one sits between your devices"
            ),
        )
    }
}
