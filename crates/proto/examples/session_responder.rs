//! A one-connection session responder: the relay's side of a session,
//! run by this crate's `session` module (over `snow`), for the live
//! interop tests of the page's `noise.js` (`tests/web/noise.test.mjs`)
//! and the Python client's `eaxsession` (`tests/python/test_session.py`).
//!
//! ```text
//! session_responder [RELAY_SECRET_HEX]
//! ```
//!
//! With no argument the relay key is generated. It listens on
//! 127.0.0.1:0, prints `key=value` lines on stdout (each flushed), and
//! accepts one connection:
//!
//! - at start: `relay_public=x25519:…`, `relay_fingerprint=SHA256:…`,
//!   `port=N`;
//! - if line 1 is refused (the client pinned another key, or a bad line):
//!   sends the refusal, prints `refused=TEXT` and exits with status 3;
//! - else accepts the client as `alice`, prints `client_public`,
//!   `client_fingerprint`, `payload` (hex), `k1`, `k2`, `h`, `c2s`, `s2c`
//!   (hex), then sends line 2 and one frame, `hello from rust` (printed as
//!   `sent=HEX`), in one write;
//! - then reads the client's frames until it closes: `opened=HEX` for
//!   each that opens, or `frame_error=TEXT` for the first that does not
//!   (and stops there, as a relay closes); then `done`, status 0.
//!
//! Other failures print to stderr and exit with status 1. The whole run
//! is bounded: it exits with status 2 after 30 seconds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::exit;
use std::time::Duration;

use bytes::BytesMut;
use eaxchat_proto::session::{MAX_LINE, Responder, StaticSecret, decode_line};

/// The name the responder stamps on the client.
const NAME: &str = "alice";
/// What the responder sends in its one frame.
const GREETING: &[u8] = b"hello from rust";
/// The longest frame line it reads.
const MAX_FRAME_LINE: u64 = 64 * 1024;
/// The most frames it reads from the client.
const MAX_FRAMES: usize = 16;

fn main() {
    if let Err(error) = run() {
        eprintln!("session_responder: {error}");
        exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(30));
        eprintln!("session_responder: gave up after 30 s");
        exit(2);
    });
    let relay = match std::env::args().nth(1) {
        Some(text) => StaticSecret::from_bytes(&unhex32(&text)?)?,
        None => StaticSecret::generate()?,
    };
    print("relay_public", &relay.public_key().to_string());
    print(
        "relay_fingerprint",
        &relay.public_key().fingerprint().to_string(),
    );

    let listener = TcpListener::bind("127.0.0.1:0")?;
    print("port", &listener.local_addr()?.port().to_string());
    let (mut stream, _) = listener.accept()?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);

    let hello = read_line(&mut reader, MAX_LINE as u64 + 1)?;
    let responder = match Responder::read_hello(&relay, &hello) {
        Ok(responder) => responder,
        Err(error) => {
            let refusal = Responder::refusal_for(&error, relay.public_key());
            stream.write_all(&refusal)?;
            print("refused", &refusal_text(&refusal));
            exit(3);
        }
    };
    let client = *responder.initiator_key();
    print("client_public", &client.to_string());
    print("client_fingerprint", &client.fingerprint().to_string());
    print("payload", &hex(responder.payload()));
    let (welcome, mut established) = responder.accept(NAME)?;
    let keys = &established.keys;
    let (k1, k2) = keys.raw_split();
    print("k1", &hex(k1));
    print("k2", &hex(k2));
    print("h", &hex(keys.handshake_hash()));
    print("c2s", &hex(keys.client_to_relay()));
    print("s2c", &hex(keys.relay_to_client()));

    let mut out = BytesMut::from(&welcome[..]);
    established.session.seal_into(GREETING, &mut out)?;
    stream.write_all(&out)?;
    print("sent", &hex(GREETING));

    for _ in 0..MAX_FRAMES {
        let line = match read_line(&mut reader, MAX_FRAME_LINE) {
            Ok(line) => line,
            Err(_) => break, // the client closed
        };
        match established.session.open(&line) {
            Ok(plaintext) => print("opened", &hex(plaintext)),
            Err(error) => {
                print("frame_error", &error.to_string());
                break;
            }
        }
    }
    print("done", "");
    Ok(())
}

/// The text of a refusal line, for the log.
fn refusal_text(line: &[u8]) -> String {
    decode_line(line)
        .map(|line| String::from_utf8_lossy(line.body()).into_owned())
        .unwrap_or_default()
}

/// One line, its `\n` included, of at most `limit` bytes.
fn read_line(reader: &mut impl BufRead, limit: u64) -> Result<Vec<u8>, String> {
    let mut line = Vec::new();
    reader
        .take(limit)
        .read_until(b'\n', &mut line)
        .map_err(|error| format!("read: {error}"))?;
    if line.last() != Some(&b'\n') {
        return Err(format!("no line within {limit} bytes, or the peer closed"));
    }
    Ok(line)
}

fn print(key: &str, value: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{key}={value}");
    let _ = stdout.flush();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex32(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let mut out = [0; 32];
    if text.len() != 64 || !text.is_ascii() {
        return Err("the relay secret is 64 hex digits".into());
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
            .map_err(|_| "the relay secret is 64 hex digits".to_string())?;
    }
    Ok(out)
}
