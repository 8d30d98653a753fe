//! The sessions file operations on real files in a temporary directory:
//! devices added by key or generated, labels, removal of one device or
//! all, listing, migration, and every refusal leaving the file as it was.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use eaxchat_proto::session::identity_file::read_identity_file;

use super::*;

const K128: &str = "000102030405060708090a0b0c0d0e0f";
const K256: &str = "303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f";

fn name(text: &str) -> Name {
    Name::new(text).unwrap()
}

fn public(byte: u8) -> PublicKey {
    PublicKey::from_bytes([byte; 32])
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn devices(path: &Path) -> Vec<(String, PublicKey, Option<String>)> {
    match list_any(path).unwrap() {
        Listing::Sessions(devices) => devices
            .into_iter()
            .map(|d| (d.name.to_string(), d.key, d.label))
            .collect(),
        Listing::Static(names) => panic!("a static-key file: {names:?}"),
    }
}

#[test]
fn devices_are_added_by_key_or_generated_with_labels_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("members.txt");
    assert_eq!(kind(&file).unwrap(), None);
    add_device(&file, &name("alice"), &public(1), Some(" phone ")).unwrap();
    assert_eq!(mode(&file), 0o600);
    assert_eq!(kind(&file).unwrap(), Some(MembersKind::Sessions));
    add_device(&file, &name("alice"), &public(2), None).unwrap();
    let bob_file = dir.path().join("bob.identity");
    let bob = add_generated(&file, &name("bob"), &bob_file, Some("laptop")).unwrap();
    assert_eq!(mode(&bob_file), 0o600);
    let secret = read_identity_file(&bob_file).unwrap().unwrap();
    assert_eq!(secret.public_key(), &bob);
    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        format!(
            "# device: phone\nalice {}\nalice {}\n# device: laptop\nbob {bob}\n",
            public(1),
            public(2)
        )
    );
    let secret_line = fs::read_to_string(&bob_file).unwrap();
    let secret_line = secret_line.lines().last().unwrap();
    assert!(!text.contains(secret_line), "no secret in the members file");
    assert_eq!(
        devices(&file),
        [
            ("alice".into(), public(1), Some("phone".into())),
            ("alice".into(), public(2), None),
            ("bob".into(), bob, Some("laptop".into())),
        ]
    );
}

#[test]
fn adding_refuses_a_known_key_a_known_name_to_generate_and_the_other_kind() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("members.txt");
    add_device(&file, &name("alice"), &public(1), None).unwrap();
    let before = fs::read(&file).unwrap();
    let err = add_device(&file, &name("bob"), &public(1), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "members file {}: that key is already a device of alice (line 1)",
            file.display()
        )
    );
    let out = dir.path().join("a2.identity");
    let err = add_generated(&file, &name("alice"), &out, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("alice is already a member (line 1)"),
        "{err}"
    );
    assert!(!out.exists());
    let err = add_generated(&file, &name("carol"), &file, None).unwrap_err();
    assert!(matches!(err, MembersError::Io { .. }), "{err}");
    let err = add_device(&file, &name("bob"), &public(2), Some("a\nb")).unwrap_err();
    assert!(err.to_string().contains("control character"), "{err}");
    fs::write(&out, "taken").unwrap();
    let err = add_generated(&file, &name("carol"), &out, None).unwrap_err();
    assert!(
        matches!(err, MembersError::Identity(IdentityError::Exists { .. })),
        "{err}"
    );
    assert_eq!(fs::read(&out).unwrap(), b"taken");
    assert_eq!(fs::read(&file).unwrap(), before, "nothing changed");

    let statics = dir.path().join("static.txt");
    fs::write(&statics, format!("alice {K128}\n")).unwrap();
    let err = add_device(&statics, &name("bob"), &public(3), None).unwrap_err();
    assert!(
        err.to_string().contains("is a static-key members file"),
        "{err}"
    );
    assert!(err.to_string().contains("relay members migrate"), "{err}");
    assert_eq!(
        list_any(&statics).unwrap(),
        Listing::Static(vec![name("alice")])
    );
}

#[test]
fn removing_one_device_or_all_takes_their_labels_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("members.txt");
    let head = "# our team\r\n\r\n";
    let text = format!(
        "{head}# device: phone\nalice {}\r\nbob {}\n# device: laptop\nalice {}\n# end",
        public(1),
        public(2),
        public(3)
    );
    fs::write(&file, &text).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    let removed = remove_devices(&file, &name("alice"), Some(&public(3))).unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!(
            "{head}# device: phone\nalice {}\r\nbob {}\n# end",
            public(1),
            public(2)
        )
    );
    assert_eq!(mode(&file), 0o640, "an existing file keeps its mode");
    let err = remove_devices(&file, &name("alice"), Some(&public(2))).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "members file {}: alice has no device {}",
            file.display(),
            public(2).fingerprint()
        )
    );
    let err = remove_devices(&file, &name("carol"), None).unwrap_err();
    assert!(err.to_string().ends_with("no member named carol"), "{err}");
    add_device(&file, &name("alice"), &public(4), None).unwrap();
    let removed = remove_devices(&file, &name("alice"), None).unwrap();
    assert_eq!(removed.len(), 2);
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("{head}bob {}\n# end\n", public(2))
    );
}

#[test]
fn migrate_gives_every_member_an_identity_and_keeps_the_rest_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("members.txt");
    let keys = dir.path().join("keys");
    let original = format!("# our team\r\nalice {K128}\r\n\n  bob\t{K256}\n# end");
    fs::write(&file, &original).unwrap();
    let migrated = migrate(&file, &keys).unwrap();
    let names: Vec<&str> = migrated.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(mode(&keys), 0o700);
    for member in &migrated {
        assert_eq!(
            member.identity,
            keys.join(format!("{}.identity", member.name))
        );
        assert_eq!(mode(&member.identity), 0o600);
        let secret = read_identity_file(&member.identity).unwrap().unwrap();
        assert_eq!(secret.public_key(), &member.key);
    }
    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        format!(
            "# our team\r\nalice {}\r\n\nbob {}\n# end",
            migrated[0].key, migrated[1].key
        )
    );
    assert!(!text.contains(K128) && !text.contains(K256));
    assert_eq!(kind(&file).unwrap(), Some(MembersKind::Sessions));

    let err = migrate(&file, &keys).unwrap_err();
    assert!(
        err.to_string().contains("is a sessions members file"),
        "{err}"
    );
    assert!(err.to_string().contains("nothing to migrate"), "{err}");
}

#[test]
fn migrate_writes_nothing_when_an_identity_file_is_there_already() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("members.txt");
    let original = format!("alice {K128}\nbob {K256}\n");
    fs::write(&file, &original).unwrap();
    fs::write(dir.path().join("bob.identity"), "mine").unwrap();
    let err = migrate(&file, dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("bob.identity already exists"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), original);
    assert!(!dir.path().join("alice.identity").exists());
    assert_eq!(fs::read(dir.path().join("bob.identity")).unwrap(), b"mine");
    let no_temp_left = fs::read_dir(dir.path())
        .unwrap()
        .all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp"));
    assert!(no_temp_left);
}
