//! A running `chat` binary, as the tests drive it: its stdin a pipe, its
//! stdout and stderr collected as they arrive, every wait bounded by
//! [`WAIT`], the process killed by its PID on drop. The client's tests
//! drive it against stand-ins and the real relay; the server's against
//! the real relay in session mode.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eaxchat_proto::key::Key;

use crate::relay::{WAIT, chat_binary};

/// A running `chat`, its stdout and stderr collected as they arrive.
pub struct ChatProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl ChatProcess {
    /// Starts `chat` connected to `addr` with `key` (as `--key-hex`).
    pub fn start(addr: SocketAddr, key: &Key, extra: &[&str]) -> ChatProcess {
        let addr = addr.to_string();
        let hex = key.to_hex();
        let mut args = vec!["--connect", &addr, "--key-hex", &hex];
        args.extend_from_slice(extra);
        ChatProcess::start_args(&args)
    }

    /// Starts `chat` with exactly `args`, stdin a pipe left open.
    pub fn start_args(args: &[&str]) -> ChatProcess {
        ChatProcess::start_args_env(args, &[])
    }

    /// Starts `chat` with exactly `args` and these environment variables
    /// set, stdin a pipe left open.
    pub fn start_args_env(args: &[&str], env: &[(&str, &std::path::Path)]) -> ChatProcess {
        let mut child = Command::new(chat_binary())
            .args(args)
            .envs(env.iter().copied())
            .env_remove("EAXCHAT_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chat");
        let stdout = collect(child.stdout.take().expect("piped stdout"));
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        ChatProcess {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    /// Types `text` (lines with their `\n`).
    pub fn type_text(&mut self, text: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(text).expect("write to chat's stdin");
        stdin.flush().expect("flush chat's stdin");
    }

    /// Ends chat's input, as the end of a pipe does.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Everything it printed on stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().expect("stdout lock").clone()
    }

    /// Everything it printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr lock")).into_owned()
    }

    /// Waits (bounded) for a line on stdout containing `needle`.
    pub fn wait_for_stdout(&mut self, needle: &str) -> String {
        self.wait_for(needle, |chat| {
            String::from_utf8_lossy(&chat.stdout()).into_owned()
        })
    }

    /// Waits (bounded) for a line on stderr containing `needle`.
    pub fn wait_for_stderr(&mut self, needle: &str) -> String {
        self.wait_for(needle, ChatProcess::stderr)
    }

    fn wait_for(&mut self, needle: &str, text: impl Fn(&ChatProcess) -> String) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = text(self);
            if let Some(line) = all.lines().find(|line| line.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "chat did not print {needle:?} within {WAIT:?}\nstdout: {:?}\nstderr: {}",
                String::from_utf8_lossy(&self.stdout()),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (bounded) for chat to exit; returns its status once its output
    /// has been collected.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the collecting threads catch the last bytes.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "chat did not exit within {WAIT:?}\nstderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChatProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drains `pipe` on a thread into a shared buffer.
fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buffer);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("sink lock")
                .extend_from_slice(&chunk[..n]);
        }
    });
    buffer
}
