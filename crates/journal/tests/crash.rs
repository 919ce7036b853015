//! Crash safety at the journal level: a child process appends from many tasks and prints each
//! seq once `append` returned `Ok`; the test SIGKILLs it mid-run, reopens the file and checks
//! that every acknowledged request is there, byte-identical.
//!
//! The child is this same test binary, re-run with `--ignored --exact crash_child` and the
//! journal path in `WAGATE_JOURNAL_CRASH_CHILD`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wagate_journal::conformance::sample;
use wagate_journal::embedded::{Embedded, Reader};
use wagate_journal::{Durability, Journal};

const CHILD_ENV: &str = "WAGATE_JOURNAL_CRASH_CHILD";
const TASKS: u64 = 64;
/// Acknowledged appends after which the child is killed.
const KILL_AFTER: usize = 1500;

fn body_len(n: u64) -> usize {
    64 + (n as usize % 40) * 150
}

#[test]
#[ignore = "child process of the crash tests; does nothing without WAGATE_JOURNAL_CRASH_CHILD"]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let durability = if std::env::var("WAGATE_JOURNAL_CRASH_OS").is_ok() {
        Durability::Os
    } else {
        Durability::Fsync
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let j = Arc::new(Embedded::open(path.as_ref(), durability).unwrap());
        let next = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (j, next) = (Arc::clone(&j), Arc::clone(&next));
                tokio::spawn(async move {
                    // Bounded in case the parent dies before killing us.
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while Instant::now() < deadline {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let seq = j.append(sample(n, body_len(n))).await.unwrap().seq;
                        println!("OK {n} {seq}");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

fn kill_mid_run_and_check(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wagate.db");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "crash_child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, &path)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if durability == Durability::Os {
        cmd.env("WAGATE_JOURNAL_CRASH_OS", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();

    // Collect complete "OK n seq" lines; a line torn by the kill has no newline and is ignored.
    let (tx, rx) = mpsc::channel::<(u64, u64)>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            if line.ends_with(b"\n") {
                let text = String::from_utf8_lossy(&line);
                let mut f = text.split_whitespace();
                if f.next() == Some("OK") {
                    let n = f.next().and_then(|s| s.parse().ok());
                    let seq = f.next().and_then(|s| s.parse().ok());
                    if let (Some(n), Some(seq)) = (n, seq) {
                        let _ = tx.send((n, seq));
                    }
                }
            }
            line.clear();
        }
    });

    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.len() < KILL_AFTER && Instant::now() < deadline {
        if let Ok(a) = rx.recv_timeout(Duration::from_millis(100)) {
            acked.push(a);
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    acked.extend(rx.try_iter());
    assert!(
        acked.len() >= KILL_AFTER,
        "child acknowledged only {} appends before the deadline",
        acked.len()
    );

    // Recovery: a writer reopens the file (replaying the WAL), then a fresh reader checks.
    let j = Embedded::open(&path, durability).unwrap();
    let reader = Reader::open(&path).unwrap();
    for (n, seq) in &acked {
        let stored = reader
            .get(*seq)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged seq {seq} lost"));
        let want = sample(*n, body_len(*n));
        assert!(stored.request.body == want.body, "seq {seq}: body differs");
        assert_eq!(stored.request.id, want.id, "seq {seq}: id");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let st = rt.block_on(j.stats()).unwrap();
    assert!(
        st.total >= acked.len() as u64,
        "stats total {} < acknowledged {}",
        st.total,
        acked.len()
    );
    eprintln!(
        "{durability:?}: {} acknowledged, {} stored after SIGKILL",
        acked.len(),
        st.total
    );
    rt.block_on(j.close()).unwrap();
}

#[test]
fn sigkill_mid_append_loses_no_acknowledged_request_fsync() {
    kill_mid_run_and_check(Durability::Fsync);
}

#[test]
fn sigkill_mid_append_loses_no_acknowledged_request_os() {
    kill_mid_run_and_check(Durability::Os);
}
