//! `/metrics`: its answer (the counters and gauges, and what other parts
//! of the loop add), served on `--web` to whom [`MetricsAccess`] lets in,
//! and `--metrics ADDR`, a listener of its own, so the page's public
//! listener never shows the message rates.
//!
//! [`MetricsAccess`]: crate::web::config::MetricsAccess
//!
//! On `--metrics`: One
//! request head per connection, one answer, then the connection closes;
//! a head not whole within [`web::HEAD_TIMEOUT`] is dropped. With
//! `--metrics-token`, a request needs `Authorization: Bearer TOKEN` here
//! too.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Instant;

use log::warn;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};
use slab::Slab;

use super::Server;
use crate::web::{self, Gauges, http};

/// The metrics listener's token.
pub(super) const METRICS_LISTENER: Token = Token(usize::MAX - 6);

/// Tokens of its connections: this plus their slab key.
pub(super) const METRICS_BASE: usize = usize::MAX / 4 * 3;

/// Most metrics connections at once.
pub(super) const MAX_CONNS: usize = 64;

/// The `--metrics` listener and its connections.
pub(super) struct Metrics {
    listener: TcpListener,
    token: Option<String>,
    conns: Slab<MetricsConn>,
}

struct MetricsConn {
    stream: TcpStream,
    head: Vec<u8>,
    since: Instant,
    answer: Option<(Vec<u8>, usize)>,
}

impl Server {
    /// Opens `/metrics`'s own listener (`--metrics`); `token`, if given,
    /// must come as a bearer token. Returns the address bound.
    pub fn listen_metrics(
        &mut self,
        addr: SocketAddr,
        token: Option<String>,
    ) -> io::Result<SocketAddr> {
        let mut listener = TcpListener::bind(addr)?;
        self.poll
            .registry()
            .register(&mut listener, METRICS_LISTENER, Interest::READABLE)?;
        let bound = listener.local_addr()?;
        self.metrics = Some(Metrics {
            listener,
            token,
            conns: Slab::new(),
        });
        Ok(bound)
    }

    /// Accepts what the metrics listener has.
    pub(super) fn accept_metrics(&mut self) {
        let Some(metrics) = &mut self.metrics else {
            return;
        };
        loop {
            match metrics.listener.accept() {
                Ok((mut stream, addr)) => {
                    if metrics.conns.len() >= MAX_CONNS {
                        warn!("metrics: refused {addr}: {MAX_CONNS} connections open");
                        continue;
                    }
                    let entry = metrics.conns.vacant_entry();
                    let token = Token(METRICS_BASE + entry.key());
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_ok()
                    {
                        entry.insert(MetricsConn {
                            stream,
                            head: Vec::new(),
                            since: Instant::now(),
                            answer: None,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        warn!("metrics: accept failed: {e}");
                    }
                    return;
                }
            }
        }
    }

    /// An event on a metrics connection: read its head, answer, close.
    pub(super) fn metrics_event(&mut self, key: usize) {
        let Some(conn) = self.metrics.as_mut().and_then(|m| m.conns.get_mut(key)) else {
            return;
        };
        if conn.answer.is_none() {
            if http::read_head(&mut conn.stream, &mut conn.head) == http::HeadRead::Closed {
                return self.drop_metrics(key);
            }
            let answer = match http::parse(&conn.head) {
                Ok(None) => return,
                Ok(Some(request)) => self.metrics_answer(request),
                Err(refusal) => http::refusal(refusal),
            };
            if let Some(conn) = self.metrics.as_mut().and_then(|m| m.conns.get_mut(key)) {
                conn.answer = Some((answer, 0));
            }
        }
        let Some(conn) = self.metrics.as_mut().and_then(|m| m.conns.get_mut(key)) else {
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
        self.drop_metrics(key);
    }

    fn metrics_answer(&self, request: http::Request) -> Vec<u8> {
        let token = self.metrics.as_ref().and_then(|m| m.token.as_deref());
        match request {
            http::Request::Health => http::response("200 OK", "text/plain; charset=utf-8", b"ok\n"),
            http::Request::Metrics { bearer } => match token {
                Some(token)
                    if !bearer.is_some_and(|b| crate::web::config::constant_eq(&b, token)) =>
                {
                    http::refusal(http::Refusal::Unauthorized)
                }
                _ => self.metrics_response(),
            },
            _ => http::refusal(http::Refusal::NotFound),
        }
    }

    fn drop_metrics(&mut self, key: usize) {
        if let Some(metrics) = &mut self.metrics
            && let Some(mut conn) = metrics.conns.try_remove(key)
        {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Drops metrics connections whose head is late.
    pub(super) fn check_metrics(&mut self, now: Instant) {
        let Some(metrics) = &self.metrics else { return };
        let late: Vec<usize> = metrics
            .conns
            .iter()
            .filter(|(_, conn)| now.duration_since(conn.since) > web::HEAD_TIMEOUT)
            .map(|(key, _)| key)
            .collect();
        for key in late {
            self.drop_metrics(key);
        }
    }

    /// `/metrics`'s answer, on the page's listener or `--metrics`'s: the
    /// counters and gauges, then what the other parts of the loop add.
    pub(super) fn metrics_response(&self) -> Vec<u8> {
        let mut text = web::metrics::render(&self.relay.stats(), &self.gauges());
        text.push_str(&self.members_metrics());
        http::response(
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            text.as_bytes(),
        )
    }

    /// Connections by kind and bytes queued, for `/metrics`.
    pub(super) fn gauges(&self) -> Gauges {
        let mut gauges = Gauges {
            http_pending: self.web.as_ref().map_or(0, |web| web.http.len()),
            tls: self
                .web
                .as_ref()
                .and_then(|web| web.tls.as_ref())
                .map(|tls| tls.counters),
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
