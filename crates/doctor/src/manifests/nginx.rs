//! Effective ingress-nginx settings: annotation (when valid) > controller ConfigMap `data`
//! (when valid) > built-in default, the way the controller renders them.

use serde_json::Value;

use super::kb;
use super::load::{Document, scalar_text};
use super::model::Inventory;
use crate::units::{nginx_int, nginx_size};

/// Where an effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    /// Per-Ingress annotation.
    Annotation,
    /// Controller ConfigMap `data`.
    ConfigMap,
    /// ingress-nginx built-in default.
    Default,
}

/// An effective value with its origin and, when the user's own setting was ignored, why.
#[derive(Debug, Clone)]
pub struct Eff {
    /// The rendered value text (e.g. `60`, `1m`).
    pub raw: String,
    /// Origin.
    pub src: Src,
    /// Settings that were present but did not apply.
    pub ignored: Vec<String>,
}

impl Eff {
    /// `60 (default)`, `30 (annotation)`, `50 (ConfigMap)`.
    pub fn describe(&self) -> String {
        let src = match self.src {
            Src::Annotation => "annotation",
            Src::ConfigMap => "ConfigMap",
            Src::Default => "default",
        };
        format!("{} ({src})", self.raw)
    }

    /// As an integer (for validated integer keys).
    pub fn int(&self) -> Option<i64> {
        nginx_int(&self.raw)
    }

    /// As bytes (for validated size keys).
    pub fn size(&self) -> Option<u64> {
        nginx_size(&self.raw)
    }
}

/// Whether `value` is valid for ingress-nginx key `key` (unknown keys: always valid).
pub fn valid(key: &str, value: &str) -> bool {
    if kb::INT_ANNOTATIONS.contains(&key) || is_int_cm_key(key) {
        nginx_int(value).is_some()
    } else if kb::SIZE_ANNOTATIONS.contains(&key) {
        nginx_size(value).is_some()
    } else if kb::ONOFF_ANNOTATIONS.contains(&key) {
        matches!(value, "on" | "off")
    } else if kb::BOOL_ANNOTATIONS.contains(&key) || key == "retry-non-idempotent" {
        matches!(value, "true" | "false")
    } else {
        true
    }
}

fn is_int_cm_key(key: &str) -> bool {
    matches!(
        key,
        "upstream-keepalive-timeout"
            | "upstream-keepalive-connections"
            | "upstream-keepalive-requests"
            | "keep-alive"
            | "keep-alive-requests"
            | "client-header-timeout"
            | "client-body-timeout"
    )
}

/// The ConfigMap value (or default) of `key`.
pub fn cm_setting(inv: &Inventory<'_>, key: &str) -> Eff {
    let mut ignored = Vec::new();
    if let Some(v) = inv.cm_data().and_then(|d| d.get(key)).and_then(scalar_text) {
        if valid(key, &v) {
            return Eff {
                raw: v,
                src: Src::ConfigMap,
                ignored,
            };
        }
        ignored.push(format!("ConfigMap data.{key}={v:?} is invalid"));
    }
    // Settings placed in the ConfigMap's metadata.annotations do nothing (CM-001).
    for cm in &inv.config_maps {
        let ann = format!("{}/{key}", kb::DEFAULT_PREFIX);
        if let Some(v) = cm
            .value
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(&ann))
            .and_then(scalar_text)
        {
            ignored.push(format!(
                "{} metadata.annotations[{ann}]={v:?} has no effect (CM-001)",
                cm.object()
            ));
        }
    }
    Eff {
        raw: kb::default_of(key).unwrap_or("").to_string(),
        src: Src::Default,
        ignored,
    }
}

/// The effective value of `key` for one Ingress.
pub fn ing_setting(inv: &Inventory<'_>, ing: Option<&Document>, key: &str) -> Eff {
    let mut ignored = Vec::new();
    if let Some(ing) = ing {
        let anns = ing
            .value
            .pointer("/metadata/annotations")
            .and_then(Value::as_object);
        let name = format!("{}/{key}", inv.prefix());
        if let Some(v) = anns.and_then(|a| a.get(&name)).and_then(scalar_text) {
            if valid(key, &v) {
                return Eff {
                    raw: v,
                    src: Src::Annotation,
                    ignored,
                };
            }
            ignored.push(format!("annotation {name}={v:?} is invalid (ANN-002)"));
        }
        // The invented `client-max-body-size` annotation is what users meant for this key.
        let alias_name = format!("{}/client-max-body-size", inv.prefix());
        if key == "proxy-body-size"
            && let Some(v) = anns.and_then(|a| a.get(&alias_name)).and_then(scalar_text)
        {
            ignored.push(format!(
                "annotation {alias_name}={v:?} does not exist (ANN-001)"
            ));
        }
    }
    let mut eff = cm_setting(inv, key);
    ignored.append(&mut eff.ignored);
    eff.ignored = ignored;
    eff
}
