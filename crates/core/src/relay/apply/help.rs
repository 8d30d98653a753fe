//! `/help`: every command's usage, as the grammar gives it. It reads
//! nothing of the relay's state and changes none.

use std::io::Write;

use crate::relay::{ConnId, Relay};
use eaxchat_proto::commands::CommandKind;
use eaxchat_proto::events::Event;

impl<T: Write> Relay<T> {
    /// Tells `from` every command's usage.
    pub(super) fn help(&mut self, from: ConnId) {
        let usages: Vec<&str> = CommandKind::ALL.iter().map(|kind| kind.usage()).collect();
        let text = format!(
            "* commands: {}; a message starting // sends a leading /",
            usages.join(", ")
        );
        self.send_event(from, &Event::notice(&text));
    }
}
