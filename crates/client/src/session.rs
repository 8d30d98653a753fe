//! The session: everything the thread that called [`run`](super::run) owns
//! while chatting, and the loop that turns [`SessionEvent`]s into sends, prints and
//! status reports.
//!
//! It holds the one [`Cipher`] (sealing what is typed, opening what
//! arrives), the current [`Link`] and the [`Dialer`] that replaces it, the
//! [`Backlog`] of sealed messages waiting for a connection, and the
//! [`Printer`] for messages and status lines. It decides what the helper
//! threads cannot: whether a message fits the relay's `--max-frame`, when a
//! lost connection is retried and when it ends the session, when the linger
//! after the input is over, and how many messages were never sent.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Instant;

use bytes::BytesMut;

use super::error::WRITING_OUTPUT;
use super::input::InputLine;
use super::link::{Dialer, Link, LinkEnd};
use super::{ChatError, Options, SessionEvent, Status};
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::events::{ParsedEvent, ParsedKind};
use eaxchat_proto::sanitize;
use eaxchat_proto::wire::encoded_len;

/// The first frame of a connection that asks for structured events.
const HELLO: &[u8] = b"/hello eaxchat/1";

/// Most bytes of sealed messages held while reconnecting; past this, new
/// messages are refused rather than queued without bound.
const BACKLOG_LIMIT: usize = 1024 * 1024;

/// Where a session's words go: the line printer of pipe mode
/// ([`Printer`]) or the terminal app ([`super::tui`]), which also brings
/// keys in.
pub(super) trait Front {
    /// Shows one received plaintext: an `eaxchat/1` event, or raw text.
    fn show(&mut self, plaintext: &[u8]) -> io::Result<()>;
    /// Reports a change of the connection's state, or a refusal.
    fn report(&mut self, status: Status);
    /// A terminal event (the app only), and what the session is to do.
    fn ui(&mut self, _event: super::UiEvent) -> UiAction {
        UiAction::None
    }
    /// Lines the front end wants sent of its own accord (the app's `/who`).
    fn outgoing(&mut self) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// When the front end wants waking next (the app's countdown), if ever.
    fn next_tick(&self) -> Option<Instant> {
        None
    }
    /// The wake-up [`Front::next_tick`] asked for.
    fn tick(&mut self) {}
}

/// What a terminal event asks of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiAction {
    /// Nothing (the front end handled it).
    None,
    /// Send this line (typed, then Enter).
    Send(Vec<u8>),
    /// Quit now.
    Quit,
}

/// The session's state, owned by the thread that called [`run`](super::run).
pub(super) struct Session<'a, F> {
    options: &'a Options,
    cipher: Cipher,
    composer: Composer,
    backlog: Backlog,
    printer: F,
    dialer: Dialer,
    link: Option<Link>,
    linger_until: Option<Instant>,
    /// Messages refused or dropped so far.
    not_sent: usize,
}

impl<'a, F: Front> Session<'a, F> {
    /// A session for `options`, not yet connected: it seals and opens with
    /// `cipher`, shows and reports through `front`, and hands `events` to
    /// each connection's reader thread.
    pub(super) fn new(
        options: &'a Options,
        cipher: Cipher,
        front: F,
        events: Sender<SessionEvent>,
    ) -> Session<'a, F> {
        Session {
            options,
            cipher,
            composer: Composer::new(options.prefix()),
            backlog: Backlog::default(),
            printer: front,
            dialer: Dialer::new(&options.connect, options.max_frame, events),
            link: None,
            linger_until: None,
            not_sent: 0,
        }
    }

    /// Makes `stream`, the first connection, current and says so.
    pub(super) fn start(&mut self, stream: TcpStream) -> Result<(), ChatError> {
        let addr = self.open_link(stream)?;
        self.printer.report(Status::Connected { addr });
        Ok(())
    }

    /// Handles events from `inbox` until the session ends.
    pub(super) fn run(&mut self, inbox: &Receiver<SessionEvent>) -> Result<(), ChatError> {
        loop {
            let now = Instant::now();
            if self.linger_until.is_some_and(|at| at <= now) {
                return self.finish();
            }
            if self.dialer.take_due_retry(now) {
                self.retry()?;
                continue;
            }
            let wake = [
                self.linger_until,
                self.dialer.retry_at(),
                self.printer.next_tick(),
            ]
            .into_iter()
            .flatten()
            .min();
            let event = match wake {
                Some(at) => match inbox.recv_timeout(at.saturating_duration_since(now)) {
                    Ok(event) => event,
                    Err(RecvTimeoutError::Timeout) => {
                        self.printer.tick();
                        continue;
                    }
                    // The session holds a sender itself, so this cannot
                    // happen; ending is the only sensible answer if it did.
                    Err(RecvTimeoutError::Disconnected) => return self.finish(),
                },
                None => match inbox.recv() {
                    Ok(event) => event,
                    Err(_) => return self.finish(),
                },
            };
            if self.handle(event)? == Flow::Quit {
                return self.finish();
            }
            for line in self.printer.outgoing() {
                self.send(&line)?;
            }
        }
    }

    fn handle(&mut self, event: SessionEvent) -> Result<Flow, ChatError> {
        if let SessionEvent::Ui(event) = event {
            return match self.printer.ui(event) {
                UiAction::None => Ok(Flow::Go),
                UiAction::Send(line) => self.send(&line).map(|()| Flow::Go),
                UiAction::Quit => Ok(Flow::Quit),
            };
        }
        self.handle_io(event).map(|()| Flow::Go)
    }

    fn handle_io(&mut self, event: SessionEvent) -> Result<(), ChatError> {
        match event {
            SessionEvent::Typed(InputLine::Line(line)) => self.send(&line),
            SessionEvent::Typed(InputLine::TooLong(len)) => {
                self.refuse(self.composer.prefix_len() + len);
                Ok(())
            }
            SessionEvent::InputEnded(None) => {
                self.linger_until = Some(Instant::now() + self.options.linger);
                Ok(())
            }
            SessionEvent::InputEnded(Some(error)) => Err(ChatError::Io {
                what: "reading input",
                error,
            }),
            SessionEvent::Received { link, line } if self.is_current(link) => self.print(&line),
            SessionEvent::LinkEnded { link, end } if self.is_current(link) => self.link_ended(end),
            // From a connection already given up: nothing to do.
            SessionEvent::Received { .. }
            | SessionEvent::LinkEnded { .. }
            | SessionEvent::Ui(_) => Ok(()),
        }
    }

    fn is_current(&self, link: u64) -> bool {
        self.link
            .as_ref()
            .is_some_and(|current| current.id() == link)
    }

    /// Seals one typed line and sends it, or queues it while reconnecting.
    fn send(&mut self, line: &[u8]) -> Result<(), ChatError> {
        // An empty line is a stray Enter, not a message.
        if line.is_empty() {
            return Ok(());
        }
        let message = self.composer.compose(line);
        if encoded_len(message.len()) > self.options.max_frame {
            let len = message.len();
            self.refuse(len);
            return Ok(());
        }
        let frame_len = encoded_len(message.len()) + 1;
        if self.link.is_none() && !self.backlog.has_room_for(frame_len) {
            self.not_sent += 1;
            self.printer.report(Status::BacklogFull);
            return Ok(());
        }
        self.backlog.seal(&mut self.cipher, message);
        self.flush_backlog();
        Ok(())
    }

    fn refuse(&mut self, len: usize) {
        self.not_sent += 1;
        self.printer.report(Status::TooLong {
            len,
            max_len: self.options.max_message_len(),
            max_frame: self.options.max_frame,
        });
    }

    /// Writes the backlog to the connection, if there is one; returns how
    /// many messages went out. A failed write keeps the backlog (see
    /// [`Link::write_frames`]).
    fn flush_backlog(&mut self) -> usize {
        let Some(link) = &mut self.link else {
            return 0;
        };
        if self.backlog.is_empty() || !link.write_frames(self.backlog.frames()) {
            return 0;
        }
        self.backlog.clear()
    }

    /// Opens one received line and prints it as one safe line; a frame
    /// whose nonce this link accepted before is refused as a replay.
    fn print(&mut self, line: &[u8]) -> Result<(), ChatError> {
        let opened = self
            .cipher
            .open_frame(line)
            .map_err(|error| ChatError::BadFrame {
                addr: self.options.connect.clone(),
                error,
            })?;
        if let Some(link) = &mut self.link {
            if !link.accept_nonce(&opened.nonce) {
                return Err(ChatError::ReplayedFrame {
                    addr: self.options.connect.clone(),
                });
            }
            link.mark_received();
        }
        let message = self.cipher.plaintext(&opened);
        self.printer.show(message).map_err(|error| ChatError::Io {
            what: WRITING_OUTPUT,
            error,
        })
    }

    fn link_ended(&mut self, end: LinkEnd) -> Result<(), ChatError> {
        let addr = self.options.connect.clone();
        let Some(link) = self.link.take() else {
            return Ok(());
        };
        let error = match end {
            LinkEnd::TooLong(limit) => return Err(ChatError::LineTooLong { addr, limit }),
            LinkEnd::Closed => None,
            LinkEnd::Failed(error) => Some(error),
        };
        if !self.options.reconnect {
            return Err(ChatError::RelayClosed {
                addr,
                error,
                sent_only: link.sent_only(),
            });
        }
        let retry_in = self.dialer.schedule_after(&link);
        self.printer.report(Status::WentAway { error, retry_in });
        Ok(())
    }

    /// One reconnect attempt: the backlog goes out if it works, another
    /// attempt is scheduled if it does not.
    fn retry(&mut self) -> Result<(), ChatError> {
        match self.dialer.dial() {
            Ok(stream) => {
                let addr = self.open_link(stream)?;
                let sent = self.flush_backlog();
                self.printer.report(Status::Reconnected { addr, sent });
            }
            Err(error) => {
                let retry_in = self.dialer.schedule_retry();
                self.printer.report(Status::StillAway { error, retry_in });
            }
        }
        Ok(())
    }

    /// Makes `stream` the connection and starts its reader thread, and
    /// sends the first frame: `/hello eaxchat/1` for structured events, or
    /// (members mode without them) the empty message that identifies us.
    fn open_link(&mut self, stream: TcpStream) -> Result<SocketAddr, ChatError> {
        let (mut link, addr) = self.dialer.open(stream).map_err(|error| ChatError::Io {
            what: "setting up the connection",
            error,
        })?;
        let first: Option<&[u8]> = if self.options.events {
            Some(HELLO)
        } else if self.options.member {
            Some(b"")
        } else {
            None
        };
        if let Some(first) = first {
            // A failed write shuts the link down; its reader then reports
            // the end, which decides between reconnecting and failing.
            let mut frame = BytesMut::new();
            self.cipher.seal_into(first, &mut frame);
            link.write_frames(&frame);
        }
        self.link = Some(link);
        Ok(addr)
    }

    /// The input has ended and the linger is over.
    fn finish(&mut self) -> Result<(), ChatError> {
        self.link = None;
        let not_sent = self.not_sent + self.backlog.count();
        if not_sent > 0 {
            return Err(ChatError::NotSent { count: not_sent });
        }
        Ok(())
    }
}

/// Puts outgoing messages together: the `NAME: ` prefix, then the line, in
/// one reused buffer.
struct Composer {
    prefix: Vec<u8>,
    message: Vec<u8>,
}

impl Composer {
    fn new(prefix: Vec<u8>) -> Composer {
        Composer {
            prefix,
            message: Vec::new(),
        }
    }

    fn prefix_len(&self) -> usize {
        self.prefix.len()
    }

    /// The message for `line`, prefix included.
    fn compose(&mut self, line: &[u8]) -> &[u8] {
        self.message.clear();
        self.message.extend_from_slice(&self.prefix);
        self.message.extend_from_slice(line);
        &self.message
    }
}

/// Sealed lines waiting for a connection, and how many messages they are.
#[derive(Default)]
struct Backlog {
    frames: BytesMut,
    count: usize,
}

impl Backlog {
    /// Whether a frame of `frame_len` bytes (newline included) still fits
    /// under [`BACKLOG_LIMIT`].
    fn has_room_for(&self, frame_len: usize) -> bool {
        self.frames.len() + frame_len <= BACKLOG_LIMIT
    }

    /// Seals `message` onto the end as one line.
    fn seal(&mut self, cipher: &mut Cipher, message: &[u8]) {
        cipher.seal_into(message, &mut self.frames);
        self.count += 1;
    }

    fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    fn frames(&self) -> &[u8] {
        &self.frames
    }

    fn count(&self) -> usize {
        self.count
    }

    /// Empties the backlog once it went out; how many messages it held.
    fn clear(&mut self) -> usize {
        self.frames.clear();
        std::mem::take(&mut self.count)
    }
}

/// Whether the session goes on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Go,
    Quit,
}

/// Pipe mode's front end: received messages to the output, one line each,
/// status changes to the callback.
pub(super) struct Printer<'a, O> {
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
    pub(super) fn new(output: &'a mut O, status: &'a mut dyn FnMut(Status)) -> Printer<'a, O> {
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
