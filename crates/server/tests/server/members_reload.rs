//! A members file that fails to parse on reload, over real sockets: the
//! relay keeps the members it had (a member just removed stays in), logs
//! an error on every attempt, and shows the state in `/metrics`, on the
//! stats line and in `relay status` until a good file is read. Every wait
//! is bounded; the relay is stopped by its PID.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use eaxchat_test_support::metric as sample;
use eaxchat_test_support::{WAIT, http_get, run_relay, web_address};

use crate::sessions::{Fixture, SessionRelay};

/// `GET /metrics` on the relay's web listener: the body.
fn metrics(web: SocketAddr) -> String {
    http_get(web, "/metrics")
}

/// `relay status` of the relay on `socket`.
fn status(dir: &Path, socket: &Path) -> String {
    run_relay(dir, &["status", "--socket", socket.to_str().unwrap()]).ok("relay status")
}

/// Waits (bounded) until `/metrics` shows `name` at `value`.
fn wait_for_sample(web: SocketAddr, name: &str, value: u64) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let body = metrics(web);
        if sample(&body, name) == value {
            return body;
        }
        assert!(Instant::now() < deadline, "{name} is not {value}:\n{body}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A broken file keeps the old list (bob, just removed from it, stays and
/// chats), and is never silent: an error logged on each attempt (a change,
/// then SIGHUP), `eaxchat_members_reload_ok 0` and the failures counted in
/// `/metrics`, `members_reload_ok=0` on the stats line, and `relay status`
/// naming the error. A good file is then applied, and all of it says ok.
#[test]
fn a_members_file_that_fails_to_parse_is_shown_until_a_good_one_is_read() {
    let (fixture, secrets) = Fixture::new(&["alice", "bob"]);
    let dir = fixture.dir.path();
    let socket = fixture.path("admin.sock");
    let mut relay: SessionRelay = fixture.start(&[
        "--web",
        "127.0.0.1:0",
        "--admin-socket",
        socket.to_str().unwrap(),
        "--stats-interval",
        "1",
    ]);
    let web = web_address(&relay.process);
    let mut alice = relay.connect(&secrets[0]);
    let mut bob = relay.connect(&secrets[1]);
    let body = metrics(web);
    assert_eq!(sample(&body, "eaxchat_members_reload_ok"), 1, "{body}");
    assert_eq!(sample(&body, "eaxchat_members_reload_failures_total"), 0);
    assert!(sample(&body, "eaxchat_members_last_good_load_timestamp_seconds") > 0);
    let said = status(dir, &socket);
    assert!(said.contains("members file: ok (last good load "), "{said}");

    // bob removed, and a line that does not parse: nothing of it applies.
    let good = fs::read_to_string(&fixture.members).unwrap();
    let alice_line = good.lines().find(|l| l.starts_with("alice ")).unwrap();
    fs::write(
        &fixture.members,
        format!("{alice_line}\nthis is not a member line\n"),
    )
    .unwrap();
    let line = relay
        .process
        .wait_for_log("not reloaded (file changed), keeping the 2 members");
    assert!(line.contains("ERROR"), "logged as an error: {line}");
    assert!(line.contains("line 2"), "says where: {line}");
    let body = wait_for_sample(web, "eaxchat_members_reload_ok", 0);
    assert_eq!(sample(&body, "eaxchat_members_reload_failures_total"), 1);
    assert!(
        sample(
            &body,
            "eaxchat_members_last_failed_reload_timestamp_seconds"
        ) > 0
    );
    let said = status(dir, &socket);
    assert!(
        said.contains("members file: FAILED, old members in force"),
        "{said}"
    );
    assert!(said.contains("1 refused since start"), "{said}");
    assert!(said.contains("line 2"), "the error: {said}");
    alice.send(b"still there, bob?");
    assert_eq!(
        bob.recv_containing("still there"),
        "alice: still there, bob?",
        "the old list is in force"
    );

    // Every attempt is an error, SIGHUP's too.
    relay.process.hang_up();
    let line = relay
        .process
        .wait_for_log("not reloaded (SIGHUP), keeping the 2 members");
    assert!(line.contains("ERROR"), "{line}");
    wait_for_sample(web, "eaxchat_members_reload_failures_total", 2);
    relay
        .process
        .wait_for_log("members_reload_ok=0 members_reload_failures=2");

    // A good file (without bob) is applied: bob is cut off, all says ok.
    fs::write(&fixture.members, format!("{alice_line}\n")).unwrap();
    relay
        .process
        .wait_for_log("reloaded (file changed): 1 members (1 devices); added none; removed bob");
    assert!(bob.raw.closed_within(WAIT), "bob removed");
    let body = wait_for_sample(web, "eaxchat_members_reload_ok", 1);
    assert_eq!(sample(&body, "eaxchat_members_reload_failures_total"), 2);
    let said = status(dir, &socket);
    assert!(said.contains("members file: ok (last good load "), "{said}");
    assert!(said.contains("2 refused since start"), "{said}");
    relay
        .process
        .wait_for_log("members_reload_ok=1 members_reload_failures=2");
}
