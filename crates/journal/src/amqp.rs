//! The RabbitMQ backend of the partitioned log (`journal.backend = "amqp"`, cargo feature
//! `amqp`, AMQP 0-9-1, RabbitMQ ≥ 3.10 with quorum and stream queues).
//!
//! Client: [`lapin`] 4, the most used AMQP client in Rust, maintained, with tokio as its
//! default runtime (no adapter crate since 3.x), publisher confirms and consumer streams
//! built in; `amqprs` would do too but has fewer users. Its own connection recovery is not used: a
//! recovered connection would silently re-declare exclusive queues and consumers, which here
//! mean "holding a partition". A lost connection is instead rebuilt lazily by the next call,
//! and everything held over it is treated as lost. No TLS backend is built in (`amqps://` is
//! refused at open).
//!
//! Queues, all under `journal.prefix` (`P`):
//!
//! | queue | type | content |
//! |---|---|---|
//! | `P.p<p>` | durable quorum queue, `x-single-active-consumer` | the records of partition `p` |
//! | `P.hold.p<p>` | exclusive classic queue, no messages | exists while a client holds `p` |
//! | `P.dedupe.p<p>` | stream, `x-max-age` 30 days | the claims of partition `p`'s dedupe window |
//! | `P.dead` | durable quorum queue | dead letters |
//!
//! - **append**: a persistent (`delivery_mode` 2), `mandatory` publish through the default
//!   exchange to `P.p<p>` (`message_id` = `msg_id`) on one of a few channels in confirm
//!   mode; `Ok` only after the broker's confirm, i.e. once the quorum queue's Raft log has it
//!   fsynced on a majority. A nack, an unroutable return, or no confirm within 5 s is
//!   `Unavailable`. Concurrent appends pipeline on the channels (round robin), none waits
//!   for another's confirm.
//! - **hold**: declares the exclusive queue `P.hold.p<p>` on this client's connection: the
//!   broker lets one connection at a time own it, so the declaration is the lock
//!   (`RESOURCE_LOCKED` = held by someone else). It ends with [`Log::release`] (deletes the
//!   queue) or with the connection: closed by [`Log::close`], by dropping the client, by the
//!   process dying (at once), or by the broker missing two heartbeats (5 s each, so about
//!   10 s after a host or network failure). `ttl` is therefore not used: the broker's view of
//!   the connection replaces it. A renewal re-declares the queue (one round trip). The
//!   partition queues are single-active-consumer as well, so even a holder that lost the
//!   lock without noticing gets no new entries once another consumes.
//! - **read**: the holder consumes `P.p<p>` (prefetch 1000, manual acks); a task moves the
//!   deliveries into a per-partition buffer in order, `read` drains it. `deliveries` is
//!   1 + the quorum queue's `x-delivery-count` header (at least 2 when `redelivered`). An
//!   [`EntryId`] is `<consumer number>.<delivery tag>`, so an ack of an entry from an earlier
//!   consumer is refused instead of acknowledging another entry. `release` closes the
//!   consuming channel, which returns the unacknowledged entries to the queue in order, for
//!   the next holder, then deletes the hold queue; a holder's death does the same. A quorum
//!   queue delivers returned messages before newer ones, but appends a return behind
//!   earlier returns still waiting; since every holder's prefetch (1000) covers all that
//!   one consumer can have out, a new holder takes all waiting returns at once and the
//!   order holds across any sequence of takeovers.
//! - **claim**: RabbitMQ has no key-value store, so the window of `p` lives in its holder's
//!   memory (key → tag, deadline) behind a lock: atomic within the holder, and holding is
//!   exclusive across replicas. Every accepted claim is first published with confirm to the
//!   stream `P.dedupe.p<p>` (body: JSON `[[key, tag, deadline_unix_ms], ...]`). The first
//!   claim of a holding loads the window: it publishes a unique marker to the stream, then
//!   reads the stream from its first offset up to that marker, keeping unexpired claims.
//!   The stream is confirmed once written on its members (streams do not fsync each
//!   message), so a power loss of the broker host can lose the last claims (a possible
//!   duplicate delivery, never a lost one).
//! - **dead letters**: published with confirm to `P.dead`, `message_id` = a 20-digit unix
//!   nanosecond time (strictly increasing per client) and a per-process suffix, which is the
//!   [`DeadId`]. `dead` takes the whole queue with `basic.get` without acking on a channel of
//!   its own and closes it, so all go back in order (a quorum queue queues a return behind
//!   earlier returns, so giving back only a head would reorder); `remove_dead` does the same
//!   and acks the matching ones. Pages follow queue order from `after` (by id comparison when
//!   `after` is gone). Two listings at the same time can interleave their returns.
//! - **stats**: a passive declare gives a queue's ready messages; `depth` adds the entries
//!   this client holds unacknowledged or buffered (`unacked`, `Some` only while it holds the
//!   partition). Entries unacknowledged by another replica are not counted.
//! - **health**: the connection is up (rebuilt if it was lost). **close**: closes the
//!   connection (held partitions go back), later calls fail with `Closed`.
//!
//! Limits: the window of a partition is held in memory by its holder (about 150 bytes per
//! live key), and the first claim after gaining a partition re-reads every claim record of
//! the stream's 30 days (one record per `claim` call; about 3 500 records/s measured with
//! the broker on the same 2-core host), so with a large window a takeover pays seconds to
//! minutes before it delivers. Dead-letter listing walks the whole dead queue (fine for
//! thousands). RabbitMQ 3.10 writes its registry of quorum queues and streams to disk lazily:
//! a broker killed seconds after creating the queues (the first `open` of a prefix) was seen
//! to restart one of them empty; let a new deployment run a few minutes, or restart the
//! broker gracefully once, before relying on it. Errors say `amqp: ...` and never
//! carry record contents.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use crate::JournalError;
use crate::log::{DeadId, Entry, EntryId, Log, LogStats, PartitionStats};

/// Bound of one broker round trip, and of a whole append (connecting included).
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound of declaring one queue at open (a quorum queue starts a Raft cluster).
const DECLARE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the next record while loading a dedupe window (no bound on the total:
/// a large window takes long to load, but it progresses).
const LOAD_IDLE: Duration = Duration::from_secs(15);
/// AMQP heartbeat, seconds (unless the URL sets `heartbeat`): a dead peer is noticed after
/// about two of them.
const HEARTBEAT_SECS: u16 = 5;
/// Confirm-mode channels appends are spread over.
const PUBLISH_CHANNELS: usize = 4;
/// Unacknowledged deliveries a holder takes ahead of `read` (`basic.qos`).
const PREFETCH: u16 = 1000;
/// Prefetch of a dedupe window load (stream consumers need credit, given back by acks).
const LOAD_PREFETCH: u16 = 10_000;
/// Retention of the dedupe streams (`x-max-age`): longer than any dedupe window.
const DEDUPE_MAX_AGE: &str = "30D";
/// Segment size of the dedupe streams: age-based retention drops whole segments only.
const DEDUPE_SEGMENT_BYTES: i64 = 16 * 1024 * 1024;
/// `message_id` of dedupe stream records holding claims, and of load markers.
const CLAIM: &str = "claim";
const MARKER: &str = "marker";
/// AMQP reply code of an exclusive queue owned by another connection.
const RESOURCE_LOCKED: u16 = 405;

fn lock<T>(m: &StdMutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unavailable(what: impl Display, e: impl Display) -> JournalError {
    JournalError::Unavailable(format!("amqp: {what}: {e}"))
}

/// `f` bounded by `d`, its errors and a timeout mapped to `Unavailable("amqp: <what>: ...")`.
async fn timed<T>(
    what: impl Display,
    d: Duration,
    f: impl Future<Output = lapin::Result<T>>,
) -> Result<T, JournalError> {
    match tokio::time::timeout(d, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(what, e)),
        Err(_) => Err(unavailable(what, format!("no answer within {d:?}"))),
    }
}

/// The AMQP reply code of a channel or connection error sent by the broker.
fn reply_code(e: &lapin::Error) -> Option<u16> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => Some(p.get_id()),
        _ => None,
    }
}

fn now_ms() -> u64 {
    crate::log::unix_ms(SystemTime::now())
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn short(s: &str) -> ShortString {
    // AMQP short strings hold 255 bytes at most.
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::from(&s[..end])
}

fn persistent(message_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(short(message_id))
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(short(k), v.clone());
    }
    t
}

fn as_u64(v: &AMQPValue) -> Option<u64> {
    match v {
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::Timestamp(n) => Some(*n),
        _ => None,
    }
}

/// 1 + the quorum queue's `x-delivery-count`; at least 2 when the broker says `redelivered`.
fn deliveries_of(d: &Delivery) -> u32 {
    let count = d
        .properties
        .headers()
        .as_ref()
        .and_then(|h| {
            h.inner()
                .iter()
                .find(|(k, _)| k.as_str() == "x-delivery-count")
                .and_then(|(_, v)| as_u64(v))
        })
        .unwrap_or(0);
    let n = u32::try_from(count.saturating_add(1)).unwrap_or(u32::MAX);
    if d.redelivered { n.max(2) } else { n }
}

/// Queue names of one log (see the module docs).
#[derive(Debug, Clone)]
struct Names {
    prefix: String,
}

impl Names {
    fn part(&self, p: u32) -> String {
        format!("{}.p{p}", self.prefix)
    }
    fn hold(&self, p: u32) -> String {
        format!("{}.hold.p{p}", self.prefix)
    }
    fn dedupe(&self, p: u32) -> String {
        format!("{}.dedupe.p{p}", self.prefix)
    }
    fn dead(&self) -> String {
        format!("{}.dead", self.prefix)
    }
}

/// One connection and its publishing channels. Replaced as a whole when the connection is
/// lost; what was held over it is then lost too.
struct Session {
    conn: Connection,
    publishers: Vec<StdMutex<Channel>>,
    next: AtomicUsize,
}

async fn confirm_channel(conn: &Connection) -> Result<Channel, JournalError> {
    let ch = timed("open channel", OP_TIMEOUT, conn.create_channel()).await?;
    timed(
        "confirm.select",
        OP_TIMEOUT,
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?;
    Ok(ch)
}

impl Session {
    fn alive(&self) -> bool {
        self.conn.status().connected()
    }

    /// A fresh channel (for operations whose errors close their channel).
    async fn channel(&self) -> Result<Channel, JournalError> {
        timed("open channel", OP_TIMEOUT, self.conn.create_channel()).await
    }

    /// The next publishing channel, reopened if the broker closed it.
    async fn publisher(&self) -> Result<Channel, JournalError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.publishers.len();
        let ch = lock(&self.publishers[i]).clone();
        if ch.status().connected() {
            return Ok(ch);
        }
        let ch = confirm_channel(&self.conn).await?;
        *lock(&self.publishers[i]) = ch.clone();
        Ok(ch)
    }

    /// Publishes `body` to `queue` through the default exchange and waits for the confirm.
    async fn publish(
        &self,
        queue: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<(), JournalError> {
        let ch = self.publisher().await?;
        let what = format!("publish to {queue}");
        let confirm = ch
            .basic_publish(
                short(""),
                short(queue),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                body,
                props,
            )
            .await
            .map_err(|e| unavailable(&what, e))?;
        match confirm.await.map_err(|e| unavailable(&what, e))? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(unavailable(
                what,
                "returned unroutable (no such queue, or it is not running)",
            )),
            Confirmation::Nack(_) => Err(unavailable(what, "the broker refused it (nack)")),
            Confirmation::NotRequested => Err(unavailable(what, "channel not in confirm mode")),
        }
    }
}

/// The holding of a partition by this client.
struct Held {
    owner: String,
    session: Arc<Session>,
    /// Unique per holding: a dedupe window is valid for the holding that loaded it.
    id: u64,
}

/// A running consumer of a held partition.
struct Consuming {
    /// Unique per consumer: the first part of its entries' ids.
    id: u64,
    channel: Channel,
    rx: Mutex<mpsc::UnboundedReceiver<Delivery>>,
    /// Deliveries in the buffer, not yet returned by `read`.
    buffered: Arc<AtomicU64>,
    /// Returned by `read`, not yet acknowledged: delivery tag → acker.
    outstanding: StdMutex<HashMap<u64, Acker>>,
    /// Why the consumer ended, once it did.
    ended: Arc<StdMutex<Option<String>>>,
    pump: JoinHandle<()>,
}

impl Consuming {
    fn in_flight(&self) -> u64 {
        self.buffered.load(Ordering::Relaxed) + lock(&self.outstanding).len() as u64
    }

    /// Stops consuming; closing the channel returns the unacknowledged entries to the queue.
    async fn stop(&self) {
        self.pump.abort();
        if self.channel.status().connected() {
            let _ =
                tokio::time::timeout(OP_TIMEOUT, self.channel.close(200, short("released"))).await;
        }
    }
}

impl Drop for Consuming {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

/// The dedupe window of a partition, valid for the holding that loaded it.
struct Window {
    holding: u64,
    /// key → (tag, deadline unix ms).
    keys: HashMap<String, (String, u64)>,
    writes: u64,
}

#[derive(Default)]
struct Part {
    held: Mutex<Option<Held>>,
    consuming: StdMutex<Option<Arc<Consuming>>>,
    window: Mutex<Option<Window>>,
}

/// A partitioned log on RabbitMQ (see the module docs). One AMQP connection per client,
/// rebuilt on demand; dropping the client closes it, which ends its holdings at once.
pub struct Amqp {
    uri: AMQPUri,
    names: Names,
    partitions: u32,
    session: Mutex<Option<Arc<Session>>>,
    parts: Vec<Part>,
    closed: AtomicBool,
    next_id: AtomicU64,
    /// Last dead-letter time used, unix ns (ids strictly increase within this client).
    last_dead: StdMutex<u128>,
    /// Suffix of this client's dead-letter ids (unique across concurrent replicas).
    dead_suffix: String,
}

impl Amqp {
    /// Connects to `url` (`amqp://user:password@host:port/vhost`, query parameters such as
    /// `heartbeat` and `connection_timeout` as RabbitMQ's URI spec; heartbeat 5 s and a 5 s
    /// connect timeout unless set) and declares the queues of `partitions` partitions under
    /// `prefix` (existing ones are kept).
    ///
    /// # Errors
    /// `Unavailable` naming `journal.url` for a bad or `amqps://` URL or an unreachable
    /// broker, `journal.prefix` for a bad prefix, and the queue for a declaration the broker
    /// refused (e.g. an existing queue of another type).
    pub async fn open(url: &str, prefix: &str, partitions: u32) -> Result<Amqp, JournalError> {
        let mut uri: AMQPUri = url.parse().map_err(|e| {
            JournalError::Unavailable(format!("journal.url is not an AMQP URL: {e}"))
        })?;
        if uri.scheme == AMQPScheme::AMQPS {
            return Err(JournalError::Unavailable(
                "journal.url: amqps:// (TLS) is not built into this binary; use amqp:// on a \
                 trusted network or a TLS-terminating proxy"
                    .into(),
            ));
        }
        if prefix.is_empty() || prefix.len() > 200 {
            return Err(JournalError::Unavailable(
                "journal.prefix must be 1 to 200 bytes for the amqp backend".into(),
            ));
        }
        uri.query.heartbeat.get_or_insert(HEARTBEAT_SECS);
        uri.query.connection_timeout.get_or_insert(5000);
        let (host, port) = (uri.authority.host.clone(), uri.authority.port);
        let pid = std::process::id();
        let log = Amqp {
            uri,
            names: Names {
                prefix: prefix.to_string(),
            },
            partitions,
            session: Mutex::new(None),
            parts: (0..partitions).map(|_| Part::default()).collect(),
            closed: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            last_dead: StdMutex::new(0),
            dead_suffix: format!("{:08x}", (now_nanos() as u32) ^ pid.rotate_left(16)),
        };
        let s = log.session().await.map_err(|e| {
            JournalError::Unavailable(format!(
                "journal.url: cannot reach the AMQP broker at {host}:{port}: {e}"
            ))
        })?;
        if partitions > 0 {
            check_partitions(&s.conn, &log.names, partitions).await?;
        }
        declare_queues(&s.conn, &log.names, partitions).await?;
        Ok(log)
    }

    /// Deletes every queue of the log under `prefix` with `partitions` partitions, with all
    /// its records, claims and dead letters (tests, and dropping a journal for good).
    ///
    /// # Errors
    /// `Unavailable` when the broker cannot be reached or refuses.
    pub async fn destroy(url: &str, prefix: &str, partitions: u32) -> Result<(), JournalError> {
        let log = Amqp::open(url, prefix, 0).await?;
        let s = log.session().await?;
        let ch = s.channel().await?;
        let n = &log.names;
        let mut queues = vec![n.dead()];
        for p in 0..partitions {
            queues.extend([n.part(p), n.dedupe(p), n.hold(p)]);
        }
        for q in queues {
            timed(
                format!("delete {q}"),
                OP_TIMEOUT,
                ch.queue_delete(short(&q), QueueDeleteOptions::default()),
            )
            .await?;
        }
        log.close().await
    }

    fn check_open(&self) -> Result<(), JournalError> {
        if self.closed.load(Ordering::Acquire) {
            Err(JournalError::Closed)
        } else {
            Ok(())
        }
    }

    fn part(&self, p: u32) -> Result<&Part, JournalError> {
        self.parts.get(p as usize).ok_or_else(|| {
            JournalError::Unavailable(format!(
                "amqp: partition {p} out of range (journal.partitions = {})",
                self.partitions
            ))
        })
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The live session, connecting anew when there is none or it was lost.
    async fn session(&self) -> Result<Arc<Session>, JournalError> {
        self.check_open()?;
        let mut g = self.session.lock().await;
        if let Some(s) = g.as_ref().filter(|s| s.alive()) {
            return Ok(Arc::clone(s));
        }
        if g.take().is_some() {
            tracing::warn!(prefix = %self.names.prefix, "amqp: connection lost, reconnecting");
        }
        let props = ConnectionProperties::default()
            .with_connection_name(format!("wagate journal {}", self.names.prefix).into());
        let conn = timed(
            "connect",
            OP_TIMEOUT + Duration::from_secs(1),
            Connection::connect_uri(self.uri.clone(), props),
        )
        .await?;
        let mut publishers = Vec::with_capacity(PUBLISH_CHANNELS);
        for _ in 0..PUBLISH_CHANNELS {
            publishers.push(StdMutex::new(confirm_channel(&conn).await?));
        }
        let s = Arc::new(Session {
            conn,
            publishers,
            next: AtomicUsize::new(0),
        });
        *g = Some(Arc::clone(&s));
        Ok(s)
    }

    /// Declares the hold queue of `p` on `s`'s connection: `true` when this connection owns
    /// it (now or already), `false` when another connection does.
    async fn declare_hold(&self, s: &Session, p: u32) -> Result<bool, JournalError> {
        // A refused declaration closes its channel: use one for this alone.
        let ch = s.channel().await?;
        let q = self.names.hold(p);
        let args = table(&[("x-queue-type", AMQPValue::LongString("classic".into()))]);
        let opts = QueueDeclareOptions {
            exclusive: true,
            ..QueueDeclareOptions::default()
        };
        match tokio::time::timeout(OP_TIMEOUT, ch.queue_declare(short(&q), opts, args)).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) if reply_code(&e) == Some(RESOURCE_LOCKED) => Ok(false),
            Ok(Err(e)) => Err(unavailable(format!("declare {q}"), e)),
            Err(_) => Err(unavailable(format!("declare {q}"), "no answer within 5s")),
        }
    }

    /// Drops what this client had of `p`'s holding (consumer, window).
    async fn forget(&self, part: &Part, held: &mut Option<Held>) {
        *held = None;
        let c = lock(&part.consuming).take();
        if let Some(c) = c {
            c.stop().await;
        }
        *part.window.lock().await = None;
    }

    async fn start_consuming(&self, s: &Session, p: u32) -> Result<Consuming, JournalError> {
        let q = self.names.part(p);
        let ch = s.channel().await?;
        timed(
            "basic.qos",
            OP_TIMEOUT,
            ch.basic_qos(PREFETCH, BasicQosOptions::default()),
        )
        .await?;
        let mut consumer = timed(
            format!("consume {q}"),
            OP_TIMEOUT,
            ch.basic_consume(
                short(&q),
                short(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let buffered = Arc::new(AtomicU64::new(0));
        let ended = Arc::new(StdMutex::new(None));
        let pump = tokio::spawn({
            let buffered = Arc::clone(&buffered);
            let ended = Arc::clone(&ended);
            async move {
                // One task moves deliveries in order into the buffer `read` drains, so
                // `stats` can count what was delivered but not read yet.
                let why = loop {
                    match consumer.next().await {
                        Some(Ok(d)) => {
                            buffered.fetch_add(1, Ordering::Relaxed);
                            if tx.send(d).is_err() {
                                break "buffer dropped".to_string();
                            }
                        }
                        Some(Err(e)) => break e.to_string(),
                        None => break "cancelled by the broker".to_string(),
                    }
                };
                *lock(&ended) = Some(why);
            }
        });
        Ok(Consuming {
            id: self.id(),
            channel: ch,
            rx: Mutex::new(rx),
            buffered,
            outstanding: StdMutex::new(HashMap::new()),
            ended,
            pump,
        })
    }

    /// Reads the dedupe stream of `p` up to a marker published now.
    async fn load_window(&self, s: &Session, p: u32, holding: u64) -> Result<Window, JournalError> {
        let stream = self.names.dedupe(p);
        let marker = format!(
            "{}-{}-{}",
            self.dead_suffix,
            now_nanos(),
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        tokio::time::timeout(
            OP_TIMEOUT,
            s.publish(
                &stream,
                b"",
                persistent(MARKER).with_correlation_id(short(&marker)),
            ),
        )
        .await
        .map_err(|_| unavailable(format!("publish to {stream}"), "no confirm within 5s"))??;
        let ch = s.channel().await?;
        timed(
            "basic.qos",
            OP_TIMEOUT,
            ch.basic_qos(LOAD_PREFETCH, BasicQosOptions::default()),
        )
        .await?;
        let args = table(&[("x-stream-offset", AMQPValue::LongString("first".into()))]);
        let mut consumer = timed(
            format!("consume {stream}"),
            OP_TIMEOUT,
            ch.basic_consume(
                short(&stream),
                short(""),
                BasicConsumeOptions::default(),
                args,
            ),
        )
        .await?;
        let now = now_ms();
        let mut keys: HashMap<String, (String, u64)> = HashMap::new();
        let mut read = 0u64;
        let what = format!("load the dedupe window from {stream}");
        loop {
            let d = match tokio::time::timeout(LOAD_IDLE, consumer.next()).await {
                Ok(Some(Ok(d))) => d,
                Ok(Some(Err(e))) => return Err(unavailable(&what, e)),
                Ok(None) => return Err(unavailable(&what, "consumer cancelled")),
                Err(_) => return Err(unavailable(&what, "stalled before the marker")),
            };
            read += 1;
            let id = d.properties.message_id().as_ref().map(ShortString::as_str);
            if id == Some(MARKER)
                && d.properties
                    .correlation_id()
                    .as_ref()
                    .map(ShortString::as_str)
                    == Some(marker.as_str())
            {
                break;
            }
            if id == Some(CLAIM) {
                let claims: Vec<(String, String, u64)> = serde_json::from_slice(&d.data)
                    .map_err(|e| JournalError::Corrupt(format!("{stream}: claim record: {e}")))?;
                for (k, t, dl) in claims {
                    if dl > now {
                        keys.insert(k, (t, dl));
                    }
                }
            }
            // A stream consumer gets credit back through acks.
            if read.is_multiple_of(u64::from(LOAD_PREFETCH / 4)) {
                let _ = d.acker.ack(BasicAckOptions { multiple: true }).await;
            }
        }
        drop(consumer);
        let _ = tokio::time::timeout(OP_TIMEOUT, ch.close(200, short("loaded"))).await;
        tracing::debug!(
            partition = p,
            records = read,
            keys = keys.len(),
            "amqp: dedupe window loaded"
        );
        Ok(Window {
            holding,
            keys,
            writes: 0,
        })
    }

    /// Takes the whole dead-letter queue with `basic.get` on a channel of its own, calling
    /// `visit(id, message)` for each in order (`true`: acknowledge it, i.e. delete it). The
    /// rest go back when the channel closes. All of them, because a quorum queue puts
    /// returned messages behind those returned earlier: returning only a head would move
    /// it behind the tail. Waits (up to 2 s) until the broker counts them ready again, so
    /// the next listing or `stats` sees them in place. Returns how many were acknowledged.
    async fn scan_dead(
        &self,
        s: &Session,
        mut visit: impl FnMut(&str, &lapin::message::BasicGetMessage) -> bool + Send,
    ) -> Result<u64, JournalError> {
        let q = self.names.dead();
        let ch = s.channel().await?;
        let (mut taken, mut acked, mut left) = (0u64, 0u64, 0u64);
        loop {
            let got = timed(
                format!("basic.get {q}"),
                OP_TIMEOUT,
                ch.basic_get(short(&q), BasicGetOptions::default()),
            )
            .await?;
            let Some(m) = got else { break };
            taken += 1;
            left = u64::from(m.message_count);
            let id = m
                .delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            if visit(&id, &m) {
                timed(
                    "ack",
                    OP_TIMEOUT,
                    m.delivery.acker.ack(BasicAckOptions::default()),
                )
                .await?;
                acked += 1;
            }
            if left == 0 {
                break;
            }
        }
        timed("close channel", OP_TIMEOUT, ch.close(200, short("scanned"))).await?;
        // The queue takes them back asynchronously after the channel is gone.
        let want = left + taken - acked;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while taken > acked && tokio::time::Instant::now() < deadline {
            if self.ready(s, &q).await? >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(acked)
    }

    /// Ready messages of `q` (passive declare on a channel of its own).
    async fn ready(&self, s: &Session, q: &str) -> Result<u64, JournalError> {
        let ch = s.channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let n = timed(
            format!("passive declare {q}"),
            OP_TIMEOUT,
            ch.queue_declare(short(q), passive, FieldTable::default()),
        )
        .await
        .map(|q| u64::from(q.message_count()))?;
        let _ = tokio::time::timeout(OP_TIMEOUT, ch.close(200, short("counted"))).await;
        Ok(n)
    }

    /// A dead-letter id: 20-digit unix ns, strictly increasing within this client, then this
    /// client's suffix.
    fn dead_id(&self) -> String {
        let mut last = lock(&self.last_dead);
        let t = now_nanos().max(*last + 1);
        *last = t;
        format!("{t:020}.{}", self.dead_suffix)
    }
}

/// Declares the queues of a log (idempotent; see the module docs), spread over a few
/// channels since quorum queue and stream declarations take a while each.
/// Whether queue `q` exists (a passive declare on a throwaway channel: `NOT_FOUND` closes it).
async fn queue_exists(conn: &Connection, q: &str) -> Result<bool, JournalError> {
    let ch = timed("open channel", OP_TIMEOUT, conn.create_channel()).await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    match tokio::time::timeout(
        OP_TIMEOUT,
        ch.queue_declare(short(q), passive, FieldTable::default()),
    )
    .await
    {
        Ok(Ok(_)) => {
            let _ = ch.close(200, short("checked")).await;
            Ok(true)
        }
        Ok(Err(e)) if reply_code(&e) == Some(404) => Ok(false),
        Ok(Err(e)) => Err(unavailable(format!("declare {q}"), e)),
        Err(_) => Err(unavailable(format!("declare {q}"), "no answer")),
    }
}

/// The partition count is the number of partition queues: an existing journal must have
/// exactly `partitions` of them (replicas that disagree would route conversations to queues
/// nobody reads).
async fn check_partitions(
    conn: &Connection,
    names: &Names,
    partitions: u32,
) -> Result<(), JournalError> {
    if !queue_exists(conn, &names.part(0)).await? {
        return Ok(());
    }
    let stored = if queue_exists(conn, &names.part(partitions)).await? {
        // More than configured: find how many, for the message.
        let mut n = partitions + 1;
        while n < 1024 && queue_exists(conn, &names.part(n)).await? {
            n += 1;
        }
        Some(n)
    } else if !queue_exists(conn, &names.part(partitions - 1)).await? {
        let mut n = partitions - 1;
        while n > 1 && !queue_exists(conn, &names.part(n - 1)).await? {
            n -= 1;
        }
        Some(n)
    } else {
        None
    };
    crate::log::same_partitions(stored, partitions, &names.prefix)
}

async fn declare_queues(
    conn: &Connection,
    names: &Names,
    partitions: u32,
) -> Result<(), JournalError> {
    let quorum = |sac: bool| {
        let mut t = table(&[("x-queue-type", AMQPValue::LongString("quorum".into()))]);
        if sac {
            t.insert(short("x-single-active-consumer"), AMQPValue::Boolean(true));
        }
        t
    };
    let stream = table(&[
        ("x-queue-type", AMQPValue::LongString("stream".into())),
        ("x-max-age", AMQPValue::LongString(DEDUPE_MAX_AGE.into())),
        (
            "x-stream-max-segment-size-bytes",
            AMQPValue::LongLongInt(DEDUPE_SEGMENT_BYTES),
        ),
    ]);
    let mut all = vec![(names.dead(), quorum(false))];
    for p in 0..partitions {
        all.push((names.part(p), quorum(true)));
        all.push((names.dedupe(p), stream.clone()));
    }
    let lanes = all.len().clamp(1, 8);
    let mut work: Vec<Vec<(String, FieldTable)>> = vec![Vec::new(); lanes];
    for (i, q) in all.into_iter().enumerate() {
        work[i % lanes].push(q);
    }
    let tasks = work.into_iter().map(|queues| async move {
        let ch = timed("open channel", OP_TIMEOUT, conn.create_channel()).await?;
        for (q, args) in queues {
            timed(
                format!("declare {q}"),
                DECLARE_TIMEOUT,
                ch.queue_declare(short(&q), QueueDeclareOptions::durable(), args),
            )
            .await?;
        }
        let _ = ch.close(200, short("declared")).await;
        Ok::<(), JournalError>(())
    });
    for r in futures_util::future::join_all(tasks).await {
        r?;
    }
    Ok(())
}

fn parse_entry_id(id: &str) -> Option<(u64, u64)> {
    let (c, t) = id.split_once('.')?;
    Some((c.parse().ok()?, t.parse().ok()?))
}

#[async_trait::async_trait]
impl Log for Amqp {
    fn partitions(&self) -> u32 {
        self.partitions
    }

    async fn append(&self, p: u32, msg_id: &str, record: Bytes) -> Result<(), JournalError> {
        self.check_open()?;
        self.part(p)?;
        let q = self.names.part(p);
        let publish = async {
            let s = self.session().await?;
            s.publish(&q, &record, persistent(msg_id)).await
        };
        match tokio::time::timeout(OP_TIMEOUT, publish).await {
            Ok(r) => r,
            Err(_) => Err(unavailable(
                format!("append to {q}"),
                "no publisher confirm within 5s",
            )),
        }
    }

    async fn hold(&self, p: u32, owner: &str, _ttl: Duration) -> Result<bool, JournalError> {
        self.check_open()?;
        let part = self.part(p)?;
        let mut held = part.held.lock().await;
        if let Some(h) = held.as_ref() {
            if h.session.alive() {
                if h.owner != owner {
                    return Ok(false);
                }
                let s = Arc::clone(&h.session);
                if self.declare_hold(&s, p).await? {
                    return Ok(true);
                }
            }
            // The connection that held it ended (or the queue went): the holding is over.
            self.forget(part, &mut held).await;
        }
        let s = self.session().await?;
        if !self.declare_hold(&s, p).await? {
            return Ok(false);
        }
        *held = Some(Held {
            owner: owner.to_string(),
            session: s,
            id: self.id(),
        });
        Ok(true)
    }

    async fn release(&self, p: u32, owner: &str) -> Result<(), JournalError> {
        let part = self.part(p)?;
        let mut held = part.held.lock().await;
        let Some(session) = held
            .as_ref()
            .filter(|h| h.owner == owner)
            .map(|h| Arc::clone(&h.session))
        else {
            return Ok(());
        };
        // Consumer first: its unacknowledged entries are back in the queue before another
        // client can take the partition.
        self.forget(part, &mut held).await;
        if session.alive() {
            let ch = session.channel().await?;
            let q = self.names.hold(p);
            timed(
                format!("delete {q}"),
                OP_TIMEOUT,
                ch.queue_delete(short(&q), QueueDeleteOptions::default()),
            )
            .await?;
        }
        Ok(())
    }

    async fn read(
        &self,
        p: u32,
        owner: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Entry>, JournalError> {
        self.check_open()?;
        let part = self.part(p)?;
        let c = {
            let held = part.held.lock().await;
            let Some(h) = held.as_ref().filter(|h| h.owner == owner) else {
                return Err(JournalError::Unavailable(format!(
                    "amqp: partition {p} is not held by {owner}"
                )));
            };
            if !h.session.alive() {
                return Err(JournalError::Unavailable(format!(
                    "amqp: the connection that held partition {p} ended; hold it again"
                )));
            }
            let current = lock(&part.consuming).clone();
            match current {
                Some(c) if lock(&c.ended).is_none() => c,
                old => {
                    if let Some(old) = old {
                        // Its unacknowledged entries go back to the queue, in order.
                        old.stop().await;
                    }
                    let c = Arc::new(self.start_consuming(&h.session, p).await?);
                    *lock(&part.consuming) = Some(Arc::clone(&c));
                    c
                }
            }
        };
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let mut rx = c.rx.lock().await;
        let first = match tokio::time::timeout(wait, rx.recv()).await {
            Err(_) => return Ok(out),
            Ok(None) => {
                let why = lock(&c.ended).clone().unwrap_or_default();
                return Err(unavailable(format!("consumer of partition {p}"), why));
            }
            Ok(Some(d)) => d,
        };
        let mut next = Some(first);
        while let Some(d) = next.take() {
            c.buffered.fetch_sub(1, Ordering::Relaxed);
            let deliveries = deliveries_of(&d);
            let tag = d.delivery_tag;
            lock(&c.outstanding).insert(tag, d.acker);
            out.push(Entry {
                id: format!("{}.{tag}", c.id),
                record: Bytes::from(d.data),
                deliveries,
            });
            if out.len() < max {
                next = rx.try_recv().ok();
            }
        }
        Ok(out)
    }

    async fn ack(&self, p: u32, _owner: &str, id: &EntryId) -> Result<(), JournalError> {
        self.check_open()?;
        let part = self.part(p)?;
        let Some((cid, tag)) = parse_entry_id(id) else {
            return Err(JournalError::Unavailable(format!(
                "amqp: {id:?} is not an entry id of this backend"
            )));
        };
        let c = lock(&part.consuming).clone().filter(|c| c.id == cid);
        let Some(c) = c else {
            return Err(JournalError::Unavailable(format!(
                "amqp: entry {id} of partition {p} belongs to an ended consumer; it will be \
                 delivered again"
            )));
        };
        let acker = lock(&c.outstanding).remove(&tag);
        let Some(acker) = acker else {
            return Ok(()); // acknowledged already
        };
        if timed("ack", OP_TIMEOUT, acker.ack(BasicAckOptions::default())).await? {
            Ok(())
        } else {
            Err(JournalError::Unavailable(format!(
                "amqp: the channel of partition {p} closed before the ack of {id}; it will be \
                 delivered again"
            )))
        }
    }

    async fn claim(
        &self,
        p: u32,
        keys: &[String],
        tag: &str,
        ttl: Duration,
    ) -> Result<Vec<bool>, JournalError> {
        self.check_open()?;
        let part = self.part(p)?;
        let (session, holding) = {
            let held = part.held.lock().await;
            match held.as_ref().filter(|h| h.session.alive()) {
                Some(h) => (Arc::clone(&h.session), h.id),
                None => {
                    return Err(JournalError::Unavailable(format!(
                        "amqp: claim on partition {p}, which this client does not hold"
                    )));
                }
            }
        };
        let mut guard = part.window.lock().await;
        if guard.as_ref().is_none_or(|w| w.holding != holding) {
            *guard = None;
            *guard = Some(self.load_window(&session, p, holding).await?);
        }
        let Some(w) = guard.as_mut() else {
            return Err(JournalError::Unavailable("amqp: no dedupe window".into()));
        };
        let now = now_ms();
        let deadline = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let mut out = Vec::with_capacity(keys.len());
        let mut new: Vec<&String> = Vec::new();
        for k in keys {
            match w.keys.get(k) {
                Some((t, dl)) if *dl > now => out.push(t == tag),
                _ => {
                    if !new.contains(&k) {
                        new.push(k);
                    }
                    out.push(true);
                }
            }
        }
        if !new.is_empty() {
            let records: Vec<(&String, &str, u64)> =
                new.iter().map(|k| (*k, tag, deadline)).collect();
            let body = serde_json::to_vec(&records).unwrap_or_default();
            let stream = self.names.dedupe(p);
            tokio::time::timeout(
                OP_TIMEOUT,
                session.publish(&stream, &body, persistent(CLAIM)),
            )
            .await
            .map_err(|_| unavailable(format!("publish to {stream}"), "no confirm within 5s"))??;
            for k in new {
                w.keys.insert(k.clone(), (tag.to_string(), deadline));
            }
            w.writes += 1;
            if w.writes.is_multiple_of(1024) {
                w.keys.retain(|_, (_, dl)| *dl > now);
            }
        }
        Ok(out)
    }

    async fn bury(&self, record: Bytes) -> Result<(), JournalError> {
        self.check_open()?;
        let q = self.names.dead();
        let publish = async {
            let s = self.session().await?;
            s.publish(&q, &record, persistent(&self.dead_id())).await
        };
        match tokio::time::timeout(OP_TIMEOUT, publish).await {
            Ok(r) => r,
            Err(_) => Err(unavailable(
                format!("bury to {q}"),
                "no publisher confirm within 5s",
            )),
        }
    }

    async fn dead(
        &self,
        after: Option<DeadId>,
        limit: usize,
    ) -> Result<Vec<(DeadId, Bytes)>, JournalError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let s = self.session().await?;
        // Listing returns every message to the queue, and RabbitMQ may requeue them in another
        // order, so the queue order is not the bury order: the ids are (zero-padded time,
        // increasing per client), so sort by them.
        let mut all = Vec::new();
        self.scan_dead(&s, |id, m| {
            if after.as_deref().is_none_or(|a| id > a) {
                all.push((id.to_string(), Bytes::from(m.delivery.data.clone())));
            }
            false
        })
        .await?;
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.truncate(limit);
        Ok(all)
    }

    async fn remove_dead(&self, ids: &[DeadId]) -> Result<u64, JournalError> {
        let s = self.session().await?;
        let mut want: HashSet<&str> = ids.iter().map(String::as_str).collect();
        if want.is_empty() {
            return Ok(0);
        }
        self.scan_dead(&s, |id, _| want.remove(id)).await
    }

    async fn stats(&self) -> Result<LogStats, JournalError> {
        let s = self.session().await?;
        let ch = s.channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let ready = |q: String| {
            let ch = ch.clone();
            async move {
                timed(
                    format!("passive declare {q}"),
                    OP_TIMEOUT,
                    ch.queue_declare(short(&q), passive, FieldTable::default()),
                )
                .await
                .map(|q| u64::from(q.message_count()))
            }
        };
        let mut partitions = Vec::with_capacity(self.parts.len());
        for (p, part) in (0u32..).zip(&self.parts) {
            let ready = ready(self.names.part(p)).await?;
            let held_here = part
                .held
                .lock()
                .await
                .as_ref()
                .is_some_and(|h| h.session.alive());
            let mine = held_here
                .then(|| lock(&part.consuming).as_ref().map(|c| c.in_flight()))
                .map(Option::unwrap_or_default);
            partitions.push(PartitionStats {
                partition: p,
                depth: ready + mine.unwrap_or(0),
                unacked: mine,
            });
        }
        let dead = ready(self.names.dead()).await?;
        let _ = tokio::time::timeout(OP_TIMEOUT, ch.close(200, short("stats"))).await;
        Ok(LogStats { partitions, dead })
    }

    async fn health(&self) -> Result<Option<String>, JournalError> {
        self.session().await.map(|_| None)
    }

    async fn close(&self) -> Result<(), JournalError> {
        self.closed.store(true, Ordering::Release);
        for part in &self.parts {
            let c = lock(&part.consuming).take();
            drop(c);
        }
        let s = self.session.lock().await.take();
        if let Some(s) = s.filter(|s| s.alive()) {
            // Held partitions and their unacknowledged entries go back to the broker.
            timed("close", OP_TIMEOUT, s.conn.close(200, short("closed"))).await?;
        }
        Ok(())
    }
}

impl Drop for Amqp {
    fn drop(&mut self) {
        // Like a process that died: the broker ends the holdings and takes the
        // unacknowledged entries back, now rather than after the heartbeat timeout.
        self.closed.store(true, Ordering::Release);
        for part in &mut self.parts {
            drop(
                part.consuming
                    .get_mut()
                    .unwrap_or_else(|e| e.into_inner())
                    .take(),
            );
            part.held.get_mut().take();
        }
        if let Some(s) = self.session.get_mut().take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                if s.alive() {
                    let _ =
                        tokio::time::timeout(OP_TIMEOUT, s.conn.close(200, short("dropped"))).await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_round_trip_and_reject_garbage() {
        assert_eq!(parse_entry_id("7.42"), Some((7, 42)));
        assert_eq!(parse_entry_id("0-1"), None);
        assert_eq!(parse_entry_id("x.1"), None);
    }

    #[test]
    fn short_strings_are_cut_at_a_char_boundary() {
        let long = "é".repeat(200);
        assert!(short(&long).as_str().len() <= 255);
        assert_eq!(short("m1").as_str(), "m1");
    }

    #[tokio::test]
    async fn bad_urls_name_journal_url() {
        for url in [
            "not a url",
            "http://127.0.0.1:5672",
            "amqps://127.0.0.1:5671/%2f",
        ] {
            match Amqp::open(url, "x", 1).await {
                Err(JournalError::Unavailable(m)) => assert!(m.contains("journal.url"), "{m}"),
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("opened {url}"),
            }
        }
        // Nothing listens on port 1.
        match Amqp::open("amqp://guest:guest@127.0.0.1:1/%2f", "x", 1).await {
            Err(JournalError::Unavailable(m)) => assert!(m.contains("journal.url"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened"),
        }
    }

    #[test]
    fn dead_ids_increase() {
        let a = AMQPUri::default();
        let log = Amqp {
            uri: a,
            names: Names { prefix: "x".into() },
            partitions: 0,
            session: Mutex::new(None),
            parts: Vec::new(),
            closed: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            last_dead: StdMutex::new(0),
            dead_suffix: "00000001".into(),
        };
        let ids: Vec<String> = (0..100).map(|_| log.dead_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ids[0].len(), 29);
    }
}
