//! Storing history records in the JetStream stream: one task, in order.
//!
//! Each record is sealed (with a copy of the cluster key,
//! [`ClusterKey::seal_record`]) for the stream sequence it is to get, and
//! published with JetStream's `Nats-Expected-Last-Sequence` header naming
//! the one before, so the stream stores it at exactly that sequence or
//! refuses it. A record refused because another relay stored one first is
//! sealed again for the new end of the stream and tried again at once; one
//! refused by JetStream itself (recovering after a restart, no responders,
//! no answer in time) is tried again after a pause. Records are pipelined:
//! a batch is published before the first acknowledgement is awaited.
//!
//! Every request waits at most [`STORE_TIMEOUT`]: a request in flight when
//! the connection drops gets no answer, and would otherwise hold every
//! record behind it for the client's default 10 s. A record whose answer
//! was lost may still have been stored, so each carries a `Nats-Msg-Id`
//! kept across its tries: JetStream answers a second copy as a duplicate
//! and does not store it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind};
use bytes::Bytes;
use log::{debug, warn};
use tokio::sync::mpsc;

use eaxchat_core::cluster::ClusterKey;

use super::HistoryStream;

/// History records waiting to be stored at most; past it they are
/// dropped, counted.
const STORES_IN_FLIGHT: usize = 1024;

/// History records published before their acknowledgements are awaited.
const STORE_BATCH: usize = 64;

/// Tries to store a batch of history records (the stream may be
/// recovering just after NATS restarted, or other relays store first).
/// A try refused by JetStream itself is followed by a pause of 200 ms
/// times its number (5.6 s in all); one lost to another relay is not.
const STORE_ATTEMPTS: u32 = 8;

/// Longest wait for any one JetStream answer (the stream's end, an
/// acknowledgement).
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// One history record: its subject, its plain bytes, and the message id
/// its every try carries.
#[derive(Clone)]
struct Record {
    subject: String,
    plain: Bytes,
    id: String,
}

/// Starts the task that stores what is sent on the returned queue in
/// `stream`, sealed with `key`; counts in `dropped` the records not stored.
pub(super) fn start(
    client: &async_nats::Client,
    stream: HistoryStream,
    key: ClusterKey,
    dropped: Arc<AtomicU64>,
) -> mpsc::Sender<(String, Bytes)> {
    let (tx, rx) = mpsc::channel(STORES_IN_FLIGHT);
    let js = jetstream::ContextBuilder::new()
        .timeout(STORE_TIMEOUT)
        .build(client.clone());
    tokio::spawn(store_all(js, stream, key, rx, dropped));
    tx
}

/// A prefix of message ids no other relay (or run of this one) uses.
fn id_prefix() -> String {
    let mut seed = [0u8; 8];
    if getrandom::fill(&mut seed).is_err() {
        // The clock and the process id still tell runs apart.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64);
        seed = (nanos ^ u64::from(std::process::id()).rotate_left(40)).to_le_bytes();
    }
    format!("{:016x}", u64::from_le_bytes(seed))
}

/// Stores the history records handed over, in order, each sealed for the
/// stream sequence it gets (see the module docs); counts in `dropped`
/// those not stored after [`STORE_ATTEMPTS`].
async fn store_all(
    js: jetstream::Context,
    stream: HistoryStream,
    mut key: ClusterKey,
    mut records: mpsc::Receiver<(String, Bytes)>,
    dropped: Arc<AtomicU64>,
) {
    let prefix = id_prefix();
    let mut count: u64 = 0;
    let mut record = |(subject, plain): (String, Bytes)| {
        count += 1;
        Record {
            subject,
            plain,
            id: format!("{prefix}-{count}"),
        }
    };
    let mut last: Option<u64> = None;
    while let Some(first) = records.recv().await {
        let mut batch = vec![record(first)];
        while batch.len() < STORE_BATCH {
            match records.try_recv() {
                Ok(next) => batch.push(record(next)),
                Err(_) => break,
            }
        }
        for attempt in 1..=STORE_ATTEMPTS {
            let pause = Duration::from_millis(200 * u64::from(attempt));
            let base = match last {
                Some(last) => last,
                None => match stream_end(&js, &stream.name).await {
                    Ok(end) => end,
                    Err(e) => {
                        debug!("cluster: history stream not ready (attempt {attempt}): {e}");
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                },
            };
            let stored = store_batch(&js, &mut key, base, &batch).await;
            last = stored.end;
            if stored.refused.is_empty() {
                batch.clear();
                break;
            }
            debug!(
                "cluster: {} history records not stored at the stream's end (attempt {attempt})",
                stored.refused.len()
            );
            batch = stored.refused;
            if stored.unready && attempt < STORE_ATTEMPTS {
                // Not a race lost to another relay: JetStream itself is
                // not taking records yet. Trying again at once would
                // spend every attempt in a few milliseconds.
                tokio::time::sleep(pause).await;
            }
        }
        if !batch.is_empty() {
            warn!(
                "cluster: {} history records were not stored after {STORE_ATTEMPTS} attempts",
                batch.len()
            );
            dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
    }
}

/// What became of one batch of history records.
struct Stored {
    /// The records not stored, in order.
    refused: Vec<Record>,
    /// The stream's end if every record was stored where it was sealed for
    /// (`None`: read it again).
    end: Option<u64>,
    /// Some record was refused for a reason other than another relay
    /// storing at its sequence first: wait before trying again.
    unready: bool,
}

/// Publishes `batch` after stream sequence `base`, each record sealed for
/// its sequence and stored only there.
async fn store_batch(
    js: &jetstream::Context,
    key: &mut ClusterKey,
    base: u64,
    batch: &[Record],
) -> Stored {
    let mut acks = Vec::with_capacity(batch.len());
    for (i, record) in batch.iter().enumerate() {
        let seq = base + 1 + i as u64;
        let publish = jetstream::message::PublishMessage::build()
            .payload(key.seal_record(&record.plain, seq))
            .message_id(&record.id)
            .expected_last_sequence(seq - 1);
        acks.push(js.send_publish(record.subject.clone(), publish).await);
    }
    let mut refused = Vec::new();
    let mut unready = false;
    let mut moved = false;
    for (record, ack) in batch.iter().zip(acks) {
        let outcome = match ack {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match outcome {
            // Stored by an earlier try whose answer was lost, at the
            // sequence that try sealed it for; the stream's end is not
            // where this try counted.
            Ok(ack) if ack.duplicate => moved = true,
            Ok(_) => {}
            Err(e) => {
                unready |= e.kind() != PublishErrorKind::WrongLastSequence;
                refused.push(record.clone());
            }
        }
    }
    let end = (refused.is_empty() && !moved).then_some(base + batch.len() as u64);
    Stored {
        refused,
        end,
        unready,
    }
}

/// The stream's last sequence now (one request).
async fn stream_end(js: &jetstream::Context, name: &str) -> Result<u64, async_nats::Error> {
    let stream = js.get_stream(name).await?;
    Ok(stream.cached_info().state.last_sequence)
}
