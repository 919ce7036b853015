//! The event store of dispatch: exploded events waiting for delivery, their retry schedule,
//! the dedupe window and the dead-letter queue. Request-level leasing ([`crate::Journal`])
//! hands requests over; this trait holds what dispatch makes of them. The embedded backend
//! implements it in the same SQLite file, through the same writer thread; rules in
//! `docs/dispatch.md`.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Serialize;

use crate::{JournalError, Request, Seq};

/// Identifier of a delivery: unique, increasing in enqueue order (the FIFO order of a
/// conversation).
pub type DeliveryId = u64;

/// One delivery to enqueue: an event (or a raw request) for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Target name (`[[targets]] name`).
    pub target: String,
    /// Ordering key: deliveries of one conversation of one target go out one at a time, in
    /// enqueue order.
    pub conversation_key: String,
    /// Dedupe keys this delivery carries (one event: its key; a raw request: the keys of its
    /// events). Enqueued only if at least one of them was not seen within the window.
    pub dedupe_keys: Vec<String>,
    /// Event id (`<request id>:<position>`), or the request id for raw deliveries.
    pub event_id: String,
    /// Event kind (`message`, ..., `raw` for raw deliveries).
    pub kind: String,
    /// HTTP body to send.
    pub body: Bytes,
    /// `Content-Type` to send (raw mode: as received).
    pub content_type: Option<String>,
    /// Signature header to forward as `name: value` (raw mode).
    pub signature: Option<String>,
    /// `Some(reason)`: stored dead-lettered at once (e.g. an `invalid` event), not delivered.
    pub dead_reason: Option<String>,
}

/// The deliveries made of one request, enqueued atomically with the request becoming `done`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exploded {
    /// The request (must still be open; otherwise it was handled already and is skipped).
    pub seq: Seq,
    /// When ingest received it (kept for the receive → delivered latency and `max_age`).
    pub received_at: SystemTime,
    /// In event order.
    pub deliveries: Vec<NewDelivery>,
}

/// What [`EventStore::enqueue`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EnqueueReport {
    /// Requests that became `done`.
    pub requests: u64,
    /// Requests skipped because they were no longer open (handled by someone else).
    pub skipped: u64,
    /// Deliveries enqueued pending.
    pub enqueued: u64,
    /// Deliveries stored dead-lettered at once.
    pub dead: u64,
    /// Dedupe keys already seen within the window (duplicates dropped).
    pub duplicates: u64,
}

/// State of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its (next) attempt.
    Pending,
    /// The target answered 2xx.
    Delivered,
    /// Gave up; kept until replayed or purged.
    Dead,
}

impl DeliveryState {
    /// Stable lower-case name (database, CLI, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryState::Pending,
            "delivered" => DeliveryState::Delivered,
            "dead" => DeliveryState::Dead,
            _ => return None,
        })
    }
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Id (FIFO order).
    pub id: DeliveryId,
    /// Target name.
    pub target: String,
    /// Ordering key.
    pub conversation_key: String,
    /// First dedupe key (sent as `Idempotency-Key`).
    pub dedupe_key: String,
    /// Event id.
    pub event_id: String,
    /// Request it came from.
    pub request_seq: Seq,
    /// Event kind, or `raw`.
    pub kind: String,
    /// When ingest received the request.
    #[serde(with = "humantime_serde")]
    pub received_at: SystemTime,
    /// Body to send.
    #[serde(skip)]
    pub body: Bytes,
    /// `Content-Type` to send.
    pub content_type: Option<String>,
    /// Signature header to forward (`name: value`).
    #[serde(skip)]
    pub signature: Option<String>,
    /// State.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not attempted before this time.
    #[serde(with = "humantime_serde")]
    pub next_attempt_at: SystemTime,
    /// Outcome of the last failed attempt (status or error class, never a body).
    pub last_error: Option<String>,
    /// When it was enqueued.
    #[serde(with = "humantime_serde")]
    pub created_at: SystemTime,
    /// When it was delivered or dead-lettered.
    #[serde(with = "humantime_serde")]
    pub settled_at: Option<SystemTime>,
}

/// The oldest pending delivery of one conversation of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Delivery id.
    pub id: DeliveryId,
    /// Its conversation.
    pub conversation_key: String,
    /// When it may be attempted.
    pub next_attempt_at: SystemTime,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// 2xx: becomes `delivered`.
    Delivered,
    /// Retry at `at`; `error` is kept as `last_error`.
    Retry {
        /// Next attempt time.
        at: SystemTime,
        /// Short reason (`http_503`, `timeout`, ...).
        error: String,
    },
    /// Give up: becomes `dead`.
    Dead {
        /// Short reason.
        error: String,
    },
}

/// Counts of one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TargetStats {
    /// Target name.
    pub target: String,
    /// Waiting for delivery (in flight included).
    pub pending: u64,
    /// Delivered, not yet pruned.
    pub delivered: u64,
    /// Dead-lettered.
    pub dead: u64,
    /// Age in seconds of the oldest pending delivery (since its request was received).
    pub oldest_pending_age_secs: Option<u64>,
}

/// Counts of the event store (`wagate journal stats` shows them under `deliveries`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryStats {
    /// Per target, by name.
    pub targets: Vec<TargetStats>,
    /// Dedupe keys held (the dedupe window).
    pub dedupe_keys: u64,
}

/// Which dead-lettered deliveries a DLQ command applies to. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadFilter {
    /// One delivery.
    pub id: Option<DeliveryId>,
    /// Target name.
    pub target: Option<String>,
    /// Conversation key.
    pub conversation_key: Option<String>,
    /// Event kind.
    pub kind: Option<String>,
    /// Substring of `last_error` (e.g. `http_400`).
    pub error: Option<String>,
}

/// Storage of dispatch. Writes are atomic; reads see committed data only.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Up to `max` open (pending or leased) requests, oldest `seq` first, without leasing
    /// them: the dispatcher that enqueues them settles them in the same transaction.
    async fn unexploded(&self, max: usize) -> Result<Vec<(Seq, Request)>, JournalError>;

    /// In one transaction, for each request still open: records its dedupe keys
    /// (insert-if-absent), stores its deliveries that carry at least one new key, and marks
    /// the request `done`.
    async fn enqueue(&self, batch: Vec<Exploded>) -> Result<EnqueueReport, JournalError>;

    /// The head (oldest pending delivery) of up to `limit` conversations of `target`, oldest
    /// head first, due or not.
    async fn heads(&self, target: &str, limit: usize) -> Result<Vec<Head>, JournalError>;

    /// The deliveries with these ids (any state), in id order.
    async fn deliveries(&self, ids: Vec<DeliveryId>) -> Result<Vec<Delivery>, JournalError>;

    /// Records one attempt's outcome (counts the attempt). No-op unless the delivery is
    /// pending.
    async fn settle_delivery(
        &self,
        id: DeliveryId,
        outcome: DeliveryOutcome,
    ) -> Result<(), JournalError>;

    /// Retention: deletes delivered deliveries settled more than `delivered` ago and dedupe
    /// keys first seen more than `dedupe` ago. Returns both counts.
    async fn prune_events(
        &self,
        delivered: Duration,
        dedupe: Duration,
    ) -> Result<(u64, u64), JournalError>;

    /// Counts by target and state.
    async fn delivery_stats(&self) -> Result<DeliveryStats, JournalError>;

    /// Dead-lettered deliveries matching `filter` with `id > after`, id order, at most `limit`.
    async fn dead(
        &self,
        filter: DeadFilter,
        after: DeliveryId,
        limit: usize,
    ) -> Result<Vec<Delivery>, JournalError>;

    /// Makes matching dead deliveries pending again, due now, attempts reset. They keep their
    /// ids, so each conversation gets them back in their original order.
    async fn replay(&self, filter: DeadFilter) -> Result<u64, JournalError>;

    /// Deletes matching dead deliveries.
    async fn purge(&self, filter: DeadFilter) -> Result<u64, JournalError>;
}
