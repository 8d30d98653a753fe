//! The command line: the flags (each one a key of the config file, see
//! [`eaxchat_server::config`]), the subcommands, and how the flags given
//! are laid over the file's settings ([`Args::layer`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use argh::FromArgs;
use eaxchat_proto::session::PublicKey;
use eaxchat_server::config::{Settings, Switch};
use eaxchat_server::members_file::KeySize;
use eaxchat_server::msglog::Fsync;

use super::{config_cmd, identity, invite, log_cmd, status};

/// An AES-EAX encrypted chat relay: every line a client sends is
/// authenticated, decrypted, sealed again and sent to every other client.
#[derive(FromArgs)]
pub(crate) struct Args {
    /// read settings from this TOML file (`relay config defaults` prints
    /// one); a flag given here wins over the file's key of the same name
    #[argh(option)]
    pub(crate) config: Option<PathBuf>,

    /// the directory for the key, the members file and the relative paths
    /// of the config file (default: the working directory)
    #[argh(option)]
    pub(crate) state_dir: Option<PathBuf>,

    /// serve `relay status` on this Unix socket (mode 0600)
    #[argh(option)]
    pub(crate) admin_socket: Option<PathBuf>,

    /// address to listen on, IPv4 or IPv6 (default 127.0.0.1:8080)
    #[argh(option)]
    pub(crate) listen: Option<SocketAddr>,

    /// file holding the key in hex; created with a random 128-bit key
    /// (mode 0600) if missing (default relay.key)
    #[argh(option)]
    pub(crate) key_file: Option<PathBuf>,

    /// the key in hex (32, 48 or 64 digits); overrides $EAXCHAT_KEY and
    /// --key-file
    #[argh(option)]
    pub(crate) key_hex: Option<String>,

    /// serve the members of this file, each under their own key, instead
    /// of one shared key: NAME x25519:KEY lines (one a device) in session
    /// mode, NAME HEXKEY lines in the deprecated static-key mode; reread
    /// on SIGHUP and when it changes
    #[argh(option)]
    pub(crate) members: Option<PathBuf>,

    /// the relay's identity for session mode (its X25519 secret), created
    /// with mode 0600 if missing, never replaced (default relay.identity)
    #[argh(option)]
    pub(crate) identity: Option<PathBuf>,

    /// longest line accepted, in bytes; a longer one closes the connection
    /// (default 65536)
    #[argh(option)]
    pub(crate) max_frame: Option<usize>,

    /// most clients connected at once; more are refused (default 10000)
    #[argh(option)]
    pub(crate) max_clients: Option<usize>,

    /// most bytes queued for one client; a client that falls further behind
    /// is disconnected (default 4194304)
    #[argh(option)]
    pub(crate) max_queue: Option<usize>,

    /// most bytes held, in all, for connections that have not sent a frame
    /// that opened; past it the one holding the most is closed
    /// (default 4194304)
    #[argh(option)]
    pub(crate) pre_auth_budget: Option<usize>,

    /// seconds a connection may take to complete a frame that opens (in
    /// session mode, its handshake); in members and session mode and with
    /// --require-proof a silent connection is closed too (default 10)
    #[argh(option)]
    pub(crate) first_frame_timeout: Option<u64>,

    /// most connections from one IPv4 address or IPv6 /64; 0 for no limit
    /// (default 32)
    #[argh(option)]
    pub(crate) max_per_address: Option<usize>,

    /// most connections from one IPv6 /56; 0 for no limit (default 64)
    #[argh(option)]
    pub(crate) max_per_ipv6_56: Option<usize>,

    /// most connections from one IPv6 /48; 0 for no limit (default 256)
    #[argh(option)]
    pub(crate) max_per_ipv6_48: Option<usize>,

    /// session mode: let members invite new members (chat invite NAME);
    /// each inviter is written beside the member they invited (default
    /// off: only the operator invites)
    #[argh(switch)]
    pub(crate) members_invite: bool,

    /// shared-key mode: send a connection nothing until one of its frames
    /// opens (members and session mode always do); off by default, for
    /// the original notebook receivers, which never send
    #[argh(switch)]
    pub(crate) require_proof: bool,

    /// seconds between stats lines in the log; 0 for only at exit
    /// (default 60)
    #[argh(option)]
    pub(crate) stats_interval: Option<u64>,

    /// milliseconds to keep writing queued frames after SIGINT/SIGTERM
    /// (default 2000)
    #[argh(option)]
    pub(crate) shutdown_grace_ms: Option<u64>,

    /// least milliseconds between two frames written to an original
    /// notebook client, so its receive thread reads each alone (default 50)
    #[argh(option)]
    pub(crate) seed_write_gap_ms: Option<u64>,

    /// the room every connection starts in (default lobby)
    #[argh(option)]
    pub(crate) default_room: Option<String>,

    /// most rooms with someone in them (default 1000)
    #[argh(option)]
    pub(crate) max_rooms: Option<usize>,

    /// messages of a room's history sent to whoever joins; 0 for none
    /// (default 100)
    #[argh(option)]
    pub(crate) history: Option<usize>,

    /// most bytes of one room's history (default 65536)
    #[argh(option)]
    pub(crate) history_bytes: Option<usize>,

    /// flood control: messages a second each connection may send; 0 for
    /// none (default 5 with --members, 0 with a shared key)
    #[argh(option)]
    pub(crate) rate: Option<f64>,

    /// flood control: messages a connection may send at once before
    /// --rate applies (default 20)
    #[argh(option)]
    pub(crate) burst: Option<u32>,

    /// tell rooms who joins and leaves: on or off (default on)
    #[argh(option)]
    pub(crate) presence: Option<Switch>,

    /// keep every room message, join and leave in an encrypted log in this
    /// directory; room history is rebuilt from it on start
    #[argh(option)]
    pub(crate) log: Option<PathBuf>,

    /// the log's key file, created (mode 0600) if missing (default:
    /// log.key in the state directory, not beside the log)
    #[argh(option)]
    pub(crate) log_key: Option<PathBuf>,

    /// when the log is synced to disk: always, everysec or no
    /// (default everysec)
    #[argh(option)]
    pub(crate) log_fsync: Option<Fsync>,

    /// most bytes the log keeps; the oldest segments are deleted past it
    /// (default 268435456)
    #[argh(option)]
    pub(crate) log_max_bytes: Option<u64>,

    /// also serve the chat page, its WebSocket (/ws), /metrics and
    /// /healthz on this address, e.g. 127.0.0.1:8081
    #[argh(option)]
    pub(crate) web: Option<SocketAddr>,

    /// an origin allowed to open /ws (repeat for more; "*" for any);
    /// default: only the page's own
    #[argh(option)]
    pub(crate) web_origin: Vec<String>,

    /// seconds a browser may be silent before it is pinged; silent twice
    /// as long, it is closed (default 60)
    #[argh(option)]
    pub(crate) web_idle_timeout: Option<u64>,

    /// serve --web over TLS with this certificate chain (PEM, e.g.
    /// certbot's fullchain.pem); reloaded on SIGHUP and when it changes
    #[argh(option)]
    pub(crate) web_tls_cert: Option<PathBuf>,

    /// the private key of --web-tls-cert (PEM, e.g. privkey.pem)
    #[argh(option)]
    pub(crate) web_tls_key: Option<PathBuf>,

    /// serve --web over TLS with a certificate made at start (its
    /// SHA-256 fingerprint is logged): for a first try
    #[argh(switch)]
    pub(crate) web_tls_self_signed: bool,

    /// seconds a TLS handshake on --web may take (default 10)
    #[argh(option)]
    pub(crate) web_tls_handshake_timeout: Option<u64>,

    /// serve /metrics (and /healthz) on this address of its own, e.g.
    /// 127.0.0.1:9091; --web then has no /metrics (without either, --web's
    /// /metrics answers loopback peers only)
    #[argh(option)]
    pub(crate) metrics: Option<SocketAddr>,

    /// a file holding the token /metrics requires as "Authorization:
    /// Bearer TOKEN"
    #[argh(option)]
    pub(crate) metrics_token_file: Option<PathBuf>,

    /// join relays into one chat through NATS: nats://HOST:PORT, comma
    /// separated for several servers of a NATS cluster
    #[argh(option)]
    pub(crate) cluster: Option<String>,

    /// the cluster's name: its NATS subjects start eaxchat.NAME.
    /// (default main)
    #[argh(option)]
    pub(crate) cluster_name: Option<String>,

    /// the key the relays of the cluster share, and only they; created
    /// (mode 0600) if missing: copy the same file to every relay
    #[argh(option)]
    pub(crate) cluster_key_file: Option<PathBuf>,

    /// NATS authentication: a token
    #[argh(option)]
    pub(crate) cluster_token: Option<String>,

    /// NATS authentication: a user (with --cluster-password)
    #[argh(option)]
    pub(crate) cluster_user: Option<String>,

    /// NATS authentication: the user's password
    #[argh(option)]
    pub(crate) cluster_password: Option<String>,

    /// NATS authentication: a file holding an nkey seed
    #[argh(option)]
    pub(crate) cluster_nkey: Option<PathBuf>,

    /// NATS authentication: a credentials (.creds) file
    #[argh(option)]
    pub(crate) cluster_creds: Option<PathBuf>,

    /// seconds another relay may be silent before its people are
    /// announced gone (default 5)
    #[argh(option)]
    pub(crate) cluster_timeout: Option<u64>,

    /// envelopes waiting for NATS at most; past it they are dropped and
    /// counted (cluster_dropped), never waited for (default 8192)
    #[argh(option)]
    pub(crate) cluster_queue: Option<usize>,

    /// keep room history in a JetStream stream (--history messages a
    /// room), filled from on start and on every reconnect
    #[argh(switch)]
    pub(crate) cluster_history: bool,

    /// most bytes of the JetStream history stream (default 67108864)
    #[argh(option)]
    pub(crate) cluster_history_bytes: Option<u64>,

    /// print the version and exit
    #[argh(switch)]
    pub(crate) version: bool,

    /// without a command, the relay serves
    #[argh(subcommand)]
    pub(crate) command: Option<Command>,
}

/// What to do instead of serving.
#[derive(FromArgs)]
#[argh(subcommand)]
pub(crate) enum Command {
    Members(MembersArgs),
    Key(identity::KeyArgs),
    Invite(invite::InviteArgs),
    Log(log_cmd::LogArgs),
    Config(config_cmd::ConfigArgs),
    Status(status::StatusArgs),
}

/// Manage a members file (`NAME x25519:KEY` a line, one a device, or the
/// deprecated `NAME HEXKEY`): add, remove, list or migrate. Without --file:
/// the config's members file, or members.txt in its state-dir (the config
/// is --config, else /etc/eaxchat/relay.toml).
#[derive(FromArgs)]
#[argh(subcommand, name = "members")]
pub(crate) struct MembersArgs {
    #[argh(subcommand)]
    pub(crate) command: MembersCommand,
}

#[derive(FromArgs)]
#[argh(subcommand)]
pub(crate) enum MembersCommand {
    Add(AddArgs),
    Remove(RemoveArgs),
    List(ListArgs),
    Migrate(MigrateArgs),
}

/// Add a member. In a sessions file: a device by its public key
/// (--public-key), or a new member whose identity is generated and written
/// to a new file (mode 0600) to hand to them, only its public key going to
/// the members file. In a static-key file: a new member's key, generated
/// and written to a new file (mode 0600). A new file is a sessions file
/// unless --static-keys is given.
#[derive(FromArgs)]
#[argh(subcommand, name = "add")]
pub(crate) struct AddArgs {
    /// the member's name: 1 to 32 of A-Z a-z 0-9 _ - .
    #[argh(positional)]
    pub(crate) name: String,

    /// the members file; created with mode 0600 if missing
    #[argh(option)]
    pub(crate) file: Option<PathBuf>,

    /// a device's public key (x25519:…, as `chat keygen` prints it): adds
    /// that device, to a new member or to another device's member
    #[argh(option)]
    pub(crate) public_key: Option<PublicKey>,

    /// a label for the device (a sessions file), shown by `members list`
    #[argh(option)]
    pub(crate) device: Option<String>,

    /// a new file is a sessions file (x25519 public keys); the default
    #[argh(switch)]
    pub(crate) sessions: bool,

    /// a new file is a static-key file (NAME HEXKEY: the deprecated
    /// members mode, whose file holds every member's secret key)
    #[argh(switch)]
    pub(crate) static_keys: bool,

    /// where to write the new member's secret; never overwritten (default
    /// NAME.identity in a sessions file, NAME.key in a static-key file)
    #[argh(option)]
    pub(crate) key_out: Option<PathBuf>,

    /// static-key files only: key size in bits, 128, 192 or 256
    /// (default 128)
    #[argh(option)]
    pub(crate) bits: Option<KeySize>,

    /// the config file naming the members file (default
    /// /etc/eaxchat/relay.toml, if there is one)
    #[argh(option)]
    pub(crate) config: Option<PathBuf>,
}

/// Remove a member from the members file: all their devices, or in a
/// sessions file only the one given with --public-key.
#[derive(FromArgs)]
#[argh(subcommand, name = "remove")]
pub(crate) struct RemoveArgs {
    /// the member's name
    #[argh(positional)]
    pub(crate) name: String,

    /// the members file
    #[argh(option)]
    pub(crate) file: Option<PathBuf>,

    /// remove only this device (x25519:…)
    #[argh(option)]
    pub(crate) public_key: Option<PublicKey>,

    /// the config file naming the members file (default
    /// /etc/eaxchat/relay.toml, if there is one)
    #[argh(option)]
    pub(crate) config: Option<PathBuf>,
}

/// List the members: their names, one a line (never a static key), and in
/// a sessions file each device's fingerprint and label.
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
pub(crate) struct ListArgs {
    /// the members file
    #[argh(option)]
    pub(crate) file: Option<PathBuf>,

    /// the config file naming the members file (default
    /// /etc/eaxchat/relay.toml, if there is one)
    #[argh(option)]
    pub(crate) config: Option<PathBuf>,
}

/// Convert a static-key members file to a sessions file: for each member a
/// new identity in DIR/NAME.identity (mode 0600) to hand to them, and
/// their line replaced by its public key, in one atomic rewrite.
#[derive(FromArgs)]
#[argh(subcommand, name = "migrate")]
pub(crate) struct MigrateArgs {
    /// the members file
    #[argh(option)]
    pub(crate) file: Option<PathBuf>,

    /// where to write the identities (default: the working directory)
    #[argh(option)]
    pub(crate) key_dir: Option<PathBuf>,

    /// the config file naming the members file (default
    /// /etc/eaxchat/relay.toml, if there is one)
    #[argh(option)]
    pub(crate) config: Option<PathBuf>,
}

impl Args {
    /// `base` (the config file's settings, or the defaults) with every
    /// flag given on the command line in place of its key.
    pub(crate) fn layer(&self, base: Settings) -> Settings {
        fn over<T: Clone>(flag: &Option<T>, key: T) -> T {
            flag.clone().unwrap_or(key)
        }
        fn either<T: Clone>(flag: &Option<T>, key: Option<T>) -> Option<T> {
            flag.clone().or(key)
        }
        Settings {
            state_dir: either(&self.state_dir, base.state_dir),
            admin_socket: either(&self.admin_socket, base.admin_socket),
            listen: over(&self.listen, base.listen),
            key_file: either(&self.key_file, base.key_file),
            key_hex: either(&self.key_hex, base.key_hex),
            members: either(&self.members, base.members),
            identity: either(&self.identity, base.identity),
            members_invite: self.members_invite || base.members_invite,
            max_frame: over(&self.max_frame, base.max_frame),
            max_clients: over(&self.max_clients, base.max_clients),
            max_queue: over(&self.max_queue, base.max_queue),
            pre_auth_budget: over(&self.pre_auth_budget, base.pre_auth_budget),
            first_frame_timeout: over(&self.first_frame_timeout, base.first_frame_timeout),
            max_per_address: over(&self.max_per_address, base.max_per_address),
            max_per_ipv6_56: over(&self.max_per_ipv6_56, base.max_per_ipv6_56),
            max_per_ipv6_48: over(&self.max_per_ipv6_48, base.max_per_ipv6_48),
            require_proof: self.require_proof || base.require_proof,
            stats_interval: over(&self.stats_interval, base.stats_interval),
            shutdown_grace_ms: over(&self.shutdown_grace_ms, base.shutdown_grace_ms),
            seed_write_gap_ms: over(&self.seed_write_gap_ms, base.seed_write_gap_ms),
            default_room: over(&self.default_room, base.default_room),
            max_rooms: over(&self.max_rooms, base.max_rooms),
            history: over(&self.history, base.history),
            history_bytes: over(&self.history_bytes, base.history_bytes),
            rate: either(&self.rate, base.rate),
            burst: either(&self.burst, base.burst),
            presence: over(&self.presence, base.presence),
            log: either(&self.log, base.log),
            log_key: either(&self.log_key, base.log_key),
            log_fsync: over(&self.log_fsync, base.log_fsync),
            log_max_bytes: over(&self.log_max_bytes, base.log_max_bytes),
            web: either(&self.web, base.web),
            web_origin: if self.web_origin.is_empty() {
                base.web_origin
            } else {
                self.web_origin.clone()
            },
            web_idle_timeout: over(&self.web_idle_timeout, base.web_idle_timeout),
            web_tls_cert: either(&self.web_tls_cert, base.web_tls_cert),
            web_tls_key: either(&self.web_tls_key, base.web_tls_key),
            web_tls_self_signed: self.web_tls_self_signed || base.web_tls_self_signed,
            web_tls_handshake_timeout: over(
                &self.web_tls_handshake_timeout,
                base.web_tls_handshake_timeout,
            ),
            metrics: either(&self.metrics, base.metrics),
            metrics_token_file: either(&self.metrics_token_file, base.metrics_token_file),
            cluster: either(&self.cluster, base.cluster),
            cluster_name: over(&self.cluster_name, base.cluster_name),
            cluster_key_file: either(&self.cluster_key_file, base.cluster_key_file),
            cluster_token: either(&self.cluster_token, base.cluster_token),
            cluster_user: either(&self.cluster_user, base.cluster_user),
            cluster_password: either(&self.cluster_password, base.cluster_password),
            cluster_nkey: either(&self.cluster_nkey, base.cluster_nkey),
            cluster_creds: either(&self.cluster_creds, base.cluster_creds),
            cluster_timeout: over(&self.cluster_timeout, base.cluster_timeout),
            cluster_queue: over(&self.cluster_queue, base.cluster_queue),
            cluster_history: self.cluster_history || base.cluster_history,
            cluster_history_bytes: over(&self.cluster_history_bytes, base.cluster_history_bytes),
        }
    }
}
