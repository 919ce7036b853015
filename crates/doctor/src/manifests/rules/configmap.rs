//! CM-001, CM-002: settings placed where ingress-nginx does not read them (case C17) and unknown
//! or invalid ConfigMap `data` keys (case C24).

use serde_json::Value;

use super::{Ctx, F};
use crate::finding::Severity;
use crate::manifests::kb;
use crate::manifests::nginx::{cm_setting, valid};

pub fn check(ctx: &mut Ctx<'_>) {
    let inv = ctx.inv;
    let ann_prefix = format!("{}/", kb::DEFAULT_PREFIX);
    for cm in inv.config_maps.iter().copied() {
        let anns = cm
            .value
            .pointer("/metadata/annotations")
            .and_then(Value::as_object);
        for (key, value) in anns.into_iter().flatten() {
            let Some(name) = key.strip_prefix(&ann_prefix) else {
                continue;
            };
            let eff = cm_setting(inv, name);
            ctx.push(F {
                rule: "CM-001",
                severity: Severity::Error,
                doc: Some(cm),
                object: String::new(),
                path: format!("metadata.annotations[{key}]"),
                needle: format!("{key}:"),
                effective: format!("{name}={}", eff.describe()),
                message: "annotations on the controller ConfigMap have no effect: ingress-nginx reads only its `data:`".into(),
                fix: format!("move it to `data:` as `{name}: {}`", serde_json::to_string(&crate::manifests::load::scalar_text(value).unwrap_or_default()).unwrap_or_default()),
            });
        }
    }
    let Some(cm) = inv.controller_cm else { return };
    for (key, value) in cm
        .value
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let needle = format!("{key}:");
        let path = format!("data.{key}");
        if !value.is_string() {
            ctx.push(F {
                rule: "CM-002",
                severity: Severity::Error,
                doc: Some(cm),
                object: String::new(),
                path,
                needle,
                effective: format!("{value} (YAML non-string)"),
                message:
                    "ConfigMap data values must be strings: the API server rejects this ConfigMap"
                        .into(),
                fix: format!("quote it: {key}: \"{value}\""),
            });
            continue;
        }
        if !kb::is_configmap_key(key) {
            let hint = kb::hint_for(key)
                .map(str::to_string)
                .or_else(|| {
                    kb::closest(key, kb::CONFIGMAP_KEYS).map(|c| format!("did you mean `{c}`?"))
                })
                .unwrap_or_default();
            ctx.push(F {
                rule: "CM-002",
                severity: Severity::Warn,
                doc: Some(cm),
                object: String::new(),
                path,
                needle,
                effective: "ignored".into(),
                message: format!(
                    "unknown ingress-nginx ConfigMap key `{key}`: it is ignored; {hint}"
                ),
                fix: format!("remove it; {hint}"),
            });
        } else if let Some(text) = value.as_str()
            && !valid(key, text)
        {
            ctx.push(F {
                rule: "CM-002",
                severity: Severity::Warn,
                doc: Some(cm),
                object: String::new(),
                path,
                needle,
                effective: format!("{key}={} (default)", kb::default_of(key).unwrap_or("?")),
                message: format!("invalid value {text:?} for `{key}`: the default applies"),
                fix: "write a valid value (integers are seconds without a unit)".into(),
            });
        }
    }
}
