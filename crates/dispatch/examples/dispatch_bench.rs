//! End-to-end dispatch benchmark driver (used by `bench/dispatch.sh`): runs a fast local sink,
//! sends signed Meta webhooks to a running `wagate serve`, and reports delivery throughput and
//! receive → delivered latency (from each event's `received_at`, stamped by ingest, to its
//! arrival at the sink; same host, same clock).
//!
//! ```text
//! dispatch_bench sink <ADDR_FILE> <EVENTS>       # writes its address, waits for EVENTS
//! dispatch_bench send <URL> <REQUESTS> <MSGS_PER_REQUEST> <CONCURRENCY> <SECRET>
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("sink") => sink(&args[2], args[3].parse().expect("events")).await,
        Some("send") => {
            send(
                &args[2],
                args[3].parse().expect("requests"),
                args[4].parse().expect("messages per request"),
                args[5].parse().expect("concurrency"),
                &args[6],
            )
            .await
        }
        _ => eprintln!("usage: dispatch_bench sink ADDR_FILE EVENTS | send URL N M C SECRET"),
    }
}

async fn sink(addr_file: &str, events: u64) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    std::fs::write(addr_file, listener.local_addr().unwrap().to_string()).unwrap();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<f64>::with_capacity(
        events as usize,
    )));
    let count = Arc::new(AtomicU64::new(0));
    let first = Arc::new(std::sync::OnceLock::<Instant>::new());
    let done = Arc::new(tokio::sync::Notify::new());
    {
        let (latencies, count, first, done) = (
            latencies.clone(),
            count.clone(),
            first.clone(),
            done.clone(),
        );
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (latencies, count, first, done) = (
                    latencies.clone(),
                    count.clone(),
                    first.clone(),
                    done.clone(),
                );
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (latencies, count, first, done) = (
                            latencies.clone(),
                            count.clone(),
                            first.clone(),
                            done.clone(),
                        );
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            let now = SystemTime::now();
                            first.get_or_init(Instant::now);
                            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
                                && let Some(r) = v["received_at"].as_str()
                                && let Ok(t) = humantime::parse_rfc3339(r)
                            {
                                let l = now.duration_since(t).unwrap_or_default();
                                latencies.lock().unwrap().push(l.as_secs_f64());
                            }
                            if count.fetch_add(1, Ordering::SeqCst) + 1 >= events {
                                done.notify_one();
                            }
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    }
    done.notified().await;
    let elapsed = first.get().map_or(Duration::ZERO, Instant::elapsed);
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(f64::total_cmp);
    let q = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
            * 1000.0
    };
    println!(
        "delivered {} events in {:.2}s: {:.0} events/s; receive->delivered p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        count.load(Ordering::SeqCst),
        elapsed.as_secs_f64(),
        count.load(Ordering::SeqCst) as f64 / elapsed.as_secs_f64().max(1e-9),
        q(0.50),
        q(0.99),
        l.last().copied().unwrap_or(0.0) * 1000.0
    );
}

async fn send(url: &str, requests: u64, per: u64, concurrency: u64, secret: &str) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, url, secret) = (
            client.clone(),
            next.clone(),
            url.to_owned(),
            secret.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= requests {
                    return;
                }
                let msgs: Vec<String> = (0..per)
                    .map(|m| {
                        let from = 20_000 + (i * per + m) % 1000;
                        format!(r#"{{"from":"{from}","id":"wamid.b{i}.{m}","timestamp":"1767225600","type":"text","text":{{"body":"{i}"}}}}"#)
                    })
                    .collect();
                let body = format!(
                    r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550000000","phone_number_id":"101"}},"messages":[{}]}}}}]}}]}}"#,
                    msgs.join(",")
                );
                let sig = wagate_verify::meta::sign(secret.as_bytes(), body.as_bytes());
                loop {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("x-hub-signature-256", &sig)
                        .body(body.clone())
                        .send()
                        .await;
                    if matches!(&r, Ok(r) if r.status() == 200) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "sent {requests} requests ({} events) in {s:.2}s: {:.0} requests/s",
        requests * per,
        requests as f64 / s
    );
}
