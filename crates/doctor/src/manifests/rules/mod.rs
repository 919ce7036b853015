//! The rules of `docs/doctor.md` (ids from the knowledge base, section 7). Each module checks
//! one family and pushes [`Finding`]s.

mod annotations;
mod body;
mod configmap;
mod deprecation;
mod keepalive;
mod probes;
mod retry;
mod termination;
mod timeouts;

use super::app::AppSettings;
use super::load::Document;
use super::model::Inventory;
use crate::finding::{Finding, Severity};

/// Everything a rule sees.
pub struct Ctx<'a> {
    /// The sorted objects.
    pub inv: &'a Inventory<'a>,
    /// The app's settings.
    pub app: &'a AppSettings,
    /// Findings so far.
    pub out: Vec<Finding>,
}

/// Arguments of one finding, filled by the rules.
pub struct F<'d> {
    /// Rule id.
    pub rule: &'static str,
    /// Severity.
    pub severity: Severity,
    /// The object's document (for `object`, `file`, `line`), if it is in the input.
    pub doc: Option<&'d Document>,
    /// Object name when `doc` is `None`.
    pub object: String,
    /// Key path.
    pub path: String,
    /// Text to look for to find the line (usually the key).
    pub needle: String,
    /// Effective value.
    pub effective: String,
    /// Message.
    pub message: String,
    /// Fix.
    pub fix: String,
}

impl Ctx<'_> {
    /// Adds a finding.
    pub fn push(&mut self, f: F<'_>) {
        let (object, file, line) = match f.doc {
            Some(d) => {
                let line = if f.needle.is_empty() {
                    None
                } else {
                    d.line_of(&f.needle)
                };
                (
                    d.object(),
                    Some(d.file.clone()),
                    line.or(Some(d.start_line)),
                )
            }
            None => (f.object, None, None),
        };
        self.out.push(Finding {
            rule: f.rule,
            severity: f.severity,
            object,
            path: f.path,
            effective: f.effective,
            message: f.message,
            fix: f.fix,
            file,
            line,
        });
    }

    /// Object label for the app itself (when no document carries the setting).
    pub fn app_object(&self) -> String {
        match self.inv.profiles.first() {
            Some(p) => p.object(),
            None => "app".to_string(),
        }
    }
}

/// Runs every rule.
pub fn run(inv: &Inventory<'_>, app: &AppSettings) -> Vec<Finding> {
    let mut ctx = Ctx {
        inv,
        app,
        out: Vec::new(),
    };
    keepalive::check(&mut ctx);
    annotations::check(&mut ctx);
    configmap::check(&mut ctx);
    body::check(&mut ctx);
    timeouts::check(&mut ctx);
    retry::check(&mut ctx);
    probes::check(&mut ctx);
    termination::check(&mut ctx);
    deprecation::check(&mut ctx);
    ctx.out
}

/// Every rule id with its default severity and a one-line description (SARIF `rules`, docs).
pub const CATALOG: &[(&str, Severity, &str)] = &[
    (
        "KA-001",
        Severity::Error,
        "ingress-nginx upstream keep-alive outlives the app's idle timeout (keep-alive race, 502 on POST)",
    ),
    (
        "KA-002",
        Severity::Error,
        "Envoy/Traefik/load-balancer keep-alive outlives the next hop's idle timeout",
    ),
    (
        "KA-003",
        Severity::Warn,
        "idle timeout margin between two hops is under 5 s",
    ),
    (
        "KA-004",
        Severity::Info,
        "the app never closes idle connections (no race, no idle bound)",
    ),
    (
        "ANN-001",
        Severity::Error,
        "annotation does not exist (or is a ConfigMap-only key) and is ignored",
    ),
    (
        "ANN-002",
        Severity::Error,
        "annotation value is invalid and silently replaced by the default",
    ),
    (
        "ANN-003",
        Severity::Warn,
        "annotation prefix is not read by this controller",
    ),
    (
        "CM-001",
        Severity::Error,
        "ingress-nginx settings in the ConfigMap's metadata.annotations have no effect",
    ),
    (
        "CM-002",
        Severity::Warn,
        "unknown or invalid controller ConfigMap key",
    ),
    (
        "BODY-001",
        Severity::Error,
        "proxy body limit below the largest webhook body (413)",
    ),
    (
        "BODY-002",
        Severity::Warn,
        "app body limit below the largest webhook body (413 from the app)",
    ),
    (
        "BODY-003",
        Severity::Info,
        "client body buffer below a typical webhook (temp-file buffering)",
    ),
    (
        "TO-001",
        Severity::Error,
        "proxy/LB response timeout below the app's worst-case handler time (504)",
    ),
    (
        "TO-002",
        Severity::Warn,
        "app request timeout longer than the proxy's read timeout",
    ),
    (
        "RETRY-001",
        Severity::Warn,
        "POST webhooks are retried by the proxy (duplicates)",
    ),
    (
        "RETRY-002",
        Severity::Info,
        "request buffering off: no retry after the body started",
    ),
    (
        "RETRY-003",
        Severity::Info,
        "service-upstream: proxy_next_upstream has no effect",
    ),
    (
        "PROBE-001",
        Severity::Warn,
        "probes too aggressive (restart storms, flapping endpoints)",
    ),
    ("PROBE-002", Severity::Error, "no readinessProbe"),
    (
        "TERM-001",
        Severity::Error,
        "no preStop delay (endpoint-removal race on rollouts)",
    ),
    (
        "TERM-002",
        Severity::Error,
        "terminationGracePeriodSeconds does not cover preStop + drain",
    ),
    (
        "TERM-003",
        Severity::Error,
        "invalid lifecycle field or preStop handler that cannot run",
    ),
    ("DEP-001", Severity::Info, "ingress-nginx is retired"),
];
