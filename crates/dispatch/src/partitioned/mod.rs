//! Dispatch on a broker journal (`journal.backend` = `redis`, `amqp`, `nats`): any number of
//! dispatcher processes share `journal.partitions` partitions, each held by one of them at a
//! time, so every conversation is delivered by one process, in order. Rules in
//! `docs/journal.md` ("Broker backends") and `docs/dispatch.md`.
//!
//! ```text
//! holder loop: renew held partitions every hold_ttl/3, take free ones (one per 250 ms)
//!   └▶ per held partition: read ─▶ explode (this partition's conversations) ─▶ claim dedupe
//!        keys ─▶ per (target, conversation) FIFO ─▶ POST ─▶ delivered | retry | bury ─▶ ack
//! ```
//!
//! Retry state lives in memory while the entry stays unacknowledged in the broker: if the
//! process dies, the next holder gets the entry again and starts its attempts over
//! (at-least-once; duplicates are bounded by the entries in flight).

pub mod route;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wagate_journal::log::Log;

use crate::breaker::Breaker;
use crate::config::{self, ConfigError};
use crate::deliver::Target;
use crate::{Settings, metrics};

/// How often free partitions may be taken: dispatchers that start together take turns, so
/// they end up with about the same share.
const TAKE_EVERY: Duration = Duration::from_millis(250);
/// Partitions looked at per round.
const TAKE_TRIES: u32 = 32;
/// Partitions taken at most per round: N/16, 1 to 4 (few partitions go one at a time, so
/// dispatchers starting together share them; failover of many takes about
/// `hold_ttl + N / 16` seconds).
const TAKE_MAX: usize = 4;

/// A target shared by all partitions of this process: one concurrency limit, one breaker.
pub(crate) struct SharedTarget {
    pub(crate) target: Target,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) breaker: Mutex<Breaker>,
}

/// What every partition worker of this process uses.
pub(crate) struct Shared {
    pub(crate) log: Arc<dyn Log>,
    /// Holder name of this process in the broker.
    pub(crate) owner: String,
    pub(crate) settings: Settings,
    pub(crate) targets: Vec<SharedTarget>,
    pub(crate) global: metrics::Global,
}

impl Shared {
    pub(crate) fn target_index(&self, name: &str) -> Option<usize> {
        self.targets.iter().position(|t| t.target.cfg.name == name)
    }
}

/// A running dispatcher on a broker journal.
pub struct PartitionedDispatcher {
    stop: CancellationToken,
    holder: JoinHandle<()>,
}

impl PartitionedDispatcher {
    /// Starts holding partitions of `log` as `owner` (unique per process, e.g. host name and
    /// a random suffix), with `hold_ttl` (`journal.hold_ttl`). Must be called inside a Tokio
    /// runtime.
    ///
    /// # Errors
    /// An invalid config or a target whose HTTP client cannot be built.
    pub fn start(
        settings: Settings,
        log: Arc<dyn Log>,
        owner: String,
        hold_ttl: Duration,
    ) -> Result<Self, ConfigError> {
        config::validate(&settings.targets, &settings.dispatch)?;
        let mut targets = Vec::new();
        for (i, t) in settings.targets.iter().enumerate() {
            let target = Target::new(t.clone()).map_err(|message| ConfigError {
                key: format!("targets[{i}]"),
                message,
            })?;
            targets.push(SharedTarget {
                slots: Arc::new(Semaphore::new(t.concurrency)),
                breaker: Mutex::new(Breaker::new(
                    settings.dispatch.breaker_failures,
                    settings.dispatch.breaker_cooldown,
                )),
                target,
            });
        }
        let shared = Arc::new(Shared {
            log,
            owner,
            settings,
            targets,
            global: metrics::Global::new(),
        });
        let stop = CancellationToken::new();
        let holder = tokio::spawn(hold_loop(shared, hold_ttl, stop.clone()));
        Ok(PartitionedDispatcher { stop, holder })
    }

    /// Stops reading, waits for the attempts in flight, records their outcomes and releases
    /// the partitions so other dispatchers take them at once.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.holder.await;
        tracing::info!("dispatcher stopped");
    }
}

/// A partition this process holds.
struct Held {
    stop: CancellationToken,
    task: JoinHandle<()>,
    renewed: Instant,
}

/// Takes, renews and gives up partitions; runs one worker per held partition.
async fn hold_loop(shared: Arc<Shared>, ttl: Duration, stop: CancellationToken) {
    let n = shared.log.partitions();
    let renew_every = ttl / 3;
    let held_gauge = ::metrics::gauge!("wagate_dispatch_partitions_held");
    let mut held: HashMap<u32, Held> = HashMap::new();
    let mut last_renew = Instant::now();
    let mut next_take = Instant::now();
    let mut last_count = usize::MAX;
    // Dispatchers start looking at different partitions, so they do not all race for p0.
    let mut start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos()
        % n;
    tracing::info!(partitions = n, owner = %shared.owner, "dispatcher started");
    while !stop.is_cancelled() {
        let now = Instant::now();
        if now.duration_since(last_renew) >= renew_every {
            last_renew = now;
            let mut lost = Vec::new();
            for (&p, h) in &mut held {
                match shared.log.hold(p, &shared.owner, ttl).await {
                    Ok(true) => h.renewed = Instant::now(),
                    Ok(false) => lost.push(p),
                    // Stop before the hold can lapse, so two holders never overlap.
                    Err(e) if now.duration_since(h.renewed) > ttl * 2 / 3 => {
                        tracing::warn!(partition = p, error = %e, "cannot renew partition");
                        lost.push(p);
                    }
                    Err(_) => {}
                }
            }
            for p in lost {
                if let Some(h) = held.remove(&p) {
                    tracing::warn!(partition = p, "partition lost: stopped delivering it");
                    h.stop.cancel();
                    let _ = h.task.await;
                    // In case the broker still counts us as its holder (a renewal that timed
                    // out here but went through there): let someone take it now.
                    let _ = shared.log.release(p, &shared.owner).await;
                }
            }
        }
        // A worker that ended on its own found its partition stuck: give it up so it is
        // taken afresh (a new holding starts a new consumer).
        let ended: Vec<u32> = held
            .iter()
            .filter(|(_, h)| h.task.is_finished())
            .map(|(&p, _)| p)
            .collect();
        for p in ended {
            held.remove(&p);
            let _ = shared.log.release(p, &shared.owner).await;
        }
        if (held.len() as u32) < n && now >= next_take {
            let mut took = 0;
            for i in 0..n.min(TAKE_TRIES) {
                if took == (n as usize / 16).clamp(1, TAKE_MAX) {
                    break;
                }
                let p = (start + i) % n;
                if held.contains_key(&p) {
                    continue;
                }
                match shared.log.hold(p, &shared.owner, ttl).await {
                    Ok(true) => {
                        let token = stop.child_token();
                        let task = tokio::spawn(worker::run(p, shared.clone(), token.clone()));
                        held.insert(
                            p,
                            Held {
                                stop: token,
                                task,
                                renewed: Instant::now(),
                            },
                        );
                        took += 1;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(partition = p, error = %e, "cannot take partition");
                        break;
                    }
                }
            }
            start = (start + TAKE_TRIES) % n;
            // Nothing free in this round: others hold the rest; look again less often.
            next_take = if took > 0 { now } else { now + renew_every };
        }
        if held.len() != last_count {
            last_count = held.len();
            let mut list: Vec<u32> = held.keys().copied().collect();
            list.sort_unstable();
            if list.is_empty() {
                tracing::info!(
                    "holding no partition: standing by (other dispatchers hold them all)"
                );
            } else {
                tracing::info!(count = list.len(), partitions = ?list, "partitions held");
            }
        }
        held_gauge.set(held.len() as f64);
        tokio::select! {
            () = tokio::time::sleep(TAKE_EVERY) => {}
            () = stop.cancelled() => {}
        }
    }
    for (p, h) in held {
        h.stop.cancel();
        let _ = h.task.await;
        if let Err(e) = shared.log.release(p, &shared.owner).await {
            tracing::warn!(partition = p, error = %e, "cannot release partition");
        }
    }
    held_gauge.set(0.0);
}
