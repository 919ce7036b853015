//! Metrics of the ingest path (Prometheus text format on the admin listener's `/metrics`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `wagate_http_requests_total` | counter | `source`, `status` |
//! | `wagate_ack_duration_seconds` | histogram | `source` (request start → response) |
//! | `wagate_journal_append_duration_seconds` | histogram | |
//! | `wagate_journal_append_errors_total` | counter | `reason` (`error`, `timeout`) |
//! | `wagate_journal_requests` | gauge | `state` (journal depth, refreshed every 5 s) |
//! | `wagate_signature_failures_total` | counter | `source` |
//! | `wagate_body_too_large_total` | counter | `source` |
//! | `wagate_connections_open`, `wagate_connections_idle` | gauge | |
//! | `wagate_connection_closes_total` | counter | `reason` |
//! | `wagate_draining` | gauge | 1 while draining |
//!
//! Handles are registered once, so the hot path does no label hashing.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Why a connection ended (`wagate_connection_closes_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Idle longer than `server.idle_timeout`.
    IdleTimeout,
    /// Request head not complete within `server.header_read_timeout` (slowloris).
    HeaderTimeout,
    /// The peer closed it, or a response carried `Connection: close`.
    Peer,
    /// Closed by the shutdown drain.
    Drain,
    /// Protocol or I/O error.
    Error,
}

impl CloseReason {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::Peer => "peer",
            CloseReason::Drain => "drain",
            CloseReason::Error => "error",
        }
    }
}

/// Process-wide metric handles.
pub struct Metrics {
    /// Open connections on the public listener.
    pub connections_open: Gauge,
    /// Open connections with no request in flight.
    pub connections_idle: Gauge,
    closes: [Counter; 5],
    /// Journal append latency.
    pub append_duration: Histogram,
    /// Failed appends.
    pub append_errors: Counter,
    /// Appends that exceeded `ack_timeout`.
    pub append_timeouts: Counter,
    /// 1 while draining.
    pub draining: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let close =
            |r: CloseReason| counter!("wagate_connection_closes_total", "reason" => r.as_str());
        Metrics {
            connections_open: gauge!("wagate_connections_open"),
            connections_idle: gauge!("wagate_connections_idle"),
            closes: [
                close(CloseReason::IdleTimeout),
                close(CloseReason::HeaderTimeout),
                close(CloseReason::Peer),
                close(CloseReason::Drain),
                close(CloseReason::Error),
            ],
            append_duration: histogram!("wagate_journal_append_duration_seconds"),
            append_errors: counter!("wagate_journal_append_errors_total", "reason" => "error"),
            append_timeouts: counter!("wagate_journal_append_errors_total", "reason" => "timeout"),
            draining: gauge!("wagate_draining"),
        }
    }

    /// Handles that record nothing (for listeners we do not report, e.g. the admin one).
    pub fn detached() -> Self {
        Metrics {
            connections_open: Gauge::noop(),
            connections_idle: Gauge::noop(),
            closes: std::array::from_fn(|_| Counter::noop()),
            append_duration: Histogram::noop(),
            append_errors: Counter::noop(),
            append_timeouts: Counter::noop(),
            draining: Gauge::noop(),
        }
    }

    /// Counts a closed connection.
    pub fn close(&self, reason: CloseReason) {
        self.closes[reason as usize].increment(1);
    }
}

/// Statuses with pre-registered counters; others go through the macro.
const STATUSES: [u16; 10] = [200, 400, 401, 403, 404, 405, 408, 413, 415, 503];

/// Per-source handles.
pub struct SourceMetrics {
    source: String,
    by_status: [Counter; STATUSES.len()],
    /// Request start → response, seconds.
    pub ack_duration: Histogram,
    /// Missing or wrong signatures.
    pub signature_failures: Counter,
    /// Bodies over `server.max_body`.
    pub body_too_large: Counter,
}

impl SourceMetrics {
    /// Registers the handles of source `name`.
    pub fn new(name: &str) -> Self {
        let source = name.to_owned();
        SourceMetrics {
            by_status: STATUSES.map(|s| counter!("wagate_http_requests_total", "source" => source.clone(), "status" => s.to_string())),
            ack_duration: histogram!("wagate_ack_duration_seconds", "source" => source.clone()),
            signature_failures: counter!("wagate_signature_failures_total", "source" => source.clone()),
            body_too_large: counter!("wagate_body_too_large_total", "source" => source.clone()),
            source,
        }
    }

    /// Counts one response.
    pub fn status(&self, status: u16) {
        match STATUSES.iter().position(|s| *s == status) {
            Some(i) => self.by_status[i].increment(1),
            None => counter!("wagate_http_requests_total", "source" => self.source.clone(), "status" => status.to_string()).increment(1),
        }
    }
}

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Installs the Prometheus recorder once per process (histograms get buckets, so they aggregate
/// across pods) and returns the global handles. Later calls return the same handles.
pub fn init() -> &'static Metrics {
    RECORDER.get_or_init(|| {
        let latency = [
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
            .ok()?
            .install_recorder()
            .ok()?;
        Some(handle)
    });
    METRICS.get_or_init(Metrics::new)
}

/// Renders the Prometheus text exposition, running the recorder's upkeep first.
pub fn render() -> String {
    match RECORDER.get() {
        Some(Some(handle)) => {
            handle.run_upkeep();
            handle.render()
        }
        _ => String::new(),
    }
}
