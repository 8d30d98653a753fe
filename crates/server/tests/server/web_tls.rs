//! TLS on `--web`, over real sockets with a rustls client: a browser
//! member over wss chats with a TCP member; plain HTTP gets a redirect;
//! hostile TLS input (garbage, an oversized record, a stalled handshake, a
//! flood from one address) closes only its own connection, counted, while
//! both members keep chatting; a certificate replaced on disk is served to
//! new connections and the open ones stay; `/metrics` moves to
//! `--metrics`. Every wait is bounded; the relay is stopped by its PID.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eaxchat_test_support::{RelayProcess, TestClient, WAIT};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use tungstenite::Message;

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Accepts any certificate: the tests compare the one served with the
/// one they wrote, and check the handshake's signature as usual.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
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

fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TLS connection to `addr` as `chat.test`, handshake done.
fn connect_tls(addr: SocketAddr) -> Tls {
    try_connect_tls(addr).unwrap()
}

fn try_connect_tls(addr: SocketAddr) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect_timeout(&addr, WAIT)?;
    tcp.set_read_timeout(Some(WAIT))?;
    let name = ServerName::try_from("chat.test").unwrap();
    let conn = ClientConnection::new(client_config(), name).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// The DER of the certificate `tls` was served.
fn served_cert(tls: &Tls) -> Vec<u8> {
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

/// One GET over a new TLS connection: the whole response.
fn https_get(addr: SocketAddr, path: &str) -> String {
    let mut tls = connect_tls(addr);
    write!(tls, "GET {path} HTTP/1.1\r\nHost: chat.test\r\n\r\n").unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// One GET over plain TCP: the whole response.
fn http_get(addr: SocketAddr, path: &str, extra: &str) -> String {
    let mut tcp = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: chat.test:1\r\n{extra}\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = tcp.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// The value of a sample line starting with `name` in `/metrics`.
fn sample(addr: SocketAddr, name: &str) -> u64 {
    let body = https_get(addr, "/metrics");
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
        .parse()
        .unwrap()
}

/// Waits (bounded) until `/metrics` shows `name` at least `least`.
fn wait_for_count(addr: SocketAddr, name: &str, least: u64) {
    let deadline = Instant::now() + WAIT;
    while sample(addr, name) < least {
        assert!(Instant::now() < deadline, "{name} stayed under {least}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A browser member: a WebSocket over TLS, sealing with the relay's key.
struct WssMember {
    ws: tungstenite::WebSocket<Tls>,
    cipher: eaxchat_proto::cipher::Cipher,
}

impl WssMember {
    fn join(relay: &RelayProcess, web: SocketAddr) -> WssMember {
        let tls = connect_tls(web);
        let (ws, _) = tungstenite::client::client("wss://chat.test/ws", tls).unwrap();
        let mut member = WssMember {
            ws,
            cipher: eaxchat_proto::cipher::Cipher::new(&relay.key).unwrap(),
        };
        // A connection is sent frames once one of its own has opened.
        member.send("browser here");
        member
    }

    fn send(&mut self, text: &str) {
        let mut line = bytes::BytesMut::new();
        self.cipher.seal_into(text.as_bytes(), &mut line);
        let line = std::str::from_utf8(&line).unwrap().trim_end().to_owned();
        self.ws.send(Message::text(line)).unwrap();
    }

    /// Reads messages until one opens to `text` (bounded).
    fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let Message::Text(line) = self.ws.read().unwrap() else {
                continue;
            };
            if let Ok(plain) = self.cipher.open(line.as_bytes())
                && String::from_utf8_lossy(plain).contains(text)
            {
                return;
            }
        }
        panic!("{text:?} did not come over wss");
    }
}

/// Reads frames until one opens to a text holding `text` (bounded).
fn tcp_expect(member: &mut TestClient, text: &str) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some(plain) = member.try_recv(Duration::from_millis(200))
            && String::from_utf8_lossy(&plain).contains(text)
        {
            return;
        }
    }
    panic!("{text:?} did not come over TCP");
}

/// Writes a fresh certificate and key for `chat.test` to the files;
/// returns the certificate's DER.
fn write_cert(cert: &Path, key: &Path) -> Vec<u8> {
    let made = rcgen::generate_simple_self_signed(vec!["chat.test".to_owned()]).unwrap();
    // The key first: a reload between the two writes then sees a key that
    // does not match the old certificate, is refused and is retried.
    std::fs::write(key, made.signing_key.serialize_pem()).unwrap();
    std::fs::write(cert, made.cert.pem()).unwrap();
    made.cert.der().to_vec()
}

/// The web listener's address, from the line the relay logs at start.
fn web_address(relay: &RelayProcess) -> SocketAddr {
    let log = relay.log();
    let line = log
        .lines()
        .find(|line| line.contains("the chat page on https://"))
        .unwrap_or_else(|| panic!("no web line in\n{log}"));
    let rest = line.split("https://").nth(1).unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    der: Vec<u8>,
    relay: RelayProcess,
    web: SocketAddr,
}

fn start(extra: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let der = write_cert(&cert, &key);
    let mut args = vec![
        "--web",
        "127.0.0.1:0",
        "--web-tls-cert",
        cert.to_str().unwrap(),
        "--web-tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let relay = RelayProcess::start(&args);
    let web = web_address(&relay);
    Fixture {
        _dir: dir,
        cert,
        key,
        der,
        relay,
        web,
    }
}

/// A browser member over wss and a TCP member chat both ways; ALPN gives
/// http/1.1; plain HTTP to the TLS port is redirected to https.
#[test]
fn a_wss_member_and_a_tcp_member_chat_both_ways() {
    let fixture = start(&[]);
    let tls = connect_tls(fixture.web);
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(served_cert(&tls), fixture.der);
    assert!(https_get(fixture.web, "/healthz").ends_with("\r\n\r\nok\n"));
    let mut browser = WssMember::join(&fixture.relay, fixture.web);
    let mut tcp = fixture.relay.connect();
    tcp.send(b"tcp here");
    browser.send("from the browser");
    tcp_expect(&mut tcp, "from the browser");
    tcp.send(b"from the terminal");
    browser.expect("from the terminal");
    let redirect = http_get(fixture.web, "/app.js", "");
    assert!(
        redirect.starts_with("HTTP/1.1 308 ")
            && redirect.contains("Location: https://chat.test:1/app.js"),
        "{redirect}"
    );
    assert_eq!(
        sample(
            fixture.web,
            "eaxchat_web_tls_refused_total{reason=\"plain_http\"}"
        ),
        1
    );
}

/// Garbage, an oversized record, a stalled handshake and a flood from one
/// address each close only their own connections, each counted, while a
/// browser member and a TCP member keep chatting.
#[test]
fn hostile_tls_input_closes_only_its_own_connection() {
    let fixture = start(&["--web-tls-handshake-timeout", "1"]);
    let web = fixture.web;
    let mut browser = WssMember::join(&fixture.relay, web);
    let mut tcp = fixture.relay.connect();
    tcp.send(b"tcp here");
    let mut round = 0;
    let mut chat = |browser: &mut WssMember, tcp: &mut TestClient| {
        round += 1;
        browser.send(&format!("browser round {round}"));
        tcp_expect(tcp, &format!("browser round {round}"));
        tcp.send(format!("tcp round {round}").as_bytes());
        browser.expect(&format!("tcp round {round}"));
    };
    let closed = |mut stream: TcpStream| {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + WAIT;
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return true,
                Ok(_) if Instant::now() < deadline => {}
                Ok(_) => return false,
            }
        }
    };
    let raw = || TcpStream::connect_timeout(&web, WAIT).unwrap();

    // Garbage where a ClientHello should be.
    let mut garbage = raw();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    assert!(closed(garbage), "garbage left open");
    wait_for_count(web, "eaxchat_web_tls_refused_total{reason=\"garbage\"}", 1);
    chat(&mut browser, &mut tcp);

    // A record header claiming more than TLS allows.
    let mut oversized = raw();
    oversized
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff])
        .unwrap();
    oversized.write_all(&[0u8; 1024]).unwrap();
    assert!(closed(oversized), "oversized record left open");
    wait_for_count(
        web,
        "eaxchat_web_tls_refused_total{reason=\"oversized_record\"}",
        1,
    );
    chat(&mut browser, &mut tcp);

    // Half a ClientHello, then nothing: closed at the 1 s deadline.
    let mut stalled = raw();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
        .unwrap();
    let began = Instant::now();
    assert!(closed(stalled), "stalled handshake left open");
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "{:?}",
        began.elapsed()
    );
    wait_for_count(
        web,
        "eaxchat_web_tls_refused_total{reason=\"handshake_timeout\"}",
        1,
    );
    chat(&mut browser, &mut tcp);

    // A flood of handshakes from one address (127.0.0.2, so that this
    // test's own requests from 127.0.0.1 still get in): past 32 pending,
    // refused.
    let from_other = || {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())
            .unwrap();
        socket.connect_timeout(&web.into(), WAIT).unwrap();
        TcpStream::from(socket)
    };
    let flood: Vec<TcpStream> = (0..48).map(|_| from_other()).collect();
    wait_for_count(
        web,
        "eaxchat_web_tls_refused_total{reason=\"flood_per_address\"}",
        10,
    );
    chat(&mut browser, &mut tcp);
    drop(flood);
    assert!(
        fixture
            .relay
            .log()
            .contains("TLS refused (flood_per_address)")
    );
}

/// A certificate replaced on disk: new connections get it, the open
/// browser member stays up and keeps chatting; SIGHUP reloads too.
#[test]
fn a_replaced_certificate_reaches_new_connections_and_drops_none() {
    let fixture = start(&[]);
    let mut browser = WssMember::join(&fixture.relay, fixture.web);
    let mut tcp = fixture.relay.connect();
    tcp.send(b"tcp here");
    let new_der = write_cert(&fixture.cert, &fixture.key);
    assert_ne!(new_der, fixture.der);
    let deadline = Instant::now() + WAIT;
    while served_cert(
        &try_connect_tls(fixture.web).unwrap_or_else(|e| panic!("{e}: {}", fixture.relay.log())),
    ) != new_der
    {
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    browser.send("still here");
    tcp_expect(&mut tcp, "still here");
    tcp.send(b"and answered");
    browser.expect("and answered");
    // A broken file is refused and the certificate in force stays.
    let refused = "eaxchat_web_tls_reloads_total{outcome=\"refused\"}";
    let before = sample(fixture.web, refused);
    std::fs::write(&fixture.cert, "not a certificate").unwrap();
    fixture.relay.hang_up();
    wait_for_count(fixture.web, refused, before + 1);
    assert_eq!(served_cert(&connect_tls(fixture.web)), new_der);
}

/// With `--metrics`, `/metrics` is served there and not on the page's
/// listener; with a token, only to requests that bear it.
#[test]
fn metrics_has_its_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let mut fixture = start(&[
        "--metrics",
        "127.0.0.1:0",
        "--metrics-token-file",
        token.to_str().unwrap(),
    ]);
    let line = fixture
        .relay
        .wait_for_log("metrics: /metrics and /healthz on http://");
    let metrics: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    let on_page = https_get(fixture.web, "/metrics");
    assert!(on_page.starts_with("HTTP/1.1 404 "), "{on_page}");
    assert!(https_get(fixture.web, "/healthz").starts_with("HTTP/1.1 200 "));
    let without = http_get(metrics, "/metrics", "");
    assert!(without.starts_with("HTTP/1.1 401 "), "{without}");
    let with = http_get(
        metrics,
        "/metrics",
        "Authorization: Bearer s3cret-token\r\n",
    );
    assert!(with.starts_with("HTTP/1.1 200 "), "{with}");
    assert!(with.contains("eaxchat_web_tls_handshakes_total "), "{with}");
}
