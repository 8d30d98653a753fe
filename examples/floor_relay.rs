//! `floor_relay`: the floor under eaxchat's latency figures. Not a product.
//!
//! A relay of eaxchat's shape, doing only what no relay can skip: one
//! thread, a mio poll loop, one read of at most 64 KiB per connection per
//! turn, and a round-robin sweep that writes 16 connections per turn with
//! everything queued for them in one `writev`. What it reads it forwards
//! as it is to every other connection: no lines, no crypto, no limits.
//!
//! `benches/run.sh` runs it beside the relay in the latency scenario, with
//! relay-bench's `--plain` lines, so the table shows which part of the
//! relay's latency is the kernel's price of a hundred loopback writes and
//! which is the relay's own. Whole reads are forwarded, so a stream from
//! one publisher arrives intact; two publishers could interleave mid-line.
//!
//! ```text
//! cargo run --release --example floor_relay -- --listen 127.0.0.1:17406
//! ```

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read as _, Write as _};
use std::net::SocketAddr;
use std::time::Duration;

use argh::FromArgs;
use bytes::{Buf as _, Bytes};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

/// Forwards every byte read from one connection to all the others.
#[derive(FromArgs)]
struct Args {
    /// address to listen on (default 127.0.0.1:17406)
    #[argh(option, default = "SocketAddr::from(([127, 0, 0, 1], 17406))")]
    listen: SocketAddr,
}

const LISTENER: Token = Token(usize::MAX);
/// As eaxchat's server: the largest read and the writes per turn.
const READ_LEN: usize = 64 * 1024;
const WRITES_PER_TURN: usize = 16;
/// Chunks gathered into one `writev`.
const MAX_IOVECS: usize = 64;

struct Conn {
    stream: TcpStream,
    queue: VecDeque<Bytes>,
    /// Gave data on its last read: read again next turn (edge-triggered).
    readable: bool,
    /// Waiting for a writable event after a write would block.
    blocked: bool,
    gone: bool,
}

struct Floor {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Conn>,
    /// Where the next sweep starts: the slab key after the last written.
    cursor: usize,
    /// Connections with something queued and not blocked.
    pending: usize,
    buf: Vec<u8>,
    /// Scratch list of connection ids, kept to allocate nothing per turn.
    ids: Vec<usize>,
}

fn main() -> io::Result<()> {
    let args: Args = argh::from_env();
    let poll = Poll::new()?;
    let mut listener = TcpListener::bind(args.listen)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!("floor_relay: forwarding on {}", listener.local_addr()?);
    let mut floor = Floor {
        poll,
        listener,
        conns: Slab::new(),
        cursor: 0,
        pending: 0,
        buf: vec![0; READ_LEN],
        ids: Vec::new(),
    };
    floor.run()
}

impl Floor {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let busy = self.pending > 0 || self.conns.iter().any(|(_, c)| c.readable);
            let timeout = busy.then_some(Duration::ZERO);
            match self.poll.poll(&mut events, timeout) {
                Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
                _ => {}
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept()?,
                    Token(id) => {
                        if let Some(conn) = self.conns.get_mut(id) {
                            conn.readable |= event.is_readable() || event.is_read_closed();
                            if event.is_writable() && conn.blocked {
                                conn.blocked = false;
                                self.pending += 1;
                            }
                        }
                    }
                }
            }
            let mut ids = std::mem::take(&mut self.ids);
            ids.extend(
                self.conns
                    .iter()
                    .filter(|(_, c)| c.readable)
                    .map(|(id, _)| id),
            );
            for id in ids.drain(..) {
                self.read(id);
            }
            self.ids = ids;
            self.sweep();
            self.remove_gone();
        }
    }

    fn accept(&mut self) -> io::Result<()> {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nodelay(true)?;
                    let entry = self.conns.vacant_entry();
                    self.poll.registry().register(
                        &mut stream,
                        Token(entry.key()),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    entry.insert(Conn {
                        stream,
                        queue: VecDeque::new(),
                        readable: true,
                        blocked: false,
                        gone: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// One read; what came is queued for every other connection.
    fn read(&mut self, id: usize) {
        let conn = &mut self.conns[id];
        match conn.stream.read(&mut self.buf) {
            Ok(0) => conn.gone = true,
            Ok(n) => {
                let chunk = Bytes::copy_from_slice(&self.buf[..n]);
                for (other, conn) in self.conns.iter_mut() {
                    if other != id && !conn.gone {
                        if conn.queue.is_empty() && !conn.blocked {
                            self.pending += 1;
                        }
                        conn.queue.push_back(chunk.clone());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.readable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => conn.gone = true,
        }
    }

    /// Writes the next connections with something queued, in slab order
    /// from where the last sweep stopped, so each waits one full round.
    fn sweep(&mut self) {
        let mut written = 0;
        let mut scanned = 0;
        let end = self.conns.capacity();
        while written < WRITES_PER_TURN && self.pending > 0 && scanned < end {
            let id = self.cursor;
            self.cursor = (self.cursor + 1) % end.max(1);
            scanned += 1;
            let Some(conn) = self.conns.get_mut(id) else {
                continue;
            };
            if conn.queue.is_empty() || conn.blocked || conn.gone {
                continue;
            }
            written += 1;
            self.pending -= 1;
            match write_queue(conn) {
                Ok(true) => {}
                Ok(false) => conn.blocked = true,
                Err(_) => {
                    conn.gone = true;
                    conn.queue.clear();
                }
            }
        }
    }

    fn remove_gone(&mut self) {
        let mut ids = std::mem::take(&mut self.ids);
        ids.extend(self.conns.iter().filter(|(_, c)| c.gone).map(|(id, _)| id));
        for id in ids.drain(..) {
            let mut conn = self.conns.remove(id);
            if !conn.queue.is_empty() && !conn.blocked {
                self.pending -= 1;
            }
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
        self.ids = ids;
    }
}

/// Writes until the queue is empty (true) or the socket is full (false).
fn write_queue(conn: &mut Conn) -> io::Result<bool> {
    while !conn.queue.is_empty() {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (slot, chunk) in slices.iter_mut().zip(&conn.queue) {
            *slot = IoSlice::new(chunk);
            count += 1;
        }
        let mut written = match conn.stream.write_vectored(&slices[..count]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while let Some(front) = conn.queue.front_mut() {
            if written < front.len() {
                front.advance(written);
                break;
            }
            written -= front.len();
            conn.queue.pop_front();
        }
    }
    Ok(true)
}
