//! The chat layer's flags (rooms, history, flood control, presence), the
//! message log (opened, replayed into room history, indexed for
//! `/history` pages and handed to the server; its key found as
//! `log_cmd.rs` says), the web listener
//! (`--web`).

use std::path::Path;

use eaxchat_core::flood::{self, Rate};
use eaxchat_core::relay::ChatConfig;
use eaxchat_core::rooms::RoomsConfig;
use eaxchat_proto::commands::RoomName;
use eaxchat_server::event_loop::{MetricsAccess, Server, WebConfig};
use eaxchat_server::msglog::{self, LogConfig, LogWriter};
use eaxchat_server::web::tls::TlsSource;
use log::{info, warn};

use eaxchat_server::config::{Settings, Switch};

use super::Failure;
use super::log_cmd::{KeyPlace, key_place, move_advice};

/// The chat layer as the settings give it.
pub(crate) struct Options {
    config: ChatConfig,
    log: Option<(LogConfig, KeyPlace)>,
    web: Option<WebConfig>,
    /// `--metrics`'s address, and the bearer token `/metrics` needs.
    metrics: (Option<std::net::SocketAddr>, Option<String>),
}

impl Options {
    /// Reads and checks the chat settings; `members` picks flood
    /// control's default.
    pub(crate) fn from_settings(settings: &Settings, members: bool) -> Result<Options, Failure> {
        let default_room = RoomName::new(settings.default_room.as_bytes())
            .map_err(|e| Failure::Usage(format!("--default-room: {e}")))?;
        if settings.max_rooms == 0 {
            return Err(Failure::Usage("--max-rooms must be at least 1".into()));
        }
        let default_rate = if members { flood::MEMBERS_RATE } else { 0.0 };
        let per_second = settings.rate.unwrap_or(default_rate);
        if !per_second.is_finite() || per_second < 0.0 {
            return Err(Failure::Usage(
                "--rate must be a number of messages a second, 0 for none".into(),
            ));
        }
        let rate = Rate::new(per_second, settings.burst.unwrap_or(flood::MEMBERS_BURST));
        let log = settings.log.as_ref().map(|dir| {
            let mut config = LogConfig::new(dir);
            config.fsync = settings.log_fsync;
            config.max_bytes = settings.log_max_bytes;
            config.segment_bytes = (settings.log_max_bytes / 8).max(4096);
            let key = key_place(
                settings.log_key.as_deref(),
                settings.state_dir.as_deref(),
                dir,
            );
            (config, key)
        });
        if settings.web.is_some() && settings.web_idle_timeout == 0 {
            return Err(Failure::Usage(
                "--web-idle-timeout must be at least 1".into(),
            ));
        }
        let tls = web_tls_source(settings)?;
        let token = settings
            .metrics_token_file
            .as_deref()
            .map(read_metrics_token)
            .transpose()?;
        let metrics_access = match (&settings.metrics, &token) {
            (Some(_), _) => MetricsAccess::Elsewhere,
            (None, Some(token)) => MetricsAccess::Bearer(token.clone()),
            (None, None) => MetricsAccess::Loopback,
        };
        let web = settings.web.map(|listen| WebConfig {
            origins: settings.web_origin.clone(),
            idle_timeout: std::time::Duration::from_secs(settings.web_idle_timeout),
            tls,
            handshake_timeout: std::time::Duration::from_secs(settings.web_tls_handshake_timeout),
            metrics: metrics_access,
            ..WebConfig::new(listen)
        });
        Ok(Options {
            web,
            metrics: (settings.metrics, token),
            config: ChatConfig {
                rooms: RoomsConfig {
                    default_room,
                    max_rooms: settings.max_rooms,
                    history_entries: settings.history,
                    history_bytes: settings.history_bytes,
                },
                rate,
                presence: settings.presence == Switch::On,
                log: log.is_some(),
            },
            log,
        })
    }

    /// Sets the chat layer up on `server`: with `--log`, the log is
    /// opened (a torn tail cut and reported), its messages put back in
    /// room history, and its writer thread started.
    pub(crate) fn set_up(&self, server: &mut Server) -> Result<(), Failure> {
        server.set_chat(self.config.clone());
        let rate = match self.config.rate {
            Some(rate) => format!("{}/s in bursts of {}", rate.per_second, rate.burst),
            None => "off".to_owned(),
        };
        info!(
            "chat: default room {}, at most {} rooms, history {} messages ({} bytes) a room, \
             flood control {rate}, presence {}",
            self.config.rooms.default_room,
            self.config.rooms.max_rooms,
            self.config.rooms.history_entries,
            self.config.rooms.history_bytes,
            if self.config.presence { "on" } else { "off" },
        );
        if let Some(web) = &self.web {
            let addr = server.listen_web(web.clone()).map_err(|e| {
                Failure::Runtime(format!("cannot listen on {} (--web): {e}", web.listen))
            })?;
            let scheme = if web.tls.is_some() { "https" } else { "http" };
            info!(
                "web: the chat page on {scheme}://{addr}/, its websocket on /ws, /healthz; \
                 /metrics {}; origins: {}",
                match &web.metrics {
                    MetricsAccess::Loopback => "for loopback peers",
                    MetricsAccess::Bearer(_) => "with its bearer token",
                    MetricsAccess::Elsewhere => "on --metrics only",
                },
                if web.origins.is_empty() {
                    "the page's own".to_owned()
                } else {
                    web.origins.join(" ")
                }
            );
        }
        if let (Some(addr), token) = &self.metrics {
            let bound = server.listen_metrics(*addr, token.clone()).map_err(|e| {
                Failure::Runtime(format!("cannot listen on {addr} (--metrics): {e}"))
            })?;
            info!("metrics: /metrics and /healthz on http://{bound}/");
        }
        let Some((config, key_place)) = &self.log else {
            return Ok(());
        };
        if let Some(advice) = move_advice(key_place) {
            warn!("{advice}");
        }
        let key_path = &key_place.path;
        let key = msglog::load_or_create_key(key_path).map_err(runtime)?;
        let (records, report, index) =
            msglog::open_and_index(&config.dir, &key).map_err(runtime)?;
        for cut in &report.truncated {
            warn!(
                "message log {}: {} at byte {}; cut {} bytes there, every record before kept",
                cut.segment.display(),
                cut.problem,
                cut.offset,
                cut.removed
            );
        }
        server.restore_history(&records);
        let indexed = index.len();
        let writer = LogWriter::start_indexed(config.clone(), &key, index).map_err(runtime)?;
        server.set_log(writer);
        info!(
            "message log {} (key {}): {} records in {} segments read ({indexed} messages \
             indexed for /history), fsync {}, at most {} bytes",
            config.dir.display(),
            key_path.display(),
            report.records,
            report.segments,
            config.fsync,
            config.max_bytes
        );
        Ok(())
    }
}

/// `--web-tls-cert` and `--web-tls-key` together, or
/// `--web-tls-self-signed`, or neither.
fn web_tls_source(settings: &Settings) -> Result<Option<TlsSource>, Failure> {
    match (
        &settings.web_tls_cert,
        &settings.web_tls_key,
        settings.web_tls_self_signed,
    ) {
        (Some(cert), Some(key), false) => Ok(Some(TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        })),
        (None, None, true) => {
            let mut names = vec!["localhost".to_owned()];
            if let Some(listen) = settings.web.filter(|addr| !addr.ip().is_unspecified()) {
                names.push(listen.ip().to_string());
            }
            if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
                let host = host.trim();
                if !host.is_empty() && !names.iter().any(|name| name == host) {
                    names.push(host.to_owned());
                }
            }
            Ok(Some(TlsSource::SelfSigned { names }))
        }
        (None, None, false) => Ok(None),
        (_, _, true) => Err(Failure::Usage(
            "--web-tls-self-signed makes its own certificate: leave out --web-tls-cert and \
             --web-tls-key"
                .into(),
        )),
        _ => Err(Failure::Usage(
            "--web-tls-cert and --web-tls-key go together".into(),
        )),
    }
}

/// The bearer token in `path`, trimmed; an empty file is refused.
fn read_metrics_token(path: &Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("--metrics-token-file {}: {e}", path.display())))?;
    let token = text.trim();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace()) {
        return Err(Failure::Usage(format!(
            "--metrics-token-file {}: one token, no spaces, expected",
            path.display()
        )));
    }
    Ok(token.to_owned())
}

fn runtime(error: msglog::LogError) -> Failure {
    Failure::Runtime(error.to_string())
}
