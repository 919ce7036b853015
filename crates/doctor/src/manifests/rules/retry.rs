//! RETRY-001..RETRY-003: proxy retries of POST webhooks (proxies.md 2.2, C12) and settings that
//! change retry behaviour.

use serde_json::Value;

use super::{Ctx, F};
use crate::finding::Severity;
use crate::manifests::load::scalar_text;
use crate::manifests::model::annotations;
use crate::manifests::nginx::cm_setting;

pub fn check(ctx: &mut Ctx<'_>) {
    let inv = ctx.inv;
    let (sev, why) = match ctx.app.idempotent.value {
        Some(false) => (
            Severity::Error,
            format!(
                "processing is not idempotent ({})",
                ctx.app.idempotent.source
            ),
        ),
        Some(true) => (
            Severity::Info,
            format!(
                "processing is idempotent ({}), so duplicates are harmless",
                ctx.app.idempotent.source
            ),
        ),
        None => (
            Severity::Warn,
            "make sure processing deduplicates on the WhatsApp message id".to_string(),
        ),
    };
    let fix = "keep POST retries off (remove `retry-non-idempotent` / the `non_idempotent` token), or deduplicate deliveries by message id before enabling them";
    if inv.uses_ingress_nginx() {
        let cm = inv.controller_cm;
        if cm_setting(inv, "retry-non-idempotent").raw == "true" {
            ctx.push(F {
                rule: "RETRY-001",
                severity: sev,
                doc: cm,
                object: "ingress-nginx controller ConfigMap".into(),
                path: "data.retry-non-idempotent".into(),
                needle: "retry-non-idempotent".into(),
                effective: "retry-non-idempotent=true (ConfigMap): proxy_next_upstream gets non_idempotent".into(),
                message: format!("nginx retries POST webhooks on another pod after an error/timeout although the first attempt may have been processed -> duplicate deliveries; {why}"),
                fix: fix.into(),
            });
        }
        if cm_setting(inv, "proxy-next-upstream")
            .raw
            .split_whitespace()
            .any(|t| t == "non_idempotent")
        {
            ctx.push(F {
                rule: "RETRY-001",
                severity: sev,
                doc: cm,
                object: "ingress-nginx controller ConfigMap".into(),
                path: "data.proxy-next-upstream".into(),
                needle: "proxy-next-upstream".into(),
                effective: "proxy-next-upstream contains non_idempotent (ConfigMap)".into(),
                message: format!(
                    "POST requests are retried on another upstream -> duplicate deliveries; {why}"
                ),
                fix: fix.into(),
            });
        }
        for ing in inv.nginx_ingresses() {
            let anns = annotations(ing);
            let get = |k: &str| {
                anns.get(&format!("{}/{k}", inv.prefix()))
                    .and_then(scalar_text)
            };
            if get("proxy-next-upstream")
                .is_some_and(|v| v.split_whitespace().any(|t| t == "non_idempotent"))
            {
                ctx.push(F {
                    rule: "RETRY-001",
                    severity: sev,
                    doc: Some(ing),
                    object: String::new(),
                    path: format!("metadata.annotations[{}/proxy-next-upstream]", inv.prefix()),
                    needle: "proxy-next-upstream".into(),
                    effective: format!("proxy-next-upstream={:?} (annotation)", get("proxy-next-upstream").unwrap_or_default()),
                    message: format!("the `non_idempotent` token makes nginx retry POST webhooks on another pod -> duplicate deliveries; {why}"),
                    fix: fix.into(),
                });
            }
            if get("proxy-request-buffering").as_deref() == Some("off") {
                ctx.push(F {
                    rule: "RETRY-002",
                    severity: Severity::Info,
                    doc: Some(ing),
                    object: String::new(),
                    path: format!("metadata.annotations[{}/proxy-request-buffering]", inv.prefix()),
                    needle: "proxy-request-buffering".into(),
                    effective: "proxy-request-buffering=off (annotation)".into(),
                    message: "nginx streams the body to the app; once sending started it cannot retry the request on another pod (and slow senders hold app connections)".into(),
                    fix: "keep request buffering on (the default) unless bodies are streamed on purpose".into(),
                });
            }
            if get("service-upstream").as_deref() == Some("true") {
                push_service_upstream(ctx, Some(ing), "annotation");
            }
        }
        if cm_setting(inv, "proxy-request-buffering").raw == "off" {
            ctx.push(F {
                rule: "RETRY-002",
                severity: Severity::Info,
                doc: cm,
                object: "ingress-nginx controller ConfigMap".into(),
                path: "data.proxy-request-buffering".into(),
                needle: "proxy-request-buffering".into(),
                effective: "proxy-request-buffering=off (ConfigMap)".into(),
                message: "no retry once the body started streaming".into(),
                fix: "keep request buffering on (the default)".into(),
            });
        }
        if cm_setting(inv, "service-upstream").raw == "true" {
            push_service_upstream(ctx, cm, "ConfigMap");
        }
    }
    for vs in inv.virtual_services.iter().copied() {
        for (i, route) in vs
            .value
            .pointer("/spec/http")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let attempts = route.pointer("/retries/attempts").and_then(Value::as_i64);
            let eff = match attempts {
                Some(0) => continue,
                Some(n) => format!("retries.attempts={n}"),
                None => "no retries block: Istio default (2 retries, includes 503)".to_string(),
            };
            ctx.push(F {
                rule: "RETRY-001",
                severity: sev,
                doc: Some(vs),
                object: String::new(),
                path: format!("spec.http[{i}].retries"),
                needle: "http:".into(),
                effective: eff,
                message: format!("the Envoy sidecar/gateway retries POST webhooks (istio#51619: one POST executed 3 times); {why}"),
                fix: "set `retries: {attempts: 0}` on webhook routes, or deduplicate by message id".into(),
            });
        }
    }
}

fn push_service_upstream(
    ctx: &mut Ctx<'_>,
    doc: Option<&crate::manifests::load::Document>,
    src: &str,
) {
    ctx.push(F {
        rule: "RETRY-003",
        severity: Severity::Info,
        doc,
        object: "ingress-nginx controller".into(),
        path: "service-upstream".into(),
        needle: "service-upstream".into(),
        effective: format!("service-upstream=true ({src})"),
        message: "nginx proxies to the Service ClusterIP: `proxy_next_upstream` has no effect (no retry on another pod) and keep-alive connections go through kube-proxy/conntrack".into(),
        fix: "remove `service-upstream` unless needed".into(),
    });
}
