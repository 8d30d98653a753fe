//! The KeyPackages the relay handed out (which device each is of, so that
//! a Welcome naming it reaches that device) against a member who asks for
//! KeyPackages over and over: the review found that one member could push
//! everyone else's handouts out of the bounded map, so a Welcome made from
//! a KeyPackage handed out before reached nobody.

use base64::Engine as _;
use eaxchat_core::delivery::{MAX_HANDED_OUT, MAX_HANDED_PER_ASKER};
use eaxchat_core::relay::Relay;
use eaxchat_proto::events::ParsedKind;

use crate::chat_layer::{ALICE, BOB, CAROL};
use crate::e2e::{B64, connect, events, mls, relay};
use crate::mls_device::Device;
use crate::util::{Pipe, SessionClient};

/// Carol uploads and takes back her own KeyPackages more times than the
/// relay keeps handouts in all; alice's handout of bob's KeyPackage is
/// still known, and her Welcome reaches bob.
#[test]
fn one_member_asking_over_and_over_keeps_the_others_handouts() {
    let mut relay = relay();
    let mut alice = connect(&mut relay, ALICE);
    let mut bob = connect(&mut relay, BOB);
    let mut carol = connect(&mut relay, CAROL);
    let (mut alice_mls, mut bob_mls) = (Device::new("alice"), Device::new("bob"));
    let carol_mls = Device::new("carol");
    let packages =
        alice_holds_bobs_package(&mut relay, &mut alice, &mut bob, &mut alice_mls, &bob_mls);

    for _ in 0..MAX_HANDED_OUT + 64 {
        let package = B64.encode(carol_mls.key_package());
        carol.say(&mut relay, &format!("/keypackage {package}"));
        carol.say(&mut relay, "/keypackages carol");
        carol.got(&mut relay);
    }

    let (commit, welcome) = alice_mls.add(&packages);
    mls(&mut relay, &mut alice, "dev", &commit);
    alice_mls.merge();
    mls(&mut relay, &mut alice, "dev", &welcome);
    let got = events(&mut relay, &mut bob);
    let welcome = got
        .iter()
        .find(|e| e.kind == ParsedKind::Mls && e.id.is_none())
        .unwrap_or_else(|| {
            let kinds: Vec<&ParsedKind> = got.iter().map(|e| &e.kind).collect();
            panic!("no Welcome reached bob, only {kinds:?}")
        });
    bob_mls.join(&welcome.data);
    assert_eq!(bob_mls.epoch(), 1);
}

/// Alice asks for carol's KeyPackages more times than one asker's handouts
/// are kept, so her own handout of bob's is let go. Her Welcome for bob
/// then reaches nobody, and she is told so (before, nothing was said).
#[test]
fn a_welcome_naming_a_handout_let_go_is_answered_with_an_error() {
    let mut relay = relay();
    let mut alice = connect(&mut relay, ALICE);
    let mut bob = connect(&mut relay, BOB);
    let mut carol = connect(&mut relay, CAROL);
    let (mut alice_mls, bob_mls) = (Device::new("alice"), Device::new("bob"));
    let carol_mls = Device::new("carol");
    let packages =
        alice_holds_bobs_package(&mut relay, &mut alice, &mut bob, &mut alice_mls, &bob_mls);

    for _ in 0..MAX_HANDED_PER_ASKER + 8 {
        let package = B64.encode(carol_mls.key_package());
        carol.say(&mut relay, &format!("/keypackage {package}"));
        alice.say(&mut relay, "/keypackages carol");
        alice.got(&mut relay);
        carol.got(&mut relay);
    }

    let (commit, welcome) = alice_mls.add(&packages);
    mls(&mut relay, &mut alice, "dev", &commit);
    alice_mls.merge();
    alice.got(&mut relay);
    bob.got(&mut relay);
    mls(&mut relay, &mut alice, "dev", &welcome);
    let told = events(&mut relay, &mut alice);
    let error = told
        .iter()
        .find(|e| e.kind == ParsedKind::Error)
        .unwrap_or_else(|| panic!("alice was not told, only {told:?}"));
    assert!(
        error
            .text
            .contains("1 KeyPackage(s) this relay no longer knows"),
        "{}",
        error.text
    );
    assert!(
        !events(&mut relay, &mut bob)
            .iter()
            .any(|e| e.kind == ParsedKind::Mls && e.id.is_none()),
        "a Welcome reached bob from a handout let go"
    );
}

/// Alice makes end-to-end #dev; bob uploads a KeyPackage and joins; alice
/// is handed it (`/keypackages bob`): the one package, returned.
fn alice_holds_bobs_package(
    relay: &mut Relay<Pipe>,
    alice: &mut SessionClient,
    bob: &mut SessionClient,
    alice_mls: &mut Device,
    bob_mls: &Device,
) -> Vec<Vec<u8>> {
    alice.say(relay, "/join dev --e2e");
    mls(relay, alice, "dev", &alice_mls.create("dev"));
    bob.say(
        relay,
        &format!("/keypackage {}", B64.encode(bob_mls.key_package())),
    );
    bob.say(relay, "/join dev");
    bob.got(relay);
    alice.got(relay);
    alice.say(relay, "/keypackages bob");
    let packages = events(relay, alice)
        .into_iter()
        .find(|e| matches!(e.kind, ParsedKind::KeyPackages { .. }))
        .expect("bob's KeyPackages")
        .packages;
    assert_eq!(packages.len(), 1);
    packages
}
