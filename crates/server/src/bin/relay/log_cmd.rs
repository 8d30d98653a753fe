//! `relay log`: the message log read with its key, printed as text
//! (`relay log DIR`), checked (`relay log check DIR`: what is intact, what
//! a repair would lose) or repaired (`relay log repair DIR --yes`: damaged
//! segments cut at the damage). Also where the log key lives: in the
//! relay's state directory by default (`log.key`), not beside the log, so
//! one backup of the log does not carry its key; a key left beside the
//! log by an older relay is still used, with a line saying how to move it.

use std::path::{Path, PathBuf};

use argh::FromArgs;
use eaxchat_proto::commands::RoomName;
use eaxchat_proto::key::Key;
use eaxchat_server::config::Settings;
use eaxchat_server::msglog::{self, RecoveryReport};

use super::args::Args;
use super::config_cmd;

/// The log key's file name in the state directory.
const KEY_NAME: &str = "log.key";

/// Print the encrypted message log as text, one record a line, sanitised;
/// or check or repair it.
#[derive(FromArgs)]
#[argh(subcommand, name = "log")]
pub(crate) struct LogArgs {
    #[argh(subcommand)]
    command: Option<LogCommand>,

    /// the log directory (what --log named)
    #[argh(positional)]
    dir: Option<PathBuf>,

    /// the log's key file (default: the config's log-key, else log.key in
    /// the state directory, else the older DIR.key beside the log)
    #[argh(option)]
    key: Option<PathBuf>,

    /// print only this room's records
    #[argh(option)]
    room: Option<String>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum LogCommand {
    Check(CheckArgs),
    Repair(RepairArgs),
}

/// Say what in the log is intact and what a repair would lose; changes
/// nothing. Fails (exit 2) if the relay would refuse the log.
#[derive(FromArgs)]
#[argh(subcommand, name = "check")]
struct CheckArgs {
    /// the log directory
    #[argh(positional)]
    dir: PathBuf,

    /// the log's key file (as for `relay log`)
    #[argh(option)]
    key: Option<PathBuf>,
}

/// Cut each damaged segment at its damage, losing the records from there
/// to the segment's end; says what it loses, and changes nothing without
/// --yes.
#[derive(FromArgs)]
#[argh(subcommand, name = "repair")]
struct RepairArgs {
    /// the log directory
    #[argh(positional)]
    dir: PathBuf,

    /// the log's key file (as for `relay log`)
    #[argh(option)]
    key: Option<PathBuf>,

    /// cut, losing what `relay log check` says would be lost
    #[argh(switch)]
    yes: bool,
}

/// Where the log key is, and whether it is the older place beside the log.
pub(crate) struct KeyPlace {
    /// The key file.
    pub(crate) path: PathBuf,
    /// Where it should be moved (it sits beside the log, as older relays
    /// made it).
    pub(crate) move_to: Option<PathBuf>,
}

/// The log key of the log in `dir`: `explicit` if given (`--log-key`),
/// else `log.key` in `state_dir` (the working directory without one); an
/// older `DIR.key` beside the log is used while the state directory has
/// none, and reported for moving.
pub(crate) fn key_place(explicit: Option<&Path>, state_dir: Option<&Path>, dir: &Path) -> KeyPlace {
    if let Some(path) = explicit {
        return KeyPlace {
            path: path.to_owned(),
            move_to: None,
        };
    }
    let default = state_dir.map_or_else(|| PathBuf::from(KEY_NAME), |dir| dir.join(KEY_NAME));
    let beside = beside_the_log(dir);
    if !default.exists() && beside.is_file() {
        return KeyPlace {
            path: beside,
            move_to: Some(default),
        };
    }
    KeyPlace {
        path: default,
        move_to: None,
    }
}

/// `DIR.key` beside the log directory `DIR`: where relays before the log
/// key moved to the state directory made it.
fn beside_the_log(dir: &Path) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|name| name.to_os_string())
        .unwrap_or_else(|| "relay-log".into());
    name.push(".key");
    dir.with_file_name(name)
}

/// The line a relay logs (and `relay log` prints) while the key sits
/// beside the log.
pub(crate) fn move_advice(place: &KeyPlace) -> Option<String> {
    let to = place.move_to.as_ref()?;
    Some(format!(
        "message log key {} sits beside the log (where older relays made it): one backup of \
         the log's parent carries both. Move it to the state directory, where the relay looks \
         first: mv {} {} (or name it with --log-key)",
        place.path.display(),
        place.path.display(),
        to.display()
    ))
}

/// Runs `relay log`; the error is the message to print.
pub(crate) fn run(args: LogArgs, flags: &Args) -> Result<(), String> {
    let settings = config_cmd::settings_for_tool(None, flags)?;
    match args.command {
        Some(LogCommand::Check(check)) => {
            let key = read_key(&settings, check.key.as_deref(), &check.dir)?;
            check_log(&check.dir, &key)
        }
        Some(LogCommand::Repair(repair)) => {
            let key = read_key(&settings, repair.key.as_deref(), &repair.dir)?;
            repair_log(&repair.dir, &key, repair.yes)
        }
        None => {
            let dir = args
                .dir
                .ok_or("give the log directory: relay log DIR (or relay log check DIR)")?;
            let key = read_key(&settings, args.key.as_deref(), &dir)?;
            print_log(&dir, &key, args.room.as_deref())
        }
    }
}

fn read_key(settings: &Settings, explicit: Option<&Path>, dir: &Path) -> Result<Key, String> {
    if !dir.is_dir() {
        return Err(format!("{}: no such log directory", dir.display()));
    }
    let explicit = explicit.or(settings.log_key.as_deref());
    let place = key_place(explicit, settings.state_dir.as_deref(), dir);
    if let Some(advice) = move_advice(&place) {
        eprintln!("relay: {advice}");
    }
    match Key::read_file(&place.path) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(format!(
            "{}: no such key file (give --key FILE, or --state-dir naming where log.key is)",
            place.path.display()
        )),
        Err(e) => Err(format!("message log key: {e}")),
    }
}

/// `relay log DIR`: prints the log; reports torn tails and damage, never
/// cuts.
fn print_log(dir: &Path, key: &Key, room: Option<&str>) -> Result<(), String> {
    let room = room
        .map(|room| RoomName::new(room.as_bytes()).map_err(|e| format!("--room: {e}")))
        .transpose()?;
    let (records, report) = msglog::read_log(dir, key).map_err(|e| e.to_string())?;
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
    for damage in &report.damage {
        eprintln!("relay: damaged: {damage} (not printed; see relay log check)");
    }
    Ok(())
}

/// What the report says, one line a segment and a summary, on stdout.
fn describe(report: &RecoveryReport) {
    for segment in &report.read {
        let name = segment.path.display();
        let format = if segment.legacy {
            " (previous format: records not bound to their place)"
        } else {
            ""
        };
        println!("{name}: {} records intact{format}", segment.records);
    }
    for cut in &report.truncated {
        println!(
            "{}: torn tail at byte {} ({}, {} bytes): cut when the relay starts, no intact \
             record after it",
            cut.segment.display(),
            cut.offset,
            cut.problem,
            cut.removed
        );
    }
    for damage in &report.damage {
        println!(
            "{}: DAMAGE at record {} (byte {}): {}; a repair cuts {} bytes there, losing that \
             record and the {} intact records after it; {} records in later segments are kept",
            damage.segment.display(),
            damage.index,
            damage.offset,
            damage.problem,
            damage.bytes_after,
            damage.intact_after,
            damage.later_records
        );
    }
    let lost: u64 = report.damage.iter().map(|d| d.intact_after).sum();
    println!(
        "{} records intact in {} segments; {} damaged segments; a repair would lose {lost} \
         intact records",
        report.records,
        report.segments,
        report.damage.len()
    );
}

/// `relay log check DIR`.
fn check_log(dir: &Path, key: &Key) -> Result<(), String> {
    let (_, report) = msglog::read_log(dir, key).map_err(|e| e.to_string())?;
    describe(&report);
    if report.damage.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the log is damaged before its end: the relay refuses to start on it; \
         `relay log repair {} --yes` cuts it as said above",
        dir.display()
    ))
}

/// `relay log repair DIR [--yes]`.
fn repair_log(dir: &Path, key: &Key, yes: bool) -> Result<(), String> {
    let (_, report) = msglog::read_log(dir, key).map_err(|e| e.to_string())?;
    describe(&report);
    if report.damage.is_empty() && report.truncated.is_empty() {
        println!("nothing to repair");
        return Ok(());
    }
    if !yes {
        return Err(
            "nothing changed: run again with --yes to cut there, losing what is said above".into(),
        );
    }
    let (_, report) = msglog::repair(dir, key).map_err(|e| e.to_string())?;
    for damage in &report.damage {
        println!(
            "cut {} at byte {}: lost record {} and {} records after it",
            damage.segment.display(),
            damage.offset,
            damage.index,
            damage.intact_after
        );
    }
    for cut in &report.truncated {
        println!(
            "cut {} at byte {}: a torn tail of {} bytes",
            cut.segment.display(),
            cut.offset,
            cut.removed
        );
    }
    Ok(())
}
