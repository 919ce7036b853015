//! Knowledge base: ingress-nginx keys, defaults and validators, app-server and load-balancer
//! defaults. Every table cites its source (see `docs/doctor.md`, "Sources").

/// Default annotation prefix (`--annotations-prefix`, ingress-nginx `docs/user-guide/cli-arguments.md`).
pub const DEFAULT_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// Annotation names accepted by ingress-nginx v1.15 (annotations doc table plus the names the
/// parsers read under `internal/ingress/annotations/`).
pub const ANNOTATIONS: &[&str] = &[
    "affinity",
    "affinity-canary-behavior",
    "affinity-mode",
    "app-root",
    "auth-cache-duration",
    "auth-cache-key",
    "auth-keepalive",
    "auth-keepalive-requests",
    "auth-keepalive-share-vars",
    "auth-keepalive-timeout",
    "auth-proxy-set-headers",
    "auth-realm",
    "auth-secret",
    "auth-secret-type",
    "auth-snippet",
    "auth-tls-error-page",
    "auth-tls-match-cn",
    "auth-tls-pass-certificate-to-upstream",
    "auth-tls-secret",
    "auth-tls-verify-client",
    "auth-tls-verify-depth",
    "auth-type",
    "auth-url",
    "backend-protocol",
    "canary",
    "canary-by-cookie",
    "canary-by-header",
    "canary-by-header-pattern",
    "canary-by-header-value",
    "canary-weight",
    "canary-weight-total",
    "client-body-buffer-size",
    "configuration-snippet",
    "connection-proxy-header",
    "cors-allow-credentials",
    "cors-allow-headers",
    "cors-allow-methods",
    "cors-allow-origin",
    "cors-expose-headers",
    "cors-max-age",
    "custom-headers",
    "custom-http-errors",
    "default-backend",
    "denylist-source-range",
    "enable-access-log",
    "enable-cors",
    "enable-global-auth",
    "enable-modsecurity",
    "enable-opentelemetry",
    "enable-owasp-core-rules",
    "enable-rewrite-log",
    "force-ssl-redirect",
    "from-to-www-redirect",
    "http2-push-preload",
    "limit-connections",
    "limit-rps",
    "load-balance",
    "mirror-host",
    "mirror-request-body",
    "mirror-target",
    "modsecurity-snippet",
    "modsecurity-transaction-id",
    "opentelemetry-trust-incoming-span",
    "permanent-redirect",
    "permanent-redirect-code",
    "preserve-trailing-slash",
    "proxy-body-size",
    "proxy-buffer-size",
    "proxy-buffering",
    "proxy-buffers-number",
    "proxy-busy-buffers-size",
    "proxy-connect-timeout",
    "proxy-cookie-domain",
    "proxy-cookie-path",
    "proxy-http-version",
    "proxy-max-temp-file-size",
    "proxy-next-upstream",
    "proxy-next-upstream-timeout",
    "proxy-next-upstream-tries",
    "proxy-read-timeout",
    "proxy-redirect-from",
    "proxy-redirect-to",
    "proxy-request-buffering",
    "proxy-send-timeout",
    "proxy-ssl-ciphers",
    "proxy-ssl-name",
    "proxy-ssl-protocols",
    "proxy-ssl-secret",
    "proxy-ssl-server-name",
    "proxy-ssl-verify",
    "proxy-ssl-verify-depth",
    "rewrite-target",
    "satisfy",
    "server-alias",
    "server-snippet",
    "service-upstream",
    "session-cookie-change-on-failure",
    "session-cookie-conditional-samesite-none",
    "session-cookie-domain",
    "session-cookie-expires",
    "session-cookie-max-age",
    "session-cookie-name",
    "session-cookie-path",
    "session-cookie-samesite",
    "session-cookie-secure",
    "ssl-ciphers",
    "ssl-passthrough",
    "ssl-prefer-server-ciphers",
    "ssl-redirect",
    "stream-snippet",
    "temporal-redirect",
    "temporal-redirect-code",
    "upstream-hash-by",
    "upstream-vhost",
    "use-regex",
    "whitelist-source-range",
    "x-forwarded-prefix",
    // parsed in code but not in the doc table
    "auth-method",
    "auth-response-headers",
    "auth-signin",
    "auth-signin-redirect-param",
    "auth-request-redirect",
    "auth-always-set-cookie",
    "allowlist-source-range",
    "limit-allowlist",
    "limit-whitelist",
    "limit-burst-multiplier",
    "limit-rate",
    "limit-rate-after",
    "limit-rpm",
    "disable-proxy-intercept-errors",
    "fastcgi-index",
    "fastcgi-params-configmap",
    "opentelemetry-operation-name",
    "relative-redirects",
    "upstream-hash-by-subset",
    "upstream-hash-by-subset-size",
    "use-port-in-redirects",
];

/// Controller ConfigMap `data:` keys (ingress-nginx `configmap.md` plus `proxy-http-version`).
/// Entries ending in `*` are prefixes (`jaeger-*`, `otel-*`).
pub const CONFIGMAP_KEYS: &[&str] = &[
    "access-log-params",
    "access-log-path",
    "add-headers",
    "allow-backend-server-header",
    "allow-cross-namespace-resources",
    "allow-snippet-annotations",
    "annotation-value-word-blocklist",
    "annotations-risk-level",
    "bind-address",
    "block-cidrs",
    "block-referers",
    "block-user-agents",
    "brotli-level",
    "brotli-min-length",
    "brotli-types",
    "client-body-buffer-size",
    "client-body-timeout",
    "client-header-buffer-size",
    "client-header-timeout",
    "compute-full-forwarded-for",
    "custom-http-errors",
    "debug-connections",
    "default-type",
    "denylist-source-range",
    "disable-access-log",
    "disable-ipv6",
    "disable-ipv6-dns",
    "enable-access-log-for-default-backend",
    "enable-aio-write",
    "enable-brotli",
    "enable-modsecurity",
    "enable-multi-accept",
    "enable-ocsp",
    "enable-opentelemetry",
    "enable-owasp-modsecurity-crs",
    "enable-real-ip",
    "enable-serial-reloads",
    "enable-syslog",
    "enable-underscores-in-headers",
    "error-log-level",
    "error-log-path",
    "force-ssl-redirect",
    "forwarded-for-header",
    "forwarded-for-proxy-protocol-header",
    "generate-request-id",
    "geoip2-autoreload-in-minutes",
    "global-allowed-response-headers",
    "global-auth-cache-duration",
    "global-auth-cache-key",
    "global-auth-method",
    "global-auth-request-redirect",
    "global-auth-response-headers",
    "global-auth-signin",
    "global-auth-signin-redirect-param",
    "global-auth-snippet",
    "global-auth-url",
    "grpc-buffer-size-kb",
    "gzip-disable",
    "gzip-level",
    "gzip-min-length",
    "gzip-types",
    "hide-headers",
    "hsts",
    "hsts-include-subdomains",
    "hsts-max-age",
    "hsts-preload",
    "http-access-log-path",
    "http-redirect-code",
    "http-snippet",
    "http2-max-concurrent-streams",
    "http2-max-field-size",
    "http2-max-header-size",
    "http2-max-requests",
    "ignore-invalid-headers",
    "jaeger-*",
    "keep-alive",
    "keep-alive-requests",
    "large-client-header-buffers",
    "limit-conn-status-code",
    "limit-conn-zone-variable",
    "limit-rate",
    "limit-rate-after",
    "limit-req-status-code",
    "load-balance",
    "location-snippet",
    "log-format-escape-json",
    "log-format-escape-none",
    "log-format-stream",
    "log-format-upstream",
    "lua-shared-dicts",
    "main-snippet",
    "map-hash-bucket-size",
    "max-worker-connections",
    "max-worker-open-files",
    "modsecurity-snippet",
    "nginx-status-ipv4-whitelist",
    "nginx-status-ipv6-whitelist",
    "no-auth-locations",
    "no-tls-redirect-locations",
    "opentelemetry-config",
    "opentelemetry-operation-name",
    "opentelemetry-trust-incoming-span",
    "otel-*",
    "otlp-collector-host",
    "otlp-collector-port",
    "proxy-add-original-uri-header",
    "proxy-body-size",
    "proxy-buffer-size",
    "proxy-buffering",
    "proxy-buffers-number",
    "proxy-busy-buffers-size",
    "proxy-connect-timeout",
    "proxy-cookie-domain",
    "proxy-cookie-path",
    "proxy-headers-hash-bucket-size",
    "proxy-headers-hash-max-size",
    "proxy-next-upstream",
    "proxy-next-upstream-timeout",
    "proxy-next-upstream-tries",
    "proxy-protocol-header-timeout",
    "proxy-read-timeout",
    "proxy-real-ip-cidr",
    "proxy-redirect-from",
    "proxy-request-buffering",
    "proxy-send-timeout",
    "proxy-set-headers",
    "proxy-ssl-location-only",
    "proxy-stream-next-upstream",
    "proxy-stream-next-upstream-timeout",
    "proxy-stream-next-upstream-tries",
    "proxy-stream-responses",
    "proxy-stream-timeout",
    "relative-redirects",
    "retry-non-idempotent",
    "reuse-port",
    "server-name-hash-bucket-size",
    "server-name-hash-max-size",
    "server-snippet",
    "server-tokens",
    "service-upstream",
    "skip-access-log-urls",
    "ssl-buffer-size",
    "ssl-ciphers",
    "ssl-dh-param",
    "ssl-ecdh-curve",
    "ssl-protocols",
    "ssl-redirect",
    "ssl-reject-handshake",
    "ssl-session-cache",
    "ssl-session-cache-size",
    "ssl-session-ticket-key",
    "ssl-session-tickets",
    "ssl-session-timeout",
    "stream-access-log-path",
    "stream-snippet",
    "strict-validate-path-type",
    "syslog-host",
    "syslog-port",
    "upstream-keepalive-connections",
    "upstream-keepalive-requests",
    "upstream-keepalive-time",
    "upstream-keepalive-timeout",
    "use-forwarded-headers",
    "use-geoip",
    "use-geoip2",
    "use-gzip",
    "use-http2",
    "use-proxy-protocol",
    "variables-hash-bucket-size",
    "variables-hash-max-size",
    "whitelist-source-range",
    "worker-cpu-affinity",
    "worker-processes",
    "worker-shutdown-timeout",
    "proxy-http-version",
];

/// Annotations validated as integers (`strconv.Atoi`); invalid values fall back to the
/// ConfigMap value or the default (`internal/ingress/annotations/proxy/main.go` l.277-300).
pub const INT_ANNOTATIONS: &[&str] = &[
    "proxy-connect-timeout",
    "proxy-send-timeout",
    "proxy-read-timeout",
    "proxy-buffers-number",
    "proxy-next-upstream-tries",
    "proxy-next-upstream-timeout",
    "limit-connections",
    "limit-rps",
    "limit-rpm",
    "auth-keepalive",
    "auth-keepalive-requests",
    "auth-keepalive-timeout",
    "canary-weight",
    "canary-weight-total",
    "session-cookie-max-age",
];

/// Annotations validated as nginx sizes (`^(?i)\d+[bkmg]?$`, `validators.go` l.58).
pub const SIZE_ANNOTATIONS: &[&str] = &[
    "proxy-body-size",
    "client-body-buffer-size",
    "proxy-buffer-size",
    "proxy-busy-buffers-size",
    "proxy-max-temp-file-size",
];

/// `on`/`off` annotations.
pub const ONOFF_ANNOTATIONS: &[&str] = &["proxy-buffering", "proxy-request-buffering"];

/// `true`/`false` annotations.
pub const BOOL_ANNOTATIONS: &[&str] = &[
    "service-upstream",
    "ssl-redirect",
    "force-ssl-redirect",
    "enable-cors",
    "use-regex",
    "canary",
    "ssl-passthrough",
    "enable-access-log",
    "enable-opentelemetry",
    "enable-modsecurity",
    "from-to-www-redirect",
    "preserve-trailing-slash",
];

/// Defaults of the keys the rules evaluate (`config.go` `NewDefault`, `configmap.md`).
pub fn default_of(key: &str) -> Option<&'static str> {
    Some(match key {
        "proxy-connect-timeout" => "5",
        "proxy-send-timeout" => "60",
        "proxy-read-timeout" => "60",
        "upstream-keepalive-timeout" => "60",
        "upstream-keepalive-connections" => "320",
        "upstream-keepalive-requests" => "10000",
        "upstream-keepalive-time" => "1h",
        "keep-alive" => "75",
        "keep-alive-requests" => "1000",
        "proxy-body-size" => "1m",
        "client-body-buffer-size" => "8k",
        "proxy-buffer-size" => "4k",
        "proxy-buffers-number" => "4",
        "proxy-buffering" => "off",
        "proxy-request-buffering" => "on",
        "proxy-next-upstream" => "error timeout",
        "proxy-next-upstream-tries" => "3",
        "retry-non-idempotent" => "false",
        "service-upstream" => "false",
        "worker-shutdown-timeout" => "240s",
        _ => return None,
    })
}

/// Whether `key` is an annotation name.
pub fn is_annotation(key: &str) -> bool {
    ANNOTATIONS.contains(&key)
}

/// Whether `key` is a ConfigMap `data` key.
pub fn is_configmap_key(key: &str) -> bool {
    CONFIGMAP_KEYS.iter().any(|k| match k.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => *k == key,
    })
}

/// Hand-written hints for names seen in tutorials and bug reports (proxies.md 1.3, C24).
pub fn hint_for(key: &str) -> Option<&'static str> {
    Some(match key {
        "keepalive-timeout" | "keepalive_timeout" => {
            "did you mean ConfigMap `upstream-keepalive-timeout` (proxy -> app) or `keep-alive` (client -> proxy)?"
        }
        "client-max-body-size" | "client_max_body_size" | "max-body-size" | "body-size" => {
            "did you mean `proxy-body-size`?"
        }
        "read-timeout" | "proxy_read_timeout" => "did you mean `proxy-read-timeout`?",
        "send-timeout" => "did you mean `proxy-send-timeout`?",
        "connect-timeout" => "did you mean `proxy-connect-timeout`?",
        "upstream-keepalive" => "did you mean ConfigMap `upstream-keepalive-connections`?",
        _ => return None,
    })
}

/// Closest known name by edit distance (<= 3), for "did you mean".
pub fn closest<'a>(key: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .filter(|n| !n.ends_with('*'))
        .map(|n| (levenshtein(key, n), *n))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, n)| n)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Annotation prefixes of other controllers (proxies.md 1.1, 1.4; case C18).
pub const FOREIGN_PREFIXES: &[(&str, &str)] = &[
    ("nginx.org/", "NGINX Inc's kubernetes-ingress controller"),
    ("traefik.ingress.kubernetes.io/", "Traefik"),
    (
        "alb.ingress.kubernetes.io/",
        "the AWS Load Balancer Controller",
    ),
    ("haproxy.org/", "the HAProxy Kubernetes Ingress Controller"),
    ("haproxy.router.openshift.io/", "the OpenShift router"),
    (
        "ingress.kubernetes.io/",
        "legacy controllers (pre-`nginx.` prefix)",
    ),
];

/// Known defaults of an app server (proxies.md section 5.1).
#[derive(Debug, Clone, Copy)]
pub struct ServerDefaults {
    /// Idle keep-alive close in seconds; `None` = never closes idle connections.
    pub idle_secs: Option<u64>,
    /// Default body limit in bytes; `None` = none known.
    pub max_body: Option<u64>,
    /// Server-side request timeout in seconds, when it has one.
    pub request_timeout_secs: Option<u64>,
    /// Where the numbers come from.
    pub source: &'static str,
}

/// Defaults for `--app-server` values (and `DoctorAppProfile.spec.server` spellings).
pub fn server_defaults(kind: &str) -> Option<ServerDefaults> {
    let k = kind.to_ascii_lowercase();
    let d = |idle, body, req, source| ServerDefaults {
        idle_secs: idle,
        max_body: body,
        request_timeout_secs: req,
        source,
    };
    Some(if k.starts_with("express") {
        d(
            Some(5),
            Some(100 * 1024),
            Some(300),
            "Node.js keepAliveTimeout 5 s, body-parser 100kb",
        )
    } else if k.starts_with("node") {
        d(
            Some(5),
            None,
            Some(300),
            "Node.js <= 25 keepAliveTimeout 5 s, requestTimeout 300 s",
        )
    } else if k.starts_with("fastify") {
        d(
            Some(72),
            Some(1 << 20),
            None,
            "Fastify keepAliveTimeout 72 s, bodyLimit 1 MiB",
        )
    } else if k.starts_with("axum") {
        d(
            None,
            Some(2 << 20),
            None,
            "axum 0.8 axum::serve: no timer (no idle close), body 2 MB",
        )
    } else if k.starts_with("hyper") {
        d(
            Some(30),
            None,
            None,
            "hyper 1.x with a timer: header_read_timeout 30 s closes idle connections",
        )
    } else if k.starts_with("actix") {
        d(
            Some(5),
            Some(2 << 20),
            Some(5),
            "actix-web keep_alive 5 s, Json limit 2 MiB",
        )
    } else if k.starts_with("uvicorn") {
        d(Some(5), None, None, "uvicorn --timeout-keep-alive 5 s")
    } else if k.starts_with("gunicorn") {
        d(
            Some(2),
            None,
            Some(30),
            "gunicorn keepalive 2 s, worker timeout 30 s",
        )
    } else if k == "go" || k.starts_with("go-") || k.starts_with("net/http") {
        d(
            None,
            None,
            None,
            "Go net/http: no idle timeout when IdleTimeout and ReadTimeout are 0",
        )
    } else if k.starts_with("tomcat") || k.starts_with("spring") {
        d(
            Some(60),
            None,
            None,
            "Tomcat keepAliveTimeout = connectionTimeout 60 s",
        )
    } else {
        return None;
    })
}

/// A load balancer in front of the ingress (or of the app), `--front-lb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontLb {
    /// None.
    None,
    /// GCP external Application LB (GFE): backend keep-alive fixed 600 s, backend timeout 30 s.
    Gcp,
    /// AWS ALB: idle timeout 60 s (client and target side).
    Alb,
    /// AWS NLB: L4, no HTTP connection reuse; drops flows idle > 350 s.
    Nlb,
    /// Azure Application Gateway: backend request timeout 30 s (cmdlet default).
    AzureAppGw,
    /// Cloudflare: origin idle 900 s, read timeout 120 s (524).
    Cloudflare,
}

impl FrontLb {
    /// Parses `--front-lb` values and the longer `frontLoadBalancer` spellings of profiles
    /// (`gcp-gfe-backend-keepalive-600s`).
    pub fn parse(s: &str) -> Option<FrontLb> {
        let s = s.to_ascii_lowercase();
        Some(if s.is_empty() || s == "none" {
            FrontLb::None
        } else if s.contains("gcp") || s.contains("gfe") || s.contains("google") {
            FrontLb::Gcp
        } else if s.contains("nlb") {
            FrontLb::Nlb
        } else if s.contains("alb") || s.contains("elb") {
            FrontLb::Alb
        } else if s.contains("azure") || s.contains("appgw") {
            FrontLb::AzureAppGw
        } else if s.contains("cloudflare") {
            FrontLb::Cloudflare
        } else {
            return None;
        })
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            FrontLb::None => "none",
            FrontLb::Gcp => "GCP external Application LB (GFE)",
            FrontLb::Alb => "AWS ALB",
            FrontLb::Nlb => "AWS NLB",
            FrontLb::AzureAppGw => "Azure Application Gateway",
            FrontLb::Cloudflare => "Cloudflare",
        }
    }

    /// How long the LB keeps idle HTTP connections to its backend open (seconds), if it pools.
    pub fn backend_idle_secs(self) -> Option<u64> {
        match self {
            FrontLb::Gcp => Some(600),
            FrontLb::Alb => Some(60),
            FrontLb::Cloudflare => Some(900),
            _ => None,
        }
    }

    /// How long the LB waits for a response before answering 502/504/524 (seconds).
    pub fn response_timeout_secs(self) -> Option<u64> {
        match self {
            FrontLb::Gcp => Some(30),
            FrontLb::Alb => Some(60),
            FrontLb::AzureAppGw => Some(30),
            FrontLb::Cloudflare => Some(120),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert!(is_annotation("proxy-read-timeout"));
        assert!(!is_annotation("upstream-keepalive-timeout"));
        assert!(is_configmap_key("upstream-keepalive-timeout"));
        assert!(is_configmap_key("otel-sampler"));
        assert!(!is_configmap_key("keepalive-timeout"));
        assert_eq!(
            closest("proxy-read-timout", ANNOTATIONS),
            Some("proxy-read-timeout")
        );
        assert_eq!(
            FrontLb::parse("gcp-gfe-backend-keepalive-600s"),
            Some(FrontLb::Gcp)
        );
        assert_eq!(FrontLb::parse("nlb"), Some(FrontLb::Nlb));
    }
}
