//! What goes wrong in a cluster, and what the relays do about it: a relay
//! killed is announced gone after the timeout (one that stops says goodbye
//! at once), NATS restarted is reconnected to with history kept in
//! JetStream, NATS unreachable at start or stuck later leaves local chat
//! unharmed, hostile payloads on the subjects are refused and reach no one,
//! and a relay without NATS's token never joins.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use eaxchat_test_support::{RelayProcess, TestClient, WAIT, random_key};

use super::{
    Nats, cluster_key, free_port, named, recv_until, relay, stat, wait_all_heard, wait_for_who,
};

#[test]
fn a_relay_killed_is_announced_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(None);
    let ckey = cluster_key(dir.path(), "cluster.key");
    let key = random_key();
    let flags = ["--presence", "on", "--cluster-timeout", "2"];
    let mut a = relay(&key, &nats, &ckey, &flags);
    let mut b = relay(&key, &nats, &ckey, &flags);
    let mut c = relay(&key, &nats, &ckey, &flags);
    wait_all_heard(&mut [&mut a, &mut b, &mut c]);
    let mut alice = named(&a, "alice");
    let mut bob = named(&b, "bob");
    // Relay a's subscription to the lobby can reach NATS a moment after
    // alice is in: bob says a line until alice hears it (bounded), so
    // carol's join, next, finds it live.
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no line from b within {WAIT:?}");
        bob.send(b"is the lobby joined up");
        if let Some(line) = alice.try_recv(Duration::from_millis(500))
            && String::from_utf8_lossy(&line).contains("joined up")
        {
            break;
        }
    }
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
        let first = super::hardening::live(&mut spy).await;
        // Watch real traffic: a message in the lobby, and the heartbeats.
        alice.send(b"seen by the spy");
        let mut captured: Vec<(String, bytes::Bytes)> = vec![first];
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
pub(super) fn wait_for_stream_messages(nats: &Nats, name: &str, count: u64) {
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
