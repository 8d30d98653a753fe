//! The fan-out step without sockets: one inbound 64-byte message, read by
//! [`Relay::receive`], opened and sealed once, queued for 10, 100 and 1000
//! connections, and written by [`Relay::flush`] into in-memory writers.
//!
//! A counting global allocator and writers that remember where the bytes
//! they were handed live show the claim behind the relay's speed: the
//! allocations per inbound message do not grow with the number of
//! recipients, and every recipient is handed the *same* sealed bytes (one
//! buffer, shared by reference count), never a copy.
//!
//! Every step sends a frame of its own, sealed outside the timed part: the
//! relay refuses a frame sent twice ([`eaxchat_proto::replay`]).
//!
//! Run with `cargo bench --bench fanout`; `cargo test --benches` (or
//! `-- --test`) only checks that everything runs.

// A test or bench binary exports nothing: `pub` marks what its modules share.
#![allow(unreachable_pub)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::{self, IoSlice, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use bytes::BytesMut;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use eaxchat_core::relay::{ConnId, Flush, Limits, Relay};
use eaxchat_proto::cipher::Cipher;
use eaxchat_proto::key::Key;

/// The system allocator, counting calls and bytes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through `alloc` or `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: as for `alloc`; `ptr` and `layout` come from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const FANOUTS: [usize; 3] = [10, 100, 1000];
const PLAINTEXT_LEN: usize = 64;

/// A connection's transport in memory: takes every byte, keeps none, and
/// remembers where the first byte of the last write lived.
#[derive(Default)]
struct Sink {
    bytes: u64,
    last_ptr: usize,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes += buf.len() as u64;
        self.last_ptr = buf.as_ptr() as usize;
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut total = 0;
        for buf in bufs {
            total += self.write(buf)?;
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A relay with one sender and `fanout` recipients, and the sender's
/// cipher.
struct Room {
    relay: Relay<Sink>,
    sender: ConnId,
    recipients: Vec<ConnId>,
    client: Cipher,
    line_len: usize,
}

impl Room {
    fn new(fanout: usize) -> Room {
        let key = room_key();
        let limits = Limits {
            max_clients: fanout + 1,
            ..Limits::default()
        };
        let mut relay = Relay::new(
            Cipher::with_nonce_seed(&key, [1; 32]),
            limits,
            Instant::now(),
            SystemTime::now(),
        );
        let admit = |relay: &mut Relay<Sink>| {
            relay
                .admit(Sink::default())
                .unwrap_or_else(|_| panic!("room for every client"))
        };
        let sender = admit(&mut relay);
        let recipients = (0..fanout).map(|_| admit(&mut relay)).collect();
        let mut client = Cipher::with_nonce_seed(&key, [2; 32]);
        let line_len = fresh_line(&mut client).len();
        Room {
            relay,
            sender,
            recipients,
            client,
            line_len,
        }
    }

    /// A fresh sealed line from the sender.
    fn line(&mut self) -> BytesMut {
        fresh_line(&mut self.client)
    }

    /// One inbound message through the whole in-process path.
    fn step(&mut self, line: &[u8]) {
        self.relay.receive(self.sender, black_box(line));
        while let Some(id) = self.relay.next_waiting() {
            let flushed = self.relay.flush(id);
            debug_assert_eq!(flushed, Flush::Drained);
        }
    }

    /// Whether every recipient was last handed bytes at one address.
    fn recipients_share_one_buffer(&mut self) -> bool {
        let mut ptrs = self
            .recipients
            .iter()
            .map(|&id| self.relay.io_mut(id).map(|sink| sink.last_ptr));
        let first = ptrs.next().flatten();
        first.is_some() && ptrs.all(|ptr| ptr == first)
    }
}

/// The room's key.
fn room_key() -> Key {
    Key::from_bytes(b"0123456789abcdef").expect("16-byte key")
}

/// A 64-byte message sealed under a nonce of its own.
fn fresh_line(client: &mut Cipher) -> BytesMut {
    let mut line = BytesMut::new();
    client.seal_into(&[b'x'; PLAINTEXT_LEN], &mut line);
    line
}

fn criterion_groups(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_64B");
    for fanout in FANOUTS {
        let mut room = Room::new(fanout);
        group.throughput(Throughput::Elements(fanout as u64));
        // The sender's cipher moves into the closure (a cipher is not
        // `Clone`: a copy would repeat its nonces, and the relay would
        // refuse them as replays); the room keeps one that is never used.
        let idle = Cipher::with_nonce_seed(&room_key(), [3; 32]);
        let mut client = std::mem::replace(&mut room.client, idle);
        group.bench_function(BenchmarkId::from_parameter(fanout), |b| {
            b.iter_batched(
                || fresh_line(&mut client),
                |line| room.step(&line),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Counts allocations over many steps after a warm-up, and checks that
/// the recipients were handed one shared buffer.
fn allocation_report(steps: u64) {
    println!();
    println!(
        "{:>8} {:>14} {:>16} {:>18} {:>14}",
        "fanout", "allocs/msg", "alloc bytes/msg", "allocs/delivery", "shared buffer"
    );
    for fanout in FANOUTS {
        let mut room = Room::new(fanout);
        // Let every queue reach its steady-state capacity first.
        for _ in 0..10 {
            let line = room.line();
            room.step(&line);
        }
        let lines: Vec<BytesMut> = (0..steps).map(|_| room.line()).collect();
        let (calls, bytes) = (
            ALLOCATIONS.load(Ordering::Relaxed),
            ALLOCATED_BYTES.load(Ordering::Relaxed),
        );
        for line in &lines {
            room.step(line);
        }
        let calls = ALLOCATIONS.load(Ordering::Relaxed) - calls;
        let bytes = ALLOCATED_BYTES.load(Ordering::Relaxed) - bytes;
        let per_msg = calls as f64 / steps as f64;
        println!(
            "{fanout:>8} {per_msg:>14.2} {:>16.1} {:>18.5} {:>14}",
            bytes as f64 / steps as f64,
            per_msg / fanout as f64,
            if room.recipients_share_one_buffer() {
                "yes"
            } else {
                "NO"
            }
        );
        let delivered: u64 = room
            .recipients
            .iter()
            .filter_map(|&id| room.relay.io_mut(id).map(|sink| sink.bytes))
            .sum();
        assert_eq!(
            delivered,
            (steps + 10) * fanout as u64 * room.line_len as u64,
            "every recipient got every frame"
        );
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    criterion_groups(&mut criterion);
    criterion.final_summary();
    // Without `--bench` (`cargo test --benches`, or `-- --test`) criterion
    // only checks that each benchmark runs; the report is kept as short.
    let measuring =
        std::env::args().any(|a| a == "--bench") && !std::env::args().any(|a| a == "--test");
    if !measuring {
        println!("\n(a quick check, not a measurement: run `cargo bench` for numbers)");
    }
    allocation_report(if measuring { 2_000 } else { 50 });
}
