//! The cluster's hardening (issue 29, finding 4), each reproduced over a
//! real `nats-server`: a shared-key relay's `/nick alice` does not pass for
//! the member alice on a members relay; an envelope captured before a relay
//! started and published again is refused by it; and a history record is
//! taken only from the stream sequence it was stored at (a live envelope
//! or a record published into the stream again is refused).

use std::time::{Duration, Instant};

use eaxchat_test_support::{RelayProcess, TestClient, WAIT, random_key};

use super::chat::add_member;
use super::faults::wait_for_stream_messages;
use super::{Nats, cluster_key, named, recv_until, relay, stat, wait_for_who};

/// Runs `body` with a NATS client of the test's own (a spy, or an
/// attacker on the NATS network without the cluster key).
fn with_nats_client<R>(nats: &Nats, body: impl AsyncFnOnce(async_nats::Client) -> R) -> R {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = nats.url();
    runtime.block_on(async {
        let client = async_nats::connect(url).await.expect("connect to NATS");
        body(client).await
    })
}

/// Waits (bounded) for `subscriber`'s first message, a heartbeat: the
/// server has its subscription from then on. `flush` only writes the SUB
/// out; a relay's publish on its own connection can still reach the server
/// first, and then the spy misses it (the tests used to, now and then).
pub(super) async fn live(subscriber: &mut async_nats::Subscriber) -> (String, bytes::Bytes) {
    use futures_util::StreamExt as _;
    let message = tokio::time::timeout(WAIT, subscriber.next())
        .await
        .expect("a heartbeat within the wait")
        .expect("a message");
    (message.subject.to_string(), message.payload)
}

/// Collects what `subscriber` receives until `done` holds (bounded).
async fn capture(
    subscriber: &mut async_nats::Subscriber,
    done: impl Fn(&[(String, bytes::Bytes)]) -> bool,
) -> Vec<(String, bytes::Bytes)> {
    use futures_util::StreamExt as _;
    let mut captured = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(&captured) {
        let message = tokio::time::timeout_at(deadline, subscriber.next())
            .await
            .expect("traffic within the wait")
            .expect("a message");
        captured.push((message.subject.to_string(), message.payload));
    }
    captured
}

#[test]
fn a_shared_key_nick_does_not_pass_for_a_member_of_another_relay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(None);
    let ckey = cluster_key(dir.path(), "cluster.key");
    let file = dir.path().join("members.txt");
    let _alice_key = add_member(&file, "alice");
    let bob_key = add_member(&file, "bob");
    let ckey_arg = ckey.display().to_string();
    let url = nats.url();
    let flags = ["--cluster", &url, "--cluster-key-file", &ckey_arg];
    let mut members = RelayProcess::start_members(&file, &flags);
    members.wait_for_log("cluster: connected to NATS");
    let shared = relay(&random_key(), &nats, &ckey, &[]);
    let mut bob = TestClient::connect(members.addr, &bob_key);
    bob.send(b"");
    members.wait_for_log("identified as bob");
    let mut mallory = named(&shared, "alice");
    // The members relay has seen the shared-key relay's heartbeats.
    let deadline = Instant::now() + WAIT;
    while !members.log().contains("refusing relay") && !members.log().contains("heard from") {
        assert!(Instant::now() < deadline, "{}", members.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1200));
    mallory.send(b"meet me at the gate");
    bob.expect_silence(Duration::from_millis(800));
    let (_, log) = members.terminate();
    assert_eq!(log.matches("refusing relay").count(), 1, "{log}");
    assert!(
        log.contains("serves shared-key and this relay static-key members"),
        "{log}"
    );
    assert!(stat(&log, "cluster_rejected") >= 2, "{log}");
}

#[test]
fn an_envelope_captured_before_a_relay_started_is_refused_by_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(None);
    let ckey = cluster_key(dir.path(), "cluster.key");
    let key = random_key();
    let a = relay(&key, &nats, &ckey, &[]);
    let b = relay(&key, &nats, &ckey, &[]);
    let mut alice = named(&a, "alice");
    let mut bob = named(&b, "bob");
    wait_for_who(&mut alice, &["alice", "bob"]);
    let (room_subject, room_payload) = with_nats_client(&nats, async |client| {
        let mut spy = client.subscribe("eaxchat.>").await.expect("subscribe");
        client.flush().await.expect("flush");
        live(&mut spy).await;
        alice.send(b"said before the restart");
        let captured = capture(&mut spy, |seen| {
            seen.iter().any(|(subject, _)| subject.contains(".room."))
        })
        .await;
        captured
            .into_iter()
            .find(|(subject, _)| subject.contains(".room."))
            .expect("the room envelope")
    });
    recv_until(&mut bob, "the message", |line| {
        line == "said before the restart"
    });
    let (status, _) = b.terminate();
    assert!(status.success());

    // A new relay, within the 120 s window of the captured envelope.
    let b = relay(&key, &nats, &ckey, &[]);
    let mut carol = named(&b, "carol");
    wait_for_who(&mut carol, &["alice", "carol"]);
    with_nats_client(&nats, async |client| {
        client
            .publish(room_subject.clone(), room_payload.clone())
            .await
            .expect("publish");
        client.flush().await.expect("flush");
    });
    alice.send(b"said after");
    let lines = std::cell::RefCell::new(Vec::new());
    recv_until(&mut carol, "the next message", |line| {
        lines.borrow_mut().push(line.to_owned());
        line == "said after"
    });
    let lines = lines.into_inner();
    assert!(
        lines.iter().all(|line| line != "said before the restart"),
        "a replay was taken: {lines:?}"
    );
    let (_, log) = b.terminate();
    assert!(stat(&log, "cluster_replayed") >= 1, "{log}");
}

/// The history a newcomer to `relay`'s lobby is given: its count.
fn history_count(relay: &RelayProcess) -> usize {
    let mut newcomer = relay.connect();
    newcomer.send(b"/who");
    let notice = recv_until(&mut newcomer, "the history notice", |line| {
        line.starts_with("* the last ")
    });
    notice
        .strip_prefix("* the last ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a history notice: {notice}"))
}

#[test]
fn a_history_record_is_taken_only_at_its_stream_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("jetstream");
    let nats = Nats::start(Some(&store));
    let ckey = cluster_key(dir.path(), "cluster.key");
    let key = random_key();
    let flags = ["--cluster-history", "--history", "50"];
    let mut a = relay(&key, &nats, &ckey, &flags);
    a.wait_for_log("history of");
    let mut alice = named(&a, "alice");
    let _ann = named(&a, "ann");
    let captured = with_nats_client(&nats, async |client| {
        let mut spy = client.subscribe("eaxchat.>").await.expect("subscribe");
        client.flush().await.expect("flush");
        live(&mut spy).await;
        alice.send(b"old news");
        capture(&mut spy, |seen| {
            seen.iter().any(|(s, _)| s.contains(".room."))
                && seen.iter().any(|(s, _)| s.contains(".hist."))
        })
        .await
    });
    let find = |kind: &str| {
        captured
            .iter()
            .find(|(subject, _)| subject.contains(kind))
            .cloned()
            .expect("captured")
    };
    let ((_, live), (hist_subject, record)) = (find(".room."), find(".hist."));
    wait_for_stream_messages(&nats, "EAXCHAT_main", 1);
    // Into the stream again: the live envelope, and the record itself.
    with_nats_client(&nats, async |client| {
        let js = async_nats::jetstream::new(client);
        for payload in [live, record] {
            js.publish(hist_subject.clone(), payload)
                .await
                .expect("publish")
                .await
                .expect("stored");
        }
    });
    wait_for_stream_messages(&nats, "EAXCHAT_main", 3);
    let mut c = relay(&key, &nats, &ckey, &flags);
    let line = c.wait_for_log("history of");
    assert!(line.contains("2 records refused"), "{line}");
    assert_eq!(history_count(&c), 1);
}
