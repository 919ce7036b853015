//! The NATS JetStream backend of the partitioned log (`journal.backend = "nats"`, cargo feature
//! `nats`, nats-server ≥ 2.9 with JetStream on). Only 2.9 APIs are used: one filter subject per
//! consumer, no per-message TTL, no consumer create actions.
//!
//! Names, all under `journal.prefix` (`P`, default `wagate`; letters, digits, `_` and `-` only,
//! as JetStream stream names cannot hold `.`, `*`, `>` or spaces):
//!
//! | name | kind | content |
//! |---|---|---|
//! | `P_LOG` | stream, subjects `P.p.*`, file storage, work-queue retention, duplicate window 2 min | partition `p` is subject `P.p.<p>`; an acknowledged entry is removed |
//! | `p<p>` on `P_LOG` | durable pull consumer, filter `P.p.<p>`, explicit ack, ack wait 10 min, max ack pending 20 000 | the reader of partition `p` |
//! | `P_holds` | KV bucket | key `p<p>` → `owner deadline_unix_ms` |
//! | `P_dedupe` | KV bucket, history 1, max age 30 days | key hex(SHA-256(dedupe key)) → `tag deadline_unix_ms` |
//! | `P_DEAD` | stream, subject `P.dead`, file storage, limits retention | one message per dead letter |
//!
//! **Append** publishes the record to `P.p.<p>` with header `Nats-Msg-Id: <msg_id>` and returns
//! after the JetStream publish ack (an ack marked `duplicate` is a success too: the record is
//! stored). A record larger than the server's `max_payload` is refused with an error naming both
//! sizes; `health` warns when `max_payload` is below 4 MiB, as Meta sends bodies up to 3 MB. An
//! append gives up after 5 s (`Unavailable`), so it never hangs while the server is away; the
//! client reconnects by itself and later appends work again without reopening.
//!
//! **Durability**: a publish ack means the server wrote the message to its file store. NATS
//! fsyncs in the background (every 2 min by default; `sync_interval`, settable from 2.10 on),
//! so an acknowledged record survives a crash or `kill -9` of nats-server (it is in the page
//! cache) but not necessarily a power loss or kernel crash of a single server; a replicated
//! stream (R3 in a cluster) covers that.
//!
//! **Holding** uses compare-and-set on `P_holds`: `hold` creates the key when absent (or
//! deleted), or updates it at its last revision when the owner is the same or its deadline
//! has passed; `release` deletes it at its revision when the owner matches. Only the deadline
//! decides expiry, so clocks of replicas must agree within a fraction of `journal.hold_ttl`.
//! `read` does not check the hold again: the dispatcher stops reading a partition whose
//! renewal failed.
//!
//! **Takeover**: the first `read` after this client gained a partition (its last hold write
//! was not the previous value) reads the consumer's info, deletes the consumer and creates it
//! again delivering from the start. The stream keeps only unacknowledged entries, so this
//! redelivers exactly what the old holder never acknowledged, in order, then new entries.
//! Entries at or below the old consumer's delivered stream sequence (carried over in the
//! consumer description, so two takeovers in a row still know) report `deliveries` 2, others
//! 1 (or JetStream's count when higher). Within one holding each entry is returned once: a
//! redelivery of an entry this client returned and has not acknowledged (after the 10 min ack
//! wait) is dropped.
//!
//! `EntryId` and `DeadId` are stream sequences as text. `ack` uses the ack handle kept for the
//! entry and waits for the server's confirmation; acknowledging an id this client does not have
//! in flight (already acknowledged, or from before a takeover) does nothing, since the entry
//! is then either gone or delivered again to the current holder.
//!
//! **Stats**: with work-queue retention the messages stored under a partition's subject are
//! exactly its unacknowledged entries (`depth`); `unacked` is the consumer's ack-pending count.
//! **Close** makes later appends fail with `Closed`; other calls keep working so a stopping
//! dispatcher can still acknowledge and release.
//!
//! **Claims** create the key when absent, succeed without a write when the stored tag is the
//! same, and replace an expired value by compare-and-set; keys of one call are claimed
//! concurrently. A claim's `ttl` is capped by the bucket's 30-day max age.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{self, Operation, UpdateErrorKind};
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::stream::{
    self, ConsumerErrorKind, DeleteMessageErrorKind, DirectGetErrorKind, RetentionPolicy,
    StorageType,
};
use async_nats::jetstream::{self, ErrorCode};
use async_nats::{HeaderMap, connection::State};
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::JournalError;
use crate::log::{DeadId, Entry, EntryId, Log, LogStats, PartitionStats, unix_ms};

/// Bound of one JetStream request or publish ack.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound of a whole `append`, over [`REQUEST_TIMEOUT`] (the send may wait for the buffer).
const APPEND_TIMEOUT: Duration = Duration::from_secs(6);
/// Ack wait of the partition consumers: long, as dispatch may keep an entry while it retries.
const ACK_WAIT: Duration = Duration::from_secs(600);
/// Max ack pending of the partition consumers.
const MAX_ACK_PENDING: i64 = 20_000;
/// Publish dedupe window of the log stream (`Nats-Msg-Id`).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Max age of the dedupe bucket: the longest a claim can last.
const DEDUPE_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// `max_payload` below this gets a health warning (Meta sends bodies up to 3 MB).
const MIN_GOOD_MAX_PAYLOAD: usize = 4 * 1024 * 1024;
/// Consumer description prefix carrying the redelivery watermark across takeovers.
const THROUGH: &str = "redelivered through ";
/// Bytes one pull may bring (bounds memory when entries are large; over any max_payload).
const PULL_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Compare-and-set rounds of one claim before giving up.
const CLAIM_ROUNDS: usize = 8;

fn unavailable(what: &str, e: impl Display) -> JournalError {
    JournalError::Unavailable(format!("nats: {what}: {e}"))
}

/// `url` without a password (`nats://user:pass@host` → `nats://user:***@host`), for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_string(),
    }
}

/// Hold bookkeeping of one partition in this client.
#[derive(Default)]
struct HoldState {
    /// Owner and KV revision of this client's last successful hold write.
    last: Option<(String, u64)>,
    /// Bumped whenever this client gains the partition (not on a renewal).
    generation: u64,
}

/// Reader of one partition in this client.
#[derive(Default)]
struct Reader {
    /// The consumer, once bound.
    consumer: Option<PullConsumer>,
    /// Hold generation the consumer was (re)created for.
    generation: u64,
    /// Entries at or below this stream sequence were delivered to an earlier holder.
    through: u64,
}

/// One partition's state.
#[derive(Default)]
struct Part {
    hold: Mutex<HoldState>,
    /// Held across a `read` (which may wait), never by `ack` or `hold`.
    reader: tokio::sync::Mutex<Reader>,
    /// Entries returned and not yet acknowledged: stream sequence → ack handle.
    inflight: Mutex<BTreeMap<u64, Acker>>,
}

/// A partitioned log on NATS JetStream (see the module docs). Cheap to share behind an `Arc`;
/// any number of processes may use the same prefix at once.
pub struct Nats {
    client: async_nats::Client,
    js: jetstream::Context,
    partitions: u32,
    prefix: String,
    log: stream::Stream,
    dead: stream::Stream,
    dead_subject: String,
    holds: kv::Store,
    dedupe: kv::Store,
    parts: Vec<Part>,
    closed: AtomicBool,
}

impl Nats {
    /// Connects to `url` (`nats://[user:pass@]host:port`, several comma-separated) and declares
    /// the streams, buckets of the module docs under `prefix` (existing ones are used as they
    /// are). The client reconnects by itself after a lost connection; requests time out after
    /// 5 s.
    ///
    /// # Errors
    /// [`JournalError::Unavailable`] naming `journal.url` (bad URL, unreachable server),
    /// `journal.prefix` (characters JetStream refuses) or what the server refused (JetStream
    /// not enabled).
    pub async fn open(url: &str, prefix: &str, partitions: u32) -> Result<Nats, JournalError> {
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(JournalError::Unavailable(format!(
                "journal.prefix = {prefix:?}: the nats backend needs letters, digits, '_' or '-'"
            )));
        }
        let client = async_nats::ConnectOptions::new()
            .name("wagate")
            .connection_timeout(REQUEST_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .reconnect_delay_callback(|attempts| {
                // Quick first retries, then every 2 s: a restarted server is used at once.
                Duration::from_millis((attempts as u64).saturating_mul(250).min(2000))
            })
            .connect(url)
            .await
            .map_err(|e| {
                JournalError::Unavailable(format!(
                    "nats: cannot connect to journal.url = {}: {e}",
                    redact(url)
                ))
            })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .build(client.clone());

        let log = js
            .get_or_create_stream(stream::Config {
                name: format!("{prefix}_LOG"),
                subjects: vec![format!("{prefix}.p.*")],
                retention: RetentionPolicy::WorkQueue,
                storage: StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(&format!("stream {prefix}_LOG (is JetStream on?)"), e))?;
        let dead_subject = format!("{prefix}.dead");
        let dead = js
            .get_or_create_stream(stream::Config {
                name: format!("{prefix}_DEAD"),
                subjects: vec![dead_subject.clone()],
                retention: RetentionPolicy::Limits,
                storage: StorageType::File,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(&format!("stream {prefix}_DEAD"), e))?;
        let holds = bucket(&js, &format!("{prefix}_holds"), Duration::ZERO).await?;
        let dedupe = bucket(&js, &format!("{prefix}_dedupe"), DEDUPE_MAX_AGE).await?;
        // The partition count, recorded on first use (the holds bucket keeps values forever).
        let _ = holds
            .create("partitions", partitions.to_string().into())
            .await;
        let stored = holds
            .get("partitions")
            .await
            .map_err(|e| unavailable("bucket holds", e))?
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u32>().ok());
        crate::log::same_partitions(stored, partitions, prefix)?;
        Ok(Nats {
            client,
            js,
            partitions,
            prefix: prefix.to_string(),
            log,
            dead,
            dead_subject,
            holds,
            dedupe,
            parts: (0..partitions).map(|_| Part::default()).collect(),
            closed: AtomicBool::new(false),
        })
    }

    fn part(&self, p: u32) -> Result<&Part, JournalError> {
        self.parts.get(p as usize).ok_or_else(|| {
            JournalError::Unavailable(format!(
                "nats: partition {p} out of range 0..{}",
                self.partitions
            ))
        })
    }

    fn subject(&self, p: u32) -> String {
        format!("{}.p.{p}", self.prefix)
    }

    fn consumer_config(&self, p: u32, through: u64) -> pull::Config {
        pull::Config {
            durable_name: Some(format!("p{p}")),
            description: Some(format!("{THROUGH}{through}")),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_deliver: -1,
            filter_subject: self.subject(p),
            max_ack_pending: MAX_ACK_PENDING,
            ..Default::default()
        }
    }

    /// Binds `reader` to partition `p`'s consumer. On a gained partition (`reset`), deletes
    /// and recreates it so the stream's unacknowledged entries come again from the first.
    async fn bind(&self, p: u32, reader: &mut Reader, reset: bool) -> Result<(), JournalError> {
        let name = format!("p{p}");
        let old = match self.log.consumer_info(&name).await {
            Ok(info) => Some(info),
            Err(e) if e.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound => None,
            Err(e) => return Err(unavailable(&format!("consumer {name}"), e)),
        };
        let through = old.as_ref().map_or(0, |info| {
            let carried = info
                .config
                .description
                .as_deref()
                .and_then(|d| d.strip_prefix(THROUGH))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            carried.max(info.delivered.stream_sequence)
        });
        let consumer = if reset || old.is_none() {
            if old.is_some() {
                match self.log.delete_consumer(&name).await {
                    Ok(_) => {}
                    Err(e) if is_not_found(e.kind()) => {}
                    Err(e) => return Err(unavailable(&format!("delete consumer {name}"), e)),
                }
            }
            self.log
                .create_consumer(self.consumer_config(p, through))
                .await
                .map_err(|e| unavailable(&format!("create consumer {name}"), e))?
        } else {
            // Not gained here (a read without a hold): keep the consumer as it is.
            self.log
                .get_consumer(&name)
                .await
                .map_err(|e| unavailable(&format!("consumer {name}"), e))?
        };
        reader.consumer = Some(consumer);
        reader.through = through;
        if let Ok(mut inflight) = self.part(p)?.inflight.lock() {
            inflight.clear();
        }
        Ok(())
    }

    /// One pull from `consumer`: `wait` zero asks without waiting (at most `max`), else waits
    /// up to `wait` for one entry. Drops redeliveries of entries in flight here.
    async fn pull_once(
        &self,
        p: u32,
        consumer: &PullConsumer,
        through: u64,
        max: usize,
        wait: Duration,
        out: &mut Vec<Entry>,
    ) -> Result<(), JournalError> {
        let batch = if wait.is_zero() {
            consumer
                .fetch()
                .max_messages(max)
                .max_bytes(PULL_MAX_BYTES)
                .messages()
                .await
        } else {
            consumer
                .batch()
                .max_messages(1)
                .expires(wait)
                .messages()
                .await
        };
        let mut batch = batch.map_err(|e| unavailable(&format!("pull partition {p}"), e))?;
        let guard = wait + REQUEST_TIMEOUT;
        let started = Instant::now();
        loop {
            let left = guard.saturating_sub(started.elapsed());
            let next = match tokio::time::timeout(left, batch.next()).await {
                Ok(Some(next)) => next,
                Ok(None) => return Ok(()),
                Err(_) => return Err(unavailable(&format!("pull partition {p}"), "timed out")),
            };
            let msg = match next {
                Ok(msg) => msg,
                // The consumer has max ack pending entries out: nothing more to give now.
                Err(e) if e.to_string().contains("MaxAckPending") => return Ok(()),
                Err(e) => return Err(unavailable(&format!("pull partition {p}"), e)),
            };
            let (seq, delivered) = match msg.info() {
                Ok(info) => (info.stream_sequence, info.delivered),
                Err(e) => return Err(unavailable("message metadata", e)),
            };
            let (msg, acker) = msg.split();
            let mut inflight = self
                .part(p)?
                .inflight
                .lock()
                .map_err(|_| unavailable("state", "poisoned"))?;
            if inflight.insert(seq, acker).is_some() {
                // Redelivered after the ack wait while this holder still has it: the newer
                // ack handle is kept, the entry is not returned twice.
                continue;
            }
            let floor = if seq <= through { 2 } else { 1 };
            out.push(Entry {
                id: seq.to_string(),
                record: msg.payload,
                deliveries: u32::try_from(delivered).unwrap_or(u32::MAX).max(floor),
            });
        }
    }

    /// Pulls up to `max` entries into `out`, waiting up to `wait` when there are none.
    async fn pull(
        &self,
        p: u32,
        consumer: &PullConsumer,
        through: u64,
        max: usize,
        wait: Duration,
        out: &mut Vec<Entry>,
    ) -> Result<(), JournalError> {
        let deadline = Instant::now() + wait;
        loop {
            self.pull_once(p, consumer, through, max - out.len(), Duration::ZERO, out)
                .await?;
            let left = deadline.saturating_duration_since(Instant::now());
            if !out.is_empty() || left < Duration::from_millis(10) {
                return Ok(());
            }
            // Nothing there: wait for one, then take what else came with a no-wait pull.
            self.pull_once(p, consumer, through, 1, left, out).await?;
            if out.len() >= max {
                return Ok(());
            }
        }
    }

    /// Claims one (hashed) key; see [`Log::claim`].
    async fn claim_one(&self, key: &str, tag: &str, ttl: Duration) -> Result<bool, JournalError> {
        let k = hex::encode(Sha256::digest(key.as_bytes()));
        for _ in 0..CLAIM_ROUNDS {
            let now = unix_ms(SystemTime::now());
            let value = Bytes::from(format!(
                "{tag} {}",
                now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            ));
            let entry = self
                .dedupe
                .entry(k.as_str())
                .await
                .map_err(|e| unavailable("dedupe get", e))?;
            let revision = match entry {
                None => 0,
                Some(e) if e.operation != Operation::Put => e.revision,
                Some(e) => {
                    let (old_tag, deadline) = parse_owned(&e.value);
                    if old_tag == tag {
                        return Ok(true);
                    }
                    if deadline > now {
                        return Ok(false);
                    }
                    e.revision
                }
            };
            match self.dedupe.update(k.as_str(), value, revision).await {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(unavailable("dedupe claim", e)),
            }
        }
        Err(JournalError::Unavailable(
            "nats: dedupe claim lost every compare-and-set round".into(),
        ))
    }
}

fn is_not_found(kind: ConsumerErrorKind) -> bool {
    matches!(kind, ConsumerErrorKind::JetStream(e) if e.error_code() == ErrorCode::CONSUMER_NOT_FOUND)
}

/// Creates KV bucket `name` (history 1, `max_age` zero for none) or binds the existing one.
/// The stream is declared here with the settings the KV API gives a bucket, because the
/// client's own bucket creation reads account fields that 2.9 servers do not send.
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
) -> Result<kv::Store, JournalError> {
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: StorageType::File,
        num_replicas: 1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await
    .map_err(|e| unavailable(&format!("kv bucket {name}"), e))?;
    js.get_key_value(name)
        .await
        .map_err(|e| unavailable(&format!("kv bucket {name}"), e))
}

/// `name deadline_ms` → (name, deadline); a value that does not parse has deadline 0.
fn parse_owned(value: &[u8]) -> (String, u64) {
    let s = String::from_utf8_lossy(value);
    match s.rsplit_once(' ') {
        Some((name, ms)) => (name.to_string(), ms.parse().unwrap_or(0)),
        None => (s.into_owned(), 0),
    }
}

fn parse_seq(id: &str, what: &str) -> Result<u64, JournalError> {
    id.parse()
        .map_err(|_| JournalError::Unavailable(format!("nats: {what} {id:?} is not a sequence")))
}

#[async_trait::async_trait]
impl Log for Nats {
    fn partitions(&self) -> u32 {
        self.partitions
    }

    async fn append(&self, p: u32, msg_id: &str, record: Bytes) -> Result<(), JournalError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(JournalError::Closed);
        }
        self.part(p)?;
        let size = record.len();
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        let too_big = |max: usize| {
            JournalError::Unavailable(format!(
                "nats: record of {size} bytes (plus headers) exceeds the server's max_payload of \
                 {max} bytes: raise max_payload in nats-server.conf"
            ))
        };
        let max = self.client.server_info().max_payload;
        if max > 0 && size + 64 + msg_id.len() > max {
            return Err(too_big(max));
        }
        let publish = async {
            let ack = self
                .js
                .publish_with_headers(self.subject(p), headers, record)
                .await?;
            ack.await
        };
        match tokio::time::timeout(APPEND_TIMEOUT, publish).await {
            Ok(Ok(_ack)) => Ok(()), // `duplicate` too: stored under this msg id already
            Ok(Err(e)) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                Err(too_big(self.client.server_info().max_payload))
            }
            Ok(Err(e)) => Err(unavailable("append", e)),
            Err(_) => Err(unavailable("append", "no publish ack within 6 s")),
        }
    }

    async fn hold(&self, p: u32, owner: &str, ttl: Duration) -> Result<bool, JournalError> {
        let part = self.part(p)?;
        let key = format!("p{p}");
        let now = unix_ms(SystemTime::now());
        let deadline = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let entry = self
            .holds
            .entry(key.as_str())
            .await
            .map_err(|e| unavailable("hold get", e))?;
        let expected = match entry {
            None => 0,
            Some(e) if e.operation != Operation::Put => e.revision,
            Some(e) => {
                let (holder, until) = parse_owned(&e.value);
                if holder != owner && until > now {
                    return Ok(false);
                }
                e.revision
            }
        };
        let value = Bytes::from(format!("{owner} {deadline}"));
        match self.holds.update(key.as_str(), value, expected).await {
            Ok(revision) => {
                let mut st = part
                    .hold
                    .lock()
                    .map_err(|_| unavailable("state", "poisoned"))?;
                let renewal = st
                    .last
                    .as_ref()
                    .is_some_and(|(o, r)| o == owner && *r == expected);
                if !renewal {
                    st.generation += 1;
                }
                st.last = Some((owner.to_string(), revision));
                Ok(true)
            }
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(unavailable("hold", e)),
        }
    }

    async fn release(&self, p: u32, owner: &str) -> Result<(), JournalError> {
        let part = self.part(p)?;
        let key = format!("p{p}");
        if let Ok(mut st) = part.hold.lock() {
            st.last = None;
        }
        let entry = self
            .holds
            .entry(key.as_str())
            .await
            .map_err(|e| unavailable("release get", e))?;
        let Some(e) = entry.filter(|e| e.operation == Operation::Put) else {
            return Ok(());
        };
        if parse_owned(&e.value).0 != owner {
            return Ok(());
        }
        match self
            .holds
            .delete_expect_revision(key.as_str(), Some(e.revision))
            .await
        {
            Ok(()) => Ok(()),
            // Changed meanwhile: no longer ours to release.
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(unavailable("release", e)),
        }
    }

    async fn read(
        &self,
        p: u32,
        _owner: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Entry>, JournalError> {
        let part = self.part(p)?;
        let mut reader = part.reader.lock().await;
        let generation = part
            .hold
            .lock()
            .map_err(|_| unavailable("state", "poisoned"))?
            .generation;
        if reader.consumer.is_none() || reader.generation != generation {
            let reset = reader.generation != generation;
            self.bind(p, &mut reader, reset).await?;
            reader.generation = generation;
        }
        let Some(consumer) = reader.consumer.clone() else {
            return Ok(Vec::new());
        };
        let through = reader.through;
        let max = max.max(1);
        let mut out = Vec::new();
        match self.pull(p, &consumer, through, max, wait, &mut out).await {
            Ok(()) => Ok(out),
            // Entries already taken are in flight here: return them, or they would only come
            // back after a takeover.
            Err(_) if !out.is_empty() => Ok(out),
            Err(e) => Err(e),
        }
    }

    async fn ack(&self, p: u32, _owner: &str, id: &EntryId) -> Result<(), JournalError> {
        let part = self.part(p)?;
        let seq = parse_seq(id, "entry id")?;
        let acker = part
            .inflight
            .lock()
            .map_err(|_| unavailable("state", "poisoned"))?
            .remove(&seq);
        let Some(acker) = acker else {
            return Ok(());
        };
        match acker.double_ack().await {
            Ok(()) => Ok(()),
            Err(e) => {
                // Keep the handle so a retry can acknowledge it.
                if let Ok(mut inflight) = part.inflight.lock() {
                    inflight.insert(seq, acker);
                }
                Err(unavailable("ack", e))
            }
        }
    }

    async fn claim(
        &self,
        _p: u32,
        keys: &[String],
        tag: &str,
        ttl: Duration,
    ) -> Result<Vec<bool>, JournalError> {
        futures_util::future::try_join_all(keys.iter().map(|k| self.claim_one(k, tag, ttl))).await
    }

    async fn bury(&self, record: Bytes) -> Result<(), JournalError> {
        let publish = async {
            let ack = self.js.publish(self.dead_subject.clone(), record).await?;
            ack.await
        };
        match tokio::time::timeout(APPEND_TIMEOUT, publish).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unavailable("bury", e)),
            Err(_) => Err(unavailable("bury", "no publish ack within 6 s")),
        }
    }

    async fn dead(
        &self,
        after: Option<DeadId>,
        limit: usize,
    ) -> Result<Vec<(DeadId, Bytes)>, JournalError> {
        let mut next = match after {
            Some(id) => parse_seq(&id, "dead letter id")?.saturating_add(1),
            None => 1,
        };
        let mut out = Vec::new();
        while out.len() < limit {
            // The first dead letter at or after `next`: deleted sequences are skipped by the
            // server.
            match self
                .dead
                .direct_get_next_for_subject(self.dead_subject.as_str(), Some(next))
                .await
            {
                Ok(msg) => {
                    next = msg.sequence + 1;
                    out.push((msg.sequence.to_string(), msg.payload));
                }
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => break,
                Err(e) => return Err(unavailable("dead letters", e)),
            }
        }
        Ok(out)
    }

    async fn remove_dead(&self, ids: &[DeadId]) -> Result<u64, JournalError> {
        let mut gone = 0;
        for id in ids {
            let Ok(seq) = id.parse::<u64>() else {
                continue;
            };
            match self.dead.delete_message(seq).await {
                Ok(true) => gone += 1,
                Ok(false) => {}
                Err(e) => match e.kind() {
                    DeleteMessageErrorKind::JetStream(j)
                        if j.error_code() == ErrorCode::NO_MESSAGE_FOUND => {}
                    _ => return Err(unavailable("remove dead letter", e)),
                },
            }
        }
        Ok(gone)
    }

    async fn stats(&self) -> Result<LogStats, JournalError> {
        // Work-queue retention: the stored messages of a subject are its unacknowledged
        // entries.
        let mut counts: HashMap<String, u64> = HashMap::new();
        let mut subjects = self
            .log
            .info_with_subjects(format!("{}.p.*", self.prefix))
            .await
            .map_err(|e| unavailable("stream info", e))?;
        while let Some(s) = subjects.next().await {
            let (subject, n) = s.map_err(|e| unavailable("stream info", e))?;
            counts.insert(subject, n as u64);
        }
        let mut unacked: HashMap<String, u64> = HashMap::new();
        let mut consumers = self.log.consumers();
        while let Some(c) = consumers.next().await {
            let c = c.map_err(|e| unavailable("consumer list", e))?;
            unacked.insert(c.name, c.num_ack_pending as u64);
        }
        let partitions = (0..self.partitions)
            .map(|p| PartitionStats {
                partition: p,
                depth: counts.get(&self.subject(p)).copied().unwrap_or(0),
                unacked: Some(unacked.get(&format!("p{p}")).copied().unwrap_or(0)),
            })
            .collect();
        let dead = self
            .dead
            .get_info()
            .await
            .map_err(|e| unavailable("dead stream info", e))?
            .state
            .messages;
        Ok(LogStats { partitions, dead })
    }

    async fn health(&self) -> Result<Option<String>, JournalError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(JournalError::Closed);
        }
        let state = self.client.connection_state();
        if state != State::Connected {
            return Err(JournalError::Unavailable(format!(
                "nats: not connected to the server ({state:?})"
            )));
        }
        let max = self.client.server_info().max_payload;
        Ok((max < MIN_GOOD_MAX_PAYLOAD).then(|| {
            format!(
                "nats: the server's max_payload is {max} bytes; requests up to 3 MB need 4 MiB \
                 or more (max_payload: 8MB in nats-server.conf)"
            )
        }))
    }

    async fn close(&self) -> Result<(), JournalError> {
        self.closed.store(true, Ordering::Release);
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, self.client.flush()).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(
            redact("nats://u:secret@10.0.0.1:4222"),
            "nats://u:***@10.0.0.1:4222"
        );
        assert_eq!(redact("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact("127.0.0.1:4222"), "127.0.0.1:4222");
    }

    #[test]
    fn owned_values_parse_with_spaces_in_the_name() {
        assert_eq!(parse_owned(b"a b 123"), ("a b".into(), 123));
        assert_eq!(parse_owned(b"junk"), ("junk".into(), 0));
    }
}
