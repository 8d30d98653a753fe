//! TLS on `--web` in the poll loop: the certificate in force and its
//! reload (on SIGHUP, and when the PEM files change, looked at about once
//! a second), the first byte that tells a TLS client from plain HTTP, the
//! handshake run while the request head is read, its deadline, and the
//! refusals, each logged with its reason and counted.
//!
//! A reload changes what new connections get; connections already open
//! keep the config they were made with, so a renewal drops nobody. A
//! reload that fails keeps the certificate in force and says why.

use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use log::{error, info, warn};
use rustls::ServerConfig;
use rustls::server::ServerConnection;

use super::Server;
use crate::web::http;
use crate::web::tls::{self as web_tls, TlsCounters, TlsRefusal, TlsSource};

/// How often the certificate files are looked at for a change.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Where a connection to the web listener is in TLS.
pub(super) enum TlsPhase {
    /// A plain listener.
    Plain,
    /// A TLS listener, nothing read yet.
    Sniffing,
    /// A TLS client: the handshake, then the request head, over rustls.
    Tls(Box<ServerConnection>),
    /// Plain HTTP sent to the TLS listener: its head is read to answer
    /// with a redirect.
    PlainOnTls,
}

/// The web listener's TLS: the certificate in force, where it came from,
/// and the counters.
pub(super) struct TlsState {
    source: TlsSource,
    config: Arc<ServerConfig>,
    stamps: Vec<Option<(SystemTime, u64, u64)>>,
    next_check: Instant,
    /// What `/metrics` shows.
    pub(super) counters: TlsCounters,
}

impl TlsState {
    /// Reads or makes the certificate; logs its fingerprint.
    pub(super) fn load(source: TlsSource) -> io::Result<TlsState> {
        let identity =
            web_tls::load(&source).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        match &identity.spki_pin {
            Some(pin) => info!(
                "web: TLS with a self-signed certificate, SHA-256 fingerprint {}, \
                 public key pin (sha256/base64) {pin}",
                identity.fingerprint
            ),
            None => info!(
                "web: TLS certificate SHA-256 fingerprint {}",
                identity.fingerprint
            ),
        }
        Ok(TlsState {
            stamps: stamps(&source),
            source,
            config: identity.config,
            next_check: Instant::now() + CHECK_INTERVAL,
            counters: TlsCounters::default(),
        })
    }

    /// Counts and logs a connection closed before its handshake ended.
    /// A flood's refusals are logged at the first few and then at powers
    /// of two, so a flood cannot fill the log.
    pub(super) fn refuse(&mut self, addr: SocketAddr, why: TlsRefusal, detail: &str) {
        self.counters.refuse(why);
        let at = TlsRefusal::ALL.iter().position(|r| *r == why).unwrap_or(0);
        let count = self.counters.refused[at];
        if count <= 10 || count.is_power_of_two() {
            warn!(
                "web: {addr}: TLS refused ({}): {detail} ({count} so far)",
                why.label()
            );
        }
    }

    /// Reads the certificate again if `hangup` or its files changed.
    fn reload_if_changed(&mut self, hangup: bool, now: Instant) {
        if !hangup && now < self.next_check {
            return;
        }
        self.next_check = now + CHECK_INTERVAL;
        let TlsSource::Files { cert, .. } = &self.source else {
            return;
        };
        let stamps = stamps(&self.source);
        if !hangup && stamps == self.stamps {
            return;
        }
        self.stamps = stamps;
        match web_tls::load(&self.source) {
            Ok(identity) => {
                self.config = identity.config;
                self.counters.reloads += 1;
                info!(
                    "web: TLS certificate {} reloaded{}: SHA-256 fingerprint {}; \
                     new connections get it, open ones keep theirs",
                    cert.display(),
                    if hangup { " on SIGHUP" } else { "" },
                    identity.fingerprint
                );
            }
            Err(e) => {
                self.counters.reload_failures += 1;
                error!("web: TLS certificate not reloaded, the one in force stays: {e}");
            }
        }
    }
}

/// What identifies the versions of the certificate and key files: their
/// mtime, size and inode (certbot renames new files over the links'
/// targets).
fn stamps(source: &TlsSource) -> Vec<Option<(SystemTime, u64, u64)>> {
    let stamp = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len(), meta.ino()))
    };
    match source {
        TlsSource::Files { cert, key } => vec![stamp(cert), stamp(key)],
        TlsSource::SelfSigned { .. } => Vec::new(),
    }
}

/// What reading a TLS connection's head gave.
enum Read {
    /// Go on (more to come, or the head is there to parse).
    More,
    /// The peer closed, or the socket failed.
    Closed,
    /// Refused, with the reason and rustls's words.
    Refused(TlsRefusal, String),
}

impl Server {
    /// An event on a connection to the TLS listener still in HTTP: its
    /// first byte decides TLS or plain HTTP; then the handshake and the
    /// request head, read until the socket would block.
    pub(super) fn tls_http_event(&mut self, key: usize) {
        let Some(web) = &mut self.web else { return };
        let Some(state) = &web.tls else { return };
        let Some(conn) = web.http.get_mut(key) else {
            return;
        };
        if matches!(conn.tls, TlsPhase::Sniffing) {
            let mut first = [0u8; 1];
            match conn.stream.peek(&mut first) {
                Ok(0) => return self.drop_http(key),
                Ok(_) if web_tls::looks_like_plain_http(first[0]) => {
                    conn.tls = TlsPhase::PlainOnTls;
                    return self.http_event(key);
                }
                Ok(_) => match ServerConnection::new(state.config.clone()) {
                    Ok(mut tls) => {
                        tls.set_buffer_limit(Some(web_tls::SEND_BUFFER_LIMIT));
                        conn.tls = TlsPhase::Tls(Box::new(tls));
                    }
                    Err(e) => {
                        error!("web: TLS: {e}");
                        return self.drop_http(key);
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return self.drop_http(key),
            }
        }
        let TlsPhase::Tls(tls) = &mut conn.tls else {
            return;
        };
        let was_handshaking = tls.is_handshaking();
        let outcome = read_tls_head(tls.as_mut(), &mut conn.stream, &mut conn.head);
        let handshook = was_handshaking && !tls.is_handshaking();
        let addr = conn.addr;
        let Some(state) = &mut web.tls else { return };
        if handshook {
            state.counters.handshakes += 1;
        }
        match outcome {
            Read::More => self.parse_head(key),
            Read::Closed => self.drop_http(key),
            Read::Refused(why, detail) => {
                state.refuse(addr, why, &detail);
                self.drop_http(key);
            }
        }
    }

    /// Closes TLS connections whose handshake passed its deadline.
    pub(super) fn check_tls(&mut self, now: Instant) {
        let Some(web) = &mut self.web else { return };
        let Some(state) = &mut web.tls else { return };
        let deadline = web.config.handshake_timeout;
        let late: Vec<(usize, SocketAddr)> = web
            .http
            .iter()
            .filter(|(_, conn)| match &conn.tls {
                TlsPhase::Sniffing => true,
                TlsPhase::Tls(tls) => tls.is_handshaking(),
                TlsPhase::Plain | TlsPhase::PlainOnTls => false,
            })
            .filter(|(_, conn)| now.duration_since(conn.since) > deadline)
            .map(|(key, conn)| (key, conn.addr))
            .collect();
        for (_, addr) in &late {
            state.refuse(
                *addr,
                TlsRefusal::Timeout,
                &format!("handshake not finished in {}s", deadline.as_secs_f32()),
            );
        }
        for (key, _) in late {
            self.drop_http(key);
        }
    }

    /// Reads the certificate again on SIGHUP, or when its files changed.
    pub(super) fn watch_web_tls(&mut self, hangup: bool) {
        if let Some(state) = self.web.as_mut().and_then(|web| web.tls.as_mut()) {
            state.reload_if_changed(hangup, Instant::now());
        }
    }

    /// Counts an established TLS connection closed for a bad record.
    pub(super) fn note_tls_error(&mut self, addr: SocketAddr, error: &io::Error) {
        if let Some(state) = self.web.as_mut().and_then(|web| web.tls.as_mut()) {
            state.counters.errors_after_handshake += 1;
            warn!("web: {addr}: TLS error on an open connection: {error}");
        }
    }
}

/// Feeds what the socket has to rustls until it would block, answering the
/// handshake as it goes; the plaintext (the request head) goes to `head`.
fn read_tls_head(
    tls: &mut ServerConnection,
    stream: &mut mio::net::TcpStream,
    head: &mut Vec<u8>,
) -> Read {
    if web_tls::flush(tls, stream).is_err() {
        return Read::Closed;
    }
    loop {
        match tls.read_tls(stream) {
            Ok(0) => {
                return if tls.is_handshaking() && tls.wants_read() {
                    Read::Refused(TlsRefusal::Failed, "closed during the handshake".to_owned())
                } else {
                    Read::Closed
                };
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Read::Closed,
        }
        if let Err(e) = tls.process_new_packets() {
            let _ = web_tls::flush(tls, stream);
            return Read::Refused(TlsRefusal::classify(&e), e.to_string());
        }
        let mut buf = [0u8; 4096];
        while let Ok(n) = tls.reader().read(&mut buf) {
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        if head.len() > http::MAX_HEAD {
            break;
        }
    }
    match web_tls::flush(tls, stream) {
        Ok(()) => Read::More,
        Err(_) => Read::Closed,
    }
}
