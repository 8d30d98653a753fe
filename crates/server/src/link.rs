//! The thread that talks to NATS: the official client, `async-nats`, on a
//! small tokio runtime of its own.
//!
//! The poll loop and this thread share two bounded queues and a
//! `mio::Waker`. [`Link::send`] never waits: a full queue drops the
//! envelope and counts it, so a slow link to NATS costs the relay's own
//! clients nothing. The thread hands what comes from NATS to the relay the
//! same way, waking the poll loop once per batch of arrivals, and drops
//! (and counts) what the loop has no room for.
//!
//! NATS unreachable at start, or lost later, is the client's to retry
//! (with backoff, each attempt logged here); the relay is told
//! [`FromNats::Down`] and [`FromNats::Up`], and publishes nothing while
//! NATS is down. Subscriptions are the client's to restore on reconnect.
//! With a history stream, every (re)connection reads the stream's records
//! and hands them over as [`FromNats::History`], each with its stream
//! sequence.
//!
//! History records are stored by one task, [`store`], each sealed for
//! the stream sequence it gets. A record published into the stream again
//! later sits at another sequence and does not open there.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream;
use futures_util::StreamExt as _;
use log::{debug, info, warn};
use tokio::sync::mpsc::{self, error::TrySendError};

use eaxchat_core::cluster::{ClusterKey, FromNats, IN_QUEUE, ToNats};

mod store;

/// Longest wait between two attempts to reach NATS.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Most time a history fill may take before it is given up.
const FILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of envelopes handed to the loop and not yet taken, at most; past
/// it they are dropped, counted (with [`IN_QUEUE`], this bounds
/// what a stalled loop lets pile up).
pub const IN_BYTES: usize = 64 << 20;

/// How the relay proves itself to NATS: NATS's own options.
#[derive(Clone, Default)]
pub enum Auth {
    /// None, or what the URL carries (`nats://user:pass@host`).
    #[default]
    None,
    /// A token.
    Token(String),
    /// A user and password.
    UserPassword(String, String),
    /// An nkey seed (`SU…`), read from its file.
    Nkey(String),
    /// A credentials file (a JWT and its nkey seed).
    Credentials(PathBuf),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of logs.
        f.write_str(match self {
            Auth::None => "none",
            Auth::Token(_) => "token",
            Auth::UserPassword(..) => "user and password",
            Auth::Nkey(_) => "nkey",
            Auth::Credentials(_) => "credentials file",
        })
    }
}

/// The JetStream stream that holds room history (`--cluster-history`).
#[derive(Debug, Clone)]
pub struct HistoryStream {
    /// The stream's name.
    pub name: String,
    /// The subjects it keeps (every room's history subject).
    pub subjects: String,
    /// Records kept per room.
    pub per_room: i64,
    /// Bytes kept in all.
    pub max_bytes: i64,
}

/// Where and how to reach NATS.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The servers, `nats://HOST:PORT` each.
    pub servers: Vec<String>,
    /// How to authenticate.
    pub auth: Auth,
    /// The connection's name, as NATS's monitoring shows it.
    pub connection_name: String,
    /// The history stream, if history is kept in JetStream.
    pub history: Option<HistoryStream>,
    /// Envelopes the queue to the NATS thread holds at most
    /// (`--cluster-queue`); past it they are dropped, counted.
    pub queue: usize,
}

/// Wakes the poll loop at most once until it drains.
#[derive(Clone)]
struct Wake {
    waker: Arc<mio::Waker>,
    pending: Arc<AtomicBool>,
}

impl Wake {
    fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }
}

/// The poll loop's end of the link.
pub struct Link {
    out: Option<mpsc::Sender<ToNats>>,
    incoming: mpsc::Receiver<FromNats>,
    pending: Arc<AtomicBool>,
    /// Dropped by the thread (its queue to the loop full, or NATS down).
    dropped: Arc<AtomicU64>,
    reported: u64,
    /// Bytes of envelopes handed over and not yet taken.
    in_bytes: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Link {
    /// Starts the thread; it wakes the poll loop through `waker`. With a
    /// history stream, `record_key` (the cluster key) seals its records.
    pub fn start(
        config: LinkConfig,
        waker: mio::Waker,
        record_key: ClusterKey,
    ) -> io::Result<Link> {
        let (out_tx, out_rx) = mpsc::channel(config.queue.max(1));
        let (in_tx, in_rx) = mpsc::channel(IN_QUEUE);
        let pending = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let in_bytes = Arc::new(AtomicUsize::new(0));
        let thread_in_bytes = Arc::clone(&in_bytes);
        let wake = Wake {
            waker: Arc::new(waker),
            pending: Arc::clone(&pending),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread_dropped = Arc::clone(&dropped);
        let thread = std::thread::Builder::new()
            .name("nats".into())
            .spawn(move || {
                let hand = Hand {
                    tx: in_tx,
                    wake,
                    dropped: Arc::clone(&thread_dropped),
                    in_bytes: thread_in_bytes,
                };
                runtime.block_on(run(config, out_rx, hand, thread_dropped, record_key));
            })?;
        Ok(Link {
            out: Some(out_tx),
            incoming: in_rx,
            pending,
            dropped,
            reported: 0,
            in_bytes,
            thread: Some(thread),
        })
    }

    /// Hands `out` to the thread; `false` if its queue was full (dropped).
    pub fn send(&mut self, out: ToNats) -> bool {
        match &self.out {
            Some(tx) => tx.try_send(out).is_ok(),
            None => false,
        }
    }

    /// Call before draining with [`Link::try_recv`]: arrivals after it
    /// wake the loop again.
    pub fn rearm(&self) {
        self.pending.store(false, Ordering::Release);
    }

    /// The next thing the thread handed over, if any.
    pub fn try_recv(&mut self) -> Option<FromNats> {
        let incoming = self.incoming.try_recv().ok()?;
        if let FromNats::Envelope(payload) = &incoming {
            self.in_bytes.fetch_sub(payload.len(), Ordering::AcqRel);
        }
        Some(incoming)
    }

    /// Envelopes the thread dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        let total = self.dropped.load(Ordering::Relaxed);
        let new = total - self.reported;
        self.reported = total;
        new
    }

    /// Lets the thread publish what it was handed (the goodbye among it),
    /// flush, and stop: waits at most `grace`.
    pub fn close(mut self, grace: Duration) {
        self.out = None;
        let Some(thread) = self.thread.take() else {
            return;
        };
        let deadline = std::time::Instant::now() + grace;
        while !thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            warn!("cluster: the NATS thread did not finish within {grace:?}; leaving it");
        }
    }
}

/// The wait before attempt `attempts` to reach NATS: 100 ms doubling to
/// [`MAX_BACKOFF`].
pub fn backoff(attempts: usize) -> Duration {
    let shift = attempts.saturating_sub(1).min(16) as u32;
    Duration::from_millis(100u64.saturating_mul(1 << shift)).min(MAX_BACKOFF)
}

async fn options(config: &LinkConfig) -> io::Result<async_nats::ConnectOptions> {
    let options = match &config.auth {
        Auth::None => async_nats::ConnectOptions::new(),
        Auth::Token(token) => async_nats::ConnectOptions::with_token(token.clone()),
        Auth::UserPassword(user, password) => {
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        Auth::Nkey(seed) => async_nats::ConnectOptions::with_nkey(seed.clone()),
        Auth::Credentials(path) => async_nats::ConnectOptions::with_credentials_file(path).await?,
    };
    Ok(options
        .name(&config.connection_name)
        .no_echo()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            let wait = backoff(attempts);
            info!("cluster: connecting to NATS, attempt {attempts}, after {wait:?}");
            wait
        }))
}

/// The thread's work: connect, then carry both ways until the loop lets go.
async fn run(
    config: LinkConfig,
    mut out_rx: mpsc::Receiver<ToNats>,
    hand: Hand,
    dropped: Arc<AtomicU64>,
    record_key: ClusterKey,
) {
    let (event_tx, mut event_rx) = mpsc::channel(64);
    let options = match options(&config).await {
        Ok(options) => options.event_callback(move |event| {
            let event_tx = event_tx.clone();
            async move {
                let _ = event_tx.send(event).await;
            }
        }),
        Err(e) => {
            warn!("cluster: cannot read the NATS credentials: {e}; not joining");
            return;
        }
    };
    info!(
        "cluster: connecting to NATS at {}",
        config.servers.join(",")
    );
    let client = match options.connect(config.servers.clone()).await {
        Ok(client) => client,
        Err(e) => {
            warn!("cluster: cannot connect to NATS: {e}; not joining");
            return;
        }
    };
    let mut subscriptions: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let stores = config
        .history
        .clone()
        .map(|stream| store::start(&client, stream, record_key, Arc::clone(&dropped)));
    let mut fill: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            event = event_rx.recv() => match event {
                Some(async_nats::Event::Connected) => {
                    hand.give(FromNats::Up);
                    if let Some(stream) = &config.history {
                        if let Some(old) = fill.take() {
                            old.abort();
                        }
                        fill = Some(tokio::spawn(fill_history(
                            jetstream::new(client.clone()),
                            stream.clone(),
                            hand.clone(),
                        )));
                    }
                }
                Some(async_nats::Event::Disconnected) => {
                    warn!("cluster: NATS connection lost; reconnecting");
                    hand.give(FromNats::Down);
                }
                Some(event) => info!("cluster: NATS: {event}"),
                None => {}
            },
            out = out_rx.recv() => match out {
                Some(ToNats::Publish { subject, payload }) => {
                    if client.connection_state() != State::Connected {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    } else if let Err(e) = client.publish(subject, payload).await {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        debug!("cluster: publish failed: {e}");
                    }
                }
                Some(ToNats::Store { subject, plain }) => {
                    let queued = client.connection_state() == State::Connected
                        && stores
                            .as_ref()
                            .is_some_and(|stores| stores.try_send((subject, plain)).is_ok());
                    if !queued {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(ToNats::Subscribe(subject)) => {
                    match client.subscribe(subject.clone()).await {
                        Ok(subscriber) => {
                            let task = tokio::spawn(forward(subscriber, hand.clone()));
                            if let Some(old) = subscriptions.insert(subject, task) {
                                old.abort();
                            }
                        }
                        Err(e) => warn!("cluster: cannot subscribe: {e}"),
                    }
                }
                Some(ToNats::Unsubscribe(subject)) => {
                    if let Some(task) = subscriptions.remove(&subject) {
                        // Dropping the subscriber unsubscribes it.
                        task.abort();
                    }
                }
                None => break,
            },
        }
    }
    if tokio::time::timeout(Duration::from_secs(1), client.flush())
        .await
        .is_err()
    {
        warn!("cluster: NATS did not take the last envelopes within 1 s");
    }
}

/// What the thread hands the loop, and how it counts what does not fit.
#[derive(Clone)]
struct Hand {
    tx: mpsc::Sender<FromNats>,
    wake: Wake,
    dropped: Arc<AtomicU64>,
    in_bytes: Arc<AtomicUsize>,
}

impl Hand {
    fn give(&self, incoming: FromNats) {
        let len = match &incoming {
            FromNats::Envelope(payload) => payload.len(),
            _ => 0,
        };
        if len > 0 && self.in_bytes.fetch_add(len, Ordering::AcqRel) + len > IN_BYTES {
            self.in_bytes.fetch_sub(len, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.wake.wake();
            return;
        }
        match self.tx.try_send(incoming) {
            Ok(()) => self.wake.wake(),
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                self.in_bytes.fetch_sub(len, Ordering::AcqRel);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.wake.wake();
            }
        }
    }
}

/// Hands every message of one subscription to the loop.
async fn forward(mut subscriber: async_nats::Subscriber, hand: Hand) {
    while let Some(message) = subscriber.next().await {
        hand.give(FromNats::Envelope(message.payload));
    }
}

/// Makes sure the history stream exists, reads every record in it, and
/// hands them over.
async fn fill_history(js: jetstream::Context, config: HistoryStream, hand: Hand) {
    match tokio::time::timeout(FILL_TIMEOUT, read_history(&js, &config)).await {
        Ok(Ok(records)) => hand.give(FromNats::History(records)),
        Ok(Err(e)) => warn!(
            "cluster: history stream {}: {e}; history stays this relay's own",
            config.name
        ),
        Err(_) => warn!(
            "cluster: history stream {} not read within {FILL_TIMEOUT:?}",
            config.name
        ),
    }
}

async fn read_history(
    js: &jetstream::Context,
    config: &HistoryStream,
) -> Result<Vec<(u64, bytes::Bytes)>, async_nats::Error> {
    let mut stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: config.name.clone(),
            subjects: vec![config.subjects.clone()],
            max_messages_per_subject: config.per_room,
            max_bytes: config.max_bytes,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let state = stream.info().await?.state.clone();
    let mut records = Vec::new();
    if state.messages == 0 {
        return Ok(records);
    }
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let (sequence, pending) = {
            let info = message.info()?;
            (info.stream_sequence, info.pending)
        };
        records.push((sequence, message.message.payload.clone()));
        if pending == 0 || sequence >= state.last_sequence {
            break;
        }
    }
    Ok(records)
}
