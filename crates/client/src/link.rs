//! The connection to the relay: dialing it, the socket, writing sealed
//! frames to it, the reader thread that splits what it sends into lines,
//! and the schedule for dialing again when it goes away.
//!
//! A [`Dialer`] makes every connection: it resolves and dials the address,
//! numbers the connection and starts its reader thread, which owns a clone
//! of the socket and reports each line, then the end, as a [`SessionEvent`]
//! tagged with that number. The session keeps the one current [`Link`] and
//! ignores events from older ones. Dropping a `Link` shuts its socket down,
//! which also ends its reader's blocking read, so no thread outlives its
//! connection for long.
//!
//! Nothing here opens or seals a frame, or decides whether to reconnect:
//! that is the session's.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::ops::ControlFlow;
use std::sync::mpsc::Sender;
use std::thread;
use std::time::{Duration, Instant};

use super::SessionEvent;
use super::nonce_window::NonceWindow;
use eaxchat_proto::lines::LineReader;
use eaxchat_proto::wire::NONCE_LEN;

/// How long one connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a write to the relay may block before the relay counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection that lasted this long resets the reconnect delay; one that
/// keeps dropping sooner keeps backing off.
const STABLE_LINK: Duration = Duration::from_secs(10);

/// Bytes read from the socket at a time by a reader thread.
const READ_CHUNK: usize = 16 * 1024;

/// Makes connections to the relay and keeps the schedule for the next one.
pub(super) struct Dialer {
    /// The relay, as `HOST:PORT`.
    addr: String,
    /// The longest line a reader thread accepts: the relay's `--max-frame`.
    max_line: usize,
    /// Handed to each new connection's reader thread.
    events: Sender<SessionEvent>,
    /// The number of the last connection made.
    last_id: u64,
    backoff: Backoff,
    retry_at: Option<Instant>,
}

impl Dialer {
    /// A dialer for `addr` whose connections accept lines of up to
    /// `max_line` bytes and report on `events`.
    pub(super) fn new(addr: &str, max_line: usize, events: Sender<SessionEvent>) -> Dialer {
        Dialer {
            addr: addr.to_owned(),
            max_line,
            events,
            last_id: 0,
            backoff: Backoff::default(),
            retry_at: None,
        }
    }

    /// Dials the relay once.
    pub(super) fn dial(&self) -> io::Result<TcpStream> {
        connect(&self.addr)
    }

    /// Makes `stream` a numbered [`Link`] and starts its reader thread;
    /// returns it with the relay's address.
    pub(super) fn open(&mut self, stream: TcpStream) -> io::Result<(Link, SocketAddr)> {
        let addr = stream.peer_addr()?;
        let reader = stream.try_clone()?;
        self.last_id += 1;
        let id = self.last_id;
        let events = self.events.clone();
        let max_line = self.max_line;
        thread::spawn(move || read_lines(id, reader, max_line, events));
        let link = Link {
            id,
            stream,
            since: Instant::now(),
            sent: false,
            received: false,
            nonces: NonceWindow::new(),
        };
        Ok((link, addr))
    }

    /// When the next reconnect attempt is due, if one is scheduled.
    pub(super) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Whether a reconnect attempt is due at `now`; if so, it is taken off
    /// the schedule.
    pub(super) fn take_due_retry(&mut self, now: Instant) -> bool {
        let due = self.retry_at.is_some_and(|at| at <= now);
        if due {
            self.retry_at = None;
        }
        due
    }

    /// Schedules a reconnect after `link` ended; returns how long until it.
    /// A link that lasted starts the backoff over.
    pub(super) fn schedule_after(&mut self, link: &Link) -> Duration {
        if link.since.elapsed() >= STABLE_LINK {
            self.backoff = Backoff::default();
        }
        self.schedule_retry()
    }

    /// Schedules the next reconnect attempt; returns how long until it.
    pub(super) fn schedule_retry(&mut self) -> Duration {
        let retry_in = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + retry_in);
        retry_in
    }
}

/// Connects to `addr` (`HOST:PORT`), trying each address it resolves to.
pub(super) fn connect(addr: &str) -> io::Result<TcpStream> {
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

/// The open connection to the relay.
pub(super) struct Link {
    id: u64,
    stream: TcpStream,
    since: Instant,
    sent: bool,
    received: bool,
    /// The nonces of the frames accepted on it.
    nonces: NonceWindow,
}

impl Link {
    /// The number its events carry.
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Writes sealed `frames` to the relay; whether they all went.
    ///
    /// A failed write shuts the socket down: the reader thread then
    /// reports the end, and that one path decides between reconnecting and
    /// failing.
    pub(super) fn write_frames(&mut self, frames: &[u8]) -> bool {
        if self.stream.write_all(frames).is_err() {
            let _ = self.stream.shutdown(Shutdown::Both);
            return false;
        }
        self.sent = true;
        true
    }

    /// Takes a frame from the relay that opened with `nonce`: whether it is
    /// fresh on this link, not one accepted before (a replay).
    pub(super) fn accept_nonce(&mut self, nonce: &[u8; NONCE_LEN]) -> bool {
        self.nonces.accept(nonce)
    }

    /// Notes that a frame from the relay opened on this link.
    pub(super) fn mark_received(&mut self) {
        self.received = true;
    }

    /// Whether messages went out on this link and none came back, which is
    /// what a relay with a different key looks like.
    pub(super) fn sent_only(&self) -> bool {
        self.sent && !self.received
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Ends the reader thread's blocking read too.
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// How a connection's reading ended.
#[derive(Debug)]
pub(super) enum LinkEnd {
    /// The relay closed it.
    Closed,
    /// Reading failed.
    Failed(io::Error),
    /// The relay sent a line longer than this.
    TooLong(usize),
}

/// A connection's reader thread: every line the relay sends, then the end.
fn read_lines(link: u64, mut stream: TcpStream, max_line: usize, events: Sender<SessionEvent>) {
    let mut reader = LineReader::new(max_line);
    let mut buf = vec![0u8; READ_CHUNK];
    let end = loop {
        match stream.read(&mut buf) {
            Ok(0) => break LinkEnd::Closed,
            Ok(n) => {
                let mut session_gone = false;
                let fed = reader.feed(&buf[..n], |line| {
                    let line = line.to_vec();
                    if events.send(SessionEvent::Received { link, line }).is_err() {
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
    let _ = events.send(SessionEvent::LinkEnded { link, end });
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
}
