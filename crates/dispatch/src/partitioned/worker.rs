//! One held partition: read entries in order, explode the events of this partition, drop
//! duplicates (claim their dedupe keys), deliver each (target, conversation) one at a time in
//! entry order with retries, bury what is given up, and acknowledge an entry once all its
//! deliveries are settled.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;
use wagate_journal::events::{Delivery, DeliveryOutcome, DeliveryState};
use wagate_journal::log::{
    DeadLetter, Entry, EntryId, Record, from_unix_ms, partition_of, unix_ms,
};

use super::Shared;
use crate::breaker::State;
use crate::deliver::send_once;
use crate::explode::explode_request;

/// Entries read per call.
const READ_BATCH: usize = 256;
/// Entries held unacknowledged at once: bounds memory and what a takeover sends again, and a
/// conversation failing with more entries than this behind it holds up its partition.
const WINDOW: usize = 10_000;
/// Longest a read waits for new entries.
const READ_WAIT: Duration = Duration::from_secs(1);
/// How long an idle partition may see nothing arrive while the broker says entries wait in
/// it before the worker gives the partition up to have it taken afresh (a consumer left
/// behind by a broker restart delivers nothing).
const STUCK_AFTER: Duration = Duration::from_secs(10);

/// A delivery waiting in its (target, conversation) queue.
struct Job {
    entry: u64,
    delivery: Delivery,
    not_before: Instant,
}

/// An attempt's outcome, reported back to the partition loop.
struct Done {
    queue: (usize, String),
    outcome: DeliveryOutcome,
    healthy: bool,
}

/// The state of one held partition.
struct Worker {
    p: u32,
    shared: Arc<Shared>,
    /// Local entry number → (broker id, deliveries not yet settled).
    entries: HashMap<u64, (EntryId, usize)>,
    next_entry: u64,
    queues: HashMap<(usize, String), VecDeque<Job>>,
    inflight: HashSet<(usize, String)>,
    next_delivery: u64,
    /// Acknowledgements the broker refused for now (retried every loop; entries stay
    /// unacknowledged in the broker meanwhile).
    unacked: Vec<EntryId>,
    last_ack_retry: Instant,
    /// When the last entry arrived, and when the broker was last asked whether some wait.
    last_entry: Instant,
    last_stuck_check: Instant,
    suspicious: bool,
}

/// Runs partition `p` until `stop`; then waits for the attempts in flight and records them.
pub(crate) async fn run(p: u32, shared: Arc<Shared>, stop: CancellationToken) {
    let (entry_tx, mut entry_rx) = mpsc::channel::<Entry>(READ_BATCH);
    let reader = tokio::spawn(read_loop(p, shared.clone(), entry_tx, stop.clone()));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut w = Worker {
        p,
        shared,
        entries: HashMap::new(),
        next_entry: 0,
        queues: HashMap::new(),
        inflight: HashSet::new(),
        next_delivery: 0,
        unacked: Vec::new(),
        last_ack_retry: Instant::now(),
        last_entry: Instant::now(),
        last_stuck_check: Instant::now(),
        suspicious: false,
    };
    tracing::info!(partition = p, "partition taken");
    loop {
        while let Ok(d) = done_rx.try_recv() {
            w.finish(d).await;
        }
        if stop.is_cancelled() {
            break;
        }
        w.retry_acks().await;
        let wake_at = w.start_due(&done_tx);
        let room = w.entries.len() < WINDOW;
        if w.stuck().await {
            break;
        }
        tokio::select! {
            Some(e) = entry_rx.recv(), if room => {
                w.last_entry = Instant::now();
                w.accept(e).await;
            }
            Some(d) = done_rx.recv() => w.finish(d).await,
            () = tokio::time::sleep_until(wake_at.into()) => {}
            () = stop.cancelled() => {}
        }
    }
    reader.abort();
    drop(done_tx);
    while !w.inflight.is_empty() {
        match done_rx.recv().await {
            Some(d) => w.finish(d).await,
            None => break,
        }
    }
    w.retry_acks().await;
    tracing::info!(
        partition = p,
        unacked = w.entries.len() + w.unacked.len(),
        "partition left"
    );
}

async fn read_loop(p: u32, shared: Arc<Shared>, tx: mpsc::Sender<Entry>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        match shared
            .log
            .read(p, &shared.owner, READ_BATCH, READ_WAIT)
            .await
        {
            Ok(entries) => {
                for e in entries {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "cannot read the journal");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = stop.cancelled() => {}
                }
            }
        }
    }
}

/// Retries a broker write until it succeeds (1 ms .. 5 s apart): an entry is never
/// acknowledged before what it leads to is stored.
async fn persist<F, Fut>(what: &str, p: u32, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), wagate_journal::JournalError>>,
{
    let mut wait = Duration::from_millis(1);
    loop {
        match f().await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "cannot {what}; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 4).min(Duration::from_secs(5));
            }
        }
    }
}

impl Worker {
    /// `true` when nothing is in hand, nothing arrived for [`STUCK_AFTER`], and the broker
    /// reported waiting entries twice in a row: the read side is stuck, so the partition is
    /// given up (no unacknowledged entries, so nothing is sent twice) and taken afresh.
    async fn stuck(&mut self) -> bool {
        let idle = self.entries.is_empty() && self.unacked.is_empty() && self.inflight.is_empty();
        if !idle || self.last_entry.elapsed() < STUCK_AFTER {
            self.suspicious = false;
            return false;
        }
        // One stats call covers every partition: with many partitions, ask less often.
        let every = STUCK_AFTER / 2 * (self.shared.log.partitions() / 8).max(1);
        if self.last_stuck_check.elapsed() < every {
            return false;
        }
        self.last_stuck_check = Instant::now();
        let waiting = match self.shared.log.stats().await {
            Ok(s) => s
                .partitions
                .get(self.p as usize)
                .map_or(0, |ps| ps.depth.saturating_sub(ps.unacked.unwrap_or(0))),
            Err(_) => 0,
        };
        if waiting == 0 {
            self.suspicious = false;
            return false;
        }
        if !self.suspicious {
            self.suspicious = true;
            return false;
        }
        tracing::warn!(
            partition = self.p,
            waiting,
            "entries wait in the partition but none arrive: taking it afresh"
        );
        true
    }

    /// Takes a new entry: its deliveries join their queues, or it is acknowledged at once.
    async fn accept(&mut self, e: Entry) {
        let n = self.next_entry;
        self.next_entry += 1;
        let jobs = match Record::decode(&e.record) {
            Ok(Record::Request(req)) => self.explode(n, &req).await,
            Ok(Record::Replay(d)) => self.replayed(n, d).await,
            Err(err) => {
                tracing::error!(partition = self.p, entry = %e.id, error = %err, "unreadable journal entry: dead-lettered");
                let dead = DeadLetter {
                    target: String::new(),
                    conversation_key: String::new(),
                    dedupe_key: String::new(),
                    event_id: e.id.clone(),
                    kind: "corrupt".into(),
                    received_at_ms: unix_ms(SystemTime::now()),
                    dead_at_ms: unix_ms(SystemTime::now()),
                    attempts: 0,
                    error: format!("corrupt: {err}"),
                    content_type: None,
                    signature: None,
                    body: e.record.clone(),
                };
                self.bury(dead).await;
                Vec::new()
            }
        };
        if jobs.is_empty() {
            self.ack(&e.id).await;
            return;
        }
        self.entries.insert(n, (e.id, jobs.len()));
        for (t, job) in jobs {
            let key = (t, job.delivery.conversation_key.clone());
            self.queues.entry(key).or_default().push_back(job);
        }
    }

    /// The deliveries of this partition's events of `req`, minus duplicates; invalid ones are
    /// buried at once.
    async fn explode(&mut self, n: u64, req: &wagate_journal::Request) -> Vec<(usize, Job)> {
        let s = self.shared.clone();
        let parts = s.log.partitions();
        let ex = explode_request(0, req, &s.settings.providers, &s.settings.targets);
        let mine: Vec<_> = ex
            .deliveries
            .into_iter()
            .filter(|d| partition_of(&d.conversation_key, parts) == self.p)
            .collect();
        let mut keys: Vec<String> = mine
            .iter()
            .filter(|d| d.dead_reason.is_none())
            .flat_map(|d| d.dedupe_keys.iter().cloned())
            .collect();
        keys.sort();
        keys.dedup();
        let mut fresh: HashSet<String> = HashSet::new();
        if !keys.is_empty() {
            let ttl = s.settings.dispatch.dedupe_window;
            let mut wait = Duration::from_millis(1);
            let claimed = loop {
                match s.log.claim(self.p, &keys, &req.id, ttl).await {
                    Ok(c) => break c,
                    Err(e) => {
                        tracing::warn!(partition = self.p, error = %e, "cannot check duplicates; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 4).min(Duration::from_secs(5));
                    }
                }
            };
            fresh = keys
                .into_iter()
                .zip(claimed)
                .filter_map(|(k, new)| new.then_some(k))
                .collect();
        }
        let mut jobs = Vec::new();
        let now = Instant::now();
        for d in mine {
            let Some(t) = s.target_index(&d.target) else {
                continue;
            };
            if let Some(reason) = &d.dead_reason {
                s.global.dead_at_enqueue.increment(1);
                tracing::warn!(partition = self.p, target_name = %d.target, event = %d.event_id, reason = %reason, "dead-lettered at once");
                let dead = DeadLetter {
                    target: d.target.clone(),
                    conversation_key: d.conversation_key.clone(),
                    dedupe_key: d.dedupe_keys.first().cloned().unwrap_or_default(),
                    event_id: d.event_id.clone(),
                    kind: d.kind.clone(),
                    received_at_ms: unix_ms(req.received_at),
                    dead_at_ms: unix_ms(SystemTime::now()),
                    attempts: 0,
                    error: reason.clone(),
                    content_type: d.content_type.clone(),
                    signature: d.signature.clone(),
                    body: d.body.clone(),
                };
                self.bury(dead).await;
                continue;
            }
            if !d.dedupe_keys.iter().any(|k| fresh.contains(k)) {
                s.global.duplicates.increment(1);
                continue;
            }
            s.global.enqueued.increment(1);
            let delivery = self.delivery(
                d.target,
                d.conversation_key,
                d.dedupe_keys.into_iter().next().unwrap_or_default(),
                d.event_id,
                d.kind,
                req.received_at,
                d.body,
                d.content_type,
                d.signature,
            );
            jobs.push((
                t,
                Job {
                    entry: n,
                    delivery,
                    not_before: now,
                },
            ));
        }
        jobs
    }

    /// A dead letter put back by `dlq replay`: delivered as it was, no dedupe check.
    async fn replayed(&mut self, n: u64, d: DeadLetter) -> Vec<(usize, Job)> {
        let Some(t) = self.shared.target_index(&d.target) else {
            tracing::warn!(partition = self.p, event = %d.event_id, target_name = %d.target, "replayed delivery for a target no longer configured: dead-lettered again");
            let mut d = d;
            d.error = "unknown target".into();
            self.bury(d).await;
            return Vec::new();
        };
        let delivery = self.delivery(
            d.target,
            d.conversation_key,
            d.dedupe_key,
            d.event_id,
            d.kind,
            from_unix_ms(d.received_at_ms),
            d.body,
            d.content_type,
            d.signature,
        );
        vec![(
            t,
            Job {
                entry: n,
                delivery,
                not_before: Instant::now(),
            },
        )]
    }

    #[allow(clippy::too_many_arguments)]
    fn delivery(
        &mut self,
        target: String,
        conversation_key: String,
        dedupe_key: String,
        event_id: String,
        kind: String,
        received_at: SystemTime,
        body: bytes::Bytes,
        content_type: Option<String>,
        signature: Option<String>,
    ) -> Delivery {
        self.next_delivery += 1;
        let now = SystemTime::now();
        Delivery {
            id: self.next_delivery,
            target,
            conversation_key,
            dedupe_key,
            event_id,
            request_seq: 0,
            kind,
            received_at,
            body,
            content_type,
            signature,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            settled_at: None,
        }
    }

    /// Starts every due queue head whose target has a free slot; returns when to look again.
    fn start_due(&mut self, done_tx: &mpsc::UnboundedSender<Done>) -> Instant {
        let now = Instant::now();
        let mut wake_at = now + self.shared.settings.dispatch.poll_interval;
        for (key, queue) in &self.queues {
            if self.inflight.contains(key) {
                continue;
            }
            let Some(job) = queue.front() else {
                continue;
            };
            if job.not_before > now {
                wake_at = wake_at.min(job.not_before);
                continue;
            }
            let target = &self.shared.targets[key.0];
            let Some(permit) = target.permit(now) else {
                if let Some(at) = target.reopens_at(now) {
                    wake_at = wake_at.min(at);
                }
                continue;
            };
            self.inflight.insert(key.clone());
            let (shared, tx, key) = (self.shared.clone(), done_tx.clone(), key.clone());
            let delivery = job.delivery.clone();
            tokio::spawn(async move {
                let (outcome, healthy) = attempt(&shared, key.0, &delivery, permit).await;
                let _ = tx.send(Done {
                    queue: key,
                    outcome,
                    healthy,
                });
            });
        }
        wake_at
    }

    /// Records an attempt's outcome: the queue moves on, or waits for the retry.
    async fn finish(&mut self, d: Done) {
        self.inflight.remove(&d.queue);
        self.shared.targets[d.queue.0].record(d.healthy);
        let Some(queue) = self.queues.get_mut(&d.queue) else {
            return;
        };
        match d.outcome {
            DeliveryOutcome::Retry { at, error } => {
                if let Some(job) = queue.front_mut() {
                    job.delivery.attempts += 1;
                    job.delivery.last_error = Some(error);
                    let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
                    job.not_before = Instant::now() + wait;
                }
                return;
            }
            DeliveryOutcome::Delivered => {}
            DeliveryOutcome::Dead { error } => {
                if let Some(job) = queue.front() {
                    let dl = &job.delivery;
                    let dead = DeadLetter {
                        target: dl.target.clone(),
                        conversation_key: dl.conversation_key.clone(),
                        dedupe_key: dl.dedupe_key.clone(),
                        event_id: dl.event_id.clone(),
                        kind: dl.kind.clone(),
                        received_at_ms: unix_ms(dl.received_at),
                        dead_at_ms: unix_ms(SystemTime::now()),
                        attempts: dl.attempts + 1,
                        error,
                        content_type: dl.content_type.clone(),
                        signature: dl.signature.clone(),
                        body: dl.body.clone(),
                    };
                    self.bury(dead).await;
                }
            }
        }
        let Some(queue) = self.queues.get_mut(&d.queue) else {
            return;
        };
        let Some(job) = queue.pop_front() else {
            return;
        };
        if queue.is_empty() {
            self.queues.remove(&d.queue);
        }
        let left = match self.entries.get_mut(&job.entry) {
            Some((_, left)) => {
                *left -= 1;
                *left
            }
            None => return,
        };
        if left == 0
            && let Some((id, _)) = self.entries.remove(&job.entry)
        {
            self.ack(&id).await;
        }
    }

    async fn bury(&self, dead: DeadLetter) {
        let record = dead.encode();
        let log = self.shared.log.clone();
        persist("store a dead letter", self.p, || log.bury(record.clone())).await;
    }

    /// Acknowledges `id`; if the broker refuses (e.g. it is restarting), the id is kept and
    /// retried on every loop until it goes through.
    async fn ack(&mut self, id: &EntryId) {
        if let Err(e) = self.shared.log.ack(self.p, &self.shared.owner, id).await {
            tracing::warn!(partition = self.p, error = %e, "cannot acknowledge an entry; will retry");
            self.unacked.push(id.clone());
        }
    }

    async fn retry_acks(&mut self) {
        if self.unacked.is_empty() || self.last_ack_retry.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_ack_retry = Instant::now();
        let mut left = Vec::new();
        for id in std::mem::take(&mut self.unacked) {
            if self
                .shared
                .log
                .ack(self.p, &self.shared.owner, &id)
                .await
                .is_err()
            {
                left.push(id);
            }
        }
        self.unacked = left;
    }
}

/// One HTTP attempt of `d` to target `t`; the permit is held until it ends.
async fn attempt(
    shared: &Shared,
    t: usize,
    d: &Delivery,
    _permit: OwnedSemaphorePermit,
) -> (DeliveryOutcome, bool) {
    send_once(&shared.targets[t].target, &shared.settings.dispatch, d).await
}

impl super::SharedTarget {
    /// A slot for one attempt, if the concurrency limit and the breaker allow it.
    fn permit(&self, now: Instant) -> Option<OwnedSemaphorePermit> {
        let mut breaker = self
            .breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let inflight = self.target.cfg.concurrency - self.slots.available_permits();
        if breaker.permits(now, inflight, self.target.cfg.concurrency) == 0 {
            return None;
        }
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        breaker.started(now);
        self.target.metrics.inflight.set((inflight + 1) as f64);
        Some(permit)
    }

    /// When an open breaker lets a probe through.
    fn reopens_at(&self, now: Instant) -> Option<Instant> {
        let breaker = self
            .breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        breaker
            .reopens_at()
            .filter(|_| breaker.state(now) == State::Open)
    }

    /// Feeds an attempt's outcome to the breaker.
    fn record(&self, healthy: bool) {
        let changed = self
            .breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(healthy, Instant::now());
        self.target
            .metrics
            .inflight
            .set((self.target.cfg.concurrency - self.slots.available_permits()) as f64);
        if let Some(state) = changed {
            self.target.metrics.breaker.set(f64::from(state as u8));
            match state {
                State::Open => {
                    tracing::warn!(target_name = %self.target.cfg.name, "circuit breaker open: deliveries paused")
                }
                State::Closed => {
                    tracing::info!(target_name = %self.target.cfg.name, "circuit breaker closed: deliveries resume")
                }
                State::HalfOpen => {}
            }
        }
    }
}
