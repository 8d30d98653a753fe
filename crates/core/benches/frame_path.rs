//! The per-frame path at 64 B, 1 KiB and 16 KiB of plaintext: the relay's
//! `open`, `seal` and relay step (`Cipher::reseal_into`, on
//! `eaxchat_proto::eax_key`) beside the raw primitives a straightforward relay
//! step would be built from (the `eax` crate's detached encrypt and
//! decrypt, the `base64` crate's slice encode and decode): the `eax` crate
//! is the reference `EaxKey` is checked and measured against.
//!
//! The `keyless_newline_less` group is what a peer without the key can make
//! the relay do per byte on the newline-less path ([`eaxchat_proto::seed`]):
//! `--max-frame` (64 KiB) of unpadded base64 garbage, or of frames sealed
//! under another key, fed through `Relay::receive` in reads of 1448 B (one
//! segment) and 16 KiB, on a fresh connection each time.
//!
//! After criterion's groups, a summary measures the relay step and the sum of
//! those four primitives alternately in the same run and prints their ratio,
//! and whether AES-NI was used. Below 1 the relay step is faster than the
//! `eax` crate plus `base64` (the key's work done once, not per message);
//! the bound is at most 1.15× at every size, whatever the cipher underneath.
//!
//! Run with `cargo bench --bench frame_path`; `cargo test --benches` (or
//! `-- --test`) only checks that everything runs.

// A test or bench binary exports nothing: `pub` marks what its modules share.
#![allow(unreachable_pub)]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use aead::inout::InOutBuf;
use aead::{AeadInOut, KeyInit};
use aes::Aes128Enc;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput};
use eax::Eax;
use eaxchat_core::relay::{Limits, Relay};
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::Key;
use eaxchat_proto::wire::{DEFAULT_MAX_FRAME, NONCE_LEN, OVERHEAD, TAG_LEN};

const SIZES: [usize; 3] = [64, 1024, 16 * 1024];
const KEY: [u8; 16] = *b"0123456789abcdef";

/// Everything one size needs, built once outside the timed loops.
struct Fixture {
    size: usize,
    cipher: Cipher,
    raw: Eax<Aes128Enc>,
    plaintext: Vec<u8>,
    /// `nonce ‖ tag ‖ ciphertext`, as carried on the wire.
    frame: Vec<u8>,
    /// The frame in base64, without `\n`.
    line: Vec<u8>,
    out: BytesMut,
    scratch: Vec<u8>,
}

impl Fixture {
    fn new(size: usize) -> Fixture {
        let key = Key::from_bytes(&KEY).expect("16-byte key");
        let mut cipher = Cipher::with_nonce_seed(&key, [7; 32]);
        let plaintext: Vec<u8> = (0..size).map(|i| (i * 31) as u8).collect();
        let mut sealed = BytesMut::new();
        cipher.seal_into(&plaintext, &mut sealed);
        let line = sealed[..sealed.len() - 1].to_vec();
        let frame = BASE64.decode(&line).expect("own frame decodes");
        Fixture {
            size,
            cipher,
            raw: Eax::<Aes128Enc>::new_from_slice(&KEY).expect("16-byte key"),
            plaintext,
            frame,
            line,
            out: BytesMut::with_capacity(2 * size + 128),
            scratch: vec![0; 2 * size + 128],
        }
    }

    fn nonce(&self) -> &[u8; NONCE_LEN] {
        self.frame[..NONCE_LEN].try_into().expect("nonce slice")
    }

    fn tag(&self) -> &[u8; TAG_LEN] {
        self.frame[NONCE_LEN..OVERHEAD]
            .try_into()
            .expect("tag slice")
    }

    fn relay_step(&mut self) {
        self.out.clear();
        self.cipher
            .reseal_into(black_box(&self.line), &mut self.out)
            .expect("own frame opens");
        black_box(&self.out);
    }

    fn open(&mut self) {
        black_box(self.cipher.open(black_box(&self.line)).expect("opens"));
    }

    fn seal(&mut self) {
        self.out.clear();
        self.cipher
            .seal_into(black_box(&self.plaintext), &mut self.out);
        black_box(&self.out);
    }

    fn raw_decrypt(&mut self) {
        let (nonce, tag) = (*self.nonce(), *self.tag());
        let ciphertext = &self.frame[OVERHEAD..];
        let buf = InOutBuf::new(ciphertext, &mut self.scratch[..self.size]).expect("same length");
        self.raw
            .decrypt_inout_detached(&nonce.into(), &[], buf, &tag.into())
            .expect("own frame verifies");
        black_box(&self.scratch);
    }

    fn raw_encrypt(&mut self) {
        let nonce = *self.nonce();
        let buf =
            InOutBuf::new(&self.plaintext, &mut self.scratch[..self.size]).expect("same length");
        let tag = self
            .raw
            .encrypt_inout_detached(&nonce.into(), &[], buf)
            .expect("within EAX's limit");
        black_box(tag);
    }

    fn raw_decode(&mut self) {
        let n = BASE64
            .decode_slice(black_box(&self.line), &mut self.scratch)
            .expect("valid base64");
        black_box(n);
    }

    fn raw_encode(&mut self) {
        let n = BASE64
            .encode_slice(black_box(&self.frame), &mut self.scratch)
            .expect("room for the encoding");
        black_box(n);
    }

    /// The four primitives the relay step is made of, back to back.
    fn raw_sum(&mut self) {
        self.raw_decode();
        self.raw_decrypt();
        self.raw_encrypt();
        self.raw_encode();
    }
}

type Step = fn(&mut Fixture);

const STEPS: [(&str, Step); 8] = [
    ("open", Fixture::open),
    ("seal", Fixture::seal),
    ("relay_step", Fixture::relay_step),
    ("raw_eax_decrypt", Fixture::raw_decrypt),
    ("raw_eax_encrypt", Fixture::raw_encrypt),
    ("raw_base64_decode", Fixture::raw_decode),
    ("raw_base64_encode", Fixture::raw_encode),
    ("raw_sum", Fixture::raw_sum),
];

/// Feeds `stream` to a new connection in reads of `read` bytes, then
/// removes it.
fn feed_keyless(relay: &mut Relay<std::io::Sink>, stream: &[u8], read: usize) {
    let id = relay.admit(std::io::sink()).expect("room");
    for piece in stream.chunks(read) {
        relay.receive(id, black_box(piece));
    }
    relay.close(id, eaxchat_core::relay::CloseReason::PeerClosed);
    relay.take_closing(&mut Vec::new());
    relay.remove(id);
}

fn keyless_group(c: &mut Criterion) {
    let max_frame = DEFAULT_MAX_FRAME;
    let garbage = vec![b'A'; max_frame];
    let other = Key::from_bytes(b"another 16B key!").expect("a key");
    let mut foreign = Cipher::with_nonce_seed(&other, [3; 32]);
    let mut unkeyed = BytesMut::new();
    while unkeyed.len() < max_frame {
        // 1000 bytes: 1032 decoded, a multiple of 3, so no padding.
        foreign.seal_into(&[b'x'; 1000], &mut unkeyed);
        unkeyed.truncate(unkeyed.len() - 1);
    }
    unkeyed.truncate(max_frame);
    let key = Key::from_bytes(&KEY).expect("a key");
    let mut relay: Relay<std::io::Sink> = Relay::new(
        Cipher::new(&key).expect("cipher"),
        Limits::default(),
        Instant::now(),
        SystemTime::now(),
    );
    let mut group = c.benchmark_group("keyless_newline_less");
    group.throughput(Throughput::Bytes(max_frame as u64));
    for (name, stream) in [
        ("base64_garbage", &garbage[..]),
        ("unkeyed_frames", &unkeyed[..]),
    ] {
        for read in [1448usize, 16 * 1024] {
            group.bench_function(BenchmarkId::new(name, read), |b| {
                b.iter(|| feed_keyless(&mut relay, stream, read))
            });
        }
    }
    group.finish();
}

fn criterion_groups(c: &mut Criterion) {
    keyless_group(c);
    for (name, step) in STEPS {
        let mut group = c.benchmark_group(name);
        for size in SIZES {
            let mut fixture = Fixture::new(size);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::from_parameter(size), |b| {
                b.iter(|| step(&mut fixture))
            });
        }
        group.finish();
    }
}

/// Nanoseconds per call of `step`, timed over a batch long enough to read.
fn time_batch(fixture: &mut Fixture, step: Step, calls: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        step(fixture);
    }
    start.elapsed().as_nanos() as f64 / f64::from(calls)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Times the relay step and the raw sum alternately, batch by batch, so a
/// noisy neighbour slows both alike, and prints the medians' ratio.
fn summary(budget: Duration) {
    println!();
    println!(
        "AES-NI (aes::hardware_accelerated): {}",
        if aes::hardware_accelerated() {
            "yes"
        } else {
            "no"
        }
    );
    println!(
        "{:>8} {:>14} {:>14} {:>8}  (median of alternating batches)",
        "size", "relay step ns", "raw sum ns", "ratio"
    );
    for size in SIZES {
        let mut fixture = Fixture::new(size);
        // Roughly 2 ms per batch whatever the size.
        let calls = (2_000_000 / (size as u32 * 3 + 600)).max(8);
        let (mut step_ns, mut raw_ns) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + budget;
        while Instant::now() < deadline || step_ns.len() < 11 {
            step_ns.push(time_batch(&mut fixture, Fixture::relay_step, calls));
            raw_ns.push(time_batch(&mut fixture, Fixture::raw_sum, calls));
        }
        let (step, raw) = (median(&mut step_ns), median(&mut raw_ns));
        println!(
            "{size:>8} {step:>14.1} {raw:>14.1} {:>7.3}x  target <= 1.15x",
            step / raw
        );
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    criterion_groups(&mut criterion);
    criterion.final_summary();
    // Without `--bench` (`cargo test --benches`, or `-- --test`) criterion
    // only checks that each benchmark runs; the summary is kept as short.
    let measuring =
        std::env::args().any(|a| a == "--bench") && !std::env::args().any(|a| a == "--test");
    if !measuring {
        println!("\n(a quick check, not a measurement: run `cargo bench` for numbers)");
    }
    summary(Duration::from_millis(if measuring { 2000 } else { 20 }));
}
