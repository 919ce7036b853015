//! ANN-001..ANN-003: Ingress annotations that do not exist, carry invalid values, or belong to
//! another controller (proxies.md 1.3, 1.4, appendix A/B).

use serde_json::Value;

use super::{Ctx, F};
use crate::finding::Severity;
use crate::manifests::kb;
use crate::manifests::model::{ControllerKind, Inventory, annotations};
use crate::manifests::nginx::{cm_setting, valid};

/// `proxy-next-upstream` tokens (ingress-nginx `proxy/main.go` l.51).
const NEXT_UPSTREAM_TOKENS: &[&str] = &[
    "error",
    "timeout",
    "invalid_header",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "http_403",
    "http_404",
    "http_429",
    "non_idempotent",
    "off",
];

pub fn check(ctx: &mut Ctx<'_>) {
    let inv = ctx.inv;
    let prefix = format!("{}/", inv.prefix());
    let nginx_inc = inv
        .controller
        .as_ref()
        .is_some_and(|c| c.kind == ControllerKind::NginxInc);
    for ing in inv.ingresses.iter().copied() {
        let nginx_class = Inventory::is_nginx_class(ing);
        for (key, value) in annotations(ing) {
            let path = format!("metadata.annotations[{key}]");
            let needle = format!("{key}:");
            if !value.is_string() {
                ctx.push(F {
                    rule: "ANN-002",
                    severity: Severity::Error,
                    doc: Some(ing),
                    object: String::new(),
                    path: path.clone(),
                    needle: needle.clone(),
                    effective: format!("{value} (YAML {})", if value.is_boolean() { "bool" } else { "number" }),
                    message: "annotation values must be strings: the API server (kubectl apply) rejects this Ingress, so none of its settings apply".into(),
                    fix: format!("quote the value: {key}: \"{value}\""),
                });
                continue;
            }
            let text = value.as_str().unwrap_or_default();
            if let Some(name) = key.strip_prefix(&prefix) {
                if nginx_inc {
                    ctx.push(F {
                        rule: "ANN-003",
                        severity: Severity::Warn,
                        doc: Some(ing),
                        object: String::new(),
                        path,
                        needle,
                        effective: "ignored".into(),
                        message: "the controller in the input is NGINX Inc's kubernetes-ingress, which ignores `nginx.ingress.kubernetes.io/*` annotations".into(),
                        fix: "use that controller's `nginx.org/*` annotations (e.g. nginx.org/client-max-body-size)".into(),
                    });
                    continue;
                }
                if !nginx_class {
                    let class = ing
                        .value
                        .pointer("/spec/ingressClassName")
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    ctx.push(F {
                        rule: "ANN-003",
                        severity: Severity::Warn,
                        doc: Some(ing),
                        object: String::new(),
                        path,
                        needle,
                        effective: "ignored".into(),
                        message: format!("this Ingress has class `{class}`, so ingress-nginx does not serve it and ignores its annotations"),
                        fix: "use the annotations of the controller that serves this class".into(),
                    });
                    continue;
                }
                check_nginx_annotation(ctx, ing, name, text, &path, &needle);
            } else if key.starts_with(&format!("{}/", kb::DEFAULT_PREFIX)) {
                ctx.push(F {
                    rule: "ANN-003",
                    severity: Severity::Warn,
                    doc: Some(ing),
                    object: String::new(),
                    path,
                    needle,
                    effective: "ignored".into(),
                    message: format!("the controller runs with --annotations-prefix={}, so this prefix is ignored", inv.prefix()),
                    fix: format!("rename to {}{}", prefix, key.split_once('/').map_or("", |(_, r)| r)),
                });
            } else if nginx_class
                && !nginx_inc
                && let Some((p, owner)) = kb::FOREIGN_PREFIXES
                    .iter()
                    .find(|(p, _)| key.starts_with(p))
            {
                ctx.push(F {
                    rule: "ANN-003",
                    severity: Severity::Warn,
                    doc: Some(ing),
                    object: String::new(),
                    path,
                    needle,
                    effective: "ignored".into(),
                    message: format!(
                        "`{p}` annotations belong to {owner}; ingress-nginx ignores them"
                    ),
                    fix: format!("use the `{prefix}` equivalent"),
                });
            }
        }
    }
}

fn check_nginx_annotation(
    ctx: &mut Ctx<'_>,
    ing: &crate::manifests::load::Document,
    name: &str,
    text: &str,
    path: &str,
    needle: &str,
) {
    let push = |ctx: &mut Ctx<'_>, rule, effective: String, message: String, fix: String| {
        ctx.push(F {
            rule,
            severity: Severity::Error,
            doc: Some(ing),
            object: String::new(),
            path: path.to_string(),
            needle: needle.to_string(),
            effective,
            message,
            fix,
        })
    };
    if !kb::is_annotation(name) {
        let (effective, message, fix) = if kb::is_configmap_key(name) {
            let eff = cm_setting(ctx.inv, name);
            (
                format!("{name}={}; the annotation is ignored", eff.describe()),
                format!(
                    "`{name}` is a controller ConfigMap key, not an annotation: it is silently ignored (ConfigMap-only key; set it in the controller ConfigMap `data:`)"
                ),
                format!(
                    "remove the annotation and set `{name}: \"{text}\"` in the ingress-nginx controller ConfigMap `data:` (applies to all Ingresses)"
                ),
            )
        } else {
            let hint = kb::hint_for(name)
                .map(str::to_string)
                .or_else(|| {
                    kb::closest(name, kb::ANNOTATIONS).map(|c| format!("did you mean `{c}`?"))
                })
                .unwrap_or_default();
            (
                "ignored".to_string(),
                format!(
                    "no such annotation or ConfigMap key `{name}`: it is silently ignored; {hint}"
                ),
                format!("remove it; {hint}"),
            )
        };
        push(ctx, "ANN-001", effective, message, fix);
        return;
    }
    if !valid(name, text) {
        let fallback = cm_setting(ctx.inv, name);
        let format = if kb::INT_ANNOTATIONS.contains(&name) {
            "an integer (seconds for timeouts, no unit)"
        } else if kb::SIZE_ANNOTATIONS.contains(&name) {
            "an nginx size `^\\d+[bkmg]?$` (e.g. `4m`)"
        } else if kb::ONOFF_ANNOTATIONS.contains(&name) {
            "`on` or `off`"
        } else {
            "`true` or `false`"
        };
        push(
            ctx,
            "ANN-002",
            format!("{name}={}", fallback.describe()),
            format!(
                "invalid value {text:?}: must be {format}; the controller logs a validation error and silently uses {}",
                fallback.describe()
            ),
            format!("write a valid value, e.g. {}", example(name)),
        );
        return;
    }
    if name == "proxy-next-upstream"
        && let Some(bad) = text
            .split_whitespace()
            .find(|t| !NEXT_UPSTREAM_TOKENS.contains(t))
    {
        push(
            ctx,
            "ANN-002",
            format!("{name}={}", cm_setting(ctx.inv, name).describe()),
            format!("invalid token {bad:?} in proxy-next-upstream"),
            format!("use only: {}", NEXT_UPSTREAM_TOKENS.join(" ")),
        );
    }
}

fn example(name: &str) -> &'static str {
    if kb::SIZE_ANNOTATIONS.contains(&name) {
        "\"4m\""
    } else if name.ends_with("-timeout") {
        "\"60\""
    } else if kb::ONOFF_ANNOTATIONS.contains(&name) {
        "\"on\""
    } else if kb::INT_ANNOTATIONS.contains(&name) {
        "\"3\""
    } else {
        "\"true\""
    }
}
