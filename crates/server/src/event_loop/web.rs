//! `--web ADDR` in the poll loop: the HTTP listener, the connections still
//! sending their request head, the upgrade that makes one a relay
//! connection carrying WebSocket frames, and the idle check that pings
//! quiet browsers and closes silent ones. The protocols are `crate::web`'s;
//! this file moves bytes and keeps time. With TLS (`web_tls.rs`) the same
//! steps run over a rustls `ServerConnection`: the handshake happens while
//! the request head is read, and a browser member's frames are sealed into
//! TLS records on their way to the socket.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};
use slab::Slab;
use tungstenite::protocol::frame::coding::CloseCode;

pub use crate::web::config::{MetricsAccess, WebConfig};

use super::web_tls::{TlsPhase, TlsState};
use super::{Conn, Server};
use crate::web::tls::{self as web_tls, TlsRefusal, TlsWriter};
use crate::web::ws::{Incoming, Outgoing, WsEvent};
use crate::web::{self, http};
use eaxchat_core::relay::{CloseReason, ConnId, Refused};

/// The web listener's token.
pub(super) const WEB_LISTENER: Token = Token(usize::MAX - 3);

/// Tokens of connections still in HTTP: this plus their slab key.
pub(super) const HTTP_BASE: usize = usize::MAX / 2;

/// Most bytes a browser that has not yet shown it holds a key may have
/// in a WebSocket frame or message: its first frame (`/hello`, or a
/// member's identifying frame) is short. Past it, `--max-frame`.
const PRE_AUTH_MESSAGE: usize = 4096;

/// The web side of the server.
pub(super) struct Web {
    listener: TcpListener,
    ready: bool,
    pub(super) config: WebConfig,
    /// Connections still sending their request head, or being answered.
    pub(super) http: Slab<HttpConn>,
    next_idle_check: Instant,
    /// The certificate and the TLS counters, if the listener serves TLS.
    pub(super) tls: Option<TlsState>,
}

/// A connection in HTTP, before its upgrade or its answer.
pub(super) struct HttpConn {
    pub(super) stream: TcpStream,
    pub(super) addr: SocketAddr,
    pub(super) head: Vec<u8>,
    pub(super) since: Instant,
    /// The answer being written, then the connection closes.
    pub(super) answer: Option<(Vec<u8>, usize)>,
    /// Plain, or where its TLS is.
    pub(super) tls: TlsPhase,
}

/// A relay connection that is a browser's: its WebSocket state.
#[derive(Debug)]
pub(super) struct WebConn {
    incoming: Incoming,
    out: Outgoing,
    last_heard: Instant,
    pinged: bool,
    max_frame: usize,
    /// Its TLS, on a TLS listener.
    tls: Option<Box<rustls::ServerConnection>>,
}

impl WebConn {
    /// Queues the close frame a shutting-down relay sends.
    pub(super) fn close_for_shutdown(&mut self) {
        self.out.close(CloseCode::Away, "relay shutting down");
    }

    /// Writes the control frames queued, if the socket takes them, and
    /// the TLS records waiting.
    pub(super) fn flush_control(&mut self, stream: &mut TcpStream) -> io::Result<bool> {
        match &mut self.tls {
            Some(tls) => {
                let done = self.out.flush_control(&mut TlsWriter {
                    conn: tls,
                    socket: stream,
                });
                web_tls::flush(tls, stream)?;
                done
            }
            None => self.out.flush_control(stream),
        }
    }

    /// Writes the relay's lines as WebSocket frames.
    pub(super) fn write_lines(
        &mut self,
        stream: &mut TcpStream,
        bufs: &[io::IoSlice<'_>],
    ) -> io::Result<usize> {
        match &mut self.tls {
            Some(tls) => self.out.write_lines(
                &mut TlsWriter {
                    conn: tls,
                    socket: stream,
                },
                bufs,
            ),
            None => self.out.write_lines(stream, bufs),
        }
    }

    /// Reads what the browser sent: the plaintext of its TLS records, or
    /// the socket's bytes.
    pub(super) fn read(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            Some(tls) => web_tls::read_plaintext(tls, stream, buf),
            None => stream.read(buf),
        }
    }

    /// Whether TLS records wait for the socket (write interest is kept
    /// until they are gone).
    pub(super) fn tls_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Sends TLS's close_notify, if the socket takes it.
    pub(super) fn close_tls(&mut self, stream: &mut TcpStream) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            let _ = web_tls::flush(tls, stream);
        }
    }
}

impl Web {
    /// Binds the web listener.
    pub(super) fn bind(config: WebConfig) -> io::Result<Web> {
        let tls = match &config.tls {
            Some(source) => Some(TlsState::load(source.clone())?),
            None => None,
        };
        Ok(Web {
            listener: TcpListener::bind(config.listen)?,
            ready: true,
            config,
            http: Slab::new(),
            next_idle_check: Instant::now(),
            tls,
        })
    }

    /// The address bound.
    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub(super) fn listener_mut(&mut self) -> &mut TcpListener {
        &mut self.listener
    }

    pub(super) fn next_idle_check(&self) -> Instant {
        self.next_idle_check
    }
}

impl Server {
    /// The web listener became readable.
    pub(super) fn web_accept_ready(&mut self) {
        if let Some(web) = &mut self.web {
            web.ready = true;
        }
    }

    /// Accepts what the web listener has, up to what may be pending.
    pub(super) fn accept_web(&mut self) {
        let Some(web) = &mut self.web else { return };
        while web.ready {
            match web.listener.accept() {
                Ok((mut stream, addr)) => {
                    if web.http.len() >= web::MAX_PENDING {
                        if let Some(tls) = &mut web.tls {
                            tls.refuse(addr, TlsRefusal::FloodTotal, "too many handshakes pending");
                        } else {
                            warn!("web: refused {addr}: {} requests pending", web::MAX_PENDING);
                        }
                        continue;
                    }
                    if let Some(tls) = &mut web.tls {
                        let same = web
                            .http
                            .iter()
                            .filter(|(_, conn)| conn.addr.ip() == addr.ip())
                            .count();
                        if same >= web::MAX_HANDSHAKES_PER_ADDRESS {
                            tls.refuse(
                                addr,
                                TlsRefusal::FloodAddress,
                                "too many handshakes pending from its address",
                            );
                            continue;
                        }
                    }
                    let _ = stream.set_nodelay(true);
                    let entry = web.http.vacant_entry();
                    let token = Token(HTTP_BASE + entry.key());
                    // A TLS connection writes during its handshake: its
                    // writable events flush what the socket did not take.
                    let (interest, phase) = match &web.tls {
                        Some(_) => (Interest::READABLE | Interest::WRITABLE, TlsPhase::Sniffing),
                        None => (Interest::READABLE, TlsPhase::Plain),
                    };
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, interest)
                        .is_err()
                    {
                        continue;
                    }
                    entry.insert(HttpConn {
                        stream,
                        addr,
                        head: Vec::new(),
                        since: Instant::now(),
                        answer: None,
                        tls: phase,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => web.ready = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("web: accept failed: {e}");
                    web.ready = false;
                }
            }
        }
    }

    /// An event on a connection still in HTTP.
    pub(super) fn http_event(&mut self, key: usize) {
        let Some(web) = &mut self.web else { return };
        let Some(conn) = web.http.get_mut(key) else {
            return;
        };
        if conn.answer.is_some() {
            self.write_answer(key);
            return;
        }
        if !matches!(conn.tls, TlsPhase::Plain | TlsPhase::PlainOnTls) {
            return self.tls_http_event(key);
        }
        if http::read_head(&mut conn.stream, &mut conn.head) == http::HeadRead::Closed {
            return self.drop_http(key);
        }
        self.parse_head(key);
    }

    /// Answers the request head read so far, if it is whole (or bad).
    pub(super) fn parse_head(&mut self, key: usize) {
        let Some(conn) = self.web.as_mut().and_then(|web| web.http.get_mut(key)) else {
            return;
        };
        if matches!(conn.tls, TlsPhase::PlainOnTls) {
            if http::parse(&conn.head) == Ok(None) {
                return;
            }
            let answer = http::redirect_to_https(&conn.head);
            let addr = conn.addr;
            if let Some(tls) = self.web.as_mut().and_then(|web| web.tls.as_mut()) {
                tls.refuse(addr, TlsRefusal::PlainHttp, "plain HTTP: sent to https");
            }
            return self.start_answer(key, answer);
        }
        match http::parse(&conn.head) {
            Ok(None) => {}
            Ok(Some(request)) => self.answer(key, request),
            Err(refusal) => {
                info!("web: {}: refused: {}", conn.addr, refusal.why());
                self.start_answer(key, http::refusal(refusal));
            }
        }
    }

    fn answer(&mut self, key: usize, request: http::Request) {
        let body = match request {
            http::Request::Asset(asset) => {
                http::response("200 OK", asset.content_type, asset.body.as_bytes())
            }
            http::Request::Health => http::response("200 OK", "text/plain; charset=utf-8", b"ok\n"),
            http::Request::Icon(png) => http::response("200 OK", "image/png", png),
            http::Request::Metrics { bearer } => {
                let peer = self
                    .web
                    .as_ref()
                    .and_then(|web| web.http.get(key).map(|conn| (conn.addr, web)));
                let allowed =
                    peer.map(|(addr, web)| web.config.metrics.allows(addr, bearer.as_deref()));
                if let Some(Err(refusal)) = allowed {
                    return self.start_answer(key, http::refusal(refusal));
                }
                self.metrics_response()
            }
            http::Request::Upgrade {
                key: ws_key,
                origin,
                host,
            } => {
                let allowed = self.web.as_ref().is_some_and(|web| {
                    http::origin_allowed(origin.as_deref(), host.as_deref(), &web.config.origins)
                });
                if !allowed {
                    if let Some(conn) = self.web.as_ref().and_then(|web| web.http.get(key)) {
                        warn!(
                            "web: {}: refused a websocket from origin {origin:?}",
                            conn.addr
                        );
                    }
                    http::refusal(http::Refusal::Forbidden)
                } else {
                    return self.upgrade(key, &ws_key);
                }
            }
        };
        self.start_answer(key, body);
    }

    pub(super) fn start_answer(&mut self, key: usize, answer: Vec<u8>) {
        if let Some(conn) = self.web.as_mut().and_then(|web| web.http.get_mut(key)) {
            conn.answer = Some((answer, 0));
            let _ = self.poll.registry().reregister(
                &mut conn.stream,
                Token(HTTP_BASE + key),
                Interest::READABLE | Interest::WRITABLE,
            );
        }
        self.write_answer(key);
    }

    fn write_answer(&mut self, key: usize) {
        let Some(conn) = self.web.as_mut().and_then(|web| web.http.get_mut(key)) else {
            return;
        };
        if let TlsPhase::Tls(tls) = &mut conn.tls {
            if let Some((answer, at)) = &mut conn.answer
                && *at < answer.len()
            {
                let _ = io::Write::write_all(&mut tls.writer(), &answer[*at..]);
                *at = answer.len();
                tls.send_close_notify();
            }
            match web_tls::flush(tls, &mut conn.stream) {
                Ok(()) if tls.wants_write() => return,
                _ => return self.drop_http(key),
            }
        }
        let Some((answer, at)) = &mut conn.answer else {
            return;
        };
        while *at < answer.len() {
            match conn.stream.write(&answer[*at..]) {
                Ok(0) => break,
                Ok(n) => *at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.drop_http(key);
    }

    pub(super) fn drop_http(&mut self, key: usize) {
        if let Some(web) = &mut self.web
            && let Some(mut conn) = web.http.try_remove(key)
        {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Answers the upgrade and hands the connection to the relay as a
    /// browser member.
    fn upgrade(&mut self, key: usize, ws_key: &str) {
        let Some(web) = &mut self.web else { return };
        let Some(mut conn) = web.http.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        // What came after the request head is the first WebSocket bytes.
        let head_len = head_length(&conn.head).unwrap_or(conn.head.len());
        let early = conn.head.split_off(head_len);
        let reply = http::switching_protocols(ws_key);
        let mut tls = match std::mem::replace(&mut conn.tls, TlsPhase::Plain) {
            TlsPhase::Tls(tls) => Some(tls),
            _ => None,
        };
        // 129 bytes into a fresh socket's buffer: it goes at once or the
        // connection is gone. Over TLS, rustls keeps what the socket did
        // not take, and write interest stays until it is gone.
        let sent = match &mut tls {
            Some(tls) => io::Write::write_all(&mut tls.writer(), &reply)
                .and_then(|()| web_tls::flush(tls, &mut conn.stream))
                .is_ok(),
            None => conn.stream.write(&reply).ok() == Some(reply.len()),
        };
        if !sent {
            return;
        }
        let pending = tls.as_ref().is_some_and(|tls| tls.wants_write());
        let max_frame = self.relay.limits().max_frame;
        let web_conn = WebConn {
            incoming: Incoming::new(PRE_AUTH_MESSAGE.min(max_frame)),
            out: Outgoing::default(),
            last_heard: Instant::now(),
            pinged: false,
            max_frame,
            tls,
        };
        let relay_conn = Conn {
            stream: conn.stream,
            addr: conn.addr,
            write_interest: pending,
            read_turn: 0,
            web: Some(Box::new(web_conn)),
        };
        match self.relay.admit_from(relay_conn, Some(conn.addr.ip())) {
            Ok(id) => {
                if let Some(peer) = self.relay.io_mut(id)
                    && self
                        .poll
                        .registry()
                        .register(
                            &mut peer.stream,
                            Token(id),
                            if pending {
                                Interest::READABLE | Interest::WRITABLE
                            } else {
                                Interest::READABLE
                            },
                        )
                        .is_err()
                {
                    self.relay
                        .close(id, CloseReason::IoError(io::ErrorKind::Other));
                    return;
                }
                info!("conn {id}: websocket from {}", conn.addr);
                if !early.is_empty() {
                    self.take_web_bytes(id, &early);
                }
            }
            Err(Refused { io, limit }) => {
                warn!("web: refused {}: {limit:?}", io.addr);
            }
        }
    }

    /// Bytes read from a browser's relay connection: its messages go to the
    /// relay as lines; pings are answered; a close or a protocol error
    /// closes it.
    pub(super) fn take_web_bytes(&mut self, id: ConnId, data: &[u8]) {
        let authenticated = self
            .relay
            .peer(id)
            .is_some_and(|peer| peer.is_authenticated());
        let Some(conn) = self.relay.io_mut(id) else {
            return;
        };
        let Some(web) = conn.web.as_mut() else {
            return;
        };
        if authenticated {
            web.incoming.set_max(web.max_frame);
        }
        web.last_heard = Instant::now();
        web.pinged = false;
        let mut events = Vec::new();
        let fed = web.incoming.feed(data, &mut events);
        let mut lines = Vec::new();
        let mut close = None;
        for event in events {
            match event {
                WsEvent::Text(text) => {
                    lines.extend_from_slice(&text);
                    lines.push(b'\n');
                }
                WsEvent::Ping(payload) => web.out.pong(payload),
                WsEvent::Pong => {}
                WsEvent::Close => {
                    web.out.close(CloseCode::Normal, "");
                    close = Some(CloseReason::PeerClosed);
                }
            }
        }
        if let Err(error) = fed {
            web.out.close(error.close_code(), "");
            close = Some(CloseReason::Transport(error.reason()));
        }
        let control = web.out.has_control();
        if control {
            let _ = web.out.flush_control(&mut conn.stream);
        }
        if !lines.is_empty() {
            self.relay.receive(id, &lines);
        }
        if let Some(reason) = close {
            self.relay.close(id, reason);
        }
    }

    /// Times out request heads, pings quiet browsers, closes silent ones;
    /// runs at most once a second.
    pub(super) fn check_web_idle(&mut self, now: Instant) {
        let Some(web) = &mut self.web else { return };
        if now < web.next_idle_check {
            return;
        }
        web.next_idle_check = now + Duration::from_secs(1);
        let idle = web.config.idle_timeout;
        self.check_tls(now);
        let Some(web) = &mut self.web else { return };
        let late: Vec<usize> = web
            .http
            .iter()
            .filter(|(_, conn)| now.duration_since(conn.since) > web::HEAD_TIMEOUT)
            .map(|(key, _)| key)
            .collect();
        for key in late {
            self.drop_http(key);
        }
        let ids: Vec<ConnId> = self.relay.ids().collect();
        for id in ids {
            let Some(conn) = self.relay.io_mut(id) else {
                continue;
            };
            let Some(web) = conn.web.as_mut() else {
                continue;
            };
            let quiet = now.duration_since(web.last_heard);
            if quiet > idle * 2 {
                web.out.close(CloseCode::Away, "idle");
                let _ = web.out.flush_control(&mut conn.stream);
                self.relay.close(id, CloseReason::IdleTimeout);
            } else if quiet > idle && !web.pinged {
                web.pinged = true;
                web.out.ping();
                let _ = web.out.flush_control(&mut conn.stream);
            }
        }
    }

    /// Writes the control frames a browser is owed (after a writable
    /// event, when its queue may be empty).
    pub(super) fn flush_web_control(&mut self, id: ConnId) {
        if let Some(conn) = self.relay.io_mut(id)
            && let Some(web) = conn.web.as_mut()
            && web.out.has_control()
        {
            let _ = web.out.flush_control(&mut conn.stream);
        }
    }
}

/// Where the request head in `buf` ends: after its blank line.
fn head_length(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}
