//! Crash safety: every request that got a 200 survives a SIGKILL of the server mid-load.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// A text message with a fresh wamid, so every request is distinct.
fn message(n: usize) -> Vec<u8> {
    let template = String::from_utf8(
        std::fs::read(payloads_dir().join("cloud_msg_image_wire_escaped.json")).unwrap(),
    )
    .unwrap();
    let mut body = template.replacen("wamid.", &format!("wamid.crash{n:08}."), 1);
    assert_ne!(body, template, "template has a wamid");
    body.push_str(&" ".repeat(n % 7));
    body.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_request_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_text(dir.path(), "", "");
    let mut gw = Wagate::start_in(dir.path(), &cfg);
    let url = gw.url();
    let acked: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    let counter = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let client = client(64);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (client, url, acked, counter, stop) = (
            client.clone(),
            url.clone(),
            acked.clone(),
            counter.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let body = message(n);
                match post_signed(&client, &url, body.clone()).await {
                    Ok(resp) if resp.status() == 200 => {
                        let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
                        acked.lock().unwrap().insert(id, body);
                    }
                    Ok(resp) => panic!("unexpected status {}", resp.status()),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 3000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.signal(9);
    let status = gw.wait(Duration::from_secs(5)).expect("killed");
    assert!(!status.success());
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 2000,
        "only {} acknowledged before the kill",
        acked.len()
    );

    // Restart on the same journal: recovery must keep every acknowledged request.
    drop(gw);
    let gw = Wagate::start_in(dir.path(), &cfg);
    let stored: HashMap<String, Vec<u8>> = gw
        .export()
        .iter()
        .map(|l| (l["id"].as_str().unwrap().to_owned(), decode_body(l)))
        .collect();
    let mut missing = 0;
    for (id, body) in &acked {
        match stored.get(id) {
            Some(b) => assert_eq!(b, body, "{id} stored byte-identical"),
            None => missing += 1,
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged requests lost",
        acked.len()
    );
    // In-flight requests at the kill may be stored without a 200 (the sender retries them).
    assert!(stored.len() >= acked.len());
    eprintln!("acknowledged {}, stored {}", acked.len(), stored.len());
}
