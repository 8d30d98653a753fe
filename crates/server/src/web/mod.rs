//! The browser's way in (`relay --web ADDR`), without sockets: HTTP request
//! heads and responses ([`http`]), WebSocket frames in and out ([`ws`]),
//! the chat page embedded in the binary ([`page`]) and the counters in
//! Prometheus's text format ([`metrics`]). The server's loop
//! (`server/web.rs`) moves the bytes.
//!
//! A browser member is a member like any other: once upgraded, its
//! connection is a relay connection whose frames travel one per WebSocket
//! text message, with the same keys, names, rooms, history, limits, replay
//! refusal and slow-consumer policy as on the TCP port.

pub mod config;
pub mod http;
pub mod icon;
pub mod tls;
pub mod ws;

use std::fmt::Write as _;
use std::time::Duration;

use eaxchat_core::stats::Stats;

/// `--web-idle-timeout`'s default: a browser heard from nothing for this
/// long is pinged, and closed if it stays silent as long again.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a connection may take to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Most connections at once still sending their request head.
pub const MAX_PENDING: usize = 256;

/// `--web-tls-handshake-timeout`'s default: a TLS handshake not finished
/// this long after the connection came is closed.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most connections from one address at once still in their TLS handshake
/// or request head, on a TLS listener: a flood from one address cannot
/// take all of [`MAX_PENDING`].
pub const MAX_HANDSHAKES_PER_ADDRESS: usize = 32;

/// The chat page's files, compiled in: no CDN; the one built file is
/// `/mls.js` (build.rs).
pub mod page {
    /// One file of the page.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Asset {
        /// Where it is served.
        pub path: &'static str,
        /// Its media type.
        pub content_type: &'static str,
        /// Its bytes.
        pub body: &'static str,
    }

    /// Every file of the page.
    pub static ASSETS: [Asset; 18] = [
        Asset {
            path: "/",
            content_type: "text/html; charset=utf-8",
            body: include_str!("page/index.html"),
        },
        Asset {
            path: "/app.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("page/app.js"),
        },
        Asset {
            path: "/chat.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("page/chat.js"),
        },
        Asset {
            path: "/rooms.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("page/rooms.js"),
        },
        Asset {
            path: "/views.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("page/views.js"),
        },
        Asset {
            path: "/eax.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("page/eax.js"),
        },
        Asset {
            path: "/noise.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("page/noise.js"),
        },
        Asset {
            path: "/session.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("page/session.js"),
        },
        Asset {
            path: "/style.css",
            content_type: "text/css; charset=utf-8",
            body: include_str!("page/style.css"),
        },
        Asset {
            path: "/favicon.svg",
            content_type: "image/svg+xml",
            body: include_str!("page/favicon.svg"),
        },
        Asset {
            path: "/install.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("page/install.js"),
        },
        Asset {
            path: "/notify.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("page/notify.js"),
        },
        Asset {
            path: "/sw.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("page/sw.js"),
        },
        Asset {
            path: "/e2e.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("page/e2e.js"),
        },
        Asset {
            path: "/e2e-resume.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("page/e2e-resume.js"),
        },
        Asset {
            path: "/safety.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("page/safety.js"),
        },
        // The page's MLS (ts-mls), bundled by build.rs from web-mls/
        // (or a module saying it is unavailable).
        Asset {
            path: "/mls.js",
            content_type: "text/javascript; charset=utf-8",
            body: include_str!(concat!(env!("OUT_DIR"), "/mls.js")),
        },
        Asset {
            path: "/manifest.webmanifest",
            content_type: "application/manifest+json",
            body: include_str!("page/manifest.webmanifest"),
        },
    ];

    /// The file served at `path`.
    pub fn find(path: &str) -> Option<&'static Asset> {
        let path = if path == "/index.html" { "/" } else { path };
        ASSETS.iter().find(|asset| asset.path == path)
    }
}

/// What `/metrics` reports beyond the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// TCP connections open.
    pub tcp: usize,
    /// WebSocket connections open.
    pub web: usize,
    /// Connections still sending their HTTP request head.
    pub http_pending: usize,
    /// Bytes queued for all connections.
    pub bytes_queued: usize,
    /// The TLS listener's counters, if `--web` serves TLS.
    pub tls: Option<tls::TlsCounters>,
}

/// The counters and gauges in Prometheus's text exposition format.
pub mod metrics {
    use super::*;

    /// Renders `stats` and `gauges`.
    pub fn render(stats: &Stats, gauges: &Gauges) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP eaxchat_{name} {help}");
            let _ = writeln!(out, "# TYPE eaxchat_{name} gauge");
            for (labels, value) in samples {
                let _ = writeln!(out, "eaxchat_{name}{labels} {value}");
            }
        };
        gauge(
            "connections",
            "Connections open, by kind.",
            &[
                ("{kind=\"tcp\"}", gauges.tcp as u64),
                ("{kind=\"web\"}", gauges.web as u64),
                ("{kind=\"http_pending\"}", gauges.http_pending as u64),
            ],
        );
        gauge(
            "bytes_queued",
            "Bytes queued for connections, in all.",
            &[("", gauges.bytes_queued as u64)],
        );
        let r = &stats.rejected;
        let counters: [(&str, &str, u64); 29] = [
            (
                "connections_accepted_total",
                "Connections accepted since start.",
                stats.connections_total,
            ),
            (
                "frames_in_total",
                "Frames received that opened and were relayed.",
                stats.frames_in,
            ),
            (
                "frames_out_total",
                "Frames written whole to recipients.",
                stats.frames_out,
            ),
            ("bytes_in_total", "Bytes read from clients.", stats.bytes_in),
            (
                "bytes_out_total",
                "Bytes written to clients.",
                stats.bytes_out,
            ),
            (
                "rejected_base64_total",
                "Frames refused: not padded base64.",
                r.bad_base64,
            ),
            (
                "rejected_short_total",
                "Frames refused: shorter than nonce and tag.",
                r.too_short,
            ),
            (
                "rejected_tag_total",
                "Frames refused: the tag did not verify.",
                r.bad_tag,
            ),
            (
                "rejected_too_long_total",
                "Lines longer than --max-frame.",
                r.too_long,
            ),
            (
                "rejected_replay_total",
                "Frames refused as replays.",
                r.replayed,
            ),
            (
                "clients_refused_total",
                "Connections refused at --max-clients.",
                stats.clients_refused,
            ),
            (
                "slow_consumers_total",
                "Consumers dropped past --max-queue.",
                stats.slow_consumers,
            ),
            (
                "accept_errors_total",
                "Failed accept calls.",
                stats.accept_errors,
            ),
            (
                "refused_per_address_total",
                "Connections refused at --max-per-address.",
                stats.refused_per_address,
            ),
            (
                "pre_auth_over_budget_total",
                "Unauthenticated connections closed past --pre-auth-budget.",
                stats.pre_auth_over_budget,
            ),
            (
                "first_frame_timeouts_total",
                "Connections closed at --first-frame-timeout.",
                stats.first_frame_timeouts,
            ),
            (
                "keyless_frames_out_total",
                "Frames written to connections that never proved the key.",
                stats.keyless_frames_out,
            ),
            (
                "keyless_bytes_out_total",
                "Bytes written to connections that never proved the key.",
                stats.keyless_bytes_out,
            ),
            (
                "members_removed_total",
                "Connections of members removed or re-keyed.",
                stats.members_removed,
            ),
            (
                "flood_refused_total",
                "Frames refused by flood control.",
                stats.flood_refused,
            ),
            ("commands_total", "Commands run or refused.", stats.commands),
            (
                "handshakes_accepted_total",
                "Session handshakes accepted.",
                stats.sessions.accepted,
            ),
            (
                "handshakes_refused_unknown_key_total",
                "Session handshakes refused: a key in no member's line.",
                stats.sessions.refused_unknown_key,
            ),
            (
                "handshakes_refused_bad_hello_total",
                "Session handshakes refused: not a hello for this relay's key.",
                stats.sessions.refused_bad_hello,
            ),
            (
                "handshakes_unfinished_total",
                "Connections that sent a line before their welcome could arrive.",
                stats.sessions.unfinished,
            ),
            (
                "session_rejected_replay_total",
                "Session frames refused: a counter used already.",
                stats.sessions.rejected_replay,
            ),
            (
                "session_rejected_gap_total",
                "Session frames refused: a counter that skips ahead.",
                stats.sessions.rejected_gap,
            ),
            (
                "session_rejected_tag_total",
                "Session frames refused: the tag did not verify.",
                stats.sessions.rejected_tag,
            ),
            (
                "session_rejected_malformed_total",
                "Session frames refused: not a session frame.",
                stats.sessions.rejected_malformed,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP eaxchat_{name} {help}");
            let _ = writeln!(out, "# TYPE eaxchat_{name} counter");
            let _ = writeln!(out, "eaxchat_{name} {value}");
        }
        if let Some(tls) = &gauges.tls {
            render_tls(&mut out, tls);
        }
        out
    }

    /// The TLS listener's counters.
    fn render_tls(out: &mut String, tls: &tls::TlsCounters) {
        let counter = |out: &mut String, name: &str, help: &str| {
            let _ = writeln!(out, "# HELP eaxchat_{name} {help}");
            let _ = writeln!(out, "# TYPE eaxchat_{name} counter");
        };
        counter(
            out,
            "web_tls_handshakes_total",
            "TLS handshakes completed on --web.",
        );
        let _ = writeln!(out, "eaxchat_web_tls_handshakes_total {}", tls.handshakes);
        counter(
            out,
            "web_tls_refused_total",
            "TLS connections closed before their handshake ended, by reason.",
        );
        for (reason, value) in tls::TlsRefusal::ALL.iter().zip(tls.refused) {
            let _ = writeln!(
                out,
                "eaxchat_web_tls_refused_total{{reason=\"{}\"}} {value}",
                reason.label()
            );
        }
        counter(
            out,
            "web_tls_errors_total",
            "Established TLS connections closed for a bad record.",
        );
        let _ = writeln!(
            out,
            "eaxchat_web_tls_errors_total {}",
            tls.errors_after_handshake
        );
        counter(
            out,
            "web_tls_reloads_total",
            "Certificate reloads, by outcome.",
        );
        let _ = writeln!(
            out,
            "eaxchat_web_tls_reloads_total{{outcome=\"applied\"}} {}",
            tls.reloads
        );
        let _ = writeln!(
            out,
            "eaxchat_web_tls_reloads_total{{outcome=\"refused\"}} {}",
            tls.reload_failures
        );
    }
}
