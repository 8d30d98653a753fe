//! Identification through the relay: a members relay with 10,000 members
//! in memory, and a new connection whose first frame comes from the LAST
//! member in the file, so every member's key is tried. Each iteration
//! admits the connection, hands the frame to [`Relay::receive`] (decode,
//! try each key, open, stamp; nobody else is connected, so nothing is
//! sealed) and removes the connection again.
//!
//! Two first frames: a 64-byte plaintext (an ordinary first message) and
//! an empty one (the identify frame `chat` and the Python client send).
//! `admit_remove` is the same iteration with a frame that is not base64
//! (closed before any key is tried): what the admission costs alone.
//!
//! Each iteration's frame is sealed outside the timed part with a fresh
//! nonce, so a replay window never sees one twice.
//!
//! Run with `cargo bench --bench members`; `cargo test --benches` (or
//! `-- --test`) only checks that everything runs.

// A test or bench binary exports nothing: `pub` marks what its modules share.
#![allow(unreachable_pub)]

use std::hint::black_box;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use criterion::{BatchSize, Criterion};
use eaxchat_core::members::Members;
use eaxchat_core::relay::{Limits, Relay};
use eaxchat_core::roster::Roster;
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::Key;
use eaxchat_proto::nonce::Nonces;

const MEMBERS: u32 = 10_000;
const LAST: &str = "m9999";

/// A connection's transport in memory: takes every byte, keeps none.
#[derive(Debug, Default)]
struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A members relay of [`MEMBERS`] members and a cipher for the last one.
struct Fixture {
    relay: Relay<Sink>,
    last: Cipher,
}

impl Fixture {
    fn new() -> Fixture {
        let text: String = (0..MEMBERS)
            .map(|i| {
                let mut bytes = [0u8; 16];
                bytes[..4].copy_from_slice(&i.to_le_bytes());
                bytes[15] = 0xa5;
                let key = Key::from_bytes(&bytes).expect("16-byte key");
                format!("m{i} {}\n", key.to_hex())
            })
            .collect();
        let members =
            Members::parse(text.as_bytes(), Path::new("members.txt")).expect("members parse");
        let last_key = members.iter().last().expect("members").key().clone();
        let roster = Roster::with_nonces(&members, Nonces::from_seed([7; 32]));
        Fixture {
            relay: Relay::with_members(
                roster,
                Limits::default(),
                Instant::now(),
                SystemTime::now(),
            ),
            last: Cipher::with_nonce_seed(&last_key, [9; 32]),
        }
    }
}

/// Admits a connection, takes `line` as its first read, and removes it;
/// returns whether it identified as the last member.
fn identify(relay: &mut Relay<Sink>, line: &[u8]) -> bool {
    let id = relay.admit(Sink).expect("room for a connection");
    relay.receive(id, black_box(line));
    let identified = relay
        .member_name(id)
        .is_some_and(|name| name.as_str() == LAST);
    relay.remove(id);
    identified
}

const CASES: [(&str, Option<usize>); 3] = [
    ("first_frame_64B", Some(64)),
    ("identify_frame_empty", Some(0)),
    ("admit_remove", None),
];

/// The first frame (its line, `\n` included) of a case: sealed under the
/// last member's key, or not base64 at all.
fn setup(last: &mut Cipher, plaintext: Option<usize>) -> BytesMut {
    match plaintext {
        Some(len) => {
            let mut line = BytesMut::new();
            last.seal_into(&vec![b'x'; len], &mut line);
            line
        }
        None => BytesMut::from(&b"!not base64!\n"[..]),
    }
}

fn criterion_groups(c: &mut Criterion, fixture: &mut Fixture) {
    let mut group = c.benchmark_group("identify_among_10000_members");
    group.sample_size(30);
    for (name, plaintext) in CASES {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || setup(&mut fixture.last, plaintext),
                |line| black_box(identify(&mut fixture.relay, line)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Median nanoseconds of one identification, timed one by one until
/// `budget` is spent (each frame sealed outside the timed part).
fn median_ns(fixture: &mut Fixture, plaintext: Option<usize>, budget: Duration) -> f64 {
    let mut times = Vec::new();
    let deadline = Instant::now() + budget;
    while Instant::now() < deadline || times.len() < 11 {
        let line = setup(&mut fixture.last, plaintext);
        let start = Instant::now();
        let identified = identify(&mut fixture.relay, &line);
        times.push(start.elapsed().as_nanos() as f64);
        assert_eq!(identified, plaintext.is_some(), "identified as {LAST}");
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let mut fixture = Fixture::new();
    for (_, plaintext) in CASES {
        let line = setup(&mut fixture.last, plaintext);
        assert_eq!(identify(&mut fixture.relay, &line), plaintext.is_some());
    }
    let mut criterion = Criterion::default().configure_from_args();
    criterion_groups(&mut criterion, &mut fixture);
    criterion.final_summary();
    let measuring =
        std::env::args().any(|a| a == "--bench") && !std::env::args().any(|a| a == "--test");
    if !measuring {
        println!("\n(a quick check, not a measurement: run `cargo bench` for numbers)");
        return;
    }
    println!();
    println!(
        "AES-NI (aes::hardware_accelerated): {}",
        aes::hardware_accelerated()
    );
    println!("{:>24} {:>12} {:>14}", "", "median ns", "ns per member");
    for (name, plaintext) in CASES {
        let ns = median_ns(&mut fixture, plaintext, Duration::from_secs(3));
        println!("{name:>24} {ns:>12.0} {:>14.1}", ns / f64::from(MEMBERS));
    }
}
