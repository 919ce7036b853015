//! Webhook routes: the `GET` handshake and the `POST` acknowledgement contract
//! (verify → durable append → `200`; `503` with `Retry-After` when the append fails).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Limited};
use wagate_journal::{Journal, Request as Stored};
use wagate_verify::{Algorithm, Encoding, VerifyError, hmac_header, meta, shared_secret};

use crate::config::{HmacAlgorithm, HmacEncoding, Provider};
use crate::server::conn::PeerAddr;
use crate::server::drain::Drain;
use crate::telemetry::{Metrics, SourceMetrics};

/// What every source shares: the journal and the request limits.
pub struct Shared {
    /// Where accepted requests go.
    pub journal: Arc<dyn Journal>,
    /// `server.max_body`, bytes.
    pub max_body: u64,
    /// `server.body_read_timeout`.
    pub body_read_timeout: Duration,
    /// `server.ack_timeout`.
    pub ack_timeout: Duration,
    /// Drain state (responses during a drain carry `Connection: close`).
    pub drain: Drain,
    /// Global metric handles.
    pub metrics: &'static Metrics,
    /// `server.max_body_memory` in KiB permits.
    pub body_budget: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    /// Shared state from `[server]`.
    pub fn new(
        journal: Arc<dyn Journal>,
        server: &crate::ServerConfig,
        drain: Drain,
        metrics: &'static Metrics,
    ) -> Self {
        Shared {
            journal,
            max_body: server.max_body.as_u64(),
            body_read_timeout: server.body_read_timeout,
            ack_timeout: server.ack_timeout,
            drain,
            metrics,
            body_budget: Arc::new(tokio::sync::Semaphore::new(
                kib(server.max_body_memory.as_u64()) as usize,
            )),
        }
    }
}

/// Bytes to whole KiB, at least 1 (the unit of the body budget).
fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
}

/// How a source authenticates POSTs, with secrets already resolved.
pub enum Auth {
    /// `X-Hub-Signature-256` over the raw body with any of these app secrets.
    Meta(Vec<Vec<u8>>),
    /// Header equal to the shared secret.
    SharedSecret {
        header: http::HeaderName,
        secret: Vec<u8>,
    },
    /// Generic HMAC header.
    Hmac {
        header: http::HeaderName,
        algorithm: Algorithm,
        encoding: Encoding,
        prefix: String,
        secrets: Vec<Vec<u8>>,
    },
    /// `insecure_skip_signature = true`.
    None,
}

/// One configured `[[sources]]` entry, ready to serve.
pub struct Source {
    /// Source name.
    pub name: String,
    /// URL path.
    pub path: String,
    /// Provider.
    pub provider: Provider,
    /// Meta verify token for the `GET` handshake.
    pub verify_token: Option<String>,
    /// Authentication of POSTs.
    pub auth: Auth,
    /// Metric handles.
    pub metrics: SourceMetrics,
    /// Shared state.
    pub shared: Arc<Shared>,
}

impl Source {
    /// Builds the auth of a source from its provider settings and resolved secrets.
    pub fn auth_for(
        provider: Provider,
        skip: bool,
        secrets: Vec<Vec<u8>>,
        header: Option<&str>,
        algorithm: Option<HmacAlgorithm>,
        encoding: Option<HmacEncoding>,
        prefix: Option<&str>,
    ) -> Auth {
        if skip {
            return Auth::None;
        }
        match provider {
            Provider::Meta => Auth::Meta(secrets),
            Provider::Wasender => Auth::SharedSecret {
                header: http::HeaderName::from_static(shared_secret::WASENDER_HEADER),
                secret: secrets.into_iter().next().unwrap_or_default(),
            },
            Provider::Hmac => Auth::Hmac {
                header: header
                    .and_then(|h| http::HeaderName::try_from(h.to_ascii_lowercase()).ok())
                    .unwrap_or(http::HeaderName::from_static("x-webhook-hmac")),
                algorithm: match algorithm.unwrap_or(HmacAlgorithm::Sha512) {
                    HmacAlgorithm::Sha256 => Algorithm::Sha256,
                    HmacAlgorithm::Sha512 => Algorithm::Sha512,
                },
                encoding: match encoding.unwrap_or(HmacEncoding::Hex) {
                    HmacEncoding::Hex => Encoding::Hex,
                    HmacEncoding::Base64 => Encoding::Base64,
                },
                prefix: prefix.unwrap_or("").to_owned(),
                secrets,
            },
        }
    }

    /// Name of the per-body signature header worth storing with the request (so `raw` delivery
    /// can forward it). A shared secret is a standing credential, not a signature: never stored.
    fn auth_header(&self) -> Option<&http::HeaderName> {
        static META: http::HeaderName = http::HeaderName::from_static(meta::SIGNATURE_HEADER);
        match &self.auth {
            Auth::Meta(_) => Some(&META),
            Auth::Hmac { header, .. } => Some(header),
            Auth::SharedSecret { .. } | Auth::None => None,
        }
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
        let value = |h: &http::HeaderName| headers.get(h).map(HeaderValue::as_bytes);
        match &self.auth {
            Auth::Meta(secrets) => meta::verify(
                value(&http::HeaderName::from_static(meta::SIGNATURE_HEADER)),
                body,
                secrets,
            ),
            Auth::SharedSecret { header, secret } => shared_secret::verify(value(header), secret),
            Auth::Hmac {
                header,
                algorithm,
                encoding,
                prefix,
                secrets,
            } => hmac_header::verify(value(header), *algorithm, *encoding, prefix, body, secrets),
            Auth::None => Ok(()),
        }
    }
}

/// The public router: one route per source, 404 elsewhere, 405 for other methods.
pub fn router(sources: Vec<Arc<Source>>) -> Router {
    let mut router = Router::new();
    for source in sources {
        let path = source.path.clone();
        router = router.route(&path, get(handshake).post(receive).with_state(source));
    }
    router.fallback(|| async { reply(StatusCode::NOT_FOUND, "not found\n", false) })
}

fn reply(status: StatusCode, body: &'static str, close: bool) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if close {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// `GET`: Meta's subscription handshake (`hub.mode`, `hub.verify_token`, `hub.challenge`).
async fn handshake(State(source): State<Arc<Source>>, req: Request) -> Response {
    let resp = match (&source.provider, &source.verify_token) {
        (Provider::Meta, Some(token)) => {
            let (mut mode, mut got, mut challenge) = (None, None, None);
            for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
                match k.as_ref() {
                    "hub.mode" => mode = Some(v.into_owned()),
                    "hub.verify_token" => got = Some(v.into_owned()),
                    "hub.challenge" => challenge = Some(v.into_owned()),
                    _ => {}
                }
            }
            match meta::handshake(mode.as_deref(), got.as_deref(), challenge.as_deref(), token) {
                meta::Handshake::Accept(c) => {
                    let mut resp = Response::new(Body::from(c.to_owned()));
                    resp.headers_mut().insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    tracing::info!(source = %source.name, "verification handshake accepted");
                    resp
                }
                meta::Handshake::Forbidden => {
                    tracing::warn!(source = %source.name, "verification handshake refused: wrong hub.verify_token or hub.mode");
                    reply(StatusCode::FORBIDDEN, "forbidden\n", false)
                }
                meta::Handshake::BadRequest => reply(
                    StatusCode::BAD_REQUEST,
                    "missing hub.mode, hub.verify_token or hub.challenge\n",
                    false,
                ),
            }
        }
        _ => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n",
            false,
        ),
    };
    source.metrics.status(resp.status().as_u16());
    resp
}

/// `POST`: the acknowledgement contract.
async fn receive(State(source): State<Arc<Source>>, req: Request) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::now_v7().to_string();
    let (parts, body) = req.into_parts();
    let (resp, size) = accept(&source, &request_id, parts, body).await;
    let mut resp = resp;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    source.metrics.status(status);
    source.metrics.ack_duration.record(elapsed.as_secs_f64());
    if status == 200 {
        tracing::debug!(request_id, source = %source.name, size, status, latency_ms = elapsed.as_secs_f64() * 1e3, "webhook accepted");
    } else {
        tracing::info!(request_id, source = %source.name, size, status, latency_ms = elapsed.as_secs_f64() * 1e3, "webhook refused");
    }
    resp
}

async fn accept(
    source: &Source,
    request_id: &str,
    parts: http::request::Parts,
    body: Body,
) -> (Response, usize) {
    let shared = &source.shared;
    // Refuse by Content-Length before reading a byte; the unread body makes the connection
    // unusable, so say `Connection: close`.
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.max_body) {
        source.metrics.body_too_large.increment(1);
        return (
            reply(StatusCode::PAYLOAD_TOO_LARGE, "payload too large\n", true),
            0,
        );
    }
    // Reserve the body's memory before reading it; held until the append is done.
    let Ok(_budget) = shared
        .body_budget
        .clone()
        .try_acquire_many_owned(kib(declared.unwrap_or(shared.max_body)))
    else {
        tracing::warn!(source = %source.name, "max_body_memory reached: answering 503 so the sender retries");
        let mut resp = unavailable();
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return (resp, 0);
    };
    let body: Bytes = match tokio::time::timeout(
        shared.body_read_timeout,
        Limited::new(body, shared.max_body as usize).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            source.metrics.body_too_large.increment(1);
            return (
                reply(StatusCode::PAYLOAD_TOO_LARGE, "payload too large\n", true),
                0,
            );
        }
        Ok(Err(_)) => {
            return (
                reply(
                    StatusCode::BAD_REQUEST,
                    "could not read request body\n",
                    true,
                ),
                0,
            );
        }
        Err(_) => {
            return (
                reply(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body not received in time\n",
                    true,
                ),
                0,
            );
        }
    };
    let size = body.len();
    if source.verify(&parts.headers, &body).is_err() {
        source.metrics.signature_failures.increment(1);
        // Never say which check failed.
        return (
            reply(StatusCode::UNAUTHORIZED, "invalid signature\n", false),
            size,
        );
    }
    // Authentic but not JSON: store and acknowledge anyway (a retry cannot fix it); dispatch
    // dead-letters it.
    let valid_json = serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
    let signature = source.auth_header().and_then(|name| {
        let value = parts.headers.get(name)?.to_str().ok()?;
        Some(format!("{name}: {value}"))
    });
    let stored = Stored {
        id: request_id.to_owned(),
        source: source.name.clone(),
        received_at: SystemTime::now(),
        body,
        content_type: parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        signature,
        peer: parts.extensions.get::<PeerAddr>().map(|p| p.0.to_string()),
        valid_json,
    };
    let append_started = Instant::now();
    let outcome = tokio::time::timeout(shared.ack_timeout, shared.journal.append(stored)).await;
    shared
        .metrics
        .append_duration
        .record(append_started.elapsed().as_secs_f64());
    match outcome {
        Ok(Ok(_)) => (Response::new(Body::empty()), size),
        Ok(Err(e)) => {
            shared.metrics.append_errors.increment(1);
            tracing::error!(request_id, source = %source.name, error = %e, "journal append failed; answering 503 so the sender retries");
            (unavailable(), size)
        }
        Err(_) => {
            shared.metrics.append_timeouts.increment(1);
            tracing::error!(request_id, source = %source.name, timeout_ms = shared.ack_timeout.as_millis() as u64, "journal append exceeded ack_timeout; answering 503 so the sender retries");
            (unavailable(), size)
        }
    }
}

fn unavailable() -> Response {
    let mut resp = reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "journal unavailable, retry later\n",
        false,
    );
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}
