//! One HTTP attempt: build the request for the target's mode, send it, classify the answer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use wagate_journal::events::Delivery;

use crate::config::Mode;

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx.
    Ok(u16),
    /// Worth retrying: connection error, timeout, 408, 425, 429, 5xx. `retry_after` from the
    /// response, when given.
    Retry {
        /// Short reason (`http_503`, `timeout`, `connect`, `io`).
        error: String,
        /// Status class label (`5xx`, `4xx`, `timeout`, `connect`, `io`).
        class: &'static str,
        /// The target's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Rejected (other 4xx, or 3xx since redirects are not followed).
    Reject(u16),
}

impl Answer {
    /// Status class label for metrics.
    pub fn class(&self) -> &'static str {
        match self {
            Answer::Ok(_) => "2xx",
            Answer::Retry { class, .. } => class,
            Answer::Reject(s) if *s < 400 => "3xx",
            Answer::Reject(_) => "4xx",
        }
    }
}

/// How to sign and address deliveries of one target.
pub struct Sender {
    client: reqwest::Client,
    url: reqwest::Url,
    mode: Mode,
    /// Decoded Standard Webhooks key (events mode).
    key: Option<Vec<u8>>,
}

impl Sender {
    /// A sender for `url` with its own connection pool.
    ///
    /// # Errors
    /// A bad URL or a client that cannot be built.
    pub fn new(
        url: &str,
        mode: Mode,
        secret: Option<&str>,
        timeout: Duration,
        concurrency: usize,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // Below the 5 s keep-alive of Node.js servers, so we rarely reuse a socket the app
            // is closing (such a failure is retried anyway).
            .pool_idle_timeout(Duration::from_secs(4))
            .pool_max_idle_per_host(concurrency)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("wagate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Sender {
            client,
            url: reqwest::Url::parse(url).map_err(|e| e.to_string())?,
            mode,
            key: secret.map(wagate_verify::standard_webhooks::key),
        })
    }

    /// Sends `d` as attempt number `attempt` (1-based).
    pub async fn send(&self, d: &Delivery, attempt: u32) -> Answer {
        let mut req = self
            .client
            .post(self.url.clone())
            .header("idempotency-key", header(&d.dedupe_key))
            .header("x-wagate-event-id", header(&d.event_id))
            .header("x-wagate-attempt", attempt.to_string());
        match self.mode {
            Mode::Events => {
                req = req.header(CONTENT_TYPE, "application/json");
                if let Some(key) = &self.key {
                    let ts = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
                    let sig = wagate_verify::standard_webhooks::sign(key, &d.event_id, ts, &d.body);
                    req = req
                        .header("webhook-id", header(&d.event_id))
                        .header("webhook-timestamp", ts.to_string())
                        .header("webhook-signature", header(&sig));
                }
            }
            Mode::Raw => {
                if let Some(ct) = &d.content_type {
                    req = req.header(CONTENT_TYPE, header(ct));
                }
                if let Some((name, value)) = d.signature.as_deref().and_then(|s| s.split_once(':'))
                    && let Ok(name) = http::HeaderName::from_bytes(name.trim().as_bytes())
                {
                    req = req.header(name, header(value.trim()));
                }
            }
        }
        match req.body(d.body.clone()).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| crate::backoff::retry_after(v, SystemTime::now()));
                // Read the body so the connection goes back to the pool.
                let _ = resp.bytes().await;
                classify(status, retry_after)
            }
            Err(e) => {
                let (error, class) = if e.is_timeout() {
                    ("timeout", "timeout")
                } else if e.is_connect() {
                    ("connect", "connect")
                } else {
                    ("io", "io")
                };
                Answer::Retry {
                    error: error.into(),
                    class,
                    retry_after: None,
                }
            }
        }
    }
}

/// The outcome rules of `docs/dispatch.md`: 2xx delivered; 408, 425, 429, 5xx retried; the
/// rest rejected.
pub fn classify(status: u16, retry_after: Option<Duration>) -> Answer {
    match status {
        200..=299 => Answer::Ok(status),
        408 | 425 | 429 | 500..=599 => Answer::Retry {
            error: format!("http_{status}"),
            class: if status >= 500 { "5xx" } else { "4xx" },
            retry_after,
        },
        _ => Answer::Reject(status),
    }
}

fn header(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_rules() {
        assert_eq!(classify(204, None), Answer::Ok(204));
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert!(matches!(classify(s, None), Answer::Retry { .. }), "{s}");
        }
        for s in [301, 400, 401, 403, 404, 410, 422] {
            assert_eq!(classify(s, None), Answer::Reject(s));
        }
    }
}
