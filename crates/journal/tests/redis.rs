//! The redis backend against a redis-server this test starts itself on a free loopback port,
//! with AOF on and fsync on every write: the shared conformance suite (each clause under its
//! own server and key prefix), then a SIGKILL of the server after acknowledged appends.
#![cfg(feature = "redis")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use wagate_journal::conformance::{Factory, Record, Subject, sample};
use wagate_journal::redis::{self, Redis};
use wagate_journal::{Durability, Journal, JournalError, Seq, Settlement, State};

const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A redis-server child process; killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts a server on a free port (another one if a racing process took the first).
    fn start_any(dir: &Path) -> Server {
        for _ in 0..5 {
            if let Some(s) = Server::try_start(dir, free_port()) {
                return s;
            }
        }
        panic!("redis-server did not start on 5 ports");
    }

    /// Starts a server on `port`, serving the AOF in `dir`.
    fn start(dir: &Path, port: u16) -> Server {
        Server::try_start(dir, port).expect("redis-server exited at start")
    }

    fn try_start(dir: &Path, port: u16) -> Option<Server> {
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
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

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique_prefix() -> String {
    format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

struct RedisFactory;

struct RedisSubject {
    _server: Server,
    _dir: tempfile::TempDir,
    url: String,
    prefix: String,
    journal: Arc<dyn Journal>,
}

#[async_trait::async_trait]
impl Factory for RedisFactory {
    async fn create(&self) -> Box<dyn Subject> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start_any(dir.path());
        let url = server.url();
        let prefix = unique_prefix();
        let journal = Arc::new(Redis::open(&url, &prefix, Durability::Fsync).expect("open"));
        Box::new(RedisSubject {
            _server: server,
            _dir: dir,
            url,
            prefix,
            journal,
        })
    }
}

#[async_trait::async_trait]
impl Subject for RedisSubject {
    fn journal(&self) -> Arc<dyn Journal> {
        Arc::clone(&self.journal)
    }
    async fn read_fresh(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        Ok(redis::read(&self.url, &self.prefix, seq)
            .await?
            .map(|s| Record {
                request: s.request,
                state: s.state,
                dead_reason: s.dead_reason,
            }))
    }
}

mod conformance {
    wagate_journal::journal_conformance!(super::RedisFactory);
}

/// Every acknowledged append survives a SIGKILL of the server (AOF, `appendfsync always`),
/// with its bytes and its state; seqs continue after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_a_sigkill_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_any(dir.path());
    let port = server.port;
    let url = server.url();
    let j = Arc::new(Redis::open(&url, "wagate", Durability::Fsync).unwrap());
    j.health().await.expect("AOF with fsync always is healthy");

    // Concurrent appends; the server dies while some are in flight.
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let j = Arc::clone(&j);
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..10_000 {
                    let n = t * 100_000 + i;
                    match j.append(sample(n, 1500)).await {
                        Ok(a) => acked.push((n, a.seq)),
                        Err(_) => break,
                    }
                }
                acked
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.kill();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    eprintln!("{} appends acknowledged before the kill", acked.len());
    assert!(
        acked.len() > 50,
        "too few appends before the kill: {}",
        acked.len()
    );
    assert!(
        j.append(sample(1, 1)).await.is_err(),
        "append acknowledged with the server down"
    );

    let _server = Server::start(dir.path(), port);
    for (n, seq) in &acked {
        let s = redis::read(&url, "wagate", *seq)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged seq {seq} lost"));
        assert_eq!(s.state, State::Pending);
        assert_eq!(s.request.id, sample(*n, 0).id);
        assert!(s.request.body == sample(*n, 1500).body, "body of seq {seq}");
    }
    // The same journal value reconnects; seqs continue above every acknowledged one.
    let j2 = Redis::open(&url, "wagate", Durability::Fsync).unwrap();
    let next = j2.append(sample(7, 8)).await.unwrap().seq;
    assert!(
        acked.iter().all(|(_, s)| *s < next),
        "seq reused after restart"
    );
    let st = j2.stats().await.unwrap();
    assert!(st.total > acked.len() as u64, "{st:?}");
}

/// `health` refuses a server that does not persist, and one whose fsync policy is weaker than
/// `journal.durability` asks; `os` accepts `everysec`.
#[tokio::test]
async fn health_reports_a_server_that_does_not_persist() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_any(dir.path());
    let url = server.url();
    let cfg = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-u", &url, "CONFIG", "SET"])
            .args(args)
            .output()
            .expect("redis-cli");
        assert!(out.status.success());
    };
    let fsync = Redis::open(&url, "h", Durability::Fsync).unwrap();
    let os = Redis::open(&url, "h", Durability::Os).unwrap();
    assert!(fsync.health().await.is_ok());
    cfg(&["appendfsync", "everysec"]);
    match fsync.health().await {
        Err(JournalError::Unavailable(m)) => assert!(m.contains("appendfsync"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(os.health().await.is_ok(), "os accepts everysec");
    cfg(&["appendonly", "no"]);
    match os.health().await {
        Err(JournalError::Unavailable(m)) => assert!(m.contains("appendonly"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// A settle flows through the keys other replicas see: a second journal value on the same
/// prefix does not lease what the first holds, and sees its dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_leases_and_states() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_any(dir.path());
    let a = Redis::open(&server.url(), "wagate", Durability::Fsync).unwrap();
    let b = Redis::open(&server.url(), "wagate", Durability::Fsync).unwrap();
    let s1 = a.append(sample(1, 10)).await.unwrap().seq;
    let s2 = b.append(sample(2, 10)).await.unwrap().seq;
    assert!(s2 > s1);
    let la = a.lease(1, Duration::from_secs(60)).await.unwrap();
    let lb = b.lease(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(la.iter().map(|l| l.seq).collect::<Vec<_>>(), vec![s1]);
    assert_eq!(lb.iter().map(|l| l.seq).collect::<Vec<_>>(), vec![s2]);
    b.settle(
        s1,
        Settlement::DeadLetter {
            reason: "http_410".into(),
        },
    )
    .await
    .unwrap();
    let st = a.get(s1).await.unwrap().unwrap();
    assert_eq!(
        (st.state, st.dead_reason.as_deref()),
        (State::Dead, Some("http_410"))
    );
    let stats = a.stats().await.unwrap();
    assert_eq!(
        (stats.total, stats.leased, stats.dead),
        (2, 1, 1),
        "{stats:?}"
    );
}

/// Prune removes done requests older than the retention (then `NotFound`), keeps dead ones,
/// and a due expired lease comes before new requests in one lease call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_and_lease_order_across_due_and_new_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_any(dir.path());
    let j = Redis::open(&server.url(), "wagate", Durability::Fsync).unwrap();
    let mut seqs = Vec::new();
    for n in 0..6 {
        seqs.push(j.append(sample(n, 32)).await.unwrap().seq);
    }
    let first = j.lease(3, Duration::from_millis(100)).await.unwrap();
    assert_eq!(first.iter().map(|l| l.seq).collect::<Vec<_>>(), seqs[..3]);
    j.settle(seqs[0], Settlement::Done).await.unwrap();
    j.settle(seqs[1], Settlement::DeadLetter { reason: "x".into() })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // seqs[2]'s lease expired: it comes first, then the new ones, in seq order.
    let again = j.lease(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        again.iter().map(|l| (l.seq, l.attempt)).collect::<Vec<_>>(),
        vec![(seqs[2], 2), (seqs[3], 1), (seqs[4], 1), (seqs[5], 1)]
    );
    assert_eq!(j.prune(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(j.prune(Duration::ZERO).await.unwrap(), 1);
    assert!(j.get(seqs[0]).await.unwrap().is_none(), "pruned entry kept");
    assert!(matches!(
        j.settle(seqs[0], Settlement::Done).await,
        Err(JournalError::NotFound(_))
    ));
    assert_eq!(j.get(seqs[1]).await.unwrap().unwrap().state, State::Dead);
    let st = j.stats().await.unwrap();
    assert_eq!(
        (st.total, st.pending, st.leased, st.done, st.dead),
        (5, 0, 4, 0, 1),
        "{st:?}"
    );
}
