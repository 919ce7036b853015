//! PROBE-001, PROBE-002: probes that flap or restart pods under load, and missing readiness
//! (proxies.md 5.3, N4).

use serde_json::{Map, Value};

use super::{Ctx, F};
use crate::finding::Severity;
use crate::manifests::model::app_containers;

fn int(probe: &Map<String, Value>, key: &str, default: i64) -> i64 {
    probe.get(key).and_then(Value::as_i64).unwrap_or(default)
}

/// The probe's action (httpGet/tcpSocket/exec/grpc), to compare liveness with readiness.
fn action(probe: &Map<String, Value>) -> Option<&Value> {
    ["httpGet", "tcpSocket", "exec", "grpc"]
        .iter()
        .find_map(|k| probe.get(*k))
}

pub fn check(ctx: &mut Ctx<'_>) {
    for w in ctx.inv.app_workloads() {
        for (i, c) in app_containers(w) {
            let cname = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            let base = format!("spec.template.spec.containers[{i}]");
            let readiness = c.get("readinessProbe").and_then(Value::as_object);
            let liveness = c.get("livenessProbe").and_then(Value::as_object);
            let startup = c.get("startupProbe").and_then(Value::as_object);
            if readiness.is_none() {
                ctx.push(F {
                    rule: "PROBE-002",
                    severity: Severity::Error,
                    doc: Some(w),
                    object: String::new(),
                    path: format!("{base}.readinessProbe"),
                    needle: format!("name: {cname}"),
                    effective: format!("container {cname}: no readinessProbe (Ready as soon as it starts)"),
                    message: "without a readiness probe the pod receives traffic before it listens and while it shuts down -> `connect() failed (111: Connection refused)` 502s on every rollout".into(),
                    fix: "add a readinessProbe on the app's readiness endpoint (wagate: httpGet /readyz on the admin port 9090)".into(),
                });
            }
            let mut reasons = Vec::new();
            if let Some(l) = liveness {
                let (t, p, f) = (
                    int(l, "timeoutSeconds", 1),
                    int(l, "periodSeconds", 10),
                    int(l, "failureThreshold", 3),
                );
                if t <= 1 && p <= 5 && f <= 1 {
                    reasons.push(format!("liveness timeoutSeconds {t} with periodSeconds {p} and failureThreshold {f}: one slow answer restarts the pod"));
                }
                if let (Some(r), Some(la)) = (readiness, action(l))
                    && action(r) == Some(la)
                {
                    reasons.push("liveness probes the same endpoint as readiness: a dependency outage that should only take the pod out of rotation restarts it (restart storm)".into());
                }
                if startup.is_none() && int(l, "initialDelaySeconds", 0) == 0 {
                    reasons.push("no startupProbe and liveness initialDelaySeconds 0: a slow start is killed before it is ready".into());
                }
            }
            if let Some(r) = readiness {
                let (p, f) = (int(r, "periodSeconds", 10), int(r, "failureThreshold", 3));
                if f <= 1 && p <= 2 {
                    reasons.push(format!("readiness failureThreshold {f} at periodSeconds {p}: one slow answer removes the endpoint (flapping)"));
                }
            }
            if !reasons.is_empty() {
                ctx.push(F {
                    rule: "PROBE-001",
                    severity: Severity::Warn,
                    doc: Some(w),
                    object: String::new(),
                    path: format!("{base}.livenessProbe"),
                    needle: if liveness.is_some() { "livenessProbe:".into() } else { "readinessProbe:".into() },
                    effective: format!("container {cname}: {}", reasons.len()),
                    message: format!("probes too aggressive -> restart storms / endpoint flapping -> 502s: {}", reasons.join("; ")),
                    fix: "liveness on a cheap endpoint that does not check dependencies (wagate: /healthz), timeoutSeconds >= 2, failureThreshold >= 3; readiness on /readyz with failureThreshold >= 2; add a startupProbe".into(),
                });
            }
        }
    }
}
