//! What relay-bench's messages look like on the wire, for each kind of relay
//! it can drive: eaxchat (sealed frames), a plain line broker such as
//! `ncat --broker` (unencrypted lines of the same length), Redis pub/sub
//! (the same plain lines inside `PUBLISH` and `message` replies), and NATS
//! core pub/sub (inside `PUB` and `MSG`; the text protocol, as the NATS
//! docs give it: this is a load generator's baseline, not a NATS client).
//!
//! Every message carries a [`Header`]: who sent it, its sequence number and
//! when it was sent. Every message of one run has the same length, so a
//! subscriber's stream is a run of fixed-length *records*; that is what lets
//! subscribers count and check deliveries without opening each one.
//!
//! A members relay (`relay --members`) delivers every message as
//! `NAME: TEXT` sealed under each recipient's own key: the publisher seals
//! under its member's key through [`Wire`], and each subscriber opens with a
//! [`MemberReader`] of its own, which also checks the name.
//!
//! A session relay (`relay --members FILE --identity FILE`) delivers the
//! same `NAME: TEXT`, each recipient's copy sealed in its own session
//! with a counter for a nonce. The publisher seals in its session
//! ([`Wire::start_session`], once its handshake is done) and each
//! subscriber checks every frame's counter, and opens frames, with a
//! [`SessionReader`] of its own.
//!
//! This module only encodes and decodes; it never touches a socket.

use std::fmt;
use std::ops::Range;

use bytes::{BufMut as _, BytesMut};

use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::Key;
use eaxchat_proto::session::{Established, Session};
use eaxchat_proto::wire;

use super::roster::Roster;
use super::sessions::SessionRoster;

mod events;
mod member;
mod plain;
mod session;

use plain::{parse_plain_line, put_plain_line};

pub use events::EventLine;
pub use member::MemberReader;
pub(crate) use session::counter_of;
pub use session::{Checking, Misfit, SessionReader};

/// Sender id of the probes sent while waiting for every subscriber.
pub const PROBE: u32 = u32::MAX;
/// Sender id of the one message that ends the setup: data follows it.
pub const BARRIER: u32 = u32::MAX - 1;

/// Bytes of header a sealed message's plaintext starts with: the 20 bytes
/// of seq, sender and stamp, 7 bits to a byte with the top bit set
/// ([`put_header`]).
pub const HEADER_LEN: usize = 23;
/// The header's fields before they are spread over [`HEADER_LEN`] bytes.
const RAW_HEADER_LEN: usize = 20;
/// Filler after the header, in plaintexts and plain lines alike.
const FILL: u8 = b'.';
/// Hex digits of a plain line's header: seq (16), sender (8), stamp (16).
const PLAIN_HEADER_LEN: usize = 40;
/// The Redis channel every publisher and subscriber uses.
const CHANNEL: &str = "relay-bench";

/// The relay relay-bench talks to.
#[derive(Debug, Clone)]
pub enum Protocol {
    /// An eaxchat relay: sealed frames under this key.
    Eaxchat(Key),
    /// An eaxchat members relay: each connection under its own member's key.
    Members(Roster),
    /// An eaxchat session relay: a handshake per connection, then each
    /// connection's frames sealed in its own session.
    Sessions(SessionRoster),
    /// A TLS server, for the handshakes scenario only: measured with
    /// `openssl s_time`.
    Tls,
    /// A relay that forwards lines as they are (`ncat --broker`).
    Plain,
    /// Redis pub/sub: `PUBLISH` and `SUBSCRIBE` on one channel.
    Redis,
    /// NATS core pub/sub: `PUB` and `SUB` on one subject.
    Nats,
}

/// What every NATS connection of a run sends first.
const NATS_CONNECT: &[u8] = b"CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\n";

impl Protocol {
    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Eaxchat(_) => "eaxchat",
            Protocol::Members(_) => "eaxchat-members",
            Protocol::Sessions(_) => "eaxchat-sessions",
            Protocol::Tls => "tls",
            Protocol::Plain => "plain",
            Protocol::Redis => "redis",
            Protocol::Nats => "nats",
        }
    }
}

/// What every message says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The sending client's index, or [`PROBE`] / [`BARRIER`].
    pub sender: u32,
    /// The sender's sequence number, from 0.
    pub seq: u64,
    /// When it was sent: nanoseconds since the run's clock started.
    pub stamp_ns: u64,
}

/// A record that is not a message relay-bench sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forged;

/// Why a message size cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeError(String);

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SizeError {}

/// Encodes and decodes one run's messages.
pub struct Wire {
    kind: Kind,
    /// Length of the line carrying one message (base64 length), without
    /// its terminator.
    line_len: usize,
    /// Bytes a subscriber's stream carries per message, where the line sits
    /// in them, and what surrounds it (empty but for Redis).
    record_len: usize,
    record_prefix: Vec<u8>,
    /// Members mode: the publisher's frame that identifies it, and the
    /// `NAME: ` the relay puts before every message it delivers.
    members: Option<MembersWire>,
    /// Subscribers read the relay's WebSocket (`relay --web`) at this
    /// address: each record is a text frame, its header then the line.
    websocket: Option<std::net::SocketAddr>,
    /// Subscribers said `/hello eaxchat/1`: each delivery is a `msg`
    /// event carrying the publisher's text (`events.rs`).
    events: bool,
}

/// The handshake key every WebSocket subscriber sends (RFC 6455's example).
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

struct MembersWire {
    identification: Vec<u8>,
    stamp: Vec<u8>,
}

enum Kind {
    Sealed {
        cipher: Box<Cipher>,
        plaintext: Vec<u8>,
    },
    /// Sealed in the publisher's session, once its handshake is done;
    /// every delivery starts with `stamp`, the publisher's `NAME: `.
    Session {
        session: Option<Box<Session>>,
        plaintext: Vec<u8>,
        stamp: Vec<u8>,
    },
    Plain,
    Redis {
        publish_prefix: Vec<u8>,
    },
    Nats {
        publish_prefix: Vec<u8>,
    },
}

impl Wire {
    /// A codec for `size`-byte messages: the plaintext size for eaxchat;
    /// the plain protocols send lines as long as eaxchat's would be.
    pub fn new(protocol: &Protocol, size: usize) -> Result<Wire, SizeError> {
        let mut members = None;
        let (kind, record_prefix, line_len) = match protocol {
            Protocol::Eaxchat(key) => (
                Wire::sealed(key, size)?,
                Vec::new(),
                wire::encoded_len(size),
            ),
            Protocol::Members(roster) => {
                let (name, key) = roster
                    .member(0)
                    .ok_or_else(|| SizeError("the members file has no members".into()))?;
                let mut kind = Wire::sealed(key, size)?;
                let mut identification = BytesMut::new();
                if let Kind::Sealed { cipher, .. } = &mut kind {
                    cipher.seal_into(&[], &mut identification);
                }
                let stamp = format!("{name}: ").into_bytes();
                let line_len = wire::encoded_len(stamp.len() + size);
                members = Some(MembersWire {
                    identification: identification.to_vec(),
                    stamp,
                });
                (kind, Vec::new(), line_len)
            }
            Protocol::Sessions(roster) => {
                let name = roster
                    .name(0)
                    .ok_or_else(|| SizeError("the members file has no members".into()))?;
                check_header_fits(size)?;
                let stamp = format!("{name}: ").into_bytes();
                let line_len = wire::encoded_len(stamp.len() + size);
                let kind = Kind::Session {
                    session: None,
                    plaintext: vec![FILL; size],
                    stamp,
                };
                (kind, Vec::new(), line_len)
            }
            Protocol::Plain | Protocol::Tls => (Kind::Plain, Vec::new(), wire::encoded_len(size)),
            Protocol::Redis => {
                let line_len = wire::encoded_len(size);
                let publish_prefix = format!(
                    "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{CHANNEL}\r\n${line_len}\r\n",
                    CHANNEL.len()
                );
                let message_prefix = format!(
                    "*3\r\n$7\r\nmessage\r\n${}\r\n{CHANNEL}\r\n${line_len}\r\n",
                    CHANNEL.len()
                );
                let kind = Kind::Redis {
                    publish_prefix: publish_prefix.into_bytes(),
                };
                (kind, message_prefix.into_bytes(), line_len)
            }
            Protocol::Nats => {
                let line_len = wire::encoded_len(size);
                let kind = Kind::Nats {
                    publish_prefix: format!("PUB {CHANNEL} {line_len}\r\n").into_bytes(),
                };
                let message_prefix = format!("MSG {CHANNEL} 1 {line_len}\r\n");
                (kind, message_prefix.into_bytes(), line_len)
            }
        };
        let terminator = if matches!(kind, Kind::Redis { .. } | Kind::Nats { .. }) {
            2
        } else {
            1
        };
        Ok(Wire {
            kind,
            line_len,
            record_len: record_prefix.len() + line_len + terminator,
            record_prefix,
            members,
            websocket: None,
            events: false,
        })
    }

    /// Subscribers read frames from the relay's WebSocket at `web` instead
    /// of lines from its TCP port (eaxchat with a shared key only); the
    /// publisher still writes to the TCP port.
    pub fn over_websocket(mut self, web: std::net::SocketAddr) -> Result<Wire, SizeError> {
        if !matches!(self.kind, Kind::Sealed { .. }) || self.members.is_some() {
            return Err(SizeError(
                "--web subscribers need an eaxchat relay with a shared key".into(),
            ));
        }
        let mut header = Vec::new();
        tungstenite::protocol::frame::FrameHeader {
            is_final: true,
            opcode: tungstenite::protocol::frame::coding::OpCode::Data(
                tungstenite::protocol::frame::coding::Data::Text,
            ),
            mask: None,
            ..Default::default()
        }
        .format(self.line_len as u64, &mut header)
        .map_err(|e| SizeError(format!("a frame header: {e}")))?;
        self.record_len = header.len() + self.line_len;
        self.record_prefix = header;
        self.websocket = Some(web);
        Ok(self)
    }

    /// The codec of sealed `size`-byte messages under `key`.
    fn sealed(key: &Key, size: usize) -> Result<Kind, SizeError> {
        check_header_fits(size)?;
        let cipher = Cipher::new(key)
            .map_err(|e| SizeError(format!("cannot seed the nonce generator: {e}")))?;
        Ok(Kind::Sealed {
            cipher: Box::new(cipher),
            plaintext: vec![FILL; size],
        })
    }

    /// What the publisher sends once connected: in members mode the empty
    /// frame that identifies it; otherwise nothing.
    pub fn publisher_greeting(&self) -> &[u8] {
        if matches!(self.kind, Kind::Nats { .. }) {
            return NATS_CONNECT;
        }
        self.members
            .as_ref()
            .map_or(&[], |m| m.identification.as_slice())
    }

    /// Session mode: from now on the publisher seals in `session`, its
    /// side of the handshake it has just finished. Any other relay's codec
    /// ignores it.
    pub fn start_session(&mut self, session: Session) {
        if let Kind::Session { session: slot, .. } = &mut self.kind {
            *slot = Some(Box::new(session));
        }
    }

    /// Session mode: the reader of a subscriber whose handshake ended in
    /// `established`, checking as `checking` says, or `None` when the relay
    /// is not a session relay.
    pub fn session_reader(
        &self,
        established: Established,
        checking: Checking,
    ) -> Option<SessionReader> {
        match &self.kind {
            Kind::Session { stamp, .. } => Some(SessionReader::new(
                established,
                checking,
                stamp.clone(),
                self.record_len,
            )),
            _ => None,
        }
    }

    /// Members mode: the reader of a subscriber holding `key`, or `None`
    /// when the relay is not a members relay (then [`Wire::decode`] opens
    /// what subscribers receive).
    pub fn member_reader(&self, key: &Key) -> Option<Result<MemberReader, SizeError>> {
        let members = self.members.as_ref()?;
        Some(
            Cipher::new(key)
                .map(|cipher| MemberReader {
                    cipher,
                    stamp: members.stamp.clone(),
                    record_len: self.record_len,
                })
                .map_err(|e| SizeError(format!("cannot seed the nonce generator: {e}"))),
        )
    }

    /// Over a WebSocket, the frame header every record starts with.
    pub fn frame_prefix(&self) -> Option<&[u8]> {
        self.websocket.map(|_| self.record_prefix.as_slice())
    }

    /// Length of the line carrying one message, without its terminator.
    pub fn line_len(&self) -> usize {
        self.line_len
    }

    /// Bytes one delivered message takes in a subscriber's stream; the last
    /// is `\n`, but over a WebSocket (a frame has no terminator).
    pub fn record_len(&self) -> usize {
        self.record_len
    }

    /// Where the line sits inside a record.
    fn line_range(&self) -> Range<usize> {
        let start = self.record_prefix.len();
        start..start + self.line_len
    }

    /// What a subscriber sends once connected (Redis's `SUBSCRIBE`, a
    /// WebSocket's upgrade).
    pub fn subscribe_request(&self) -> Vec<u8> {
        if let Some(web) = self.websocket {
            return format!(
                "GET /ws HTTP/1.1\r\nHost: {web}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {WS_KEY}\r\n\r\n"
            )
            .into_bytes();
        }
        match self.kind {
            Kind::Redis { .. } => format!(
                "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{CHANNEL}\r\n",
                CHANNEL.len()
            )
            .into_bytes(),
            Kind::Nats { .. } => {
                let mut request = NATS_CONNECT.to_vec();
                request.extend_from_slice(format!("SUB {CHANNEL} 1\r\n").as_bytes());
                request
            }
            _ => Vec::new(),
        }
    }

    /// Whether the server greets every connection with one line first
    /// (NATS's `INFO`), of a length no one knows ahead: read and dropped
    /// when connecting.
    pub fn greets_with_a_line(&self) -> bool {
        matches!(self.kind, Kind::Nats { .. })
    }

    /// Bytes at the start of a subscriber's stream that are not messages
    /// (Redis's confirmation of the subscription).
    pub fn subscribe_reply_len(&self) -> usize {
        if self.websocket.is_some() {
            return eaxchat_server::web::http::switching_protocols(WS_KEY).len();
        }
        match self.kind {
            Kind::Redis { .. } => format!(
                "*3\r\n$9\r\nsubscribe\r\n${}\r\n{CHANNEL}\r\n:1\r\n",
                CHANNEL.len()
            )
            .len(),
            _ => 0,
        }
    }

    /// Whether the relay answers every message to its publisher (Redis
    /// replies to each `PUBLISH` with the number of receivers).
    pub fn publisher_gets_replies(&self) -> bool {
        matches!(self.kind, Kind::Redis { .. })
    }

    /// Appends one message, terminated, as its publisher sends it.
    pub fn encode(&mut self, header: Header, out: &mut BytesMut) {
        match &mut self.kind {
            Kind::Sealed { cipher, plaintext } if self.events => {
                events::put_text_header(header, plaintext);
                cipher.seal_into(plaintext, out);
            }
            Kind::Sealed { cipher, plaintext } => {
                put_header(header, plaintext);
                cipher.seal_into(plaintext, out);
            }
            Kind::Session {
                session, plaintext, ..
            } => {
                put_header(header, plaintext);
                // Sealing fails only once 2^64 - 1 frames have been sealed
                // in one session; before the handshake there is no session
                // and nothing is sent. Either way the subscribers count
                // what never came as lost.
                if let Some(session) = session {
                    let _ = session.seal_into(plaintext, out);
                }
            }
            Kind::Plain => {
                put_plain_line(header, self.line_len, out);
                out.put_u8(b'\n');
            }
            Kind::Redis { publish_prefix } | Kind::Nats { publish_prefix } => {
                out.extend_from_slice(publish_prefix);
                put_plain_line(header, self.line_len, out);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Decodes one whole record (as [`Wire::record_len`] measures it) from
    /// a subscriber's stream, checking everything a relay could get wrong.
    pub fn decode(&mut self, record: &[u8]) -> Result<Header, Forged> {
        if record.len() != self.record_len || !record.starts_with(&self.record_prefix) {
            return Err(Forged);
        }
        let line = &record[self.line_range()];
        let terminator = &record[self.line_range().end..];
        match &mut self.kind {
            Kind::Sealed { cipher, .. } => {
                let want: &[u8] = if self.websocket.is_some() { b"" } else { b"\n" };
                if terminator != want {
                    return Err(Forged);
                }
                let plaintext = cipher.open(line).map_err(|_| Forged)?;
                parse_plaintext(plaintext)
            }
            // Each subscriber opens its own copy with its SessionReader.
            Kind::Session { .. } => Err(Forged),
            Kind::Plain if terminator == b"\n" => parse_plain_line(line),
            Kind::Redis { .. } | Kind::Nats { .. } if terminator == b"\r\n" => {
                parse_plain_line(line)
            }
            _ => Err(Forged),
        }
    }
}

/// Fails unless a `size`-byte plaintext has room for the header.
fn check_header_fits(size: usize) -> Result<(), SizeError> {
    if size < HEADER_LEN {
        return Err(SizeError(format!(
            "--size must be at least {HEADER_LEN} bytes (the message header)"
        )));
    }
    Ok(())
}

/// Writes `header` over the start of a sealed message's plaintext.
///
/// Its 20 bytes go 7 bits to a byte, each byte with its top bit set: so no
/// header byte is a `\n` or `\r` (a members or session relay refuses a
/// member's text holding a line break) or a leading `/` (a command).
fn put_header(header: Header, plaintext: &mut [u8]) {
    let mut raw = [0u8; RAW_HEADER_LEN];
    raw[..8].copy_from_slice(&header.seq.to_be_bytes());
    raw[8..12].copy_from_slice(&header.sender.to_le_bytes());
    raw[12..].copy_from_slice(&header.stamp_ns.to_le_bytes());
    let (mut acc, mut bits, mut at) = (0u32, 0u32, 0);
    for byte in raw {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 7 {
            bits -= 7;
            plaintext[at] = 0x80 | ((acc >> bits) & 0x7f) as u8;
            at += 1;
        }
        acc &= (1 << bits) - 1;
    }
    // 160 bits are 22 bytes of 7 and 6 bits more, padded with zeros.
    plaintext[at] = 0x80 | ((acc << (7 - bits)) & 0x7f) as u8;
}

fn parse_plaintext(plaintext: &[u8]) -> Result<Header, Forged> {
    let (head, fill) = plaintext.split_at_checked(HEADER_LEN).ok_or(Forged)?;
    if fill.iter().any(|&b| b != FILL) {
        return Err(Forged);
    }
    let mut raw = [0u8; RAW_HEADER_LEN];
    let (mut acc, mut bits, mut at) = (0u32, 0u32, 0);
    for &byte in head {
        if byte & 0x80 == 0 {
            return Err(Forged);
        }
        acc = (acc << 7) | u32::from(byte & 0x7f);
        bits += 7;
        if bits >= 8 {
            bits -= 8;
            let slot = raw.get_mut(at).ok_or(Forged)?;
            *slot = (acc >> bits) as u8;
            at += 1;
            acc &= (1 << bits) - 1;
        }
    }
    if at != RAW_HEADER_LEN || acc != 0 {
        return Err(Forged);
    }
    let word = |range: Range<usize>| -> [u8; 8] {
        let mut bytes = [0u8; 8];
        bytes[..range.len()].copy_from_slice(&raw[range]);
        bytes
    };
    Ok(Header {
        seq: u64::from_be_bytes(word(0..8)),
        sender: u64::from_le_bytes(word(8..12)) as u32,
        stamp_ns: u64::from_le_bytes(word(12..RAW_HEADER_LEN)),
    })
}

#[cfg(test)]
pub(crate) mod tests;
