//! The session: everything the thread that called [`run`](super::run) owns
//! while chatting, and the loop that turns [`SessionEvent`]s into sends, prints and
//! status reports.
//!
//! It holds the [`Keys`] (the shared key's cipher, or the current
//! connection's session: sealing what is typed, opening what arrives), the
//! current [`Link`] and the [`Dialer`] that replaces it, the [`Backlog`] of
//! messages waiting for a connection, and the [`Printer`] for messages and
//! status lines. It decides what the helper threads cannot: whether a
//! message fits the relay's `--max-frame`, when a lost connection is
//! retried and when it ends the session, when a relay key is pinned (only
//! after a handshake proved it, whether it was given or trusted on first
//! use), when the linger after the input is over, and how many messages
//! were never sent.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Instant;

use bytes::BytesMut;

use super::e2e::{E2eDriver, Output};
use super::error::{SessionInfo, WRITING_OUTPUT};
use super::handshake::HandshakeError;
use super::input::InputLine;
use super::keys::Keys;
use super::known_relays::{self, KnownRelaysError, PinSource, RelayPin};
use super::link::{Dialer, Link, LinkEnd};
use super::{ChatError, Options, SessionEvent, Status};
use eaxchat_proto::wire::encoded_len;

/// The first frame of a connection that asks for structured events.
const HELLO: &[u8] = b"/hello eaxchat/1";

/// Most bytes of messages held while reconnecting, counted as the lines
/// they will be once sealed; past this, new messages are refused rather
/// than queued without bound.
const BACKLOG_LIMIT: usize = 1024 * 1024;

/// Where a session's words go: the line printer of pipe mode
/// ([`Printer`]) or the terminal app ([`super::tui`]), which also brings
/// keys in.
pub(crate) trait Front {
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
    /// A history message of `room` that shows as nothing (an end-to-end
    /// room's commit): the app counts it among the history announced.
    fn history_skipped(&mut self, _room: &str) {}
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
    keys: Keys<'a>,
    composer: Composer,
    backlog: Backlog,
    printer: F,
    dialer: Dialer,
    link: Option<Link>,
    linger_until: Option<Instant>,
    /// Messages refused or dropped so far.
    not_sent: usize,
    /// End-to-end rooms, with an identity's state directory.
    e2e: Option<E2eDriver>,
}

impl<'a, F: Front> Session<'a, F> {
    /// A session for `options`, not yet connected: it seals and opens with
    /// `keys`, shows and reports through `front`, and hands `events` to
    /// each connection's reader thread.
    pub(super) fn new(
        options: &'a Options,
        keys: Keys<'a>,
        front: F,
        events: Sender<SessionEvent>,
    ) -> Session<'a, F> {
        Session {
            options,
            keys,
            composer: Composer::new(options.prefix()),
            backlog: Backlog::default(),
            printer: front,
            dialer: Dialer::new(&options.connect, options.max_frame, events),
            link: None,
            linger_until: None,
            not_sent: 0,
            e2e: options.e2e_dir.clone().map(E2eDriver::new),
        }
    }

    /// Makes `stream`, the first connection, current and says so; with an
    /// identity its handshake is done, and made `session`.
    pub(super) fn start(
        &mut self,
        stream: TcpStream,
        session: Option<SessionInfo>,
    ) -> Result<(), ChatError> {
        let addr = self.open_link(stream)?;
        self.printer.report(Status::Connected {
            addr,
            session: session.clone(),
        });
        self.pin_if_new(session.as_ref())
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
            let e2e_at = self.e2e.as_ref().and_then(E2eDriver::poll_timeout);
            if let Some(e2e) = &mut self.e2e
                && e2e_at.is_some_and(|at| at <= now)
            {
                let out = e2e.handle_timeout(now);
                self.apply(out)?;
                continue;
            }
            let wake = [
                self.linger_until,
                self.dialer.retry_at(),
                self.printer.next_tick(),
                e2e_at,
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
                self.send_as_is(&line)?;
            }
        }
    }

    fn handle(&mut self, event: SessionEvent) -> Result<Flow, ChatError> {
        if let SessionEvent::Ui(event) = event {
            return match self.printer.ui(event) {
                UiAction::None => Ok(Flow::Go),
                UiAction::Send(line) => self.send_as_is(&line).map(|()| Flow::Go),
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
        self.send_with(line, true)
    }

    /// Sends a line from the terminal app, which puts any `NAME: ` inside
    /// its `/in ROOM …` itself (and never in front of a command).
    fn send_as_is(&mut self, line: &[u8]) -> Result<(), ChatError> {
        self.send_with(line, false)
    }

    /// A typed line: the end-to-end driver's if it is text for an
    /// end-to-end room (or `/verify`), else sent.
    fn send_with(&mut self, line: &[u8], prefixed: bool) -> Result<(), ChatError> {
        let out = match &mut self.e2e {
            Some(e2e) => e2e.typed(line),
            None => Output::default(),
        };
        if !out.consumed {
            self.queue_line(line, prefixed)?;
        }
        self.apply(out)
    }

    /// Shows and sends what the end-to-end driver asked for.
    fn apply(&mut self, out: Output) -> Result<(), ChatError> {
        for event in &out.show {
            self.printer.show(event).map_err(|error| ChatError::Io {
                what: WRITING_OUTPUT,
                error,
            })?;
        }
        for line in &out.send {
            self.queue_line(line, false)?;
        }
        Ok(())
    }

    fn queue_line(&mut self, line: &[u8], prefixed: bool) -> Result<(), ChatError> {
        // An empty line is a stray Enter, not a message.
        if line.is_empty() {
            return Ok(());
        }
        let message = self.composer.compose(line, prefixed);
        if encoded_len(message.len()) > self.options.max_frame {
            let len = message.len();
            self.refuse(len);
            return Ok(());
        }
        if self.link.is_none() && !self.backlog.has_room_for(message.len()) {
            self.not_sent += 1;
            self.printer.report(Status::BacklogFull);
            return Ok(());
        }
        self.backlog.push(message);
        self.flush_backlog()?;
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

    /// Seals the backlog for the connection, if there is one, and writes
    /// it; returns how many messages went out. A failed write keeps the
    /// backlog (see [`Link::write_frames`]), to be sealed again for the
    /// next connection.
    fn flush_backlog(&mut self) -> Result<usize, ChatError> {
        let Some(link) = &mut self.link else {
            return Ok(0);
        };
        if self.backlog.is_empty() {
            return Ok(0);
        }
        let mut frames = BytesMut::new();
        for message in self.backlog.messages() {
            self.keys.seal_into(message, &mut frames).map_err(|error| {
                ChatError::BadSessionFrame {
                    addr: self.options.connect.clone(),
                    error,
                }
            })?;
        }
        if !link.write_frames(&frames) {
            return Ok(0);
        }
        Ok(self.backlog.clear())
    }

    /// Opens one received line and prints it as one safe line; a replayed
    /// frame is refused, and one of our own sent back is not shown
    /// ([`Keys::open`]).
    fn print(&mut self, line: &[u8]) -> Result<(), ChatError> {
        let Some(link) = &mut self.link else {
            return Ok(());
        };
        let Some(message) = self.keys.open(line, link, &self.options.connect)? else {
            return Ok(());
        };
        let out = match &mut self.e2e {
            Some(e2e) => e2e.received(message, Instant::now()),
            None => Output::default(),
        };
        if !out.consumed {
            self.printer.show(message).map_err(|error| ChatError::Io {
                what: WRITING_OUTPUT,
                error,
            })?;
        }
        if let Some(room) = &out.history_skipped {
            self.printer.history_skipped(room);
        }
        self.apply(out)
    }

    fn link_ended(&mut self, end: LinkEnd) -> Result<(), ChatError> {
        let addr = self.options.connect.clone();
        let Some(link) = self.link.take() else {
            return Ok(());
        };
        self.keys.end_link();
        let error = match end {
            LinkEnd::TooLong(limit) => return Err(ChatError::LineTooLong { addr, limit }),
            LinkEnd::Closed => None,
            LinkEnd::Failed(error) => Some(error),
        };
        if !self.options.reconnect {
            return Err(ChatError::RelayClosed {
                addr,
                error,
                // A session's handshake already proved the keys right.
                sent_only: link.sent_only() && !self.keys.is_session(),
            });
        }
        let retry_in = self.dialer.schedule_after(&link);
        self.printer.report(Status::WentAway { error, retry_in });
        Ok(())
    }

    /// One reconnect attempt: the backlog goes out if it works, another
    /// attempt is scheduled if it does not. A handshake that the relay
    /// refuses, or that does not verify, ends the session: the next attempt
    /// would meet the same relay.
    fn retry(&mut self) -> Result<(), ChatError> {
        let mut stream = match self.dialer.dial() {
            Ok(stream) => stream,
            Err(error) => {
                self.retry_later(error);
                return Ok(());
            }
        };
        let mut report = |status| self.printer.report(status);
        let handshake = self
            .keys
            .handshake(&mut stream, &self.options.connect, &mut report);
        let session = match handshake {
            Ok(session) => session,
            // The socket's failure: like a failed dial, tried again.
            Err(HandshakeError::Io(error)) => {
                self.retry_later(error);
                return Ok(());
            }
            Err(error) => return Err(self.keys.handshake_failed(&self.options.connect, error)),
        };
        let addr = self.open_link(stream)?;
        let sent = self.flush_backlog()?;
        self.printer.report(Status::Reconnected {
            addr,
            sent,
            session: session.clone(),
        });
        self.pin_if_new(session.as_ref())
    }

    /// A reconnect attempt failed with `error`: schedules the next one.
    fn retry_later(&mut self, error: std::io::Error) {
        let retry_in = self.dialer.schedule_retry();
        self.printer.report(Status::StillAway { error, retry_in });
    }

    /// Trust on first use: once a handshake has proved a relay key given
    /// with `--relay-key` or sent by the relay when asked, and not yet
    /// pinned, records it in the known relays file, once. A key the relay
    /// sent that meets another pin there (another `chat` pinned one
    /// meanwhile) ends the session: a changed key is always refused.
    fn pin_if_new(&mut self, session: Option<&SessionInfo>) -> Result<(), ChatError> {
        let Some(RelayPin { key, source }) = self.keys.pin().cloned() else {
            return Ok(());
        };
        let (record_in, recorded, first_use) = match source {
            PinSource::Given { record_in } => (
                record_in.clone(),
                PinSource::GivenAndKnown(record_in),
                false,
            ),
            PinSource::FirstUse { record_in } => {
                (record_in.clone(), PinSource::Known(record_in), true)
            }
            PinSource::GivenAndKnown(_) | PinSource::Known(_) => return Ok(()),
        };
        if session.is_none() {
            return Ok(());
        }
        let relay = self.options.connect.clone();
        let status = match known_relays::record(&record_in, &relay, &key) {
            Ok(_) => Status::Pinned {
                relay,
                fingerprint: key.fingerprint(),
                path: record_in,
            },
            Err(error @ KnownRelaysError::Conflict { .. }) if first_use => {
                return Err(ChatError::PinChanged(error));
            }
            Err(error) => Status::NotPinned(error),
        };
        // Recorded or not, it is not tried again on each reconnect.
        self.keys.set_pin(RelayPin {
            key,
            source: recorded,
        });
        self.printer.report(status);
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
        // With a session the handshake already said who we are.
        let first: Option<&[u8]> = if self.options.events {
            Some(HELLO)
        } else if self.options.member && !self.keys.is_session() {
            Some(b"")
        } else {
            None
        };
        if let Some(first) = first {
            // A failed write shuts the link down; its reader then reports
            // the end, which decides between reconnecting and failing.
            let mut frame = BytesMut::new();
            self.keys
                .seal_into(first, &mut frame)
                .map_err(|error| ChatError::BadSessionFrame {
                    addr: self.options.connect.clone(),
                    error,
                })?;
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

    /// The message for `line`, prefix included if `prefixed`.
    fn compose(&mut self, line: &[u8], prefixed: bool) -> &[u8] {
        self.message.clear();
        if prefixed {
            self.message.extend_from_slice(&self.prefix);
        }
        self.message.extend_from_slice(line);
        &self.message
    }
}

/// Messages waiting for a connection, as plaintext: a session's frames can
/// only be sealed once its handshake is done, so they are sealed as they
/// go out ([`Session::flush_backlog`]).
#[derive(Default)]
struct Backlog {
    messages: Vec<Vec<u8>>,
    /// The bytes of their lines once sealed, newlines included.
    line_bytes: usize,
}

impl Backlog {
    /// Whether a message of `len` bytes still fits under
    /// [`BACKLOG_LIMIT`], counted as its sealed line.
    fn has_room_for(&self, len: usize) -> bool {
        self.line_bytes + encoded_len(len) < BACKLOG_LIMIT
    }

    fn push(&mut self, message: &[u8]) {
        self.line_bytes += encoded_len(message.len()) + 1;
        self.messages.push(message.to_vec());
    }

    fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    fn messages(&self) -> impl Iterator<Item = &[u8]> {
        self.messages.iter().map(Vec::as_slice)
    }

    fn count(&self) -> usize {
        self.messages.len()
    }

    /// Empties the backlog once it went out; how many messages it held.
    fn clear(&mut self) -> usize {
        self.line_bytes = 0;
        std::mem::take(&mut self.messages).len()
    }
}

/// Whether the session goes on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Go,
    Quit,
}
