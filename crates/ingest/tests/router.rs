//! Router-level tests (no socket): the handshake, every signature case, 413, 401, 503.
//! New router behaviour tests belong here; socket-level behaviour is tested in crates/wagate/tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wagate_ingest::config::{HmacAlgorithm, HmacEncoding, Provider, SourceConfig};
use wagate_ingest::{Drain, IngestConfig, ServerConfig, ShutdownConfig, build_sources, routes};
use wagate_journal::{
    Appended, Journal, JournalError, Leased, Request as Stored, Seq, Settlement, Stats,
};

const SECRET: &str = "test_app_secret";
const TOKEN: &str = "test-verify-token";
const WIRE_UNICODE: &[u8] =
    include_bytes!("../../../testdata/payloads/cloud_msg_text_unicode_wire_escaped.json");
const WIRE_IMAGE: &[u8] =
    include_bytes!("../../../testdata/payloads/cloud_msg_image_wire_escaped.json");

/// In-memory journal with switchable failure modes.
#[derive(Default)]
struct TestJournal {
    stored: Mutex<Vec<Stored>>,
    fail: std::sync::atomic::AtomicBool,
    delay_ms: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl Journal for TestJournal {
    async fn append(&self, request: Stored) -> Result<Appended, JournalError> {
        let delay = self.delay_ms.load(std::sync::atomic::Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(JournalError::Unavailable("disk full".into()));
        }
        let mut v = self.stored.lock().unwrap();
        v.push(request);
        Ok(Appended {
            seq: v.len() as Seq,
        })
    }
    async fn lease(&self, _max: usize, _lease_for: Duration) -> Result<Vec<Leased>, JournalError> {
        Ok(vec![])
    }
    async fn settle(&self, seq: Seq, _s: Settlement) -> Result<(), JournalError> {
        Err(JournalError::NotFound(seq))
    }
    async fn stats(&self) -> Result<Stats, JournalError> {
        Ok(Stats::default())
    }
    async fn health(&self) -> Result<(), JournalError> {
        Ok(())
    }
    async fn close(&self) -> Result<(), JournalError> {
        Ok(())
    }
}

fn meta_source(secrets: &[&str]) -> SourceConfig {
    SourceConfig {
        verify_token: Some(TOKEN.into()),
        app_secrets: secrets.iter().map(|s| s.to_string()).collect(),
        ..SourceConfig::default_meta()
    }
}

fn app(
    journal: Arc<TestJournal>,
    sources: Vec<SourceConfig>,
    server: ServerConfig,
) -> axum::Router {
    let shared = Arc::new(routes::Shared::new(
        journal,
        &server,
        Drain::new(),
        wagate_ingest::telemetry::init(),
    ));
    let config = IngestConfig {
        server,
        shutdown: ShutdownConfig::default(),
        sources,
    };
    let (sources, _) = build_sources(&config, shared).unwrap();
    routes::router(sources)
}

fn default_app(journal: Arc<TestJournal>) -> axum::Router {
    app(
        journal,
        vec![meta_source(&[SECRET])],
        ServerConfig::default(),
    )
}

fn post(path: &str, body: &[u8], headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_vec())).unwrap()
}

fn signed(body: &[u8], secret: &str) -> Request<Body> {
    let sig = wagate_verify::meta::sign(secret.as_bytes(), body);
    post("/webhook", body, &[("x-hub-signature-256", &sig)])
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn handshake_echoes_challenge_only_for_the_right_token() {
    let app = default_app(Arc::default());
    let get = |q: &str| {
        Request::get(format!("/webhook?{q}"))
            .body(Body::empty())
            .unwrap()
    };
    let (s, h, body) = send(
        &app,
        get(&format!(
            "hub.mode=subscribe&hub.verify_token={TOKEN}&hub.challenge=1158201444"
        )),
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "1158201444"));
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    // Opaque challenge strings are echoed decoded, byte for byte.
    let (s, _, body) = send(
        &app,
        get(&format!(
            "hub.challenge=a%2Bb%20c&hub.verify_token={TOKEN}&hub.mode=subscribe"
        )),
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "a+b c"));
    let (s, _, _) = send(
        &app,
        get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = send(
        &app,
        get(&format!(
            "hub.mode=unsubscribe&hub.verify_token={TOKEN}&hub.challenge=1"
        )),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = send(
        &app,
        get(&format!("hub.mode=subscribe&hub.verify_token={TOKEN}")),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = send(&app, get("")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn corpus_signature_vectors_are_accepted_and_stored_verbatim() {
    let journal = Arc::new(TestJournal::default());
    let app = default_app(journal.clone());
    for (body, hex) in [
        (
            WIRE_UNICODE,
            "a293525d155ef589e7ea3757144b2832700b7dfc4729a8260e0aac12dc441430",
        ),
        (
            WIRE_IMAGE,
            "880e4211f7a060dde2d0f98e9d3fd687d9bf82d85afa95c43d8ef56d54972fa0",
        ),
    ] {
        let sig = format!("sha256={hex}");
        let (s, h, _) = send(
            &app,
            post("/webhook", body, &[("x-hub-signature-256", &sig)]),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h["x-request-id"].len(), 36);
    }
    let stored = journal.stored.lock().unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(&stored[0].body[..], WIRE_UNICODE);
    assert_eq!(&stored[1].body[..], WIRE_IMAGE);
    assert_eq!(stored[0].source, "meta");
    assert_eq!(stored[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        stored[0].signature.as_deref(),
        Some(
            "x-hub-signature-256: sha256=a293525d155ef589e7ea3757144b2832700b7dfc4729a8260e0aac12dc441430"
        )
    );
    assert!(stored[0].valid_json);
}

#[tokio::test]
async fn naive_reserialised_signatures_missing_and_wrong_secrets_get_401() {
    let journal = Arc::new(TestJournal::default());
    let app = default_app(journal.clone());
    for (body, naive) in [
        (
            WIRE_UNICODE,
            "4c7eee0e956861e282b020c27c8ff004bc6ba9f841ce9d2d787fa6f95881b2b0",
        ),
        (
            WIRE_IMAGE,
            "11a3c016aa38aa0983f031f1f5b476aef557bc5b9edb3f55a3500c335323b646",
        ),
    ] {
        let sig = format!("sha256={naive}");
        let (s, _, body) = send(
            &app,
            post("/webhook", body, &[("x-hub-signature-256", &sig)]),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(body, "invalid signature\n");
    }
    let (s, _, _) = send(&app, post("/webhook", WIRE_IMAGE, &[])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "missing header");
    let (s, _, _) = send(&app, signed(WIRE_IMAGE, "another_secret")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "wrong secret");
    let (s, _, _) = send(
        &app,
        post(
            "/webhook",
            WIRE_IMAGE,
            &[("x-hub-signature-256", "sha1=abc")],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "sha1 only");
    // One tampered byte.
    let mut tampered = WIRE_IMAGE.to_vec();
    tampered[10] ^= 1;
    let sig = wagate_verify::meta::sign(SECRET.as_bytes(), WIRE_IMAGE);
    let (s, _, _) = send(
        &app,
        post("/webhook", &tampered, &[("x-hub-signature-256", &sig)]),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "tampered body");
    assert!(
        journal.stored.lock().unwrap().is_empty(),
        "nothing unauthenticated is stored"
    );
}

#[tokio::test]
async fn rotated_app_secrets_both_verify() {
    let journal = Arc::new(TestJournal::default());
    let router = app(
        journal.clone(),
        vec![meta_source(&["new_secret", "old_secret"])],
        ServerConfig::default(),
    );
    let app = router;
    assert_eq!(
        send(&app, signed(WIRE_IMAGE, "old_secret")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, signed(WIRE_IMAGE, "new_secret")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, signed(WIRE_IMAGE, SECRET)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(journal.stored.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn oversized_bodies_get_413_with_connection_close() {
    let journal = Arc::new(TestJournal::default());
    let server = ServerConfig {
        max_body: bytesize::ByteSize::b(1000),
        ..ServerConfig::default()
    };
    let router = app(journal.clone(), vec![meta_source(&[SECRET])], server);
    let app = router;
    let big = vec![b' '; 1001];
    // Declared by Content-Length.
    let (s, h, _) = send(&app, signed(&big, SECRET)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(h["connection"], "close");
    // Streamed without Content-Length (chunked).
    let chunks = futures_stream(big.clone());
    let req = Request::post("/webhook")
        .header(
            "x-hub-signature-256",
            wagate_verify::meta::sign(SECRET.as_bytes(), &big),
        )
        .body(chunks)
        .unwrap();
    let (s, _, _) = send(&app, req).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // At the limit is fine.
    let ok = vec![b' '; 1000];
    assert_eq!(send(&app, signed(&ok, SECRET)).await.0, StatusCode::OK);
    assert_eq!(journal.stored.lock().unwrap().len(), 1);
}

fn futures_stream(data: Vec<u8>) -> Body {
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = data
        .chunks(100)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    Body::from_stream(tokio_stream_iter(chunks))
}

fn tokio_stream_iter<T: Send + 'static>(
    items: Vec<T>,
) -> impl futures_core::Stream<Item = T> + Send + 'static {
    struct Iter<T>(std::vec::IntoIter<T>);
    impl<T> futures_core::Stream for Iter<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    impl<T> Unpin for Iter<T> {}
    Iter(items.into_iter())
}

#[tokio::test]
async fn journal_failure_and_slow_append_answer_503_with_retry_after() {
    let journal = Arc::new(TestJournal::default());
    journal
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let failing = default_app(journal.clone());
    let (s, h, _) = send(&failing, signed(WIRE_IMAGE, SECRET)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h["retry-after"], "5");

    let slow = Arc::new(TestJournal::default());
    slow.delay_ms
        .store(300, std::sync::atomic::Ordering::SeqCst);
    let server = ServerConfig {
        ack_timeout: Duration::from_millis(50),
        ..ServerConfig::default()
    };
    let slow_app = app(slow.clone(), vec![meta_source(&[SECRET])], server);
    let started = std::time::Instant::now();
    let (s, h, _) = send(&slow_app, signed(WIRE_IMAGE, SECRET)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(h.contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "answered at ack_timeout, not after the append"
    );
}

#[tokio::test]
async fn authentic_non_json_is_stored_flagged_and_acknowledged() {
    let journal = Arc::new(TestJournal::default());
    let app = default_app(journal.clone());
    let (s, _, _) = send(&app, signed(b"not json {", SECRET)).await;
    assert_eq!(s, StatusCode::OK);
    let stored = journal.stored.lock().unwrap();
    assert_eq!(&stored[0].body[..], b"not json {");
    assert!(!stored[0].valid_json);
}

#[tokio::test]
async fn wasender_and_hmac_sources() {
    let journal = Arc::new(TestJournal::default());
    let wasender = SourceConfig {
        name: "wasender".into(),
        path: "/wasender".into(),
        provider: Provider::Wasender,
        secret: Some("ws-secret".into()),
        ..SourceConfig::default_meta()
    };
    let waha = SourceConfig {
        name: "waha".into(),
        path: "/waha".into(),
        provider: Provider::Hmac,
        secret: Some("hmac-key".into()),
        header: Some("X-Webhook-Hmac".into()),
        algorithm: Some(HmacAlgorithm::Sha512),
        encoding: Some(HmacEncoding::Hex),
        ..SourceConfig::default_meta()
    };
    let router = app(
        journal.clone(),
        vec![meta_source(&[SECRET]), wasender, waha],
        ServerConfig::default(),
    );
    let app = router;
    let body = include_bytes!("../../../testdata/payloads/wasender_messages_upsert_text.json");
    assert_eq!(
        send(
            &app,
            post("/wasender", body, &[("x-webhook-signature", "ws-secret")])
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        send(
            &app,
            post("/wasender", body, &[("x-webhook-signature", "ws-secre")])
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, post("/wasender", body, &[])).await.0,
        StatusCode::UNAUTHORIZED
    );
    let tag = wagate_verify::hmac_header::sign(
        wagate_verify::Algorithm::Sha512,
        wagate_verify::Encoding::Hex,
        "",
        b"hmac-key",
        body,
    );
    assert_eq!(
        send(&app, post("/waha", body, &[("x-webhook-hmac", &tag)]))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, post("/waha", b"{}", &[("x-webhook-hmac", &tag)]))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // GET on a non-Meta source has no handshake.
    assert_eq!(
        send(&app, Request::get("/wasender").body(Body::empty()).unwrap())
            .await
            .0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let stored = journal.stored.lock().unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].source, "wasender");
    // A shared secret is a credential, not a per-body signature: it is not stored.
    assert_eq!(stored[0].signature, None);
    assert_eq!(stored[1].source, "waha");
    assert!(
        stored[1]
            .signature
            .as_deref()
            .unwrap()
            .starts_with("x-webhook-hmac: ")
    );
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let app = default_app(Arc::default());
    assert_eq!(
        send(&app, post("/other", b"{}", &[])).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&app, Request::put("/webhook").body(Body::empty()).unwrap())
            .await
            .0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn insecure_skip_signature_accepts_unsigned() {
    let journal = Arc::new(TestJournal::default());
    let src = SourceConfig {
        insecure_skip_signature: true,
        app_secrets: vec![],
        ..meta_source(&[])
    };
    let router = app(journal.clone(), vec![src], ServerConfig::default());
    assert_eq!(
        send(&router, post("/webhook", b"{}", &[])).await.0,
        StatusCode::OK
    );
    assert_eq!(journal.stored.lock().unwrap().len(), 1);
}

#[test]
fn config_validation_names_the_key() {
    let server = ServerConfig::default();
    let shutdown = ShutdownConfig::default();
    let err = wagate_ingest::config::validate(
        &server,
        &shutdown,
        &[SourceConfig {
            verify_token: Some("t".into()),
            ..SourceConfig::default_meta()
        }],
    )
    .unwrap_err();
    assert_eq!(err.key, "sources[0].app_secrets");
    let err = wagate_ingest::config::validate(
        &server,
        &shutdown,
        &[SourceConfig {
            path: "webhook".into(),
            ..meta_source(&["s"])
        }],
    )
    .unwrap_err();
    assert_eq!(err.key, "sources[0].path");
    assert!(wagate_ingest::config::validate(&server, &shutdown, &[meta_source(&["s"])]).is_ok());
}

#[tokio::test]
async fn bodies_over_the_memory_budget_get_503_before_being_read() {
    let journal = Arc::new(TestJournal::default());
    journal
        .delay_ms
        .store(400, std::sync::atomic::Ordering::SeqCst);
    let server = ServerConfig {
        max_body: bytesize::ByteSize::kib(4),
        max_body_memory: bytesize::ByteSize::kib(4),
        ..ServerConfig::default()
    };
    let router = app(journal.clone(), vec![meta_source(&[SECRET])], server);
    // The first request holds the whole budget while its (slow) append runs.
    let first = tokio::spawn({
        let router = router.clone();
        async move { send(&router, signed(WIRE_IMAGE, SECRET)).await.0 }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (s, h, _) = send(&router, signed(WIRE_IMAGE, SECRET)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(h.contains_key("retry-after"));
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    // Released after the append: the next one fits again.
    assert_eq!(
        send(&router, signed(WIRE_IMAGE, SECRET)).await.0,
        StatusCode::OK
    );
    assert_eq!(journal.stored.lock().unwrap().len(), 2);
}
