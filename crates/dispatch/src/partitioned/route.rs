//! Ingest into a broker log: which partitions a request goes to, and the [`Journal`] view
//! that ingest appends through.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wagate_journal::log::{Log, Record, partition_of};
use wagate_journal::{Appended, Journal, JournalError, Leased, Request, Seq, Settlement, Stats};
use wagate_model::Provider;

/// The partitions a request is appended to: one per distinct conversation among its events
/// (a batch may hold several), so every conversation's events sit in one ordered partition.
/// With one partition nothing is parsed. A request without events goes by its id.
pub fn partitions_of(req: &Request, providers: &HashMap<String, Provider>, n: u32) -> Vec<u32> {
    if n <= 1 {
        return vec![0];
    }
    let events = crate::explode::events_of(req, providers);
    let set: BTreeSet<u32> = events
        .iter()
        .map(|e| partition_of(&e.conversation_key, n))
        .collect();
    if set.is_empty() {
        vec![partition_of(&req.id, n)]
    } else {
        set.into_iter().collect()
    }
}

/// A broker log as ingest's [`Journal`]: `append` writes the request to each of its
/// partitions and succeeds only when every partition confirmed (a partial append answers
/// 503; Meta's retry then lands again everywhere and dedupe drops what was already there).
/// Dispatch reads the partitions directly, so `lease`/`settle` are not offered.
pub struct LogJournal {
    log: Arc<dyn Log>,
    providers: HashMap<String, Provider>,
    warning: Mutex<Option<String>>,
}

impl LogJournal {
    /// Wraps `log`; `providers` maps `[[sources]]` names to their provider (others are
    /// detected from the body).
    pub fn new(log: Arc<dyn Log>, providers: HashMap<String, Provider>) -> Self {
        LogJournal {
            log,
            providers,
            warning: Mutex::new(None),
        }
    }
}

fn not_here() -> JournalError {
    JournalError::Unavailable("a broker journal is read per partition by dispatch".into())
}

#[async_trait::async_trait]
impl Journal for LogJournal {
    async fn append(&self, request: Request) -> Result<Appended, JournalError> {
        let parts = partitions_of(&request, &self.providers, self.log.partitions());
        let id = request.id.clone();
        // One encoded record (the only copy of the body) serves every partition.
        let record = Record::Request(request).encode();
        let appends = parts.iter().map(|&p| {
            let record = record.clone();
            let msg_id = format!("{id}:{p}");
            async move { self.log.append(p, &msg_id, record).await }
        });
        for r in futures_util::future::join_all(appends).await {
            r?;
        }
        Ok(Appended { seq: 0 })
    }

    async fn lease(&self, _: usize, _: Duration) -> Result<Vec<Leased>, JournalError> {
        Err(not_here())
    }

    async fn settle(&self, _: Seq, _: Settlement) -> Result<(), JournalError> {
        Err(not_here())
    }

    async fn stats(&self) -> Result<Stats, JournalError> {
        let s = self.log.stats().await?;
        let pending: u64 = s.partitions.iter().map(|p| p.depth).sum();
        let leased: u64 = s.partitions.iter().filter_map(|p| p.unacked).sum();
        Ok(Stats {
            total: pending + s.dead,
            pending: pending.saturating_sub(leased),
            leased,
            done: 0,
            dead: s.dead,
            oldest_pending_age_secs: None,
            size_bytes: None,
            deliveries: None,
        })
    }

    async fn health(&self) -> Result<(), JournalError> {
        let w = self.log.health().await?;
        *self
            .warning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = w;
        Ok(())
    }

    async fn warnings(&self) -> Vec<String> {
        self.warning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    async fn close(&self) -> Result<(), JournalError> {
        self.log.close().await
    }
}
