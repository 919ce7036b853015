//! The event store on SQLite: writes are jobs of the one writer thread (so they share its
//! group commit), reads use the read-only connection.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::Embedded;
use super::read::Reader;
use super::schema::{add_ms, from_ms, now_ms, sql, to_ms};
use crate::events::{
    DeadFilter, Delivery, DeliveryId, DeliveryOutcome, DeliveryState, DeliveryStats, EnqueueReport,
    EventStore, Exploded, Head, TargetStats,
};
use crate::{JournalError, Request, Seq};

const DELIVERY_COLUMNS: &str =
    "id, target, conversation_key, dedupe_key, event_id, request_seq, kind,
    received_at, body, content_type, signature, state, attempts, next_attempt_at, last_error,
    created_at, settled_at";

/// Matches a [`DeadFilter`] bound as `?1..?5`; every field is optional.
const FILTER: &str = "state = 'dead'
    AND (?1 IS NULL OR id = ?1) AND (?2 IS NULL OR target = ?2)
    AND (?3 IS NULL OR conversation_key = ?3) AND (?4 IS NULL OR kind = ?4)
    AND (?5 IS NULL OR instr(coalesce(last_error, ''), ?5) > 0)";

/// Open requests oldest first (walks `requests_active` in `seq` order).
const UNEXPLODED: &str =
    "SELECT seq, id, source, received_at, body, content_type, signature, peer, valid_json
     FROM requests WHERE state IN ('pending', 'leased') ORDER BY seq LIMIT ?1";

/// Head of each conversation: SQLite takes the bare columns from the row that has `min(id)`.
pub(crate) const HEADS: &str = "SELECT min(id), conversation_key, next_attempt_at FROM deliveries
     WHERE state = 'pending' AND target = ?1 GROUP BY conversation_key ORDER BY 1 LIMIT ?2";

fn filter_params(f: &DeadFilter) -> [Option<rusqlite::types::Value>; 5] {
    use rusqlite::types::Value;
    [
        f.id.map(|i| Value::Integer(i64::try_from(i).unwrap_or(i64::MAX))),
        f.target.clone().map(Value::Text),
        f.conversation_key.clone().map(Value::Text),
        f.kind.clone().map(Value::Text),
        f.error.clone().map(Value::Text),
    ]
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn delivery(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    let state: String = r.get(11)?;
    Ok(Delivery {
        id: r.get::<_, i64>(0)?.cast_unsigned(),
        target: r.get(1)?,
        conversation_key: r.get(2)?,
        dedupe_key: r.get(3)?,
        event_id: r.get(4)?,
        request_seq: r.get::<_, i64>(5)?.cast_unsigned(),
        kind: r.get(6)?,
        received_at: from_ms(r.get(7)?),
        body: Bytes::from(r.get::<_, Vec<u8>>(8)?),
        content_type: r.get(9)?,
        signature: r.get(10)?,
        state: DeliveryState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                11,
                rusqlite::types::Type::Text,
                format!("delivery state {state:?}").into(),
            )
        })?,
        attempts: r.get(12)?,
        next_attempt_at: from_ms(r.get(13)?),
        last_error: r.get(14)?,
        created_at: from_ms(r.get(15)?),
        settled_at: r.get::<_, Option<i64>>(16)?.map(from_ms),
    })
}

impl Reader {
    /// See [`EventStore::unexploded`].
    ///
    /// # Errors
    /// [`JournalError::Unavailable`] on a SQLite error.
    pub fn unexploded(&self, max: usize) -> Result<Vec<(Seq, Request)>, JournalError> {
        let mut st = self.conn.prepare_cached(UNEXPLODED).map_err(sql)?;
        let rows = st
            .query_map([limit(max)], |r| {
                Ok((
                    r.get::<_, i64>(0)?.cast_unsigned(),
                    Request {
                        id: r.get(1)?,
                        source: r.get(2)?,
                        received_at: from_ms(r.get(3)?),
                        body: Bytes::from(r.get::<_, Vec<u8>>(4)?),
                        content_type: r.get(5)?,
                        signature: r.get(6)?,
                        peer: r.get(7)?,
                        valid_json: r.get(8)?,
                    },
                ))
            })
            .map_err(sql)?;
        rows.collect::<rusqlite::Result<_>>().map_err(sql)
    }

    /// See [`EventStore::heads`].
    ///
    /// # Errors
    /// [`JournalError::Unavailable`] on a SQLite error.
    pub fn heads(&self, target: &str, max: usize) -> Result<Vec<Head>, JournalError> {
        let mut st = self.conn.prepare_cached(HEADS).map_err(sql)?;
        let rows = st
            .query_map(params![target, limit(max)], |r| {
                Ok(Head {
                    id: r.get::<_, i64>(0)?.cast_unsigned(),
                    conversation_key: r.get(1)?,
                    next_attempt_at: from_ms(r.get(2)?),
                })
            })
            .map_err(sql)?;
        rows.collect::<rusqlite::Result<_>>().map_err(sql)
    }

    /// The delivery `id`, any state.
    ///
    /// # Errors
    /// [`JournalError::Unavailable`] on a SQLite error.
    pub fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, JournalError> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1"
            ))
            .map_err(sql)?;
        st.query_row([limit(usize::try_from(id).unwrap_or(usize::MAX))], delivery)
            .optional()
            .map_err(sql)
    }

    /// See [`EventStore::delivery_stats`].
    ///
    /// # Errors
    /// [`JournalError::Unavailable`] on a SQLite error (also for a journal without the event
    /// store tables, written by an older version).
    pub fn delivery_stats(&self) -> Result<DeliveryStats, JournalError> {
        let mut by: std::collections::BTreeMap<String, TargetStats> = Default::default();
        type Count = (&'static str, fn(&mut TargetStats, i64));
        let queries: [Count; 3] = [
            (
                "SELECT target, count(*) FROM deliveries WHERE state = 'pending' GROUP BY target",
                |t, n| t.pending = n.cast_unsigned(),
            ),
            (
                "SELECT target, count(*) FROM deliveries WHERE state = 'delivered' GROUP BY target",
                |t, n| t.delivered = n.cast_unsigned(),
            ),
            (
                "SELECT target, count(*) FROM deliveries WHERE state = 'dead' GROUP BY target",
                |t, n| t.dead = n.cast_unsigned(),
            ),
        ];
        for (q, set) in queries {
            let mut st = self.conn.prepare_cached(q).map_err(sql)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql)?;
            for row in rows {
                let (target, n) = row.map_err(sql)?;
                let t = by.entry(target.clone()).or_insert_with(|| TargetStats {
                    target,
                    ..TargetStats::default()
                });
                set(t, n);
            }
        }
        let now = now_ms();
        for t in by.values_mut().filter(|t| t.pending > 0) {
            let oldest: Option<i64> = self
                .conn
                .prepare_cached(
                    "SELECT received_at FROM deliveries WHERE id =
                       (SELECT min(id) FROM deliveries WHERE state = 'pending' AND target = ?1)",
                )
                .and_then(|mut st| st.query_row([&t.target], |r| r.get(0)).optional())
                .map_err(sql)?;
            t.oldest_pending_age_secs =
                oldest.map(|r| u64::try_from(now.saturating_sub(r) / 1000).unwrap_or(0));
        }
        let dedupe_keys: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM dedupe")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(sql)?;
        Ok(DeliveryStats {
            targets: by.into_values().collect(),
            dedupe_keys: dedupe_keys.cast_unsigned(),
        })
    }

    /// See [`EventStore::dead`].
    ///
    /// # Errors
    /// [`JournalError::Unavailable`] on a SQLite error.
    pub fn dead_deliveries(
        &self,
        filter: &DeadFilter,
        after: DeliveryId,
        max: usize,
    ) -> Result<Vec<Delivery>, JournalError> {
        let [a, b, c, d, e] = filter_params(filter);
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {FILTER} AND id > ?6 ORDER BY id LIMIT ?7"
            ))
            .map_err(sql)?;
        let rows = st
            .query_map(
                params![
                    a,
                    b,
                    c,
                    d,
                    e,
                    i64::try_from(after).unwrap_or(i64::MAX),
                    limit(max)
                ],
                delivery,
            )
            .map_err(sql)?;
        rows.collect::<rusqlite::Result<_>>().map_err(sql)
    }
}

impl Embedded {
    /// Runs `f` on the read connection off the async runtime.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Reader) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let reader = std::sync::Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let guard = reader
                .lock()
                .map_err(|_| JournalError::Unavailable("reader poisoned".into()))?;
            f(guard.as_ref().ok_or(JournalError::Closed)?)
        })
        .await
        .map_err(|e| JournalError::Unavailable(format!("read task: {e}")))?
    }
}

fn enqueue(tx: &Transaction<'_>, batch: &[Exploded], now: i64) -> rusqlite::Result<EnqueueReport> {
    let mut report = EnqueueReport::default();
    let mut done = tx.prepare_cached(
        "UPDATE requests SET state = 'done', settled_at = ?2, lease_until = NULL
         WHERE seq = ?1 AND state IN ('pending', 'leased')",
    )?;
    let mut seen =
        tx.prepare_cached("INSERT OR IGNORE INTO dedupe (key, first_seen) VALUES (?1, ?2)")?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO deliveries (target, conversation_key, dedupe_key, event_id, request_seq, kind,
             received_at, body, content_type, signature, state, next_attempt_at, last_error,
             created_at, settled_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?12, ?14)",
    )?;
    for ex in batch {
        let seq = i64::try_from(ex.seq).unwrap_or(i64::MAX);
        if done.execute(params![seq, now])? == 0 {
            report.skipped += 1;
            continue;
        }
        report.requests += 1;
        // Keys shared by several deliveries of this request (one per target) count once.
        let mut new: HashMap<&str, bool> = HashMap::new();
        for d in &ex.deliveries {
            let mut any_new = d.dedupe_keys.is_empty();
            for key in &d.dedupe_keys {
                let is_new = match new.get(key.as_str()) {
                    Some(v) => *v,
                    None => {
                        let v = seen.execute(params![key, now])? == 1;
                        if !v {
                            report.duplicates += 1;
                        }
                        new.insert(key, v);
                        v
                    }
                };
                any_new |= is_new;
            }
            if !any_new {
                continue;
            }
            let (state, settled) = match d.dead_reason {
                Some(_) => {
                    report.dead += 1;
                    ("dead", Some(now))
                }
                None => {
                    report.enqueued += 1;
                    ("pending", None)
                }
            };
            insert.execute(params![
                d.target,
                d.conversation_key,
                d.dedupe_keys.first().map_or("", String::as_str),
                d.event_id,
                seq,
                d.kind,
                to_ms(ex.received_at),
                &d.body[..],
                d.content_type,
                d.signature,
                state,
                now,
                d.dead_reason,
                settled,
            ])?;
        }
    }
    Ok(report)
}

fn settle(
    tx: &Transaction<'_>,
    id: i64,
    outcome: &DeliveryOutcome,
    now: i64,
) -> rusqlite::Result<()> {
    match outcome {
        DeliveryOutcome::Delivered => tx
            .prepare_cached(
                "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, settled_at = ?2
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![id, now])?,
        DeliveryOutcome::Retry { at, error } => tx
            .prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![id, to_ms(*at), error])?,
        DeliveryOutcome::Dead { error } => tx
            .prepare_cached(
                "UPDATE deliveries SET state = 'dead', attempts = attempts + 1, last_error = ?2,
                     settled_at = ?3
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![id, error, now])?,
    };
    Ok(())
}

/// Rows deleted per retention transaction, so a prune never holds up appends long.
const PRUNE_CHUNK: i64 = 2000;

#[async_trait::async_trait]
impl EventStore for Embedded {
    async fn unexploded(&self, max: usize) -> Result<Vec<(Seq, Request)>, JournalError> {
        self.read(move |r| r.unexploded(max)).await
    }

    async fn enqueue(&self, batch: Vec<Exploded>) -> Result<EnqueueReport, JournalError> {
        if batch.is_empty() {
            return Ok(EnqueueReport::default());
        }
        self.run(move |tx, now| enqueue(tx, &batch, now)).await
    }

    async fn heads(&self, target: &str, max: usize) -> Result<Vec<Head>, JournalError> {
        let target = target.to_owned();
        self.read(move |r| r.heads(&target, max)).await
    }

    async fn deliveries(&self, ids: Vec<DeliveryId>) -> Result<Vec<Delivery>, JournalError> {
        self.read(move |r| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(r.delivery(id)?);
            }
            Ok(out)
        })
        .await
    }

    async fn settle_delivery(
        &self,
        id: DeliveryId,
        outcome: DeliveryOutcome,
    ) -> Result<(), JournalError> {
        let id = i64::try_from(id).map_err(|_| JournalError::NotFound(id))?;
        self.run(move |tx, now| settle(tx, id, &outcome, now)).await
    }

    async fn prune_events(
        &self,
        delivered: Duration,
        dedupe: Duration,
    ) -> Result<(u64, u64), JournalError> {
        let now = now_ms();
        let cut = |d: Duration| now.saturating_sub(add_ms(0, d));
        let (delivered_cut, dedupe_cut) = (cut(delivered), cut(dedupe));
        let mut total = (0, 0);
        loop {
            let (a, b) = self
                .run(move |tx, _| {
                    let a = tx
                        .prepare_cached(
                            "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries
                               WHERE state = 'delivered' AND settled_at < ?1 LIMIT ?2)",
                        )?
                        .execute(params![delivered_cut, PRUNE_CHUNK])?;
                    let b = tx
                        .prepare_cached(
                            "DELETE FROM dedupe WHERE key IN (SELECT key FROM dedupe
                               WHERE first_seen < ?1 LIMIT ?2)",
                        )?
                        .execute(params![dedupe_cut, PRUNE_CHUNK])?;
                    Ok((a as u64, b as u64))
                })
                .await?;
            total = (total.0 + a, total.1 + b);
            if a < PRUNE_CHUNK as u64 && b < PRUNE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    async fn delivery_stats(&self) -> Result<DeliveryStats, JournalError> {
        self.read(Reader::delivery_stats).await
    }

    async fn dead(
        &self,
        filter: DeadFilter,
        after: DeliveryId,
        max: usize,
    ) -> Result<Vec<Delivery>, JournalError> {
        self.read(move |r| r.dead_deliveries(&filter, after, max))
            .await
    }

    async fn replay(&self, filter: DeadFilter) -> Result<u64, JournalError> {
        self.run(move |tx, now| {
            let [a, b, c, d, e] = filter_params(&filter);
            let n = tx
                .prepare(&format!(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?6,
                         settled_at = NULL WHERE {FILTER}"
                ))?
                .execute(params![a, b, c, d, e, now])?;
            Ok(n as u64)
        })
        .await
    }

    async fn purge(&self, filter: DeadFilter) -> Result<u64, JournalError> {
        self.run(move |tx, _| {
            let [a, b, c, d, e] = filter_params(&filter);
            let n = tx
                .prepare(&format!("DELETE FROM deliveries WHERE {FILTER}"))?
                .execute(params![a, b, c, d, e])?;
            Ok(n as u64)
        })
        .await
    }
}
