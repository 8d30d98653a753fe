//! The floor under relay-bench's latency figures: a relay of eaxchat's
//! shape doing only what no relay can skip. Not a chat relay; a baseline.
//!
//! One thread, a mio poll loop, one read of at most 64 KiB per connection
//! per turn, and a round-robin sweep that writes 16 connections per turn
//! with everything queued for them in one `writev`. What it reads it
//! forwards as it is to every other connection: no lines, no crypto, no
//! limits. `relay-floor` serves it; `benches/run.sh` measures it beside the
//! relay with relay-bench's `--plain` lines, so the latency table shows
//! which part of the relay's latency is the kernel's price of a hundred
//! loopback writes and which is the relay's own.
//!
//! Where it differs from the server (`eaxchat_server::event_loop`), none of which
//! matters at the hundred connections it is measured with:
//! - a connection whose write would block is written again by the sweep
//!   after it is writable, not at once on the writable event;
//! - it gathers at most 64 chunks per `writev`;
//! - it scans every connection a few times per turn, so it is slower than
//!   the server at thousands of connections;
//! - whole reads are forwarded, so a stream from one publisher arrives
//!   intact, but two publishers could interleave mid-line;
//! - queues have no limit: a reader that stops makes it grow.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read as _, Write as _};
use std::time::Duration;

use bytes::{Buf as _, Bytes};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

// As eaxchat's server: the largest read, and the connections written per
// turn.
use eaxchat_server::event_loop::{FLUSHES_PER_TURN, READ_BUF_LEN};

const LISTENER: Token = Token(usize::MAX);
/// Chunks gathered into one `writev`.
const MAX_IOVECS: usize = 64;

struct Conn {
    stream: TcpStream,
    queue: VecDeque<Bytes>,
    /// Gave data on its last read: read again next turn (edge-triggered).
    readable: bool,
    /// Waiting for a writable event after a write would block.
    blocked: bool,
    /// Closed or failed: removed at the end of the turn.
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

/// Serves the floor relay on `listener` until an I/O error on the poll
/// itself; connections that fail are dropped and the rest go on.
pub fn serve(listener: std::net::TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut floor = Floor {
        poll,
        listener,
        conns: Slab::new(),
        cursor: 0,
        pending: 0,
        buf: vec![0; READ_BUF_LEN],
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
                    LISTENER => self.accept(),
                    Token(id) => {
                        if let Some(conn) = self.conns.get_mut(id) {
                            conn.readable |=
                                event.is_readable() || event.is_read_closed() || event.is_error();
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

    /// Accepts every connection waiting. One that cannot be set up is
    /// dropped; any other failure (out of descriptors, say) stops this
    /// turn's accepting and is reported.
    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let entry = self.conns.vacant_entry();
                    let ready = stream.set_nodelay(true).and_then(|()| {
                        self.poll.registry().register(
                            &mut stream,
                            Token(entry.key()),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                    });
                    if ready.is_ok() {
                        entry.insert(Conn {
                            stream,
                            queue: VecDeque::new(),
                            readable: true,
                            blocked: false,
                            gone: false,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    eprintln!("relay-floor: accept: {e}");
                    return;
                }
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
        while written < FLUSHES_PER_TURN && self.pending > 0 && scanned < end {
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
