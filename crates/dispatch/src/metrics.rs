//! Dispatch metrics (exported by the Prometheus recorder that `wagate serve` installs).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `wagate_dispatch_attempts_total` | counter | `target`, `outcome` (`delivered`, `retry`, `dead`), `class` (`2xx`, `3xx`, `4xx`, `5xx`, `timeout`, `connect`, `io`) |
//! | `wagate_dispatch_delivery_latency_seconds` | histogram | `target` (request received → delivered) |
//! | `wagate_dispatch_queue_depth` | gauge | `target` (pending deliveries) |
//! | `wagate_dispatch_oldest_pending_age_seconds` | gauge | `target` |
//! | `wagate_dispatch_dead_letters` | gauge | `target` (dead-letter depth) |
//! | `wagate_dispatch_duplicates_total` | counter | (dedupe keys already seen) |
//! | `wagate_dispatch_events_total` | counter | `outcome` (`enqueued`, `dead`) |
//! | `wagate_dispatch_breaker_state` | gauge | `target` (0 closed, 1 open, 2 half-open) |
//! | `wagate_dispatch_inflight` | gauge | `target` |

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use wagate_journal::events::DeliveryStats;

/// Handles of one target.
pub struct TargetMetrics {
    target: String,
    /// Receive → delivered.
    pub latency: Histogram,
    /// Breaker state.
    pub breaker: Gauge,
    /// Attempts in flight.
    pub inflight: Gauge,
}

impl TargetMetrics {
    /// Registers the handles of `target`.
    pub fn new(target: &str) -> Self {
        let t = target.to_owned();
        TargetMetrics {
            latency: histogram!("wagate_dispatch_delivery_latency_seconds", "target" => t.clone()),
            breaker: gauge!("wagate_dispatch_breaker_state", "target" => t.clone()),
            inflight: gauge!("wagate_dispatch_inflight", "target" => t.clone()),
            target: t,
        }
    }

    /// Counts one attempt.
    pub fn attempt(&self, outcome: &'static str, class: &'static str) {
        counter!("wagate_dispatch_attempts_total", "target" => self.target.clone(), "outcome" => outcome, "class" => class)
            .increment(1);
    }
}

/// Process-wide handles.
pub struct Global {
    /// Duplicates dropped.
    pub duplicates: Counter,
    /// Deliveries enqueued.
    pub enqueued: Counter,
    /// Deliveries dead-lettered at enqueue (invalid).
    pub dead_at_enqueue: Counter,
}

impl Global {
    /// Registers the handles.
    pub fn new() -> Self {
        Global {
            duplicates: counter!("wagate_dispatch_duplicates_total"),
            enqueued: counter!("wagate_dispatch_events_total", "outcome" => "enqueued"),
            dead_at_enqueue: counter!("wagate_dispatch_events_total", "outcome" => "dead"),
        }
    }
}

impl Default for Global {
    fn default() -> Self {
        Global::new()
    }
}

/// Sets the depth gauges of `targets` from `stats` (targets absent from it are empty).
pub fn depth(targets: &[String], stats: &DeliveryStats) {
    for t in targets {
        let s = stats.targets.iter().find(|s| &s.target == t);
        let l = t.clone();
        gauge!("wagate_dispatch_queue_depth", "target" => l.clone())
            .set(s.map_or(0, |s| s.pending) as f64);
        gauge!("wagate_dispatch_dead_letters", "target" => l.clone())
            .set(s.map_or(0, |s| s.dead) as f64);
        gauge!("wagate_dispatch_oldest_pending_age_seconds", "target" => l)
            .set(s.and_then(|s| s.oldest_pending_age_secs).unwrap_or(0) as f64);
    }
}
