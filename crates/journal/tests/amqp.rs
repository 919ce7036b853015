//! The amqp backend: the log conformance suite against the RabbitMQ on 127.0.0.1:5672
//! (`WAGATE_TEST_AMQP_URL` overrides; each clause under its own queue prefix, deleted at the
//! end), then a SIGKILL of a RabbitMQ node this test starts itself during concurrent appends.
#![cfg(feature = "amqp")]

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wagate_journal::JournalError;
use wagate_journal::amqp::Amqp;
use wagate_journal::log::Log;
use wagate_journal::log_conformance::{LogFactory, record};

fn service_url() -> String {
    std::env::var("WAGATE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Opens clients on the shared RabbitMQ; deletes the queues of every log it opened when
/// dropped (at the end of the clause).
struct Factory {
    url: String,
    opened: Mutex<HashMap<String, u32>>,
}

impl Factory {
    fn new() -> Factory {
        Factory {
            url: service_url(),
            opened: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait::async_trait]
impl LogFactory for Factory {
    async fn open(&self, ns: &str, partitions: u32) -> Arc<dyn Log> {
        let prefix = format!("wagate-test.{ns}");
        self.opened
            .lock()
            .unwrap()
            .insert(prefix.clone(), partitions);
        Arc::new(
            Amqp::open(&self.url, &prefix, partitions)
                .await
                .expect("open (is RabbitMQ running on 127.0.0.1:5672?)"),
        )
    }
}

impl Drop for Factory {
    fn drop(&mut self) {
        let opened: Vec<(String, u32)> = self.opened.lock().unwrap().drain().collect();
        let url = self.url.clone();
        // Dropped inside the test's runtime: clean up on a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                for (prefix, partitions) in opened {
                    if let Err(e) = Amqp::destroy(&url, &prefix, partitions).await {
                        eprintln!("cleanup of {prefix}: {e}");
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

mod conformance {
    wagate_journal::log_conformance!(super::Factory::new());
}

/// A RabbitMQ node of its own (own node name, ports, data and config), run as its own
/// process group so a SIGKILL takes the whole node; killed when dropped.
struct Node {
    child: Option<Child>,
    port: u16,
    dist_port: u16,
    dir: PathBuf,
}

const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Node {
    fn start(dir: &Path) -> Node {
        let mut node = Node {
            child: None,
            port: free_port(),
            dist_port: free_port(),
            dir: dir.to_path_buf(),
        };
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.1 = 127.0.0.1:{}\nloopback_users = none\n",
                node.port
            ),
        )
        .expect("config");
        std::fs::write(dir.join("rabbitmq-env.conf"), "").expect("env config");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("plugins");
        node.spawn();
        node
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn spawn(&mut self) {
        let d = |name: &str| self.dir.join(name);
        let child = Command::new(RABBITMQ_SERVER)
            // Isolated from the system node: own cookie (HOME), name, ports, files.
            .env("HOME", &self.dir)
            .env("RABBITMQ_CONF_ENV_FILE", d("rabbitmq-env.conf"))
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env(
                "RABBITMQ_NODENAME",
                format!("wagate-test-{}@localhost", self.port),
            )
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_PID_FILE", d("pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start rabbitmq-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().is_ok_and(|s| s.is_some()));
            assert!(!exited, "rabbitmq-server exited at start");
            assert!(Instant::now() < deadline, "rabbitmq-server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Graceful stop (SIGTERM, as `systemctl stop` does), waiting until the node exited.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", c.id())])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().is_ok_and(|s| s.is_none()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            self.child = Some(c);
            self.kill();
        }
    }

    /// SIGKILL of the whole node (the script, beam.smp and its helpers).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Holds `p` as `check`, retrying (errors too: the broker may still be starting) for `within`.
async fn hold_within(log: &dyn Log, p: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(true) = log.hold(p, "check", Duration::from_secs(10)).await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Claims `keys` on partition 0 for `tag`, retrying for 30 s while the broker still starts
/// the stream.
async fn claim_within(log: &dyn Log, keys: &[String], tag: &str) -> Vec<bool> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match log.claim(0, keys, tag, Duration::from_secs(600)).await {
            Ok(r) => return r,
            Err(e) => {
                assert!(Instant::now() < deadline, "claim: {e}");
                eprintln!("claim: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Body size of append `n` in the durability test.
fn len_of(n: u64) -> usize {
    200 + (n % 700) as usize
}

/// Every append acknowledged before a SIGKILL of the broker is read back after its restart,
/// byte-identical and in order; while it is down appends fail within their deadline, and the
/// same client works again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_a_sigkill_of_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut node = Node::start(dir.path());
    eprintln!("node up in {:?}", started.elapsed());
    let log = Arc::new(Amqp::open(&node.url(), "dur", 2).await.expect("open"));
    // RabbitMQ 3.10 writes the registry of its Raft servers (quorum queues, the stream
    // coordinator) to disk lazily (DETS, every 3 min): a node killed minutes after creating
    // a queue may restart it empty. Queues exist long before a crash in production; a
    // graceful restart gets the test there.
    node.stop();
    node.spawn();
    eprintln!(
        "node restarted gracefully; {:?} since start",
        started.elapsed()
    );
    assert!(hold_within(&*log, 0, Duration::from_secs(30)).await);
    let key = vec!["msg:wamid.DUR".to_string()];
    assert_eq!(claim_within(&*log, &key, "r1").await, [true]);
    log.release(0, "check").await.expect("release");

    let count = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16u64)
        .map(|t| {
            let log = Arc::clone(&log);
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..100_000u64 {
                    let n = t * 1_000_000 + i;
                    let p = (i % 2) as u32;
                    match log.append(p, &format!("m{n}"), record(n, len_of(n))).await {
                        Ok(()) => {
                            acked.push((p, n));
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => break,
                    }
                }
                acked
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::Relaxed) < 2000 {
        assert!(Instant::now() < deadline, "2000 appends took over 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.kill();
    let killed = Instant::now();
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap());
    }
    let total: usize = acked.iter().map(Vec::len).sum();
    eprintln!(
        "{total} appends acknowledged before the kill; tasks stopped {:?} after it",
        killed.elapsed()
    );
    assert!(total >= 2000);
    assert!(
        killed.elapsed() < Duration::from_secs(8),
        "appends hung after the kill"
    );

    let t0 = Instant::now();
    let down = log.append(0, "down", record(1, 10)).await;
    assert!(
        matches!(down, Err(JournalError::Unavailable(_))),
        "{down:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(7),
        "append hung while down"
    );

    let restarted = Instant::now();
    node.spawn();
    eprintln!("node restarted in {:?}", restarted.elapsed());
    // The same client reconnects on its own.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match log.append(0, "after", record(9_999_999, 10)).await {
            Ok(()) => break,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no append after the restart: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    let mut read: [Vec<Bytes>; 2] = [Vec::new(), Vec::new()];
    for p in 0..2u32 {
        assert!(
            hold_within(&*log, p, Duration::from_secs(10)).await,
            "partition {p} not free"
        );
        loop {
            let got = log
                .read(p, "check", 1000, Duration::from_secs(1))
                .await
                .expect("read");
            if got.is_empty() {
                break;
            }
            for e in got {
                log.ack(p, "check", &e.id).await.expect("ack");
                read[p as usize].push(e.record);
            }
        }
    }
    // Each acknowledged record once, byte-identical, in each task's append order.
    for p in 0..2u32 {
        let pos: HashMap<&Bytes, usize> = read[p as usize]
            .iter()
            .enumerate()
            .map(|(i, b)| (b, i))
            .collect();
        assert_eq!(pos.len(), read[p as usize].len(), "a record came twice");
        for task in &acked {
            let mut last = None;
            for &(_, n) in task.iter().filter(|(q, _)| *q == p) {
                let want = record(n, len_of(n));
                let Some(&i) = pos.get(&want) else {
                    panic!("acknowledged record {n} of partition {p} lost");
                };
                assert!(last < Some(i), "record {n} out of order");
                last = Some(i);
            }
        }
    }
    // The dedupe window (a stream) survived too.
    assert_eq!(
        claim_within(&*log, &key, "r2").await,
        [false],
        "claim lost in the crash"
    );
    eprintln!("read back {} + {} records", read[0].len(), read[1].len());
    let _ = Amqp::destroy(&node.url(), "dur", 2).await;
}

/// Order survives takeovers in a row while more than a prefetch is waiting: each holder
/// dies after reading a little, and the next one still starts at the oldest entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_holds_across_takeovers_with_a_backlog() {
    let f = Factory::new();
    let ns = format!("backlog{}", std::process::id());
    let a = f.open(&ns, 1).await;
    for n in 0..1500u64 {
        a.append(0, &format!("m{n}"), record(n, 20))
            .await
            .expect("append");
    }
    let ttl = Duration::from_secs(5);
    for (owner, take) in [("a", 300usize), ("b", 10), ("c", 1)] {
        let log = f.open(&ns, 1).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !log.hold(0, owner, ttl).await.expect("hold") {
            assert!(Instant::now() < deadline, "{owner} cannot take over");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = log
            .read(0, owner, take, Duration::from_secs(5))
            .await
            .expect("read");
        assert_eq!(got[0].record, record(0, 20), "{owner} starts at the oldest");
        // Dies without acknowledging anything.
        drop(log);
    }
    let last = f.open(&ns, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !last.hold(0, "d", ttl).await.expect("hold") {
        assert!(Instant::now() < deadline, "d cannot take over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut all = Vec::new();
    while all.len() < 1500 {
        let got = last
            .read(0, "d", 1500, Duration::from_secs(2))
            .await
            .expect("read");
        assert!(!got.is_empty(), "only {} of 1500 came back", all.len());
        for e in &got {
            // Frees the prefetch for the rest.
            last.ack(0, "d", &e.id).await.expect("ack");
        }
        all.extend(got);
    }
    for (n, e) in all.iter().enumerate() {
        assert!(e.record == record(n as u64, 20), "entry {n} out of order");
    }
    assert!(all[0].deliveries >= 2 && all[1400].deliveries == 1);
    drop(a);
}
