//! `--format json`: `{"findings":[{rule, severity, object, path, effective, message, fix,
//! file?, line?}], "app": {...}}`.

use serde_json::json;

use crate::manifests::Report;

/// Renders the report as pretty JSON.
pub fn render(report: &Report) -> String {
    let app = &report.app;
    let v = json!({
        "findings": report.findings,
        "app": {
            "assumed_defaults": app.assumed_defaults,
            "sources": app.sources,
            "idle_timeout_seconds": app.idle.value.map(|d| d.as_secs_f64()),
            "max_body_bytes": app.max_body.value,
            "handler_max_seconds": app.handler_max.value.as_secs_f64(),
            "required_payload_bytes": app.payload.value,
            "front_lb": app.front_lb.value.name(),
        },
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
