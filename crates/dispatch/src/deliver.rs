//! Stage 2: per target, send the head (oldest pending delivery) of every conversation that has
//! nothing in flight and is due, up to `concurrency` at once; record each outcome in the
//! journal before the conversation may move on.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use wagate_journal::events::{Delivery, DeliveryOutcome, DeliveryState, EventStore};

use crate::backoff;
use crate::breaker::{Breaker, State};
use crate::config::{DispatchConfig, TargetConfig};
use crate::metrics::TargetMetrics;
use crate::send::{Answer, Sender};

/// Conversation heads read per scan. Heads that are not due (backing off) are skipped, so
/// this bounds how many waiting conversations a scan can look past.
const HEAD_SCAN: usize = 20_000;

/// Everything one target's loop needs.
pub(crate) struct Target {
    pub(crate) cfg: TargetConfig,
    pub(crate) sender: Sender,
    pub(crate) limiter: Option<DefaultDirectRateLimiter>,
    pub(crate) metrics: TargetMetrics,
    /// Woken when stage 1 enqueued something.
    pub(crate) wake: Arc<Notify>,
}

impl Target {
    pub(crate) fn new(cfg: TargetConfig) -> Result<Self, String> {
        let sender = Sender::new(
            &cfg.url,
            cfg.mode,
            cfg.secret.as_deref(),
            cfg.timeout,
            cfg.concurrency,
        )?;
        let limiter = cfg
            .rate
            .and_then(std::num::NonZeroU32::new)
            .map(|r| RateLimiter::direct(Quota::per_second(r)));
        Ok(Target {
            metrics: TargetMetrics::new(&cfg.name),
            cfg,
            sender,
            limiter,
            wake: Arc::new(Notify::new()),
        })
    }
}

/// Result of one attempt, reported back to the loop after it was recorded.
struct Done {
    conversation: String,
    /// For the breaker: did the target answer usefully (2xx or a definite rejection)?
    healthy: bool,
}

/// Runs one target until `stop`; then waits for the attempts in flight.
pub(crate) async fn run(
    target: Arc<Target>,
    store: Arc<dyn EventStore>,
    cfg: Arc<DispatchConfig>,
    stop: CancellationToken,
) {
    let name = target.cfg.name.clone();
    let concurrency = target.cfg.concurrency;
    let mut breaker = Breaker::new(cfg.breaker_failures, cfg.breaker_cooldown);
    let mut inflight: HashSet<String> = HashSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    loop {
        while let Ok(d) = done_rx.try_recv() {
            finish(&target, &mut breaker, &mut inflight, d);
        }
        if stop.is_cancelled() {
            break;
        }
        let now = Instant::now();
        let permits = breaker.permits(now, inflight.len(), concurrency);
        let mut wake_at = now + cfg.poll_interval;
        if permits > 0 {
            match start_due(
                &target,
                &store,
                &cfg,
                &mut breaker,
                &mut inflight,
                permits,
                &done_tx,
            )
            .await
            {
                Ok(Some(next_due)) => wake_at = wake_at.min(next_due),
                Ok(None) => {}
                Err(e) => tracing::warn!(target_name = %name, error = %e, "cannot read deliveries"),
            }
        } else if let Some(at) = breaker
            .reopens_at()
            .filter(|_| breaker.state(now) == State::Open)
        {
            wake_at = wake_at.min(at);
        }
        target.metrics.inflight.set(inflight.len() as f64);
        tokio::select! {
            Some(d) = done_rx.recv() => finish(&target, &mut breaker, &mut inflight, d),
            () = target.wake.notified() => {}
            () = tokio::time::sleep_until(wake_at.into()) => {}
            () = stop.cancelled() => {}
        }
    }
    // Attempts in flight end within the target timeout; their outcomes are still recorded.
    drop(done_tx);
    while !inflight.is_empty() {
        match done_rx.recv().await {
            Some(d) => finish(&target, &mut breaker, &mut inflight, d),
            None => break,
        }
    }
    target.metrics.inflight.set(0.0);
}

fn finish(target: &Target, breaker: &mut Breaker, inflight: &mut HashSet<String>, d: Done) {
    inflight.remove(&d.conversation);
    if let Some(state) = breaker.record(d.healthy, Instant::now()) {
        target.metrics.breaker.set(f64::from(state as u8));
        match state {
            State::Open => {
                tracing::warn!(target_name = %target.cfg.name, "circuit breaker open: deliveries paused")
            }
            State::Closed => {
                tracing::info!(target_name = %target.cfg.name, "circuit breaker closed: deliveries resume")
            }
            State::HalfOpen => {}
        }
    }
}

/// Starts up to `permits` due heads; returns when the earliest not-yet-due head is due.
async fn start_due(
    target: &Arc<Target>,
    store: &Arc<dyn EventStore>,
    cfg: &Arc<DispatchConfig>,
    breaker: &mut Breaker,
    inflight: &mut HashSet<String>,
    permits: usize,
    done_tx: &mpsc::UnboundedSender<Done>,
) -> Result<Option<Instant>, wagate_journal::JournalError> {
    let heads = store.heads(&target.cfg.name, HEAD_SCAN).await?;
    let now_sys = SystemTime::now();
    let now = Instant::now();
    let mut next_due: Option<Instant> = None;
    let mut due = Vec::new();
    for h in heads {
        if inflight.contains(&h.conversation_key) {
            continue;
        }
        match h.next_attempt_at.duration_since(now_sys) {
            Ok(wait) if !wait.is_zero() => {
                let at = now + wait;
                next_due = Some(next_due.map_or(at, |n| n.min(at)));
            }
            _ => {
                if due.len() < permits {
                    due.push(h.id);
                }
            }
        }
    }
    if due.is_empty() {
        return Ok(next_due);
    }
    for d in store.deliveries(due).await? {
        if d.state != DeliveryState::Pending || !inflight.insert(d.conversation_key.clone()) {
            continue;
        }
        breaker.started(Instant::now());
        let (target, store, cfg, tx) =
            (target.clone(), store.clone(), cfg.clone(), done_tx.clone());
        tokio::spawn(async move {
            let conversation = d.conversation_key.clone();
            let healthy = attempt(&target, &store, &cfg, d).await;
            let _ = tx.send(Done {
                conversation,
                healthy,
            });
        });
    }
    // More may be due right away (permits left); the loop comes back after `poll_interval`
    // at the latest, or as soon as an attempt finishes.
    Ok(next_due)
}

/// Sends attempt number `d.attempts + 1` of `d` (after the target's rate limit) and
/// classifies the answer with the rules of `docs/dispatch.md`; counts it in the metrics.
/// Returns the outcome and whether the target answered usefully (for the breaker).
pub(crate) async fn send_once(
    target: &Target,
    cfg: &DispatchConfig,
    d: &Delivery,
) -> (DeliveryOutcome, bool) {
    if let Some(limiter) = &target.limiter {
        limiter.until_ready().await;
    }
    let number = d.attempts.saturating_add(1);
    let answer = target.sender.send(d, number).await;
    let now = SystemTime::now();
    let age = now.duration_since(d.received_at).unwrap_or_default();
    let class = answer.class();
    let (outcome, healthy, label) = match &answer {
        Answer::Ok(_) => {
            target.metrics.latency.record(age.as_secs_f64());
            (DeliveryOutcome::Delivered, true, "delivered")
        }
        Answer::Reject(status) if cfg.dead_letter_4xx => (
            DeliveryOutcome::Dead {
                error: format!("http_{status}"),
            },
            true,
            "dead",
        ),
        Answer::Reject(status) => {
            retry_or_give_up(cfg, number, age, now, format!("http_{status}"), None, true)
        }
        Answer::Retry {
            error, retry_after, ..
        } => retry_or_give_up(cfg, number, age, now, error.clone(), *retry_after, false),
    };
    target.metrics.attempt(label, class);
    if let DeliveryOutcome::Dead { error } = &outcome {
        tracing::warn!(target_name = %target.cfg.name, event = %d.event_id, attempts = number, error = %error, "dead-lettered");
    }
    (outcome, healthy)
}

/// One attempt of `d`, recorded in the journal. Returns whether the target was healthy.
async fn attempt(
    target: &Target,
    store: &Arc<dyn EventStore>,
    cfg: &DispatchConfig,
    d: Delivery,
) -> bool {
    let (outcome, healthy) = send_once(target, cfg, &d).await;
    // The conversation moves on only once the outcome is stored; if the journal cannot take
    // it, the delivery stays pending and is sent again (at-least-once).
    for wait in [10, 100, 1000] {
        match store.settle_delivery(d.id, outcome.clone()).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(target_name = %target.cfg.name, delivery = d.id, error = %e, "cannot record delivery outcome");
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        }
    }
    healthy
}

fn retry_or_give_up(
    cfg: &DispatchConfig,
    number: u32,
    age: Duration,
    now: SystemTime,
    error: String,
    retry_after: Option<Duration>,
    healthy: bool,
) -> (DeliveryOutcome, bool, &'static str) {
    if number >= cfg.max_attempts {
        let error = format!("{error} (gave up after {number} attempts)");
        return (DeliveryOutcome::Dead { error }, healthy, "dead");
    }
    let delay = retry_after
        .unwrap_or_else(|| backoff::full_jitter(cfg.backoff_base, cfg.backoff_max, number));
    if age + delay >= cfg.max_age {
        let error = format!("{error} (gave up: older than max_age)");
        return (DeliveryOutcome::Dead { error }, healthy, "dead");
    }
    (
        DeliveryOutcome::Retry {
            at: now + delay,
            error,
        },
        healthy,
        "retry",
    )
}
