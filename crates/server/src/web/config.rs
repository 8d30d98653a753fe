//! How `--web` is set up ([`WebConfig`]): its address, the origins let
//! open `/ws`, its timeouts, its TLS, and who may read `/metrics` on it
//! ([`MetricsAccess`]). Plain data, read by the poll loop.

use std::net::SocketAddr;
use std::time::Duration;

use super::http;
use super::tls::TlsSource;

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
    /// TLS on the listener (`--web-tls-cert`/`--web-tls-key`, or
    /// `--web-tls-self-signed`); `None`: plain HTTP.
    pub tls: Option<TlsSource>,
    /// How long a TLS handshake may take (`--web-tls-handshake-timeout`).
    pub handshake_timeout: Duration,
    /// Who may read `/metrics` on this listener.
    pub metrics: MetricsAccess,
}

impl WebConfig {
    /// Plain HTTP on `listen`, the page's own origin only, the default
    /// timeouts, `/metrics` for loopback peers.
    pub fn new(listen: SocketAddr) -> WebConfig {
        WebConfig {
            listen,
            origins: Vec::new(),
            idle_timeout: super::DEFAULT_IDLE_TIMEOUT,
            tls: None,
            handshake_timeout: super::DEFAULT_HANDSHAKE_TIMEOUT,
            metrics: MetricsAccess::Loopback,
        }
    }
}

/// Who may read `/metrics` on the page's listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Peers on loopback only (the default: no `--metrics`, no token).
    Loopback,
    /// Requests with `Authorization: Bearer TOKEN` (`--metrics-token`).
    Bearer(String),
    /// Nobody: `/metrics` has its own listener (`--metrics ADDR`).
    Elsewhere,
}

impl MetricsAccess {
    /// Whether a request from `peer` with `bearer` may read `/metrics`.
    pub fn allows(&self, peer: SocketAddr, bearer: Option<&str>) -> Result<(), http::Refusal> {
        match self {
            MetricsAccess::Loopback if peer.ip().is_loopback() => Ok(()),
            MetricsAccess::Bearer(token) if bearer.is_some_and(|b| constant_eq(b, token)) => Ok(()),
            MetricsAccess::Bearer(_) => Err(http::Refusal::Unauthorized),
            MetricsAccess::Loopback | MetricsAccess::Elsewhere => Err(http::Refusal::NotFound),
        }
    }
}

/// Compares two tokens in time that depends on their lengths only.
pub(crate) fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_access_by_peer_and_token() {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 1));
        let remote = SocketAddr::from(([192, 0, 2, 1], 1));
        let bearer = MetricsAccess::Bearer("s3cret".to_owned());
        type Case<'a> = (
            &'a MetricsAccess,
            SocketAddr,
            Option<&'a str>,
            Result<(), http::Refusal>,
        );
        let cases: [Case<'_>; 7] = [
            (&MetricsAccess::Loopback, loopback, None, Ok(())),
            (
                &MetricsAccess::Loopback,
                remote,
                None,
                Err(http::Refusal::NotFound),
            ),
            (&bearer, remote, Some("s3cret"), Ok(())),
            (&bearer, loopback, None, Err(http::Refusal::Unauthorized)),
            (
                &bearer,
                remote,
                Some("s3creT"),
                Err(http::Refusal::Unauthorized),
            ),
            (
                &bearer,
                remote,
                Some("s3cret2"),
                Err(http::Refusal::Unauthorized),
            ),
            (
                &MetricsAccess::Elsewhere,
                loopback,
                None,
                Err(http::Refusal::NotFound),
            ),
        ];
        for (access, peer, token, want) in cases {
            assert_eq!(
                access.allows(peer, token),
                want,
                "{access:?} {peer} {token:?}"
            );
        }
    }
}
