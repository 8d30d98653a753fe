//! The settings file: the defaults against the struct, and the errors.

use std::path::{Path, PathBuf};

use super::*;

fn parse(text: &str) -> Result<Settings, ConfigError> {
    Settings::parse(text, Path::new("relay.toml"))
}

/// Settings with every optional key set, so every key serialises.
fn everything_set() -> Settings {
    let path = Some(PathBuf::from("x"));
    Settings {
        state_dir: path.clone(),
        admin_socket: path.clone(),
        key_file: path.clone(),
        key_hex: Some("00".into()),
        members: path.clone(),
        identity: path.clone(),
        rate: Some(1.0),
        burst: Some(1),
        log: path.clone(),
        log_key: path.clone(),
        web: Some(SocketAddr::from(([127, 0, 0, 1], 1))),
        web_tls_cert: path.clone(),
        web_tls_key: path.clone(),
        metrics: Some(SocketAddr::from(([127, 0, 0, 1], 2))),
        metrics_token_file: path.clone(),
        cluster: Some("nats://x".into()),
        cluster_key_file: path.clone(),
        cluster_token: Some("t".into()),
        cluster_user: Some("u".into()),
        cluster_password: Some("p".into()),
        cluster_nkey: path.clone(),
        cluster_creds: path,
        ..Settings::default()
    }
}

/// `relay config defaults` is exactly the defaults: it parses to
/// `Settings::default()`, and names every key, each once.
#[test]
fn the_defaults_file_is_the_defaults() {
    assert_eq!(parse(DEFAULTS).unwrap(), Settings::default());
    let all = toml::Table::try_from(everything_set()).unwrap();
    let mut listed = keys();
    let count = listed.len();
    listed.sort_unstable();
    listed.dedup();
    assert_eq!(listed.len(), count, "a key is listed twice");
    let mut fields: Vec<&str> = all.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(listed, fields);
}

/// Every commented-out key in the defaults parses once uncommented: the
/// examples are valid values.
#[test]
fn the_commented_examples_are_valid() {
    let uncommented: String = DEFAULTS
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if keys()
                    .iter()
                    .any(|key| rest.starts_with(&format!("{key} = "))) =>
            {
                rest
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let settings = parse(&uncommented).unwrap();
    assert_eq!(settings.rate, Some(5.0));
    assert_eq!(settings.members, Some(PathBuf::from("members.txt")));
}

/// Unknown keys, wrong types and values out of range name their line.
#[test]
fn errors_name_the_line() {
    let cases: [(&str, usize, &str); 8] = [
        (
            "listen = \"127.0.0.1:1\"\nmax-cleints = 5\n",
            2,
            "did you mean `max-clients`",
        ),
        ("\n\nwhatever = 1\n", 3, "unknown key `whatever`"),
        ("history = 1\nmax-queue = \"big\"\n", 2, "invalid type"),
        ("max-frame = 0\n", 1, "must be at least 1"),
        ("presence = \"maybe\"\n", 1, "expected on or off"),
        ("a = 1\n", 1, "unknown key"),
        ("rate = -1\n", 1, "messages a second"),
        ("max-per-address = 1\nlisten = \"nowhere\"\n", 2, "invalid"),
    ];
    for (text, line, needle) in cases {
        let error = parse(text).unwrap_err();
        assert_eq!(error.line, Some(line), "{text:?}: {error}");
        assert!(error.to_string().contains(needle), "{text:?}: {error}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("config relay.toml line {line}: ")),
            "{error}"
        );
    }
    let error = parse("listen = [\n").unwrap_err();
    assert!(error.line.is_some(), "{error}");
}

/// Relative paths from the file are taken from the state directory;
/// absolute ones are kept.
#[test]
fn relative_paths_are_in_the_state_dir() {
    let mut settings =
        parse("members = \"members.txt\"\nlog = \"/var/log/chat\"\nstate-dir = \"/s\"\n").unwrap();
    let dir = settings.state_dir.clone();
    settings.anchor_paths(dir.as_deref());
    assert_eq!(settings.members, Some(PathBuf::from("/s/members.txt")));
    assert_eq!(settings.log, Some(PathBuf::from("/var/log/chat")));
    assert_eq!(
        settings.key_file_or_default(),
        PathBuf::from("/s/relay.key")
    );
    assert_eq!(
        Settings::default().key_file_or_default(),
        PathBuf::from("relay.key")
    );
    assert_eq!(Settings::default().members_file(), None);
}

/// What changed between two settings, by key.
#[test]
fn changed_keys_are_named() {
    let old = Settings::default();
    let new = parse("max-clients = 2\nlisten = \"127.0.0.1:9\"\nweb-origin = [\"*\"]\n").unwrap();
    assert_eq!(
        old.changed_keys(&new),
        ["listen", "max-clients", "web-origin"]
    );
    let mut kept = old.clone();
    kept.take_live(&new);
    assert_eq!(kept.max_clients, 2);
    assert_eq!(kept.changed_keys(&new), ["listen", "web-origin"]);
    assert!(old.changed_keys(&old).is_empty());
}

/// The Debian package's /etc/eaxchat/relay.toml is the defaults with the
/// state and the admin socket where the unit's directories are, and says
/// as much about every key.
#[test]
fn the_packaged_config_is_the_defaults_in_the_units_directories() {
    let packaged = include_str!("../../debian/relay.toml");
    assert_eq!(
        parse(packaged).unwrap(),
        Settings {
            state_dir: Some(PathBuf::from("/var/lib/eaxchat")),
            admin_socket: Some(PathBuf::from("/run/eaxchat/admin.sock")),
            ..Settings::default()
        }
    );
    let lines = |text: &'static str| -> Vec<&'static str> {
        text.lines()
            .map(|line| line.strip_prefix("# ").unwrap_or(line))
            .filter(|line| !line.starts_with("/etc/eaxchat") && !line.is_empty())
            .collect()
    };
    let defaults = lines(DEFAULTS);
    let packaged = lines(packaged);
    assert!(
        defaults.iter().all(|line| packaged.contains(line)),
        "the packaged config lacks a line of the defaults"
    );
}
