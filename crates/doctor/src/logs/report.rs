//! Log report rendering: text and `--format json` (`{"primary": ..., "classes": [...]}`).

use std::fmt::Write;

use serde_json::{Value, json};

use super::{Report, time};

/// JSON: `primary` (class id or null), `lines`, `requests`, and `classes`: one object per class
/// with `class`, `count`, `client_visible`, `recovered`, `statuses`, `first`, `last`,
/// `examples`, `root_cause`, `fix`, sorted by client-visible count then count.
pub fn to_json(report: &Report) -> Value {
    let mut classes: Vec<_> = report.classes.iter().collect();
    classes.sort_by(|a, b| {
        (b.1.client_visible, b.1.count)
            .cmp(&(a.1.client_visible, a.1.count))
            .then(a.0.cmp(b.0))
    });
    let classes: Vec<Value> = classes
        .into_iter()
        .map(|(c, s)| {
            let statuses: serde_json::Map<String, Value> = s
                .statuses
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            json!({
                "class": c.name(),
                "count": s.count,
                "client_visible": s.client_visible,
                "recovered": s.recovered,
                "failure": c.is_failure(),
                "statuses": statuses,
                "first": s.first.map(time::format),
                "last": s.last.map(time::format),
                "examples": s.examples,
                "root_cause": c.root_cause(),
                "fix": c.fix(),
            })
        })
        .collect();
    json!({
        "primary": report.primary().map(|c| c.name()),
        "lines": report.lines,
        "requests": report.requests,
        "classes": classes,
    })
}

/// Pretty JSON.
pub fn render_json(report: &Report) -> String {
    serde_json::to_string_pretty(&to_json(report)).unwrap_or_default()
}

/// Human-readable report.
pub fn render_text(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "wagate doctor logs: {} lines, {} requests",
        report.lines, report.requests
    );
    let Some(primary) = report.primary() else {
        let _ = writeln!(s, "No proxy failures found.");
        return s;
    };
    let visible: u64 = report.classes.values().map(|c| c.client_visible).sum();
    let _ = writeln!(
        s,
        "Primary: {} ({} client-visible failure(s) in total)\n",
        primary.name(),
        visible
    );
    let v = to_json(report);
    for c in v["classes"].as_array().into_iter().flatten() {
        let statuses: Vec<String> = c["statuses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect();
        let _ = writeln!(
            s,
            "{}{}: {} request(s), {} client-visible{}, {} recovered by retry",
            c["class"].as_str().unwrap_or(""),
            if c["failure"] == json!(false) {
                " (informational)"
            } else {
                ""
            },
            c["count"],
            c["client_visible"],
            if statuses.is_empty() {
                String::new()
            } else {
                format!(" ({})", statuses.join(", "))
            },
            c["recovered"],
        );
        if let (Some(f), Some(l)) = (c["first"].as_str(), c["last"].as_str()) {
            let _ = writeln!(s, "  first {f}, last {l}");
        }
        let _ = writeln!(s, "  cause: {}", c["root_cause"].as_str().unwrap_or(""));
        let _ = writeln!(s, "  fix:   {}", c["fix"].as_str().unwrap_or(""));
        for e in c["examples"].as_array().into_iter().flatten() {
            let _ = writeln!(s, "  | {}", e.as_str().unwrap_or(""));
        }
        let _ = writeln!(s);
    }
    s
}
