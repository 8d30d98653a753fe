//! Starting the real binaries and talking to them as clients do: a
//! [`RelayProcess`] is the `relay` binary on `127.0.0.1:0` (or a fixed
//! address) with its log captured, a [`TestClient`] a blocking client
//! speaking the wire format, and [`binary`] finds any of the workspace's
//! binaries next to the running test.
//!
//! Shared by every layer's integration tests (server, client) and by
//! relay-bench's. Every wait here is bounded by [`WAIT`] or by a time the
//! caller gives; every process started is killed on drop, by its PID.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::Key;

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A fresh random AES-128 key.
pub fn random_key() -> Key {
    Key::generate().expect("OS randomness")
}

/// One of the workspace's binaries (`relay`, `chat`, `relay-bench`), from
/// the target directory the running test was built into: a test binary
/// lives in `target/PROFILE/deps/`, the binaries in `target/PROFILE/`.
/// `cargo test --workspace` builds every package's binaries before it runs
/// any test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary lives in target/PROFILE/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "no {name} binary at {}: run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

/// The `relay` binary.
pub fn relay_binary() -> PathBuf {
    binary("relay")
}

/// The `chat` binary.
pub fn chat_binary() -> PathBuf {
    binary("chat")
}

/// A `relay` process listening on a free loopback port.
pub struct RelayProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The key it uses.
    pub key: Key,
    log: Arc<Mutex<String>>,
}

impl RelayProcess {
    /// Starts `relay` with a random key and `extra` flags.
    pub fn start(extra: &[&str]) -> RelayProcess {
        RelayProcess::start_with_key(random_key(), extra)
    }

    /// Starts `relay` with `key` and `extra` flags; waits (bounded) until it
    /// logs its address.
    pub fn start_with_key(key: Key, extra: &[&str]) -> RelayProcess {
        let mut command = Command::new(relay_binary());
        command
            .args(["--listen", "127.0.0.1:0", "--key-hex", &key.to_hex()])
            .args(extra);
        RelayProcess::spawn(command, key)
    }

    /// Starts `relay --members FILE` with `extra` flags; waits (bounded)
    /// until it logs its address. `key` is a placeholder: members each have
    /// their own.
    pub fn start_members(file: &Path, extra: &[&str]) -> RelayProcess {
        let mut command = Command::new(relay_binary());
        command
            .args(["--listen", "127.0.0.1:0", "--members"])
            .arg(file)
            .args(extra);
        RelayProcess::spawn(command, random_key())
    }

    /// Starts `relay` listening on `listen` (a fixed address, such as a port
    /// another relay just left) with `key` and `extra` flags. `None` if it
    /// exits before it listens, as it does while the port is still taken.
    pub fn try_start_on(listen: SocketAddr, key: Key, extra: &[&str]) -> Option<RelayProcess> {
        let mut command = Command::new(relay_binary());
        command
            .args(["--listen", &listen.to_string(), "--key-hex", &key.to_hex()])
            .args(extra);
        let mut relay = RelayProcess::launch(command, listen, key);
        let deadline = Instant::now() + WAIT;
        while !relay.log().contains("listening on ") {
            if !relay.is_running() || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(relay)
    }

    /// Starts a prepared `relay` command (its flags must give it a key and a
    /// `--listen` address); waits (bounded) until it logs its address.
    pub fn spawn(command: Command, key: Key) -> RelayProcess {
        let mut relay = RelayProcess::launch(command, SocketAddr::from(([127, 0, 0, 1], 0)), key);
        let line = relay.wait_for_log("listening on ");
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .and_then(|addr| addr.trim().parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        relay.addr = addr;
        relay
    }

    /// Starts a prepared `relay` command with no stats line, no
    /// per-address limit, history, presence or flood control unless it sets
    /// them, and its stderr drained into
    /// the log; does not wait for it to listen.
    fn launch(mut command: Command, addr: SocketAddr, key: Key) -> RelayProcess {
        // Tests open many loopback connections: no per-address limit unless
        // the test sets one.
        if !command.get_args().any(|arg| arg == "--max-per-address") {
            command.args(["--max-per-address", "0"]);
        }
        // The tests of fan-out, limits and hostile input count every frame
        // a client gets: no history, join notices or flood control unless
        // the test sets them (the chat layer's own tests do).
        for (flag, off) in [("--history", "0"), ("--presence", "off"), ("--rate", "0")] {
            if !command.get_args().any(|arg| arg == flag) {
                command.args([flag, off]);
            }
        }
        // No periodic stats line unless the test asks for one.
        if !command.get_args().any(|arg| arg == "--stats-interval") {
            command.args(["--stats-interval", "0"]);
        }
        // `RELAY_LOG` (a `RUST_LOG` filter) turns up the relay's log when
        // a test is being looked into, e.g. `eaxchat_server::link=debug`.
        let log = std::env::var("RELAY_LOG").unwrap_or_else(|_| "info".to_owned());
        let mut child = command
            .env("RUST_LOG", log)
            .env_remove("EAXCHAT_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn relay");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&log);
        // Drain stderr for the relay's whole life so it never blocks on a
        // full pipe; keep it for assertions.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                sink.lock().expect("log lock").push_str(&line);
                line.clear();
            }
        });
        RelayProcess {
            child,
            addr,
            key,
            log,
        }
    }

    /// Everything the relay has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// A handle on this relay's log for other threads.
    pub fn log_handle(&self) -> LogHandle {
        LogHandle(Arc::clone(&self.log))
    }

    /// Waits (bounded) for a log line containing `needle`; returns it.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        self.wait_for_log_count(needle, 1)
    }

    /// Waits (bounded) until `count` log lines contain `needle`; returns the last.
    pub fn wait_for_log_count(&mut self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.log();
            let found: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
            if found.len() >= count {
                return found[count - 1].to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("relay exited ({status}) before logging {needle:?}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "relay did not log {needle:?} {count} times within {WAIT:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The pid, for /proc and signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Connects a new client.
    pub fn connect(&self) -> TestClient {
        TestClient::connect(self.addr, &self.key)
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the status and
    /// the whole log.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let _ = crate::sys::terminate(self.child.id());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the stderr thread catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.log());
            }
            assert!(Instant::now() < deadline, "relay ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGHUP: the relay rereads its members and config files.
    pub fn hang_up(&self) {
        crate::sys::hang_up(self.child.id()).expect("SIGHUP to the relay");
    }

    /// Kills the relay with SIGKILL, as a crash would, and reaps it.
    pub fn kill_hard(mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("reap the killed relay")
    }

    /// Sends SIGTERM and returns at once (see [`RelayProcess::wait_exit`]).
    pub fn send_sigterm(&self) {
        let _ = crate::sys::terminate(self.child.id());
    }

    /// Waits (at most `wait`) for the relay to exit on its own; returns the
    /// status and the whole log.
    pub fn wait_exit(mut self, wait: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the stderr thread catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "relay did not exit within {wait:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A handle on a relay's captured log that other threads can read while it
/// grows (the relay itself stays with its owner).
#[derive(Clone)]
pub struct LogHandle(Arc<Mutex<String>>);

impl LogHandle {
    /// The log from byte `offset` on, and the offset where it now ends: pass
    /// that back to read only what was added since.
    pub fn since(&self, offset: usize) -> (String, usize) {
        let log = self.0.lock().expect("log lock");
        let from = offset.min(log.len());
        (log[from..].to_owned(), log.len())
    }
}

/// A blocking test client speaking the wire format.
pub struct TestClient {
    /// The socket (blocking, with a read timeout of [`WAIT`]).
    pub stream: TcpStream,
    cipher: Cipher,
    inbox: Vec<u8>,
}

impl TestClient {
    /// Connects to `addr` with `key`.
    pub fn connect(addr: SocketAddr, key: &Key) -> TestClient {
        TestClient::try_connect(addr, key).expect("connect to relay")
    }

    /// Connects to `addr` with `key`, or says why not (a relay a test
    /// has just killed, for one).
    pub fn try_connect(addr: SocketAddr, key: &Key) -> io::Result<TestClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(WAIT))?;
        stream.set_nodelay(true)?;
        Ok(TestClient {
            stream,
            cipher: Cipher::new(key)?,
            inbox: Vec::new(),
        })
    }

    /// Seals `plaintext` into a frame line (with `\n`).
    pub fn seal(&mut self, plaintext: &[u8]) -> BytesMut {
        let mut line = BytesMut::new();
        self.cipher.seal_into(plaintext, &mut line);
        line
    }

    /// Sends `plaintext` as one frame.
    pub fn send(&mut self, plaintext: &[u8]) {
        let line = self.seal(plaintext);
        self.stream.write_all(&line).expect("send frame");
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send raw");
    }

    /// Reads one line (without `\n`), waiting at most [`WAIT`].
    pub fn recv_line(&mut self) -> Vec<u8> {
        self.try_recv_line(WAIT)
            .unwrap_or_else(|| panic!("no line within {WAIT:?}"))
    }

    /// Reads one line if one arrives within `wait`.
    pub fn try_recv_line(&mut self, wait: Duration) -> Option<Vec<u8>> {
        crate::lines::read_line_within(&self.stream, &mut self.inbox, wait)
    }

    /// Reads and opens one frame; panics if it does not authenticate.
    pub fn recv(&mut self) -> Vec<u8> {
        let line = self.recv_line();
        self.cipher
            .open(&line)
            .unwrap_or_else(|e| panic!("relay sent a frame that does not open: {e}"))
            .to_vec()
    }

    /// Reads and opens one frame if one arrives within `wait`; `None` on
    /// timeout, end of stream, or a frame that does not open.
    pub fn try_recv(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let line = self.try_recv_line(wait)?;
        self.cipher
            .open(&line)
            .ok()
            .map(|plaintext| plaintext.to_vec())
    }

    /// Asserts nothing arrives within `wait`.
    pub fn expect_silence(&mut self, wait: Duration) {
        if let Some(line) = self.try_recv_line(wait) {
            panic!("expected nothing, got {:?}", String::from_utf8_lossy(&line));
        }
    }

    /// Whether the relay closed this connection (EOF or reset) within `wait`,
    /// discarding anything else that arrives.
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 4096];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false;
                }
                Err(_) => return true,
            }
        }
        false
    }
}
