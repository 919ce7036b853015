//! The embedded backend: the shared conformance suite (both durabilities) on real SQLite
//! files in temp dirs, then behaviour only this backend has (files, CLI readers, retention).
//! The crash test lives in `crash.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use wagate_journal::conformance::{Factory, Record, Subject, sample};
use wagate_journal::embedded::{self, Embedded, Reader};
use wagate_journal::{Durability, Journal, JournalError, Seq, Settlement, State};

struct EmbeddedFactory(Durability);

struct EmbeddedSubject {
    _dir: tempfile::TempDir,
    path: PathBuf,
    journal: Arc<dyn Journal>,
}

#[async_trait::async_trait]
impl Factory for EmbeddedFactory {
    async fn create(&self) -> Box<dyn Subject> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data").join("wagate.db");
        let journal = Arc::new(Embedded::open(&path, self.0).expect("open"));
        Box::new(EmbeddedSubject {
            _dir: dir,
            path,
            journal,
        })
    }
}

#[async_trait::async_trait]
impl Subject for EmbeddedSubject {
    fn journal(&self) -> Arc<dyn Journal> {
        Arc::clone(&self.journal)
    }
    async fn read_fresh(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        let stored = Reader::open(&self.path)?.get(seq)?;
        Ok(stored.map(|s| Record {
            request: s.request,
            state: s.state,
            dead_reason: s.dead_reason,
        }))
    }
}

mod fsync {
    wagate_journal::journal_conformance!(super::EmbeddedFactory(wagate_journal::Durability::Fsync));
}

mod os {
    wagate_journal::journal_conformance!(super::EmbeddedFactory(wagate_journal::Durability::Os));
}

fn wal(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    p.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_close_keeps_everything_and_the_wal_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/wagate.db");
    let j = Embedded::open(&path, Durability::Fsync).unwrap();
    let mut seqs = Vec::new();
    for n in 0..20 {
        seqs.push(j.append(sample(n, 4096)).await.unwrap().seq);
    }
    let leased = j.lease(5, Duration::from_secs(60)).await.unwrap();
    j.settle(
        leased[0].seq,
        Settlement::DeadLetter {
            reason: "http_410".into(),
        },
    )
    .await
    .unwrap();
    j.close().await.unwrap();
    assert_eq!(
        std::fs::metadata(wal(&path)).map_or(0, |m| m.len()),
        0,
        "WAL not truncated on close"
    );

    let j = Embedded::open(&path, Durability::Os).unwrap();
    for (n, seq) in seqs.iter().enumerate() {
        let s = Reader::open(&path)
            .unwrap()
            .get(*seq)
            .unwrap()
            .expect("kept across reopen");
        assert_eq!(s.request, {
            let mut r = sample(n as u64, 4096);
            r.received_at = s.request.received_at;
            r
        });
    }
    let st = j.stats().await.unwrap();
    assert_eq!(
        (st.total, st.pending, st.leased, st.dead),
        (20, 15, 4, 1),
        "{st:?}"
    );
    // New appends continue the sequence.
    assert!(j.append(sample(99, 1)).await.unwrap().seq > *seqs.last().unwrap());
    j.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_readers_work_while_the_server_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wagate.db");
    let j = Arc::new(Embedded::open(&path, Durability::Fsync).unwrap());
    let writer = {
        let j = Arc::clone(&j);
        tokio::spawn(async move {
            for n in 0..300 {
                j.append(sample(n, 2048)).await.unwrap();
            }
        })
    };
    // Read while appends are in flight: counts only grow, never an error.
    let mut last = 0;
    while !writer.is_finished() {
        let p = path.clone();
        let st = tokio::task::spawn_blocking(move || embedded::stats_at(&p))
            .await
            .unwrap()
            .unwrap();
        assert!(st.total >= last, "stats went backwards");
        last = st.total;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer.await.unwrap();
    let st = embedded::stats_at(&path).unwrap();
    assert_eq!((st.total, st.pending), (300, 300));
    let size = st.size_bytes.unwrap();
    assert!(
        size > 300 * 2048,
        "size on disk {size} smaller than the bodies"
    );

    // Paged export sees every request in order, byte-identical.
    let mut after = 0;
    let mut n = 0;
    loop {
        let page = embedded::export_at(&path, after, 64).unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for s in page {
            assert_eq!(s.request.body, sample(n, 2048).body);
            n += 1;
        }
    }
    assert_eq!(n, 300);

    // NDJSON export: one line per request with the public field names; base64 body.
    let mut out = Vec::new();
    let lines = Reader::open(&path)
        .unwrap()
        .export_ndjson(0, &mut out)
        .unwrap();
    assert_eq!(lines, 300);
    let text = String::from_utf8(out).unwrap();
    for (n, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let body = base64::engine::general_purpose::STANDARD
            .decode(v["body"].as_str().unwrap())
            .unwrap();
        assert_eq!(body, sample(n as u64, 2048).body);
        assert_eq!(v["id"], sample(n as u64, 0).id);
        assert_eq!(v["source"], "meta");
        assert!(v["received_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(v["state"], "pending");
    }
    j.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_only_done_rows_older_than_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wagate.db");
    let j = Embedded::open(&path, Durability::Os).unwrap();
    let mut seqs = Vec::new();
    for n in 0..4500 {
        seqs.push(j.append(sample(n, 16)).await.unwrap().seq);
    }
    let leased = j.lease(5000, Duration::from_secs(60)).await.unwrap();
    assert_eq!(leased.len(), 4500);
    for s in &seqs[..4400] {
        j.settle(*s, Settlement::Done).await.unwrap();
    }
    j.settle(seqs[4400], Settlement::DeadLetter { reason: "x".into() })
        .await
        .unwrap();
    assert_eq!(
        j.prune(Duration::from_secs(3600)).await.unwrap(),
        0,
        "pruned rows younger than the retention"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    // More than one prune chunk (2000) must go.
    assert_eq!(j.prune(Duration::from_millis(10)).await.unwrap(), 4400);
    let st = j.stats().await.unwrap();
    assert_eq!(
        (st.total, st.done, st.dead, st.leased),
        (100, 0, 1, 99),
        "{st:?}"
    );
    assert!(Reader::open(&path).unwrap().get(seqs[0]).unwrap().is_none());
    assert_eq!(
        Reader::open(&path).unwrap().dead(0, 10).unwrap()[0].state,
        State::Dead
    );
    j.close().await.unwrap();
}

#[tokio::test]
async fn a_file_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wagate.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    match Embedded::open(&path, Durability::Fsync) {
        Err(JournalError::Corrupt(m)) => assert!(m.contains("99"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wagate.db");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    assert!(Embedded::open(&path, Durability::Fsync).is_err());
    assert!(
        embedded::stats_at(&dir.path().join("missing.db")).is_err(),
        "stats of a missing file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_scan_uses_the_partial_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wagate.db");
    let j = Embedded::open(&path, Durability::Os).unwrap();
    j.append(sample(1, 1)).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let plan = |q: &str| -> String {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {q}")).unwrap();
        st.query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let lease = plan(
        "SELECT seq FROM requests WHERE state IN ('pending', 'leased')
         AND ((state = 'pending' AND not_before <= 1) OR (state = 'leased' AND lease_until <= 1)) ORDER BY seq LIMIT 5",
    );
    assert!(
        lease.contains("requests_active") && !lease.contains("TEMP B-TREE"),
        "lease plan: {lease}"
    );
    let count = plan(
        "SELECT count(*) FROM requests WHERE state IN ('pending', 'leased') AND state = 'pending'",
    );
    assert!(
        count.contains("COVERING INDEX requests_active"),
        "count plan: {count}"
    );
    let done = plan("SELECT count(*) FROM requests WHERE state = 'done'");
    assert!(done.contains("requests_done"), "done count plan: {done}");
    j.close().await.unwrap();
}
