//! TO-001, TO-002: proxy response timeouts vs the app's worst-case handler time (proxies.md 2.3,
//! N6, 4).

use std::time::Duration;

use serde_json::Value;

use super::{Ctx, F};
use crate::finding::Severity;
use crate::manifests::load::Document;
use crate::manifests::nginx::ing_setting;
use crate::units::{fmt_dur, parse_duration};

/// Margin over the handler's worst case.
const MARGIN: Duration = Duration::from_secs(5);

pub fn check(ctx: &mut Ctx<'_>) {
    let inv = ctx.inv;
    let handler = ctx.app.handler_max.clone();
    let need = handler.value + MARGIN;
    let handler_txt = format!(
        "handler max {} ({})",
        fmt_dur(handler.value),
        handler.source
    );
    if inv.uses_ingress_nginx() {
        let targets: Vec<Option<&Document>> = {
            let ings = inv.nginx_ingresses();
            if ings.is_empty() {
                vec![None]
            } else {
                ings.into_iter().map(Some).collect()
            }
        };
        for ing in targets {
            let (doc, object) = match ing {
                Some(d) => (Some(d), String::new()),
                None => (inv.controller_cm, "ingress-nginx controller".to_string()),
            };
            let eff = ing_setting(inv, ing, "proxy-read-timeout");
            let read = Duration::from_secs(eff.int().unwrap_or(60).max(0) as u64);
            let path = match ing {
                Some(_) => format!("metadata.annotations[{}/proxy-read-timeout]", inv.prefix()),
                None => "data.proxy-read-timeout".into(),
            };
            if read < need {
                ctx.push(F {
                    rule: "TO-001",
                    severity: Severity::Error,
                    doc,
                    object: object.clone(),
                    path: path.clone(),
                    needle: "proxy-read-timeout".into(),
                    effective: format!("proxy-read-timeout={} < {handler_txt} + 5s", eff.describe()),
                    message: "nginx gives up waiting for the response headers before the app answers -> 504 `upstream timed out (110) while reading response header from upstream`; Meta redelivers, the app may process twice".into(),
                    fix: format!("acknowledge webhooks fast and process asynchronously, or raise `proxy-read-timeout` to at least \"{}\"", need.as_secs()),
                });
            }
            if let Some(rt) = &ctx.app.request_timeout
                && rt.value > read
            {
                ctx.push(F {
                        rule: "TO-002",
                        severity: Severity::Warn,
                        doc,
                        object,
                        path,
                        needle: "proxy-read-timeout".into(),
                        effective: format!("proxy-read-timeout={} < app request timeout {} ({})", eff.describe(), fmt_dur(rt.value), rt.source),
                        message: "the proxy gives up (504) while the app keeps working on the request: the sender retries and the work may run twice".into(),
                        fix: "keep the app's request timeout below the proxy's read timeout".into(),
                    });
            }
        }
    }
    let lb = ctx.app.front_lb.clone();
    if let Some(secs) = lb.value.response_timeout_secs()
        && Duration::from_secs(secs) < need
    {
        ctx.push(F {
            rule: "TO-001",
            severity: Severity::Error,
            doc: None,
            object: format!("front load balancer {} ({})", lb.value.name(), lb.source),
            path: "response timeout".into(),
            needle: String::new(),
            effective: format!(
                "{} response timeout {secs}s < {handler_txt} + 5s",
                lb.value.name()
            ),
            message: "the load balancer answers 502/504 before the app responds".into(),
            fix: "acknowledge webhooks fast, or raise the load balancer's backend/response timeout"
                .into(),
        });
    }
    for st in &inv.servers_transports {
        let raw = st
            .value
            .pointer("/spec/forwardingTimeouts/responseHeaderTimeout")
            .and_then(Value::as_str);
        if let Some(Ok(d)) = raw.map(parse_duration)
            && !d.is_zero()
            && d < need
        {
            ctx.push(F {
                rule: "TO-001",
                severity: Severity::Error,
                doc: Some(st),
                object: String::new(),
                path: "spec.forwardingTimeouts.responseHeaderTimeout".into(),
                needle: "responseHeaderTimeout".into(),
                effective: format!("responseHeaderTimeout={} < {handler_txt} + 5s", fmt_dur(d)),
                message:
                    "Traefik gives up waiting for response headers before the app answers -> 504"
                        .into(),
                fix: format!("raise responseHeaderTimeout to at least {}", fmt_dur(need)),
            });
        }
    }
}
