//! Relays joined through a real `nats-server` on loopback (`--cluster`).
//! This file is the harness: a `nats-server` process, relays started in its
//! cluster, and the bounded waits the tests share. The tests, by concern:
//! - `chat`: relays are one chat: messages reach every member of a room on
//!   every relay exactly once and in each sender's order, `/who` counts
//!   everyone, private messages and members cross relays, and relays under
//!   other cluster keys read nothing;
//! - `faults`: what goes wrong: a relay killed is announced gone, NATS
//!   restarted is reconnected to (history lives in JetStream), NATS
//!   unreachable or stuck leaves local chat unharmed, hostile payloads on
//!   the subjects reach no one, and NATS's own authentication is required;
//! - `hardening`: relays of another mode are refused (a shared-key
//!   `/nick` never passes for a member), an envelope captured before a
//!   relay started is refused by it, and a history record opens only at
//!   its stream sequence;
//! - `sessions`: session relays, each with its own identity, share one
//!   members file of public keys: members on different relays chat under
//!   stamped names, a pin for one relay is refused by another, and a
//!   device removed from the file is closed and reached nowhere.
//!
//! `scripts/test` installs `nats-server` from Debian's packages. Every
//! process is started with a bounded life and stopped by its PID.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eaxchat_proto::key::Key;
use eaxchat_test_support::{RelayProcess, TestClient, WAIT, random_key};

mod chat;
mod faults;
mod hardening;
mod sessions;

/// A `nats-server` process on a loopback port, killed on drop.
struct Nats {
    child: Child,
    port: u16,
    store: Option<PathBuf>,
}

impl Nats {
    /// Starts `nats-server` on a free port (with JetStream storing in
    /// `store`, if given) and waits (bounded) until it accepts.
    fn start(store: Option<&Path>) -> Nats {
        Nats::start_on(free_port(), store)
    }

    fn start_on(port: u16, store: Option<&Path>) -> Nats {
        let mut args = Vec::new();
        if let Some(store) = store {
            args.extend([
                "-js".to_owned(),
                "-sd".to_owned(),
                store.display().to_string(),
            ]);
        }
        Nats::start_with(port, store, &args)
    }

    /// Starts `nats-server` on `port` with `args` besides the address, and
    /// waits (bounded) until it accepts.
    fn start_with(port: u16, store: Option<&Path>, args: &[String]) -> Nats {
        let child = Command::new(nats_binary())
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        let nats = Nats {
            child,
            port,
            store: store.map(Path::to_owned),
        };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL, by PID) and starts it again on the same port.
    fn restart(mut self) -> Nats {
        let (port, store) = (self.port, self.store.take());
        self.kill();
        Nats::start_on(port, store.as_deref())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn nats_binary() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin"] {
        let path = Path::new(dir).join("nats-server");
        if path.is_file() {
            return path;
        }
    }
    panic!("nats-server is not installed: scripts/test installs it (apt-get install nats-server)");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A cluster key file in `dir`.
fn cluster_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    random_key().write_new_file(&path).expect("write key");
    path
}

/// Starts a relay under client key `key` in the cluster at `nats` under
/// `cluster_key`, with `extra` flags; waits (bounded) until it reached
/// NATS.
fn relay(key: &Key, nats: &Nats, cluster_key: &Path, extra: &[&str]) -> RelayProcess {
    let mut args = vec![
        "--cluster".to_owned(),
        nats.url(),
        "--cluster-key-file".to_owned(),
        cluster_key.display().to_string(),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut relay = RelayProcess::start_with_key(key.clone(), &args);
    relay.wait_for_log("cluster: connected to NATS");
    relay
}

/// Waits until each of `relays` has heard from every other one: a relay
/// takes nothing from another before that (one round of heartbeats after
/// a start), so a test that chats at once must wait for it.
fn wait_all_heard(relays: &mut [&mut RelayProcess]) {
    let others = relays.len() - 1;
    for relay in relays.iter_mut() {
        relay.wait_for_log_count(" heard from", others);
    }
}

/// Receives lines until one satisfies `wanted`; panics after [`WAIT`].
fn recv_until(client: &mut TestClient, what: &str, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(line) = client.try_recv(left.max(Duration::from_millis(1))) else {
            panic!("no {what} within {WAIT:?}");
        };
        let line = String::from_utf8_lossy(&line).into_owned();
        if wanted(&line) {
            return line;
        }
    }
}

/// Asks `/who` until the answer names every one of `names` (bounded).
fn wait_for_who(client: &mut TestClient, names: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        client.send(b"/who");
        let who = recv_until(client, "/who reply", |line| line.starts_with("* here in"));
        if names.iter().all(|name| who.contains(name)) {
            return who;
        }
        assert!(
            Instant::now() < deadline,
            "/who never named {names:?}: {who}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A named client on `relay`: it took `name` with `/nick`.
fn named(relay: &RelayProcess, name: &str) -> TestClient {
    let mut client = relay.connect();
    client.send(format!("/nick {name}").as_bytes());
    recv_until(&mut client, "the /nick reply", |line| {
        line.contains("you are now")
    });
    client
}

/// The number in the stats line's `field=N`.
fn stat(log: &str, field: &str) -> u64 {
    let needle = format!(" {field}=");
    log.lines()
        .rev()
        .find_map(|line| {
            let at = line.find(&needle)? + needle.len();
            line[at..].split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no {field} in the log"))
}

/// Asks `/who` until `name` is gone from the answer (bounded).
fn wait_for_who_without(client: &mut TestClient, name: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        client.send(b"/who");
        let who = recv_until(client, "/who reply", |line| line.starts_with("* here in"));
        if !who.contains(name) {
            return who;
        }
        assert!(Instant::now() < deadline, "/who still names {name}: {who}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
