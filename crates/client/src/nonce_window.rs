//! The client's replay check on what the relay sends: the nonces of the
//! last frames accepted on one connection, so that a frame sent again (by
//! the relay, or by someone between it and us) is refused.
//!
//! A [`NonceWindow`] remembers at least the last [`NonceWindow::LEN`]
//! (65,536) nonces accepted on a connection, and at most twice that less
//! one: [`eaxchat_proto::replay::ReplayWindow`] under one key, with its memory bound
//! (2.25 MiB at most here) and its 2^-47 chance per frame, at this size, of
//! refusing a fresh frame. A new connection starts a new window.

use eaxchat_proto::replay::{ReplayWindow, SHARED_KEY};
use eaxchat_proto::wire::NONCE_LEN;

/// The nonces accepted lately on one connection.
pub(super) struct NonceWindow(ReplayWindow);

impl NonceWindow {
    /// How many accepted nonces it remembers at least.
    pub(super) const LEN: usize = 65_536;

    /// An empty window.
    pub(super) fn new() -> NonceWindow {
        NonceWindow(ReplayWindow::remembering(NonceWindow::LEN))
    }

    /// Remembers `nonce` and says whether it is fresh: `false` for one
    /// accepted before on this connection.
    pub(super) fn accept(&mut self, nonce: &[u8; NONCE_LEN]) -> bool {
        self.0.check_and_insert(SHARED_KEY, nonce).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_repeat_and_remembers_its_length() {
        let mut window = NonceWindow::new();
        let nonce = |n: u32| {
            let mut nonce = [0u8; NONCE_LEN];
            nonce[..4].copy_from_slice(&n.to_le_bytes());
            nonce
        };
        assert!(window.accept(&nonce(0)));
        assert!(!window.accept(&nonce(0)));
        for n in 1..NonceWindow::LEN as u32 {
            assert!(window.accept(&nonce(n)));
        }
        assert!(!window.accept(&nonce(0)), "the last LEN are remembered");
    }
}
