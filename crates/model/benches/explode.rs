//! `explode` on the 1000-message batch (`cloud_batch_large_1000_messages.json`, ~800 KB):
//! time per request, MB/s (criterion `Throughput::Bytes`) and events/s (printed once).
//!
//! Run: `cargo bench -p wagate-model --bench explode`.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wagate_model::{Provider, RawRequest, explode};

fn body() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/payloads/cloud_batch_large_1000_messages.json"
    );
    std::fs::read(path).expect("corpus file")
}

fn request(body: &[u8]) -> RawRequest<'_> {
    RawRequest {
        id: "bench",
        source: "meta",
        provider: Provider::Meta,
        received_at: SystemTime::now(),
        body,
    }
}

fn bench(c: &mut Criterion) {
    let body = body();
    let events = explode(&request(&body)).len();
    assert_eq!(events, 1000);

    let mut g = c.benchmark_group("explode");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("batch_1000_messages", |b| {
        b.iter(|| explode(black_box(&request(&body))))
    });
    g.bench_function("batch_1000_messages+ndjson", |b| {
        let mut out = Vec::with_capacity(2 * body.len());
        b.iter(|| {
            out.clear();
            for e in explode(black_box(&request(&body))) {
                e.write_ndjson(&mut out);
            }
            black_box(out.len())
        })
    });
    g.finish();

    // Events per second, measured directly (criterion reports time and bytes only).
    let runs = 200;
    let start = Instant::now();
    for _ in 0..runs {
        black_box(explode(black_box(&request(&body))));
    }
    let per = start.elapsed() / runs;
    let eps = events as f64 / per.as_secs_f64();
    let mbs = body.len() as f64 / per.as_secs_f64() / 1e6;
    println!(
        "explode/batch_1000_messages: {events} events, {} bytes, {per:?} per request, {eps:.0} events/s, {mbs:.0} MB/s",
        body.len()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(30);
    targets = bench
}
criterion_main!(benches);
