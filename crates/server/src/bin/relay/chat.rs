//! The chat layer's flags (rooms, history, flood control, presence), the
//! message log (opened, replayed into room history and handed to the
//! server), the web listener (`--web`); and `relay log`, which prints the
//! log.

use std::path::{Path, PathBuf};

use argh::FromArgs;
use eaxchat_core::flood::{self, Rate};
use eaxchat_core::relay::ChatConfig;
use eaxchat_core::rooms::RoomsConfig;
use eaxchat_proto::commands::RoomName;
use eaxchat_server::event_loop::{Server, WebConfig};
use eaxchat_server::msglog::{self, LogConfig, LogWriter};
use log::{info, warn};

use eaxchat_server::config::{Settings, Switch};

use super::Failure;

/// Print the encrypted message log as text, one record a line, sanitised.
#[derive(FromArgs)]
#[argh(subcommand, name = "log")]
pub(crate) struct LogArgs {
    /// the log directory (what --log named)
    #[argh(positional)]
    dir: PathBuf,

    /// the log's key file (default: the directory's name with .key,
    /// beside it)
    #[argh(option)]
    key: Option<PathBuf>,

    /// print only this room's records
    #[argh(option)]
    room: Option<String>,
}

/// The chat layer as the settings give it.
pub(crate) struct Options {
    config: ChatConfig,
    log: Option<(LogConfig, PathBuf)>,
    web: Option<WebConfig>,
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
            let key = settings.log_key.clone().unwrap_or_else(|| default_key(dir));
            (config, key)
        });
        if settings.web.is_some() && settings.web_idle_timeout == 0 {
            return Err(Failure::Usage(
                "--web-idle-timeout must be at least 1".into(),
            ));
        }
        let web = settings.web.map(|listen| WebConfig {
            listen,
            origins: settings.web_origin.clone(),
            idle_timeout: std::time::Duration::from_secs(settings.web_idle_timeout),
        });
        Ok(Options {
            web,
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
            info!(
                "web: the chat page on http://{addr}/, its websocket on /ws, /metrics, /healthz; \
                 origins: {}",
                if web.origins.is_empty() {
                    "the page's own".to_owned()
                } else {
                    web.origins.join(" ")
                }
            );
        }
        let Some((config, key_path)) = &self.log else {
            return Ok(());
        };
        let key = msglog::load_or_create_key(key_path).map_err(runtime)?;
        let (records, report) = msglog::open_and_replay(&config.dir, &key).map_err(runtime)?;
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
        let writer = LogWriter::start(config.clone(), &key).map_err(runtime)?;
        server.set_log(writer);
        info!(
            "message log {} (key {}): {} records in {} segments read, fsync {}, at most {} bytes",
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

fn runtime(error: msglog::LogError) -> Failure {
    Failure::Runtime(error.to_string())
}

/// `DIR.key` beside the log directory `DIR`.
fn default_key(dir: &Path) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|name| name.to_os_string())
        .unwrap_or_else(|| "relay-log".into());
    name.push(".key");
    dir.with_file_name(name)
}

/// `relay log`: prints the log; the error is the message to print.
pub(crate) fn print_log(args: &LogArgs) -> Result<(), String> {
    if !args.dir.is_dir() {
        return Err(format!("{}: no such log directory", args.dir.display()));
    }
    let room = args
        .room
        .as_deref()
        .map(|room| RoomName::new(room.as_bytes()).map_err(|e| format!("--room: {e}")))
        .transpose()?;
    let key_path = args.key.clone().unwrap_or_else(|| default_key(&args.dir));
    let key = match eaxchat_proto::key::Key::read_file(&key_path) {
        Ok(Some(key)) => key,
        Ok(None) => return Err(format!("{}: no such key file", key_path.display())),
        Err(e) => return Err(format!("message log key: {e}")),
    };
    let (records, report) = msglog::read_log(&args.dir, &key).map_err(|e| e.to_string())?;
    let stdout = std::io::stdout();
    msglog::export::write_text(&records, room.as_ref(), &mut stdout.lock())
        .map_err(|e| format!("writing: {e}"))?;
    for cut in &report.truncated {
        eprintln!(
            "relay: {}: {} at byte {} ({} bytes after the last good record, left as they are)",
            cut.segment.display(),
            cut.problem,
            cut.offset,
            cut.removed
        );
    }
    Ok(())
}
