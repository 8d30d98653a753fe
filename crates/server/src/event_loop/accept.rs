//! Taking new TCP connections: a turn's worth of accepts at most, the
//! relay's admission limits (`--max-clients`, `--max-per-address`) logged
//! when they refuse, and the back-off when the process runs out of file
//! descriptors.
//!
//! This module only brings a connection in and registers it for reads; it
//! never closes one itself (the relay marks it closing and the loop removes
//! it, in one place). The web listener's accepts are `web`'s.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use mio::net::TcpStream;
use mio::{Interest, Token};

use super::{Conn, Server};
use eaxchat_core::relay::{CloseReason, Refusal, Refused};

/// Connections accepted per loop turn, as Redis does, so a connection storm
/// does not stall the clients already connected.
pub const ACCEPTS_PER_TURN: usize = 256;

/// How long accepting pauses after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

impl Server {
    /// Accepts up to a turn's worth of connections.
    pub(super) fn accept_some(&mut self) {
        if let Some(until) = self.accept_paused_until {
            if Instant::now() < until {
                return;
            }
            self.accept_paused_until = None;
        }
        if !self.accept_ready {
            return;
        }
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, addr)) => self.admit(stream, addr),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_ready = false;
                    return;
                }
                Err(e) if is_transient_accept_error(&e) => {}
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or memory: the
                    // connection stays in the backlog; retry shortly rather
                    // than spin on an error that will not clear by itself.
                    self.relay.count_accept_error();
                    warn!("accept failed, pausing {ACCEPT_BACKOFF:?}: {e}");
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, addr: SocketAddr) {
        // Frames are coalesced here already; Nagle would only add delay.
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            stream,
            addr,
            write_interest: false,
            read_turn: 0,
            web: None,
        };
        let id = match self.relay.admit_from(conn, Some(addr.ip())) {
            Ok(id) => id,
            Err(Refused { io, limit }) => {
                let limits = self.relay.limits();
                match limit {
                    Refusal::MaxClients => warn!(
                        "refused {}: --max-clients ({}) reached",
                        io.addr, limits.max_clients
                    ),
                    Refusal::MaxPerAddress => warn!(
                        "refused {}: --max-per-address ({}) reached",
                        io.addr, limits.max_per_address
                    ),
                }
                return;
            }
        };
        let registry = self.poll.registry();
        if let Some(conn) = self.relay.io_mut(id) {
            if let Err(e) = registry.register(&mut conn.stream, Token(id), Interest::READABLE) {
                error!("conn {id}: cannot register: {e}");
                self.relay.close(id, CloseReason::IoError(e.kind()));
                return;
            }
            info!("conn {id}: connected from {addr}");
        }
    }
}

/// Accept errors that concern one connection only; the next accept may work.
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::PermissionDenied
    ) || e.raw_os_error() == Some(libc::EPROTO)
}
