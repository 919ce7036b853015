//! BODY-001..BODY-003: request body limits along the path vs the largest webhook body
//! (proxies.md N14/N16, 5.1, case C26).

use super::{Ctx, F};
use crate::finding::Severity;
use crate::manifests::load::Document;
use crate::manifests::nginx::ing_setting;
use crate::units::fmt_bytes;

/// Body sizes up to this are "typical" single-event webhooks (most are 1-3 KiB); a body buffer
/// smaller than this spools ordinary deliveries to disk.
pub const TYPICAL_PAYLOAD: u64 = 8 << 10;

/// Headroom over the required payload: 10 %.
fn with_headroom(payload: u64) -> u64 {
    payload + payload / 10
}

pub fn check(ctx: &mut Ctx<'_>) {
    let inv = ctx.inv;
    let payload = ctx.app.payload.clone();
    let need = with_headroom(payload.value);
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
            let eff = ing_setting(inv, ing, "proxy-body-size");
            let limit = eff.size().unwrap_or(1 << 20);
            if limit != 0 && limit < need {
                let mut message = format!(
                    "client_max_body_size is {} but webhook bodies up to {} ({}) must pass (+10% headroom): larger bodies get 413 `client intended to send too large body` and never reach the app",
                    fmt_bytes(limit),
                    fmt_bytes(payload.value),
                    payload.source
                );
                if !eff.ignored.is_empty() {
                    message.push_str(&format!(
                        "; your setting did not apply: {}",
                        eff.ignored.join("; ")
                    ));
                }
                let (path, needle) = match ing {
                    Some(_) => (
                        format!("metadata.annotations[{}/proxy-body-size]", inv.prefix()),
                        "annotations:".to_string(),
                    ),
                    None => ("data.proxy-body-size".to_string(), "data:".to_string()),
                };
                ctx.push(F {
                    rule: "BODY-001",
                    severity: Severity::Error,
                    doc,
                    object,
                    path,
                    needle,
                    effective: format!("proxy-body-size={}", eff.describe()),
                    message,
                    fix: format!(
                        "set annotation `{}/proxy-body-size: \"{}m\"` (or ConfigMap `proxy-body-size`)",
                        inv.prefix(),
                        need.div_ceil(1 << 20).max(4)
                    ),
                });
            }
            let buf = ing_setting(inv, ing, "client-body-buffer-size");
            if let Some(b) = buf.size()
                && b < TYPICAL_PAYLOAD
            {
                ctx.push(F {
                        rule: "BODY-003",
                        severity: Severity::Info,
                        doc,
                        object: "ingress-nginx controller".into(),
                        path: "client-body-buffer-size".into(),
                        needle: "client-body-buffer-size".into(),
                        effective: format!("client-body-buffer-size={}", buf.describe()),
                        message: format!("bodies over {} are buffered to a temporary file (disk I/O per webhook; log: `a client request body is buffered to a temporary file`)", fmt_bytes(b)),
                        fix: "set `client-body-buffer-size` to at least \"64k\"".into(),
                    });
            }
        }
    }
    if let Some(app_limit) = ctx.app.max_body.value
        && app_limit < payload.value
    {
        let obj = ctx.app_object();
        ctx.push(F {
                rule: "BODY-002",
                severity: Severity::Warn,
                doc: inv.profiles.first().copied(),
                object: obj,
                path: ctx.app.max_body.source.clone(),
                needle: "maxRequestBodyBytes".into(),
                effective: format!("app body limit {} ({})", fmt_bytes(app_limit), ctx.app.max_body.source),
                message: format!("the app rejects bodies over {} with 413 although webhooks up to {} must pass (the 413 then carries an upstream address in the access log)", fmt_bytes(app_limit), fmt_bytes(payload.value)),
                fix: format!("raise the app's body limit to at least {} (wagate: server.max_body = \"4MiB\")", fmt_bytes(need)),
            });
    }
}
