//! The partitioned journal of the broker backends (`journal.backend` = `redis`, `amqp`,
//! `nats`): `journal.partitions` ordered logs on a broker the team already runs, so any number
//! of stateless ingest replicas append and several dispatchers share the delivery work while
//! each conversation stays in order. Design and rules: `docs/journal.md`, "Broker backends".
//!
//! ```text
//! ingest ─ append ─▶ partition hash(conversation_key) % N ─▶ held by one dispatcher at a time
//!                                                           ─▶ claim dedupe keys ─▶ deliver ─▶ ack
//!                                                                                    └▶ dead letters
//! ```
//!
//! A backend stores opaque records ([`Record::encode`]); everything WhatsApp-shaped stays above
//! this trait, so the three brokers share one dispatcher and one conformance suite
//! (`conformance::log`, cargo feature `testing`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::{JournalError, Request};

/// Opaque id of an entry within its partition (a Redis stream id, a JetStream stream
/// sequence, an AMQP delivery tag); only meaningful to [`Log::ack`] of the same holder.
pub type EntryId = String;

/// Opaque id of a stored dead letter (for [`Log::remove_dead`]); increasing in bury order.
pub type DeadId = String;

/// One entry read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Id to acknowledge with.
    pub id: EntryId,
    /// The record as published ([`Record::decode`] reads it).
    pub record: Bytes,
    /// 1 on the first delivery; more when an earlier holder read it and never acknowledged
    /// it (the broker's delivery count where it keeps one, else at least 2).
    pub deliveries: u32,
}

/// Counts of one partition, as far as the broker tells them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PartitionStats {
    /// Partition number.
    pub partition: u32,
    /// Entries stored and not acknowledged (read or not).
    pub depth: u64,
    /// Of those, read by a holder and not yet acknowledged, where the broker tells it.
    pub unacked: Option<u64>,
}

/// Counts of a whole log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogStats {
    /// One per partition, in order.
    pub partitions: Vec<PartitionStats>,
    /// Dead letters stored.
    pub dead: u64,
}

/// A partitioned, durable log on a broker. Object safe; cheap to share (`Arc<dyn Log>`).
///
/// Holding: a partition is read by at most one holder at a time. [`Log::hold`] takes or renews
/// it for `ttl`; a holder that dies loses it (after `ttl`, or at once where the broker ties
/// the hold to the holder's connection: RabbitMQ's exclusive queues), and the next holder's
/// first [`Log::read`] returns the entries the old one never acknowledged, in order, before
/// new ones.
#[async_trait::async_trait]
pub trait Log: Send + Sync + 'static {
    /// `journal.partitions`: partitions are numbered `0..partitions()`.
    fn partitions(&self) -> u32;

    /// Appends `record` to partition `p` and returns once the broker confirmed it durable
    /// (Redis: the write is in the AOF under the server's `appendfsync`; RabbitMQ: publisher
    /// confirm of a quorum queue; NATS: the JetStream publish ack of a file stream). `msg_id`
    /// is unique per (request, partition); brokers with publish dedupe use it (`Nats-Msg-Id`).
    ///
    /// # Errors
    /// Anything but `Ok` means not stored (the caller answers 503): `Unavailable` when the
    /// broker is down or refused, `Closed` after [`Log::close`].
    async fn append(&self, p: u32, msg_id: &str, record: Bytes) -> Result<(), JournalError>;

    /// Takes partition `p` for `owner`, or renews it when `owner` holds it, for `ttl`.
    /// `Ok(false)`: someone else holds it.
    async fn hold(&self, p: u32, owner: &str, ttl: Duration) -> Result<bool, JournalError>;

    /// Gives partition `p` up at once if `owner` holds it (its unacknowledged entries go to the
    /// next holder).
    async fn release(&self, p: u32, owner: &str) -> Result<(), JournalError>;

    /// Up to `max` entries of partition `p` for `owner` (which holds it), in append order,
    /// each returned once per holding: after a takeover first those an earlier holder never
    /// acknowledged, then new ones. Waits up to `wait` when there is nothing.
    async fn read(
        &self,
        p: u32,
        owner: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Entry>, JournalError>;

    /// Acknowledges entry `id` of partition `p`: never read again by anyone.
    async fn ack(&self, p: u32, owner: &str, id: &EntryId) -> Result<(), JournalError>;

    /// The dedupe window: for each key, stores `tag` under it for `ttl` unless the key is
    /// there already. Called by the holder of `p` (keys of one conversation always come from
    /// one partition); a backend may rely on that for atomicity (RabbitMQ keeps the window of
    /// a partition in its holder's memory, logged durably and reloaded on takeover). `true` for a key that was absent or already holds `tag` (a redelivery
    /// of the same request), `false` for a duplicate. Atomic: of concurrent claims of one
    /// key with different tags exactly one gets `true`; claims survive a takeover.
    async fn claim(
        &self,
        p: u32,
        keys: &[String],
        tag: &str,
        ttl: Duration,
    ) -> Result<Vec<bool>, JournalError>;

    /// Stores a dead letter (an encoded [`DeadLetter`]) durably.
    async fn bury(&self, record: Bytes) -> Result<(), JournalError>;

    /// Up to `limit` dead letters with an id after `after` (from the first when `None`), in
    /// bury order.
    async fn dead(
        &self,
        after: Option<DeadId>,
        limit: usize,
    ) -> Result<Vec<(DeadId, Bytes)>, JournalError>;

    /// Deletes these dead letters; returns how many were there.
    async fn remove_dead(&self, ids: &[DeadId]) -> Result<u64, JournalError>;

    /// Counts per partition and of dead letters.
    async fn stats(&self) -> Result<LogStats, JournalError>;

    /// Cheap check that appends can succeed. `Ok(Some(w))`: works, with a warning for
    /// `/readyz` (e.g. a Redis without AOF persistence).
    async fn health(&self) -> Result<Option<String>, JournalError>;

    /// Stops: later appends fail with `Closed`.
    async fn close(&self) -> Result<(), JournalError>;
}

/// Partition of a conversation: FNV-1a 64 of `conversation_key` modulo `partitions`. Stable
/// across processes, versions and platforms (every replica must agree).
pub fn partition_of(conversation_key: &str, partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in conversation_key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    u32::try_from(h % u64::from(partitions.max(1))).unwrap_or(0)
}

/// The check every broker backend makes at open against the partition count it recorded on
/// first use (`stored`): replicas that disagree would route conversations to partitions
/// nobody reads, so a mismatch refuses to start.
///
/// # Errors
/// [`JournalError::Unavailable`] naming `journal.partitions` and both counts.
pub fn same_partitions(
    stored: Option<u32>,
    partitions: u32,
    prefix: &str,
) -> Result<(), JournalError> {
    match stored {
        Some(n) if n != partitions => Err(JournalError::Unavailable(format!(
            "journal.partitions = {partitions}, but the journal with prefix {prefix:?} was created with {n} partitions (every replica must use the same count; a new count needs a new journal.prefix)"
        ))),
        _ => Ok(()),
    }
}

/// What a partition entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A received webhook request; the holder of a partition delivers the events of it whose
    /// conversation maps to that partition.
    Request(Request),
    /// A dead letter put back by `wagate dlq replay`: delivered as is, no dedupe check.
    Replay(DeadLetter),
}

/// A delivery that was given up, as stored by [`Log::bury`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Target name.
    pub target: String,
    /// Ordering key.
    pub conversation_key: String,
    /// First dedupe key.
    pub dedupe_key: String,
    /// Event id (`<request id>:<position>`), or the request id for raw deliveries.
    pub event_id: String,
    /// Event kind, or `raw`.
    pub kind: String,
    /// When ingest received the request, unix ms.
    pub received_at_ms: u64,
    /// When it was given up, unix ms.
    pub dead_at_ms: u64,
    /// Attempts made.
    pub attempts: u32,
    /// Why (`http_400`, `invalid: ...`, `max_attempts`), never a body.
    pub error: String,
    /// `Content-Type` to send.
    pub content_type: Option<String>,
    /// Signature header to forward (`name: value`, raw mode).
    pub signature: Option<String>,
    /// Body to send (base64 in the stored form).
    #[serde(with = "b64")]
    pub body: Bytes,
}

/// Stored header of a request record (the body follows it verbatim).
#[derive(Serialize, Deserialize)]
struct RequestHeader {
    id: String,
    source: String,
    received_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peer: Option<String>,
    valid_json: bool,
}

/// Unix milliseconds of `t` (0 before the epoch).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time at `ms` unix milliseconds.
pub fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl Record {
    /// Wire form: `R` or `D`, a JSON header line, `\n`, then (requests) the raw body bytes.
    /// Bodies are never re-encoded, so a record costs its body plus ~200 bytes.
    pub fn encode(&self) -> Bytes {
        match self {
            Record::Request(r) => {
                let header = serde_json::to_vec(&RequestHeader {
                    id: r.id.clone(),
                    source: r.source.clone(),
                    received_at_ms: unix_ms(r.received_at),
                    content_type: r.content_type.clone(),
                    signature: r.signature.clone(),
                    peer: r.peer.clone(),
                    valid_json: r.valid_json,
                })
                .unwrap_or_default();
                let mut b = BytesMut::with_capacity(header.len() + r.body.len() + 2);
                b.put_u8(b'R');
                b.put_slice(&header);
                b.put_u8(b'\n');
                b.put_slice(&r.body);
                b.freeze()
            }
            Record::Replay(d) => {
                let mut b = BytesMut::new();
                b.put_u8(b'D');
                b.put_slice(&d.encode());
                b.freeze()
            }
        }
    }

    /// Reads [`Record::encode`]'s form.
    ///
    /// # Errors
    /// [`JournalError::Corrupt`] for anything else.
    pub fn decode(b: &Bytes) -> Result<Record, JournalError> {
        let corrupt = |what: &str| JournalError::Corrupt(format!("log record: {what}"));
        match b.first() {
            Some(b'R') => {
                let nl = b
                    .iter()
                    .position(|&c| c == b'\n')
                    .ok_or_else(|| corrupt("no header end"))?;
                let h: RequestHeader =
                    serde_json::from_slice(&b[1..nl]).map_err(|e| corrupt(&e.to_string()))?;
                Ok(Record::Request(Request {
                    id: h.id,
                    source: h.source,
                    received_at: from_unix_ms(h.received_at_ms),
                    body: b.slice(nl + 1..),
                    content_type: h.content_type,
                    signature: h.signature,
                    peer: h.peer,
                    valid_json: h.valid_json,
                }))
            }
            Some(b'D') => Ok(Record::Replay(DeadLetter::decode(&b[1..])?)),
            _ => Err(corrupt("unknown kind")),
        }
    }
}

impl DeadLetter {
    /// JSON form, as stored by [`Log::bury`].
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads [`DeadLetter::encode`]'s form.
    ///
    /// # Errors
    /// [`JournalError::Corrupt`].
    pub fn decode(b: &[u8]) -> Result<DeadLetter, JournalError> {
        serde_json::from_slice(b).map_err(|e| JournalError::Corrupt(format!("dead letter: {e}")))
    }
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_of_is_stable_and_in_range() {
        // Fixed values: every replica and version must map a conversation the same way.
        assert_eq!(partition_of("101:155", 1), 0);
        let a = partition_of("101:155", 8);
        assert_eq!(a, partition_of("101:155", 8));
        assert!(a < 8);
        let spread: std::collections::HashSet<u32> = (0..200)
            .map(|i| partition_of(&format!("101:{i}"), 8))
            .collect();
        assert_eq!(spread.len(), 8);
        assert_eq!(partition_of("", 8), (0xcbf2_9ce4_8422_2325u64 % 8) as u32);
    }

    #[test]
    fn records_round_trip_with_binary_bodies() {
        let r = Request {
            id: "0193-x".into(),
            source: "meta".into(),
            received_at: from_unix_ms(1_767_225_600_123),
            body: Bytes::from((0..=255u8).cycle().take(3000).collect::<Vec<u8>>()),
            content_type: Some("application/json".into()),
            signature: Some("x-hub-signature-256: sha256=00".into()),
            peer: None,
            valid_json: false,
        };
        let rec = Record::Request(r.clone());
        assert_eq!(Record::decode(&rec.encode()).unwrap(), rec);
        let d = DeadLetter {
            target: "t".into(),
            conversation_key: "101:155".into(),
            dedupe_key: "msg:wamid.A".into(),
            event_id: "0193-x:0".into(),
            kind: "message".into(),
            received_at_ms: 1,
            dead_at_ms: 2,
            attempts: 3,
            error: "http_400".into(),
            content_type: None,
            signature: None,
            body: Bytes::from_static(b"\x00\xff{}"),
        };
        let rec = Record::Replay(d);
        assert_eq!(Record::decode(&rec.encode()).unwrap(), rec);
        assert!(Record::decode(&Bytes::from_static(b"Rno newline")).is_err());
        assert!(Record::decode(&Bytes::from_static(b"")).is_err());
    }
}
