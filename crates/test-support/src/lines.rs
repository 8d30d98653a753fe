//! A socket read as `\n`-terminated lines with bounded waits, and a bounded
//! accept: what [`TestClient`](crate::TestClient) and the stand-in relays of
//! the client's tests (which read what `chat` sends) share.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The next `\n`-terminated line (without the `\n`) from `stream`, bytes
/// read past it kept in `inbox` for the next call; `None` when no whole
/// line came within `wait`, or the stream ended or failed.
pub fn read_line_within(
    stream: &TcpStream,
    inbox: &mut Vec<u8>,
    wait: Duration,
) -> Option<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(end) = inbox.iter().position(|&b| b == b'\n') {
            let line = inbox[..end].to_vec();
            inbox.drain(..=end);
            return Some(line);
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("set a read timeout");
        match (&*stream).read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => inbox.extend_from_slice(&buf[..n]),
        }
    }
}

/// Waits at most `wait` for a connection on the non-blocking `listener`;
/// returns it blocking. Panics (saying `who` did not connect) past `wait`.
pub fn accept_within(listener: &TcpListener, wait: Duration, who: &str) -> TcpStream {
    let deadline = Instant::now() + wait;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("a blocking stream");
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "{who} did not connect in {wait:?}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A socket read as lines.
pub struct Lines {
    /// The socket, for writing to it.
    pub stream: TcpStream,
    inbox: Vec<u8>,
}

impl Lines {
    /// Reads `stream` as lines.
    pub fn new(stream: TcpStream) -> Lines {
        Lines {
            stream,
            inbox: Vec::new(),
        }
    }

    /// The next line, within `wait`; `None` if none came.
    pub fn try_line(&mut self, wait: Duration) -> Option<Vec<u8>> {
        read_line_within(&self.stream, &mut self.inbox, wait)
    }
}
