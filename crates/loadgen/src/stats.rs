//! Counting outcomes while a run is going, and the summary it ends with.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Why a request got no HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// TCP connect (or HTTP handshake) failed or timed out.
    Connect,
    /// The connection closed before the response: the keep-alive race, or a server crash.
    Reset,
    /// No complete response within the request timeout.
    Timeout,
    /// Anything else (malformed response, …).
    Other,
}

impl ErrorKind {
    /// Key used in `error_kinds`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Other => "other",
        }
    }

    const ALL: [ErrorKind; 4] = [
        ErrorKind::Connect,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::Other,
    ];
}

/// Result of one HTTP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A complete response with this status code.
    Status(u16),
    /// No (complete) response.
    Error(ErrorKind),
}

impl Outcome {
    /// True only for `200`, the code Meta treats as delivered.
    pub fn is_ok(self) -> bool {
        self == Outcome::Status(200)
    }
}

/// One row of the burst-idle table: what happened to the bursts sent after this idle gap.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct GapRow {
    /// Idle time before the burst, milliseconds.
    pub gap_ms: u64,
    /// Bursts sent after this gap.
    pub bursts: u64,
    /// Requests in those bursts.
    pub requests: u64,
    /// Answered `200`.
    pub ok: u64,
    /// Everything else: `non_200` + `reset` + `other_errors`.
    pub failures: u64,
    /// Complete responses other than `200` (a proxy's 502 shows up here).
    pub non_200: u64,
    /// Connection closed before the response (the race when talking to the server directly).
    pub reset: u64,
    /// Connect errors and timeouts.
    pub other_errors: u64,
    /// Pooled connections found closed (and replaced) when the burst started.
    pub reconnects: u64,
}

/// Latency percentiles in milliseconds (request written → response body read).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

/// Outcome of `--retry meta`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RetrySummary {
    /// Deliveries whose first attempt was not a `200`.
    pub first_try_failed: u64,
    /// Redelivery requests sent (each is a duplicate if the target had stored the first one).
    pub resent: u64,
    /// Of `first_try_failed`, how many a later attempt got a `200` for.
    pub eventually_accepted: u64,
    /// Of `first_try_failed`, how many never got a `200` (attempts exhausted).
    pub gave_up: u64,
}

/// Connection pool figures.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ConnectionSummary {
    /// Configured pool size.
    pub pool_size: u64,
    /// TCP connections opened (first use and replacements).
    pub opened: u64,
    /// Idle pooled connections found closed by the server and replaced.
    pub closed_idle: u64,
}

/// The result of a run; this is also the `--json` document.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Target URL.
    pub url: String,
    /// `steady`, `burst` or `burst-idle`.
    pub pattern: String,
    /// Wall time of the whole run including retries, seconds.
    pub duration_s: f64,
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Distinct bodies delivered (first attempts).
    pub deliveries: u64,
    /// WhatsApp messages carried by the deliveries.
    pub messages: u64,
    /// WhatsApp statuses carried by the deliveries.
    pub statuses: u64,
    /// Requests answered `200`.
    pub ok: u64,
    /// Deliveries that got a `200` in the end (first try or retry).
    pub accepted: u64,
    /// HTTP status code → number of responses.
    pub status: BTreeMap<String, u64>,
    /// Requests without a complete response (sum of `error_kinds`).
    pub errors: u64,
    /// `connect`, `reset`, `timeout`, `other` → count.
    pub error_kinds: BTreeMap<String, u64>,
    /// Latency of complete responses.
    pub latency_ms: Latency,
    /// Completed requests per second over `duration_s`.
    pub rps: f64,
    /// Pool figures.
    pub connections: ConnectionSummary,
    /// Present with `--retry meta`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySummary>,
    /// burst-idle only: one row per gap, in sweep order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<GapRow>,
}

impl Summary {
    /// True when every request was answered `200` (what `--expect-all-200` checks).
    pub fn all_200(&self) -> bool {
        self.ok == self.requests && self.errors == 0
    }

    /// Count of responses with `code`.
    pub fn status_count(&self, code: u16) -> u64 {
        self.status.get(&code.to_string()).copied().unwrap_or(0)
    }
}

#[derive(Default)]
struct Inner {
    status: BTreeMap<u16, u64>,
    errors: BTreeMap<ErrorKind, u64>,
    gaps: Vec<GapRow>,
    retry: RetrySummary,
}

/// Thread-safe counters shared by all request tasks.
pub struct Recorder {
    /// Requests started.
    pub sent: AtomicU64,
    /// Requests finished (response or error).
    pub done: AtomicU64,
    /// Requests answered `200`.
    pub ok: AtomicU64,
    /// Deliveries scheduled.
    pub deliveries: AtomicU64,
    /// Deliveries eventually answered `200`.
    pub accepted: AtomicU64,
    messages: AtomicU64,
    statuses: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    inner: Mutex<Inner>,
}

impl Recorder {
    /// Empty counters; `gaps` are the burst-idle gaps (empty otherwise).
    pub fn new(gaps: &[Duration]) -> Self {
        let inner = Inner {
            gaps: gaps
                .iter()
                .map(|g| GapRow {
                    gap_ms: g.as_millis() as u64,
                    ..GapRow::default()
                })
                .collect(),
            ..Inner::default()
        };
        Self {
            sent: AtomicU64::new(0),
            done: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            statuses: AtomicU64::new(0),
            // 1 µs .. 10 min, 3 significant digits.
            latency: Mutex::new(
                Histogram::new_with_bounds(1, 600_000_000, 3).expect("static bounds are valid"),
            ),
            inner: Mutex::new(inner),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new delivery and what it carries.
    pub fn delivery(&self, messages: u32, statuses: u32) {
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        self.messages
            .fetch_add(u64::from(messages), Ordering::Relaxed);
        self.statuses
            .fetch_add(u64::from(statuses), Ordering::Relaxed);
    }

    /// Records one finished request; `gap` is the burst-idle row it belongs to.
    pub fn outcome(&self, outcome: Outcome, latency: Option<Duration>, gap: Option<usize>) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if outcome.is_ok() {
            self.ok.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(l) = latency {
            let us = (l.as_micros() as u64).clamp(1, 600_000_000);
            let _ = self
                .latency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(us);
        }
        let mut inner = self.inner();
        match outcome {
            Outcome::Status(code) => *inner.status.entry(code).or_default() += 1,
            Outcome::Error(kind) => *inner.errors.entry(kind).or_default() += 1,
        }
        if let Some(row) = gap.and_then(|g| inner.gaps.get_mut(g)) {
            row.requests += 1;
            match outcome {
                o if o.is_ok() => row.ok += 1,
                Outcome::Status(_) => row.non_200 += 1,
                Outcome::Error(ErrorKind::Reset) => row.reset += 1,
                Outcome::Error(_) => row.other_errors += 1,
            }
            row.failures = row.non_200 + row.reset + row.other_errors;
        }
    }

    /// Counts a burst sent after gap `gap` and the idle connections found closed before it.
    pub fn burst(&self, gap: usize, reconnects: u64) {
        if let Some(row) = self.inner().gaps.get_mut(gap) {
            row.bursts += 1;
            row.reconnects += reconnects;
        }
    }

    /// Updates the retry figures.
    pub fn retry(&self, f: impl FnOnce(&mut RetrySummary)) {
        f(&mut self.inner().retry);
    }

    /// Builds the summary.
    pub fn summary(
        &self,
        url: &str,
        pattern: &str,
        elapsed: Duration,
        connections: ConnectionSummary,
        retry: bool,
    ) -> Summary {
        let inner = self.inner();
        let h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let ms = |us: u64| us as f64 / 1000.0;
        let latency = if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                p50: ms(h.value_at_quantile(0.50)),
                p90: ms(h.value_at_quantile(0.90)),
                p99: ms(h.value_at_quantile(0.99)),
                max: ms(h.max()),
                mean: h.mean() / 1000.0,
            }
        };
        let done = self.done.load(Ordering::Relaxed);
        let errors: u64 = inner.errors.values().sum();
        Summary {
            url: url.to_owned(),
            pattern: pattern.to_owned(),
            duration_s: elapsed.as_secs_f64(),
            requests: done,
            deliveries: self.deliveries.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            statuses: self.statuses.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            status: inner
                .status
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            errors,
            error_kinds: ErrorKind::ALL
                .iter()
                .map(|k| {
                    (
                        k.as_str().to_owned(),
                        inner.errors.get(k).copied().unwrap_or(0),
                    )
                })
                .collect(),
            latency_ms: latency,
            rps: if elapsed.is_zero() {
                0.0
            } else {
                done as f64 / elapsed.as_secs_f64()
            },
            connections,
            retry: retry.then(|| inner.retry.clone()),
            gaps: inner.gaps.clone(),
        }
    }
}
