//! Invites over real sockets: `relay invite` makes a link, a new device
//! joins with it (the protocol crate's join), and the relay writes the
//! device into the members file. Refusals (spent, expired, revoked, a
//! wrong secret, the attempt budget, another relay's key), the members
//! file holding no secret, concurrent joins, and a `kill -9` mid-join.

use super::*;
use eaxchat_core::members::SessionMembers;
use eaxchat_core::relay::{WRONG_PER_ADDRESS, WRONG_PER_INVITE};
use eaxchat_proto::invite::code::{CodeJoin, InviteCode, WORDS};
use eaxchat_proto::invite::{Invite, InviteSecret};
use std::io::Write as _;

/// `relay invite ARGS` for the fixture's files; returns the invite printed.
fn invite(fixture: &Fixture, addr: &str, args: &[&str]) -> Invite {
    let members = fixture.members.to_str().unwrap();
    let identity = fixture.relay_identity.to_str().unwrap();
    let mut all = vec![
        "invite",
        "--file",
        members,
        "--identity",
        identity,
        "--addr",
        addr,
    ];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = relay_command(fixture.dir.path(), &all);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let link = stdout
        .split_whitespace()
        .find(|word| word.starts_with("'eaxchat://"))
        .unwrap_or_else(|| panic!("no link in {stdout}"));
    Invite::parse(link.trim_matches('\'')).unwrap()
}

/// Runs `relay invite ARGS` (list, revoke); returns stdout.
fn invite_command(fixture: &Fixture, args: &[&str]) -> String {
    let members = fixture.members.to_str().unwrap();
    let mut all = vec!["invite", "--file", members];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = relay_command(fixture.dir.path(), &all);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    stdout
}

/// Joins `addr` with `invite` as the new device `device`; `None` when the
/// relay closed (or stayed silent) without a reply.
fn try_join(
    addr: SocketAddr,
    invite: &Invite,
    device: &StaticSecret,
) -> Option<Result<SessionConn, SessionError>> {
    // A relay killed mid-test refuses the connection or breaks the pipe:
    // that is no reply, not a failure of the test.
    let mut raw = TestClient::try_connect(addr, &random_key()).ok()?;
    let (initiator, line) = invite.join(device).unwrap();
    raw.stream.write_all(&line).ok()?;
    let reply = raw.try_recv_line(WAIT)?;
    Some(initiator.finish(&reply).map(|established| SessionConn {
        raw,
        session: established.session,
        name: established.name,
    }))
}

/// Joins `addr` with `invite` as the new device `device`.
fn join(
    addr: SocketAddr,
    invite: &Invite,
    device: &StaticSecret,
) -> Result<SessionConn, SessionError> {
    try_join(addr, invite, device).expect("no reply to the join")
}

fn refusal(result: Result<SessionConn, SessionError>) -> String {
    match result {
        Ok(conn) => panic!("joined as {}", conn.name),
        Err(error) => error.to_string(),
    }
}

fn members_of(fixture: &Fixture) -> SessionMembers {
    SessionMembers::parse(&fs::read(&fixture.members).unwrap(), &fixture.members).unwrap()
}

/// A join adds the device to the members file, chats at once, and later
/// connects with a plain hello; the members file never holds the secret.
#[test]
fn a_link_joins_a_new_member_who_then_connects_like_any_other() {
    let (fixture, secrets) = Fixture::new(&["alice"]);
    let carol_invite = invite(&fixture, "127.0.0.1:1", &["carol", "--expires", "1h"]);
    let relay = fixture.start(&[]);
    assert_eq!(carol_invite.relay, relay.key);
    let mut alice = relay.connect(&secrets[0]);
    alice.send(b"");
    let carol_key = StaticSecret::generate().unwrap();
    let mut carol = join(relay.addr(), &carol_invite, &carol_key).unwrap();
    assert_eq!(carol.name, "carol");
    carol.send(b"hello from the invite");
    assert!(
        alice
            .recv_containing("hello from")
            .contains("carol: hello from the invite")
    );
    let members = members_of(&fixture);
    assert_eq!(
        members.get(carol_key.public_key()).unwrap().name().as_str(),
        "carol"
    );
    let text = fs::read_to_string(&fixture.members).unwrap();
    let secret = base64_url(carol_invite.secret.expose_secret());
    assert!(
        !text.contains(&secret),
        "the members file holds the secret:\n{text}"
    );
    assert!(!text.contains("secret"), "{text}");
    drop(carol);
    let again = relay.connect(&carol_key);
    assert_eq!(again.name, "carol");
    let listed = invite_command(&fixture, &["--list"]);
    assert!(
        listed.contains(&format!("{} carol: spent", carol_invite.id)),
        "{listed}"
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A spent, an expired and a revoked invite each get their own refusal,
/// at once (no hang), and nothing is added.
#[test]
fn spent_expired_and_revoked_invites_are_refused_clearly() {
    let (fixture, _) = Fixture::new(&["alice"]);
    let once = invite(&fixture, "127.0.0.1:1", &["bob"]);
    let short = invite(&fixture, "127.0.0.1:1", &["carl", "--expires", "1s"]);
    let revoked = invite(&fixture, "127.0.0.1:1", &["dora"]);
    let mut relay = fixture.start(&[]);
    join(relay.addr(), &once, &StaticSecret::generate().unwrap()).unwrap();
    let text = refusal(join(
        relay.addr(),
        &once,
        &StaticSecret::generate().unwrap(),
    ));
    assert!(text.contains("used already"), "{text}");
    std::thread::sleep(Duration::from_millis(1100));
    let text = refusal(join(
        relay.addr(),
        &short,
        &StaticSecret::generate().unwrap(),
    ));
    assert!(text.contains("expired"), "{text}");
    let stdout = invite_command(&fixture, &["--revoke", &revoked.id.to_string()]);
    assert!(stdout.contains("revoked"), "{stdout}");
    relay.process.wait_for_log("invites, 0 open");
    let text = refusal(join(
        relay.addr(),
        &revoked,
        &StaticSecret::generate().unwrap(),
    ));
    assert!(text.contains("revoked"), "{text}");
    let names: Vec<String> = members_of(&fixture)
        .names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
}

/// Wrong secrets are refused and counted: the invite burns after
/// WRONG_PER_INVITE of them (even the right secret is refused then), and
/// an address that sent WRONG_PER_ADDRESS is refused every join.
#[test]
fn wrong_secrets_are_counted_and_bounded_per_invite_and_per_address() {
    let (fixture, _) = Fixture::new(&["alice"]);
    let first = invite(&fixture, "127.0.0.1:1", &["eve"]);
    let second = invite(&fixture, "127.0.0.1:1", &["fay"]);
    let third = invite(&fixture, "127.0.0.1:1", &["gil"]);
    let relay = fixture.start(&[]);
    let device = StaticSecret::generate().unwrap();
    let guess = |real: &Invite| Invite {
        secret: InviteSecret::generate().unwrap(),
        ..real.clone()
    };
    for left in (0..WRONG_PER_INVITE).rev() {
        let text = refusal(join(relay.addr(), &guess(&first), &device));
        assert!(text.contains(&format!("({left} tries left")), "{text}");
    }
    let text = refusal(join(relay.addr(), &first, &device));
    assert!(text.contains("no longer works"), "{text}");
    for _ in WRONG_PER_INVITE..WRONG_PER_ADDRESS {
        refusal(join(relay.addr(), &guess(&second), &device));
    }
    let text = refusal(join(relay.addr(), &third, &device));
    assert!(text.contains("from this address"), "{text}");
    assert!(members_of(&fixture).get(device.public_key()).is_none());
}

/// A relay that is not the one the invite names (a man in the middle with
/// its own key) cannot read the join: the joiner is refused, is told both
/// keys apart, and the invite still works at the real relay.
#[test]
fn a_relay_with_another_key_cannot_take_the_join() {
    let (fixture, _) = Fixture::new(&["alice"]);
    let real = invite(&fixture, "127.0.0.1:1", &["hal"]);
    let impostor = fixture.start_as(&fixture.path("impostor.identity"), &[]);
    let device = StaticSecret::generate().unwrap();
    let error = join(impostor.addr(), &real, &device).err().unwrap();
    let SessionError::Refused { pinned, relay, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*pinned, real.relay.fingerprint());
    assert_eq!(*relay, Some(impostor.key.fingerprint()));
    drop(impostor);
    let relay = fixture.start(&[]);
    assert_eq!(join(relay.addr(), &real, &device).unwrap().name, "hal");
}

/// Many joins at once each land whole in the members file.
#[test]
fn concurrent_joins_each_land_whole() {
    const JOINS: usize = 16;
    let (fixture, _) = Fixture::new(&["alice"]);
    let group = invite(&fixture, "127.0.0.1:1", &["crowd", "--uses", "16"]);
    let relay = fixture.start(&[]);
    let addr = relay.addr();
    let devices: Vec<StaticSecret> = (0..JOINS)
        .map(|_| StaticSecret::generate().unwrap())
        .collect();
    std::thread::scope(|scope| {
        for device in &devices {
            let group = &group;
            scope.spawn(move || join(addr, group, device).map(|conn| conn.name).unwrap());
        }
    });
    let members = members_of(&fixture);
    for device in &devices {
        assert_eq!(
            members.get(device.public_key()).unwrap().name().as_str(),
            "crowd"
        );
    }
    assert_eq!(members.len(), JOINS + 1);
    let text = refusal(join(addr, &group, &StaticSecret::generate().unwrap()));
    assert!(text.contains("used already"), "{text}");
}

/// A relay killed (SIGKILL) while joins run leaves a members file that
/// parses, holding every device that got its welcome.
#[test]
fn a_kill_mid_join_leaves_the_members_file_whole() {
    const JOINS: usize = 24;
    let (fixture, _) = Fixture::new(&["alice"]);
    let group = invite(&fixture, "127.0.0.1:1", &["many", "--uses", "24"]);
    let relay = fixture.start(&[]);
    let addr = relay.addr();
    let devices: Vec<StaticSecret> = (0..JOINS)
        .map(|_| StaticSecret::generate().unwrap())
        .collect();
    let (first_welcome, welcomes) = std::sync::mpsc::channel();
    let welcomed = std::thread::scope(|scope| {
        let joins: Vec<_> = devices
            .iter()
            .map(|device| {
                let (group, first_welcome) = (&group, first_welcome.clone());
                scope.spawn(move || {
                    let welcomed = matches!(try_join(addr, group, device), Some(Ok(_)));
                    if welcomed {
                        let _ = first_welcome.send(());
                    }
                    welcomed.then_some(*device.public_key())
                })
            })
            .collect();
        // Killed once one join has landed, while the others are in flight,
        // so the file has something to keep whole.
        welcomes.recv_timeout(WAIT).expect("a first welcome");
        relay.process.kill_hard();
        joins
            .into_iter()
            .filter_map(|j| j.join().unwrap())
            .collect::<Vec<_>>()
    });
    let members = members_of(&fixture);
    assert!(!welcomed.is_empty(), "the kill came after a welcome");
    for key in &welcomed {
        assert!(members.get(key).is_some(), "welcomed but not in the file");
    }
    assert!(
        members.len() > welcomed.len(),
        "alice and every welcomed device"
    );
}

/// `--device` adds a second device under a member's own name (and only
/// for a member; a plain invite refuses an existing name); removing that
/// device closes its session only.
#[test]
fn a_device_invite_adds_a_device_whose_removal_closes_only_its_session() {
    let (fixture, secrets) = Fixture::new(&["alice"]);
    let members = fixture.members.to_str().unwrap();
    let identity = fixture.relay_identity.to_str().unwrap();
    let (code, _, stderr) = relay_command(
        fixture.dir.path(),
        &["invite", "alice", "--file", members, "--identity", identity],
    );
    assert_eq!(code, Some(2), "a plain invite for a member: {stderr}");
    assert!(stderr.contains("--device"), "{stderr}");
    let (code, _, stderr) = relay_command(
        fixture.dir.path(),
        &[
            "invite",
            "zed",
            "--device",
            "--file",
            members,
            "--identity",
            identity,
        ],
    );
    assert_eq!(code, Some(2), "a device invite for no member: {stderr}");
    let laptop = invite(&fixture, "127.0.0.1:1", &["alice", "--device"]);
    let relay = fixture.start(&[]);
    let mut phone = relay.connect(&secrets[0]);
    phone.send(b"");
    let laptop_key = StaticSecret::generate().unwrap();
    let mut second = join(relay.addr(), &laptop, &laptop_key).unwrap();
    assert_eq!(second.name, "alice");
    second.send(b"");
    let listed = relay_command(fixture.dir.path(), &["members", "list", "--file", members]).1;
    assert_eq!(listed.matches("alice ").count(), 2, "{listed}");
    assert!(
        listed.contains(&format!("invite {}", laptop.id)),
        "{listed}"
    );
    let key = laptop_key.public_key().to_string();
    let (code, _, stderr) = relay_command(
        fixture.dir.path(),
        &[
            "members",
            "remove",
            "alice",
            "--public-key",
            &key,
            "--file",
            members,
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        second.raw.closed_within(WAIT),
        "the removed device's session closes"
    );
    phone.send(b"still here");
    phone.expect_silence(QUIET);
    assert!(
        !phone.raw.closed_within(QUIET),
        "the other device's session stays"
    );
}

/// A short code's exchange and join (SPAKE2, then the join) over a real
/// socket; the error's text on a refusal.
fn join_code(
    addr: SocketAddr,
    code: &InviteCode,
    device: &StaticSecret,
) -> Result<SessionConn, String> {
    let mut raw = TestClient::connect(addr, &random_key());
    let (pake, start) = CodeJoin::start(code).unwrap();
    raw.send_raw(&start);
    let reply = raw.try_recv_line(WAIT).ok_or("no code reply")?;
    let invite = pake.finish(&reply, "").map_err(|e| e.to_string())?;
    let (initiator, line) = invite.join(device).unwrap();
    raw.send_raw(&line);
    let reply = raw.try_recv_line(WAIT).ok_or("no join reply")?;
    let established = initiator.finish(&reply).map_err(|e| e.to_string())?;
    Ok(SessionConn {
        raw,
        session: established.session,
        name: established.name,
    })
}

/// A short code joins; a wrong code is refused and every try counts, so
/// brute force stops at WRONG_PER_INVITE tries (24 bits of code: at most
/// 8 × 2⁻²⁴ = 2⁻²¹ over the invite's life), after which even the right
/// code is refused.
#[test]
fn short_codes_join_and_guessing_is_bounded_by_the_budget() {
    let (fixture, _) = Fixture::new(&["alice"]);
    let members = fixture.members.to_str().unwrap();
    let identity = fixture.relay_identity.to_str().unwrap();
    let mut codes = Vec::new();
    for name in ["ivy", "jon"] {
        let (code, stdout, stderr) = relay_command(
            fixture.dir.path(),
            &[
                "invite",
                name,
                "--code",
                "--file",
                members,
                "--identity",
                identity,
            ],
        );
        assert_eq!(code, Some(0), "{stderr}");
        let text = stdout
            .split_whitespace()
            .skip_while(|word| *word != "code")
            .nth(1)
            .unwrap_or_else(|| panic!("no code in {stdout}"));
        codes.push(InviteCode::parse(text).unwrap());
    }
    let relay = fixture.start(&[]);
    let device = StaticSecret::generate().unwrap();
    let right = &codes[0];
    assert_eq!(join_code(relay.addr(), right, &device).unwrap().name, "ivy");
    let jon = &codes[1];
    let wrong = |n: usize| {
        let text = jon.to_string();
        let (head, last) = text.rsplit_once('-').unwrap();
        let other = WORDS.iter().filter(|w| **w != last).nth(n).unwrap();
        InviteCode::parse(&format!("{head}-{other}")).unwrap()
    };
    for n in 0..WRONG_PER_INVITE as usize {
        let text = join_code(relay.addr(), &wrong(n), &StaticSecret::generate().unwrap())
            .err()
            .unwrap();
        assert!(text.contains("wrong code"), "{text}");
    }
    let text = join_code(relay.addr(), jon, &StaticSecret::generate().unwrap())
        .err()
        .unwrap();
    assert!(text.contains("no longer works"), "{text}");
    let members = members_of(&fixture);
    assert!(members.devices_of("jon").next().is_none());
    assert!(members.get(device.public_key()).is_some());
}

/// `chat invite-device`: a member asks the relay, in its own hello, for a
/// one-use link that adds a device under its own name; the link works
/// once, and the relay wrote it to the invites file.
#[test]
fn chat_invite_device_gives_a_link_for_a_device_of_ones_own() {
    let (fixture, _) = Fixture::new(&["alice", "bob"]);
    let relay = fixture.start(&[]);
    let known = fixture.path("known_relays");
    fs::write(&known, format!("{} {}\n", relay.addr(), relay.key)).unwrap();
    let output = std::process::Command::new(util::chat_binary())
        .args(["--connect", &relay.addr().to_string()])
        .args(["--key-file", &fixture.identity_file("alice", 1)])
        .arg("--known-relays")
        .arg(&known)
        .arg("invite-device")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let invite = Invite::parse(stdout.trim()).unwrap();
    assert_eq!(invite.relay, relay.key);
    let tablet = StaticSecret::generate().unwrap();
    assert_eq!(join(relay.addr(), &invite, &tablet).unwrap().name, "alice");
    let text = refusal(join(
        relay.addr(),
        &invite,
        &StaticSecret::generate().unwrap(),
    ));
    assert!(text.contains("used already"), "{text}");
    let members = members_of(&fixture);
    assert_eq!(
        members.get(tablet.public_key()).unwrap().name().as_str(),
        "alice"
    );
    let listed = invite_command(&fixture, &["--list"]);
    assert!(
        listed.contains(&format!("{} alice (device): spent", invite.id)),
        "{listed}"
    );
}
