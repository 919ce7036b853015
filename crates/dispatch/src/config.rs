//! Config sections owned by dispatch: `[[targets]]` and `[dispatch]`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wagate_model::Event;

/// How a target receives deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One normalized event per POST (JSON body = the event), signed with Standard Webhooks.
    #[default]
    Events,
    /// The original request, byte-identical, with its `Content-Type` and signature header.
    Raw,
}

/// One `[[targets]]` entry: where and how deliveries go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Unique name (metrics label, dead-letter column).
    pub name: String,
    /// `http://` URL to POST to (`https://` with the `tls` feature).
    pub url: String,
    /// `events` or `raw`.
    #[serde(default)]
    pub mode: Mode,
    /// Standard Webhooks signing secret (events mode): `whsec_<base64>` or raw text; may be
    /// `env:NAME` or `file:/path` (resolved at start).
    #[serde(default)]
    pub secret: Option<String>,
    /// Whole-attempt timeout (connect, send, response head and body).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts in flight at once (each on a different conversation).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Optional limit in deliveries per second, on top of `concurrency`.
    #[serde(default)]
    pub rate: Option<u32>,
    /// Only requests from these sources (empty: all).
    #[serde(default)]
    pub sources: Vec<String>,
    /// Only events of these kinds (`message`, `status`, `error`, `echo`, `ops`, `unknown`).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Only events with these `field`s (Meta change field or bridge event name).
    #[serde(default)]
    pub fields: Vec<String>,
    /// Only events with these `type`s (message type, status value, ...).
    #[serde(default)]
    pub types: Vec<String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_concurrency() -> usize {
    64
}

impl TargetConfig {
    /// Whether requests of `source` are for this target.
    pub fn takes_source(&self, source: &str) -> bool {
        self.sources.is_empty() || self.sources.iter().any(|s| s == source)
    }

    /// Whether `event` passes the kind, field and type filters.
    pub fn takes(&self, event: &Event<'_>) -> bool {
        let any = |list: &[String], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
        };
        any(&self.kinds, Some(event.kind.as_str()))
            && any(&self.fields, event.field.as_deref())
            && any(&self.types, event.type_.as_deref())
    }

    /// The entry with its secret masked (for `wagate config print`).
    pub fn masked(&self) -> Self {
        let mut t = self.clone();
        if t.secret.is_some() {
            t.secret = Some("***".into());
        }
        t
    }
}

/// `[dispatch]`: retry schedule, dedupe window, retention, breaker and polling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// Age (since receipt) after which a failing delivery is dead-lettered.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// First backoff ceiling; doubles per attempt (full jitter: a random delay up to it).
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Largest backoff ceiling.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// How long a `dedupe_key` is remembered (Meta retries for up to 7 days).
    #[serde(with = "humantime_serde")]
    pub dedupe_window: Duration,
    /// How long delivered records (and done requests) are kept.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// `true`: a 4xx other than 408/425/429 dead-letters at once; `false`: it is retried.
    pub dead_letter_4xx: bool,
    /// Consecutive failed attempts of a target that open its circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker waits before one probe attempt.
    #[serde(with = "humantime_serde")]
    pub breaker_cooldown: Duration,
    /// Longest wait between checks for new requests and due retries when nothing wakes the
    /// dispatcher earlier.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Requests exploded per transaction.
    pub batch: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        DispatchConfig {
            max_attempts: 25,
            max_age: Duration::from_secs(7 * DAY),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(600),
            dedupe_window: Duration::from_secs(7 * DAY),
            retention: Duration::from_secs(7 * DAY),
            dead_letter_4xx: true,
            breaker_failures: 10,
            breaker_cooldown: Duration::from_secs(5),
            poll_interval: Duration::from_millis(200),
            batch: 256,
        }
    }
}

/// Invalid dispatch configuration.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// Offending key, e.g. `targets[0].url`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn err(key: String, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        message: message.into(),
    }
}

/// Cross-field checks of `[[targets]]` and `[dispatch]`.
///
/// # Errors
/// The first problem found.
pub fn validate(targets: &[TargetConfig], dispatch: &DispatchConfig) -> Result<(), ConfigError> {
    let mut names = std::collections::HashSet::new();
    for (i, t) in targets.iter().enumerate() {
        let key = |f: &str| format!("targets[{i}].{f}");
        if t.name.is_empty() || !names.insert(t.name.as_str()) {
            return Err(err(key("name"), "must be non-empty and unique"));
        }
        let url = reqwest::Url::parse(&t.url).map_err(|e| err(key("url"), e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err(key("url"), "must be http:// or https://"));
        }
        if t.concurrency == 0 {
            return Err(err(key("concurrency"), "must be at least 1"));
        }
        if t.rate == Some(0) {
            return Err(err(key("rate"), "must be at least 1 (or absent)"));
        }
        if t.timeout.is_zero() {
            return Err(err(key("timeout"), "must be above 0"));
        }
        let kinds = [
            "message", "status", "error", "echo", "ops", "unknown", "invalid",
        ];
        if let Some(k) = t.kinds.iter().find(|k| !kinds.contains(&k.as_str())) {
            return Err(err(key("kinds"), format!("unknown kind {k:?}")));
        }
    }
    if dispatch.max_attempts == 0 {
        return Err(err("dispatch.max_attempts".into(), "must be at least 1"));
    }
    if dispatch.backoff_base.is_zero() || dispatch.backoff_max < dispatch.backoff_base {
        return Err(err(
            "dispatch.backoff_base".into(),
            "must be above 0 and at most backoff_max",
        ));
    }
    if dispatch.breaker_failures == 0 {
        return Err(err(
            "dispatch.breaker_failures".into(),
            "must be at least 1",
        ));
    }
    if dispatch.batch == 0 || dispatch.poll_interval.is_zero() {
        return Err(err(
            "dispatch.batch".into(),
            "batch and poll_interval must be above 0",
        ));
    }
    Ok(())
}
