//! `--format sarif`: SARIF 2.1.0 for CI code scanning (one run, `tool.driver.rules` from the
//! rule catalog, one result per finding with file/line when known).

use serde_json::{Value, json};

use crate::finding::Severity;
use crate::manifests::Report;
use crate::manifests::rules::CATALOG;

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warn => "warning",
        Severity::Info => "note",
    }
}

/// Renders the report as a SARIF 2.1.0 log.
pub fn render(report: &Report) -> String {
    let rules: Vec<Value> = CATALOG
        .iter()
        .map(|(id, sev, desc)| {
            json!({
                "id": id,
                "name": id.replace('-', ""),
                "shortDescription": {"text": desc},
                "helpUri": format!("docs/doctor.md#{}", id.to_ascii_lowercase()),
                "defaultConfiguration": {"level": level(*sev)},
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut loc = json!({"logicalLocations": [{"fullyQualifiedName": f.object, "kind": "object"}]});
            if let Some(file) = &f.file {
                let mut phys = json!({"artifactLocation": {"uri": file}});
                if let Some(line) = f.line {
                    phys["region"] = json!({"startLine": line});
                }
                loc["physicalLocation"] = phys;
            }
            json!({
                "ruleId": f.rule,
                "ruleIndex": CATALOG.iter().position(|(id, _, _)| *id == f.rule),
                "level": level(f.severity),
                "message": {"text": format!("{} [{}] effective: {}. Fix: {}", f.message, f.path, f.effective, f.fix)},
                "locations": [loc],
            })
        })
        .collect();
    let v = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "wagate-doctor",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/wagate/docs/doctor.md",
                "rules": rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
