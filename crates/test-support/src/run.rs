//! One run of the `relay` binary to its end, as the management commands
//! (`relay members`, `relay status`, `relay key`, `relay config`) are run:
//! in a given directory, without `$EAXCHAT_KEY`, stdin closed, stdout and
//! stderr captured. The wait is bounded by [`WAIT`]; a run that overruns
//! is killed by its PID and fails the test. [`add_static_member`] sets up
//! a member of a static-key members file that way.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eaxchat_proto::key::{Key, KeyFile};

use crate::relay::{WAIT, relay_binary};

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// Its exit code (`None` if a signal ended it).
    pub code: Option<i32>,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

/// Runs `relay ARGS` in `dir` to its end (bounded by [`WAIT`]).
pub fn run_relay(dir: &Path, args: &[&str]) -> Run {
    let mut child = Command::new(relay_binary())
        .args(args)
        .current_dir(dir)
        .env_remove("EAXCHAT_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relay");
    // Pipes, read to their end only once the child has exited: the
    // management commands print a few lines, far below a pipe's buffer.
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("wait for relay").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "relay {args:?} (pid {}) did not exit within {WAIT:?}",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("relay's output");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `relay` in `dir` with `command_line` split at whitespace (no
/// quoting: for the tests' plain arguments), as [`run_relay`].
pub fn run_relay_line(dir: &Path, command_line: &str) -> Run {
    let args: Vec<&str> = command_line.split_whitespace().collect();
    run_relay(dir, &args)
}

/// `relay members add NAME --file FILE --key-out NAME.key --static-keys`
/// (the key file beside the members file, replaced if there): a member of
/// a static-key members file. Returns the member's key.
pub fn add_static_member(file: &Path, name: &str) -> Key {
    let dir = file.parent().expect("the members file's directory");
    let key_out = dir.join(format!("{name}.key"));
    let _ = std::fs::remove_file(&key_out);
    let (file_arg, key_arg) = (file.to_str(), key_out.to_str());
    let (Some(file_arg), Some(key_arg)) = (file_arg, key_arg) else {
        panic!("a UTF-8 path: {}", file.display());
    };
    run_relay(
        dir,
        &[
            "members",
            "add",
            name,
            "--file",
            file_arg,
            "--key-out",
            key_arg,
            "--static-keys",
        ],
    )
    .ok("relay members add --static-keys");
    KeyFile::read(&key_out)
        .expect("the member's key file")
        .expect("a key in it")
        .key
}

impl Run {
    /// Panics (showing stderr) unless the run exited 0; returns stdout.
    pub fn ok(self, what: &str) -> String {
        assert_eq!(self.code, Some(0), "{what}: {}{}", self.stdout, self.stderr);
        self.stdout
    }
}
