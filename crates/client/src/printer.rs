//! Pipe mode's front end ([`Printer`]): each received message or
//! `eaxchat/1` event printed as one sanitised line, status changes to a
//! callback. The terminal app is the other front end ([`super::tui`]).

use std::io::{self, Write};

use super::Status;
use super::session::Front;
use eaxchat_proto::events::{ParsedEvent, ParsedKind};
use eaxchat_proto::sanitize;

/// Pipe mode's front end: received messages to the output, one line each,
/// status changes to the callback.
pub(crate) struct Printer<'a, O> {
    output: &'a mut O,
    status: &'a mut dyn FnMut(Status),
    /// Reused: the message being printed, made safe.
    text: String,
    /// Reused: an event's line before it is made safe.
    line: Vec<u8>,
    /// Whether the relay vouches for names (its `welcome` said so), so that
    /// messages show as `NAME: TEXT`.
    members: bool,
}

impl<O: Write> Front for Printer<'_, O> {
    fn show(&mut self, plaintext: &[u8]) -> io::Result<()> {
        match ParsedEvent::parse(plaintext) {
            Some(event) => self.show_event(&event),
            None => self.print(plaintext),
        }
    }

    fn report(&mut self, status: Status) {
        (self.status)(status);
    }
}

impl<'a, O: Write> Printer<'a, O> {
    pub(crate) fn new(output: &'a mut O, status: &'a mut dyn FnMut(Status)) -> Printer<'a, O> {
        Printer {
            output,
            status,
            text: String::new(),
            line: Vec::new(),
            members: false,
        }
    }

    /// Shows one event as the line the relay's plain text would be. The
    /// `welcome` is not shown (a plain client never gets one): it says
    /// whether names are stamped.
    fn show_event(&mut self, event: &ParsedEvent) -> io::Result<()> {
        if let ParsedKind::Welcome { members, .. } = event.kind {
            self.members = members;
            return Ok(());
        }
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        event.plain(self.members, &mut line);
        let shown = self.print(&line);
        self.line = line;
        shown
    }

    /// Prints `message`, sanitised, as one line.
    fn print(&mut self, message: &[u8]) -> io::Result<()> {
        self.text.clear();
        sanitize::sanitize_into(message, &mut self.text);
        self.text.push('\n');
        // One write per message, so a message is never split by whatever
        // else reaches the terminal.
        self.output.write_all(self.text.as_bytes())?;
        self.output.flush()
    }
}
