//! The human-readable summary printed after a run.

use std::fmt::Write as _;

use crate::stats::Summary;

/// Renders `s` as aligned text lines (the `--json` file holds the same figures).
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "target      {} ({})", s.url, s.pattern);
    let _ = writeln!(out, "duration    {:.2} s, {:.0} req/s", s.duration_s, s.rps);
    let _ = writeln!(
        out,
        "requests    {} ({} deliveries carrying {} messages, {} statuses)",
        s.requests, s.deliveries, s.messages, s.statuses
    );
    let codes: Vec<String> = s.status.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(
        out,
        "status      {}",
        if codes.is_empty() {
            "-".to_owned()
        } else {
            codes.join(", ")
        }
    );
    let kinds: Vec<String> = s
        .error_kinds
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let _ = writeln!(
        out,
        "errors      {}{}",
        s.errors,
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        }
    );
    let l = &s.latency_ms;
    let _ = writeln!(
        out,
        "latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
        l.p50, l.p90, l.p99, l.max
    );
    let c = &s.connections;
    let _ = writeln!(
        out,
        "connections pool {}, opened {}, found closed while idle {}",
        c.pool_size, c.opened, c.closed_idle
    );
    if let Some(r) = &s.retry {
        let _ = writeln!(
            out,
            "retry       {} failed first, {} resent, {} eventually accepted, {} gave up; {}/{} deliveries accepted",
            r.first_try_failed,
            r.resent,
            r.eventually_accepted,
            r.gave_up,
            s.accepted,
            s.deliveries
        );
    }
    if !s.gaps.is_empty() {
        let _ = writeln!(
            out,
            "\n{:>9} {:>7} {:>9} {:>7} {:>9} {:>8} {:>7} {:>7} {:>11}",
            "gap_ms",
            "bursts",
            "requests",
            "ok",
            "failures",
            "non_200",
            "reset",
            "other",
            "reconnects"
        );
        for g in &s.gaps {
            let _ = writeln!(
                out,
                "{:>9} {:>7} {:>9} {:>7} {:>9} {:>8} {:>7} {:>7} {:>11}",
                g.gap_ms,
                g.bursts,
                g.requests,
                g.ok,
                g.failures,
                g.non_200,
                g.reset,
                g.other_errors,
                g.reconnects
            );
        }
    }
    out
}
