//! Relays joined through a real `nats-server` on loopback (`--cluster`):
//! messages reach every member of a room on every relay exactly once and
//! in each sender's order, `/who` counts everyone, a relay killed is
//! announced gone, NATS restarted is reconnected to, history lives in
//! JetStream, relays under other cluster keys read nothing, and hostile
//! payloads on the subjects reach no one.
//!
//! `scripts/test` installs `nats-server` from Debian's packages. Every
//! process is started with a bounded life and stopped by its PID.

use eaxchat_test_support as util;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eaxchat_proto::key::Key;
use util::{RelayProcess, TestClient, WAIT, random_key};

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

#[test]
fn three_relays_are_one_chat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(None);
    let ckey = cluster_key(dir.path(), "cluster.key");
    let key = random_key();
    let relays: Vec<RelayProcess> = (0..3).map(|_| relay(&key, &nats, &ckey, &[])).collect();
    let names = ["a1", "a2", "b1", "b2", "c1", "c2"];
    let mut clients: Vec<TestClient> = names
        .iter()
        .enumerate()
        .map(|(i, name)| named(&relays[i / 2], name))
        .collect();
    // Every relay's /who names all six before anyone speaks.
    for i in [0, 2, 4] {
        let who = wait_for_who(&mut clients[i], &names);
        assert!(!who.contains("with no name"), "{who}");
    }
    const EACH: usize = 40;
    for round in 0..EACH {
        for (i, client) in clients.iter_mut().enumerate() {
            client.send(format!("{} says {round}", names[i]).as_bytes());
        }
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let mut next: HashMap<&str, usize> = HashMap::new();
        let mut got = 0;
        while got < EACH * (names.len() - 1) {
            let line = client
                .try_recv(WAIT)
                .unwrap_or_else(|| panic!("{} got {got} messages only", names[i]));
            let line = String::from_utf8_lossy(&line).into_owned();
            let Some((from, round)) = line.split_once(" says ") else {
                panic!("{}: unexpected {line:?}", names[i]);
            };
            let from = names.iter().find(|name| **name == from).expect("a sender");
            assert_ne!(*from, names[i], "its own message came back");
            let expected = next.entry(from).or_default();
            assert_eq!(
                round.parse::<usize>().ok(),
                Some(*expected),
                "{line} out of order"
            );
            *expected += 1;
            got += 1;
        }
        client.expect_silence(Duration::from_millis(300));
        assert!(next.values().all(|&n| n == EACH));
    }
    // /rooms counts the lobby's six on every relay.
    clients[3].send(b"/rooms");
    let rooms = recv_until(&mut clients[3], "/rooms reply", |line| {
        line.contains("lobby")
    });
    assert!(rooms.contains("#lobby (6)"), "{rooms}");
    for relay in relays {
        let (_, log) = relay.terminate();
        assert_eq!(stat(&log, "cluster_rejected"), 0, "{log}");
        assert_eq!(stat(&log, "cluster_replayed"), 0, "{log}");
    }
}

#[test]
fn a_private_message_reaches_another_relay_and_a_room_stays_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(None);
    let ckey = cluster_key(dir.path(), "cluster.key");
    let key = random_key();
    let (a, b) = (
        relay(&key, &nats, &ckey, &[]),
        relay(&key, &nats, &ckey, &[]),
    );
    let mut alice = named(&a, "alice");
    let mut bob = named(&b, "bob");
    wait_for_who(&mut alice, &["alice", "bob"]);
    alice.send(b"/msg bob across");
    let private = recv_until(&mut bob, "the private message", |line| {
        line.contains("across")
    });
    assert!(private.contains("alice"), "{private}");
    recv_until(&mut alice, "the /msg echo", |line| line.contains("across"));
    // A room of its own on b: alice, in the lobby on a, hears nothing of it.
    bob.send(b"/join #side");
    recv_until(&mut bob, "the /join reply", |line| line.contains("#side"));
    let mut carol = named(&a, "carol");
    carol.send(b"/join #side");
    recv_until(&mut carol, "the /join reply", |line| line.contains("#side"));
    wait_for_who(&mut carol, &["bob", "carol"]);
    bob.send(b"only for the side room");
    let heard = recv_until(&mut carol, "the side room message", |line| {
        line.contains("only for")
    });
    assert_eq!(heard, "only for the side room");
    alice.expect_silence(Duration::from_millis(300));
}

#[test]
fn a_relay_killed_is_announced_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(None);
    let ckey = cluster_key(dir.path(), "cluster.key");
    let key = random_key();
    let flags = ["--presence", "on", "--cluster-timeout", "2"];
    let a = relay(&key, &nats, &ckey, &flags);
    let b = relay(&key, &nats, &ckey, &flags);
    let c = relay(&key, &nats, &ckey, &flags);
    let mut alice = named(&a, "alice");
    let mut bob = named(&b, "bob");
    let _carol = named(&c, "carol");
    // Joins come from wherever the member is.
    recv_until(&mut alice, "carol's join", |line| {
        line.contains("carol joined #lobby")
    });
    wait_for_who(&mut alice, &["alice", "bob", "carol"]);
    let killed = Instant::now();
    assert!(!c.kill_hard().success());
    let left = recv_until(&mut alice, "carol's leave", |line| {
        line.contains("carol left #lobby")
    });
    assert!(left.contains("(2 here)"), "{left}");
    assert!(
        killed.elapsed() >= Duration::from_millis(1500),
        "before the timeout"
    );
    recv_until(&mut bob, "carol's leave", |line| {
        line.contains("carol left")
    });
    // The other two carry on.
    bob.send(b"still here");
    recv_until(&mut alice, "bob's message", |line| line == "still here");
    let who = wait_for_who(&mut alice, &["alice", "bob"]);
    assert!(!who.contains("carol"), "{who}");
    // A relay that stops says goodbye: its people leave at once, not after
    // the timeout.
    let b_addr = b.addr;
    b.send_sigterm();
    recv_until(&mut alice, "bob's leave", |line| {
        line.contains("bob left #lobby")
    });
    let (status, _) = b.wait_exit(WAIT);
    assert!(status.success());
    let mut a = a;
    a.wait_for_log(&format!("relay {b_addr} left the cluster"));
    assert!(
        !a.log().contains(&format!("relay {b_addr} lost")),
        "{}",
        a.log()
    );
}

#[test]
fn nats_restarted_is_reconnected_and_history_lives_in_jetstream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("jetstream");
    let nats = Nats::start(Some(&store));
    let ckey = cluster_key(dir.path(), "cluster.key");
    let key = random_key();
    let flags = ["--cluster-history", "--history", "50"];
    let mut a = relay(&key, &nats, &ckey, &flags);
    let b = relay(&key, &nats, &ckey, &flags);
    a.wait_for_log("history of");
    let mut alice = named(&a, "alice");
    let mut bob = named(&b, "bob");
    let mut ann = named(&a, "ann");
    wait_for_who(&mut alice, &["alice", "bob", "ann"]);
    alice.send(b"before the restart");
    recv_until(&mut bob, "the first message", |line| {
        line == "before the restart"
    });

    let nats = nats.restart();
    recv_until(&mut alice, "the link-down notice", |line| {
        line.contains("cluster link is down")
    });
    // Local chat goes on while NATS is away.
    alice.send(b"local only");
    recv_until(&mut ann, "the local message", |line| line == "local only");
    recv_until(&mut alice, "the link-back notice", |line| {
        line.contains("cluster link is back")
    });
    recv_until(&mut bob, "the link-back notice", |line| {
        line.contains("cluster link is back")
    });
    wait_for_who(&mut bob, &["alice", "bob", "ann"]);
    alice.send(b"after the restart");
    recv_until(&mut bob, "the message after the restart", |line| {
        line == "after the restart"
    });

    // Once the stream holds both (a record sent while JetStream was still
    // recovering from the restart is stored on a later try), a relay
    // started late gets the history from it.
    wait_for_stream_messages(&nats, "EAXCHAT_main", 2);
    let mut c = relay(&key, &nats, &ckey, &flags);
    c.wait_for_log("history of");
    let mut late = c.connect();
    late.send(b"/hello eaxchat/1");
    let mut texts = Vec::new();
    while texts.len() < 2 {
        let line = recv_until(&mut late, "history", |line| {
            line.contains("\"history\":true")
        });
        texts.push(line);
    }
    assert!(texts[0].contains("before the restart"), "{texts:?}");
    assert!(texts[1].contains("after the restart"), "{texts:?}");
    assert!(texts.iter().all(|t| !t.contains("local only")), "{texts:?}");
    drop(nats);
}

#[test]
fn relays_under_other_cluster_keys_exchange_nothing_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(None);
    let key = random_key();
    let a = relay(&key, &nats, &cluster_key(dir.path(), "one.key"), &[]);
    let b = relay(&key, &nats, &cluster_key(dir.path(), "two.key"), &[]);
    let mut alice = named(&a, "alice");
    let mut bob = named(&b, "bob");
    alice.send(b"/who");
    std::thread::sleep(Duration::from_millis(1500));
    alice.send(b"for relay one only");
    bob.expect_silence(Duration::from_millis(500));
    bob.send(b"/who");
    let who = recv_until(&mut bob, "/who reply", |line| line.starts_with("* here in"));
    assert!(!who.contains("alice"), "{who}");
    let (_, log) = b.terminate();
    // a's heartbeats reached b on the shared state subject and were refused.
    assert!(stat(&log, "cluster_rejected") >= 1, "{log}");
    assert_eq!(stat(&log, "cluster_in"), 0, "{log}");
    drop(a);
}

#[test]
fn hostile_payloads_on_the_subjects_are_refused_and_reach_no_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(None);
    let ckey = cluster_key(dir.path(), "cluster.key");
    let key = random_key();
    let a = relay(&key, &nats, &ckey, &[]);
    let b = relay(&key, &nats, &ckey, &[]);
    let mut alice = named(&a, "alice");
    let mut bob = named(&b, "bob");
    wait_for_who(&mut alice, &["alice", "bob"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = nats.url();
    runtime.block_on(async {
        use futures_util::StreamExt as _;
        let client = async_nats::connect(url).await.expect("connect to NATS");
        let mut spy = client.subscribe("eaxchat.>").await.expect("subscribe");
        client.flush().await.expect("flush");
        // Watch real traffic: a message in the lobby, and the heartbeats.
        alice.send(b"seen by the spy");
        let mut captured: Vec<(String, bytes::Bytes)> = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while captured.iter().all(|(s, _)| !s.contains(".room."))
            || captured.iter().all(|(s, _)| !s.ends_with(".state"))
        {
            let message = tokio::time::timeout_at(deadline, spy.next())
                .await
                .expect("traffic within the wait")
                .expect("a message");
            // Nothing readable passes: no name, no text.
            let payload = String::from_utf8_lossy(&message.payload).into_owned();
            assert!(!payload.contains("seen by"), "plaintext on NATS");
            assert!(!payload.contains("alice"), "a name on NATS");
            captured.push((message.subject.to_string(), message.payload));
        }
        let (room_subject, room_payload) = captured
            .iter()
            .find(|(s, _)| s.contains(".room."))
            .cloned()
            .expect("a room envelope");
        let state_subject = captured
            .iter()
            .find(|(s, _)| s.ends_with(".state"))
            .map(|(s, _)| s.clone())
            .expect("a heartbeat");
        for subject in [&room_subject, &state_subject] {
            for garbage in [&b""[..], b"x", &[0u8; 31], &[7u8; 200]] {
                client
                    .publish(subject.clone(), bytes::Bytes::copy_from_slice(garbage))
                    .await
                    .expect("publish");
            }
            let mut flipped = room_payload.to_vec();
            flipped[40] ^= 0x20;
            client
                .publish(subject.clone(), flipped.into())
                .await
                .expect("publish");
        }
        // The captured envelope, published again: a replay.
        client
            .publish(room_subject.clone(), room_payload.clone())
            .await
            .expect("publish");
        client.flush().await.expect("flush");
    });
    recv_until(&mut bob, "the real message", |line| {
        line == "seen by the spy"
    });
    bob.expect_silence(Duration::from_millis(500));
    alice.expect_silence(Duration::from_millis(100));
    // The relays still work.
    alice.send(b"after the garbage");
    recv_until(&mut bob, "the next message", |line| {
        line == "after the garbage"
    });
    let (_, log) = b.terminate();
    assert!(stat(&log, "cluster_rejected") >= 10, "{log}");
    assert!(stat(&log, "cluster_replayed") >= 1, "{log}");
    let (_, log) = a.terminate();
    assert!(stat(&log, "cluster_rejected") >= 5, "{log}");
}

#[test]
fn nats_unreachable_at_start_is_retried_while_local_chat_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let ckey = cluster_key(dir.path(), "cluster.key");
    let key = random_key();
    let ckey_arg = ckey.display().to_string();
    let flags = ["--cluster", &url, "--cluster-key-file", &ckey_arg];
    let mut a = RelayProcess::start_with_key(key.clone(), &flags);
    a.wait_for_log_count("connecting to NATS, attempt", 3);
    let mut one = a.connect();
    let mut two = a.connect();
    a.wait_for_log_count("connected from", 2);
    one.send(b"hello");
    two.send(b"there");
    assert_eq!(two.recv(), b"hello");
    assert_eq!(one.recv(), b"there");
    let _nats = Nats::start_on(port, None);
    a.wait_for_log("cluster: connected to NATS");
    let addr: SocketAddr = a.addr;
    assert!(TcpStream::connect(addr).is_ok());
}

/// `relay members add NAME --file FILE`; returns the member's key.
fn add_member(file: &Path, name: &str) -> Key {
    let key_out = file.with_file_name(format!("{name}.key"));
    let output = Command::new(util::relay_binary())
        .args(["members", "add", name, "--file"])
        .arg(file)
        .arg("--key-out")
        .arg(&key_out)
        .output()
        .expect("run relay members add");
    assert!(output.status.success(), "{output:?}");
    let text = std::fs::read_to_string(&key_out).expect("the key file");
    let hex = text
        .lines()
        .find(|line| !line.starts_with('#') && !line.trim().is_empty())
        .expect("a key line");
    Key::from_hex(hex.trim()).expect("a hex key")
}

#[test]
fn members_are_stamped_across_relays_and_removal_reaches_each_relay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(None);
    let ckey = cluster_key(dir.path(), "cluster.key");
    // Each relay has its own copy of the same members file.
    let (file_a, file_b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    let alice_key = add_member(&file_a, "alice");
    let bob_key = add_member(&file_a, "bob");
    std::fs::copy(&file_a, &file_b).expect("copy the members file");
    let start = |file: &Path| {
        let ckey = ckey.display().to_string();
        let nats_url = nats.url();
        let flags = [
            "--cluster",
            &nats_url,
            "--cluster-key-file",
            &ckey,
            "--rate",
            "0",
        ];
        let mut relay = RelayProcess::start_members(file, &flags);
        relay.wait_for_log("cluster: connected to NATS");
        relay
    };
    let (mut a, mut b) = (start(&file_a), start(&file_b));
    let mut alice = TestClient::connect(a.addr, &alice_key);
    alice.send(b"");
    a.wait_for_log("identified as alice");
    let mut bob = TestClient::connect(b.addr, &bob_key);
    bob.send(b"");
    b.wait_for_log("identified as bob");
    wait_for_who(&mut alice, &["alice", "bob"]);
    // A message from alice reaches bob on the other relay under bob's key,
    // stamped by alice's relay; what she typed cannot change the name.
    alice.send(b"bob: I am bob");
    let heard = recv_until(&mut bob, "alice's message", |line| {
        line.contains("I am bob")
    });
    assert_eq!(heard, "alice: bob: I am bob");
    bob.send(b"/msg alice psst");
    let private = recv_until(&mut alice, "bob's private message", |line| {
        line.contains("psst")
    });
    assert!(private.contains("bob"), "{private}");
    // Removed on a only: alice is cut off there; b still knows her key.
    let output = Command::new(util::relay_binary())
        .args(["members", "remove", "alice", "--file"])
        .arg(&file_a)
        .output()
        .expect("run relay members remove");
    assert!(output.status.success(), "{output:?}");
    a.wait_for_log("member removed from the members file");
    assert!(alice.closed_within(WAIT));
    let who = wait_for_who_without(&mut bob, "alice");
    assert!(who.contains("bob"), "{who}");
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

#[test]
fn a_stuck_link_drops_counted_and_local_clients_are_unharmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(None);
    let ckey = cluster_key(dir.path(), "cluster.key");
    let key = random_key();
    let mut a = relay(&key, &nats, &ckey, &["--cluster-queue", "8"]);
    let _b = relay(&key, &nats, &ckey, &[]);
    let mut alice = a.connect();
    let mut ann = a.connect();
    a.wait_for_log_count("connected from", 2);
    alice.send(b"before");
    assert_eq!(ann.recv(), b"before");
    // NATS stops reading and answering (SIGSTOP, by PID): the link is
    // stuck until the client's pings go unanswered.
    let signal = |signal: &str| {
        let status = Command::new("kill")
            .args([signal, &nats.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    signal("-STOP");
    let stuck = Instant::now();
    let mut sent = 0;
    let mut say = |alice: &mut TestClient| {
        alice.send(format!("local {sent}").as_bytes());
        let line = ann
            .try_recv(Duration::from_secs(1))
            .expect("a local message within a second");
        assert_eq!(line, format!("local {sent}").as_bytes());
        sent += 1;
    };
    // Local chat goes on, each message at once, while the link is stuck and
    // after it is found dead (what is said then is dropped, counted).
    while !a.log().contains("NATS connection lost") {
        assert!(
            stuck.elapsed() < 2 * WAIT,
            "the stuck link was never noticed"
        );
        say(&mut alice);
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..20 {
        say(&mut alice);
    }
    recv_until(&mut alice, "the link-down notice", |line| {
        line.contains("cluster link is down")
    });
    signal("-CONT");
    a.wait_for_log_count("cluster: connected to NATS", 2);
    let (_, log) = a.terminate();
    assert!(stat(&log, "cluster_dropped") > 0, "{log}");
}

#[test]
fn nats_authentication_is_nats_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = ["--auth".to_owned(), "s3cret-token".to_owned()];
    let nats = Nats::start_with(free_port(), None, &token);
    let ckey = cluster_key(dir.path(), "cluster.key");
    let key = random_key();
    let a = relay(&key, &nats, &ckey, &["--cluster-token", "s3cret-token"]);
    let b = relay(&key, &nats, &ckey, &["--cluster-token", "s3cret-token"]);
    let mut alice = named(&a, "alice");
    let mut bob = named(&b, "bob");
    wait_for_who(&mut alice, &["alice", "bob"]);
    // Without the token the relay never joins, and says why.
    let ckey_arg = ckey.display().to_string();
    let url = nats.url();
    let mut stranger = RelayProcess::start_with_key(
        key.clone(),
        &["--cluster", &url, "--cluster-key-file", &ckey_arg],
    );
    stranger.wait_for_log_count("connecting to NATS, attempt", 3);
    assert!(!stranger.log().contains("cluster: connected to NATS"));
    let mut eve = named(&stranger, "eve");
    eve.send(b"anyone?");
    bob.expect_silence(Duration::from_millis(300));
}

/// Waits (bounded) until JetStream stream `name` holds `count` messages.
fn wait_for_stream_messages(nats: &Nats, name: &str, count: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = async_nats::connect(nats.url())
            .await
            .expect("connect to NATS");
        let js = async_nats::jetstream::new(client);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(mut stream) = js.get_stream(name).await
                && let Ok(info) = stream.info().await
                && info.state.messages >= count
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "stream {name} never held {count} messages"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}
