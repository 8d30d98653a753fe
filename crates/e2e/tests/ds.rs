//! The relay's reading of real MLS messages (`ds::peek`,
//! `ds::check_key_package`): devices made with `E2eRooms` (and, for what
//! they never send, raw openmls) produce the bytes; the relay's functions
//! must tell each kind, group and epoch, name the KeyPackages a Welcome is
//! for, and refuse what is not theirs or not MLS.

use eaxchat_e2e::ds::{DsError, Peeked, check_key_package, peek};
use eaxchat_e2e::{CIPHERSUITE, E2eRooms, group_id};
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{
    BasicCredential, Ciphersuite, CredentialWithKey, KeyPackage,
    MIXED_PLAINTEXT_WIRE_FORMAT_POLICY, MlsGroup, MlsGroupCreateConfig, MlsMessageOut,
    PURE_CIPHERTEXT_WIRE_FORMAT_POLICY,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;

fn device(dir: &tempfile::TempDir, name: &str) -> E2eRooms {
    E2eRooms::open(&dir.path().join(name), name).expect("device")
}

/// GroupInfo, KeyPackage, Commit, Welcome and application message, each
/// read with its group and epoch.
#[test]
fn each_kind_is_read_with_its_group_and_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut alice, mut bob) = (device(&dir, "alice"), device(&dir, "bob"));
    let group = group_id("dev");
    let info = alice.create("dev").expect("create");
    assert_eq!(
        peek(&info),
        Ok(Peeked::GroupInfo {
            group: group.clone(),
            epoch: 0
        })
    );
    let packages = bob.key_packages(1).expect("kp");
    assert_eq!(peek(&packages[0]), Ok(Peeked::KeyPackage));
    let (commit, welcome) = alice.add("dev", &packages).expect("add");
    assert_eq!(
        peek(&commit),
        Ok(Peeked::Commit {
            group: group.clone(),
            epoch: 0
        })
    );
    let reference = check_key_package(&packages[0], "bob")
        .expect("bob's")
        .reference;
    assert_eq!(
        peek(&welcome),
        Ok(Peeked::Welcome {
            for_key_packages: vec![reference]
        })
    );
    let info = alice.accepted("dev").expect("merge");
    assert_eq!(
        peek(&info),
        Ok(Peeked::GroupInfo {
            group: group.clone(),
            epoch: 1
        })
    );
    bob.join_welcome(&welcome).expect("join");
    let message = bob.encrypt("dev", "hi").expect("encrypt");
    assert_eq!(
        peek(&message),
        Ok(Peeked::Application {
            group: group.clone(),
            epoch: 1
        })
    );
    let removal = bob.remove("dev", "alice").expect("remove");
    assert_eq!(peek(&removal), Ok(Peeked::Commit { group, epoch: 1 }));
}

/// A Welcome adding several devices names each one's KeyPackageRef, as
/// the relay computed it when the KeyPackage was uploaded.
#[test]
fn a_welcome_names_every_key_package_it_adds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut alice = device(&dir, "alice");
    alice.create("dev").expect("create");
    let mut expected = Vec::new();
    let mut packages = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let package = device(&dir, name).key_packages(1).expect("kp").remove(0);
        expected.push(check_key_package(&package, name).expect("checks").reference);
        packages.push(package);
    }
    let (_, welcome) = alice.add("dev", &packages).expect("add");
    let Ok(Peeked::Welcome {
        mut for_key_packages,
    }) = peek(&welcome)
    else {
        panic!("not a welcome");
    };
    for_key_packages.sort();
    expected.sort();
    assert_eq!(for_key_packages, expected);
}

/// A KeyPackage checks for its own member only; another name, damage,
/// trailing bytes, another message kind and garbage are refused.
#[test]
fn key_packages_are_checked_for_their_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bob = device(&dir, "bob");
    let package = bob.key_packages(1).expect("kp").remove(0);
    let checked = check_key_package(&package, "bob").expect("bob's");
    assert_eq!(checked.signature_key, bob.device().signature_key());
    assert_eq!(checked.reference.len(), 32);
    assert_eq!(
        check_key_package(&package, "mallory"),
        Err(DsError::NotYours)
    );
    assert_eq!(check_key_package(&package, "bo"), Err(DsError::NotYours));

    let mut forged = package.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        check_key_package(&forged, "bob"),
        Err(DsError::BadKeyPackage)
    );
    let mut longer = package.clone();
    longer.push(0);
    assert_eq!(check_key_package(&longer, "bob"), Err(DsError::Malformed));
    assert_eq!(
        check_key_package(&package[..package.len() / 2], "bob"),
        Err(DsError::Malformed)
    );
    assert_eq!(check_key_package(b"", "bob"), Err(DsError::Malformed));
    assert_eq!(
        check_key_package(b"garbage, not MLS", "bob"),
        Err(DsError::Malformed)
    );
    let info = bob.create("dev").expect("create");
    assert_eq!(check_key_package(&info, "bob"), Err(DsError::Unsupported));
}

/// A KeyPackage of another suite than CIPHERSUITE is refused as such.
#[test]
fn a_key_package_of_another_suite_is_refused() {
    let suite = Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256;
    assert_ne!(suite, CIPHERSUITE);
    let provider = OpenMlsRustCrypto::default();
    let signer = SignatureKeyPair::new(suite.signature_algorithm()).expect("key");
    let credential = CredentialWithKey {
        credential: BasicCredential::new(b"bob".to_vec()).into(),
        signature_key: signer.to_public_vec().into(),
    };
    let bundle = KeyPackage::builder()
        .build(suite, &provider, &signer, credential)
        .expect("key package");
    let bytes = MlsMessageOut::from(bundle.key_package().clone())
        .to_bytes()
        .expect("encode");
    assert_eq!(
        check_key_package(&bytes, "bob"),
        Err(DsError::WrongCiphersuite)
    );
}

/// Garbage, cut messages and trailing bytes are Malformed, never a panic.
#[test]
fn garbage_is_malformed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut alice = device(&dir, "alice");
    alice.create("dev").expect("create");
    let message = alice.encrypt("dev", "hello").expect("encrypt");
    assert_eq!(peek(b""), Err(DsError::Malformed));
    assert_eq!(peek(b"\x00\x01\x00\x05junk"), Err(DsError::Malformed));
    for cut in 0..message.len() {
        assert_eq!(
            peek(&message[..cut]),
            Err(DsError::Malformed),
            "cut at {cut}"
        );
    }
    let mut longer = message;
    longer.push(0);
    assert_eq!(peek(&longer), Err(DsError::Malformed));
}

/// What an eaxchat device never sends, made with openmls directly: a
/// Proposal is read as one; a Commit sent as PrivateMessage is refused
/// (the relay must read a handshake's kind to order it).
#[test]
fn proposals_are_read_and_hidden_handshakes_refused() {
    let provider = OpenMlsRustCrypto::default();
    let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).expect("key");
    let credential = CredentialWithKey {
        credential: BasicCredential::new(b"alice".to_vec()).into(),
        signature_key: signer.to_public_vec().into(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let package = device(&dir, "bob").key_packages(1).expect("kp").remove(0);
    let openmls::prelude::MlsMessageBodyIn::KeyPackage(package) =
        openmls::prelude::tls_codec::Deserialize::tls_deserialize_exact(&package)
            .map(|m: openmls::prelude::MlsMessageIn| m.extract())
            .expect("decode")
    else {
        panic!("not a key package");
    };
    let package = package
        .validate(
            openmls_traits::OpenMlsProvider::crypto(&provider),
            openmls::prelude::ProtocolVersion::Mls10,
        )
        .expect("valid");

    let mut public = MlsGroup::new_with_group_id(
        &provider,
        &signer,
        &MlsGroupCreateConfig::builder()
            .ciphersuite(CIPHERSUITE)
            .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
            .build(),
        openmls::prelude::GroupId::from_slice(&group_id("open")),
        credential.clone(),
    )
    .expect("group");
    let (proposal, _) = public
        .propose_add_member(&provider, &signer, &package)
        .expect("proposal");
    let proposal = proposal.tls_serialize_detached().expect("encode");
    assert_eq!(
        peek(&proposal),
        Ok(Peeked::Proposal {
            group: group_id("open"),
            epoch: 0
        })
    );

    let mut hidden = MlsGroup::new_with_group_id(
        &provider,
        &signer,
        &MlsGroupCreateConfig::builder()
            .ciphersuite(CIPHERSUITE)
            .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
            .build(),
        openmls::prelude::GroupId::from_slice(&group_id("hidden")),
        credential,
    )
    .expect("group");
    let (commit, _, _) = hidden
        .add_members(&provider, &signer, &[package])
        .expect("commit");
    let commit = commit.tls_serialize_detached().expect("encode");
    assert_eq!(peek(&commit), Err(DsError::UnreadableHandshake));
}
