//! KA-001..KA-004: who closes an idle keep-alive connection first (proxies.md 2.1, 4, 5).
//! The hop behind must keep idle connections open longer than the hop in front.

use std::time::Duration;

use serde_json::Value;

use super::{Ctx, F};
use crate::finding::Severity;
use crate::manifests::load::Document;
use crate::manifests::nginx::cm_setting;
use crate::units::{fmt_dur, parse_duration};

/// Minimum margin between the hop behind and the hop in front (timer skew, in-flight requests).
const MARGIN: Duration = Duration::from_secs(5);

/// One proxy hop that pools idle connections to the app.
struct Hop<'d> {
    rule: &'static str,
    name: String,
    idle: Duration,
    effective: String,
    doc: Option<&'d Document>,
    object: String,
    path: String,
    needle: String,
    fix_proxy: String,
}

pub fn check(ctx: &mut Ctx<'_>) {
    let inv = ctx.inv;
    let mut hops: Vec<Hop<'_>> = Vec::new();
    let cm_obj = inv
        .controller_cm
        .map_or("ingress-nginx controller ConfigMap".to_string(), |d| {
            d.object()
        });
    if inv.uses_ingress_nginx() {
        let conns = cm_setting(inv, "upstream-keepalive-connections");
        let timeout = cm_setting(inv, "upstream-keepalive-timeout");
        if conns.int().unwrap_or(320) > 0 {
            let secs = timeout.int().unwrap_or(60).max(0) as u64;
            let eff = format!(
                "upstream-keepalive-timeout={}s ({})",
                secs,
                src_word(&timeout.describe())
            );
            let mut note = String::new();
            let ignored_ann = inv
                .ingresses
                .iter()
                .filter(|i| {
                    i.value
                        .pointer("/metadata/annotations")
                        .and_then(Value::as_object)
                        .is_some_and(|a| {
                            a.keys().any(|k| k.ends_with("/upstream-keepalive-timeout"))
                        })
                })
                .count();
            if ignored_ann > 0 {
                note.push_str(" (the Ingress annotation `upstream-keepalive-timeout` does not apply: ANN-001)");
            }
            hops.push(Hop {
                rule: "KA-001",
                name: format!("ingress-nginx upstream keep-alive{note}"),
                idle: Duration::from_secs(secs),
                effective: eff,
                doc: inv.controller_cm,
                object: cm_obj.clone(),
                path: "data.upstream-keepalive-timeout".into(),
                needle: "upstream-keepalive-timeout".into(),
                fix_proxy: "lower ConfigMap `upstream-keepalive-timeout`".into(),
            });
        }
    }
    for dr in &inv.destination_rules {
        let raw = dr
            .value
            .pointer("/spec/trafficPolicy/connectionPool/http/idleTimeout")
            .and_then(Value::as_str);
        let (idle, eff) = match raw.map(parse_duration) {
            Some(Ok(d)) => (d, format!("idleTimeout={} (DestinationRule)", fmt_dur(d))),
            _ => (
                Duration::from_secs(3600),
                "idleTimeout=1h (Envoy default)".to_string(),
            ),
        };
        hops.push(Hop {
            rule: "KA-002",
            name: "Envoy/Istio upstream idle_timeout".into(),
            idle,
            effective: eff,
            doc: Some(dr),
            object: dr.object(),
            path: "spec.trafficPolicy.connectionPool.http.idleTimeout".into(),
            needle: "idleTimeout".into(),
            fix_proxy: "set DestinationRule `trafficPolicy.connectionPool.http.idleTimeout`".into(),
        });
    }
    for st in &inv.servers_transports {
        let raw = st
            .value
            .pointer("/spec/forwardingTimeouts/idleConnTimeout")
            .and_then(Value::as_str);
        let (idle, eff) = match raw.map(parse_duration) {
            Some(Ok(d)) => (
                d,
                format!("idleConnTimeout={} (ServersTransport)", fmt_dur(d)),
            ),
            _ => (
                Duration::from_secs(90),
                "idleConnTimeout=90s (Traefik default)".to_string(),
            ),
        };
        hops.push(Hop {
            rule: "KA-002",
            name: "Traefik serversTransport idleConnTimeout".into(),
            idle,
            effective: eff,
            doc: Some(st),
            object: st.object(),
            path: "spec.forwardingTimeouts.idleConnTimeout".into(),
            needle: "idleConnTimeout".into(),
            fix_proxy: "lower ServersTransport `forwardingTimeouts.idleConnTimeout`".into(),
        });
    }
    let lb = ctx.app.front_lb.value;
    if let Some(lb_idle) = lb.backend_idle_secs() {
        if inv.uses_ingress_nginx() {
            // LB -> ingress-nginx: compare with nginx's client-side keep-alive.
            let ka = cm_setting(inv, "keep-alive");
            let secs = ka.int().unwrap_or(75);
            if secs > 0 {
                let secs = secs as u64;
                let eff = format!(
                    "keep-alive={secs}s ({}) vs {} backend keep-alive {lb_idle}s",
                    src_word(&ka.describe()),
                    lb.name()
                );
                let fix = format!(
                    "set controller ConfigMap `keep-alive: \"{}\"` (above the LB's {lb_idle}s)",
                    lb_idle + 20
                );
                let verdict = if secs <= lb_idle {
                    Some((
                        Severity::Error,
                        "KA-002",
                        format!(
                            "{} reuses idle connections for {lb_idle}s but ingress-nginx closes idle client connections after {secs}s: the LB sends requests on connections nginx already closed -> 502",
                            lb.name()
                        ),
                    ))
                } else if secs < lb_idle + MARGIN.as_secs() {
                    Some((
                        Severity::Warn,
                        "KA-003",
                        format!(
                            "ingress-nginx keep-alive {secs}s exceeds the LB's {lb_idle}s by less than 5s"
                        ),
                    ))
                } else {
                    None
                };
                if let Some((severity, rule, message)) = verdict {
                    ctx.push(F {
                        rule,
                        severity,
                        doc: inv.controller_cm,
                        object: cm_obj.clone(),
                        path: "data.keep-alive".into(),
                        needle: "keep-alive:".into(),
                        effective: eff,
                        message,
                        fix,
                    });
                }
            }
        } else {
            hops.push(Hop {
                rule: "KA-002",
                name: format!("{} backend keep-alive", lb.name()),
                idle: Duration::from_secs(lb_idle),
                effective: format!("{} backend keep-alive {lb_idle}s", lb.name()),
                doc: None,
                object: format!("front load balancer ({})", ctx.app.front_lb.source),
                path: "--front-lb".into(),
                needle: String::new(),
                fix_proxy: "configure the load balancer's idle timeout below the app's, where it is configurable".into(),
            });
        }
    }
    let app_idle = ctx.app.idle.clone();
    let Some(app_secs) = app_idle.value else {
        if !hops.is_empty() || inv.uses_ingress_nginx() || lb != crate::manifests::kb::FrontLb::None
        {
            let obj = ctx.app_object();
            ctx.push(F {
                rule: "KA-004",
                severity: Severity::Info,
                doc: ctx.inv.profiles.first().copied(),
                object: obj,
                path: app_idle.source.clone(),
                needle: "idleKeepAliveTimeoutSeconds".into(),
                effective: format!("app idle timeout: none ({})", app_idle.source),
                message: "the app never closes idle keep-alive connections, so the proxy always closes first (no keep-alive race); idle connections live until the proxy drops them and the app has no idle/slowloris bound of its own".into(),
                fix: "optional: set an explicit idle timeout above every proxy's upstream idle timeout (wagate: server.idle_timeout)".into(),
            });
        }
        return;
    };
    for h in hops {
        let app_txt = format!("app idle {} ({})", fmt_dur(app_secs), app_idle.source);
        let fix = format!(
            "make the app's idle timeout exceed {}s by 5-15 s (wagate: server.idle_timeout = \"{}s\"), or {} below {}",
            h.idle.as_secs(),
            h.idle.as_secs() + 15,
            h.fix_proxy,
            fmt_dur(app_secs)
        );
        if h.idle >= app_secs {
            ctx.push(F {
                rule: h.rule,
                severity: Severity::Error,
                doc: h.doc,
                object: h.object,
                path: h.path,
                needle: h.needle,
                effective: format!("{} >= {app_txt}", h.effective),
                message: format!(
                    "{} keeps idle connections to the app longer than the app does: the proxy may reuse a connection the app already closed -> 502 on POST (nginx does not retry non-idempotent requests)",
                    h.name
                ),
                fix,
            });
        } else if app_secs - h.idle < MARGIN {
            ctx.push(F {
                rule: "KA-003",
                severity: Severity::Warn,
                doc: h.doc,
                object: h.object,
                path: h.path,
                needle: h.needle,
                effective: format!("{} < {app_txt}", h.effective),
                message: format!("the app closes idle connections less than 5s after {}: timer skew and in-flight requests can still race", h.name),
                fix,
            });
        }
    }
}

fn src_word(describe: &str) -> String {
    describe
        .split_once('(')
        .map_or(String::new(), |(_, r)| r.trim_end_matches(')').to_string())
}
