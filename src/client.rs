//! Client side of the wire format, shared by the `chat` binary: connecting,
//! sending sealed lines, reading and opening frames, and making peers' text
//! safe to print.
//!
//! [`run`] is the whole client. Two plain threads only move bytes: one reads
//! the user's lines ([`input`]), one per connection splits the relay's
//! stream into lines ([`crate::frame::LineReader`]). Both send `Event`s
//! to the calling thread, which owns everything else: the one [`Cipher`]
//! (sealing and opening), the connection, the reconnect timer, the backlog
//! of messages typed while disconnected, and the output. Every received
//! message is opened, passed through [`sanitize`] and printed as one line;
//! every status change is reported through a callback as a [`Status`].
//!
//! A message that would make a line longer than the relay's `--max-frame`
//! is refused here, before sealing: the relay would only drop the
//! connection. A frame that does not authenticate ends the session: either
//! the key is wrong or someone is tampering with the stream, and neither
//! gets better by carrying on.

pub mod input;
pub mod sanitize;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::ops::ControlFlow;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::cipher::{Cipher, OpenError};
use crate::key::Key;
use crate::lines::LineReader;
use crate::relay::Limits;
use crate::wire::{encoded_len, max_plaintext_len};
use input::{Input, InputLines};

/// How long one connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a write to the relay may block before the relay counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of sealed messages held while reconnecting; past this, new
/// messages are refused rather than queued without bound.
const BACKLOG_LIMIT: usize = 1024 * 1024;

/// What [`ChatError::Io`] says when printing failed.
const WRITING_OUTPUT: &str = "writing output";

/// A connection that lasted this long resets the reconnect delay; one that
/// keeps dropping sooner keeps backing off.
const STABLE_LINK: Duration = Duration::from_secs(10);

/// How a session behaves: the `chat` command line, parsed.
#[derive(Debug, Clone)]
pub struct Options {
    /// The relay, as `HOST:PORT`.
    pub connect: String,
    /// Prefixed as `NAME: ` to every message sent.
    pub name: Option<String>,
    /// The relay's `--max-frame`: the longest line it accepts (and sends).
    pub max_frame: usize,
    /// How long to keep printing after the input ends, before exiting.
    pub linger: Duration,
    /// Only print; never read the input.
    pub listen_only: bool,
    /// Reconnect when the relay goes away instead of failing.
    pub reconnect: bool,
}

impl Options {
    /// Options for `connect` with every default: no name, the relay's
    /// default `--max-frame`, 300 ms linger, reading input, no reconnect.
    pub fn new(connect: impl Into<String>) -> Options {
        Options {
            connect: connect.into(),
            name: None,
            max_frame: Limits::DEFAULT_MAX_FRAME,
            linger: Duration::from_millis(300),
            listen_only: false,
            reconnect: false,
        }
    }

    /// The smallest `max_frame` that carries a one-byte message.
    pub fn min_max_frame() -> usize {
        encoded_len(1)
    }

    /// The longest message (name prefix included) the relay accepts.
    pub fn max_message_len(&self) -> usize {
        max_plaintext_len(self.max_frame)
    }

    fn prefix(&self) -> Vec<u8> {
        self.name
            .as_ref()
            .map(|name| format!("{name}: ").into_bytes())
            .unwrap_or_default()
    }
}

/// Why a session ended in failure.
#[derive(Debug)]
pub enum ChatError {
    /// The relay could not be reached at start.
    Unreachable {
        /// The address as given.
        addr: String,
        /// What connecting said.
        error: io::Error,
    },
    /// A frame from the relay did not open.
    BadFrame {
        /// The relay's address.
        addr: String,
        /// Why it did not open.
        error: OpenError,
    },
    /// The relay sent a line longer than `--max-frame`.
    LineTooLong {
        /// The relay's address.
        addr: String,
        /// The limit it passed.
        limit: usize,
    },
    /// The relay closed the connection and reconnecting was not asked for.
    RelayClosed {
        /// The relay's address.
        addr: String,
        /// What the socket said, when it was not a plain close.
        error: Option<io::Error>,
        /// Whether messages were sent on the connection and none received,
        /// which is what a relay with a different key looks like.
        sent_only: bool,
    },
    /// Some input was not sent (too long, or the relay was away).
    NotSent {
        /// How many messages.
        count: usize,
    },
    /// Reading the input, writing the output, or seeding the cipher failed.
    Io {
        /// Which of them.
        what: &'static str,
        /// The underlying error.
        error: io::Error,
    },
}

impl fmt::Display for ChatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatError::Unreachable { addr, error } => {
                write!(f, "cannot reach the relay at {addr}: {error}")
            }
            ChatError::BadFrame {
                addr,
                error: OpenError::BadTag,
            } => write!(
                f,
                "a frame from the relay at {addr} does not authenticate: \
                 wrong key, or the frame was tampered with"
            ),
            ChatError::BadFrame { addr, error } => write!(
                f,
                "the relay at {addr} sent a line that is not a frame ({error}): \
                 is it an eaxchat relay?"
            ),
            ChatError::LineTooLong { addr, limit } => write!(
                f,
                "the relay at {addr} sent a line longer than {limit} bytes: \
                 give chat the relay's --max-frame"
            ),
            ChatError::RelayClosed {
                addr,
                error,
                sent_only,
            } => {
                write!(f, "the relay at {addr} closed the connection")?;
                if let Some(error) = error {
                    write!(f, " ({error})")?;
                }
                if *sent_only {
                    f.write_str(
                        "; it drops clients whose frames do not authenticate: is the key right?",
                    )?;
                }
                Ok(())
            }
            ChatError::NotSent { count: 1 } => f.write_str("1 message was not sent"),
            ChatError::NotSent { count } => write!(f, "{count} messages were not sent"),
            ChatError::Io { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for ChatError {}

/// Something worth telling the user that does not end the session.
#[derive(Debug)]
pub enum Status {
    /// Connected to the relay.
    Connected {
        /// The relay's address.
        addr: SocketAddr,
    },
    /// A message was not sent because the relay would refuse its length.
    TooLong {
        /// The message's length, name prefix included.
        len: usize,
        /// The longest the relay accepts.
        max_len: usize,
        /// The `--max-frame` that limit comes from.
        max_frame: usize,
    },
    /// The connection ended; a reconnect is scheduled.
    WentAway {
        /// What the socket said, when it was not a plain close.
        error: Option<io::Error>,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// A reconnect attempt failed; another is scheduled.
    StillAway {
        /// What connecting said.
        error: io::Error,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// Connected again; `sent` messages typed meanwhile went out.
    Reconnected {
        /// The relay's address.
        addr: SocketAddr,
        /// How many messages were waiting.
        sent: usize,
    },
    /// A message typed while reconnecting was dropped: too much was waiting.
    BacklogFull,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Connected { addr } => write!(f, "connected to {addr}"),
            Status::TooLong {
                len,
                max_len,
                max_frame,
            } => write!(
                f,
                "message not sent: {len} bytes is more than the {max_len} the relay \
                 accepts (--max-frame {max_frame})"
            ),
            Status::WentAway { error, retry_in } => {
                f.write_str("relay went away")?;
                if let Some(error) = error {
                    write!(f, " ({error})")?;
                }
                write!(f, ", reconnecting in {}", seconds(*retry_in))
            }
            Status::StillAway { error, retry_in } => write!(
                f,
                "relay still unreachable ({error}), reconnecting in {}",
                seconds(*retry_in)
            ),
            Status::Reconnected { addr, sent: 0 } => write!(f, "reconnected to {addr}"),
            Status::Reconnected { addr, sent } => {
                write!(f, "reconnected to {addr}; sent {sent} queued message(s)")
            }
            Status::BacklogFull => f.write_str(
                "message not sent: too much is already waiting for the relay to come back",
            ),
        }
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

/// Reconnect delays: doubling from [`Backoff::INITIAL`] up to
/// [`Backoff::MAX`], then staying there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The first delay.
    pub const INITIAL: Duration = Duration::from_millis(100);
    /// The longest delay.
    pub const MAX: Duration = Duration::from_secs(5);

    /// The delay to wait now; the following one will be twice as long,
    /// up to [`Backoff::MAX`].
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(Backoff::MAX);
        delay
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            next: Backoff::INITIAL,
        }
    }
}

/// What the helper threads tell the session.
#[derive(Debug)]
enum Event {
    /// The user entered a line.
    Typed(Input),
    /// The input ended (`None`) or failed.
    InputEnded(Option<io::Error>),
    /// Connection `link` delivered a line.
    Received { link: u64, line: Vec<u8> },
    /// Connection `link` ended.
    LinkEnded { link: u64, end: LinkEnd },
}

/// How a connection's reading ended.
#[derive(Debug)]
enum LinkEnd {
    Closed,
    Failed(io::Error),
    TooLong(usize),
}

/// The open connection to the relay.
struct Link {
    id: u64,
    stream: TcpStream,
    since: Instant,
    sent: bool,
    received: bool,
}

impl Drop for Link {
    fn drop(&mut self) {
        // Ends the reader thread's blocking read too.
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Runs a chat session until the input ends (then lingers), the relay goes
/// away for good, or something fails.
///
/// Reads lines from `input` (unless listen-only), prints each received
/// message as one sanitised line on `output`, and reports changes through
/// `status`. A closed `output` (`chat | head`) ends the session quietly.
pub fn run<I, O>(
    options: &Options,
    key: &Key,
    input: I,
    output: &mut O,
    status: &mut dyn FnMut(Status),
) -> Result<(), ChatError>
where
    I: Read + Send + 'static,
    O: Write,
{
    let cipher = Cipher::new(key).map_err(|error| ChatError::Io {
        what: "random seed",
        error,
    })?;
    let stream = connect(&options.connect).map_err(|error| ChatError::Unreachable {
        addr: options.connect.clone(),
        error,
    })?;
    let (events, inbox) = mpsc::channel();
    if !options.listen_only {
        let sender = events.clone();
        let max_len = options.max_frame;
        thread::spawn(move || read_input(input, max_len, sender));
    }
    let mut session = Session {
        options,
        prefix: options.prefix(),
        cipher,
        output,
        status,
        events,
        link: None,
        next_link: 0,
        backlog: BytesMut::new(),
        backlog_count: 0,
        backoff: Backoff::default(),
        retry_at: None,
        linger_until: None,
        not_sent: 0,
        message: Vec::new(),
        text: String::new(),
    };
    let addr = session.open_link(stream)?;
    (session.status)(Status::Connected { addr });
    match session.run(&inbox) {
        Err(ChatError::Io { what, error })
            if what == WRITING_OUTPUT && error.kind() == io::ErrorKind::BrokenPipe =>
        {
            Ok(())
        }
        result => result,
    }
}

/// Connects to `addr` (`HOST:PORT`), trying each address it resolves to.
fn connect(addr: &str) -> io::Result<TcpStream> {
    let mut last_error = None;
    for candidate in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&candidate, CONNECT_TIMEOUT) {
            Ok(stream) => {
                // Chat lines are small and wanted now; Nagle only delays them.
                stream.set_nodelay(true)?;
                stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                return Ok(stream);
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address")
    }))
}

/// The input thread: every line typed, then the end.
fn read_input(input: impl Read, max_len: usize, events: Sender<Event>) {
    let mut lines = InputLines::new(io::BufReader::new(input), max_len);
    loop {
        let event = match lines.next_line() {
            Ok(Some(line)) => Event::Typed(line),
            Ok(None) => Event::InputEnded(None),
            Err(error) => Event::InputEnded(Some(error)),
        };
        let last = matches!(event, Event::InputEnded(_));
        if events.send(event).is_err() || last {
            return;
        }
    }
}

/// A connection's reader thread: every line the relay sends, then the end.
fn read_lines(link: u64, mut stream: TcpStream, max_line: usize, events: Sender<Event>) {
    let mut reader = LineReader::new(max_line);
    let mut buf = vec![0u8; 16 * 1024];
    let end = loop {
        match stream.read(&mut buf) {
            Ok(0) => break LinkEnd::Closed,
            Ok(n) => {
                let mut session_gone = false;
                let fed = reader.feed(&buf[..n], |line| {
                    let line = line.to_vec();
                    if events.send(Event::Received { link, line }).is_err() {
                        session_gone = true;
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                });
                if session_gone {
                    return;
                }
                if fed.is_err() {
                    break LinkEnd::TooLong(max_line);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break LinkEnd::Failed(e),
        }
    };
    let _ = events.send(Event::LinkEnded { link, end });
}

/// The session's state, owned by the thread that called [`run`].
struct Session<'a, O> {
    options: &'a Options,
    prefix: Vec<u8>,
    cipher: Cipher,
    output: &'a mut O,
    status: &'a mut dyn FnMut(Status),
    /// Handed to each new connection's reader thread.
    events: Sender<Event>,
    link: Option<Link>,
    next_link: u64,
    /// Sealed lines waiting for a connection, and how many messages.
    backlog: BytesMut,
    backlog_count: usize,
    backoff: Backoff,
    retry_at: Option<Instant>,
    linger_until: Option<Instant>,
    not_sent: usize,
    /// Reused buffers: the plaintext being sent, the text being printed.
    message: Vec<u8>,
    text: String,
}

impl<O: Write> Session<'_, O> {
    fn run(&mut self, inbox: &Receiver<Event>) -> Result<(), ChatError> {
        loop {
            let now = Instant::now();
            if self.linger_until.is_some_and(|at| at <= now) {
                return self.finish();
            }
            if self.retry_at.is_some_and(|at| at <= now) {
                self.retry()?;
                continue;
            }
            let wake = [self.linger_until, self.retry_at]
                .into_iter()
                .flatten()
                .min();
            let event = match wake {
                Some(at) => match inbox.recv_timeout(at.saturating_duration_since(now)) {
                    Ok(event) => event,
                    Err(RecvTimeoutError::Timeout) => continue,
                    // The session holds a sender itself, so this cannot
                    // happen; ending is the only sensible answer if it did.
                    Err(RecvTimeoutError::Disconnected) => return self.finish(),
                },
                None => match inbox.recv() {
                    Ok(event) => event,
                    Err(_) => return self.finish(),
                },
            };
            self.handle(event)?;
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), ChatError> {
        match event {
            Event::Typed(Input::Line(line)) => self.send(&line),
            Event::Typed(Input::TooLong(len)) => {
                self.refuse(self.prefix.len() + len);
                Ok(())
            }
            Event::InputEnded(None) => {
                self.linger_until = Some(Instant::now() + self.options.linger);
                Ok(())
            }
            Event::InputEnded(Some(error)) => Err(ChatError::Io {
                what: "reading input",
                error,
            }),
            Event::Received { link, line } if self.is_current(link) => self.print(&line),
            Event::LinkEnded { link, end } if self.is_current(link) => self.link_ended(end),
            // From a connection already given up: nothing to do.
            Event::Received { .. } | Event::LinkEnded { .. } => Ok(()),
        }
    }

    fn is_current(&self, link: u64) -> bool {
        self.link.as_ref().is_some_and(|current| current.id == link)
    }

    /// Seals one typed line and sends it, or queues it while reconnecting.
    fn send(&mut self, line: &[u8]) -> Result<(), ChatError> {
        // An empty line is a stray Enter, not a message.
        if line.is_empty() {
            return Ok(());
        }
        self.message.clear();
        self.message.extend_from_slice(&self.prefix);
        self.message.extend_from_slice(line);
        if encoded_len(self.message.len()) > self.options.max_frame {
            self.refuse(self.message.len());
            return Ok(());
        }
        let frame_len = encoded_len(self.message.len()) + 1;
        if self.link.is_none() && self.backlog.len() + frame_len > BACKLOG_LIMIT {
            self.not_sent += 1;
            (self.status)(Status::BacklogFull);
            return Ok(());
        }
        self.cipher.seal_into(&self.message, &mut self.backlog);
        self.backlog_count += 1;
        self.flush_backlog();
        Ok(())
    }

    fn refuse(&mut self, len: usize) {
        self.not_sent += 1;
        (self.status)(Status::TooLong {
            len,
            max_len: self.options.max_message_len(),
            max_frame: self.options.max_frame,
        });
    }

    /// Writes the backlog to the connection, if there is one; returns how
    /// many messages went out.
    ///
    /// A failed write keeps the backlog and shuts the socket down: its
    /// reader thread then reports the end, and that one path decides
    /// between reconnecting and failing.
    fn flush_backlog(&mut self) -> usize {
        let Some(link) = &mut self.link else {
            return 0;
        };
        if self.backlog.is_empty() {
            return 0;
        }
        if link.stream.write_all(&self.backlog).is_err() {
            let _ = link.stream.shutdown(Shutdown::Both);
            return 0;
        }
        link.sent = true;
        self.backlog.clear();
        std::mem::take(&mut self.backlog_count)
    }

    /// Opens one received line and prints it as one safe line.
    fn print(&mut self, line: &[u8]) -> Result<(), ChatError> {
        let message = self
            .cipher
            .open(line)
            .map_err(|error| ChatError::BadFrame {
                addr: self.options.connect.clone(),
                error,
            })?;
        if let Some(link) = &mut self.link {
            link.received = true;
        }
        self.text.clear();
        sanitize::sanitize_into(message, &mut self.text);
        self.text.push('\n');
        // One write per message, so a message is never split by whatever
        // else reaches the terminal.
        self.output
            .write_all(self.text.as_bytes())
            .and_then(|()| self.output.flush())
            .map_err(|error| ChatError::Io {
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
                sent_only: link.sent && !link.received,
            });
        }
        if link.since.elapsed() >= STABLE_LINK {
            self.backoff = Backoff::default();
        }
        let retry_in = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + retry_in);
        (self.status)(Status::WentAway { error, retry_in });
        Ok(())
    }

    fn retry(&mut self) -> Result<(), ChatError> {
        self.retry_at = None;
        match connect(&self.options.connect) {
            Ok(stream) => {
                let addr = self.open_link(stream)?;
                let sent = self.flush_backlog();
                (self.status)(Status::Reconnected { addr, sent });
            }
            Err(error) => {
                let retry_in = self.backoff.next_delay();
                self.retry_at = Some(Instant::now() + retry_in);
                (self.status)(Status::StillAway { error, retry_in });
            }
        }
        Ok(())
    }

    /// Makes `stream` the connection and starts its reader thread.
    fn open_link(&mut self, stream: TcpStream) -> Result<SocketAddr, ChatError> {
        let io_error = |error| ChatError::Io {
            what: "setting up the connection",
            error,
        };
        let addr = stream.peer_addr().map_err(io_error)?;
        let reader = stream.try_clone().map_err(io_error)?;
        self.next_link += 1;
        let id = self.next_link;
        let events = self.events.clone();
        let max_line = self.options.max_frame;
        thread::spawn(move || read_lines(id, reader, max_line, events));
        self.link = Some(Link {
            id,
            stream,
            since: Instant::now(),
            sent: false,
            received: false,
        });
        Ok(addr)
    }

    /// The input has ended and the linger is over.
    fn finish(&mut self) -> Result<(), ChatError> {
        self.link = None;
        let not_sent = self.not_sent + self.backlog_count;
        if not_sent > 0 {
            return Err(ChatError::NotSent { count: not_sent });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..9)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    }

    #[test]
    fn the_longest_message_fills_the_frame_exactly() {
        for max_frame in [Options::min_max_frame(), 100, Limits::DEFAULT_MAX_FRAME] {
            let options = Options {
                max_frame,
                ..Options::new("127.0.0.1:1")
            };
            let max_len = options.max_message_len();
            assert!(encoded_len(max_len) <= max_frame, "{max_frame}");
            assert!(encoded_len(max_len + 1) > max_frame, "{max_frame}");
        }
    }

    #[test]
    fn errors_say_what_went_wrong_and_where() {
        let addr = "relay.example:8080".to_owned();
        let cases = [
            (
                ChatError::BadFrame {
                    addr: addr.clone(),
                    error: OpenError::BadTag,
                },
                "wrong key, or the frame was tampered with",
            ),
            (
                ChatError::Unreachable {
                    addr: addr.clone(),
                    error: io::Error::from(io::ErrorKind::ConnectionRefused),
                },
                "relay.example:8080",
            ),
            (
                ChatError::RelayClosed {
                    addr,
                    error: None,
                    sent_only: true,
                },
                "is the key right?",
            ),
        ];
        for (error, want) in cases {
            let text = error.to_string();
            assert!(text.contains(want), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }
}
