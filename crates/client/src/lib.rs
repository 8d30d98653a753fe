//! Client side of the wire format, shared by the `chat` binary: connecting,
//! sending sealed lines, reading and opening frames, and making peers' text
//! safe to print.
//!
//! [`run`] is the whole client. Two plain threads only move bytes: one reads
//! the user's lines ([`input`]), one per connection splits the relay's
//! stream into lines ([`eaxchat_proto::lines::LineReader`]). Both send `SessionEvent`s
//! to the calling thread, which owns everything else: the keys (the shared
//! key's cipher, or the connection's session: sealing and opening), the
//! connection and its handshake, the reconnect timer, the backlog
//! of messages typed while disconnected, and the output. Every received
//! message is opened, passed through [`sanitize`](eaxchat_proto::sanitize) and printed as one line;
//! every status change is reported through a callback as a [`Status`].
//!
//! In members mode ([`Options::member`]) every connection, the first and
//! each reconnect, starts with one sealed empty message: the relay finds
//! the member from it (and never relays it), so even a listen-only client
//! is identified. The relay stamps each message with the member's name, so
//! no `NAME: ` prefix is added.
//!
//! With an identity ([`Credentials::Identity`]) every connection instead
//! starts with a Noise handshake (docs/protocol.md, "Sessions") for the
//! relay key pinned in [`known_relays`] or given with `--relay-key`, and
//! its frames are sealed and opened with that connection's session; the
//! relay stamps names, as in members mode. With neither, the first
//! connection asks the relay for its key (trust on first use), says so,
//! and the key is pinned once the handshake proved it. Messages typed
//! while reconnecting wait as plaintext and are sealed for the next
//! session.
//!
//! A message that would make a line longer than the relay's `--max-frame`
//! is refused here, before sealing: the relay would only drop the
//! connection. A frame that does not authenticate ends the session: either
//! the key is wrong or someone is tampering with the stream, and neither
//! gets better by carrying on.
//!
//! | module | owns |
//! |---|---|
//! | this one | [`Options`], [`run`], the input thread, the `SessionEvent`s |
//! | `error` | [`ChatError`], [`Status`], [`SessionInfo`], their one-line texts, the exit code |
//! | `session` | the calling thread's state and its loop over events |
//! | `printer` | pipe mode's front end: one line per message or event |
//! | [`e2e`] | end-to-end rooms: the MLS driver between events and typed lines |
//! | `link` | dialing the relay, the socket, the reader thread, [`Backoff`] |
//! | `keys` | sealing and opening: the shared key, or each connection's session |
//! | `handshake` | a connection's handshake (after the key request, on first use): line 1 out, the reply in, bounded |
//! | [`identity`] | identity files: reading, refusing loose modes, `chat keygen` |
//! | [`join`] | `chat --join LINK`: a new device joins by an invite |
//! | [`known_relays`] | pinned relay keys, trust on first use |
//! | [`input`] | splitting what the user types into lines |
//! | [`tui`] | the full-screen terminal app |
//!
//! What the relay sends is the protocol crate's to read: its `eaxchat/1`
//! events are parsed and shown as plain text by
//! [`eaxchat_proto::events::ParsedEvent`], and peer text is made safe to
//! print by [`sanitize`](eaxchat_proto::sanitize).

pub mod e2e;
mod error;
mod handshake;
pub mod identity;
pub mod input;
pub mod join;
mod keys;
pub mod known_relays;
mod link;
mod nonce_window;
mod printer;
mod session;
pub mod tui;

pub use error::{ChatError, SessionInfo, Status};
pub use handshake::HandshakeError;
pub use link::Backoff;
pub use session::UiAction;

use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::Duration;

use eaxchat_proto::key::Key;
use eaxchat_proto::session::StaticSecret;
use eaxchat_proto::wire::{DEFAULT_MAX_FRAME, encoded_len, max_plaintext_len};
use input::{InputLine, InputLines};
use keys::Keys;
use known_relays::RelayTrust;
use link::LinkEnd;
use printer::Printer;
use session::Session;

/// What chat seals with and proves itself by.
#[derive(Debug)]
pub enum Credentials {
    /// A shared key, or a member's static key (`--member`, or a key file
    /// `relay members add` wrote): today's frames, no handshake.
    Key(Key),
    /// A member identity: every connection starts a session with the relay
    /// whose key `relay` gives, or the first asks for it.
    Identity {
        /// The member's secret.
        secret: StaticSecret,
        /// The relay key to start sessions for, or none yet.
        relay: RelayTrust,
    },
}

/// How a session behaves: the `chat` command line, parsed.
#[derive(Debug, Clone)]
pub struct Options {
    /// The relay, as `HOST:PORT`.
    pub connect: String,
    /// Prefixed as `NAME: ` to every message sent (not in members mode).
    pub name: Option<String>,
    /// Members mode: the key is this member's own, so each connection
    /// starts with an empty message that identifies it, and the relay
    /// stamps names (`name` is not used).
    pub member: bool,
    /// The relay's `--max-frame`: the longest line it accepts (and sends).
    pub max_frame: usize,
    /// How long to keep printing after the input ends, before exiting.
    pub linger: Duration,
    /// Only print; never read the input.
    pub listen_only: bool,
    /// Reconnect when the relay goes away instead of failing.
    pub reconnect: bool,
    /// Ask the relay for structured events (`/hello eaxchat/1`) on every
    /// connection, and show each as the line the relay's plain text would
    /// be; in members mode the hello is what identifies us.
    pub events: bool,
    /// With an identity: the state directory of this device's end-to-end
    /// rooms (its MLS key, groups and pins). `None`: no end-to-end rooms.
    pub e2e_dir: Option<std::path::PathBuf>,
}

impl Options {
    /// Options for `connect` with every default: no name, a shared key,
    /// the relay's default `--max-frame`, 300 ms linger, reading input, no
    /// reconnect, structured events.
    pub fn new(connect: impl Into<String>) -> Options {
        Options {
            connect: connect.into(),
            name: None,
            member: false,
            max_frame: DEFAULT_MAX_FRAME,
            linger: Duration::from_millis(300),
            listen_only: false,
            reconnect: false,
            events: true,
            e2e_dir: None,
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
            .filter(|_| !self.member)
            .map(|name| format!("{name}: ").into_bytes())
            .unwrap_or_default()
    }
}

/// What the helper threads tell the session.
#[derive(Debug)]
enum SessionEvent {
    /// The user entered a line.
    Typed(InputLine),
    /// The input ended (`None`) or failed.
    InputEnded(Option<io::Error>),
    /// Connection `link` delivered a line.
    Received { link: u64, line: Vec<u8> },
    /// Connection `link` ended.
    LinkEnded { link: u64, end: LinkEnd },
    /// A key, the mouse, a resize: the terminal app's input.
    Ui(UiEvent),
}

/// A terminal event, as crossterm reads it.
pub type UiEvent = ratatui::crossterm::event::Event;

/// Runs a chat session until the input ends (then lingers), the relay goes
/// away for good, or something fails.
///
/// Reads lines from `input` (unless listen-only), prints each received
/// message as one sanitised line on `output`, and reports changes through
/// `status`. A closed `output` (`chat | head`) ends the session quietly.
pub fn run<I, O>(
    options: &Options,
    credentials: &Credentials,
    input: I,
    output: &mut O,
    status: &mut dyn FnMut(Status),
) -> Result<(), ChatError>
where
    I: Read + Send + 'static,
    O: Write,
{
    let (keys, stream, first) = dial(options, credentials, status)?;
    let (events, inbox) = mpsc::channel();
    if !options.listen_only {
        let sender = events.clone();
        let max_len = options.max_frame;
        thread::spawn(move || read_input(input, max_len, sender));
    }
    let mut session = Session::new(options, keys, Printer::new(output, status), events);
    session.start(stream, first)?;
    match session.run(&inbox) {
        Err(error) if error.is_output_closed() => Ok(()),
        result => result,
    }
}

/// The session's keys, and the first connection to the relay after its
/// handshake, if it needs one (and the session that made); what is worth
/// saying meanwhile (a key trusted on first use) goes to `status`. Any
/// failure here ends chat before the input is read or the terminal taken
/// over.
fn dial<'a>(
    options: &Options,
    credentials: &'a Credentials,
    status: &mut dyn FnMut(Status),
) -> Result<(Keys<'a>, std::net::TcpStream, Option<SessionInfo>), ChatError> {
    let mut keys = Keys::new(credentials)?;
    let mut stream = link::connect(&options.connect).map_err(|error| ChatError::Unreachable {
        addr: options.connect.clone(),
        error,
    })?;
    let first = keys
        .handshake(&mut stream, &options.connect, status)
        .map_err(|error| keys.handshake_failed(&options.connect, error))?;
    Ok((keys, stream, first))
}

/// The input thread: every line typed, then the end.
fn read_input(input: impl Read, max_len: usize, events: Sender<SessionEvent>) {
    let mut lines = InputLines::new(io::BufReader::new(input), max_len);
    loop {
        let event = match lines.next_line() {
            Ok(Some(line)) => SessionEvent::Typed(line),
            Ok(None) => SessionEvent::InputEnded(None),
            Err(error) => SessionEvent::InputEnded(Some(error)),
        };
        let last = matches!(event, SessionEvent::InputEnded(_));
        if events.send(event).is_err() || last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_message_fills_the_frame_exactly() {
        for max_frame in [Options::min_max_frame(), 100, DEFAULT_MAX_FRAME] {
            let options = Options {
                max_frame,
                ..Options::new("127.0.0.1:1")
            };
            let max_len = options.max_message_len();
            assert!(encoded_len(max_len) <= max_frame, "{max_frame}");
            assert!(encoded_len(max_len + 1) > max_frame, "{max_frame}");
        }
    }
}
