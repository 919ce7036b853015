//! Scale-out end to end, once per broker backend: three `wagate serve --role ingest` behind a
//! real nginx, two `--role dispatch` against a real HTTP sink, signed load whose requests mix
//! conversations of several partitions; mid-run `kill -9` of one ingest replica and of one
//! dispatcher, and (where the broker persists) a `kill -9` and restart of the broker. Every
//! acknowledged webhook must be delivered, in order per conversation, with duplicates bounded
//! by what was in flight.

mod common;
#[path = "../../dispatch/tests/support/sink.rs"]
mod sink;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sink::{Action, Sink};

const SECRET: &str = "test_app_secret";
const PARTITIONS: u32 = 4;
const CONCURRENCY: u64 = 16;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SIGKILL (what `Child::kill` sends on Unix), then reap.
fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A broker child process this test owns (in its own process group), so it can kill and
/// restart it without touching the machine's services.
struct Broker {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    kind: &'static str,
}

impl Broker {
    fn start(kind: &'static str, dir: &Path) -> Broker {
        let mut b = Broker {
            child: None,
            port: free_port(),
            dir: dir.to_owned(),
            kind,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        use std::os::unix::process::CommandExt;
        let port = self.port.to_string();
        let mut cmd = match self.kind {
            "redis" => {
                let mut c = Command::new("redis-server");
                c.args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
                    .args(["--appendonly", "yes", "--appendfsync", "always"])
                    .arg("--dir")
                    .arg(&self.dir);
                c
            }
            "nats" => {
                let conf = self.dir.join("nats.conf");
                std::fs::write(&conf, "max_payload: 8MB\n").unwrap();
                let mut c = Command::new(nats_server());
                c.args(["-a", "127.0.0.1", "-p", &port, "-js", "-c"])
                    .arg(&conf)
                    .arg("-sd")
                    .arg(self.dir.join("js"));
                c
            }
            "amqp" => {
                // An own RabbitMQ node: own name, cookie (HOME), ports and files.
                let d = |name: &str| self.dir.join(name);
                std::fs::write(
                    d("rabbitmq.conf"),
                    format!("listeners.tcp.1 = 127.0.0.1:{port}\nloopback_users = none\n"),
                )
                .unwrap();
                std::fs::write(d("rabbitmq-env.conf"), "").unwrap();
                std::fs::write(d("enabled_plugins"), "[].\n").unwrap();
                let mut c = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
                c.env("HOME", &self.dir)
                    .env("RABBITMQ_CONF_ENV_FILE", d("rabbitmq-env.conf"))
                    .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
                    .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
                    .env("RABBITMQ_NODENAME", format!("wagate-so-{port}@localhost"))
                    .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                    .env("RABBITMQ_NODE_PORT", &port)
                    .env("RABBITMQ_DIST_PORT", free_port().to_string())
                    .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
                    .env("RABBITMQ_LOG_BASE", d("log"))
                    .env("RABBITMQ_PID_FILE", d("pid"))
                    .env("ERL_EPMD_ADDRESS", "127.0.0.1");
                c
            }
            other => panic!("no broker process for {other}"),
        };
        self.child = Some(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start broker"),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.ready() {
            assert!(Instant::now() < deadline, "{} did not start", self.kind);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ready(&self) -> bool {
        let Ok(mut c) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
        match self.kind {
            "redis" => {
                let mut buf = [0u8; 5];
                c.write_all(b"PING\r\n").is_ok()
                    && c.read_exact(&mut buf).is_ok()
                    && &buf == b"+PONG"
            }
            // NATS greets with INFO; JetStream recovery happens before the port opens.
            "nats" => {
                let mut buf = [0u8; 4];
                c.read_exact(&mut buf).is_ok() && &buf == b"INFO"
            }
            // RabbitMQ opens its AMQP listener once the node has booted.
            _ => true,
        }
    }

    fn url(&self) -> String {
        match self.kind {
            "amqp" => format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port),
            k => format!("{k}://127.0.0.1:{}", self.port),
        }
    }

    /// Sends `sig` to the broker's whole process group and reaps it.
    fn signal_group(&mut self, sig: &str) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args([sig, "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().is_ok_and(|s| s.is_none()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
            let _ = c.wait();
        }
    }

    /// Restarts the broker: `kill -9`, or a graceful stop when `graceful`.
    fn restart(&mut self, graceful: bool, down_for: Duration) {
        self.signal_group(if graceful { "-TERM" } else { "-KILL" });
        std::thread::sleep(down_for);
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.signal_group("-KILL");
    }
}

fn nats_server() -> &'static str {
    if Path::new("/usr/sbin/nats-server").exists() {
        "/usr/sbin/nats-server"
    } else {
        "nats-server"
    }
}

fn config(dir: &Path, sink_url: &str, backend: &str, url: &str, prefix: &str) -> PathBuf {
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[shutdown]
drain_delay = "100ms"
timeout = "5s"

[journal]
backend = "{backend}"
url = "{url}"
prefix = "{prefix}"
partitions = {PARTITIONS}
hold_ttl = "3s"

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
timeout = "2s"
concurrency = {CONCURRENCY}

[dispatch]
backoff_base = "20ms"
backoff_max = "500ms"
poll_interval = "50ms"
breaker_failures = 1000
"#
    );
    let path = dir.join(format!("{prefix}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A `wagate serve --role ROLE` child.
struct Proc {
    child: Child,
    addr: Option<SocketAddr>,
    /// Partitions it took (dispatchers), from its log.
    taken: Arc<AtomicU64>,
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
        let taken = Arc::new(AtomicU64::new(0));
        let taken2 = taken.clone();
        let verbose = std::env::var_os("WAGATE_TEST_VERBOSE").is_some();
        let pid = child.id();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("partition taken") {
                    taken2.fetch_add(1, Ordering::Relaxed);
                }
                if line.contains("wagate started") {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let _ = tx.send(v["webhook"].as_str().map(|a| a.parse().unwrap()));
                } else if line.contains("panicked") || verbose {
                    eprintln!("wagate {pid}: {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("wagate started");
        Proc { child, addr, taken }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        kill9(&mut self.child);
    }
}

/// Posts until the gateway acknowledges with 200, as Meta retries (502 while an ingest
/// replica is gone, 503 while the broker is down). Counts the non-200 answers.
async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>, refused: &AtomicU64) {
    let sig = wagate_verify::meta::sign(SECRET.as_bytes(), &body);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match client
            .post(url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &sig)
            .body(body.clone())
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => return,
            _ => {
                refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("the gateway did not accept a request within 60 s");
}

/// The whole scenario against one backend. `restart` kills and restarts the broker mid-run.
async fn scale_out(backend: &str, url: &str, restart: Option<(&mut Broker, bool)>) {
    const CONVS: u64 = 200;
    const PER: u64 = 10;
    let sink = Sink::start(
        sink::event_keys,
        Arc::new(|_, n| match n % 50 {
            7 => Action::Status(503, None),
            21 => Action::Reset,
            _ => Action::Ok,
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!(
        "so{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let cfg = config(dir.path(), &sink.url(), backend, url, &prefix);
    let mut ingests: Vec<Option<Proc>> =
        (0..3).map(|_| Some(Proc::start(&cfg, "ingest"))).collect();
    let upstreams: Vec<SocketAddr> = ingests
        .iter()
        .map(|p| p.as_ref().unwrap().addr.unwrap())
        .collect();
    let nginx = common::nginx::Nginx::start(dir.path(), &upstreams, "60s");
    let mut dispatchers: Vec<Option<Proc>> = (0..2)
        .map(|_| Some(Proc::start(&cfg, "dispatch")))
        .collect();

    // Ten senders, each owning 20 conversations, sending each conversation in sequence. A
    // request carries two conversations (often of different partitions); some requests are
    // sent again later, as Meta retries do.
    let url = nginx.url();
    let refused = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    for s in 0..10u64 {
        let (url, refused) = (url.clone(), refused.clone());
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut sent: Vec<Vec<u8>> = Vec::new();
            for seq in 1..=PER {
                for pair in 0..10u64 {
                    let a = 20_000 + s * 20 + pair * 2;
                    let body = sink::meta_body(&[(a, seq), (a + 1, seq)]);
                    post(&client, &url, body.clone(), &refused).await;
                    // Paced, so the kills below happen while traffic flows (~8 s in all).
                    tokio::time::sleep(Duration::from_millis(80)).await;
                    if (seq * 10 + pair) % 11 == 0
                        && let Some(old) = sent.get(sent.len().saturating_sub(5))
                    {
                        post(&client, &url, old.clone(), &refused).await;
                    }
                    sent.push(body);
                }
            }
        }));
    }

    let total = CONVS * PER;
    let wait_for = |n: u64| {
        let sink = &sink;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while sink.delivered() < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for(total / 5).await;
    kill9(&mut ingests[0].take().unwrap().child);
    wait_for(total * 2 / 5).await;
    let at_kill = sink.delivered();
    assert!(
        at_kill < total,
        "{backend}: the dispatcher kill happened mid-run"
    );
    // Kill the dispatcher holding more partitions: the other must take them over.
    let victim = usize::from(
        dispatchers[1]
            .as_ref()
            .unwrap()
            .taken
            .load(Ordering::Relaxed)
            > dispatchers[0]
                .as_ref()
                .unwrap()
                .taken
                .load(Ordering::Relaxed),
    );
    let mut dead = dispatchers[victim].take().unwrap();
    let held_by_victim = dead.taken.load(Ordering::Relaxed);
    assert!(
        held_by_victim > 0,
        "{backend}: the killed dispatcher held partitions"
    );
    kill9(&mut dead.child);
    let survivor = dispatchers[1 - victim].as_ref().unwrap();
    if let Some((broker, graceful)) = restart {
        wait_for(total * 3 / 5).await;
        broker.restart(graceful, Duration::from_millis(500));
    }
    for s in senders {
        s.await.unwrap();
    }
    let ok = sink.wait_delivered(total, Duration::from_secs(120)).await;
    assert!(ok, "{backend}: delivered {} of {total}", sink.delivered());
    assert!(
        survivor.taken.load(Ordering::Relaxed) >= u64::from(PARTITIONS),
        "{backend}: the surviving dispatcher took every partition"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        sink.order_errors(),
        Vec::<String>::new(),
        "{backend}: order per conversation"
    );
    let dups = sink.duplicates();
    eprintln!(
        "{backend}: delivered {total} events, {} attempts, {dups} duplicates, {} non-200 answers to senders, dispatcher holding {held_by_victim} partitions killed at {at_kill}",
        sink.attempts(),
        refused.load(Ordering::Relaxed)
    );
    // What a dead dispatcher had read but not acknowledged is delivered again: at most its
    // attempts in flight plus the entries settled but not yet acknowledged.
    assert!(
        dups <= 2 * CONCURRENCY * u64::from(PARTITIONS),
        "{backend}: {dups} duplicates"
    );
    drop(nginx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_three_ingest_two_dispatch_kills_and_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start("redis", dir.path());
    let url = broker.url();
    scale_out("redis", &url, Some((&mut broker, false))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_three_ingest_two_dispatch_kills_and_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start("nats", dir.path());
    let url = broker.url();
    scale_out("nats", &url, Some((&mut broker, false))).await;
}

/// RabbitMQ 3.10 may lose the metadata of queues declared seconds before a hard kill (see
/// the amqp backend's docs), so its restart here is a graceful one (as in a rolling upgrade).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn amqp_three_ingest_two_dispatch_kills_and_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start("amqp", dir.path());
    let url = broker.url();
    scale_out("amqp", &url, Some((&mut broker, true))).await;
}

fn wagate_cli(args: &[&str], config: &Path) -> String {
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

/// Rejected deliveries land in the broker's dead letters; `wagate journal stats` counts them,
/// `wagate dlq list` shows them and `wagate dlq replay` delivers them, in order, once the
/// target is fixed.
async fn dead_letters_and_replay(backend: &str, url: &str) {
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let b = broken.clone();
    let sink = Sink::start(
        sink::event_keys,
        Arc::new(move |r, _| {
            if b.load(Ordering::SeqCst) && String::from_utf8_lossy(&r.body).contains("101:30001") {
                Action::Status(400, None)
            } else {
                Action::Ok
            }
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!(
        "dl{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let cfg = config(dir.path(), &sink.url(), backend, url, &prefix);
    let all = Proc::start(&cfg, "all");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{}/webhook", all.addr.unwrap());
    let refused = AtomicU64::new(0);
    // Enough dead letters that listing them while more are buried (the polling below) has
    // reordered a RabbitMQ queue before.
    const N: u64 = 40;
    for seq in 1..=N {
        post(
            &client,
            &url,
            sink::meta_body(&[(30001, seq), (30002, seq)]),
            &refused,
        )
        .await;
    }
    let dead = || {
        wagate_cli(&["dlq", "list"], &cfg)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while dead().len() < N as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = dead();
    assert_eq!(listed.len(), N as usize, "{backend}: {listed:?}");
    assert!(
        listed
            .iter()
            .all(|d| d["conversation_key"] == "101:30001" && d["last_error"] == "http_400")
    );
    assert!(
        sink.wait_delivered(N, Duration::from_secs(30)).await,
        "{backend}: the other conversation went through ({})",
        sink.delivered()
    );
    let stats: serde_json::Value =
        serde_json::from_str(&wagate_cli(&["journal", "stats"], &cfg)).unwrap();
    assert_eq!(stats["stats"]["dead"], N, "{backend}: {stats}");
    broken.store(false, Ordering::SeqCst);
    let out = wagate_cli(
        &["dlq", "replay", "--filter", "conversation=101:30001"],
        &cfg,
    );
    assert_eq!(
        out.trim(),
        format!("replayed {N} dead-lettered deliveries"),
        "{backend}"
    );
    assert!(
        sink.wait_delivered(2 * N, Duration::from_secs(30)).await,
        "{backend}: delivered {} of {} after replay",
        sink.delivered(),
        2 * N
    );
    assert_eq!(
        sink.order_errors(),
        Vec::<String>::new(),
        "{backend}: order"
    );
    assert!(dead().is_empty(), "{backend}: nothing left dead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dead_letters_are_listed_and_replayed_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start("redis", dir.path());
    dead_letters_and_replay("redis", &broker.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_dead_letters_are_listed_and_replayed_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start("nats", dir.path());
    dead_letters_and_replay("nats", &broker.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_dead_letters_are_listed_and_replayed_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start("amqp", dir.path());
    dead_letters_and_replay("amqp", &broker.url()).await;
}

/// Runs `wagate serve --role ingest` with `partitions` and returns its exit code and stderr
/// if it exits within `wait` (it keeps running when it started).
fn serve_exit(
    dir: &Path,
    backend: &str,
    url: &str,
    prefix: &str,
    partitions: &str,
    wait: Duration,
) -> Option<(i32, String)> {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[journal]\nbackend = \"{backend}\"\nurl = \"{url}\"\nprefix = \"{prefix}\"\npartitions = {partitions}\n[[sources]]\nname = \"meta\"\npath = \"/webhook\"\nprovider = \"meta\"\nverify_token = \"t\"\napp_secrets = [\"{SECRET}\"]\n"
    );
    let path = dir.join(format!("{prefix}-{partitions}.toml"));
    std::fs::write(&path, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["serve", "--role", "ingest", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Some((status.code().unwrap_or(-1), err));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill9(&mut child);
    None
}

/// Replicas that disagree on `journal.partitions` would route conversations to partitions
/// nobody reads: the count is recorded by the first replica and any other refused at start.
/// Out-of-range values are config errors (exit 2).
#[test]
fn a_different_partition_count_is_refused_on_every_broker() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Broker::start("redis", &dir.path().join("r").tap_mkdir());
    let nats = Broker::start("nats", &dir.path().join("n").tap_mkdir());
    let amqp = std::env::var("WAGATE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    for (backend, url) in [("redis", redis.url()), ("nats", nats.url()), ("amqp", amqp)] {
        let prefix = format!("pc{}", std::process::id());
        assert!(
            serve_exit(
                dir.path(),
                backend,
                &url,
                &prefix,
                "4",
                Duration::from_secs(4)
            )
            .is_none(),
            "{backend}: the first replica starts"
        );
        let (code, err) = serve_exit(
            dir.path(),
            backend,
            &url,
            &prefix,
            "2",
            Duration::from_secs(20),
        )
        .unwrap_or_else(|| panic!("{backend}: a replica with another count must not start"));
        assert_eq!(code, 1, "{backend}: {err}");
        assert!(
            err.contains("journal.partitions = 2") && err.contains("created with 4 partitions"),
            "{backend}: {err}"
        );
        let (code, err) = serve_exit(
            dir.path(),
            backend,
            &url,
            &prefix,
            "0",
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(code, 2, "{backend}: {err}");
        assert!(
            err.contains("journal.partitions: must be 1..=1024"),
            "{err}"
        );
    }
}

trait TapMkdir {
    fn tap_mkdir(self) -> PathBuf;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> PathBuf {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
