//! The `handshake` target's model of invite joins (kind 0x03): the one
//! invite the relay holds (`INVITE_ID`, for carol, device 3), its uses and
//! wrong secrets as the model counts them, and how a join line decides a
//! connection. The steps that make joins are in `handshake.rs`.

use eaxchat_core::relay::{CloseReason, HandshakeRefusal, WRONG_PER_INVITE};
use eaxchat_proto::session::{Initiator, Kind, MAX_PAYLOAD, decode_line};

use crate::INVITE_ID;
use crate::model::{Expect, Harness, State};

/// An invite join line the harness made (kind 0x03), always for device 3
/// (carol's key) and the one invite the relay holds, `INVITE_ID`.
pub(crate) struct Join {
    /// It names the invite the relay holds (else a random id).
    pub(crate) known_id: bool,
    /// It was made with the invite's secret.
    pub(crate) right_secret: bool,
    /// Its handshake, until a welcome takes it.
    pub(crate) initiator: Option<Initiator>,
}

impl Harness {
    /// The model of a join line the harness made, as an awaiting
    /// connection's first line (`rest`: what followed it in the read).
    pub(crate) fn take_join(&mut self, c: usize, line: &[u8], rest: &[u8]) -> State {
        let id = self.conns[c].id;
        let coded = self.conns[c].coded;
        let Some(join) = self.joins.get_mut(line) else {
            return self.refused(HandshakeRefusal::BadHello, None);
        };
        if coded {
            // It must prove the code exchange's secret, which no join the
            // harness makes does; its try was counted at the exchange.
            return self.refused(HandshakeRefusal::BadHello, None);
        }
        // The relay's order: the invite's state, then its secret, then
        // whether the key or the name is a member's already.
        let refused = if !join.known_id || self.invite_wrong >= WRONG_PER_INVITE {
            true
        } else if self.invite_uses == 0 {
            true
        } else if !join.right_secret {
            self.invite_wrong += 1;
            true
        } else {
            self.mask & (1 << 3) != 0
        };
        if refused {
            return self.refused(HandshakeRefusal::BadHello, None);
        }
        let initiator = join.initiator.take();
        self.invite_uses -= 1;
        self.mask |= 1 << 3;
        self.joined += 1;
        self.model.sessions.accepted += 1;
        if !rest.is_empty() {
            return self.closed(id, Expect::Exactly(CloseReason::HandshakeUnfinished));
        }
        State::Welcomed {
            initiator,
            device: 3,
        }
    }

    /// A line the harness did not make that is an invite join for the open
    /// invite, long enough to be tried, counts as a wrong secret.
    pub(crate) fn count_stray_join(&mut self, c: usize, line: &[u8]) {
        if self.conns[c].coded {
            return;
        }
        let Ok(line) = decode_line(line) else { return };
        let body = line.body();
        let open = self.invite_uses > 0 && self.invite_wrong < WRONG_PER_INVITE;
        let tried = (96..=96 + MAX_PAYLOAD).contains(&body.len().saturating_sub(8));
        if line.kind() == Kind::InviteJoin
            && body.len() >= 8
            && body[..8] == INVITE_ID.0
            && open
            && tried
        {
            self.invite_wrong += 1;
        }
    }

    /// The model of a code start as connection `c`'s first line: answered
    /// (true) while the invite is open, and counted as a try.
    pub(crate) fn take_code(&mut self, c: usize) -> bool {
        if self.invite_uses == 0 || self.invite_wrong >= WRONG_PER_INVITE {
            return false;
        }
        self.invite_wrong += 1;
        let conn = &mut self.conns[c];
        conn.coded = true;
        conn.code_due = true;
        conn.asked_key = true;
        true
    }
}
