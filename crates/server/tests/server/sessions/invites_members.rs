//! Members inviting members (`--members-invite`) over real sockets:
//! `chat invite NAME` asks the relay, in the member's own hello, for a
//! one-use link that adds a new member; `chat --join` opens it. Without
//! the flag, and for a name that is taken, the relay refuses with a clear
//! message and holds no invite. The members file records the inviter
//! beside the new member, and `relay members list` shows it.

use super::*;
use util::ChatProcess;

/// A pin for the fixture's relay at `relay` in a known relays file.
fn known_relays(fixture: &Fixture, relay: &SessionRelay) -> PathBuf {
    let known = fixture.path("known_relays");
    fs::write(&known, format!("{} {}\n", relay.addr(), relay.key)).unwrap();
    known
}

/// `chat invite NAME` as alice's device 1: its exit status, stdout and
/// stderr (bounded: the process is killed on drop).
fn chat_invite(fixture: &Fixture, relay: &SessionRelay, name: &str) -> (bool, String, String) {
    let known = known_relays(fixture, relay);
    let addr = relay.addr().to_string();
    let alice = fixture.identity_file("alice", 1);
    let mut chat = ChatProcess::start_args(&[
        "--connect",
        &addr,
        "--key-file",
        &alice,
        "--known-relays",
        known.to_str().unwrap(),
        "invite",
        name,
    ]);
    let status = chat.wait_exit();
    let stdout = String::from_utf8_lossy(&chat.stdout()).into_owned();
    (status.success(), stdout, chat.stderr())
}

/// The relay's invites file, empty when there is none.
fn invites_file(fixture: &Fixture) -> String {
    let mut path = fixture.members.as_os_str().to_owned();
    path.push(".invites");
    fs::read_to_string(PathBuf::from(path)).unwrap_or_default()
}

/// Without `--members-invite` a member's `chat invite NAME` is refused,
/// saying the operator must allow it, and no invite is held or written.
#[test]
fn without_the_flag_a_members_invite_is_refused_clearly() {
    let (fixture, _) = Fixture::new(&["alice"]);
    let relay = fixture.start(&[]);
    let (ok, stdout, stderr) = chat_invite(&fixture, &relay, "carol");
    assert!(!ok, "the invite was made: {stdout}");
    assert!(
        stderr.contains("does not let members invite") && stderr.contains("--members-invite"),
        "{stderr}"
    );
    assert!(stdout.trim().is_empty(), "a link was printed: {stdout}");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(!invites_file(&fixture).contains("carol"));
}

/// With `--members-invite`, alice's `chat invite carol` gives a link;
/// carol joins with `chat --join` and chats with alice; the members file
/// records alice beside carol, `relay members list` and `relay invite
/// --list` show it, and the link works once only.
#[test]
fn with_the_flag_a_member_invites_a_new_member_and_is_recorded() {
    let (fixture, secrets) = Fixture::new(&["alice"]);
    let relay = fixture.start(&["--members-invite"]);
    let (ok, stdout, stderr) = chat_invite(&fixture, &relay, "carol");
    assert!(ok, "{stdout}{stderr}");
    assert!(stderr.contains("invited by alice"), "{stderr}");
    let link = stdout.trim().to_owned();
    let invite = eaxchat_proto::invite::Invite::parse(&link).unwrap();
    assert_eq!(invite.relay, relay.key);
    let mut alice = relay.connect(&secrets[0]);
    alice.send(b"");
    let carol_known = fixture.path("carol_known_relays");
    let carol_identity = fixture.path("carol.identity");
    let mut carol = ChatProcess::start_args(&[
        "--join",
        &link,
        "--key-file",
        carol_identity.to_str().unwrap(),
        "--known-relays",
        carol_known.to_str().unwrap(),
        "--plain",
    ]);
    carol.wait_for_stderr("joined");
    carol.type_text(b"hello, I was invited\n");
    assert!(
        alice
            .recv_containing("invited")
            .contains("carol: hello, I was invited")
    );
    carol.close_stdin();
    carol.wait_exit();
    let text = fs::read_to_string(&fixture.members).unwrap();
    let label = format!("# device: invited-by: alice, invite {}", invite.id);
    let carol_line = text
        .lines()
        .skip_while(|line| *line != label)
        .nth(1)
        .unwrap_or_else(|| panic!("no inviter beside carol:\n{text}"));
    assert!(carol_line.starts_with("carol x25519:"), "{text}");
    let members = fixture.members.to_str().unwrap();
    let listed = relay_command(fixture.dir.path(), &["members", "list", "--file", members]).1;
    let carol_listed = listed
        .lines()
        .find(|line| line.starts_with("carol "))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(carol_listed.contains("invited-by: alice"), "{listed}");
    let invites = relay_command(fixture.dir.path(), &["invite", "--list", "--file", members]).1;
    assert!(
        invites.contains(&format!("{} carol (invited by alice): spent", invite.id)),
        "{invites}"
    );
    let again = StaticSecret::generate().unwrap();
    let mut raw = TestClient::connect(relay.addr(), &random_key());
    let (initiator, line) = invite.join(&again).unwrap();
    raw.send_raw(&line);
    let reply = raw
        .try_recv_line(WAIT)
        .expect("no reply to the second join");
    let Err(refused) = initiator.finish(&reply) else {
        panic!("the link joined twice");
    };
    assert!(refused.to_string().contains("used already"), "{refused}");
}

/// A name that is a member's already is refused at once, and so is a
/// name that is no name; neither leaves an invite behind.
#[test]
fn a_taken_or_malformed_name_is_refused() {
    let (fixture, _) = Fixture::new(&["alice", "bob"]);
    let relay = fixture.start(&["--members-invite"]);
    let (ok, stdout, stderr) = chat_invite(&fixture, &relay, "bob");
    assert!(!ok, "the invite was made: {stdout}");
    assert!(stderr.contains("bob is a member already"), "{stderr}");
    let (ok, _, stderr) = chat_invite(&fixture, &relay, "no one");
    assert!(!ok);
    assert!(stderr.contains("\"no one\""), "{stderr}");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        invites_file(&fixture).is_empty(),
        "{}",
        invites_file(&fixture)
    );
}

/// `secret`'s hello asking for an invite for `name` (the payload of
/// `chat invite NAME`): the welcome's name, or the refusal's text.
fn ask_for_invite(relay: &SessionRelay, secret: &StaticSecret, name: &str) -> Result<(), String> {
    use eaxchat_proto::invite::{Invite, member_invite_payload};
    let invite = Invite::generate(&relay.addr().to_string(), &relay.key).unwrap();
    let name = eaxchat_proto::name::Name::new(name).unwrap();
    let payload = member_invite_payload(&name, &invite.id, &invite.secret);
    let mut raw = TestClient::connect(relay.addr(), &random_key());
    let (initiator, hello) = Initiator::start(secret, &relay.key, &payload).unwrap();
    raw.send_raw(&hello);
    let reply = raw.recv_line();
    initiator
        .finish(&reply)
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// A member holds at most MEMBER_INVITES_OPEN open invites for new
/// members, and a name someone was invited as (by the operator or a
/// member) cannot be asked for again while that invite is open.
#[test]
fn open_invites_are_bounded_per_member_and_a_name_is_not_invited_twice() {
    use eaxchat_core::relay::MEMBER_INVITES_OPEN;
    let (fixture, secrets) = Fixture::new(&["alice", "bob"]);
    let members = fixture.members.to_str().unwrap();
    let identity = fixture.relay_identity.to_str().unwrap();
    let (code, _, stderr) = relay_command(
        fixture.dir.path(),
        &["invite", "dave", "--file", members, "--identity", identity],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let relay = fixture.start(&["--members-invite"]);
    let text = ask_for_invite(&relay, &secrets[1], "dave").unwrap_err();
    assert!(text.contains("invited as dave already"), "{text}");
    for n in 0..MEMBER_INVITES_OPEN {
        ask_for_invite(&relay, &secrets[0], &format!("guest{n}")).unwrap();
    }
    let text = ask_for_invite(&relay, &secrets[0], "one-more").unwrap_err();
    assert!(
        text.contains(&format!("{MEMBER_INVITES_OPEN} open invites")),
        "{text}"
    );
    let text = ask_for_invite(&relay, &secrets[1], "guest0").unwrap_err();
    assert!(text.contains("invited as guest0 already"), "{text}");
    ask_for_invite(&relay, &secrets[1], "one-more").unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while invites_file(&fixture).matches("inviter=").count() < MEMBER_INVITES_OPEN + 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            invites_file(&fixture)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(invites_file(&fixture).contains("one-more expires="));
}
