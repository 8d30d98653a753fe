//! The `/` commands applied to the relay, one command to a file: `join.rs`,
//! `part.rs`, `in_room.rs`, `topic.rs`, `rooms.rs`, `who.rs`, `me.rs`,
//! `msg.rs`, `nick.rs`, `help.rs` and `hello.rs`; `/history` is
//! `scrollback.rs`'s and `/quit` one call, both made here.
//!
//! A command arrives parsed ([`eaxchat_proto::commands`] owns the grammar,
//! and the usage each command shows); this module only dispatches it, and
//! each file below it does what its command does to rooms, names and
//! connections. They never parse a command and never seal a frame
//! themselves: what a command's effects are told to whom, and how, is the
//! chat layer's (`chat_layer.rs`), and the other relays hear of it through
//! `cluster.rs`.

mod hello;
mod help;
mod in_room;
mod join;
mod me;
mod msg;
mod nick;
mod part;
mod rooms;
mod topic;
mod who;

use std::io::Write;

use super::{CloseReason, ConnId, Relay};
use eaxchat_proto::commands::Command;

impl<T: Write> Relay<T> {
    /// Applies one parsed command of `from`'s.
    pub(super) fn apply_command(&mut self, from: ConnId, command: Command<'_>) {
        match command {
            Command::Join(room) => self.join(from, &room),
            Command::Part(room) => self.part_command(from, room.as_ref()),
            Command::In { room, rest } => self.in_room(from, &room, rest),
            Command::Topic(text) => self.topic(from, text),
            Command::History { before, limit } => self.history_page(from, before, limit),
            Command::Rooms => self.list_rooms(from),
            Command::Who => self.who(from),
            Command::Me(action) => self.action(from, action),
            Command::Msg { to, text } => self.private(from, &to, text),
            Command::Nick(name) => self.nick(from, name),
            Command::Help => self.help(from),
            Command::Quit => self.close(from, CloseReason::Quit),
            Command::Hello(_) => self.hello(from),
            Command::JoinE2e(room) => self.join_e2e(from, &room),
            Command::Mls { room, message } => self.mls(from, &room, &message),
            Command::KeyPackage(package) => self.key_package(from, &package),
            Command::KeyPackages(name) => self.key_packages(from, &name),
            Command::GroupInfo(room) => self.group_info(from, &room),
        }
    }
}
