//! Dispatch: takes stored webhook requests from the journal, explodes them into events, drops
//! duplicates and delivers to HTTP targets, in order per conversation, with retries, a
//! circuit breaker, a dead-letter queue and replay. Design and rules: `docs/dispatch.md`.
//!
//! ```text
//! journal.requests ─▶ stage 1: explode + dedupe + enqueue (one transaction, request → done)
//!                       ─▶ deliveries ─▶ stage 2 (per target): conversation heads ─▶ POST
//!                                         ─▶ delivered | retry at t (backoff) | dead
//! ```
//!
//! Both stages keep their state in the journal (the embedded SQLite file), so a crash loses
//! nothing: an attempt in flight at the crash is sent again (at-least-once, bounded by the
//! attempts in flight).

pub mod backoff;
pub mod breaker;
pub mod config;
mod deliver;
pub mod explode;
pub mod metrics;
pub mod partitioned;
pub mod send;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wagate_journal::Journal;
use wagate_journal::events::EventStore;
use wagate_model::Provider;

pub use config::{ConfigError, DispatchConfig, Mode, TargetConfig};

/// How often retention runs and the depth gauges are refreshed.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
const GAUGES_EVERY: Duration = Duration::from_secs(2);

/// What the dispatcher is built from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[dispatch]`.
    pub dispatch: DispatchConfig,
    /// `[[targets]]`, secrets resolved.
    pub targets: Vec<TargetConfig>,
    /// Provider of each source name (`[[sources]] provider`); unknown sources are detected
    /// from the body.
    pub providers: HashMap<String, Provider>,
}

/// A running dispatcher.
pub struct Dispatcher {
    stop: CancellationToken,
    tasks: JoinSet<()>,
    wake: Arc<Notify>,
}

impl Dispatcher {
    /// Starts stage 1, one stage-2 loop per target, retention and gauges. Must be called
    /// inside a Tokio runtime.
    ///
    /// # Errors
    /// An invalid config or a target whose HTTP client cannot be built.
    pub fn start(
        settings: Settings,
        store: Arc<dyn EventStore>,
        journal: Arc<dyn Journal>,
    ) -> Result<Self, ConfigError> {
        config::validate(&settings.targets, &settings.dispatch)?;
        let mut targets = Vec::new();
        for (i, t) in settings.targets.iter().enumerate() {
            let target = deliver::Target::new(t.clone()).map_err(|message| ConfigError {
                key: format!("targets[{i}]"),
                message,
            })?;
            targets.push(Arc::new(target));
        }
        let cfg = Arc::new(settings.dispatch.clone());
        let stop = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        let mut tasks = JoinSet::new();
        for t in &targets {
            tasks.spawn(deliver::run(
                t.clone(),
                store.clone(),
                cfg.clone(),
                stop.clone(),
            ));
        }
        tasks.spawn(stage1(
            Arc::new(settings.clone()),
            targets.iter().map(|t| t.wake.clone()).collect(),
            store.clone(),
            wake.clone(),
            stop.clone(),
        ));
        let names: Vec<String> = settings.targets.iter().map(|t| t.name.clone()).collect();
        tasks.spawn(housekeeping(names, cfg, store, journal, stop.clone()));
        tracing::info!(targets = settings.targets.len(), "dispatcher started");
        Ok(Dispatcher { stop, tasks, wake })
    }

    /// A handle that wakes stage 1 (call it after an append, to skip the poll delay).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Stops taking new work, waits for the attempts in flight (each bounded by its target's
    /// timeout) and for their outcomes to be recorded.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        tracing::info!("dispatcher stopped");
    }
}

/// Stage 1 loop: explode open requests in batches, oldest first.
async fn stage1(
    settings: Arc<Settings>,
    wakes: Vec<Arc<Notify>>,
    store: Arc<dyn EventStore>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let global = metrics::Global::new();
    let batch = settings.dispatch.batch;
    while !stop.is_cancelled() {
        let requests = match store.unexploded(batch).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the journal");
                Vec::new()
            }
        };
        if requests.is_empty() {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(settings.dispatch.poll_interval) => {}
                () = stop.cancelled() => {}
            }
            continue;
        }
        let full = requests.len() == batch;
        let exploded = requests
            .iter()
            .map(|(seq, r)| {
                explode::explode_request(*seq, r, &settings.providers, &settings.targets)
            })
            .collect();
        match store.enqueue(exploded).await {
            Ok(report) => {
                global.duplicates.increment(report.duplicates);
                global.enqueued.increment(report.enqueued);
                global.dead_at_enqueue.increment(report.dead);
                if report.enqueued > 0 {
                    wakes.iter().for_each(|w| w.notify_one());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot enqueue events");
                tokio::time::sleep(settings.dispatch.poll_interval).await;
            }
        }
        if !full {
            tokio::task::yield_now().await;
        }
    }
}

/// Retention (delivered records, dedupe keys, done requests) and the depth gauges.
async fn housekeeping(
    names: Vec<String>,
    cfg: Arc<DispatchConfig>,
    store: Arc<dyn EventStore>,
    journal: Arc<dyn Journal>,
    stop: CancellationToken,
) {
    let mut gauges = tokio::time::interval(GAUGES_EVERY);
    let mut retention = tokio::time::interval(RETENTION_EVERY);
    loop {
        tokio::select! {
            _ = gauges.tick() => {
                if let Ok(stats) = store.delivery_stats().await {
                    metrics::depth(&names, &stats);
                }
            }
            _ = retention.tick() => {
                match store.prune_events(cfg.retention, cfg.dedupe_window).await {
                    Ok((d, k)) if d + k > 0 => tracing::info!(deliveries = d, dedupe_keys = k, "retention pruned"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "retention failed"),
                }
                if let Err(e) = journal.prune(cfg.retention).await {
                    tracing::warn!(error = %e, "request retention failed");
                }
            }
            () = stop.cancelled() => return,
        }
    }
}
