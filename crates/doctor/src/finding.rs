//! One lint finding: the stable JSON shape of `wagate doctor manifests --format json`.

use serde::Serialize;

/// Severity of a finding; `error` fails the run (exit 1), `warn` only with `--fail-on warn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never fails a run.
    Info,
    /// Likely problem; fails with `--fail-on warn`.
    Warn,
    /// Will cause client-visible errors (502/504/413, duplicates); fails the run.
    Error,
}

impl Severity {
    /// `error`, `warn` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// A finding. Field names are the public JSON contract: `rule`, `severity`, `object`, `path`,
/// `effective`, `message`, `fix` (plus `file`/`line` when the source position is known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Rule id from `docs/doctor.md`, e.g. `KA-001`.
    pub rule: &'static str,
    /// Severity after escalation (e.g. `RETRY-001` is an error when processing is not idempotent).
    pub severity: Severity,
    /// The object, `Kind namespace/name` (e.g. `Ingress whatsapp/wa-gateway`).
    pub object: String,
    /// The offending key path inside the object, e.g. `data.upstream-keepalive-timeout`.
    pub path: String,
    /// The value that is really in force and where it comes from, e.g. `60s (default)`.
    pub effective: String,
    /// What is wrong and why it matters.
    pub message: String,
    /// What to change.
    pub fix: String,
    /// Input file (or `-` for stdin), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line in `file`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}
