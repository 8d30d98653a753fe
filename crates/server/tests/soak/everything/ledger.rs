//! What every client of the everything-on soak did, and the audit of it:
//! each connection's life (from its admission to its end, or live to the
//! end of the run), every numbered message it sent with the instant it
//! was sent, and everything it received.
//!
//! "Live" is exact: a connection is live for a message when it was
//! admitted (a session's welcome, a shared-key client's `/who` answer)
//! before the message was sent, and was still open when the run ended: it
//! was not closed, did not leave, and its relay was not killed in
//! between. Every message a live sender sent is owed to every other live
//! connection of its chat (the two clustered session relays are one chat,
//! the shared-key relay another), exactly once, in the sender's order,
//! under the sender's member name in session mode. The flooder's messages
//! are owed to no one (flood control refuses some), but what arrives of
//! them is checked like the rest.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A connection's index in the ledger: one per connection, so a client
/// that reconnects is a new peer.
pub type PeerId = usize;

/// Which chat a connection belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chat {
    /// The two session relays, joined through NATS.
    Cluster,
    /// The shared-key relay.
    Shared,
}

/// One connection's record.
#[derive(Debug)]
pub struct Peer {
    pub label: String,
    pub chat: Chat,
    /// The relay process it was connected to ("a", "b1", "b2", "c").
    pub relay: &'static str,
    /// The member name stamped on its messages (sessions).
    pub name: Option<String>,
    pub flooder: bool,
    pub admitted: Instant,
    /// When it ended, and whether the relay ended it.
    pub ended: Option<(Instant, bool)>,
    pub sent: Vec<Instant>,
    pub received: Vec<Received>,
    pub presence_seen: u64,
}

/// One numbered message received.
#[derive(Debug)]
pub struct Received {
    pub from: String,
    pub seq: u64,
    /// What came before `soak ` in the text (the relay's stamp).
    pub stamp: String,
}

/// The shared record of the run.
#[derive(Default)]
pub struct Ledger {
    peers: Mutex<Vec<Peer>>,
    by_label: Mutex<HashMap<String, PeerId>>,
    violations: Mutex<Vec<String>>,
    last_lines: Mutex<HashMap<Chat, Vec<u8>>>,
    senders_stop: AtomicBool,
    stop: AtomicBool,
}

impl Ledger {
    /// Records a connection admitted just now.
    pub fn admit(
        &self,
        chat: Chat,
        relay: &'static str,
        name: Option<String>,
        flooder: bool,
    ) -> PeerId {
        let mut peers = self.peers.lock().expect("lock");
        let id = peers.len();
        let label = format!("{relay}.{id}");
        self.by_label
            .lock()
            .expect("lock")
            .insert(label.clone(), id);
        peers.push(Peer {
            label,
            chat,
            relay,
            name,
            flooder,
            admitted: Instant::now(),
            ended: None,
            sent: Vec::new(),
            received: Vec::new(),
            presence_seen: 0,
        });
        id
    }

    pub fn label(&self, peer: PeerId) -> String {
        self.peers.lock().expect("lock")[peer].label.clone()
    }

    /// Message `seq` of `peer` is being sent now (recorded before it is
    /// written, so a receiver can never see a message not yet recorded).
    pub fn sent(&self, peer: PeerId, seq: u64) {
        let mut peers = self.peers.lock().expect("lock");
        debug_assert_eq!(peers[peer].sent.len() as u64 + 1, seq);
        peers[peer].sent.push(Instant::now());
    }

    pub fn set_last_line(&self, peer: PeerId, line: &[u8]) {
        let chat = self.peers.lock().expect("lock")[peer].chat;
        self.last_lines
            .lock()
            .expect("lock")
            .insert(chat, line.to_vec());
    }

    /// The last line any client of `chat` sent, for replaying.
    pub fn last_line(&self, chat: Chat) -> Option<Vec<u8>> {
        self.last_lines.lock().expect("lock").get(&chat).cloned()
    }

    /// `peer` received `text`.
    pub fn received(&self, peer: PeerId, text: &[u8]) {
        let text = String::from_utf8_lossy(text);
        let mut peers = self.peers.lock().expect("lock");
        let Some(at) = text.find("soak ") else {
            if text.starts_with("* ") && text.contains(" joined #") {
                peers[peer].presence_seen += 1;
            }
            return;
        };
        let mut words = text[at + 5..].split(' ');
        let (from, seq) = (words.next(), words.next().and_then(|s| s.parse().ok()));
        match (from, seq) {
            (Some(from), Some(seq)) => peers[peer].received.push(Received {
                from: from.to_owned(),
                seq,
                stamp: text[..at].to_owned(),
            }),
            _ => self.violation(format!("{}: a mangled message {text:?}", peers[peer].label)),
        }
    }

    /// `peer`'s connection ended; `by_relay` when the relay closed it.
    pub fn ended(&self, peer: PeerId, by_relay: bool) {
        self.peers.lock().expect("lock")[peer].ended = Some((Instant::now(), by_relay));
    }

    pub fn violation(&self, what: String) {
        eprintln!("soak everything: VIOLATION {what}");
        self.violations.lock().expect("lock").push(what);
    }

    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().expect("lock").clone()
    }

    /// Senders stop; receivers keep reading until [`Ledger::stop`].
    pub fn stop_senders(&self) {
        self.senders_stop.store(true, Ordering::SeqCst);
    }

    pub fn senders_stopped(&self) -> bool {
        self.senders_stop.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Messages sent through each relay process.
    pub fn sent_by_relay(&self) -> BTreeMap<&'static str, u64> {
        let mut sent = BTreeMap::new();
        for peer in self.peers.lock().expect("lock").iter() {
            *sent.entry(peer.relay).or_insert(0) += peer.sent.len() as u64;
        }
        sent
    }

    /// Connections admitted by each relay process.
    pub fn admitted_by_relay(&self) -> BTreeMap<&'static str, u64> {
        let mut admitted = BTreeMap::new();
        for peer in self.peers.lock().expect("lock").iter() {
            *admitted.entry(peer.relay).or_insert(0) += 1;
        }
        admitted
    }

    /// Messages still owed to live connections (0 when all arrived).
    pub fn missing(&self) -> u64 {
        self.audit_with(|_| {}).missing
    }

    /// The audit: records a violation for every message lost, duplicated,
    /// reordered, forged, misattributed or leaked across chats.
    pub fn audit(&self) -> Audit {
        let mut found = Vec::new();
        let audit = self.audit_with(|v| found.push(v));
        for v in found.into_iter().take(40) {
            self.violation(v);
        }
        audit
    }

    fn audit_with(&self, mut violation: impl FnMut(String)) -> Audit {
        let peers = self.peers.lock().expect("lock");
        let by_label = self.by_label.lock().expect("lock");
        let mut audit = Audit::default();
        for r in peers.iter() {
            audit.presence_seen += r.presence_seen;
            let mut got: HashMap<(PeerId, u64), u32> = HashMap::new();
            let mut last: HashMap<PeerId, u64> = HashMap::new();
            for m in &r.received {
                let Some(&s) = by_label.get(&m.from) else {
                    violation(format!("{}: from no one: {}", r.label, m.from));
                    continue;
                };
                let sender = &peers[s];
                let Some(&sent_at) = sender.sent.get((m.seq as usize).wrapping_sub(1)) else {
                    violation(format!("{}: {} {} was never sent", r.label, m.from, m.seq));
                    continue;
                };
                if sender.chat != r.chat || s == sender_self(&r.label, &by_label) {
                    violation(format!(
                        "{}: got {} {} from elsewhere",
                        r.label, m.from, m.seq
                    ));
                }
                *got.entry((s, m.seq)).or_insert(0) += 1;
                if sent_at < r.admitted {
                    audit.history += 1;
                    continue;
                }
                audit.live_deliveries += 1;
                if let Some(name) = &sender.name
                    && m.stamp != format!("{name}: ")
                {
                    violation(format!(
                        "{}: {} {} stamped {:?}",
                        r.label, m.from, m.seq, m.stamp
                    ));
                }
                let previous = last.insert(s, m.seq).unwrap_or(0);
                if m.seq <= previous {
                    violation(format!(
                        "{}: {} {} after {previous}",
                        r.label, m.from, m.seq
                    ));
                }
            }
            for (&(s, seq), &n) in &got {
                if n > 1 {
                    violation(format!("{}: {} {seq} {n} times", r.label, peers[s].label));
                }
            }
            if r.ended.is_some() {
                continue;
            }
            for (s, sender) in peers.iter().enumerate() {
                let live = sender.ended.is_none() && !sender.flooder;
                if !live || sender.chat != r.chat || sender.label == r.label {
                    continue;
                }
                for (i, &at) in sender.sent.iter().enumerate() {
                    if at < r.admitted {
                        continue;
                    }
                    audit.owed += 1;
                    if !got.contains_key(&(s, i as u64 + 1)) {
                        audit.missing += 1;
                        violation(format!("{}: lost {} {}", r.label, sender.label, i + 1));
                    }
                }
            }
        }
        audit.connections = peers.len() as u64;
        audit.live = peers.iter().filter(|p| p.ended.is_none()).count() as u64;
        audit.closed_by_relays = peers
            .iter()
            .filter(|p| matches!(p.ended, Some((_, true))))
            .count() as u64;
        audit.sent = peers.iter().map(|p| p.sent.len() as u64).sum();
        audit
    }

    /// The connections of member `name` still open.
    pub fn open_named(&self, name: &str) -> Vec<String> {
        let peers = self.peers.lock().expect("lock");
        peers
            .iter()
            .filter(|p| p.name.as_deref() == Some(name) && p.ended.is_none())
            .map(|p| p.label.clone())
            .collect()
    }

    /// Numbered messages from before its admission that `relay`'s
    /// connections received (history).
    pub fn history_received_on(&self, relay: &str, sent_before: Instant) -> u64 {
        let peers = self.peers.lock().expect("lock");
        let by_label = self.by_label.lock().expect("lock");
        peers
            .iter()
            .filter(|p| p.relay == relay)
            .flat_map(|p| p.received.iter())
            .filter(|m| {
                by_label
                    .get(&m.from)
                    .and_then(|&s| peers[s].sent.get((m.seq as usize).wrapping_sub(1)))
                    .is_some_and(|&at| at < sent_before)
            })
            .count() as u64
    }
}

/// The receiver's own id: a connection never hears itself.
fn sender_self(label: &str, by_label: &HashMap<String, PeerId>) -> PeerId {
    by_label.get(label).copied().unwrap_or(usize::MAX)
}

/// The audit's figures.
#[derive(Debug, Default)]
pub struct Audit {
    pub connections: u64,
    pub live: u64,
    pub closed_by_relays: u64,
    pub sent: u64,
    pub owed: u64,
    pub missing: u64,
    pub live_deliveries: u64,
    pub history: u64,
    pub presence_seen: u64,
}
