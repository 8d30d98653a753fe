//! `fanout --e2e` against the session relay: a real MLS group made through
//! the relay's Delivery Service, then MLS application messages fanned out
//! in the end-to-end room, every one delivered and none in error, twice on
//! one relay (each run in a room of its own), sampled and `--verify-all`.

use std::path::Path;

use super::sessions::make_sessions;
use super::util::RelayProcess;
use super::{number, relay_bench, scratch};

#[test]
fn an_end_to_end_fanout_delivers_every_message_without_errors() {
    let dir = scratch("e2e-relay");
    let members = make_sessions(&dir, 6);
    let identity = dir.join("relay.identity").display().to_string();
    let relay = RelayProcess::start_members(
        Path::new(&members),
        &["--identity", &identity, "--history", "0", "--rate", "0"],
    );
    let addr = relay.addr.to_string();
    let pid = relay.pid().to_string();
    let common = [
        "fanout",
        "--e2e",
        "--clients",
        "5",
        "--messages",
        "700",
        "--duration",
        "10",
        "--sessions-file",
        &members,
        "--relay-identity",
        &identity,
        "--addr",
        &addr,
        "--pid",
        &pid,
    ];
    for extra in [&[][..], &["--verify-all"][..]] {
        let (code, report) = relay_bench(&[&common[..], extra].concat());
        assert_eq!(code, Some(0), "{extra:?}: {report}");
        assert_eq!(report["protocol"], "eaxchat-e2e", "{report}");
        assert_eq!(number(&report, "errors"), 0.0, "{report}");
        assert_eq!(number(&report, "messages"), 700.0, "{report}");
        assert_eq!(number(&report, "deliveries"), 3500.0, "{report}");
        // One in 16 of each subscriber's deliveries opened (by position,
        // so a few fewer over five subscribers), or every one.
        let verified = number(&report, "verified");
        let least = if extra.is_empty() {
            3500.0 / 16.0 - 5.0
        } else {
            3500.0
        };
        assert!(verified >= least, "{extra:?}: {report}");
        // An mls event of a 64-byte text, sealed: far longer than the
        // 137-byte line of a session message of 64 bytes.
        assert!(number(&report, "line_len") > 400.0, "{report}");
    }
    let (status, log) = relay.terminate();
    assert!(status.success(), "{log}");
    std::fs::remove_dir_all(dir).expect("remove scratch dir");
}
