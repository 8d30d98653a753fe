//! The real `relay` binary's `members` subcommands on static-key files
//! (`--static-keys`, the deprecated members mode) in a temporary directory:
//! add, list, remove, their error cases, and that the relay without a
//! subcommand still starts and serves. Sessions files, the default, are
//! `sessions::members_cli`'s. Every process is waited for with a bounded
//! wait and killed by its PID if it overruns.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use eaxchat_proto::key::{Key, KeyFile};
use eaxchat_test_support::run_relay_line as relay;
use eaxchat_test_support::{RelayProcess, WAIT, random_key};

/// A fresh temporary working directory (removed when the first is dropped).
fn workdir() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().to_owned();
    (root, work)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Add two members, list them, remove one, list again; the key files hold
/// the keys the members file holds, each under a comment naming its
/// member, and nothing printed shows a key.
#[test]
fn add_list_remove_list() {
    let (_root, dir) = workdir();
    let file = dir.join("members.txt");

    let add = relay(&dir, "members add alice --file members.txt --static-keys");
    assert_eq!(add.code, Some(0), "{}", add.stderr);
    assert!(
        add.stderr.contains("static-key members file"),
        "{}",
        add.stderr
    );
    assert!(add.stdout.contains("alice.key"), "{}", add.stdout);
    assert!(add.stdout.contains("privately"), "{}", add.stdout);
    let add = relay(
        &dir,
        "members add bob --file members.txt --key-out keys-bob --bits 256",
    );
    assert_eq!(add.code, Some(0), "{}", add.stderr);
    assert!(add.stdout.contains("keys-bob"), "{}", add.stdout);

    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&dir.join("alice.key")), 0o600);
    assert_eq!(mode(&dir.join("keys-bob")), 0o600);
    let alice_key = Key::read_file(&dir.join("alice.key")).unwrap().unwrap();
    let bob_key = Key::read_file(&dir.join("keys-bob")).unwrap().unwrap();
    assert_eq!(alice_key.as_bytes().len(), 16);
    assert_eq!(bob_key.as_bytes().len(), 32);
    for (path, member, key) in [
        ("alice.key", "alice", &alice_key),
        ("keys-bob", "bob", &bob_key),
    ] {
        let text = fs::read_to_string(dir.join(path)).unwrap();
        assert_eq!(
            text,
            format!("# eaxchat member key for {member}\n{}\n", key.to_hex())
        );
        let read = KeyFile::read(&dir.join(path)).unwrap().unwrap();
        assert_eq!((&read.key, read.member.as_deref()), (key, Some(member)));
    }
    let members = eaxchat_server::members_file::read(&file).unwrap().members;
    assert_eq!(members.get("alice").unwrap().key(), &alice_key);
    assert_eq!(members.get("bob").unwrap().key(), &bob_key);

    let list = relay(&dir, "members list --file members.txt");
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    assert_eq!(list.stdout, "alice\nbob\n");
    for key in [&alice_key, &bob_key] {
        assert!(!list.stdout.contains(&key.to_hex()[..16]));
        assert!(!add.stdout.contains(&key.to_hex()[..16]));
    }

    let remove = relay(&dir, "members remove alice --file members.txt");
    assert_eq!(remove.code, Some(0), "{}", remove.stderr);
    assert!(remove.stdout.contains("removed alice"), "{}", remove.stdout);
    let list = relay(&dir, "members list --file members.txt");
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    assert_eq!(list.stdout, "bob\n");
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("bob {}\n", bob_key.to_hex())
    );
}

/// Every refused command exits 2, says why on stderr, and changes nothing.
#[test]
fn errors_exit_2_and_change_nothing() {
    let (_root, dir) = workdir();
    let file = dir.join("members.txt");
    let first = relay(&dir, "members add alice --file members.txt --static-keys");
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let before = fs::read(&file).unwrap();

    let cases = [
        (
            "members add alice --file members.txt --key-out a2.key",
            "alice is already a member",
        ),
        (
            "members add carol --file members.txt --key-out alice.key",
            "alice.key",
        ),
        (
            "members remove dave --file members.txt",
            "no member named dave",
        ),
        (
            "members add no/slash --file members.txt",
            "invalid member name",
        ),
        (
            "members list --file missing.txt",
            "members file missing.txt",
        ),
    ];
    for (args, needle) in cases {
        let run = relay(&dir, args);
        assert_eq!(run.code, Some(2), "{args}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args}: {}", run.stderr);
        assert_eq!(fs::read(&file).unwrap(), before, "{args}");
    }
    assert!(!dir.join("a2.key").exists());
    assert!(!dir.join("carol.key").exists());
}

/// A malformed members file is refused by every subcommand, with its line
/// number, without showing the key on that line, and is left as it was.
#[test]
fn malformed_file_is_refused_with_its_line() {
    let (_root, dir) = workdir();
    let key = "00112233445566778899aabbccddeeff";
    let text = format!("# members\nalice {key}\nbob {key}\n");
    fs::write(dir.join("members.txt"), &text).unwrap();
    for args in [
        "members list --file members.txt",
        "members remove alice --file members.txt",
        "members add carol --file members.txt",
    ] {
        let run = relay(&dir, args);
        assert_eq!(run.code, Some(2), "{args}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("members file members.txt line 3: the key is already used on line 2"),
            "{args}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains(&key[..16]), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    assert_eq!(fs::read_to_string(dir.join("members.txt")).unwrap(), text);
    assert!(!dir.join("carol.key").exists());
}

/// A members file that others can read still works, with a warning.
#[test]
fn open_permissions_are_warned_about() {
    let (_root, dir) = workdir();
    let file = dir.join("members.txt");
    fs::write(&file, "alice 00112233445566778899aabbccddeeff\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let run = relay(&dir, "members list --file members.txt");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "alice\n");
    assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
}

/// `relay --version` still answers, and `relay` with no subcommand still
/// listens and accepts a connection.
#[test]
fn version_and_serving_still_work() {
    let (_root, dir) = workdir();
    let run = relay(&dir, "--version");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.starts_with("relay (eaxchat) "), "{}", run.stdout);

    let mut command = Command::new(eaxchat_test_support::relay_binary());
    command
        .current_dir(&dir)
        .args(["--listen", "127.0.0.1:0", "--key-file", "relay.key"]);
    let served = RelayProcess::spawn(command, random_key());
    let connected = TcpStream::connect_timeout(&served.addr, WAIT);
    let (status, _) = served.terminate();
    assert!(status.success(), "{status}");
    assert!(connected.is_ok(), "{connected:?}");
    assert_eq!(mode(&dir.join("relay.key")), 0o600);
}
