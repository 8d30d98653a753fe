//! Session relays in one cluster: each relay has its own identity and all
//! share the members file of public keys. A session runs between a client
//! and its own relay only: members on different relays chat under the
//! names their relays stamp, a client that pinned one relay's key is
//! refused by another (told both fingerprints), and a device removed from
//! the shared file is closed where it is connected and reached nowhere.

use std::path::Path;
use std::time::{Duration, Instant};

use eaxchat_proto::session::StaticSecret;
use eaxchat_test_support::WAIT;

use super::{Nats, cluster_key};
use crate::sessions::{Fixture, QUIET, SessionConn, SessionRelay, relay_command};

/// Starts a session relay of `fixture`'s members file with its own
/// identity `identity` in the cluster at `nats` under `cluster_key`;
/// waits (bounded) until it reached NATS.
fn session_relay(
    fixture: &Fixture,
    identity: &str,
    nats: &Nats,
    cluster_key: &Path,
) -> SessionRelay {
    let url = nats.url();
    let ckey = cluster_key.display().to_string();
    let flags = ["--cluster", &url, "--cluster-key-file", &ckey];
    let mut relay = fixture.start_as(&fixture.path(identity), &flags);
    relay.process.wait_for_log("cluster: connected to NATS");
    relay
}

/// A session as `secret`'s device on `relay`, arrived in its room: a
/// session is counted by `/who` (here and on the other relays) from its
/// first frame, as a member is.
fn arrive(relay: &SessionRelay, secret: &StaticSecret) -> SessionConn {
    let mut conn = relay.connect(secret);
    conn.send(b"/who");
    conn.recv_containing("* here in");
    conn
}

/// Asks `/who` in the session until `ready` holds for the answer
/// (bounded); returns it.
fn who_until(conn: &mut SessionConn, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        conn.send(b"/who");
        let who = conn.recv_containing("* here in");
        if ready(&who) {
            return who;
        }
        assert!(Instant::now() < deadline, "/who never settled: {who}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two relays, two identities, one members file: alice on a and bob on b
/// chat both ways under their stamped names; alice's key pinned for a is
/// refused by b; bob's device removed from the file is closed by b on its
/// reload, and a then has no bob to deliver to.
#[test]
fn session_relays_in_a_cluster_share_members_but_not_identities() {
    let (fixture, secrets) = Fixture::new(&["alice", "bob", "carol"]);
    let nats = Nats::start(None);
    let ckey = cluster_key(fixture.dir.path(), "cluster.key");
    let mut a = session_relay(&fixture, "a.identity", &nats, &ckey);
    let mut b = session_relay(&fixture, "b.identity", &nats, &ckey);
    assert_ne!(a.key, b.key, "each relay has its own identity");

    let mut alice = arrive(&a, &secrets[0]);
    let mut bob = arrive(&b, &secrets[1]);
    let mut carol = arrive(&b, &secrets[2]);
    assert_eq!((alice.name.as_str(), bob.name.as_str()), ("alice", "bob"));
    who_until(&mut alice, |who| {
        ["alice", "bob", "carol"].iter().all(|n| who.contains(n))
    });

    // Each relay stamps its own member's name: what alice typed cannot
    // change hers, and bob's reply is stamped on b.
    alice.send(b"bob: I am bob");
    assert_eq!(bob.recv_containing("I am bob"), "alice: bob: I am bob");
    assert_eq!(carol.recv_containing("I am bob"), "alice: bob: I am bob");
    bob.send(b"hello alice, from b");
    assert_eq!(alice.recv_containing("from b"), "bob: hello alice, from b");
    carol.recv_containing("from b");
    alice.expect_silence(QUIET);

    // A session runs with the client's own relay: alice's pin for a makes
    // a hello b cannot read; b's refusal and the pin name both keys.
    let refused = SessionConn::connect(b.addr(), &secrets[0], &a.key)
        .err()
        .expect("b refuses a hello for a's key")
        .to_string();
    assert!(
        refused.contains(&a.key.fingerprint().to_string()),
        "{refused}"
    );
    assert!(
        refused.contains(&b.key.fingerprint().to_string()),
        "{refused}"
    );
    b.process.wait_for_log("handshake refused");

    // Bob's device removed from the shared file: b closes his session on
    // its reload; a, which reread the same file, no longer has him.
    let bob_key = secrets[1].public_key().to_string();
    let members = fixture.members.to_str().unwrap();
    let remove = [
        "members",
        "remove",
        "bob",
        "--file",
        members,
        "--public-key",
        &bob_key,
    ];
    let (code, _, stderr) = relay_command(fixture.dir.path(), &remove);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(bob.raw.closed_within(WAIT), "bob's session on b is closed");
    b.process
        .wait_for_log("closed: member removed from the members file");
    for relay in [&mut a, &mut b] {
        relay
            .process
            .wait_for_log("2 members (2 devices); added none; removed bob");
    }
    let who = who_until(&mut alice, |who| !who.contains("bob"));
    assert!(who.contains("carol"), "{who}");
    alice.send(b"/msg bob are you there");
    let reply = alice.recv_containing("bob");
    assert!(reply.contains("no one named bob"), "{reply}");
    alice.send(b"after bob left");
    assert_eq!(carol.recv_containing("after bob"), "alice: after bob left");
    // The removed device is an unknown key on either relay now.
    for relay in [&a, &b] {
        let error = SessionConn::connect(relay.addr(), &secrets[1], &relay.key)
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("unknown key"), "{error}");
    }
}
