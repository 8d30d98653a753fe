//! `/msg NAME TEXT`: a private message, to every connection going by the
//! name here and, in a cluster, on the other relays, echoed to its sender.
//! It is never kept in a room's history or the message log.
//! A text holding a line break is refused: it would forge a line.

use std::io::Write;

use crate::relay::{ConnId, Relay};
use eaxchat_proto::events::Event;
use eaxchat_proto::name::Name;
use eaxchat_proto::sanitize::has_line_break;

impl<T: Write> Relay<T> {
    /// Sends `text` from `from` to whoever goes by `to`.
    pub(super) fn private(&mut self, from: ConnId, to: &Name, text: &[u8]) {
        if has_line_break(text) {
            self.refuse_line_break(from);
            return;
        }
        let mut recipients = self.connections_named(to);
        recipients.retain(|&id| id != from);
        let elsewhere = self.remote_has(to);
        if recipients.is_empty() && !elsewhere {
            let text = format!("error: no one named {to} is here");
            self.send_event(from, &Event::error(&text));
            return;
        }
        let sender = self.name_of(from).cloned();
        if elsewhere {
            self.publish_private(sender.as_ref(), to, text);
        }
        let ts = self.wall_millis();
        for id in recipients {
            self.send_event(
                id,
                &Event::Private {
                    from: sender.as_ref(),
                    to,
                    text,
                    ts,
                    echo: false,
                },
            );
        }
        self.send_event(
            from,
            &Event::Private {
                from: sender.as_ref(),
                to,
                text,
                ts,
                echo: true,
            },
        );
    }
}
