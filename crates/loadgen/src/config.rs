//! What a load run does: target, bodies, signature, pattern, bounds, retries.

use std::time::Duration;

use crate::payload::PayloadSource;
use crate::sign::Signer;

/// Traffic shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// Evenly spaced requests at `rate` per second; `None` = closed loop, as fast as the
    /// connection pool allows (every connection sends back to back).
    Steady {
        /// Requests per second.
        rate: Option<f64>,
    },
    /// `size` requests at once every `every`, whether or not the previous burst finished.
    Burst {
        /// Requests per burst.
        size: u32,
        /// Interval between burst starts.
        every: Duration,
    },
    /// Burst of `size` concurrent requests on the pooled keep-alive connections, wait for all
    /// answers, stay idle for a gap, repeat; the gap grows by `step` from `gap_from` to `gap_to`,
    /// then the sweep starts over. Exposes the race where a server closes an idle keep-alive
    /// connection just as the client reuses it.
    BurstIdle {
        /// Requests per burst.
        size: u32,
        /// First idle gap of a sweep.
        gap_from: Duration,
        /// Last idle gap of a sweep (inclusive).
        gap_to: Duration,
        /// Gap increment.
        step: Duration,
    },
}

impl Pattern {
    /// Short name as used on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Pattern::Steady { .. } => "steady",
            Pattern::Burst { .. } => "burst",
            Pattern::BurstIdle { .. } => "burst-idle",
        }
    }

    /// The gaps of one burst-idle sweep, in order (empty for other patterns).
    pub fn gaps(&self) -> Vec<Duration> {
        let Pattern::BurstIdle {
            gap_from,
            gap_to,
            step,
            ..
        } = *self
        else {
            return Vec::new();
        };
        let mut gaps = Vec::new();
        let mut g = gap_from;
        while g <= gap_to && gaps.len() < 10_000 {
            gaps.push(g);
            if step.is_zero() {
                break;
            }
            g += step;
        }
        gaps
    }
}

/// When a run stops scheduling new deliveries. At least one bound is always set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounds {
    /// Wall-clock limit for scheduling.
    pub duration: Option<Duration>,
    /// Number of deliveries (first attempts; retries come on top).
    pub requests: Option<u64>,
    /// burst-idle only: number of complete gap sweeps.
    pub sweeps: Option<u32>,
}

/// Bound applied when none is given, so a run always ends by itself.
pub const DEFAULT_REQUESTS: u64 = 10_000;
/// Time bound applied when none is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(60);

/// Meta-style redelivery of what did not get a `200`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first redelivery; doubles per attempt (Meta retries with decreasing frequency).
    pub first_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
    /// Redeliveries per body before giving up.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_attempts: 6,
        }
    }
}

/// How progress is shown while running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing (library use, tests).
    Quiet,
    /// An indicatif bar on stderr (terminal).
    Bar,
    /// One plain line per second on stderr (logs, pipes).
    Lines,
}

/// Everything a run needs; build it directly or from the CLI.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// `http://host:port/path`; https is not supported.
    pub url: String,
    /// Allow targets outside 127.0.0.0/8 and ::1.
    pub allow_remote: bool,
    /// Bodies to send.
    pub payloads: PayloadSource,
    /// Status bodies sent after each message (sent, delivered, read, …).
    pub statuses_per_message: u32,
    /// Signature put on every request.
    pub signer: Signer,
    /// Traffic shape.
    pub pattern: Pattern,
    /// When to stop.
    pub bounds: Bounds,
    /// Keep-alive connections in the pool (also the concurrency limit).
    pub connections: usize,
    /// Limit for connect plus one request/response exchange.
    pub timeout: Duration,
    /// Redeliver non-200s like Meta does.
    pub retry: Option<RetryPolicy>,
    /// Progress display.
    pub progress: Progress,
}

impl LoadConfig {
    /// A config with defaults: built-in Cloud templates, unsigned, closed-loop steady, 8
    /// connections, 10 s timeout, no retry, quiet.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            allow_remote: false,
            payloads: PayloadSource::CloudTemplates(Vec::new()),
            statuses_per_message: 0,
            signer: Signer::None,
            pattern: Pattern::Steady { rate: None },
            bounds: Bounds::default(),
            connections: 8,
            timeout: Duration::from_secs(10),
            retry: None,
            progress: Progress::Quiet,
        }
    }

    /// The bounds actually used: the given ones, or the defaults when none is set.
    pub fn effective_bounds(&self) -> Bounds {
        let mut b = self.bounds.clone();
        if b.duration.is_none() && b.requests.is_none() && b.sweeps.is_none() {
            if matches!(self.pattern, Pattern::BurstIdle { .. }) {
                b.sweeps = Some(1);
            } else {
                b.requests = Some(DEFAULT_REQUESTS);
                b.duration = Some(DEFAULT_DURATION);
            }
        }
        b
    }
}
