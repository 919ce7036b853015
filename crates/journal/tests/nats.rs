//! The nats backend against nats-server processes this test starts itself on free loopback
//! ports, JetStream on, file store in a temporary folder: the shared log conformance suite
//! (one server per clause), a SIGKILL of the server after acknowledged appends, appends while
//! the server is away, and the max_payload limit.
#![cfg(feature = "nats")]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wagate_journal::JournalError;
use wagate_journal::log::Log;
use wagate_journal::log_conformance::{LogFactory, record};
use wagate_journal::nats::Nats;

const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// A nats-server child process; killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts a server on a free port (another one if a racing process took the first), with
    /// `max_payload: 8MB` unless `default_payload`.
    fn start_any(dir: &Path, default_payload: bool) -> Server {
        for _ in 0..5 {
            if let Some(s) = Server::try_start(dir, free_port(), default_payload) {
                return s;
            }
        }
        panic!("nats-server did not start on 5 ports");
    }

    /// Starts a server on `port` over the store in `dir`.
    fn start(dir: &Path, port: u16) -> Server {
        Server::try_start(dir, port, false).expect("nats-server exited at start")
    }

    fn try_start(dir: &Path, port: u16, default_payload: bool) -> Option<Server> {
        let conf = dir.join("nats.conf");
        let payload = if default_payload {
            ""
        } else {
            "max_payload: 8MB\n"
        };
        std::fs::write(&conf, payload).expect("write nats.conf");
        let child = Command::new(NATS_SERVER)
            .arg("-c")
            .arg(&conf)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.join("store"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let mut server = Server { child, port };
        server.wait_ready().then_some(server)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Waits until the server greets with `INFO`; `false` when it exited instead.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = TcpStream::connect(("127.0.0.1", self.port)).is_ok_and(|c| {
                let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
                let mut line = String::new();
                BufReader::new(c).read_line(&mut line).is_ok() && line.starts_with("INFO ")
            });
            if ok {
                return true;
            }
            if self.child.try_wait().is_ok_and(|s| s.is_some()) {
                return false;
            }
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// One server per clause run; `ns` is the prefix.
struct NatsFactory {
    server: Server,
    _dir: tempfile::TempDir,
}

impl NatsFactory {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start_any(dir.path(), false);
        NatsFactory { server, _dir: dir }
    }
}

#[async_trait::async_trait]
impl LogFactory for NatsFactory {
    async fn open(&self, ns: &str, partitions: u32) -> Arc<dyn Log> {
        Arc::new(
            Nats::open(&self.server.url(), ns, partitions)
                .await
                .expect("open"),
        )
    }
}

mod conformance {
    wagate_journal::log_conformance!(super::NatsFactory::new());
}

/// Reads every entry of partition `p` (until a read comes back empty), acknowledging none.
async fn drain(log: &dyn Log, p: u32) -> Vec<Bytes> {
    assert!(log.hold(p, "check", Duration::from_secs(30)).await.unwrap());
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = log
            .read(p, "check", 500, Duration::from_millis(500))
            .await
            .expect("read");
        if got.is_empty() {
            return out;
        }
        assert!(Instant::now() < deadline, "partition {p} does not end");
        out.extend(got.into_iter().map(|e| e.record));
    }
}

/// Every acknowledged append survives a SIGKILL of nats-server (the file store is written
/// before the publish ack), byte-identical and in each appender's order within its partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_a_sigkill_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_any(dir.path(), false);
    let port = server.port;
    let log = Arc::new(Nats::open(&server.url(), "kill", 4).await.unwrap());
    let acked_count = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let log = Arc::clone(&log);
            let count = Arc::clone(&acked_count);
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..100_000u64 {
                    let n = t * 1_000_000 + i;
                    let p = (i % 4) as u32;
                    match log.append(p, &format!("m{n}"), record(n, 1500)).await {
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
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked_count.load(Ordering::Relaxed) < 2000 {
        assert!(Instant::now() < deadline, "2000 appends took over 30 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap());
    }
    let total: usize = acked.iter().map(Vec::len).sum();
    eprintln!("{total} appends acknowledged before the kill");
    assert!(total >= 2000);

    let _server = Server::start(dir.path(), port);
    let fresh = Nats::open(&format!("nats://127.0.0.1:{port}"), "kill", 4)
        .await
        .unwrap();
    for p in 0..4u32 {
        let got = drain(&fresh, p).await;
        // Position of each stored record, by its number (records carry their number).
        let mut pos = std::collections::HashMap::new();
        for (i, rec) in got.iter().enumerate() {
            let req = match wagate_journal::log::Record::decode(rec).expect("decodes") {
                wagate_journal::log::Record::Request(r) => r,
                other => panic!("{other:?}"),
            };
            let n: u64 = req.id["req-".len()..].parse().unwrap();
            assert!(pos.insert(n, i).is_none(), "record {n} stored twice");
            assert!(*rec == record(n, 1500), "record {n} bytes");
        }
        for task in &acked {
            let mut last = None;
            for &(_, n) in task.iter().filter(|(q, _)| *q == p) {
                let at = *pos
                    .get(&n)
                    .unwrap_or_else(|| panic!("acknowledged record {n} lost"));
                assert!(last < Some(at), "record {n} out of order in partition {p}");
                last = Some(at);
            }
        }
    }
}

/// With the server away, appends fail with `Unavailable` within the append bound and health
/// says so; once it is back the same client appends again, without reopening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_fail_fast_while_the_server_is_down_and_resume_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_any(dir.path(), false);
    let port = server.port;
    let log = Nats::open(&server.url(), "down", 1).await.unwrap();
    log.append(0, "m0", record(0, 100)).await.unwrap();
    assert_eq!(
        log.health().await.unwrap(),
        None,
        "8MB max_payload: no warning"
    );
    server.kill();
    for n in 1..3u64 {
        let t = Instant::now();
        match log.append(0, &format!("m{n}"), record(n, 100)).await {
            Err(JournalError::Unavailable(m)) => assert!(m.starts_with("nats: "), "{m}"),
            other => panic!("append with the server down: {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    }
    assert!(matches!(
        log.health().await,
        Err(JournalError::Unavailable(_))
    ));

    let _server = Server::start(dir.path(), port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match log.append(0, "m9", record(9, 100)).await {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "no append after restart: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(log.health().await.unwrap(), None);
    let got = drain(&log, 0).await;
    assert_eq!(got.first(), Some(&record(0, 100)), "stored before the kill");
    assert_eq!(got.last(), Some(&record(9, 100)));
}

/// A record over the server's max_payload (1 MB by default) fails with a message naming both
/// sizes, and health warns about the small limit.
#[tokio::test]
async fn records_over_max_payload_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_any(dir.path(), true);
    let log = Nats::open(&server.url(), "big", 1).await.unwrap();
    let rec = record(1, 2 * 1024 * 1024);
    match log.append(0, "m1", rec.clone()).await {
        Err(JournalError::Unavailable(m)) => {
            assert!(m.contains("max_payload"), "{m}");
            assert!(m.contains(&rec.len().to_string()), "{m}");
            assert!(m.contains("1048576"), "{m}");
        }
        other => panic!("oversized append: {other:?}"),
    }
    let warning = log.health().await.unwrap().expect("a warning");
    assert!(warning.contains("max_payload"), "{warning}");
    log.append(0, "m2", record(2, 1000)).await.unwrap();
}

/// A URL nobody answers, or one that is not a NATS URL, gives `Unavailable` naming
/// `journal.url`, without the password.
#[tokio::test]
async fn unreachable_or_bad_urls_name_journal_url() {
    for url in [
        format!("nats://u:hunter2@127.0.0.1:{}", free_port()),
        "http://[::1".to_string(),
    ] {
        match Nats::open(&url, "x", 1).await {
            Err(JournalError::Unavailable(m)) => {
                assert!(m.contains("journal.url"), "{m}");
                assert!(!m.contains("hunter2"), "{m}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened {url}"),
        }
    }
    match Nats::open("nats://127.0.0.1:1", "a.b", 1).await {
        Err(JournalError::Unavailable(m)) => assert!(m.contains("journal.prefix"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
}

/// Two takeovers in a row: entries the first holder read and the second never reached are
/// still marked redelivered for the third (the watermark is carried over), and a holder that
/// renews its own lapsed hold keeps its consumer (nothing comes twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_marks_survive_two_takeovers() {
    let factory = NatsFactory::new();
    let ttl = Duration::from_millis(800);
    let a = factory.open("twice", 1).await;
    for n in 0..6u64 {
        a.append(0, &format!("m{n}"), record(n, 40)).await.unwrap();
    }
    assert!(a.hold(0, "a", ttl).await.unwrap());
    let first = a.read(0, "a", 6, Duration::from_secs(2)).await.unwrap();
    assert_eq!(first.len(), 6);
    // The hold lapses but nobody takes it: renewing keeps the same consumer.
    tokio::time::sleep(ttl * 2).await;
    assert!(a.hold(0, "a", ttl).await.unwrap());
    assert!(
        a.read(0, "a", 6, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty(),
        "an entry is returned once per holding"
    );
    a.ack(0, "a", &first[0].id).await.unwrap();
    drop(a);

    let b = factory.open("twice", 1).await;
    tokio::time::sleep(ttl).await;
    assert!(b.hold(0, "b", ttl).await.unwrap());
    let got = b.read(0, "b", 1, Duration::from_secs(2)).await.unwrap();
    assert_eq!((got.len(), got[0].deliveries >= 2), (1, true));
    assert_eq!(got[0].record, record(1, 40));
    drop(b);

    let c = factory.open("twice", 1).await;
    tokio::time::sleep(ttl).await;
    assert!(c.hold(0, "c", ttl).await.unwrap());
    let got = c.read(0, "c", 10, Duration::from_secs(2)).await.unwrap();
    let recs: Vec<Bytes> = got.iter().map(|e| e.record.clone()).collect();
    assert_eq!(recs, (1..6).map(|n| record(n, 40)).collect::<Vec<_>>());
    let marks: Vec<(String, u32)> = got.iter().map(|e| (e.id.clone(), e.deliveries)).collect();
    assert!(got.iter().all(|e| e.deliveries >= 2), "{marks:?}");
    let stats = c.stats().await.unwrap();
    assert_eq!(
        (stats.partitions[0].depth, stats.partitions[0].unacked),
        (5, Some(5))
    );
}
