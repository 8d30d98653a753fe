//! `--web ADDR` in the poll loop: the HTTP listener, the connections still
//! sending their request head, the upgrade that makes one a relay
//! connection carrying WebSocket frames, and the idle check that pings
//! quiet browsers and closes silent ones. The protocols are `crate::web`'s;
//! this file moves bytes and keeps time.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};
use slab::Slab;
use tungstenite::protocol::frame::coding::CloseCode;

use super::{Conn, Server};
use crate::web::ws::{Incoming, Outgoing, WsEvent};
use crate::web::{self, Gauges, http};
use eaxchat_core::relay::{CloseReason, ConnId, Refused};

/// The web listener's token.
pub(super) const WEB_LISTENER: Token = Token(usize::MAX - 3);

/// Tokens of connections still in HTTP: this plus their slab key.
pub(super) const HTTP_BASE: usize = usize::MAX / 2;

/// Most bytes a browser that has not yet shown it holds a key may have
/// in a WebSocket frame or message: its first frame (`/hello`, or a
/// member's identifying frame) is short. Past it, `--max-frame`.
const PRE_AUTH_MESSAGE: usize = 4096;

/// How `--web` is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// Where the page and `/ws` are served.
    pub listen: SocketAddr,
    /// Origins allowed to open `/ws` (`--web-origin`); empty: the page's
    /// own only.
    pub origins: Vec<String>,
    /// A browser silent this long is pinged, and closed if it stays silent
    /// as long again.
    pub idle_timeout: Duration,
}

/// The web side of the server.
pub(super) struct Web {
    listener: TcpListener,
    ready: bool,
    config: WebConfig,
    /// Connections still sending their request head, or being answered.
    http: Slab<HttpConn>,
    next_idle_check: Instant,
}

/// A connection in HTTP, before its upgrade or its answer.
struct HttpConn {
    stream: TcpStream,
    addr: SocketAddr,
    head: Vec<u8>,
    since: Instant,
    /// The answer being written, then the connection closes.
    answer: Option<(Vec<u8>, usize)>,
}

/// A relay connection that is a browser's: its WebSocket state.
#[derive(Debug)]
pub(super) struct WebConn {
    incoming: Incoming,
    out: Outgoing,
    last_heard: Instant,
    pinged: bool,
    max_frame: usize,
}

impl WebConn {
    /// Queues the close frame a shutting-down relay sends.
    pub(super) fn close_for_shutdown(&mut self) {
        self.out.close(CloseCode::Away, "relay shutting down");
    }

    /// Writes the control frames queued, if the socket takes them.
    pub(super) fn flush_control(&mut self, stream: &mut TcpStream) -> io::Result<bool> {
        self.out.flush_control(stream)
    }

    /// Writes the relay's lines as WebSocket frames.
    pub(super) fn write_lines(
        &mut self,
        stream: &mut TcpStream,
        bufs: &[io::IoSlice<'_>],
    ) -> io::Result<usize> {
        self.out.write_lines(stream, bufs)
    }
}

impl Web {
    /// Binds the web listener.
    pub(super) fn bind(config: WebConfig) -> io::Result<Web> {
        Ok(Web {
            listener: TcpListener::bind(config.listen)?,
            ready: true,
            config,
            http: Slab::new(),
            next_idle_check: Instant::now(),
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
                        warn!("web: refused {addr}: {} requests pending", web::MAX_PENDING);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let entry = web.http.vacant_entry();
                    let token = Token(HTTP_BASE + entry.key());
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE)
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
        let mut buf = [0u8; 4096];
        loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => return self.drop_http(key),
                Ok(n) => {
                    conn.head.extend_from_slice(&buf[..n]);
                    if conn.head.len() > http::MAX_HEAD {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.drop_http(key),
            }
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
            http::Request::Metrics => {
                let text = web::metrics::render(&self.relay.stats(), &self.gauges());
                http::response(
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    text.as_bytes(),
                )
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

    fn start_answer(&mut self, key: usize, answer: Vec<u8>) {
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

    fn drop_http(&mut self, key: usize) {
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
        // 129 bytes into a fresh socket's buffer: it goes at once or the
        // connection is gone.
        if conn.stream.write(&reply).ok() != Some(reply.len()) {
            return;
        }
        let max_frame = self.relay.limits().max_frame;
        let web_conn = WebConn {
            incoming: Incoming::new(PRE_AUTH_MESSAGE.min(max_frame)),
            out: Outgoing::default(),
            last_heard: Instant::now(),
            pinged: false,
            max_frame,
        };
        let relay_conn = Conn {
            stream: conn.stream,
            addr: conn.addr,
            write_interest: false,
            read_turn: 0,
            web: Some(Box::new(web_conn)),
        };
        match self.relay.admit_from(relay_conn, Some(conn.addr.ip())) {
            Ok(id) => {
                if let Some(peer) = self.relay.io_mut(id)
                    && self
                        .poll
                        .registry()
                        .register(&mut peer.stream, Token(id), Interest::READABLE)
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

    /// Connections by kind and bytes queued, for `/metrics`.
    fn gauges(&self) -> Gauges {
        let mut gauges = Gauges {
            http_pending: self.web.as_ref().map_or(0, |web| web.http.len()),
            ..Gauges::default()
        };
        for id in self.relay.ids() {
            let Some(peer) = self.relay.peer(id) else {
                continue;
            };
            if peer.io.web.is_some() {
                gauges.web += 1;
            } else {
                gauges.tcp += 1;
            }
            gauges.bytes_queued += peer.queued_bytes();
        }
        gauges
    }
}

/// Where the request head in `buf` ends: after its blank line.
fn head_length(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}
