//! HTTP on `--web`: one request head per connection, parsed by `httparse`,
//! and the response it gets. The routes: `/` and the page's assets,
//! `/healthz`, `/metrics`, the app icons, and `/ws`, the WebSocket upgrade
//! (its accept key from `tungstenite`). Every response closes the
//! connection, but a 101.

use super::{icon, page};

/// The longest request head taken; past it, 431.
pub const MAX_HEAD: usize = 8 * 1024;

/// Whether a connection whose request head is being read is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadRead {
    /// It would block, or the head has grown past [`MAX_HEAD`]: parse what
    /// there is.
    Open,
    /// The peer closed it or the socket failed: drop it.
    Closed,
}

/// Reads what a non-blocking `stream` has into `head`, until it would
/// block or `head` passes [`MAX_HEAD`]; retries on `Interrupted`.
pub fn read_head(stream: &mut impl std::io::Read, head: &mut Vec<u8>) -> HeadRead {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return HeadRead::Closed,
            Ok(n) => {
                head.extend_from_slice(&buf[..n]);
                if head.len() > MAX_HEAD {
                    return HeadRead::Open;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return HeadRead::Open,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return HeadRead::Closed,
        }
    }
}

/// Most headers in a request head.
const MAX_HEADERS: usize = 32;

/// The headers every response carries: no script but the page's own, no
/// inline script or `eval`, no framing, no sniffing.
pub const SECURITY_HEADERS: &str = "Content-Security-Policy: default-src 'none'; \
     script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
     manifest-src 'self'; worker-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n\
     X-Content-Type-Options: nosniff\r\n\
     Referrer-Policy: no-referrer\r\n\
     Cache-Control: no-store\r\n";

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A file of the page.
    Asset(&'static page::Asset),
    /// `/healthz`.
    Health,
    /// `/metrics`, with the bearer token of its `Authorization` if sent.
    Metrics {
        /// The token after `Authorization: Bearer`.
        bearer: Option<String>,
    },
    /// An app icon's PNG.
    Icon(&'static [u8]),
    /// `/ws` with a WebSocket upgrade: its `Sec-WebSocket-Key`, and its
    /// `Origin` and `Host` if sent.
    Upgrade {
        /// The handshake key.
        key: String,
        /// Where the page that opens it came from.
        origin: Option<String>,
        /// The host the request was sent to.
        host: Option<String>,
    },
}

/// Why a request gets no page: its status line and a word on why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: not HTTP/1.1, or a malformed head.
    BadRequest(&'static str),
    /// 404.
    NotFound,
    /// 405: not GET.
    MethodNotAllowed,
    /// 403: the `Origin` is not allowed (`--web-origin`).
    Forbidden,
    /// 426: `/ws` without a WebSocket upgrade.
    UpgradeRequired,
    /// 431: the head is longer than [`MAX_HEAD`].
    TooLarge,
    /// 401: `/metrics` without the bearer token it needs.
    Unauthorized,
}

impl Refusal {
    fn status(self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "400 Bad Request",
            Refusal::NotFound => "404 Not Found",
            Refusal::MethodNotAllowed => "405 Method Not Allowed",
            Refusal::Forbidden => "403 Forbidden",
            Refusal::UpgradeRequired => "426 Upgrade Required",
            Refusal::TooLarge => "431 Request Header Fields Too Large",
            Refusal::Unauthorized => "401 Unauthorized",
        }
    }

    /// What the log says.
    pub fn why(self) -> &'static str {
        match self {
            Refusal::BadRequest(why) => why,
            Refusal::NotFound => "no such page",
            Refusal::MethodNotAllowed => "not GET",
            Refusal::Forbidden => "origin not allowed",
            Refusal::UpgradeRequired => "no websocket upgrade",
            Refusal::TooLarge => "request head too large",
            Refusal::Unauthorized => "no valid bearer token",
        }
    }
}

/// Parses the request head at the start of `buf`: `Ok(None)` while it is
/// incomplete.
pub fn parse(buf: &[u8]) -> Result<Option<Request>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let status = request.parse(buf).map_err(|e| {
        Refusal::BadRequest(match e {
            httparse::Error::TooManyHeaders => "too many headers",
            _ => "malformed request head",
        })
    })?;
    if status.is_partial() {
        return if buf.len() >= MAX_HEAD {
            Err(Refusal::TooLarge)
        } else {
            Ok(None)
        };
    }
    if request.version != Some(1) {
        return Err(Refusal::BadRequest("not HTTP/1.1"));
    }
    if request.method != Some("GET") {
        return Err(Refusal::MethodNotAllowed);
    }
    let path = request.path.unwrap_or("/");
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    match path {
        "/healthz" => Ok(Some(Request::Health)),
        "/metrics" => Ok(Some(Request::Metrics {
            bearer: header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|token| token.trim().to_owned()),
        })),
        "/icon-192.png" | "/icon-512.png" => {
            let size = if path == "/icon-192.png" { 192 } else { 512 };
            icon::png(size)
                .map(|png| Some(Request::Icon(png)))
                .ok_or(Refusal::NotFound)
        }
        "/ws" => {
            let upgrade = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
            let connection = header("connection").is_some_and(|v| {
                v.split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
            });
            if !upgrade || !connection {
                return Err(Refusal::UpgradeRequired);
            }
            if header("sec-websocket-version") != Some("13") {
                return Err(Refusal::BadRequest("websocket version is not 13"));
            }
            let key = header("sec-websocket-key")
                .filter(|key| key.len() == 24)
                .ok_or(Refusal::BadRequest("no Sec-WebSocket-Key"))?;
            Ok(Some(Request::Upgrade {
                key: key.to_owned(),
                origin: header("origin").map(str::to_owned),
                host: header("host").map(str::to_owned),
            }))
        }
        path => page::find(path)
            .map(|asset| Some(Request::Asset(asset)))
            .ok_or(Refusal::NotFound),
    }
}

/// Whether a WebSocket from `origin` is let in: with no `--web-origin`
/// list, only the page's own origin (an `http://` or `https://` origin
/// whose host is the request's `Host`); a request with no `Origin` (not a
/// browser) is let in, since it carries no ambient authority: it must hold
/// a key like anyone.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if !allowed.is_empty() {
        return allowed.iter().any(|ok| ok == origin || ok == "*");
    }
    let own = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    own.is_some() && own == host
}

/// A whole response: status, headers, body.
pub fn response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n{SECURITY_HEADERS}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The answer to plain HTTP sent to the TLS listener: a redirect to the
/// same path over https when the request named its host, else a page
/// that says to use https.
pub fn redirect_to_https(head: &[u8]) -> Vec<u8> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let parsed = request.parse(head).is_ok_and(|status| status.is_complete());
    let host = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::trim)
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    let path = request
        .path
        .filter(|path| path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("/");
    let explanation = "This address serves HTTPS only: open it with https:// \
        (the page needs a secure context for its cryptography).\n";
    match host {
        Some(host) if parsed => {
            let mut out = format!(
                "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://{host}{path}\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
                 Connection: close\r\n{SECURITY_HEADERS}\r\n",
                explanation.len()
            )
            .into_bytes();
            out.extend_from_slice(explanation.as_bytes());
            out
        }
        _ => response(
            "400 Bad Request",
            "text/plain; charset=utf-8",
            explanation.as_bytes(),
        ),
    }
}

/// The response for a refusal.
pub fn refusal(refusal: Refusal) -> Vec<u8> {
    let body = format!("{}\n", refusal.why());
    if refusal == Refusal::Unauthorized {
        let mut out = response(
            refusal.status(),
            "text/plain; charset=utf-8",
            body.as_bytes(),
        );
        let at = out
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(0, |at| at + 2);
        out.splice(at..at, b"WWW-Authenticate: Bearer\r\n".iter().copied());
        return out;
    }
    response(
        refusal.status(),
        "text/plain; charset=utf-8",
        body.as_bytes(),
    )
}

/// The 101 that makes the connection a WebSocket.
pub fn switching_protocols(key: &str) -> Vec<u8> {
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8081\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://127.0.0.1:8081\r\n\r\n";

    #[test]
    fn routes() {
        assert_eq!(
            parse(b"GET /healthz HTTP/1.1\r\n\r\n"),
            Ok(Some(Request::Health))
        );
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\n\r\n"),
            Ok(Some(Request::Metrics { bearer: None }))
        );
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n"),
            Ok(Some(Request::Metrics {
                bearer: Some("s3cret".to_owned())
            }))
        );
        assert!(matches!(
            parse(b"GET /icon-512.png HTTP/1.1\r\n\r\n"),
            Ok(Some(Request::Icon(_)))
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Ok(Some(Request::Asset(_)))
        ));
        assert_eq!(parse(b"GET /nope HTTP/1.1\r\n\r\n"), Err(Refusal::NotFound));
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\n\r\n"),
            Err(Refusal::MethodNotAllowed)
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x"), Ok(None));
        assert_eq!(
            parse(b"G\x01T / HTTP/1.1\r\n\r\n"),
            Err(Refusal::BadRequest("malformed request head"))
        );
        assert_eq!(parse(&[b'a'; MAX_HEAD]), Err(Refusal::TooLarge));
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD, b'a');
        assert_eq!(parse(&long), Err(Refusal::TooLarge));
        assert_eq!(
            parse(b"GET /ws HTTP/1.1\r\n\r\n"),
            Err(Refusal::UpgradeRequired)
        );
    }

    #[test]
    fn the_handshake_and_its_origin() {
        let Ok(Some(Request::Upgrade { key, origin, host })) = parse(UPGRADE) else {
            panic!("an upgrade");
        };
        // RFC 6455's example.
        assert!(
            String::from_utf8(switching_protocols(&key))
                .expect("text")
                .contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        assert!(origin_allowed(origin.as_deref(), host.as_deref(), &[]));
        assert!(!origin_allowed(
            Some("http://evil.example"),
            host.as_deref(),
            &[]
        ));
        assert!(origin_allowed(None, host.as_deref(), &[]));
        let list = ["https://chat.example".to_owned()];
        assert!(origin_allowed(Some("https://chat.example"), None, &list));
        assert!(!origin_allowed(origin.as_deref(), host.as_deref(), &list));
    }

    #[test]
    fn plain_http_to_the_tls_listener_is_sent_to_https() {
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("text");
        let moved = text(redirect_to_https(
            b"GET /app.js?x HTTP/1.1\r\nHost: chat.example:8443\r\n\r\n",
        ));
        assert!(moved.starts_with("HTTP/1.1 308 "), "{moved}");
        assert!(moved.contains("\r\nLocation: https://chat.example:8443/app.js?x\r\n"));
        let bad_host = text(redirect_to_https(
            b"GET / HTTP/1.1\r\nHost: a\r\nevil\r\n\r\n",
        ));
        assert!(bad_host.starts_with("HTTP/1.1 400 "), "{bad_host}");
        let no_host = text(redirect_to_https(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(no_host.contains("serves HTTPS only"), "{no_host}");
    }

    #[test]
    fn responses_carry_the_security_headers() {
        let text = String::from_utf8(response("200 OK", "text/plain", b"ok")).expect("text");
        assert!(text.contains("Content-Security-Policy: default-src 'none'; script-src 'self';"));
        assert!(text.contains("X-Content-Type-Options: nosniff"));
        assert!(text.ends_with("\r\n\r\nok"));
    }
}
