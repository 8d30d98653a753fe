//! TLS on `--web` (`--web-tls-cert`/`--web-tls-key`, or
//! `--web-tls-self-signed`), without the poll loop: the certificate read
//! from PEM files or made by `rcgen`, the `rustls` server config (its
//! default TLS 1.3 and 1.2, ALPN `http/1.1`), why a connection was refused
//! before its handshake ended, and the reads and writes of a
//! `ServerConnection` over a non-blocking socket. The loop
//! (`event_loop/web.rs`) decides when; this module never waits.
//!
//! It never writes a private key anywhere, nor logs one: what is logged
//! about a certificate is its SHA-256 fingerprint.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rcgen::PublicKeyData as _;
use rustls::ServerConfig;
use rustls::server::ServerConnection;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Most bytes of TLS records a browser's connection may have waiting to
/// be written: past it, a write takes nothing more until they go, as a
/// plain socket's full buffer would.
pub const SEND_BUFFER_LIMIT: usize = 256 * 1024;

/// Where the web listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files: the chain (leaf first) and its private key; read again
    /// on SIGHUP and when either changes.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// A certificate made at start for these names, kept in memory only.
    SelfSigned {
        /// Its subject alternative names.
        names: Vec<String>,
    },
}

/// Why a certificate could not be used.
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read, or held no PEM of the kind wanted.
    File {
        /// Which file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// rustls refused the certificate and key (a key that does not match,
    /// say).
    Config(rustls::Error),
    /// rcgen could not make a certificate.
    Generate(rcgen::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::File { path, why } => write!(f, "{}: {why}", path.display()),
            TlsError::Config(e) => write!(f, "the certificate and key: {e}"),
            TlsError::Generate(e) => write!(f, "making a self-signed certificate: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// A certificate ready to serve.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The config every new connection takes.
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate, as `AB:CD:…`.
    pub fingerprint: String,
    /// Base64 of the SHA-256 of a self-signed certificate's public key
    /// (what Chromium's `--ignore-certificate-errors-spki-list` takes).
    pub spki_pin: Option<String>,
}

/// Reads or makes the certificate `source` names.
pub fn load(source: &TlsSource) -> Result<Identity, TlsError> {
    match source {
        TlsSource::Files { cert, key } => {
            let chain = read_chain(cert)?;
            let key = read_key(key)?;
            let fingerprint = fingerprint(&chain[0]);
            Ok(Identity {
                config: server_config(chain, key)?,
                fingerprint,
                spki_pin: None,
            })
        }
        TlsSource::SelfSigned { names } => {
            let made =
                rcgen::generate_simple_self_signed(names.clone()).map_err(TlsError::Generate)?;
            let spki = made.signing_key.subject_public_key_info();
            let pin = base64::engine::general_purpose::STANDARD
                .encode(ring::digest::digest(&ring::digest::SHA256, &spki));
            let der = made.cert.der().clone();
            let key = PrivateKeyDer::try_from(made.signing_key.serialize_der()).map_err(|why| {
                TlsError::File {
                    path: PathBuf::from("(self-signed key)"),
                    why: why.to_owned(),
                }
            })?;
            let fingerprint = fingerprint(&der);
            Ok(Identity {
                config: server_config(vec![der], key)?,
                fingerprint,
                spki_pin: Some(pin),
            })
        }
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |why: String| TlsError::File {
        path: path.to_owned(),
        why,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error("no CERTIFICATE in it".to_owned()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// The server config: rustls's safe default versions (TLS 1.3 and 1.2)
/// with ring, no client certificates, ALPN `http/1.1`.
fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// SHA-256 of `der`, as colon-separated upper-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// Why a TLS connection was closed before it became a browser member.
/// Each is counted (`eaxchat_web_tls_refused_total{reason=…}`) and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRefusal {
    /// Not TLS: what came is no record a ClientHello could be in.
    Garbage,
    /// A record longer than TLS allows.
    Oversized,
    /// The handshake did not finish within its deadline.
    Timeout,
    /// Too many handshakes under way from one address.
    FloodAddress,
    /// Too many handshakes under way in all.
    FloodTotal,
    /// Plain HTTP to the TLS listener: answered with a redirect.
    PlainHttp,
    /// The handshake failed otherwise (no common version or cipher, a bad
    /// alert, a closed socket).
    Failed,
}

impl TlsRefusal {
    /// Every reason, in the order the counters are shown.
    pub const ALL: [TlsRefusal; 7] = [
        TlsRefusal::Garbage,
        TlsRefusal::Oversized,
        TlsRefusal::Timeout,
        TlsRefusal::FloodAddress,
        TlsRefusal::FloodTotal,
        TlsRefusal::PlainHttp,
        TlsRefusal::Failed,
    ];

    /// The counter's label.
    pub fn label(self) -> &'static str {
        match self {
            TlsRefusal::Garbage => "garbage",
            TlsRefusal::Oversized => "oversized_record",
            TlsRefusal::Timeout => "handshake_timeout",
            TlsRefusal::FloodAddress => "flood_per_address",
            TlsRefusal::FloodTotal => "flood_total",
            TlsRefusal::PlainHttp => "plain_http",
            TlsRefusal::Failed => "handshake_failed",
        }
    }

    /// What a rustls error during the handshake means here.
    pub fn classify(error: &rustls::Error) -> TlsRefusal {
        use rustls::{Error, InvalidMessage};
        match error {
            Error::InvalidMessage(InvalidMessage::MessageTooLarge) => TlsRefusal::Oversized,
            Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => TlsRefusal::Garbage,
            _ => TlsRefusal::Failed,
        }
    }
}

/// The TLS counters of the web listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsCounters {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Connections refused, by [`TlsRefusal::ALL`]'s order.
    pub refused: [u64; 7],
    /// Established connections closed for a TLS error (a bad record).
    pub errors_after_handshake: u64,
    /// Certificates loaded again (SIGHUP or a changed file).
    pub reloads: u64,
    /// Reloads refused: the old certificate stays.
    pub reload_failures: u64,
}

impl TlsCounters {
    /// Counts one refusal.
    pub fn refuse(&mut self, why: TlsRefusal) {
        if let Some(at) = TlsRefusal::ALL.iter().position(|r| *r == why) {
            self.refused[at] += 1;
        }
    }
}

/// Whether `first`, the first byte a client sent to the TLS listener,
/// starts a plain HTTP request (`GET …`) rather than a TLS record.
pub fn looks_like_plain_http(first: u8) -> bool {
    first.is_ascii_uppercase()
}

/// A TLS error as the socket layer sees it.
pub fn io_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// Writes the TLS records waiting, until they are all gone or the socket
/// is full (then `Ok`: they wait for the next writable event).
pub fn flush(conn: &mut ServerConnection, socket: &mut impl Write) -> io::Result<()> {
    while conn.wants_write() {
        match conn.write_tls(socket) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads plaintext from an established connection into `buf`: what
/// rustls holds first, then records from the socket, until some plaintext
/// came or the socket would block (`WouldBlock`). `Ok(0)`: the peer
/// closed. A bad record is an `InvalidData` error (the alert is sent).
pub fn read_plaintext(
    conn: &mut ServerConnection,
    socket: &mut (impl Read + Write),
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match conn.reader().read(buf) {
            Ok(n) => return Ok(n + drain_more(conn, &mut buf[n..])),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if conn.read_tls(socket)? == 0 {
            return Ok(0);
        }
        if let Err(e) = conn.process_new_packets() {
            let _ = flush(conn, socket);
            return Err(io_error(e));
        }
        flush(conn, socket)?;
    }
}

/// More plaintext rustls already holds, without reading the socket.
fn drain_more(conn: &mut ServerConnection, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match conn.reader().read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

/// A writer that seals what it is given into TLS records and sends them:
/// a WebSocket frame writer's socket. It takes nothing while earlier
/// records still wait for the socket, and at most what rustls's buffer
/// limit allows, so a slow browser blocks like a full socket would.
pub struct TlsWriter<'a, S: Write> {
    /// The connection's TLS state.
    pub conn: &'a mut ServerConnection,
    /// Its socket.
    pub socket: &'a mut S,
}

impl<S: Write> Write for TlsWriter<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        flush(self.conn, self.socket)?;
        if self.conn.wants_write() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let wanted: usize = bufs.iter().map(|b| b.len()).sum();
        let taken = self.conn.writer().write_vectored(bufs)?;
        if taken == 0 && wanted > 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        flush(self.conn, self.socket)?;
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        flush(self.conn, self.socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_serves_http_1_1() {
        let identity = load(&TlsSource::SelfSigned {
            names: vec!["localhost".to_owned()],
        })
        .expect("a certificate");
        assert_eq!(identity.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert_eq!(identity.fingerprint.len(), 32 * 3 - 1);
        assert_eq!(identity.spki_pin.map(|pin| pin.len()), Some(44));
    }

    #[test]
    fn missing_or_empty_files_are_named() {
        let dir = tempfile::tempdir().expect("a directory");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let error = load(&TlsSource::Files {
            cert: empty.clone(),
            key: empty.clone(),
        })
        .expect_err("no certificate");
        assert!(error.to_string().contains("empty.pem"), "{error}");
        let error = load(&TlsSource::Files {
            cert: dir.path().join("absent.pem"),
            key: empty,
        })
        .expect_err("no file");
        assert!(error.to_string().contains("absent.pem"), "{error}");
    }

    #[test]
    fn refusals_are_classified() {
        use rustls::{Error, InvalidMessage};
        let cases = [
            (
                Error::InvalidMessage(InvalidMessage::MessageTooLarge),
                TlsRefusal::Oversized,
            ),
            (
                Error::InvalidMessage(InvalidMessage::InvalidContentType),
                TlsRefusal::Garbage,
            ),
            (Error::HandshakeNotComplete, TlsRefusal::Failed),
        ];
        for (error, want) in cases {
            assert_eq!(TlsRefusal::classify(&error), want, "{error}");
        }
        let mut counters = TlsCounters::default();
        counters.refuse(TlsRefusal::Timeout);
        assert_eq!(counters.refused[2], 1);
        assert!(looks_like_plain_http(b'G'));
        assert!(!looks_like_plain_http(0x16));
    }
}
