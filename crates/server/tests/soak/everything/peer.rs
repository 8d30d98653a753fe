//! One well-behaved client of the everything-on soak: a wire (TCP lines or
//! WebSocket text messages, as the page speaks), a way to seal and open
//! (a session of its own after a Noise handshake, or the shared key), and
//! the loop that sends numbered messages at a steady pace while it records
//! everything it receives in the [`Ledger`].

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::Key;
use eaxchat_proto::session::{Initiator, PublicKey, Session, StaticSecret};
use tungstenite::{Message, WebSocket};

use super::ledger::{Ledger, PeerId};

/// How long one read waits before the loop looks at its clock again.
const TICK: Duration = Duration::from_millis(20);
/// Bound on connecting and on the handshake.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Which port a client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The relay's TCP port: `\n`-terminated lines.
    Tcp,
    /// The `--web` port's `/ws`: one line per text message.
    Web,
}

/// How a client is let in.
#[derive(Clone)]
pub enum Credentials {
    /// A member's device: a Noise IK handshake with the pinned relay key.
    Session {
        secret: Arc<StaticSecret>,
        relay: PublicKey,
    },
    /// The shared key.
    Shared(Key),
}

/// Why a connection ended.
#[derive(Debug)]
pub enum Ended {
    /// The relay closed it, or the socket broke.
    Closed,
}

/// A connected wire.
enum Wire {
    Tcp { stream: TcpStream, inbox: Vec<u8> },
    Web(Box<WebSocket<TcpStream>>),
}

impl Wire {
    fn connect(via: Via, tcp: SocketAddr, web: Option<SocketAddr>) -> Option<Wire> {
        let addr = match via {
            Via::Tcp => tcp,
            Via::Web => web?,
        };
        let stream = TcpStream::connect_timeout(&addr, CONNECT_WAIT).ok()?;
        stream.set_nodelay(true).ok()?;
        stream.set_read_timeout(Some(CONNECT_WAIT)).ok()?;
        match via {
            Via::Tcp => Some(Wire::Tcp {
                stream,
                inbox: Vec::new(),
            }),
            Via::Web => {
                let url = format!("ws://{addr}/ws");
                let (ws, _) = tungstenite::client::client(url.as_str(), stream).ok()?;
                Some(Wire::Web(Box::new(ws)))
            }
        }
    }

    /// Sends one line; `line` ends with `\n`, which a WebSocket message
    /// does not carry.
    fn send_line(&mut self, line: &[u8]) -> Result<(), Ended> {
        match self {
            Wire::Tcp { stream, .. } => stream.write_all(line).map_err(|_| Ended::Closed),
            Wire::Web(ws) => {
                let text = std::str::from_utf8(line.strip_suffix(b"\n").unwrap_or(line))
                    .map_err(|_| Ended::Closed)?;
                ws.send(Message::text(text)).map_err(|_| Ended::Closed)
            }
        }
    }

    /// The next line (without `\n`) if one arrives within `wait`.
    fn recv_line(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, Ended> {
        let wait = wait.max(Duration::from_millis(1));
        match self {
            Wire::Tcp { stream, inbox } => {
                if let Some(end) = inbox.iter().position(|&b| b == b'\n') {
                    let line = inbox[..end].to_vec();
                    inbox.drain(..=end);
                    return Ok(Some(line));
                }
                stream
                    .set_read_timeout(Some(wait))
                    .map_err(|_| Ended::Closed)?;
                let mut buf = [0u8; 16 * 1024];
                match stream.read(&mut buf) {
                    Ok(0) => Err(Ended::Closed),
                    Ok(n) => {
                        inbox.extend_from_slice(&buf[..n]);
                        Ok(None)
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        Ok(None)
                    }
                    Err(_) => Err(Ended::Closed),
                }
            }
            Wire::Web(ws) => {
                ws.get_mut()
                    .set_read_timeout(Some(wait))
                    .map_err(|_| Ended::Closed)?;
                match ws.read() {
                    Ok(Message::Text(text)) => Ok(Some(text.as_bytes().to_vec())),
                    Ok(Message::Close(_)) => Err(Ended::Closed),
                    Ok(_) => Ok(None),
                    Err(tungstenite::Error::Io(e))
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                    {
                        Ok(None)
                    }
                    Err(_) => Err(Ended::Closed),
                }
            }
        }
    }

    /// Leaves cleanly: ends its side (a FIN, or a WebSocket close) and
    /// reads until the relay closes too (bounded), so everything it sent is
    /// read by the relay before the socket goes (closing with unread input
    /// would send a reset instead, and a reset may discard what the relay
    /// had not read yet).
    fn leave(&mut self) {
        match self {
            Wire::Tcp { stream, .. } => {
                let _ = stream.shutdown(std::net::Shutdown::Write);
            }
            Wire::Web(ws) => {
                let _ = ws.close(None);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && self.recv_line(TICK).is_ok() {}
    }

    /// Waits (bounded) for one whole line.
    fn recv_line_within(&mut self, wait: Duration) -> Result<Vec<u8>, Ended> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(line) = self.recv_line(TICK)? {
                return Ok(line);
            }
            if Instant::now() > deadline {
                return Err(Ended::Closed);
            }
        }
    }
}

/// Sealing and opening for one connection.
enum Crypto {
    Session(Box<Session>),
    Shared(Box<Cipher>),
}

/// A line received: its plaintext, or the line itself when it did not open.
pub type Opened = Result<Vec<u8>, Vec<u8>>;

/// A connected, admitted client.
pub struct Conn {
    wire: Wire,
    crypto: Crypto,
    /// The name the relay stamps on this client's messages (sessions).
    pub name: Option<String>,
    /// The last line it sent, for the hostile replayers.
    pub last_line: Vec<u8>,
}

impl Conn {
    /// Connects and, for a session, completes the handshake. `None` when
    /// the relay is unreachable or refuses.
    pub fn open(
        via: Via,
        tcp: SocketAddr,
        web: Option<SocketAddr>,
        credentials: &Credentials,
    ) -> Option<Conn> {
        let mut wire = Wire::connect(via, tcp, web)?;
        let (crypto, name) = match credentials {
            Credentials::Session { secret, relay } => {
                let (initiator, hello) = Initiator::start(secret, relay, b"").ok()?;
                wire.send_line(&hello).ok()?;
                let reply = wire.recv_line_within(CONNECT_WAIT).ok()?;
                let established = initiator.finish(&reply).ok()?;
                (
                    Crypto::Session(Box::new(established.session)),
                    Some(established.name),
                )
            }
            Credentials::Shared(key) => (Crypto::Shared(Box::new(Cipher::new(key).ok()?)), None),
        };
        let mut conn = Conn {
            wire,
            crypto,
            name,
            last_line: Vec::new(),
        };
        if matches!(credentials, Credentials::Shared(_)) {
            conn.await_admission()?;
        }
        Some(conn)
    }

    /// A shared-key connection is in its room from when the relay admits
    /// it, which the client cannot see: it asks `/who` and waits for the
    /// answer, which comes after its admission. What arrives before is
    /// older than the connection's start and owed to no one.
    fn await_admission(&mut self) -> Option<()> {
        self.send(b"/who").ok()?;
        let deadline = Instant::now() + CONNECT_WAIT;
        while Instant::now() < deadline {
            if let Some(Ok(text)) = self.recv(TICK).ok()?
                && text.starts_with(b"* here in #")
            {
                return Some(());
            }
        }
        None
    }

    /// Seals and sends `text`.
    pub fn send(&mut self, text: &[u8]) -> Result<(), Ended> {
        let mut line = BytesMut::new();
        match &mut self.crypto {
            Crypto::Session(session) => {
                session
                    .seal_into(text, &mut line)
                    .map_err(|_| Ended::Closed)?;
            }
            Crypto::Shared(cipher) => cipher.seal_into(text, &mut line),
        }
        self.last_line.clear();
        self.last_line.extend_from_slice(&line);
        self.wire.send_line(&line)
    }

    /// The next plaintext if a line arrives within `wait`. A line that does
    /// not open is a violation the caller records: `Ok(Some(Err(line)))`.
    pub fn recv(&mut self, wait: Duration) -> Result<Option<Opened>, Ended> {
        let Some(line) = self.wire.recv_line(wait)? else {
            return Ok(None);
        };
        let opened = match &mut self.crypto {
            Crypto::Session(session) => session.open(&line).map(|p| p.to_vec()).ok(),
            Crypto::Shared(cipher) => cipher.open(&line).map(|p| p.to_vec()).ok(),
        };
        Ok(Some(opened.ok_or(line)))
    }
}

/// How one client slot behaves.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Time between two messages; `None` for a client that only reads.
    pub every: Option<Duration>,
    /// How long one connection lives: `None` until the run ends (or its
    /// relay dies); churners reconnect after each.
    pub life: Option<(u64, u64)>,
    /// Messages sent at once right after connecting (the flooder).
    pub burst: u32,
}

/// Runs one connection of `peer` until `stop`, its life ends, or the relay
/// closes it; records what it sends and receives.
pub fn run_connection(ledger: &Ledger, peer: PeerId, mut conn: Conn, pace: Pace, life: Duration) {
    let started = Instant::now();
    let label = ledger.label(peer);
    let mut seq = 0u64;
    let mut send = |conn: &mut Conn| -> Result<(), Ended> {
        seq += 1;
        let text = format!("soak {label} {seq}");
        ledger.sent(peer, seq);
        conn.send(text.as_bytes())?;
        ledger.set_last_line(peer, &conn.last_line);
        Ok(())
    };
    let mut outcome = Ok(());
    for _ in 0..pace.burst {
        outcome = send(&mut conn);
        if outcome.is_err() {
            break;
        }
    }
    let mut next = Instant::now() + pace.every.unwrap_or(Duration::from_secs(3600));
    while outcome.is_ok() && !ledger.stopping() && started.elapsed() < life {
        let now = Instant::now();
        if pace.every.is_some() && now >= next && !ledger.senders_stopped() {
            outcome = send(&mut conn);
            next += pace.every.unwrap_or_default();
            if next < now {
                next = now;
            }
            continue;
        }
        match conn.recv(TICK.min(next.saturating_duration_since(now))) {
            Ok(Some(Ok(text))) => ledger.received(peer, &text),
            Ok(Some(Err(line))) => ledger.violation(format!(
                "{label}: a line that does not open: {:?}",
                String::from_utf8_lossy(&line[..line.len().min(80)])
            )),
            Ok(None) => {}
            Err(e) => outcome = Err(e),
        }
    }
    if outcome.is_ok() && !ledger.stopping() {
        conn.wire.leave();
    }
    // Still connected when the run stops: live to the end. Otherwise a
    // churner reached the end of its life, or the relay closed it (or
    // died).
    if outcome.is_err() || !ledger.stopping() {
        ledger.ended(peer, outcome.is_err());
    }
}
