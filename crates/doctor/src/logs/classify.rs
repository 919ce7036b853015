//! Decides the class of one request from its access-log fields and the error-log conditions
//! correlated with it (knowledge base sections 2.2 and 8).

use super::class::Class;
use super::parse::{ErrKind, Request};

/// Upstream response time under which a closed connection is a keep-alive race (section 8).
pub const RACE_MAX_SECS: f64 = 0.1;

/// The outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Class.
    pub class: Class,
    /// The client saw a failure (final status, or a truncated body).
    pub visible: bool,
    /// A retry hid the failure from the client.
    pub recovered: bool,
}

fn split_attempts(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', ':']).map(str::trim).filter(|x| !x.is_empty())
}

fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

/// Class of a nginx timeout from the attempt's time: ~proxy-connect-timeout (5 s) vs read.
fn timeout_class(t: Option<f64>) -> Class {
    match t {
        Some(t) if (4.5..5.5).contains(&t) => Class::UpstreamConnectTimeout,
        _ => Class::UpstreamReadTimeout,
    }
}

/// Classifies an nginx/ingress-nginx access line with its correlated error conditions.
pub fn nginx(req: &Request<'_>, errs: &[ErrKind]) -> Option<Verdict> {
    let status = req.status;
    let ok_final = status < 400;
    let statuses: Vec<&str> = req
        .upstream
        .as_ref()
        .map(|u| split_attempts(u.status).collect())
        .unwrap_or_default();
    let times: Vec<Option<f64>> = req
        .upstream
        .as_ref()
        .map(|u| split_attempts(u.time).map(|t| t.parse().ok()).collect())
        .unwrap_or_default();
    let failed_idx = statuses.iter().rposition(|s| s.starts_with('5'));
    let failed_time = failed_idx.and_then(|i| times.get(i).copied().flatten());
    let retried_ok = ok_final && statuses.len() > 1 && failed_idx.is_some();
    // The decisive condition: the last one that is not the informational temp-file warning.
    let decisive = errs
        .iter()
        .rev()
        .find(|k| **k != ErrKind::Buffered)
        .or(errs.last());
    if let Some(&k) = decisive {
        let mut class = k.class();
        if k.is_race_like() && failed_time.is_some_and(|t| t >= RACE_MAX_SECS) {
            class = Class::UpstreamCrashed;
        }
        if !class.is_failure() {
            return Some(Verdict {
                class,
                visible: false,
                recovered: false,
            });
        }
        let visible = !ok_final || class == Class::UpstreamDiedMidBody;
        return Some(Verdict {
            class,
            visible,
            recovered: ok_final && !visible,
        });
    }
    let addr = req.upstream.as_ref().map(|u| u.addr);
    let has_upstream = addr.is_some_and(|a| a != "-" && !a.is_empty());
    let v = |class, visible, recovered| {
        Some(Verdict {
            class,
            visible,
            recovered,
        })
    };
    match status {
        499 => v(Class::ClientAbort, true, false),
        413 if has_upstream => v(Class::BodyTooLargeApp, true, false),
        413 => v(Class::BodyTooLargeProxy, true, false),
        503 if addr == Some("-") => v(Class::NoEndpoints, true, false),
        502 | 504 if req.upstream.is_some() => {
            let class = if status == 504 {
                timeout_class(failed_time)
            } else if statuses.len() > 1 {
                // A POST was retried, so the failure happened before the request was sent.
                Class::UpstreamRefused
            } else if failed_time.is_some_and(|t| t >= RACE_MAX_SECS) {
                Class::UpstreamCrashed
            } else {
                Class::KeepaliveRace
            };
            v(class, true, false)
        }
        s if s >= 500 && has_upstream => v(Class::AppError, true, false),
        s if s >= 500 => v(Class::Unclassified, true, false),
        _ if retried_ok => {
            let failed = failed_idx.map_or("", |i| statuses[i]);
            let class = if failed == "504" {
                timeout_class(failed_time)
            } else if idempotent(req.method()) {
                // GET `502, 200`: a keep-alive race nginx silently retried.
                Class::KeepaliveRace
            } else {
                Class::UpstreamRefused
            };
            v(class, false, true)
        }
        _ => None,
    }
}
