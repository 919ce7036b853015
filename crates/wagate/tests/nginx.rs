//! Behind a real nginx: bursts separated by idle gaps swept across the proxy's upstream
//! keep-alive timeout give zero non-200 with wagate's idle timeout above nginx's, and 502s with
//! it below (the classic ingress race, so the test can fail); a rolling restart loses nothing.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::nginx::Nginx;
use common::*;

fn body(n: usize) -> Vec<u8> {
    let template =
        String::from_utf8(std::fs::read(payloads_dir().join("cloud_msg_text.json")).unwrap())
            .unwrap();
    template
        .replacen("wamid.", &format!("wamid.n{n:09}."), 1)
        .into_bytes()
}

/// Sends bursts of `size` concurrent signed POSTs, sleeping `gap` between bursts, cycling over
/// `gaps`; stops after `max_requests` or `max_time`. Returns status counts (0 = transport error).
async fn burst_idle(
    url: &str,
    size: usize,
    gaps: &[Duration],
    max_requests: usize,
    max_time: Duration,
    stop_on_first_failure: bool,
) -> BTreeMap<u16, usize> {
    let client = client(size);
    let mut counts = BTreeMap::new();
    let started = Instant::now();
    let mut sent = 0;
    'outer: loop {
        for gap in gaps {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..size {
                let (client, url, b) = (client.clone(), url.to_owned(), body(sent));
                sent += 1;
                set.spawn(async move {
                    post_signed(&client, &url, b)
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                });
            }
            while let Some(status) = set.join_next().await {
                *counts.entry(status.unwrap()).or_insert(0) += 1;
            }
            let failed = counts.iter().any(|(s, _)| *s != 200);
            if sent >= max_requests
                || started.elapsed() > max_time
                || (stop_on_first_failure && failed)
            {
                break 'outer;
            }
            tokio::time::sleep(*gap).await;
        }
    }
    counts
}

fn sweep(from_ms: u64, to_ms: u64, step_ms: u64) -> Vec<Duration> {
    (from_ms..=to_ms)
        .step_by(step_ms as usize)
        .map(Duration::from_millis)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_idle_behind_nginx_gives_zero_non_200_when_idle_exceeds_the_proxy_keepalive() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Wagate::start_in(
        dir.path(),
        &config_text(dir.path(), "idle_timeout = \"3s\"", ""),
    );
    let ngx_dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(ngx_dir.path(), &[gw.addr], "2s");
    // Gaps from 1.5 s to 3.5 s cross both nginx's 2 s and wagate's 3 s.
    let counts = burst_idle(
        &nginx.url(),
        50,
        &sweep(1500, 3500, 250),
        1000,
        Duration::from_secs(90),
        false,
    )
    .await;
    let total: usize = counts.values().sum();
    eprintln!("statuses: {counts:?}");
    assert!(total >= 1000, "{total} requests");
    assert_eq!(
        counts.get(&200),
        Some(&total),
        "non-200 responses: {counts:?}\n{}",
        nginx.error_log()
    );
    assert_eq!(
        gw.export().len(),
        total,
        "every acknowledged request is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_idle_behind_nginx_shows_502_when_idle_is_below_the_proxy_keepalive() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Wagate::start_in(
        dir.path(),
        &config_text(dir.path(), "idle_timeout = \"1s\"", ""),
    );
    let ngx_dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(ngx_dir.path(), &[gw.addr], "2s");
    // Gaps around wagate's 1 s close, inside nginx's 2 s reuse window: the race.
    let counts = burst_idle(
        &nginx.url(),
        50,
        &sweep(960, 1040, 4),
        5000,
        Duration::from_secs(60),
        true,
    )
    .await;
    eprintln!("statuses: {counts:?}");
    assert!(
        counts.get(&502).copied().unwrap_or(0) > 0,
        "expected 502s from the keep-alive race: {counts:?}"
    );
    assert!(
        nginx.error_log().contains("upstream"),
        "nginx logged the upstream failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_behind_nginx_loses_nothing() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Wagate::start_in(da.path(), &config_text(da.path(), "", ""));
    let mut b = Wagate::start_in(db.path(), &config_text(db.path(), "", ""));
    let ngx_dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(ngx_dir.path(), &[a.addr, b.addr], "60s");

    // Client → nginx without keep-alive: the test is about nginx → wagate connections, not about
    // nginx closing its own idle client connections on reload.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<HashMap<String, u16>>> = Arc::default();
    let statuses: Arc<Mutex<BTreeMap<u16, usize>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, url, stop, counter, acked, statuses) = (
            client.clone(),
            nginx.url(),
            stop.clone(),
            counter.clone(),
            acked.clone(),
            statuses.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let status = match post_signed(&client, &url, body(n)).await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        if s == 200 {
                            acked.lock().unwrap().insert(
                                r.headers()["x-request-id"].to_str().unwrap().to_owned(),
                                s,
                            );
                        }
                        s
                    }
                    Err(_) => 0,
                };
                *statuses.lock().unwrap().entry(status).or_insert(0) += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Endpoint removal, then SIGTERM, under load.
    nginx.reload(&[b.addr]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.signal(15);
    let a_status = tokio::task::spawn_blocking(move || {
        let s = a.wait(Duration::from_secs(15));
        (a, s)
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let (a, status) = a_status.await.unwrap();
    assert!(status.expect("instance A exited").success());
    b.signal(15);
    assert!(
        b.wait(Duration::from_secs(15))
            .expect("instance B exited")
            .success()
    );

    let statuses = statuses.lock().unwrap().clone();
    eprintln!("statuses: {statuses:?}");
    let total: usize = statuses.values().sum();
    assert!(total > 500, "{total} requests");
    assert_eq!(
        statuses.get(&200),
        Some(&total),
        "non-200 during the rolling restart: {statuses:?}\n{}",
        nginx.error_log()
    );
    let mut stored: std::collections::HashSet<String> = a
        .export()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    let in_a = stored.len();
    stored.extend(
        b.export()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned()),
    );
    assert!(in_a > 0, "instance A served before the restart");
    for id in acked.lock().unwrap().keys() {
        assert!(stored.contains(id), "acknowledged {id} is stored");
    }
}
