//! A socket relay-bench receives records on, and the read loop the fanout,
//! latency and room scenarios share: read until the kernel has no more,
//! hand every byte to the socket's [`Inbox`] in order, and count a socket
//! that closes or fails as a disconnect. (The idle scenario reads only to
//! see its one message arrive, and keeps its own small loop.)

use std::io::{self, Read as _};

use mio::net::TcpStream;

use super::inbox::{Checker, Inbox};
use super::{Clock, sys, would_block};

/// A receiving socket with the inbox that checks what arrives on it.
pub(super) struct Receiver<I> {
    pub stream: TcpStream,
    pub inbox: I,
    /// False once the socket closed or failed; counted once, as a
    /// disconnect.
    pub open: bool,
    /// Its TLS (`--subscribe-tls`): what is read is its records'
    /// plaintext.
    pub tls: Option<Box<rustls::ClientConnection>>,
}

/// What every read needs besides the socket: the shared buffer, the
/// checker and what else the inbox checks against (`A`: a stream's ledger),
/// and how deliveries are timed.
pub(super) struct ReadWith<'a, A> {
    /// Shared by every socket; holds an inbox's carried-over bytes and
    /// then one read.
    pub buf: &'a mut [u8],
    pub checker: &'a mut Checker,
    pub against: &'a mut A,
    pub clock: &'a Clock,
    /// Time deliveries by the kernel's receive stamp on the socket, not by
    /// when relay-bench got round to reading them.
    pub stamped: bool,
}

impl<I: Inbox> Receiver<I> {
    pub fn new(stream: TcpStream, inbox: I) -> Receiver<I> {
        Receiver {
            stream,
            inbox,
            open: true,
            tls: None,
        }
    }

    /// A receiver reading through `tls`, if given.
    pub fn with_tls(mut self, tls: Option<Box<rustls::ClientConnection>>) -> Receiver<I> {
        self.tls = tls;
        self
    }

    /// Marks the socket gone, counting it once.
    pub fn lost(&mut self, checker: &mut Checker) {
        if self.open {
            self.open = false;
            checker.errors.disconnected += 1;
        }
    }

    /// Reads until the socket is drained (or gone); returns when the last
    /// read that delivered a record was made, if one did.
    pub fn read_all(&mut self, with: &mut ReadWith<'_, I::Against>) -> Option<u64> {
        let mut delivered_at = None;
        while self.open {
            let carry = self.inbox.carry().len();
            with.buf[..carry].copy_from_slice(self.inbox.carry());
            let room = with.buf.len() - carry;
            let read = if let Some(tls) = &mut self.tls {
                super::fanout::tls::read(tls, &mut self.stream, &mut with.buf[carry..])
                    .map(|n| (n, None))
            } else if with.stamped {
                sys::recv_timestamped(&self.stream, &mut with.buf[carry..])
            } else {
                self.stream.read(&mut with.buf[carry..]).map(|n| (n, None))
            };
            match read {
                Ok((0, _)) => self.lost(with.checker),
                Ok((n, stamp)) => {
                    let now = with.clock.now_ns();
                    let arrived = match stamp {
                        Some(at) => now.saturating_sub(sys::wall_clock_ns().saturating_sub(at)),
                        None => now,
                    };
                    let data = &with.buf[..carry + n];
                    if self.inbox.absorb(data, arrived, with.checker, with.against) > 0 {
                        delivered_at = Some(now);
                    }
                    // A short read emptied the socket; the next arrival
                    // raises a new edge. (Over TLS a read gives one
                    // record's plaintext: read on until it would block.)
                    if n < room && self.tls.is_none() {
                        break;
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.lost(with.checker),
            }
        }
        delivered_at
    }
}
