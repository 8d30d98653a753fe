//! Members mode: the members file the test writes, and the changes it makes
//! to it while members chat: removals (through `eaxchat_core::members::remove`,
//! as `relay members remove` does) and a new key for a member, each
//! noticed by the relay on its own (file changed) or on SIGHUP.
//!
//! A change is applied in an order that keeps the audit exact: first the
//! member is marked doomed in the [`Roll`](crate::world::Roll) (so the
//! relay closing its connections is expected), then the file is rewritten,
//! then the test waits for the relay's reload line and for every
//! connection of the doomed key to be closed in its log; only then is the
//! member settled (its peers stop waiting for it, a re-keyed member comes
//! back with its new key), and the old key is tried once more, to be
//! refused.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use eaxchat_proto::key::Key;
use eaxchat_proto::name::Name;
use eaxchat_server::members_file as members;

use crate::audit::LogFacts;
use crate::hostile::run_old_key;
use crate::world::{Roll, Standing, World};

/// How long the relay may take to reload and close a doomed member's
/// connections (it checks the file about once a second).
const APPLY_WAIT: Duration = Duration::from_secs(20);

/// One change to the members file.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    /// Remove these members.
    Remove(&'static [u16]),
    /// Give this member a new key.
    Rekey(u16),
}

/// A change, when it is made (a fraction of the chaos phase), and whether
/// SIGHUP announces it (otherwise the relay finds the file changed).
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// When, as a fraction of the chaos phase.
    pub at: f64,
    /// What.
    pub change: Change,
    /// Also send SIGHUP.
    pub sighup: bool,
}

/// A fresh directory for the run's members file.
pub fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("eaxchat-soak-members-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// The name of member `client`.
pub fn name(client: u16) -> String {
    format!("member-{client:02}")
}

/// Writes a members file of `count` members with fresh keys (mode 0600,
/// atomically) and returns the roll that matches it.
pub fn write_members(path: &Path, count: u16) -> Roll {
    let states: Vec<Standing> = (0..count)
        .map(|client| Standing {
            name: name(client),
            key: Key::generate().expect("randomness"),
            generation: 0,
            removed: false,
            settled: true,
        })
        .collect();
    let text: String = states
        .iter()
        .map(|s| format!("{} {}\n", s.name, s.key.to_hex()))
        .collect();
    replace(path, &format!("# soak test members\n{text}"));
    Roll {
        states: std::sync::Mutex::new(states),
        ..Roll::default()
    }
}

/// Replaces `path` with `text`: a private new file renamed over it, so the
/// relay never reads half of it.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .expect("members file");
    file.write_all(text.as_bytes()).expect("write members file");
    drop(file);
    std::fs::rename(&tmp, path).expect("rename members file");
}

/// Makes `step` (see the module docs); returns how many old keys it tried.
pub fn apply(world: &World, path: &Path, relay_pid: u32, step: Step) -> usize {
    let Some(roll) = &world.roll else {
        return 0;
    };
    let (_, log_offset) = world.log.since(0);
    let clients: Vec<u16> = match step.change {
        Change::Remove(clients) => clients.to_vec(),
        Change::Rekey(client) => vec![client],
    };
    let mut old_keys = Vec::new();
    let mut wanted = Vec::new();
    {
        let mut states = roll.states.lock().expect("lock");
        for &client in &clients {
            let Some(state) = states.get_mut(usize::from(client)) else {
                continue;
            };
            old_keys.push(state.key.clone());
            state.settled = false;
            match step.change {
                Change::Remove(_) => {
                    state.removed = true;
                    wanted.push(format!("removed {}", state.name));
                }
                Change::Rekey(_) => {
                    state.key = Key::generate().expect("randomness");
                    state.generation += 1;
                    wanted.push(format!("new key {}", state.name));
                }
            }
        }
        match step.change {
            Change::Remove(_) => {
                for &client in &clients {
                    let name = Name::new(&name(client)).expect("member name");
                    if let Err(e) = members::remove(path, &name) {
                        world.violation(format!("members::remove {name}: {e}"));
                    }
                }
            }
            Change::Rekey(client) => {
                let text = std::fs::read_to_string(path).expect("members file");
                let state = &states[usize::from(client)];
                let old = format!("{} {}", state.name, old_keys[0].to_hex());
                let new = format!("{} {}", state.name, state.key.to_hex());
                replace(path, &text.replace(&old, &new));
            }
        }
    }
    if step.sighup {
        let sent = Command::new("kill")
            .args(["-HUP", &relay_pid.to_string()])
            .status();
        if !sent.as_ref().is_ok_and(|s| s.success()) {
            world.violation(format!("kill -HUP {relay_pid} failed: {sent:?}"));
        }
    }
    let deadline = Instant::now() + APPLY_WAIT;
    let reloaded = |log: &str| {
        wanted.iter().all(|want| {
            log.lines()
                .filter(|line| line.contains(" reloaded ("))
                .any(|line| reload_lists(line, want))
        })
    };
    while !reloaded(&world.log.since(log_offset).0) {
        if Instant::now() > deadline {
            world.violation(format!("no reload with {wanted:?} within {APPLY_WAIT:?}"));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every connection of the doomed keys closed (or never admitted).
    let sessions: Vec<_> = roll
        .sessions
        .lock()
        .expect("lock")
        .iter()
        .map(|(conn, session)| (*conn, *session))
        .collect();
    let doomed: Vec<_> = sessions
        .iter()
        .filter(|(conn, session)| clients.contains(&session.client) && world.is_doomed(*conn))
        .map(|(_, session)| session.addr)
        .collect();
    loop {
        let facts = LogFacts::parse(&world.log.since(0).0);
        let open: Vec<_> = doomed.iter().filter(|a| !facts.resolved(a)).collect();
        if open.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            world.violation(format!(
                "{:?}: the relay did not close {open:?} within {APPLY_WAIT:?}",
                step.change
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    {
        let mut states = roll.states.lock().expect("lock");
        for &client in &clients {
            if let Some(state) = states.get_mut(usize::from(client)) {
                state.settled = true;
            }
        }
    }
    for key in &old_keys {
        run_old_key(world, key);
    }
    old_keys.len()
}

/// Whether a reload line (`...; removed a,b; new key c`) lists the name in
/// `want` (`removed NAME` or `new key NAME`).
fn reload_lists(line: &str, want: &str) -> bool {
    let Some((list, name)) = want.rsplit_once(' ') else {
        return false;
    };
    line.split("; ").any(|part| {
        part.strip_prefix(list)
            .and_then(|names| names.strip_prefix(' '))
            .is_some_and(|names| names.split(',').any(|n| n == name))
    })
}
