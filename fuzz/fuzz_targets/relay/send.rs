//! The `relay` fuzz target's sending half: commands, bursts of frames
//! (whole, split, joined without newlines, one of them changed), and the
//! pre-auth budget's bookkeeping, each with what the model then expects.
//! The harness and its checks are in `relay.rs`.

use super::*;

/// One frame of a burst, where it lies in the bytes sent.
struct Planned {
    plaintext: Vec<u8>,
    start: usize,
    text_len: usize,
    /// Just past its terminator.
    end: usize,
    /// Why it does not open, for the changed one.
    error: Option<OpenError>,
}

impl Harness {
    /// Client `i` sends frames in two reads; the model works out which
    /// frames each read completes (the relay seals those as one run), and
    /// where a frame over the limit or the tampered one stops the sender.
    pub(crate) fn send(&mut self, i: usize, send: Burst) {
        let limits = self.limits;
        let sender = &mut self.clients[i];
        // A notebook client's frames have no terminator: the relay splits
        // them where their tags verify.
        let count = 1 + usize::from(send.frames) % 8;
        let terminator: &[u8] = match (sender.newline, send.crlf) {
            (false, _) => b"",
            (true, false) => b"\n",
            (true, true) => b"\r\n",
        };
        let mut wire = Vec::new();
        let mut planned = Vec::with_capacity(count);
        for k in 0..count {
            let len = (usize::from(send.len) + 97 * k) % 1536;
            // Text without `\n`: a seed receiver's frames join messages
            // with it.
            let mut plaintext =
                format!("{:08x}{:08x}", sender.serial, sender.next_seq).into_bytes();
            plaintext.resize(16 + len, b'x');
            sender.next_seq += 1;
            let mut sealed = BytesMut::new();
            self.cipher.seal_into(&plaintext, &mut sealed);
            let mut text = sealed[..sealed.len() - 1].to_vec();
            let mut error = None;
            if send.bad_last && k == count - 1 {
                let mid = text.len() / 2;
                text[mid] = if text[mid] == b'A' { b'B' } else { b'A' };
                error = Some(self.cipher.open(&text).expect_err("a changed frame opens"));
            }
            let start = wire.len();
            wire.extend_from_slice(&text);
            wire.extend_from_slice(terminator);
            planned.push(Planned {
                plaintext,
                start,
                text_len: text.len(),
                end: wire.len(),
                error,
            });
        }
        let split = usize::from(send.split) % (wire.len() + 1);
        let reads = [0..split, split..wire.len()];
        if sender.hostile {
            self.hostile_bytes(i, &wire, Fate::Hostile);
            return;
        }

        // A client that has never sent a `\n` has a frame taken by the
        // splitter as soon as its text is in: a notebook client's always, a
        // newline client's first one (its `\r` or `\n` then only ends it,
        // and does not count against `max_frame`).
        let first = &planned[0];
        let unterminated = !sender.newline
            || !sender.sent_newline && first.error.is_none() && first.text_len <= limits.max_frame;
        let mut done = 0;
        let mut batches = Vec::new();
        let mut fate = Fate::Open;
        'reads: for read in reads.iter().filter(|read| !read.is_empty()) {
            let mut batch = Vec::new();
            while let Some(frame) = planned.get(done) {
                // Taken by the splitter: a notebook client's every frame.
                let taken_whole = unterminated && (done == 0 || !sender.newline);
                // A line's `\r` counts against the limit.
                let counted = if taken_whole {
                    frame.text_len
                } else {
                    frame.end - frame.start - 1
                };
                let complete_at = if taken_whole {
                    frame.start + frame.text_len
                } else {
                    frame.end
                };
                if counted > limits.max_frame {
                    if frame.start + limits.max_frame < read.end {
                        fate = Fate::Closed(CloseReason::LineTooLong);
                        batches.push(batch);
                        break 'reads;
                    }
                    break;
                }
                if complete_at > read.end {
                    break;
                }
                if let Some(error) = frame.error {
                    if sender.newline {
                        fate = Fate::Closed(CloseReason::BadFrame(error));
                    } else {
                        // A notebook client's bad frame just never opens;
                        // whatever it sends next lands behind it.
                        sender.hostile = true;
                    }
                    batches.push(batch);
                    break 'reads;
                }
                batch.push(done);
                done += 1;
            }
            batches.push(batch);
        }
        sender.sent_newline |= sender.newline;
        sender.took_frame = !sender.newline && done == count;
        let id = sender.id;
        let mut batches = batches.into_iter();
        for read in reads.into_iter().filter(|read| !read.is_empty()) {
            self.relay.receive(id, &wire[read]);
            // The relay fans a read's frames out before it weighs what the
            // unauthenticated hold: a connection the budget cuts in this
            // read still gets them. They go to the sender's current room,
            // each the room's next message; a sender in no room is told,
            // frame by frame, that they did not go.
            let batch = batches.next().unwrap_or_default();
            if !batch.is_empty() {
                self.clients[i].authenticated = true;
                for &k in &batch {
                    self.say(i, &planned[k].plaintext);
                }
                let sender = &mut self.clients[i];
                if !sender.newline && !sender.seed {
                    // Its frames so far were lines; what follows is paced
                    // (from the end of this read, which became one).
                    sender.seed = true;
                    sender.was_seed = true;
                    sender.paced_from = Some(sender.queued_total);
                }
            }
            self.weigh_pre_auth();
            if self.clients[i].fate == Fate::Closed(CloseReason::PreAuthOverBudget) {
                // Cut before its frame was whole: the rest is never read.
                return;
            }
        }
        // Only now: what its frames before the one that closes it owed it
        // (that they did not go, when it is in no room) was owed it open.
        self.clients[i].fate = fate;
    }

    /// After a read: what the unauthenticated hold stays within the
    /// budget, and the connections the relay cut for it were never
    /// authenticated. Their fate follows the relay's.
    pub(crate) fn weigh_pre_auth(&mut self) {
        let mut held = 0;
        for client in &mut self.clients {
            let peer = self
                .relay
                .peer(client.id)
                .expect("a client not yet removed");
            match peer.closing() {
                Some(CloseReason::PreAuthOverBudget) => {
                    assert!(
                        !client.authenticated,
                        "the budget cut an authenticated client"
                    );
                    assert_eq!(peer.buffered(), 0, "a cut connection's bytes are let go");
                    client.fate = Fate::Closed(CloseReason::PreAuthOverBudget);
                }
                None if !client.authenticated => held += peer.buffered(),
                _ => {}
            }
        }
        assert!(
            held <= self.limits.pre_auth_budget,
            "unauthenticated clients hold {held} > {}",
            self.limits.pre_auth_budget
        );
    }

    /// Client `i` sends bytes that are not a frame. `fate` is what follows
    /// for a client that was well-behaved until now (nothing buffered).
    pub(crate) fn hostile_bytes(&mut self, i: usize, bytes: &[u8], fate: Fate) {
        let client = &mut self.clients[i];
        client.fate = if client.hostile { Fate::Hostile } else { fate };
        client.hostile = true;
        self.relay.receive(client.id, bytes);
        self.weigh_pre_auth();
    }
}
