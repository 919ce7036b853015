//! TERM-001..TERM-003: shutdown sequence (proxies.md 5.3, C20-C22): a preStop delay so endpoint
//! removal reaches the proxies first, a grace period that covers it, and valid lifecycle fields.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{Ctx, F};
use crate::finding::Severity;
use crate::manifests::load::scalar_text;
use crate::manifests::model::{app_containers, pod_spec};
use crate::units::fmt_dur;

const LIFECYCLE_KEYS: &[&str] = &["postStart", "preStop", "stopSignal"];
const HANDLER_KEYS: &[&str] = &["exec", "httpGet", "tcpSocket", "sleep"];

/// Images without a shell or `sleep` binary.
fn is_minimal_image(image: &str) -> bool {
    [
        "distroless",
        "scratch",
        "chainguard/static",
        "cgr.dev/chainguard/static",
    ]
    .iter()
    .any(|m| image.contains(m))
}

/// Seconds of delay a preStop handler gives, when it can be read.
fn prestop_delay(pre: &Map<String, Value>) -> Option<u64> {
    if let Some(s) = pre
        .get("sleep")
        .and_then(|s| s.get("seconds"))
        .and_then(Value::as_u64)
    {
        return Some(s);
    }
    let cmd: Vec<String> = pre
        .get("exec")
        .and_then(|e| e.get("command"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(scalar_text).collect())
        .unwrap_or_default();
    let joined = cmd.join(" ");
    let after = joined.split("sleep").nth(1)?;
    after
        .split_whitespace()
        .next()?
        .trim_end_matches(['s', ';', '"', '\''])
        .parse()
        .ok()
}

pub fn check(ctx: &mut Ctx<'_>) {
    let app = ctx.app.clone();
    for w in ctx.inv.app_workloads() {
        let grace = pod_spec(w)
            .and_then(|s| s.get("terminationGracePeriodSeconds"))
            .and_then(Value::as_u64);
        for (i, c) in app_containers(w) {
            let cname = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            let image = c
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let base = format!("spec.template.spec.containers[{i}].lifecycle");
            let lifecycle = c.get("lifecycle").and_then(Value::as_object);
            let mut broken = false;
            for (k, _) in lifecycle.into_iter().flatten() {
                if !LIFECYCLE_KEYS.contains(&k.as_str()) {
                    broken = true;
                    ctx.push(F {
                        rule: "TERM-003",
                        severity: Severity::Error,
                        doc: Some(w),
                        object: String::new(),
                        path: format!("{base}.{k}"),
                        needle: format!("{k}:"),
                        effective: "rejected (unknown field) or ignored".into(),
                        message: format!("`lifecycle.{k}` is not a Kubernetes field (strict decoding rejects it; otherwise it is dropped and no hook runs)"),
                        fix: "use `lifecycle.preStop` (e.g. `preStop: {sleep: {seconds: 10}}`)".into(),
                    });
                }
            }
            let pre = lifecycle
                .and_then(|l| l.get("preStop"))
                .and_then(Value::as_object);
            if let Some(pre) = pre {
                for k in pre.keys().filter(|k| !HANDLER_KEYS.contains(&k.as_str())) {
                    broken = true;
                    ctx.push(F {
                        rule: "TERM-003",
                        severity: Severity::Error,
                        doc: Some(w),
                        object: String::new(),
                        path: format!("{base}.preStop.{k}"),
                        needle: format!("{k}:"),
                        effective: "no valid handler".into(),
                        message: format!("`preStop.{k}` is not a lifecycle handler (exec, httpGet, tcpSocket, sleep)"),
                        fix: "use `preStop: {sleep: {seconds: 10}}` (Kubernetes >= 1.30)".into(),
                    });
                }
                let exec_sleep = pre
                    .get("exec")
                    .is_some_and(|e| e.to_string().contains("sleep"));
                let min_image = app
                    .image
                    .as_deref()
                    .filter(|i| is_minimal_image(i))
                    .map(str::to_string)
                    .or_else(|| Some(image.clone()).filter(|i| is_minimal_image(i)));
                if let (true, Some(img)) = (exec_sleep, min_image) {
                    broken = true;
                    ctx.push(F {
                        rule: "TERM-003",
                        severity: Severity::Error,
                        doc: Some(w),
                        object: String::new(),
                        path: format!("{base}.preStop.exec"),
                        needle: "exec:".into(),
                        effective: format!("image {img} has no `sleep` binary"),
                        message: "the preStop `exec sleep` fails at once in a distroless/scratch image, so there is no delay".into(),
                        fix: "use the native `preStop: {sleep: {seconds: 10}}` action".into(),
                    });
                }
            }
            let delay = if broken {
                None
            } else {
                pre.map(|p| prestop_delay(p).unwrap_or(0))
            };
            let in_app_drain = app
                .drain_delay
                .as_ref()
                .filter(|d| d.value >= Duration::from_secs(5));
            if pre.is_none() && in_app_drain.is_none() {
                ctx.push(F {
                    rule: "TERM-001",
                    severity: Severity::Error,
                    doc: Some(w),
                    object: String::new(),
                    path: format!("{base}.preStop"),
                    needle: format!("name: {cname}"),
                    effective: format!("container {cname}: no preStop; terminationGracePeriodSeconds {}", grace.map_or("30 (default)".into(), |g| g.to_string())),
                    message: "the pod gets SIGTERM while ingress-nginx/kube-proxy/LBs still route to it (endpoint removal lags ~1 s or more) -> `connect() failed (111)` / resets -> 502 on every rollout".into(),
                    fix: "add `lifecycle.preStop.sleep.seconds: 10` (5-15 s in-cluster; longer behind cloud LBs), and raise terminationGracePeriodSeconds accordingly".into(),
                });
            }
            // Expected drain after SIGTERM: wagate's drain_delay + shutdown.timeout, else the
            // worst-case handler time.
            let drain = match (&app.drain_delay, &app.shutdown_timeout) {
                (Some(d), Some(t)) => d.value + t.value,
                (Some(d), None) => d.value + app.handler_max.value,
                _ => app.handler_max.value,
            };
            let pre_secs = Duration::from_secs(delay.unwrap_or(0));
            let grace_d = Duration::from_secs(grace.unwrap_or(30));
            if grace_d <= pre_secs + drain {
                ctx.push(F {
                    rule: "TERM-002",
                    severity: Severity::Error,
                    doc: Some(w),
                    object: String::new(),
                    path: "spec.template.spec.terminationGracePeriodSeconds".into(),
                    needle: "terminationGracePeriodSeconds".into(),
                    effective: format!(
                        "terminationGracePeriodSeconds {} <= preStop {} + drain {}",
                        grace.map_or("30 (default)".into(), |g| g.to_string()),
                        fmt_dur(pre_secs),
                        fmt_dur(drain)
                    ),
                    message: "the kubelet sends SIGKILL before the app finished draining: in-flight webhooks are cut (502/reset)".into(),
                    fix: format!("set terminationGracePeriodSeconds to at least {}", (pre_secs + drain).as_secs() + 10),
                });
            }
        }
    }
}
