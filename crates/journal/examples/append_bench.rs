//! Append throughput and latency of the embedded journal under concurrency.
//!
//! ```sh
//! cargo run --release -p wagate-journal --example append_bench -- [appends] [tasks] [fsync|os] [body bytes] [dir]
//! ```
//!
//! Defaults: 20000 appends, 64 tasks, fsync, 2048-byte bodies, a temp dir in the system temp
//! folder (put it on the disk you will run on: fsync cost is the point).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wagate_journal::conformance::sample;
use wagate_journal::embedded::Embedded;
use wagate_journal::{Durability, Journal};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let total: usize = arg(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let tasks: usize = arg(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let durability = match arg(3) {
        Some("os") => Durability::Os,
        _ => Durability::Fsync,
    };
    let body: usize = arg(4).and_then(|s| s.parse().ok()).unwrap_or(2048);
    let dir = match arg(5) {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");

    let journal = Arc::new(Embedded::open(&dir.path().join("bench.db"), durability).expect("open"));
    let issued = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (journal, issued) = (Arc::clone(&journal), Arc::clone(&issued));
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return lat;
                    }
                    let req = sample(n as u64, body);
                    let t = Instant::now();
                    journal.append(req).await.expect("append");
                    lat.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut lat: Vec<Duration> = Vec::with_capacity(total);
    for w in workers {
        lat.extend(w.await.expect("task"));
    }
    let elapsed = start.elapsed();
    journal.close().await.expect("close");
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "durability={durability:?} tasks={tasks} body={body}B appends={total}: {:.0} appends/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        total as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3,
    );
}
