//! Human-readable report, grouped by object.

use std::fmt::Write;

use crate::manifests::Report;

/// Renders findings grouped by object, each with key path, effective value, why and fix.
pub fn render(report: &Report) -> String {
    let mut s = String::new();
    let app = &report.app;
    let _ = writeln!(
        s,
        "wagate doctor manifests: {} objects read",
        report.objects
    );
    if app.assumed_defaults {
        let _ = writeln!(
            s,
            "Assuming wagate's defaults for the app (no --app-* flag, --app-config, WAGATE_* env or DoctorAppProfile found):"
        );
    } else {
        let _ = writeln!(s, "App settings from: {}", app.sources.join(", "));
    }
    let _ = writeln!(s, "  {}\n", app.summary());
    let mut current = None;
    for f in &report.findings {
        if current != Some(&f.object) {
            let loc = match (&f.file, f.line) {
                (Some(file), Some(line)) => format!("  ({file}:{line})"),
                (Some(file), None) => format!("  ({file})"),
                _ => String::new(),
            };
            let _ = writeln!(s, "{}{loc}", f.object);
            current = Some(&f.object);
        }
        let _ = writeln!(s, "  {:<5} {:<9} {}", f.severity.as_str(), f.rule, f.path);
        let _ = writeln!(s, "        effective: {}", f.effective);
        let _ = writeln!(s, "        why: {}", f.message);
        let _ = writeln!(s, "        fix: {}", f.fix);
    }
    let count = |sev| report.findings.iter().filter(|f| f.severity == sev).count();
    use crate::finding::Severity::*;
    let _ = writeln!(
        s,
        "{}{} error(s), {} warning(s), {} info",
        if report.findings.is_empty() { "" } else { "\n" },
        count(Error),
        count(Warn),
        count(Info)
    );
    s
}
