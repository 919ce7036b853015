//! End-to-end runs against a real HTTP server on 127.0.0.1.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use common::{Behaviour, SECRET};
use wagate_loadgen::{LoadConfig, Pattern, PayloadSource, RetryPolicy, Signer, run_load};

fn meta_config(url: String) -> LoadConfig {
    let mut cfg = LoadConfig::new(url);
    cfg.signer = Signer::Meta {
        app_secret: SECRET.as_bytes().to_vec(),
    };
    cfg.timeout = Duration::from_secs(5);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_signatures_and_fan_out_match_what_the_server_saw() {
    let server = common::start(Behaviour::default()).await;
    let mut cfg = meta_config(server.url());
    cfg.connections = 4;
    cfg.statuses_per_message = 3;
    cfg.bounds.requests = Some(300);
    let s = run_load(cfg).await.unwrap();

    let c = server.counts();
    assert_eq!(
        c.bad_signature, 0,
        "every request carries a valid X-Hub-Signature-256"
    );
    assert_eq!(s.requests, 300);
    assert_eq!(c.requests, 300);
    assert_eq!(s.status_count(200), 300);
    assert!(s.all_200());
    assert_eq!(s.errors, 0);
    // What loadgen says it sent is what the receiver parsed out of the bodies.
    assert_eq!(s.messages, c.messages);
    assert_eq!(s.statuses, c.statuses);
    assert!(s.messages > 0);
    // Fan-out: three status POSTs per message (the run may end between a message and its statuses).
    assert!(
        s.statuses + 3 >= 3 * s.messages && s.statuses <= 3 * s.messages + 300 / 8,
        "{s:?}"
    );
    // Fresh wamids: no message id repeats.
    assert_eq!(c.message_ids.len() as u64, c.messages);
    // Keep-alive: never more connections than the pool size.
    assert!(
        c.connections <= 4 && s.connections.opened <= 4,
        "{} connections",
        c.connections
    );
    assert!(
        s.latency_ms.p50 > 0.0
            && s.latency_ms.p50 <= s.latency_ms.p99
            && s.latency_ms.p99 <= s.latency_ms.max
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_dir_is_sent_byte_exact() {
    let server = common::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/payloads/");
    for f in [
        "cloud_msg_text_unicode_wire_escaped.json",
        "cloud_msg_image_wire_escaped.json",
    ] {
        std::fs::copy(format!("{corpus}{f}"), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "not a payload").unwrap();
    let mut cfg = meta_config(server.url());
    cfg.payloads = PayloadSource::Dir(dir.path().to_owned());
    cfg.bounds.requests = Some(10);
    let s = run_load(cfg).await.unwrap();
    assert_eq!(s.status_count(200), 10);
    let c = server.counts();
    assert_eq!(c.bodies.len(), 2, "only the two *.json files, as they are");
    for f in [
        "cloud_msg_text_unicode_wire_escaped.json",
        "cloud_msg_image_wire_escaped.json",
    ] {
        let bytes = std::fs::read(format!("{corpus}{f}")).unwrap();
        assert_eq!(
            c.bodies.get(&bytes),
            Some(&5),
            "{f} sent 5 times byte-exact"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_rate_and_duration_bound_the_run() {
    let server = common::start(Behaviour::default()).await;
    let mut cfg = meta_config(server.url());
    cfg.pattern = Pattern::Steady { rate: Some(100.0) };
    cfg.bounds.duration = Some(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let s = run_load(cfg).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    // 100/s for 0.5 s: about 50 requests.
    assert!((40..=60).contains(&s.requests), "{} requests", s.requests);
    assert_eq!(server.counts().requests, s.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_sends_size_per_tick() {
    let server = common::start(Behaviour::default()).await;
    let mut cfg = meta_config(server.url());
    cfg.connections = 5;
    cfg.pattern = Pattern::Burst {
        size: 5,
        every: Duration::from_millis(100),
    };
    cfg.bounds.requests = Some(20);
    let started = std::time::Instant::now();
    let s = run_load(cfg).await.unwrap();
    assert_eq!(s.requests, 20);
    // Four bursts: at 0, 100, 200 and 300 ms.
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(server.counts().ok, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_retry_gets_everything_accepted_eventually() {
    let server = common::start(Behaviour {
        fail_first_sight: true,
        ..Behaviour::default()
    })
    .await;
    let mut cfg = meta_config(server.url());
    cfg.bounds.requests = Some(40);
    cfg.retry = Some(RetryPolicy {
        first_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_attempts: 3,
    });
    let s = run_load(cfg).await.unwrap();
    let r = s.retry.clone().unwrap();
    assert_eq!(s.deliveries, 40);
    assert_eq!(r.first_try_failed, 40);
    assert_eq!(r.resent, 40);
    assert_eq!(r.eventually_accepted, 40);
    assert_eq!(r.gave_up, 0);
    assert_eq!(s.accepted, 40);
    assert_eq!(s.status_count(500), 40);
    assert_eq!(s.status_count(200), 40);
    let c = server.counts();
    // Each body arrived twice, the redelivery with the same bytes (so the same signature).
    assert_eq!(c.bodies.len(), 40);
    assert!(c.bodies.values().all(|n| *n == 2));
    assert_eq!(c.bad_signature, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_gives_up_after_max_attempts() {
    let server = common::start(Behaviour {
        fail_every: Some(1),
        ..Behaviour::default()
    })
    .await;
    let mut cfg = meta_config(server.url());
    cfg.bounds.requests = Some(5);
    cfg.retry = Some(RetryPolicy {
        first_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(10),
        max_attempts: 2,
    });
    let s = run_load(cfg).await.unwrap();
    let r = s.retry.unwrap();
    assert_eq!(
        (
            r.first_try_failed,
            r.resent,
            r.eventually_accepted,
            r.gave_up
        ),
        (5, 10, 0, 5)
    );
    assert_eq!(s.requests, 15);
    assert_eq!(server.counts().requests, 15);
}

/// The idle-gap sweep: the server treats a request on a connection idle for more than 200 ms as
/// racing its close and drops the connection without answering. Gaps of 50 and 150 ms must be
/// clean, gaps of 250 and 350 ms must fail with `reset`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_idle_fails_only_at_gaps_above_the_server_idle_close() {
    // Wide margins on both sides of the server's 400 ms idle close, so CPU load cannot move a gap
    // across it.
    let server = common::start(Behaviour {
        stale_after: Some(Duration::from_millis(400)),
        ..Behaviour::default()
    })
    .await;
    let mut cfg = meta_config(server.url());
    cfg.connections = 4;
    cfg.pattern = Pattern::BurstIdle {
        size: 4,
        gap_from: Duration::from_millis(50),
        gap_to: Duration::from_millis(750),
        step: Duration::from_millis(700),
    };
    let s = run_load(cfg).await.unwrap();
    let gaps: Vec<u64> = s.gaps.iter().map(|g| g.gap_ms).collect();
    assert_eq!(gaps, [50, 750]);
    for row in &s.gaps {
        assert_eq!((row.bursts, row.requests), (1, 4), "{row:?}");
        if row.gap_ms < 400 {
            assert_eq!(row.failures, 0, "{row:?}");
        } else {
            assert_eq!((row.failures, row.reset), (4, 4), "{row:?}");
        }
    }
    assert_eq!(s.error_kinds["reset"], 4);
    assert_eq!(server.counts().dropped_stale, 4);
    // A warm-up burst and one per gap.
    assert_eq!(s.requests, 12);
    assert_eq!(s.status_count(200), 8);
}

/// A server that closes idle keep-alive connections (FIN) is noticed in the pool, like a proxy
/// does: the connections are replaced, no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_closed_by_the_server_are_replaced_without_errors() {
    let server = common::start(Behaviour {
        close_idle_after: Some(Duration::from_millis(50)),
        ..Behaviour::default()
    })
    .await;
    let mut cfg = meta_config(server.url());
    cfg.connections = 3;
    cfg.pattern = Pattern::BurstIdle {
        size: 3,
        gap_from: Duration::from_millis(200),
        gap_to: Duration::from_millis(200),
        step: Duration::from_millis(100),
    };
    cfg.bounds.sweeps = Some(2);
    let s = run_load(cfg).await.unwrap();
    assert_eq!(s.requests, 9);
    assert!(s.all_200(), "{s:?}");
    // The pooled connections were found closed after the gaps (under CPU load one FIN may be
    // noticed only when the connection is next used, so not always all six)…
    assert!((3..=6).contains(&s.gaps[0].reconnects), "{:?}", s.gaps[0]);
    // …and replaced (a fast answer may let one new connection serve two requests of a burst).
    assert!(s.connections.opened >= 5, "{:?}", s.connections);
}

#[tokio::test]
async fn refuses_remote_targets() {
    let err = run_load(LoadConfig::new("http://192.0.2.1:80/"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--allow-remote"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_counts_as_connect_error() {
    // Bind then drop to get a closed local port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = meta_config(format!("http://127.0.0.1:{port}/"));
    cfg.bounds.requests = Some(3);
    let s = run_load(cfg).await.unwrap();
    assert_eq!((s.requests, s.errors, s.error_kinds["connect"]), (3, 3, 3));
    assert!(!s.all_200());
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: wagate_loadgen::cli::LoadgenArgs,
}

fn cli_run(args: &[&str]) -> ExitCode {
    let cli = Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied())).unwrap();
    wagate_loadgen::cli::run(cli.args)
}

/// Runs a server on its own runtime so `cli::run` can own the calling thread.
fn server_runtime(b: Behaviour) -> (tokio::runtime::Runtime, common::Server) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(common::start(b));
    (rt, server)
}

#[test]
fn cli_expect_all_200_and_json_file() {
    let (_rt, flaky) = server_runtime(Behaviour {
        fail_every: Some(5),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("summary.json");
    let url = flaky.url();
    let base = [
        "--app-secret",
        SECRET,
        "--requests",
        "50",
        "--connections",
        "2",
        "--quiet",
        "--json",
    ];
    let mut args = vec![url.as_str(), "steady"];
    args.extend(base);
    args.push(json.to_str().unwrap());

    // Without --expect-all-200 the 500s are reported but the run succeeds.
    assert_eq!(cli_run(&args), ExitCode::SUCCESS);
    args.push("--expect-all-200");
    assert_eq!(cli_run(&args), ExitCode::from(1));

    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["requests"], 50);
    assert_eq!(v["status"]["200"], 40);
    assert_eq!(v["status"]["500"], 10);
    assert_eq!(v["errors"], 0);
    assert_eq!(v["pattern"], "steady");
    for p in ["p50", "p90", "p99", "max"] {
        assert!(v["latency_ms"][p].as_f64().unwrap() > 0.0, "latency_ms.{p}");
    }

    let (_rt2, good) = server_runtime(Behaviour::default());
    let url = good.url();
    let ok = cli_run(&[
        &url,
        "--pattern",
        "burst",
        "--size",
        "4",
        "--every",
        "10ms",
        "--requests",
        "12",
        "--app-secret",
        SECRET,
        "--quiet",
        "--expect-all-200",
    ]);
    assert_eq!(ok, ExitCode::SUCCESS);
    assert_eq!(good.counts().ok, 12);
}

#[test]
fn cli_burst_idle_json_has_the_gap_table() {
    let (_rt, server) = server_runtime(Behaviour {
        stale_after: Some(Duration::from_millis(100)),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("gaps.json");
    let url = server.url();
    let code = cli_run(&[
        &url,
        "burst-idle",
        "--size",
        "2",
        "--connections",
        "2",
        "--gap",
        "20ms..220ms",
        "--step",
        "200ms",
        "--app-secret",
        SECRET,
        "--quiet",
        "--expect-all-200",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, ExitCode::from(1));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["gaps"][0]["gap_ms"], 20);
    assert_eq!(v["gaps"][0]["failures"], 0);
    assert_eq!(v["gaps"][1]["gap_ms"], 220);
    assert_eq!(v["gaps"][1]["failures"], 2);
    assert_eq!(v["errors"], 2);
    assert_eq!(v["error_kinds"]["reset"], 2);
}

#[test]
fn cli_rejects_missing_secret_and_remote_targets() {
    assert_eq!(
        cli_run(&["http://127.0.0.1:9/", "--quiet"]),
        ExitCode::from(2)
    );
    assert_eq!(
        cli_run(&["http://198.51.100.7/", "--provider", "none", "--quiet"]),
        ExitCode::from(2)
    );
    assert_eq!(
        cli_run(&[
            "http://127.0.0.1:9/",
            "burst",
            "--pattern",
            "steady",
            "--provider",
            "none"
        ]),
        ExitCode::from(2)
    );
}
