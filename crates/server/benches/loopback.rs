//! The kernel's share of a fan-out: one 129-byte line written to each of 10
//! or 100 loopback TCP connections in turn, while another thread reads them
//! all (as relay-bench's subscribers do). No relay, no crypto: only the
//! writes a one-thread relay must make for one message.
//!
//! On loopback a write also runs the receiving side's TCP work and wakes the
//! reader, so one write costs several microseconds, and a fan-out to 100 is
//! 100 of them in a row. That product is the floor under `relay-bench
//! latency --clients 100`: the last subscriber of a fan-out cannot hear
//! sooner than the sum of the writes before it. Compare the `100` figure
//! here with that scenario's p99 on the same machine.
//!
//! Run with `cargo bench --bench loopback`.

// A test or bench binary exports nothing: `pub` marks what its modules share.
#![allow(unreachable_pub)]

use std::hint::black_box;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};

/// A sealed 64-byte message is a 128-byte base64 line plus its `\n`.
const LINE_LEN: usize = 129;
const FANOUTS: [usize; 2] = [10, 100];

/// Connections whose far ends a thread keeps reading until dropped.
struct Subscribers {
    writers: Vec<TcpStream>,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<io::Result<()>>>,
}

impl Subscribers {
    fn connect(count: usize) -> io::Result<Subscribers> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let mut writers = Vec::with_capacity(count);
        let mut readers = Vec::with_capacity(count);
        for _ in 0..count {
            let reader = TcpStream::connect(addr)?;
            let (writer, _) = listener.accept()?;
            // As the relay's connections are.
            writer.set_nodelay(true)?;
            reader.set_nonblocking(true)?;
            readers.push(mio::net::TcpStream::from_std(reader));
            writers.push(writer);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || read_all(readers, &stop))
        };
        Ok(Subscribers {
            writers,
            stop,
            reader: Some(reader),
        })
    }
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            match reader.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("loopback reader failed: {e}"),
                Err(_) => eprintln!("loopback reader panicked"),
            }
        }
    }
}

/// Reads every stream as data arrives, one poll for all, until `stop`.
fn read_all(mut streams: Vec<mio::net::TcpStream>, stop: &AtomicBool) -> io::Result<()> {
    let mut poll = mio::Poll::new()?;
    for (index, stream) in streams.iter_mut().enumerate() {
        poll.registry()
            .register(stream, mio::Token(index), mio::Interest::READABLE)?;
    }
    let mut events = mio::Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match poll.poll(&mut events, Some(Duration::from_millis(10))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            let stream = &mut streams[event.token().0];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

fn loopback_fanout(c: &mut Criterion) {
    let line = {
        let mut line = vec![b'A'; LINE_LEN];
        line[LINE_LEN - 1] = b'\n';
        line
    };
    let mut group = c.benchmark_group("loopback_fanout");
    for fanout in FANOUTS {
        let mut subscribers = match Subscribers::connect(fanout) {
            Ok(subscribers) => subscribers,
            Err(e) => panic!("cannot open {fanout} loopback connections: {e}"),
        };
        group.throughput(Throughput::Elements(fanout as u64));
        group.bench_function(BenchmarkId::from_parameter(fanout), |b| {
            b.iter(|| {
                for writer in &mut subscribers.writers {
                    if let Err(e) = writer.write_all(black_box(&line)) {
                        panic!("loopback write failed: {e}");
                    }
                }
            })
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    loopback_fanout(&mut criterion);
    criterion.final_summary();
}
