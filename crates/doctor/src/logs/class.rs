//! Failure classes (knowledge base section 8, plus a few extensions), with root cause and fix.

use serde::Serialize;

/// A failure class; `name()` is the public id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// The app closed an idle pooled connection the proxy reused.
    KeepaliveRace,
    /// No response headers within the proxy's read timeout.
    UpstreamReadTimeout,
    /// TCP connect to the pod timed out.
    UpstreamConnectTimeout,
    /// The app stopped reading the request body (send timeout).
    UpstreamSendTimeout,
    /// Connection refused: pod not listening (rollout endpoint race, not ready).
    UpstreamRefused,
    /// No ready endpoints: 503 without contacting the app.
    NoEndpoints,
    /// Body over the proxy's `client_max_body_size`.
    BodyTooLargeProxy,
    /// Body over the app's own limit.
    BodyTooLargeApp,
    /// Body spooled to a temporary file (informational).
    BodyBufferedToDisk,
    /// Response headers larger than `proxy_buffer_size`.
    ResponseHeaderTooBig,
    /// The app does not speak the protocol the proxy expects.
    ProtocolMismatch,
    /// The app died while sending the body.
    UpstreamDiedMidBody,
    /// The app closed the connection after working on the request for a while (crash, worker
    /// kill, OOM, connection cut at a timeout).
    UpstreamCrashed,
    /// The client gave up before the response (499).
    ClientAbort,
    /// 5xx produced by the app itself.
    AppError,
    /// A proxy failure the log does not explain.
    Unclassified,
}

/// Order of significance when counts tie.
pub const ALL: &[Class] = &[
    Class::KeepaliveRace,
    Class::UpstreamRefused,
    Class::NoEndpoints,
    Class::UpstreamReadTimeout,
    Class::UpstreamConnectTimeout,
    Class::UpstreamSendTimeout,
    Class::BodyTooLargeProxy,
    Class::BodyTooLargeApp,
    Class::ResponseHeaderTooBig,
    Class::ProtocolMismatch,
    Class::UpstreamCrashed,
    Class::UpstreamDiedMidBody,
    Class::ClientAbort,
    Class::AppError,
    Class::Unclassified,
    Class::BodyBufferedToDisk,
];

impl Class {
    /// Public id, e.g. `keepalive_race`.
    pub fn name(self) -> &'static str {
        match self {
            Class::KeepaliveRace => "keepalive_race",
            Class::UpstreamReadTimeout => "upstream_read_timeout",
            Class::UpstreamConnectTimeout => "upstream_connect_timeout",
            Class::UpstreamSendTimeout => "upstream_send_timeout",
            Class::UpstreamRefused => "upstream_refused",
            Class::NoEndpoints => "no_endpoints",
            Class::BodyTooLargeProxy => "body_too_large_proxy",
            Class::BodyTooLargeApp => "body_too_large_app",
            Class::BodyBufferedToDisk => "body_buffered_to_disk",
            Class::ResponseHeaderTooBig => "response_header_too_big",
            Class::ProtocolMismatch => "protocol_mismatch",
            Class::UpstreamDiedMidBody => "upstream_died_mid_body",
            Class::UpstreamCrashed => "upstream_crashed",
            Class::ClientAbort => "client_abort",
            Class::AppError => "app_error",
            Class::Unclassified => "unclassified",
        }
    }

    /// Informational classes are not failures.
    pub fn is_failure(self) -> bool {
        self != Class::BodyBufferedToDisk
    }

    /// Status the client usually sees, for error lines without an access-log line.
    pub fn typical_status(self) -> Option<u16> {
        Some(match self {
            Class::KeepaliveRace | Class::UpstreamRefused | Class::ResponseHeaderTooBig => 502,
            Class::ProtocolMismatch | Class::UpstreamCrashed => 502,
            Class::UpstreamReadTimeout
            | Class::UpstreamConnectTimeout
            | Class::UpstreamSendTimeout => 504,
            Class::NoEndpoints => 503,
            Class::BodyTooLargeProxy | Class::BodyTooLargeApp => 413,
            Class::ClientAbort => 499,
            Class::UpstreamDiedMidBody => 200,
            Class::AppError | Class::Unclassified | Class::BodyBufferedToDisk => return None,
        })
    }

    /// Root cause in one sentence.
    pub fn root_cause(self) -> &'static str {
        match self {
            Class::KeepaliveRace => {
                "the app closed an idle keep-alive connection that the proxy then reused (app idle timeout <= proxy upstream keep-alive: ingress-nginx upstream-keepalive-timeout 60s, Envoy idle_timeout 1h, Traefik idleConnTimeout 90s, HAProxy reuse); POSTs are not retried, so the client sees 502/503"
            }
            Class::UpstreamReadTimeout => {
                "the app sent no response headers within the proxy's read timeout (ingress-nginx proxy-read-timeout 60s, Envoy route timeout 15s): a slow handler or downstream call"
            }
            Class::UpstreamConnectTimeout => {
                "TCP connect to the pod timed out: stale endpoint (pod/node gone), NetworkPolicy drop or full SYN backlog"
            }
            Class::UpstreamSendTimeout => {
                "the app stopped reading the request body for proxy-send-timeout"
            }
            Class::UpstreamRefused => {
                "connection refused: the pod was not listening (exited on SIGTERM before its endpoint was removed, or not ready yet, or wrong targetPort)"
            }
            Class::NoEndpoints => {
                "the Service had no ready endpoints (failing readiness, crash loop, scaled to 0); the proxy answered 503 without contacting the app"
            }
            Class::BodyTooLargeProxy => {
                "the request body exceeded the proxy's limit (ingress-nginx proxy-body-size, default 1m); the app never saw the request"
            }
            Class::BodyTooLargeApp => {
                "the app itself rejected the body as too large (413 with an upstream address), not the proxy"
            }
            Class::BodyBufferedToDisk => {
                "request bodies larger than client-body-buffer-size (8k) are spooled to a temporary file (disk I/O per webhook); not a failure"
            }
            Class::ResponseHeaderTooBig => "response headers exceeded proxy-buffer-size (4k)",
            Class::ProtocolMismatch => {
                "the proxy and the app disagree on the protocol (TLS vs plain HTTP, h2c-only, wrong port)"
            }
            Class::UpstreamDiedMidBody => {
                "the app closed the connection while sending the response body (crash, wrong Content-Length); the client got a truncated response"
            }
            Class::UpstreamCrashed => {
                "the app closed the connection after working on the request (crash, worker timeout kill, OOM, or a connection cut at a timeout): not a keep-alive race"
            }
            Class::ClientAbort => {
                "the client (Meta, a load balancer) gave up before the response: its timeout is shorter than the app's response time"
            }
            Class::AppError => "the app itself answered 5xx",
            Class::Unclassified => "a proxy failure status without an error line that explains it",
        }
    }

    /// Fix in one sentence.
    pub fn fix(self) -> &'static str {
        match self {
            Class::KeepaliveRace => {
                "make the app's idle timeout exceed the proxy's upstream keep-alive by 5-15 s (wagate: server.idle_timeout, default 75s), or lower the proxy side (ingress-nginx ConfigMap upstream-keepalive-timeout, Istio DestinationRule idleTimeout, Traefik idleConnTimeout); run `wagate doctor manifests`"
            }
            Class::UpstreamReadTimeout => {
                "acknowledge the webhook immediately and process asynchronously; raise proxy-read-timeout per Ingress only if needed"
            }
            Class::UpstreamConnectTimeout => {
                "fix endpoint churn (preStop, readiness), NetworkPolicies and capacity"
            }
            Class::UpstreamSendTimeout => {
                "fix the app's body read path (backpressure, stalled workers)"
            }
            Class::UpstreamRefused => {
                "add a preStop sleep (native `sleep` action), drain gracefully on SIGTERM, use a readiness probe, and set terminationGracePeriodSeconds > preStop + drain"
            }
            Class::NoEndpoints => {
                "fix readiness / crash loop / replicas (kubectl get endpointslices, kubectl describe pod)"
            }
            Class::BodyTooLargeProxy => {
                "set nginx.ingress.kubernetes.io/proxy-body-size (or ConfigMap proxy-body-size) >= max payload + headroom, e.g. \"4m\" for 3 MB webhooks"
            }
            Class::BodyTooLargeApp => {
                "raise the app's body limit (wagate: server.max_body, default 4MiB)"
            }
            Class::BodyBufferedToDisk => {
                "optionally raise client-body-buffer-size (e.g. \"64k\") if payloads are routinely larger"
            }
            Class::ResponseHeaderTooBig => {
                "raise proxy-buffer-size (e.g. \"16k\") or shrink response headers"
            }
            Class::ProtocolMismatch => {
                "set nginx.ingress.kubernetes.io/backend-protocol to what the app speaks, check the port"
            }
            Class::UpstreamDiedMidBody => "find the app crash / Content-Length bug",
            Class::UpstreamCrashed => {
                "check app logs, OOM kills and worker timeouts around these times"
            }
            Class::ClientAbort => "respond faster: acknowledge first, then process",
            Class::AppError => "check the app's own logs",
            Class::Unclassified => {
                "enable the proxy's error log (ingress-nginx: error-log-level notice) next to the access log"
            }
        }
    }
}
