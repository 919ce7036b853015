//! The redis backend of the broker log against `redis-server` processes this test starts
//! itself on free loopback ports (AOF on, fsync on every write, no RDB), in temp dirs: the
//! shared log conformance suite (a server per clause, a key prefix per client namespace),
//! then a SIGKILL of the server after acknowledged appends, an outage the same client lives
//! through, and the persistence warnings of `health`.
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wagate_journal::JournalError;
use wagate_journal::log::{Entry, Log, Record};
use wagate_journal::log_conformance::{LogFactory, TTL, record};
use wagate_journal::redis::Redis;

const REDIS_SERVER: &str = "redis-server";

/// What every server gets unless a test says otherwise: the durable setting.
const DURABLE: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

/// A redis-server child process; killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts a server on a free port (another one if a racing process took the first).
    fn start_any(dir: &Path, persistence: &[&str]) -> Server {
        for _ in 0..5 {
            if let Some(s) = Server::try_start(dir, free_port(), persistence) {
                return s;
            }
        }
        panic!("redis-server did not start on 5 ports");
    }

    /// Starts a durable server on `port`, serving the AOF in `dir`.
    fn start(dir: &Path, port: u16) -> Server {
        Server::try_start(dir, port, DURABLE).expect("redis-server exited at start")
    }

    fn try_start(dir: &Path, port: u16, persistence: &[&str]) -> Option<Server> {
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(persistence)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (Debian package redis-server)");
        let mut server = Server { child, port };
        server.wait_ready().then_some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Waits until the server answers PING with PONG (`-LOADING` while it replays the AOF);
    /// `false` when it exited instead (e.g. the port was taken).
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = TcpStream::connect(("127.0.0.1", self.port)).is_ok_and(|mut c| {
                let mut buf = [0u8; 5];
                c.write_all(b"PING\r\n").is_ok()
                    && c.read_exact(&mut buf).is_ok()
                    && &buf == b"+PONG"
            });
            if ok {
                return true;
            }
            if self.child.try_wait().is_ok_and(|s| s.is_some()) {
                return false;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
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

/// One durable server per conformance clause; each namespace is a key prefix on it.
struct RedisFactory {
    server: Server,
    _dir: tempfile::TempDir,
}

impl RedisFactory {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start_any(dir.path(), DURABLE);
        RedisFactory { server, _dir: dir }
    }
}

#[async_trait::async_trait]
impl LogFactory for RedisFactory {
    async fn open(&self, ns: &str, partitions: u32) -> Arc<dyn Log> {
        Arc::new(
            Redis::open(&self.server.url(), ns, partitions)
                .await
                .expect("open"),
        )
    }
}

mod conformance {
    wagate_journal::log_conformance!(super::RedisFactory::new());
}

/// Record number of an entry (`req-<n>`).
fn number(e: &Entry) -> u64 {
    match Record::decode(&e.record).expect("decodable") {
        Record::Request(r) => r.id.trim_start_matches("req-").parse().expect("number"),
        Record::Replay(_) => panic!("replay record"),
    }
}

fn body_len(n: u64) -> usize {
    100 + (n % 13) as usize * 97
}

/// Reads partition `p` as `owner` until a read comes back empty.
async fn drain(log: &dyn Log, p: u32, owner: &str) -> Vec<Entry> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    loop {
        let got = log
            .read(p, owner, 500, Duration::from_millis(100))
            .await
            .expect("read");
        if got.is_empty() {
            return out;
        }
        out.extend(got);
        assert!(Instant::now() < deadline, "partition {p} never ran dry");
    }
}

/// Every append acknowledged before a SIGKILL of the server (AOF, `appendfsync always`) is
/// there after a restart on the same directory, byte for byte, once, in per-partition order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_a_sigkill_of_the_server() {
    const PARTITIONS: u32 = 4;
    const TASKS: u64 = 16;
    const WANT: u64 = 2000;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_any(dir.path(), DURABLE);
    let (port, url) = (server.port, server.url());
    let log = Arc::new(Redis::open(&url, "kill", PARTITIONS).await.unwrap());
    assert_eq!(
        log.health().await.unwrap(),
        None,
        "durable server: no warning"
    );

    let acked = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (log, acked) = (Arc::clone(&log), Arc::clone(&acked));
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in 0..1_000_000u64 {
                    let n = t * 1_000_000 + i;
                    let p = (t % u64::from(PARTITIONS)) as u32;
                    match log
                        .append(p, &format!("m{n}"), record(n, body_len(n)))
                        .await
                    {
                        Ok(()) => {
                            mine.push(n);
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(JournalError::Unavailable(m)) => {
                            assert!(m.starts_with("redis: "), "{m}");
                            break;
                        }
                        Err(e) => panic!("append: {e}"),
                    }
                }
                (t, mine)
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.load(Ordering::Relaxed) < WANT {
        assert!(Instant::now() < deadline, "appends too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    let mut by_task = Vec::new();
    for t in tasks {
        by_task.push(t.await.unwrap());
    }
    let total: usize = by_task.iter().map(|(_, m)| m.len()).sum();
    eprintln!("{total} appends acknowledged before the SIGKILL");
    assert!(total as u64 >= WANT);

    let _server = Server::start(dir.path(), port);
    let reader = Redis::open(&url, "kill", PARTITIONS).await.unwrap();
    let mut position: Vec<HashMap<u64, (usize, Bytes)>> = Vec::new();
    for p in 0..PARTITIONS {
        assert!(reader.hold(p, "r", Duration::from_secs(60)).await.unwrap());
        let got = drain(&reader, p, "r").await;
        let mut at = HashMap::new();
        for (i, e) in got.into_iter().enumerate() {
            let n = number(&e);
            assert!(
                at.insert(n, (i, e.record)).is_none(),
                "record {n} stored twice"
            );
        }
        position.push(at);
    }
    for (t, mine) in &by_task {
        let p = (t % u64::from(PARTITIONS)) as usize;
        let mut prev = None;
        for n in mine {
            let (i, rec) = position[p]
                .get(n)
                .unwrap_or_else(|| panic!("acknowledged record {n} lost"));
            assert!(*rec == record(*n, body_len(*n)), "record {n} changed");
            assert!(prev < Some(*i), "record {n} out of order in partition {p}");
            prev = Some(*i);
        }
    }
    // At most the appends in flight at the kill are there unacknowledged.
    let stored: usize = position.iter().map(HashMap::len).sum();
    assert!(
        stored >= total && stored <= total + TASKS as usize,
        "{stored}"
    );
}

/// While the server is down appends fail with `Unavailable`; once it is back the same client
/// appends and reads again, and what was stored before is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_client_works_again_after_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_any(dir.path(), DURABLE);
    let port = server.port;
    let log = Redis::open(&server.url(), "outage", 1).await.unwrap();
    log.append(0, "m0", record(0, 10)).await.unwrap();
    assert!(log.hold(0, "a", Duration::from_secs(60)).await.unwrap());
    let first = log.read(0, "a", 10, Duration::ZERO).await.unwrap();
    assert_eq!(first.iter().map(number).collect::<Vec<_>>(), [0]);

    server.kill();
    for n in 1..=3 {
        let t = Instant::now();
        match log.append(0, &format!("m{n}"), record(n, 10)).await {
            Err(JournalError::Unavailable(m)) => assert!(m.starts_with("redis: "), "{m}"),
            other => panic!("append with the server down: {other:?}"),
        }
        assert!(
            t.elapsed() < Duration::from_secs(12),
            "fails in bounded time"
        );
    }
    assert!(log.health().await.is_err(), "health sees the outage");
    assert!(log.read(0, "a", 10, Duration::ZERO).await.is_err());

    let _server = Server::start(dir.path(), port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match log.append(0, "m10", record(10, 10)).await {
            Ok(()) => break,
            Err(JournalError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("append after the restart: {e}"),
        }
    }
    assert_eq!(log.health().await.unwrap(), None);
    assert!(log.hold(0, "a", TTL).await.unwrap(), "still ours");
    let mut got = Vec::new();
    while Instant::now() < deadline {
        match log.read(0, "a", 10, Duration::from_millis(100)).await {
            Ok(e) if e.is_empty() => break,
            Ok(e) => got.extend(e),
            Err(JournalError::Unavailable(_)) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    assert_eq!(got.iter().map(number).collect::<Vec<_>>(), [10]);
    let stats = log.stats().await.unwrap();
    assert_eq!(
        stats.partitions[0].depth, 2,
        "entry 0 unacknowledged, 10 new"
    );
}

/// A read cancelled while it blocks loses nothing: the next read returns what it took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_read_loses_no_entry() {
    let f = RedisFactory::new();
    let log = f.open("cancel", 1).await;
    assert!(log.hold(0, "a", TTL).await.unwrap());
    let cancelled =
        tokio::time::timeout(Duration::from_millis(200), log.read(0, "a", 10, TTL)).await;
    assert!(cancelled.is_err(), "nothing to read yet");
    log.append(0, "m1", record(1, 10)).await.unwrap();
    let got = log.read(0, "a", 10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        got.iter()
            .map(|e| (number(e), e.deliveries))
            .collect::<Vec<_>>(),
        [(1, 1)]
    );
}

/// `health` warns about a server that does not persist or does not fsync every write, and
/// stays quiet where `CONFIG` is disabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_warns_about_weak_persistence() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_any(dir.path(), &["--appendonly", "no"]);
    let log = Redis::open(&server.url(), "h", 1).await.unwrap();
    let w = log.health().await.unwrap().expect("a warning");
    assert!(w.contains("appendonly no"), "{w}");

    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let set = |name: &'static str, value: &'static str| {
        let mut c = c.clone();
        async move {
            let () = redis::cmd("CONFIG")
                .arg("SET")
                .arg(name)
                .arg(value)
                .query_async(&mut c)
                .await
                .unwrap();
        }
    };
    set("appendonly", "yes").await;
    set("appendfsync", "everysec").await;
    let w = log.health().await.unwrap().expect("a warning");
    assert!(w.contains("everysec"), "{w}");
    set("appendfsync", "always").await;
    assert_eq!(log.health().await.unwrap(), None);
    let _: () = redis::cmd("PING").query_async(&mut c).await.unwrap();

    let dir2 = tempfile::tempdir().unwrap();
    let managed = Server::start_any(dir2.path(), &["--rename-command", "CONFIG", ""]);
    let log = Redis::open(&managed.url(), "h", 1).await.unwrap();
    assert_eq!(
        log.health().await.unwrap(),
        None,
        "CONFIG refused: PING only"
    );
}

/// `open` names `journal.url` for a bad URL and fails for a server that is not there.
#[tokio::test]
async fn open_refuses_bad_urls_and_absent_servers() {
    match Redis::open("redis://127.0.0.1:notaport", "p", 1).await {
        Err(JournalError::Unavailable(m)) => assert!(m.contains("journal.url"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
    let port = free_port();
    match Redis::open(&format!("redis://127.0.0.1:{port}"), "p", 1).await {
        Err(JournalError::Unavailable(m)) => assert!(m.starts_with("redis: "), "{m}"),
        other => panic!("{:?}", other.err()),
    }
}
