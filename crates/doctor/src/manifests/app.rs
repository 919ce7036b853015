//! The app's own settings (idle timeout, body limit, handler time, ...) and where each comes
//! from. Precedence, lowest to highest: wagate's defaults, a `DoctorAppProfile` document, wagate
//! config found in the manifests (a ConfigMap `*.toml` key, `WAGATE_*` container env),
//! `--app-config`, `--app-server` defaults, explicit `--app-*` flags.

use std::time::Duration;

use serde_json::Value;

use super::kb::{self, FrontLb};
use super::load::scalar_text;
use super::model::{Inventory, containers};
use crate::units::{fmt_bytes, fmt_dur, parse_duration, parse_size};

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Val<T> {
    /// The value.
    pub value: T,
    /// Its origin, e.g. `wagate default server.idle_timeout`.
    pub source: String,
}

fn val<T>(value: T, source: impl Into<String>) -> Val<T> {
    Val {
        value,
        source: source.into(),
    }
}

/// App-side knobs given on the command line.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// `--app-idle-timeout` (`Some(None)` = `none`: never closes idle connections).
    pub idle_timeout: Option<Option<Duration>>,
    /// `--app-max-body` in bytes.
    pub max_body: Option<u64>,
    /// `--handler-max`.
    pub handler_max: Option<Duration>,
    /// `--app-server`.
    pub server: Option<String>,
    /// `--front-lb`.
    pub front_lb: Option<FrontLb>,
    /// `--payload-size` in bytes.
    pub payload_size: Option<u64>,
    /// `--app-config`: (file name, TOML text).
    pub app_config: Option<(String, String)>,
}

/// The app settings the rules compare against.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// Idle keep-alive close; `None` = never closes idle connections.
    pub idle: Val<Option<Duration>>,
    /// Body limit in bytes; `None` = none.
    pub max_body: Val<Option<u64>>,
    /// Worst-case time before the app sends response headers.
    pub handler_max: Val<Duration>,
    /// The app's own request timeout, when it has one.
    pub request_timeout: Option<Val<Duration>>,
    /// Largest body that must get through (default 3 MiB: Meta's maximum webhook size).
    pub payload: Val<u64>,
    /// Whether processing deduplicates redeliveries; `None` = unknown.
    pub idempotent: Val<Option<bool>>,
    /// Load balancer in front.
    pub front_lb: Val<FrontLb>,
    /// Time the app keeps serving after SIGTERM (wagate `shutdown.drain_delay`).
    pub drain_delay: Option<Val<Duration>>,
    /// Bound on finishing in-flight requests after SIGTERM (wagate `shutdown.timeout`).
    pub shutdown_timeout: Option<Val<Duration>>,
    /// App image (for the `exec sleep` check), when known.
    pub image: Option<String>,
    /// True when nothing described the app and wagate's defaults were assumed.
    pub assumed_defaults: bool,
    /// Human summary of the sources used, in order.
    pub sources: Vec<String>,
}

/// Largest webhook body Meta sends (3 MB), rounded up to MiB.
pub const DEFAULT_PAYLOAD: u64 = 3 << 20;

impl AppSettings {
    /// wagate's built-in defaults (`[server]`, `[shutdown]`).
    pub fn wagate_defaults() -> AppSettings {
        AppSettings {
            idle: val(
                Some(Duration::from_secs(75)),
                "wagate default server.idle_timeout",
            ),
            max_body: val(Some(4 << 20), "wagate default server.max_body"),
            handler_max: val(Duration::from_secs(5), "wagate default server.ack_timeout"),
            request_timeout: Some(val(
                Duration::from_secs(5),
                "wagate default server.ack_timeout",
            )),
            payload: val(
                DEFAULT_PAYLOAD,
                "default: Meta's maximum webhook body (3 MB)",
            ),
            idempotent: val(None, "unknown"),
            front_lb: val(FrontLb::None, "default"),
            drain_delay: Some(val(
                Duration::from_secs(5),
                "wagate default shutdown.drain_delay",
            )),
            shutdown_timeout: Some(val(
                Duration::from_secs(25),
                "wagate default shutdown.timeout",
            )),
            image: None,
            assumed_defaults: true,
            sources: Vec::new(),
        }
    }

    /// One-line description for reports.
    pub fn summary(&self) -> String {
        let idle = self.idle.value.map_or("never".to_string(), fmt_dur);
        let body = self.max_body.value.map_or("none".to_string(), fmt_bytes);
        format!(
            "app idle close {idle}, body limit {body}, handler max {}, required payload {}, front LB {}",
            fmt_dur(self.handler_max.value),
            fmt_bytes(self.payload.value),
            self.front_lb.value.name()
        )
    }

    fn apply_server(&mut self, kind: &str, source: &str) -> Result<(), String> {
        let d = kb::server_defaults(kind).ok_or_else(|| format!("unknown app server {kind:?}"))?;
        let src = format!("{source} ({})", d.source);
        self.idle = val(d.idle_secs.map(Duration::from_secs), src.clone());
        self.max_body = val(d.max_body, src.clone());
        self.request_timeout = d
            .request_timeout_secs
            .map(|s| val(Duration::from_secs(s), src.clone()));
        self.drain_delay = None;
        self.shutdown_timeout = None;
        Ok(())
    }

    fn apply_profile(&mut self, doc: &super::load::Document) {
        let name = format!("DoctorAppProfile {}", doc.name());
        let Some(spec) = doc.value.get("spec").and_then(Value::as_object) else {
            return;
        };
        // A profile describes the app as a whole: wagate-only knobs no longer apply.
        self.drain_delay = None;
        self.shutdown_timeout = None;
        self.request_timeout = None;
        if let Some(kind) = spec.get("server").and_then(Value::as_str) {
            let _ = self.apply_server(kind, &format!("{name} spec.server"));
        }
        let secs = |v: &Value| v.as_f64().map(Duration::from_secs_f64);
        if let Some(v) = spec.get("idleKeepAliveTimeoutSeconds") {
            self.idle = val(secs(v), format!("{name} spec.idleKeepAliveTimeoutSeconds"));
        }
        if let Some(v) = spec.get("maxRequestBodyBytes") {
            self.max_body = val(v.as_u64(), format!("{name} spec.maxRequestBodyBytes"));
        }
        if let Some(d) = spec.get("handlerMaxSeconds").and_then(secs) {
            self.handler_max = val(d, format!("{name} spec.handlerMaxSeconds"));
        }
        if let Some(b) = spec.get("requiredPayloadBytes").and_then(Value::as_u64) {
            self.payload = val(b, format!("{name} spec.requiredPayloadBytes"));
        }
        if let Some(b) = spec.get("idempotentProcessing").and_then(Value::as_bool) {
            self.idempotent = val(Some(b), format!("{name} spec.idempotentProcessing"));
        }
        if let Some(lb) = spec
            .get("frontLoadBalancer")
            .and_then(Value::as_str)
            .and_then(FrontLb::parse)
        {
            self.front_lb = val(lb, format!("{name} spec.frontLoadBalancer"));
        }
        if let Some(d) = spec.get("drainDelaySeconds").and_then(secs) {
            self.drain_delay = Some(val(d, format!("{name} spec.drainDelaySeconds")));
        }
        self.image = spec
            .get("image")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.sources.push(name);
    }

    /// Applies one wagate setting (`server.idle_timeout`, ...) given as text.
    fn apply_wagate_key(&mut self, key: &str, raw: &str, source: &str) -> Result<(), String> {
        let src = format!("{source} {key}");
        let dur = || parse_duration(raw).map_err(|e| format!("{src}: {e}"));
        match key {
            "server.idle_timeout" => self.idle = val(Some(dur()?), src),
            "server.max_body" => {
                self.max_body = val(
                    Some(parse_size(raw).map_err(|e| format!("{src}: {e}"))?),
                    src,
                )
            }
            "server.ack_timeout" => {
                let d = dur()?;
                self.handler_max = val(d, src.clone());
                self.request_timeout = Some(val(d, src));
            }
            "shutdown.drain_delay" => self.drain_delay = Some(val(dur()?, src)),
            "shutdown.timeout" => self.shutdown_timeout = Some(val(dur()?, src)),
            _ => {}
        }
        Ok(())
    }

    /// Applies a wagate TOML config (only the keys the doctor needs; the rest is ignored).
    fn apply_wagate_toml(&mut self, text: &str, source: &str) -> Result<(), String> {
        let table: toml::Table = text
            .parse()
            .map_err(|e| format!("{source}: invalid TOML: {e}"))?;
        for (section, key) in [
            ("server", "idle_timeout"),
            ("server", "max_body"),
            ("server", "ack_timeout"),
            ("shutdown", "drain_delay"),
            ("shutdown", "timeout"),
        ] {
            let v = table.get(section).and_then(|s| s.get(key));
            let raw = match v {
                Some(toml::Value::String(s)) => s.clone(),
                Some(toml::Value::Integer(i)) => i.to_string(),
                Some(other) => {
                    return Err(format!(
                        "{source}: {section}.{key}: unexpected value {other}"
                    ));
                }
                None => continue,
            };
            self.apply_wagate_key(&format!("{section}.{key}"), &raw, source)?;
        }
        Ok(())
    }
}

/// `WAGATE_SERVER__IDLE_TIMEOUT` -> `server.idle_timeout`.
fn env_key(name: &str) -> Option<String> {
    let rest = name.strip_prefix("WAGATE_")?;
    Some(rest.to_ascii_lowercase().replace("__", "."))
}

fn is_wagate_toml(text: &str) -> bool {
    text.parse::<toml::Table>()
        .is_ok_and(|t| t.contains_key("server") || t.contains_key("shutdown"))
}

/// Resolves the app settings; `Err` for invalid flag or config values (exit 2).
pub fn resolve(inv: &Inventory<'_>, opts: &AppOptions) -> Result<AppSettings, String> {
    let mut app = AppSettings::wagate_defaults();
    if let Some(p) = inv.profiles.first() {
        app.apply_profile(p);
        app.assumed_defaults = false;
    }
    // wagate config found in the manifests.
    for cm in &inv.config_maps {
        for (k, v) in cm
            .value
            .get("data")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if let (true, Some(text)) = (k.ends_with(".toml"), v.as_str())
                && is_wagate_toml(text)
            {
                let src = format!("{} data.{k}", cm.object());
                app.apply_wagate_toml(text, &src)?;
                app.sources.push(src);
                app.assumed_defaults = false;
            }
        }
    }
    for w in inv.app_workloads() {
        for c in containers(w) {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            let env = c
                .get("env")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut wagate_env = false;
            for e in &env {
                let (Some(name), Some(value)) = (
                    e.get("name").and_then(Value::as_str),
                    e.get("value").and_then(scalar_text),
                ) else {
                    continue;
                };
                if let Some(key) = env_key(name) {
                    wagate_env = true;
                    app.apply_wagate_key(&key, &value, &format!("{} env {name}", w.object()))?;
                }
            }
            if wagate_env || image.contains("wagate") {
                app.image = Some(image.to_string());
                app.sources.push(format!(
                    "{} container {}",
                    w.object(),
                    c.get("name").and_then(Value::as_str).unwrap_or("")
                ));
                app.assumed_defaults = false;
            }
        }
    }
    if let Some((name, text)) = &opts.app_config {
        app.apply_wagate_toml(text, name)?;
        app.sources.push(name.clone());
        app.assumed_defaults = false;
    }
    if let Some(kind) = &opts.server {
        app.apply_server(kind, &format!("--app-server {kind}"))?;
        app.sources.push(format!("--app-server {kind}"));
        app.assumed_defaults = false;
    }
    if let Some(idle) = opts.idle_timeout {
        app.idle = val(idle, "--app-idle-timeout");
        app.assumed_defaults = false;
    }
    if let Some(b) = opts.max_body {
        app.max_body = val(Some(b), "--app-max-body");
        app.assumed_defaults = false;
    }
    if let Some(h) = opts.handler_max {
        app.handler_max = val(h, "--handler-max");
        app.assumed_defaults = false;
    }
    if let Some(lb) = opts.front_lb {
        app.front_lb = val(lb, "--front-lb");
    }
    if let Some(p) = opts.payload_size {
        app.payload = val(p, "--payload-size");
    }
    if app.assumed_defaults {
        app.sources.push("wagate defaults (assumed: no --app-* flag, --app-config, WAGATE_* env or DoctorAppProfile found)".into());
    }
    Ok(app)
}
