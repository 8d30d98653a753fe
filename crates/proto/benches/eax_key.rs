//! `EaxKey` against the `eax` crate: seal and open at 64 B, 1 KiB and
//! 16 KiB, finding the member whose key verifies a 64-byte first frame among
//! 10,000 keys (the matching key last), `verified_prefix_len` over
//! newline-less garbage (what a keyless peer costs per byte, per key), and
//! one read of 100 messages of 70 bytes (a stamped 64-byte text) sealed for
//! one member side by side (`seal_frames_in_place`) against one frame at a
//! time.
//!
//! After criterion's groups, a summary times each pair alternately, batch by
//! batch in the same run, and prints the medians and their ratio.
//!
//! Run with `cargo bench --bench eax_key`; `cargo test --benches` (or
//! `-- --test`) only checks that everything runs. `--seal-read N` times
//! only one read of `N` messages sealed side by side, one line of ns a
//! frame, for `benches/seal-ab.sh`; `--seal-lines N` the same read sealed
//! for a session and encoded as lines.

// A test or bench binary exports nothing: `pub` marks what its modules share.
#![allow(unreachable_pub)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aead::{AeadInOut, KeyInit};
use aes::Aes128Enc;
use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput};
use eax::Eax;
use eaxchat_proto::eax_key::EaxKey;
use eaxchat_proto::session::{Initiator, Responder, Sealer, StaticSecret};
use eaxchat_proto::wire::{self, OVERHEAD};

const SIZES: [usize; 3] = [64, 1024, 16 * 1024];
const KEY: [u8; 16] = *b"0123456789abcdef";
const NONCE: [u8; 16] = *b"fedcba9876543210";
const MEMBERS: usize = 10_000;
/// A 64-byte first frame: nonce, tag and 32 bytes of ciphertext.
const FIRST_FRAME_PLAINTEXT: usize = 64 - OVERHEAD;
const GARBAGE: usize = 16 * 1024;

/// One message size, both implementations, built outside the timed loops.
struct Fixture {
    ours: EaxKey,
    theirs: Eax<Aes128Enc>,
    plaintext: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: [u8; 16],
    buf: Vec<u8>,
}

impl Fixture {
    fn new(size: usize) -> Fixture {
        let ours = EaxKey::new(&KEY).expect("16-byte key");
        let plaintext: Vec<u8> = (0..size).map(|i| (i * 31) as u8).collect();
        let mut ciphertext = plaintext.clone();
        let tag = ours.seal_in_place_detached(&NONCE, &mut ciphertext);
        Fixture {
            ours,
            theirs: Eax::new_from_slice(&KEY).expect("16-byte key"),
            buf: plaintext.clone(),
            plaintext,
            ciphertext,
            tag,
        }
    }

    fn ours_seal(&mut self) {
        self.buf.copy_from_slice(&self.plaintext);
        let tag = self
            .ours
            .seal_in_place_detached(black_box(&NONCE), &mut self.buf);
        black_box((tag, &self.buf));
    }

    fn theirs_seal(&mut self) {
        self.buf.copy_from_slice(&self.plaintext);
        let tag = self
            .theirs
            .encrypt_inout_detached(
                black_box(&NONCE.into()),
                &[],
                self.buf.as_mut_slice().into(),
            )
            .expect("within EAX's limit");
        black_box((tag, &self.buf));
    }

    fn ours_open(&mut self) {
        self.buf.copy_from_slice(&self.ciphertext);
        self.ours
            .open_in_place_detached(black_box(&NONCE), &mut self.buf, &self.tag)
            .expect("own frame opens");
        black_box(&self.buf);
    }

    fn theirs_open(&mut self) {
        self.buf.copy_from_slice(&self.ciphertext);
        self.theirs
            .decrypt_inout_detached(
                black_box(&NONCE.into()),
                &[],
                self.buf.as_mut_slice().into(),
                &self.tag.into(),
            )
            .expect("own frame opens");
        black_box(&self.buf);
    }
}

/// A members relay's fan-out to one member: one read's messages, laid out
/// as frames and sealed.
struct Read {
    key: EaxKey,
    unsealed: Vec<u8>,
    frames: Vec<u8>,
    lens: Vec<usize>,
}

/// Messages in the read, and their plaintext length.
const READ: usize = 100;
const STAMPED: usize = 70;

/// A session's AES-256 key (a session seals under AES-256-EAX).
const SESSION_KEY: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

impl Read {
    /// The read sealed under `key` (16 or 32 bytes).
    fn under(key: &[u8]) -> Read {
        let mut unsealed = Vec::new();
        for i in 0..READ {
            unsealed.extend_from_slice(&(i as u128).to_be_bytes());
            unsealed.extend_from_slice(&[0; 16]);
            unsealed.extend((0..STAMPED).map(|j| (i + j) as u8));
        }
        Read {
            key: EaxKey::new(key).expect("an AES key"),
            frames: unsealed.clone(),
            unsealed,
            lens: vec![STAMPED; READ],
        }
    }

    fn side_by_side(&mut self) {
        self.frames.copy_from_slice(&self.unsealed);
        self.key.seal_frames_in_place(&mut self.frames, &self.lens);
        black_box(&self.frames);
    }

    fn one_at_a_time(&mut self) {
        self.frames.copy_from_slice(&self.unsealed);
        for frame in self.frames.chunks_exact_mut(OVERHEAD + STAMPED) {
            let (head, body) = frame.split_at_mut(OVERHEAD);
            let nonce: [u8; 16] = head[..16].try_into().expect("16 bytes");
            let tag = self.key.seal_in_place_detached(&nonce, body);
            head[16..].copy_from_slice(&tag);
        }
        black_box(&self.frames);
    }
}

/// 10,000 members' keys and a first frame sealed under the last one.
struct Members {
    ours: Vec<EaxKey>,
    theirs: Vec<Eax<Aes128Enc>>,
    frame: Vec<u8>,
}

impl Members {
    fn new() -> Members {
        let keys: Vec<[u8; 16]> = (0..MEMBERS)
            .map(|i| {
                let mut key = KEY;
                key[..8].copy_from_slice(&(i as u64).to_be_bytes());
                key
            })
            .collect();
        let ours: Vec<EaxKey> = keys
            .iter()
            .map(|key| EaxKey::new(key).expect("16-byte key"))
            .collect();
        let theirs = keys
            .iter()
            .map(|key| Eax::new_from_slice(key).expect("16-byte key"))
            .collect();
        let mut ciphertext = vec![b'x'; FIRST_FRAME_PLAINTEXT];
        let last = ours.last().expect("members");
        let tag = last.seal_in_place_detached(&NONCE, &mut ciphertext);
        let frame = [&NONCE[..], &tag, &ciphertext].concat();
        Members {
            ours,
            theirs,
            frame,
        }
    }

    /// What the relay does: the keys side by side.
    fn ours_identify(&self) -> Option<usize> {
        EaxKey::first_verifying(&self.ours, black_box(&self.frame[..]))
    }

    /// `EaxKey::verifies` on each key in turn.
    fn ours_identify_in_turn(&self) -> Option<usize> {
        let frame = black_box(&self.frame[..]);
        self.ours.iter().position(|key| key.verifies(frame))
    }

    fn theirs_identify(&self) -> Option<usize> {
        let frame = black_box(&self.frame[..]);
        let (nonce, rest) = frame.split_at(16);
        let (tag, ciphertext) = rest.split_at(16);
        let nonce: [u8; 16] = nonce.try_into().expect("nonce");
        let tag: [u8; 16] = tag.try_into().expect("tag");
        let mut buf = [0u8; FIRST_FRAME_PLAINTEXT];
        self.theirs.iter().position(|key| {
            buf.copy_from_slice(ciphertext);
            key.decrypt_inout_detached(&nonce.into(), &[], buf.as_mut_slice().into(), &tag.into())
                .is_ok()
        })
    }
}

/// `verified_prefix_len` over garbage no key verifies, with the splitter's
/// candidates: the worst case for a keyless peer, per key tried.
fn scan_garbage(key: &EaxKey, garbage: &[u8]) -> Option<usize> {
    let len = garbage.len();
    key.verified_prefix_len(black_box(garbage), |n| n % 3 == 0 || n == len)
}

type Step = fn(&mut Fixture);

const PAIRS: [(&str, Step, Step); 2] = [
    ("seal", Fixture::ours_seal, Fixture::theirs_seal),
    ("open", Fixture::ours_open, Fixture::theirs_open),
];

fn criterion_groups(c: &mut Criterion, members: &Members) {
    for (name, ours, theirs) in PAIRS {
        let mut group = c.benchmark_group(name);
        for size in SIZES {
            let mut fixture = Fixture::new(size);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::new("eax_key", size), |b| {
                b.iter(|| ours(&mut fixture))
            });
            group.bench_function(BenchmarkId::new("eax_crate", size), |b| {
                b.iter(|| theirs(&mut fixture))
            });
        }
        group.finish();
    }
    let mut group = c.benchmark_group("identify_64B_among_10000");
    group.sample_size(20);
    group.bench_function("eax_key", |b| b.iter(|| members.ours_identify()));
    group.bench_function("eax_crate", |b| b.iter(|| members.theirs_identify()));
    group.finish();

    for (name, key) in [
        ("seal_read_100x70B", &KEY[..]),
        ("seal_read_100x70B_aes256", &SESSION_KEY[..]),
    ] {
        let mut read = Read::under(key);
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(READ as u64));
        group.bench_function("side_by_side", |b| b.iter(|| read.side_by_side()));
        group.bench_function("one_at_a_time", |b| b.iter(|| read.one_at_a_time()));
        group.finish();
    }

    let key = EaxKey::new(&KEY).expect("16-byte key");
    let garbage: Vec<u8> = (0..GARBAGE).map(|i| (i * 7 + 1) as u8).collect();
    // A run of sealed frames as lines: 102-byte frames (a multiple of 3:
    // `encode_lines` makes one encoder call for the run) and 103-byte ones
    // (a call per line).
    for stamped in [STAMPED, STAMPED + 1] {
        let frames = vec![0x5a; READ * (OVERHEAD + stamped)];
        let lens = vec![stamped; READ];
        let mut out = BytesMut::with_capacity(READ * (wire::encoded_len(stamped) + 1));
        let mut group = c.benchmark_group(format!("encode_lines_100x{}B", OVERHEAD + stamped));
        group.throughput(Throughput::Elements(READ as u64));
        group.bench_function("encode_lines", |b| {
            b.iter(|| {
                out.clear();
                wire::encode_lines(&frames, &lens, &mut out);
                black_box(&out);
            })
        });
        group.finish();
    }
    // A session relay's fan-out to one session: one read's 100 messages
    // sealed as that session's next frames, as lines (`Sealer::seal_joined`).
    let mut sealer = relay_sealer();
    let mut scratch = Vec::new();
    for stamped in [STAMPED, STAMPED + 1] {
        let (plaintexts, lens) = stamped_read(READ, stamped);
        let mut out = BytesMut::with_capacity(READ * (wire::encoded_len(stamped) + 1));
        let mut group = c.benchmark_group(format!("session_seal_joined_100x{stamped}B"));
        group.throughput(Throughput::Elements(READ as u64));
        group.bench_function("seal_joined", |b| {
            b.iter(|| {
                out.clear();
                sealer
                    .seal_joined(&plaintexts, &lens, &mut scratch, &mut out)
                    .expect("counters left");
                black_box(&out);
            })
        });
        group.finish();
    }
    let mut group = c.benchmark_group("verified_prefix_len_garbage");
    group.throughput(Throughput::Bytes(GARBAGE as u64));
    group.bench_function(BenchmarkId::from_parameter(GARBAGE), |b| {
        b.iter(|| scan_garbage(&key, &garbage))
    });
    group.finish();
}

/// Nanoseconds per call of `step`, over a batch long enough to read.
fn time_batch(mut step: impl FnMut(), calls: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        step();
    }
    start.elapsed().as_nanos() as f64 / f64::from(calls)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Times `ours` and `theirs` alternately until `budget` is spent and
/// returns both medians.
fn alternate(
    budget: Duration,
    calls: u32,
    mut ours: impl FnMut(),
    mut theirs: impl FnMut(),
) -> (f64, f64) {
    let (mut ours_ns, mut theirs_ns) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + budget;
    while Instant::now() < deadline || ours_ns.len() < 11 {
        ours_ns.push(time_batch(&mut ours, calls));
        theirs_ns.push(time_batch(&mut theirs, calls));
    }
    (median(&mut ours_ns), median(&mut theirs_ns))
}

fn summary(budget: Duration, members: &Members) {
    println!();
    println!(
        "AES-NI (aes::hardware_accelerated): {}",
        aes::hardware_accelerated()
    );
    println!(
        "{:>28} {:>12} {:>12} {:>8}  (medians of alternating batches)",
        "", "EaxKey ns", "eax ns", "ratio"
    );
    for (name, ours, theirs) in PAIRS {
        for size in SIZES {
            let mut a = Fixture::new(size);
            let mut b = Fixture::new(size);
            // Roughly 1 ms per batch whatever the size.
            let calls = (1_000_000 / (size as u32 / 2 + 300)).max(8);
            let (ours_ns, theirs_ns) = alternate(budget, calls, || ours(&mut a), || theirs(&mut b));
            println!(
                "{:>28} {ours_ns:>12.1} {theirs_ns:>12.1} {:>7.3}x",
                format!("{name} {size} B"),
                ours_ns / theirs_ns
            );
        }
    }
    let (ours_ns, theirs_ns) = alternate(
        budget,
        1,
        || {
            black_box(members.ours_identify());
        },
        || {
            black_box(members.theirs_identify());
        },
    );
    println!(
        "{:>28} {:>12.1} {:>12.1} {:>7.3}x  (ns per key: {:.1} and {:.1})",
        "identify 64 B, 10000 keys",
        ours_ns,
        theirs_ns,
        ours_ns / theirs_ns,
        ours_ns / MEMBERS as f64,
        theirs_ns / MEMBERS as f64
    );
    for (bits, key) in [(128, &KEY[..]), (256, &SESSION_KEY[..])] {
        let (mut a, mut b) = (Read::under(key), Read::under(key));
        let (side_ns, one_ns) = alternate(budget, 64, || a.side_by_side(), || b.one_at_a_time());
        println!(
            "{:>28} {:>12.1} {:>12.1} {:>7.3}x  (side by side against one at a time, ns per frame)",
            format!("seal {READ} x {STAMPED} B, AES-{bits}"),
            side_ns / READ as f64,
            one_ns / READ as f64,
            side_ns / one_ns
        );
    }
    let (side_ns, turn_ns) = alternate(
        budget,
        1,
        || {
            black_box(members.ours_identify());
        },
        || {
            black_box(members.ours_identify_in_turn());
        },
    );
    println!(
        "{:>28} {:>12.1} {:>12.1} {:>7.3}x  (keys side by side against in turn)",
        "identify 64 B, 10000 keys",
        side_ns,
        turn_ns,
        side_ns / turn_ns
    );
    let key = EaxKey::new(&KEY).expect("16-byte key");
    let garbage: Vec<u8> = (0..GARBAGE).map(|i| (i * 7 + 1) as u8).collect();
    let (scan_ns, _) = alternate(
        budget,
        16,
        || {
            black_box(scan_garbage(&key, &garbage));
        },
        || {},
    );
    println!(
        "{:>28} {scan_ns:>12.1} ns: {:.2} ns per byte per key",
        "prefix scan, 16 KiB garbage",
        scan_ns / GARBAGE as f64
    );
}

/// `--seal-read N`: only the session seal of one read, `N` messages of
/// [`STAMPED`] bytes under AES-256 sealed side by side, in ns a frame (the
/// median of 15 batches), one line. `benches/seal-ab.sh` runs it from two
/// builds in turn.
fn seal_read_only(frames: usize) {
    let mut read = Read::under(&SESSION_KEY);
    read.unsealed = (0..frames)
        .flat_map(|i| {
            let mut frame = (i as u128).to_be_bytes().to_vec();
            frame.extend_from_slice(&[0; 16]);
            frame.extend((0..STAMPED).map(move |j| (i + j) as u8));
            frame
        })
        .collect();
    read.frames = read.unsealed.clone();
    read.lens = vec![STAMPED; frames];
    let calls = (200_000 / frames.max(1)).max(1) as u32;
    let mut batches: Vec<f64> = (0..15)
        .map(|_| time_batch(|| read.side_by_side(), calls) / frames.max(1) as f64)
        .collect();
    println!("{:.2}", median(&mut batches));
}

/// The relay's sealer of a session just made (with a client "alice").
fn relay_sealer() -> Sealer {
    let client = StaticSecret::generate().expect("a secret");
    let relay = StaticSecret::generate().expect("a secret");
    let (_, hello) = Initiator::start(&client, relay.public_key(), b"").expect("a hello");
    let responder = Responder::read_hello(&relay, &hello).expect("our own hello");
    let (_, at_relay) = responder.accept("alice").expect("a welcome");
    at_relay.session.into_parts().0
}

/// One read of `count` `\n`-joined printable messages of `len` bytes each,
/// and their lengths.
fn stamped_read(count: usize, len: usize) -> (Vec<u8>, Vec<usize>) {
    let plaintexts = (0..count)
        .flat_map(|i| (0..len).map(move |j| (i + j) as u8 | 0x20).chain([b'\n']))
        .collect();
    (plaintexts, vec![len; count])
}

/// `--seal-lines N`: a session relay's whole seal of one read for one
/// session, `N` messages of [`STAMPED`]` + 1` bytes (a 64-byte text
/// stamped by a five-letter name, as relay-bench's are) sealed as that
/// session's next frames and encoded as lines (`Sealer::seal_joined`), in
/// ns a frame (the median of 15 batches), one line.
fn seal_lines_only(frames: usize) {
    let mut sealer = relay_sealer();
    let (plaintexts, lens) = stamped_read(frames, STAMPED + 1);
    let (mut scratch, mut out) = (Vec::new(), BytesMut::new());
    let calls = (200_000 / frames.max(1)).max(1) as u32;
    let mut batches: Vec<f64> = (0..15)
        .map(|_| {
            let step = || {
                out.clear();
                sealer
                    .seal_joined(&plaintexts, &lens, &mut scratch, &mut out)
                    .expect("counters left");
                black_box(&out);
            };
            time_batch(step, calls) / frames.max(1) as f64
        })
        .collect();
    println!("{:.2}", median(&mut batches));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count = |at: usize| {
        args.get(at + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(READ)
    };
    if let Some(at) = args.iter().position(|a| a == "--seal-read") {
        return seal_read_only(count(at));
    }
    if let Some(at) = args.iter().position(|a| a == "--seal-lines") {
        return seal_lines_only(count(at));
    }
    let members = Members::new();
    assert_eq!(members.ours_identify(), Some(MEMBERS - 1));
    assert_eq!(members.ours_identify_in_turn(), Some(MEMBERS - 1));
    assert_eq!(members.theirs_identify(), Some(MEMBERS - 1));
    let mut criterion = Criterion::default().configure_from_args();
    criterion_groups(&mut criterion, &members);
    criterion.final_summary();
    let measuring =
        std::env::args().any(|a| a == "--bench") && !std::env::args().any(|a| a == "--test");
    if !measuring {
        println!("\n(a quick check, not a measurement: run `cargo bench` for numbers)");
    }
    summary(
        Duration::from_millis(if measuring { 2000 } else { 20 }),
        &members,
    );
}
