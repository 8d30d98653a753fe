//! The shared-key relay: every scenario runs clean, WebSocket subscribers
//! and bystanders too; the members relay runs clean; and settings that
//! cannot describe a run are refused before anything is sent.

use std::process::Command;

use super::util::RelayProcess;
use super::{clean_fanouts, make_members, number, relay_bench, scratch};

/// Every scenario against the relay: every message reaches every
/// subscriber, and nothing is lost, duplicated, forged or malformed.
#[test]
fn every_scenario_runs_clean_against_the_relay() {
    let relay = RelayProcess::start(&[]);
    let addr = relay.addr.to_string();
    let key = relay.key.to_hex();
    let pid = relay.pid().to_string();
    let common = ["--addr", &addr, "--key-hex", &key, "--pid", &pid];

    for report in clean_fanouts(&common) {
        assert!(number(&report, "relay_cpu_s") >= 0.0, "{report}");
    }

    let room = ["room", "--clients", "6", "--messages", "300"];
    let (code, report) = relay_bench(&[&room[..], &common[..]].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    assert_eq!(number(&report, "deliveries"), 6.0 * 5.0 * 300.0, "{report}");
    assert_eq!(number(&report, "verified"), number(&report, "deliveries"));

    let latency = [
        "latency",
        "--clients",
        "4",
        "--rate",
        "2000",
        "--duration",
        "0.5",
    ];
    let (code, report) = relay_bench(&[&latency[..], &common[..]].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    let messages = number(&report, "messages");
    assert!(messages >= 500.0, "{report}");
    assert_eq!(number(&report, "deliveries"), 4.0 * messages);
    assert!(number(&report, "latency_p99_us") <= number(&report, "latency_max_us"));

    let idle = ["idle", "--clients", "50", "--duration", "0.2"];
    let (code, report) = relay_bench(&[&idle[..], &common[..]].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    assert_eq!(number(&report, "deliveries"), 49.0, "{report}");
    assert!(number(&report, "relay_rss_idle_kib") > 0.0, "{report}");

    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("slow_consumers=0"), "{log}");
}

/// Wrong settings are refused before anything is sent.
#[test]
fn refuses_what_it_cannot_measure() {
    const KEY: &str = "000102030405060708090a0b0c0d0e0f";
    let cases: [&[&str]; 5] = [
        &["fanout", "--addr", "192.0.2.1:8080", "--plain"],
        &[
            "fanout",
            "--addr",
            "127.0.0.1:9",
            "--key-hex",
            "00",
            "--size",
            "64",
        ],
        &["room", "--addr", "127.0.0.1:9", "--redis"],
        // Rooms to join, but no `/hello eaxchat/1` to join them with.
        &[
            "fanout",
            "--addr",
            "127.0.0.1:9",
            "--key-hex",
            KEY,
            "--extra-rooms",
            "2",
        ],
        // eaxchat/1 events with a room of publishers.
        &[
            "room",
            "--addr",
            "127.0.0.1:9",
            "--key-hex",
            KEY,
            "--events",
        ],
    ];
    for args in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_relay-bench"))
            .args(args)
            .arg("--quiet")
            .env_remove("EAXCHAT_KEY")
            .output()
            .expect("run relay-bench");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
}

/// Against the real relay in members mode (`relay --members FILE`), a
/// members fanout and a latency run are clean: every subscriber identified
/// by its empty frame, every delivery opened under its own key and stamped
/// with the publisher's name.
#[test]
fn a_members_fanout_runs_clean_against_the_members_relay() {
    let dir = scratch("members-relay");
    let members = make_members(&dir, 9);
    let relay = RelayProcess::start_members(std::path::Path::new(&members), &[]);
    let addr = relay.addr.to_string();
    let pid = relay.pid().to_string();
    let common = ["--members-file", &members, "--addr", &addr, "--pid", &pid];

    clean_fanouts(&common);

    let latency = [
        "latency",
        "--clients",
        "4",
        "--rate",
        "2000",
        "--duration",
        "0.5",
    ];
    let (code, report) = relay_bench(&[&latency[..], &common[..]].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    let messages = number(&report, "messages");
    assert!(messages >= 500.0, "{report}");
    assert_eq!(number(&report, "deliveries"), 4.0 * messages, "{report}");

    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("slow_consumers=0"), "{log}");
    std::fs::remove_dir_all(dir).expect("remove scratch dir");
}

/// Subscribers on the relay's WebSocket (`--web`), the publisher on TCP:
/// every message reaches every subscriber as one text frame, opened and
/// checked; and bystanders in other rooms get nothing.
#[test]
fn websocket_subscribers_and_bystanders_run_clean() {
    let mut relay = RelayProcess::start(&["--web", "127.0.0.1:0"]);
    let line = relay.wait_for_log("web: the chat page on http://");
    let web = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("the web address")
        .to_owned();
    let addr = relay.addr.to_string();
    let key = relay.key.to_hex();
    let common = ["--addr", &addr, "--key-hex", &key];
    let ws = ["--web", &web];
    for report in clean_fanouts(&[&common[..], &ws[..]].concat()) {
        assert_eq!(report["protocol"], "eaxchat", "{report}");
    }
    let bystanders = [
        "fanout",
        "--clients",
        "4",
        "--messages",
        "500",
        "--bystanders",
        "30",
        "--bystander-rooms",
        "3",
    ];
    let (code, report) = relay_bench(&[&bystanders[..], &common[..]].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    assert_eq!(number(&report, "bystanders"), 30.0, "{report}");
    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
}

/// Subscribers that said `/hello eaxchat/1` count `msg` events: in one
/// room, and each in 3 more rooms too (`--extra-rooms`), every message
/// reaches every subscriber once, in order, checked; the second run
/// skips the first's messages the relay sends as history on arrival. Idle
/// connections in 3 rooms each get the one message.
#[test]
fn eaxchat1_subscribers_in_several_rooms_run_clean() {
    let relay = RelayProcess::start(&[]);
    let addr = relay.addr.to_string();
    let key = relay.key.to_hex();
    let common = ["--addr", &addr, "--key-hex", &key];
    let fanout = ["fanout", "--clients", "4", "--messages", "500", "--events"];
    for rooms in [&[][..], &["--extra-rooms", "3"][..], &["--verify-all"][..]] {
        let (code, report) = relay_bench(&[&fanout[..], rooms, &common[..]].concat());
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(number(&report, "errors"), 0.0, "{report}");
        assert_eq!(number(&report, "deliveries"), 4.0 * 500.0, "{report}");
    }
    let idle = ["idle", "--clients", "20", "--duration", "0.2", "--events"];
    let (code, report) = relay_bench(&[&idle[..], &["--extra-rooms", "2"], &common[..]].concat());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    assert_eq!(number(&report, "deliveries"), 19.0, "{report}");
    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
}
