//! Subscribers over TLS (`--subscribe-tls`): a relay's `--web` over wss,
//! or Redis's `--tls-port`. Each subscriber shakes hands with rustls
//! (blocking, before the run), sends its greeting (the WebSocket upgrade,
//! Redis's `SUBSCRIBE`) inside TLS, and is then read like any other: the
//! records' plaintext goes to its inbox. The server's certificate is not
//! verified: relay-bench drives servers on this machine only, and the
//! point is the cost of TLS on the server, which the same handshake and
//! cipher suites give either way.

use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use super::super::LoadError;

/// Takes any certificate, and checks the handshake's signature with it.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn config() -> Result<Arc<ClientConfig>, LoadError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| LoadError::Setup(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Connects to `addr`, shakes hands, sends `greeting` inside TLS; then the
/// socket is non-blocking for the poll loop.
pub(super) fn connect(
    addr: SocketAddr,
    greeting: &[u8],
) -> Result<(mio::net::TcpStream, Box<ClientConnection>), LoadError> {
    let connect_error = |error| LoadError::Connect { addr, error };
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(connect_error)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = ClientConnection::new(config()?, name)
        .map_err(|e| LoadError::Setup(format!("TLS: {e}")))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut stream)
            .map_err(|e| LoadError::Setup(format!("TLS handshake with {addr}: {e}")))?;
    }
    tls.writer().write_all(greeting)?;
    while tls.wants_write() {
        tls.write_tls(&mut stream)?;
    }
    stream.set_nonblocking(true)?;
    Ok((mio::net::TcpStream::from_std(stream), Box::new(tls)))
}

/// Reads plaintext into `buf`: what rustls holds, else records from the
/// socket until some plaintext comes; `WouldBlock` when the socket has
/// nothing, `Ok(0)` when the server closed.
pub(crate) fn read(
    tls: &mut ClientConnection,
    stream: &mut mio::net::TcpStream,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if tls.read_tls(stream)? == 0 {
            return Ok(0);
        }
        tls.process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
    }
}
