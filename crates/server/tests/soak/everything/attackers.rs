//! The hostile clients of the everything-on soak, one connection at a time
//! against one relay, each kind in turn: garbage, a line past
//! `--max-frame`, a forged frame (valid base64, no valid tag), a replay of
//! a line a member just sent, a slowloris that dribbles a line, a silent
//! connection, and garbage on the web port (a broken HTTP head, and
//! garbage WebSocket frames after a real upgrade). None of them may cost a
//! well-behaved client anything: the ledger's audit is the judge.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::ledger::{Chat, Ledger};
use super::relays::{Address, MAX_FRAME};

/// The kinds, in the order they take turns.
const KINDS: [&str; 8] = [
    "garbage",
    "oversized",
    "forged",
    "replayed",
    "slowloris",
    "silent",
    "web-head",
    "web-frames",
];

/// A small generator for garbage; no need for a crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Runs hostile connections against `target` until the ledger's senders
/// stop; returns how many of each kind ran.
pub fn run(ledger: &Ledger, target: &Address, chat: Chat, seed: u64) -> [u32; KINDS.len()] {
    let mut rng = XorShift(seed | 1);
    let mut done = [0u32; KINDS.len()];
    let mut turn = 0usize;
    while !ledger.senders_stopped() {
        let Some(endpoint) = target.get() else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let kind = turn % KINDS.len();
        turn += 1;
        let ran = match KINDS[kind] {
            "garbage" => {
                let mut bytes = rng.bytes(512);
                bytes.push(b'\n');
                send_and_wait(endpoint.tcp, &[&bytes], Duration::from_secs(2))
            }
            "oversized" => {
                let line = vec![b'A'; MAX_FRAME + 100];
                send_and_wait(endpoint.tcp, &[&line, b"\n"], Duration::from_secs(2))
            }
            "forged" => {
                let line = base64_line(&rng.bytes(80));
                send_and_wait(endpoint.tcp, &[&line], Duration::from_secs(2))
            }
            "replayed" => match ledger.last_line(chat) {
                Some(line) => send_and_wait(endpoint.tcp, &[&line], Duration::from_secs(2)),
                None => false,
            },
            "slowloris" => slowloris(endpoint.tcp, &mut rng),
            "silent" => send_and_wait(endpoint.tcp, &[], Duration::from_secs(4)),
            "web-head" => endpoint.web.is_some_and(|web| {
                send_and_wait(
                    web,
                    &[
                        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: web",
                        &rng.bytes(64),
                    ],
                    Duration::from_secs(2),
                )
            }),
            _ => endpoint.web.is_some_and(|web| web_garbage(web, &mut rng)),
        };
        if ran {
            done[kind] += 1;
        }
    }
    done
}

/// The names of the kinds, in [`run`]'s order.
pub fn kinds() -> [&'static str; KINDS.len()] {
    KINDS
}

/// A line of base64 (standard alphabet, padded) of `bytes`.
fn base64_line(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let mut line = base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into_bytes();
    line.push(b'\n');
    line
}

/// Connects, writes `parts`, then reads (discarding) until the relay
/// closes or `hold` passes, and hangs up. `false` if it could not connect.
fn send_and_wait(addr: SocketAddr, parts: &[&[u8]], hold: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    for part in parts {
        if stream.write_all(part).is_err() {
            return true;
        }
    }
    drain_until(&mut stream, Instant::now() + hold);
    true
}

fn drain_until(stream: &mut TcpStream, deadline: Instant) {
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

/// A line dribbled a byte every 300 ms for up to 6 s (the relay's
/// deadline closes it first).
fn slowloris(addr: SocketAddr, rng: &mut XorShift) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        let byte = alphabet[(rng.next() % 64) as usize];
        if stream.write_all(&[byte]).is_err() {
            break;
        }
        drain_until(&mut stream, Instant::now() + Duration::from_millis(300));
    }
    true
}

/// A real WebSocket upgrade, then masked binary and oversized frames.
fn web_garbage(web: SocketAddr, rng: &mut XorShift) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&web, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let url = format!("ws://{web}/ws");
    let Ok((mut ws, _)) = tungstenite::client::client(url.as_str(), stream) else {
        return true;
    };
    let _ = ws.send(tungstenite::Message::binary(rng.bytes(300)));
    let _ = ws.send(tungstenite::Message::text("not base64 at all \u{7f}"));
    let _ = ws.send(tungstenite::Message::text("A".repeat(MAX_FRAME + 10)));
    let mut raw = ws.into_inner();
    // A frame header announcing 2^62 bytes, then nothing.
    let _ = raw.write_all(&[0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    drain_until(&mut raw, Instant::now() + Duration::from_secs(2));
    true
}
