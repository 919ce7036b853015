//! End-to-end dispatch: real `wagate` processes (ingest and dispatch roles on one journal), a
//! real HTTP sink that fails on purpose, `kill -9` of the dispatcher mid-run, and the `dlq` CLI.

#[path = "../../dispatch/tests/support/sink.rs"]
mod sink;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sink::{Action, Sink};

const SECRET: &str = "test_app_secret";

fn config(dir: &Path, sink_url: &str, dispatch: &str, target: &str) -> PathBuf {
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[shutdown]
drain_delay = "100ms"
timeout = "5s"

[journal]
path = "{journal}"
durability = "os"

[log]
format = "json"
level = "info"

[[sources]]
name = "meta"
path = "/webhook"
provider = "meta"
verify_token = "t"
app_secrets = ["{SECRET}"]

[[targets]]
name = "app"
url = "{sink_url}"
mode = "events"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
{target}

[dispatch]
{dispatch}
"#,
        journal = dir.join("wagate.db").display()
    );
    let path = dir.join("wagate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A `wagate serve --role ROLE` child; `addr` is the webhook listener when there is one.
struct Proc {
    child: Child,
    addr: Option<SocketAddr>,
}

impl Proc {
    fn start(config: &Path, role: &str) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wagate"))
            .args(["serve", "--role", role, "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("wagate started") {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let _ = tx.send(v["webhook"].as_str().map(|a| a.parse().unwrap()));
                } else if line.contains("\"ERROR\"") || line.contains("panicked") {
                    eprintln!("wagate: {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("wagate started");
        Proc { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}/webhook", self.addr.unwrap())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wagate(args: &[&str], config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wagate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) {
    let sig = wagate_verify::meta::sign(SECRET.as_bytes(), &body);
    for _ in 0..50 {
        match client
            .post(url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &sig)
            .body(body.clone())
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => return,
            // A 503 (journal busy) is retried, as Meta would.
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("ingest did not accept a request");
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(16)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Acceptance 1 and 2: 10 000 events over 500 conversations, duplicate requests mixed in
/// (some sent concurrently), a sink answering 500, 429 with `Retry-After`, too slowly, or by
/// resetting the connection; the dispatcher is killed with SIGKILL mid-run and restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_events_in_order_exactly_once_through_faults_and_a_kill() {
    const CONVS: u64 = 500;
    const PER: u64 = 20;
    const CONCURRENCY: u64 = 32;
    let sink = Sink::start(
        sink::event_keys,
        Arc::new(|_, n| match n % 40 {
            5 => Action::Status(500, None),
            15 => Action::Status(429, Some(1)),
            25 => Action::Slow(Duration::from_millis(700)),
            35 => Action::Reset,
            _ => Action::Ok,
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &sink.url(),
        "backoff_base = \"10ms\"\nbackoff_max = \"300ms\"\npoll_interval = \"50ms\"\nbreaker_failures = 1000",
        &format!("timeout = \"400ms\"\nconcurrency = {CONCURRENCY}"),
    );
    let ingest = Proc::start(&cfg, "ingest");
    let mut dispatch = Some(Proc::start(&cfg, "dispatch"));

    // Ten senders, each owning 50 conversations and sending them in sequence, so the journal
    // order of a conversation is its sequence order.
    let url = ingest.url();
    let mut senders = Vec::new();
    for s in 0..10u64 {
        let url = url.clone();
        senders.push(tokio::spawn(async move {
            let client = client();
            let mut sent = Vec::new();
            for seq in 1..=PER {
                for group in 0..10u64 {
                    let msgs: Vec<(u64, u64)> = (0..5)
                        .map(|i| (10_000 + s * 50 + group * 5 + i, seq))
                        .collect();
                    let body = sink::meta_body(&msgs);
                    if (seq + group) % 9 == 0 {
                        // Two copies at once.
                        tokio::join!(
                            post(&client, &url, body.clone()),
                            post(&client, &url, body.clone())
                        );
                    } else {
                        post(&client, &url, body.clone()).await;
                    }
                    if (seq * 10 + group) % 13 == 0
                        && let Some(old) = sent.get(sent.len().saturating_sub(7))
                    {
                        // An older request again, as Meta retries do.
                        post(&client, &url, Vec::clone(old)).await;
                    }
                    sent.push(body);
                }
            }
        }));
    }

    // Kill the dispatcher once a good part is delivered, restart it a moment later.
    let total = CONVS * PER;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sink.delivered() < total / 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at_kill = sink.delivered();
    assert!(at_kill < total, "the kill happened mid-run ({at_kill})");
    let mut d = dispatch.take().unwrap();
    let pid = d.child.id();
    assert!(
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let _ = d.child.wait();
    drop(d);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _dispatch = Proc::start(&cfg, "dispatch");

    for s in senders {
        s.await.unwrap();
    }
    let ok = sink.wait_delivered(total, Duration::from_secs(90)).await;
    assert!(ok, "delivered {} of {total}", sink.delivered());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.order_errors(),
        Vec::<String>::new(),
        "order per conversation"
    );
    let dups = sink.duplicates();
    assert!(
        dups <= CONCURRENCY,
        "redeliveries after the kill ({dups}) are bounded by the attempts in flight ({CONCURRENCY})"
    );
    assert!(sink.attempts() > total + 100, "faults were injected");

    let stats: serde_json::Value =
        serde_json::from_str(&wagate(&["journal", "stats"], &cfg)).unwrap();
    let t = &stats["stats"]["deliveries"]["targets"][0];
    assert_eq!(t["delivered"], total, "{stats}");
    assert_eq!(t["pending"], 0, "{stats}");
    assert_eq!(t["dead"], 0, "{stats}");
    assert_eq!(stats["stats"]["deliveries"]["dedupe_keys"], total);
    assert_eq!(stats["stats"]["pending"], 0);
    eprintln!(
        "delivered {total}, attempts {}, duplicates after kill {dups}, killed at {at_kill}",
        sink.attempts()
    );
}

/// Acceptance 4: 4xx rejections land in the dead-letter queue; `wagate dlq replay` delivers
/// them, in order, once the sink is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_events_are_dead_lettered_and_replayed_with_the_cli() {
    let broken = Arc::new(AtomicBool::new(true));
    let b = broken.clone();
    let sink = Sink::start(
        sink::event_keys,
        Arc::new(move |r, _| {
            if b.load(Ordering::SeqCst) && String::from_utf8_lossy(&r.body).contains("101:777") {
                Action::Status(400, None)
            } else {
                Action::Ok
            }
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &sink.url(),
        "backoff_base = \"10ms\"\npoll_interval = \"50ms\"",
        "",
    );
    let gw = Proc::start(&cfg, "all");
    let client = client();
    for seq in 1..=4 {
        post(
            &client,
            &gw.url(),
            sink::meta_body(&[(777, seq), (778, seq)]),
        )
        .await;
    }
    assert!(sink.wait_delivered(4, Duration::from_secs(10)).await);
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = wagate(&["dlq", "list"], &cfg)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect();
        if lines.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l["last_error"] == "http_400" && l["conversation_key"] == "101:777")
    );
    let shown = wagate(&["dlq", "show", &lines[0]["id"].to_string()], &cfg);
    assert!(shown.contains("wamid.777.1"), "{shown}");

    broken.store(false, Ordering::SeqCst);
    let out = wagate(&["dlq", "replay", "--filter", "error=http_400"], &cfg);
    assert!(out.contains("replayed 4"), "{out}");
    assert!(
        sink.wait_delivered(8, Duration::from_secs(10)).await,
        "delivered {}",
        sink.delivered()
    );
    assert_eq!(sink.order_errors(), Vec::<String>::new());
    assert_eq!(wagate(&["dlq", "list"], &cfg).lines().count(), 0);
}
