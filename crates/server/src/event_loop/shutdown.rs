//! How the server stops: the [`StopHandle`] (and SIGINT and SIGTERM, which
//! write to the same pipe), and the drain that follows: stop accepting and
//! reading, write what is queued for at most the shutdown grace, close
//! every connection, leave the cluster, and close the message log.
//!
//! A second SIGINT while the drain runs exits at once. The sockets get at
//! most the grace; leaving the cluster then waits at most 2 s for the NATS
//! thread, and closing the log waits for its writer to write what it was
//! already handed.

use std::io::{self, Read as _, Write as _};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::time::Instant;

use log::{error, info, warn};
use mio::Events;

use super::Server;
use eaxchat_core::relay::{CloseReason, ConnId, Flush};
use eaxchat_core::stats::Stats;

/// Asks a running server to shut down gracefully. Cheap to clone; usable
/// from any thread.
#[derive(Debug)]
pub struct StopHandle(StdUnixStream);

impl StopHandle {
    /// The handle writing to `tx`, the write end of the server's stop pipe.
    pub(super) fn new(tx: StdUnixStream) -> StopHandle {
        StopHandle(tx)
    }

    /// Starts the graceful shutdown: stop accepting, flush, exit.
    pub fn stop(&self) -> io::Result<()> {
        (&self.0).write_all(&[1])
    }

    /// Another handle to the same server.
    pub fn try_clone(&self) -> io::Result<StopHandle> {
        self.0.try_clone().map(StopHandle)
    }

    /// Makes SIGINT and SIGTERM stop the server gracefully; a second SIGINT
    /// while it drains exits at once.
    pub fn stop_on_signals(&self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let interrupted = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register_conditional_shutdown(SIGINT, 1, Arc::clone(&interrupted))?;
        signal_hook::flag::register(SIGINT, interrupted)?;
        signal_hook::low_level::pipe::register(SIGINT, self.0.try_clone()?)?;
        signal_hook::low_level::pipe::register(SIGTERM, self.0.try_clone()?)?;
        Ok(())
    }
}

impl Server {
    /// Stops accepting and reading, writes what is queued for up to the
    /// grace period, then closes everything.
    pub(super) fn shut_down(mut self) -> io::Result<Stats> {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let deadline = Instant::now() + self.config.shutdown_grace;
        info!(
            "shutting down: writing queued frames to {} connections for up to {:?}",
            self.relay.len(),
            self.config.shutdown_grace
        );
        let mut blocked: Vec<ConnId> = self.relay.ids().collect();
        let mut events = Events::with_capacity(1024);
        loop {
            blocked.retain(|&id| self.relay.flush_closing(id) == Flush::Blocked);
            for &id in &blocked {
                self.set_write_interest(id, true);
            }
            let now = Instant::now();
            if blocked.is_empty() || now >= deadline {
                break;
            }
            match self.poll.poll(&mut events, Some(deadline - now)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !blocked.is_empty() {
            warn!(
                "{} connections still had frames queued at the deadline",
                blocked.len()
            );
        }
        let ids: Vec<ConnId> = self.relay.ids().collect();
        for id in ids {
            self.relay.close(id, CloseReason::Shutdown);
        }
        self.remove_closed();
        self.write_member_rooms(true);
        #[cfg(feature = "nats")]
        self.leave_cluster();
        let mut sink = [0u8; 64];
        while matches!((&self.stop_rx).read(&mut sink), Ok(n) if n > 0) {}
        self.write_log();
        if let Some(log) = self.log.take() {
            match log.close() {
                Ok(log) => info!(
                    "message log closed: {} records written, {} dropped (queue full)",
                    log.written, log.dropped
                ),
                Err(e) => error!("{e}"),
            }
        }
        let stats = self.relay.stats();
        info!("{stats}{}", self.members_stats_fields());
        Ok(stats)
    }
}
