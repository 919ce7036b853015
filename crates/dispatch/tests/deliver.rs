//! Delivery against a real HTTP sink, with the dispatcher in-process on a real SQLite journal.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use support::sink::{self, Action, Sink};
use wagate_dispatch::{DispatchConfig, Dispatcher, Mode, Settings, TargetConfig};
use wagate_journal::embedded::Embedded;
use wagate_journal::events::{DeadFilter, EventStore};
use wagate_journal::{Durability, Journal, Request};
use wagate_model::Provider;

const APP_SECRET: &str = "test_app_secret";
const WH_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn target(url: &str, mode: Mode) -> TargetConfig {
    TargetConfig {
        name: "app".into(),
        url: url.into(),
        mode,
        secret: Some(WH_SECRET.into()),
        timeout: Duration::from_millis(500),
        concurrency: 16,
        rate: None,
        sources: vec![],
        kinds: vec![],
        fields: vec![],
        types: vec![],
    }
}

fn fast() -> DispatchConfig {
    DispatchConfig {
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        poll_interval: Duration::from_millis(20),
        breaker_failures: 1000,
        breaker_cooldown: Duration::from_millis(200),
        ..DispatchConfig::default()
    }
}

struct Env {
    _dir: tempfile::TempDir,
    journal: Arc<Embedded>,
    dispatcher: Option<Dispatcher>,
    ids: AtomicU64,
}

impl Env {
    fn start(targets: Vec<TargetConfig>, dispatch: DispatchConfig) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Embedded::open(&dir.path().join("j.db"), Durability::Os).unwrap());
        let store: Arc<dyn EventStore> = journal.clone();
        let settings = Settings {
            dispatch,
            targets,
            providers: HashMap::from([("meta".to_string(), Provider::Meta)]),
        };
        let dispatcher = Dispatcher::start(settings, store, journal.clone()).unwrap();
        Env {
            _dir: dir,
            journal,
            dispatcher: Some(dispatcher),
            ids: AtomicU64::new(0),
        }
    }

    async fn append(&self, body: &[u8]) {
        let n = self.ids.fetch_add(1, Ordering::SeqCst);
        let sig = wagate_verify::meta::sign(APP_SECRET.as_bytes(), body);
        self.journal
            .append(Request {
                id: format!("req-{n:06}"),
                source: "meta".into(),
                received_at: SystemTime::now(),
                body: Bytes::copy_from_slice(body),
                content_type: Some("application/json".into()),
                signature: Some(format!("x-hub-signature-256: {sig}")),
                peer: None,
                valid_json: serde_json::from_slice::<serde_json::Value>(body).is_ok(),
            })
            .await
            .unwrap();
        if let Some(d) = &self.dispatcher {
            d.waker().notify_one();
        }
    }

    async fn stop(mut self) {
        if let Some(d) = self.dispatcher.take() {
            d.shutdown().await;
        }
        self.journal.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_signed_ordered_and_deduplicated_through_faults() {
    // Faults by attempt number: 500s, 429 with Retry-After, slow answers past the timeout and
    // connection resets, mixed in.
    let sink = Sink::start(
        sink::event_keys,
        Arc::new(|_, n| match n % 17 {
            3 => Action::Status(500, None),
            7 => Action::Status(429, Some(0)),
            11 => Action::Slow(Duration::from_millis(900)),
            13 => Action::Reset,
            _ => Action::Ok,
        }),
    )
    .await;
    let env = Env::start(vec![target(&sink.url(), Mode::Events)], fast());
    let (convs, per) = (20u64, 10u64);
    for seq in 1..=per {
        for c in 0..convs {
            let body = sink::meta_body(&[(1000 + c, seq)]);
            // Two copies at once: the dedupe insert must let exactly one through.
            tokio::join!(env.append(&body), env.append(&body));
        }
    }
    assert!(
        sink.wait_delivered(convs * per, Duration::from_secs(30))
            .await,
        "delivered {} of {}",
        sink.delivered(),
        convs * per
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.order_errors(), Vec::<String>::new());
    assert_eq!(sink.duplicates(), 0);
    assert!(sink.attempts() > convs * per, "faults were injected");

    let accepted = sink.state.accepted.lock().unwrap().clone();
    let key = wagate_verify::standard_webhooks::key(WH_SECRET);
    for r in &accepted {
        let h = |n: &str| r.headers.get(n).unwrap().to_str().unwrap().to_owned();
        let event: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(h("idempotency-key"), event["dedupe_key"].as_str().unwrap());
        assert_eq!(h("x-wagate-event-id"), event["id"].as_str().unwrap());
        assert_eq!(h("webhook-id"), event["id"].as_str().unwrap());
        assert!(h("x-wagate-attempt").parse::<u32>().unwrap() >= 1);
        assert_eq!(h("content-type"), "application/json");
        let ts: i64 = h("webhook-timestamp").parse().unwrap();
        wagate_verify::standard_webhooks::verify(
            &key,
            &h("webhook-id"),
            ts,
            &r.body,
            &h("webhook-signature"),
        )
        .expect("Standard Webhooks signature verifies");
    }
    let stats = env.journal.delivery_stats().await.unwrap();
    assert_eq!(stats.targets[0].delivered, convs * per);
    assert_eq!(stats.targets[0].pending, 0);
    assert_eq!(stats.dedupe_keys, convs * per);
    let requests = env.journal.stats().await.unwrap();
    assert_eq!(requests.done, convs * per * 2);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_pauses_a_down_target_without_an_attempt_storm() {
    let down = Arc::new(AtomicBool::new(true));
    let while_down = Arc::new(AtomicU64::new(0));
    let (d, w) = (down.clone(), while_down.clone());
    let sink = Sink::start(
        sink::event_keys,
        Arc::new(move |_, _| {
            if d.load(Ordering::SeqCst) {
                w.fetch_add(1, Ordering::SeqCst);
                Action::Status(503, None)
            } else {
                Action::Ok
            }
        }),
    )
    .await;
    let mut cfg = fast();
    cfg.breaker_failures = 5;
    cfg.breaker_cooldown = Duration::from_millis(250);
    let mut t = target(&sink.url(), Mode::Events);
    t.concurrency = 8;
    let env = Env::start(vec![t], cfg);
    let convs = 60u64;
    for c in 0..convs {
        env.append(&sink::meta_body(&[(2000 + c, 1)])).await;
    }
    let down_for = Duration::from_millis(2000);
    tokio::time::sleep(down_for).await;
    down.store(false, Ordering::SeqCst);
    let attempts_down = while_down.load(Ordering::SeqCst);
    // Without the breaker: 60 conversations retrying every ~100 ms for 2 s ≈ 1000 attempts.
    // With it: the threshold, what was in flight when it opened, and a few probes (cool-down
    // 250 ms doubling: about 3 in 2 s).
    assert!(
        attempts_down <= 5 + 8 + 6,
        "attempt storm: {attempts_down} attempts while down"
    );
    assert!(attempts_down >= 5, "the sink was tried: {attempts_down}");
    assert!(
        sink.wait_delivered(convs, Duration::from_secs(15)).await,
        "resumed: {} of {convs}",
        sink.delivered()
    );
    assert_eq!(sink.duplicates(), 0);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_mode_forwards_the_meta_request_byte_identical() {
    let sink = Sink::start(
        sink::raw_keys,
        Arc::new(|r, _| {
            let sig = r.headers.get("x-hub-signature-256").map(|v| v.as_bytes());
            match wagate_verify::meta::verify(sig, &r.body, &[APP_SECRET]) {
                Ok(()) => Action::Ok,
                Err(_) => Action::Status(401, None),
            }
        }),
    )
    .await;
    let env = Env::start(vec![target(&sink.url(), Mode::Raw)], fast());
    let mut sent = Vec::new();
    for seq in 1..=5 {
        for c in 0..4 {
            // Pretty-printed like some senders: the bytes must survive untouched.
            let v: serde_json::Value =
                serde_json::from_slice(&sink::meta_body(&[(3000 + c, seq)])).unwrap();
            let body = serde_json::to_vec_pretty(&v).unwrap();
            env.append(&body).await;
            sent.push(body);
        }
    }
    assert!(
        sink.wait_delivered(20, Duration::from_secs(10)).await,
        "delivered {} (attempts {})",
        sink.delivered(),
        sink.attempts()
    );
    assert_eq!(sink.order_errors(), Vec::<String>::new());
    let accepted = sink.state.accepted.lock().unwrap().clone();
    let mut got: Vec<Vec<u8>> = accepted.iter().map(|r| r.body.to_vec()).collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "forwarded bodies are byte-identical");
    for r in &accepted {
        assert_eq!(r.headers["content-type"], "application/json");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_dead_letter_then_replay_in_order() {
    let reject = Arc::new(AtomicBool::new(true));
    let r2 = reject.clone();
    let sink = Sink::start(
        sink::event_keys,
        Arc::new(move |r, _| {
            let bad = String::from_utf8_lossy(&r.body).contains("\"101:4001\"");
            if bad && r2.load(Ordering::SeqCst) {
                Action::Status(422, None)
            } else {
                Action::Ok
            }
        }),
    )
    .await;
    let env = Env::start(vec![target(&sink.url(), Mode::Events)], fast());
    for seq in 1..=3 {
        env.append(&sink::meta_body(&[(4000, seq), (4001, seq)]))
            .await;
    }
    env.append(b"{not json").await;
    assert!(sink.wait_delivered(3, Duration::from_secs(10)).await);
    let store: &dyn EventStore = &*env.journal;
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead = store.dead(DeadFilter::default(), 0, 100).await.unwrap();
        if dead.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(dead.len(), 4, "{dead:?}");
    assert_eq!(dead.iter().filter(|d| d.kind == "invalid").count(), 1);
    assert_eq!(
        dead.iter()
            .filter(|d| d.last_error.as_deref() == Some("http_422"))
            .count(),
        3
    );
    reject.store(false, Ordering::SeqCst);
    let n = store
        .replay(DeadFilter {
            error: Some("http_".into()),
            ..DeadFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(n, 3);
    env.dispatcher.as_ref().unwrap().waker().notify_one();
    assert!(sink.wait_delivered(6, Duration::from_secs(10)).await);
    assert_eq!(sink.order_errors(), Vec::<String>::new());
    let still = store.dead(DeadFilter::default(), 0, 100).await.unwrap();
    assert_eq!(still.len(), 1);
    assert_eq!(still[0].kind, "invalid");
    assert_eq!(store.purge(DeadFilter::default()).await.unwrap(), 1);
    env.stop().await;
}
