//! The processes of the everything-on soak: a `nats-server`, two session
//! relays clustered through it and a shared-key relay, each with the chat
//! layer, the message log synced on every write and the web listener; the
//! address book the clients read (a relay that is down has none); memory
//! sampled over each relay's life; and the counters read at the end.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use eaxchat_proto::key::Key;
use eaxchat_proto::session::PublicKey;
use eaxchat_test_support::{RelayProcess, WAIT, sys};

/// The relays' limits.
pub const MAX_FRAME: usize = 16 * 1024;
pub const MAX_QUEUE: usize = 256 * 1024;
/// Flood control: sustained messages a second, and the burst.
pub const RATE: u32 = 20;
pub const BURST: u32 = 40;

/// A `nats-server` on a free loopback port, killed (by PID) on drop.
pub struct Nats {
    child: Child,
    pub port: u16,
}

impl Nats {
    pub fn start() -> Nats {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("nats-server");
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (scripts/test installs it)");
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats { child, port }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a relay can be reached now; `None` while it is down.
#[derive(Default)]
pub struct Address(RwLock<Option<Endpoint>>);

/// A relay process's ports, name and, for sessions, its key.
#[derive(Clone)]
pub struct Endpoint {
    pub tcp: SocketAddr,
    pub web: Option<SocketAddr>,
    pub relay_key: Option<PublicKey>,
    /// The process's name in the ledger ("a", "b1", "b2", "c").
    pub name: &'static str,
}

impl Address {
    pub fn get(&self) -> Option<Endpoint> {
        self.0.read().expect("lock").clone()
    }

    pub fn set(&self, endpoint: Option<Endpoint>) {
        *self.0.write().expect("lock") = endpoint;
    }
}

/// The flags every relay of the run gets: the chat layer with history,
/// presence and flood control, the log synced on every record, the web
/// listener, and the run's limits.
pub fn common_flags(log_dir: &Path) -> Vec<String> {
    let flags = [
        ("--history", "50".to_owned()),
        ("--presence", "on".to_owned()),
        ("--rate", RATE.to_string()),
        ("--burst", BURST.to_string()),
        ("--log", log_dir.display().to_string()),
        ("--log-fsync", "always".to_owned()),
        // The key beside the run's own files, never in the working directory.
        ("--log-key", log_key(log_dir).display().to_string()),
        ("--web", "127.0.0.1:0".to_owned()),
        ("--max-frame", MAX_FRAME.to_string()),
        ("--max-queue", MAX_QUEUE.to_string()),
        ("--pre-auth-budget", (4 * MAX_FRAME).to_string()),
        ("--first-frame-timeout", "3".to_owned()),
        ("--shutdown-grace-ms", "1000".to_owned()),
    ];
    flags
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect()
}

/// Starts a session relay of `members` as `identity`, in the cluster at
/// `nats`; waits (bounded) until it reached NATS.
pub fn start_session_relay(
    members: &Path,
    identity: &Path,
    nats: &Nats,
    cluster_key: &Path,
    log_dir: &Path,
    name: &'static str,
) -> (RelayProcess, Endpoint) {
    let mut flags = common_flags(log_dir);
    flags.extend(
        [
            "--identity",
            &identity.display().to_string(),
            "--cluster",
            &nats.url(),
            "--cluster-key-file",
            &cluster_key.display().to_string(),
        ]
        .map(str::to_owned),
    );
    let mut relay = RelayProcess::start_members(
        members,
        &flags.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    relay.wait_for_log("cluster: connected to NATS");
    let log = relay.log();
    let endpoint = Endpoint {
        tcp: relay.addr,
        web: web_addr(&log),
        relay_key: Some(relay_key(&log)),
        name,
    };
    (relay, endpoint)
}

/// Starts the shared-key relay under `key`.
pub fn start_shared_relay(key: Key, log_dir: &Path) -> (RelayProcess, Endpoint) {
    let flags = common_flags(log_dir);
    let relay =
        RelayProcess::start_with_key(key, &flags.iter().map(String::as_str).collect::<Vec<_>>());
    let endpoint = Endpoint {
        tcp: relay.addr,
        web: web_addr(&relay.log()),
        relay_key: None,
        name: "c",
    };
    (relay, endpoint)
}

/// The web listener's address from `web: the chat page on http://ADDR/`.
fn web_addr(log: &str) -> Option<SocketAddr> {
    let line = log
        .lines()
        .find(|l| l.contains("the chat page on http://"))?;
    line.split("http://")
        .nth(1)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// The relay's public key from `relay identity x25519:… (SHA256:…)`.
fn relay_key(log: &str) -> PublicKey {
    let line = log
        .lines()
        .find(|line| line.contains("relay identity x25519:"))
        .unwrap_or_else(|| panic!("no relay identity line:\n{log}"));
    let key = line
        .split("relay identity ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default();
    key.parse()
        .unwrap_or_else(|e| panic!("{key:?} in {line:?}: {e}"))
}

/// A relay's `/metrics` counters (without labels), read over HTTP.
pub fn metrics(web: SocketAddr) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(mut stream) = TcpStream::connect(web) else {
        return out;
    };
    let _ = stream.set_read_timeout(Some(WAIT));
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return out;
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    for line in body
        .lines()
        .filter(|l| l.starts_with("eaxchat_") && !l.contains('{'))
    {
        if let Some((name, value)) = line.split_once(' ')
            && let Ok(value) = value.trim().parse()
        {
            out.insert(name.trim_start_matches("eaxchat_").to_owned(), value);
        }
    }
    out
}

/// The counters of the last `stats:` line of a relay's log.
pub fn last_stats(log: &str) -> BTreeMap<String, u64> {
    let Some(line) = log.lines().rev().find(|l| l.contains("stats: ")) else {
        return BTreeMap::new();
    };
    let rest = line.split("stats: ").nth(1).unwrap_or_default();
    rest.split_whitespace()
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// VmRSS samples: time since sampling began, and KiB.
pub type Series = Vec<(Duration, u64)>;

/// What one relay process's memory did: its name, PID and samples.
pub type MemoryOf = (&'static str, u64, Series);

/// A thread reading a relay's VmRSS every 250 ms while it runs.
pub struct Memory {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Series>,
}

impl Memory {
    pub fn sample(pid: u32) -> Memory {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            let mut series = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                let Ok(kib) = sys::process_status_kib(pid, "VmRSS") else {
                    break;
                };
                series.push((started.elapsed(), kib));
                std::thread::sleep(Duration::from_millis(250));
            }
            series
        });
        Memory { stop, thread }
    }

    /// The samples: time since the start and VmRSS in KiB.
    pub fn finish(self) -> Series {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}

/// The logs of every relay process of the run, by name, for the panic
/// scan at the end (a killed relay's included).
#[derive(Default)]
pub struct Logs(pub Mutex<Vec<(&'static str, String)>>);

impl Logs {
    pub fn keep(&self, name: &'static str, log: String) {
        self.0.lock().expect("lock").push((name, log));
    }
}

/// Where the relay logging to `log_dir` keeps its log key: a file of its
/// own beside the log directory, so a restart finds the same key.
fn log_key(log_dir: &Path) -> std::path::PathBuf {
    let mut name = log_dir.file_name().unwrap_or_default().to_os_string();
    name.push("-log.key");
    log_dir.with_file_name(name)
}
