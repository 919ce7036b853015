//! Config sections owned by ingest: `[server]`, `[shutdown]`, `[[sources]]`.

use std::net::SocketAddr;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

/// `[server]`: listeners, connection timers and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Public listener for webhooks.
    pub listen: SocketAddr,
    /// Admin listener: `/healthz`, `/readyz`, `/metrics`. Keep it off the ingress.
    pub admin_listen: SocketAddr,
    /// Keep-alive idle timeout: an idle connection is never closed before this. Must exceed every
    /// proxy's upstream keep-alive (ingress-nginx `upstream-keepalive-timeout` 60 s, AWS ALB 60 s),
    /// otherwise the proxy reuses a socket we are closing and its POST fails with 502 (nginx does
    /// not retry non-idempotent requests: `proxy_next_upstream`).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// From the first byte of a request to the end of its headers (slowloris bound).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// From the end of the headers to the end of the body.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Largest accepted body; larger gets 413 and is not read (Meta sends up to 3 MB).
    pub max_body: ByteSize,
    /// Open connections above which the listener stops accepting (the kernel backlog holds the rest).
    pub max_connections: usize,
    /// Longest wait for a durable append before answering 503 with `Retry-After`.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Request bodies held in memory at once (being read, verified or journaled), counted by
    /// `Content-Length` (or `max_body` when chunked). Above it a POST gets 503 with `Retry-After`
    /// before its body is read, so unauthenticated uploads cannot exhaust memory (the signature
    /// can only be checked once the whole body is in).
    pub max_body_memory: ByteSize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:8080".parse().expect("valid"),
            admin_listen: "0.0.0.0:9090".parse().expect("valid"),
            idle_timeout: Duration::from_secs(75),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_body: ByteSize::mib(4),
            max_connections: 10_000,
            ack_timeout: Duration::from_secs(5),
            max_body_memory: ByteSize::mib(512),
        }
    }
}

/// `[shutdown]`: the drain sequence on SIGTERM/SIGINT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Keep serving (with `Connection: close`, `/readyz` failing) so endpoint removal reaches the
    /// proxy before we stop accepting; the in-process equivalent of a preStop sleep.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// Bound on finishing in-flight requests after accepting stopped; keep it below the pod's
    /// `terminationGracePeriodSeconds` minus `drain_delay`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_delay: Duration::from_secs(5),
            timeout: Duration::from_secs(25),
        }
    }
}

/// Webhook provider of a source: decides the handshake and the authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// WhatsApp Cloud API: `GET` handshake with `verify_token`; `X-Hub-Signature-256` HMAC-SHA256.
    Meta,
    /// WasenderAPI: `X-Webhook-Signature` equal to `secret` (a shared secret, not an HMAC).
    Wasender,
    /// Generic HMAC header (e.g. WAHA `X-Webhook-Hmac`, HMAC-SHA512 hex).
    Hmac,
}

/// HMAC algorithm of an `hmac` source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HmacAlgorithm {
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// Tag encoding of an `hmac` source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HmacEncoding {
    /// Hex digits.
    Hex,
    /// Standard base64.
    Base64,
}

/// One `[[sources]]` entry: a path, a provider and its credentials.
///
/// Secret values may be written `env:NAME` to read them from the environment variable `NAME`, or
/// `file:/path` to read a mounted file (trailing newline stripped), so they can live in a
/// Kubernetes Secret instead of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Name used in the journal, logs and metrics labels.
    pub name: String,
    /// URL path of the webhook, e.g. `/webhook`.
    pub path: String,
    /// Provider.
    pub provider: Provider,
    /// Meta: the verify token of the `GET` handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<String>,
    /// Meta: app secrets; any one may match (rotation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_secrets: Vec<String>,
    /// wasender/hmac: the shared secret or HMAC key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// hmac: header carrying the tag (default `x-webhook-hmac`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// hmac: algorithm (default sha512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<HmacAlgorithm>,
    /// hmac: encoding (default hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<HmacEncoding>,
    /// hmac: prefix before the encoded tag, e.g. `sha256=` (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Accept unsigned requests. Never in production: anyone can inject webhooks. Logged loudly
    /// and reported by `/readyz`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_signature: bool,
}

impl SourceConfig {
    /// The default source: Meta at `/webhook` (credentials still required).
    pub fn default_meta() -> Self {
        SourceConfig {
            name: "meta".into(),
            path: "/webhook".into(),
            provider: Provider::Meta,
            verify_token: None,
            app_secrets: Vec::new(),
            secret: None,
            header: None,
            algorithm: None,
            encoding: None,
            prefix: None,
            insecure_skip_signature: false,
        }
    }

    /// A copy with every secret replaced by `***` (for `wagate config print` and logs).
    pub fn masked(&self) -> Self {
        let mask = |s: &String| {
            if s.starts_with("env:") || s.starts_with("file:") {
                s.clone()
            } else {
                "***".into()
            }
        };
        SourceConfig {
            verify_token: self.verify_token.as_ref().map(mask),
            app_secrets: self.app_secrets.iter().map(mask).collect(),
            secret: self.secret.as_ref().map(mask),
            ..self.clone()
        }
    }
}

/// A config error naming the offending key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// Dotted key path, e.g. `sources[0].app_secrets`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// Resolves `env:NAME` and `file:/path` indirections of a secret value.
///
/// # Errors
/// When the variable is unset or the file unreadable.
pub fn resolve_secret(key: &str, value: &str) -> Result<String, ConfigError> {
    if let Some(name) = value.strip_prefix("env:") {
        std::env::var(name).map_err(|_| err(key, format!("environment variable {name} is not set")))
    } else if let Some(path) = value.strip_prefix("file:") {
        std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| err(key, format!("cannot read {path}: {e}")))
    } else {
        Ok(value.to_owned())
    }
}

/// Cross-field checks of the ingest sections.
///
/// # Errors
/// The first problem found, with its key.
pub fn validate(
    server: &ServerConfig,
    shutdown: &ShutdownConfig,
    sources: &[SourceConfig],
) -> Result<(), ConfigError> {
    let _ = shutdown;
    if server.max_connections == 0 {
        return Err(err("server.max_connections", "must be at least 1"));
    }
    if server.max_body.as_u64() == 0 {
        return Err(err("server.max_body", "must be at least 1 byte"));
    }
    if server.max_body_memory.as_u64() < server.max_body.as_u64()
        || server.max_body_memory.as_u64() > (1 << 42)
    {
        return Err(err(
            "server.max_body_memory",
            "must be at least server.max_body and at most 4 TiB",
        ));
    }
    for (key, d) in [
        ("server.idle_timeout", server.idle_timeout),
        ("server.header_read_timeout", server.header_read_timeout),
        ("server.body_read_timeout", server.body_read_timeout),
        ("server.ack_timeout", server.ack_timeout),
    ] {
        if d.is_zero() {
            return Err(err(key, "must be greater than 0"));
        }
    }
    if sources.is_empty() {
        return Err(err("sources", "at least one source is required"));
    }
    let mut paths = std::collections::HashSet::new();
    let mut names = std::collections::HashSet::new();
    for (i, s) in sources.iter().enumerate() {
        let k = |f: &str| format!("sources[{i}].{f}");
        if !s.path.starts_with('/') {
            return Err(err(
                k("path"),
                format!("must start with '/', got {:?}", s.path),
            ));
        }
        if !paths.insert(s.path.as_str()) {
            return Err(err(
                k("path"),
                format!("{:?} is used by two sources", s.path),
            ));
        }
        if s.name.is_empty() || !names.insert(s.name.as_str()) {
            return Err(err(k("name"), "must be non-empty and unique"));
        }
        match s.provider {
            Provider::Meta => {
                if s.verify_token.as_deref().unwrap_or("").is_empty() {
                    return Err(err(
                        k("verify_token"),
                        "required for provider \"meta\" (the GET handshake token)",
                    ));
                }
                if s.app_secrets.iter().all(|v| v.is_empty()) && !s.insecure_skip_signature {
                    return Err(err(
                        k("app_secrets"),
                        "required for provider \"meta\": without the app secret X-Hub-Signature-256 cannot be verified \
                         (set insecure_skip_signature = true to accept unsigned webhooks, never in production)",
                    ));
                }
                if s.secret.is_some() {
                    return Err(err(
                        k("secret"),
                        "not used by provider \"meta\"; use app_secrets",
                    ));
                }
            }
            Provider::Wasender | Provider::Hmac => {
                if s.secret.as_deref().unwrap_or("").is_empty() && !s.insecure_skip_signature {
                    return Err(err(
                        k("secret"),
                        "required for this provider (set insecure_skip_signature = true to accept unsigned webhooks)",
                    ));
                }
                if !s.app_secrets.is_empty() {
                    return Err(err(
                        k("app_secrets"),
                        "only used by provider \"meta\"; use secret",
                    ));
                }
            }
        }
        if s.provider != Provider::Hmac
            && (s.header.is_some()
                || s.algorithm.is_some()
                || s.encoding.is_some()
                || s.prefix.is_some())
        {
            return Err(err(
                k("header"),
                "header, algorithm, encoding and prefix only apply to provider \"hmac\"",
            ));
        }
    }
    Ok(())
}
