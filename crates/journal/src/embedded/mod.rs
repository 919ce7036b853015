//! Embedded backend: one SQLite file in WAL mode, written by one thread with group commit.
//!
//! # On-disk format
//!
//! The `requests` table, keyed by `seq` (the rowid, so append order), below; schema version 2
//! adds the event store of dispatch (`deliveries`, `dedupe`: `events.rs`, `docs/dispatch.md`).
//!
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `seq` | INTEGER PK AUTOINCREMENT | sequence number, increasing in append order, never reused |
//! | `id`, `source` | TEXT | request id, `[[sources]]` name |
//! | `received_at` | INTEGER | unix ms |
//! | `body` | BLOB | raw body, verbatim |
//! | `content_type`, `signature`, `peer` | TEXT NULL | headers and peer as received |
//! | `valid_json` | INTEGER | 0/1 |
//! | `state` | TEXT | `pending`, `leased`, `done`, `dead` |
//! | `attempts` | INTEGER | leases so far |
//! | `not_before` | INTEGER | unix ms; not leased earlier (retry schedule) |
//! | `lease_until` | INTEGER NULL | unix ms; end of the current lease |
//! | `dead_reason` | TEXT NULL | why it was dead-lettered |
//! | `settled_at` | INTEGER NULL | unix ms; when it became done or dead |
//!
//! Partial indexes serve the lease scan (`pending`/`leased` rows in `seq` order), retention
//! (`done` by `settled_at`) and the dead-letter list. `PRAGMA user_version` holds the schema
//! version (see `schema.rs`); a newer file is refused.
//!
//! # Write path and fsync policy
//!
//! Every write (append, lease, settle, prune) is a [`writer::Command`] sent over a bounded
//! channel (backpressure: callers wait when [`QUEUE`] commands are queued) to the one writer
//! thread, which owns the only write connection. It blocks for a command, drains what else
//! is queued (at most [`writer::MAX_GROUP`] commands or about 16 MiB of bodies), runs them in
//! one `BEGIN IMMEDIATE` transaction and commits. With `durability = "fsync"`
//! (`synchronous=FULL`) the commit fsyncs the WAL once for the whole group; with `"os"`
//! (`synchronous=NORMAL`) the commit only writes the WAL, and fsyncs happen at checkpoints.
//! Callers are answered through a oneshot only after the commit; if any statement or the
//! commit fails, the whole group is rolled back and every caller gets an error (never an
//! `Ok` for something not stored).
//!
//! WAL checkpoints (copying committed pages into the database file, with its fsync) run on
//! a third thread every 250 ms in PASSIVE mode, beside the writer, not inside a commit.
//!
//! Reads (`stats`) use a separate read-only connection; other processes (the CLI) open their
//! own read-only [`Reader`] while the server runs.
//!
//! # Recovery
//!
//! SQLite replays the WAL on the next open: every committed group is there, a torn last
//! group is discarded (and none of its callers was answered). Leases held by a process that
//! died stay until `lease_until` passes, then the requests are leased again (at-least-once).
//! [`Journal::close`] commits what is queued, checkpoints with `wal_checkpoint(TRUNCATE)` so
//! the database file alone holds everything, and stops the writer.

mod events;
mod read;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

pub use read::{ExportLine, Reader, Stored, export_at, stats_at};
use schema::sql;
use writer::{Command, Shared};

use crate::{Appended, Durability, Journal, JournalError, Leased, Request, Seq, Settlement, Stats};

/// Commands that may wait for the writer before callers are made to wait.
pub const QUEUE: usize = 4096;

/// Done rows deleted per prune transaction, so that retention never holds up appends long.
const PRUNE_CHUNK: usize = 2000;

/// The SQLite journal. Cheap to share behind an `Arc`; see the module docs for the design.
pub struct Embedded {
    path: PathBuf,
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    reader: Arc<Mutex<Option<Reader>>>,
}

impl Embedded {
    /// Opens or creates the database at `path` (creating its folder) and starts the writer.
    ///
    /// # Errors
    /// [`JournalError::Unavailable`] when the folder or file cannot be created or opened, or
    /// the file cannot use WAL; [`JournalError::Corrupt`] when the file is not a journal of a
    /// supported version.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                JournalError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let mut conn = Connection::open(path).map_err(sql)?;
        schema::configure_writer(&conn, durability)?;
        schema::migrate(&mut conn)?;
        let read = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(sql)?;
        let reader = Reader::from_connection(read, path)?;

        let ckpt = Connection::open(path).map_err(sql)?;
        schema::configure_writer(&ckpt, durability)?;
        let checkpointer = writer::Checkpointer::start(ckpt).map_err(|e| {
            JournalError::Unavailable(format!("cannot start the journal checkpointer: {e}"))
        })?;

        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer::run(conn, rx, thread_shared, checkpointer))
            .map_err(|e| {
                JournalError::Unavailable(format!("cannot start the journal writer: {e}"))
            })?;
        Ok(Embedded {
            path: path.to_path_buf(),
            tx,
            shared,
            reader: Arc::new(Mutex::new(Some(reader))),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commands waiting for the writer (a gauge for metrics).
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, JournalError>>) -> Command,
    ) -> Result<T, JournalError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(JournalError::Closed);
        }
        let (reply, rx) = oneshot::channel();
        if self.tx.send(make(reply)).await.is_err() {
            return Err(self.stopped());
        }
        rx.await.unwrap_or_else(|_| Err(self.stopped()))
    }

    /// Runs `f` inside the writer's next group transaction and returns its value after the
    /// commit (the write path of the event store).
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, i64) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, JournalError> {
        let job: writer::Job = Box::new(move |tx, now| {
            f(tx, now).map(|v| Box::new(v) as Box<dyn std::any::Any + Send>)
        });
        let out = self
            .call(|reply| Command::Run {
                job: Some(job),
                reply,
            })
            .await?;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| JournalError::Unavailable("internal: job output type".into()))
    }

    fn stopped(&self) -> JournalError {
        if self.shared.closed.load(Ordering::Acquire) {
            JournalError::Closed
        } else {
            JournalError::Unavailable("journal writer stopped".into())
        }
    }
}

#[async_trait::async_trait]
impl Journal for Embedded {
    async fn append(&self, request: Request) -> Result<Appended, JournalError> {
        self.call(|reply| Command::Append { request, reply }).await
    }

    async fn lease(&self, max: usize, lease_for: Duration) -> Result<Vec<Leased>, JournalError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.call(|reply| Command::Lease {
            max,
            lease_for,
            reply,
        })
        .await
    }

    async fn settle(&self, seq: Seq, settlement: Settlement) -> Result<(), JournalError> {
        self.call(|reply| Command::Settle {
            seq,
            settlement,
            reply,
        })
        .await
    }

    async fn stats(&self) -> Result<Stats, JournalError> {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let guard = reader
                .lock()
                .map_err(|_| JournalError::Unavailable("stats reader poisoned".into()))?;
            guard.as_ref().ok_or(JournalError::Closed)?.stats()
        })
        .await
        .map_err(|e| JournalError::Unavailable(format!("stats task: {e}")))?
    }

    async fn health(&self) -> Result<(), JournalError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(JournalError::Closed);
        }
        if self.tx.is_closed() {
            return Err(JournalError::Unavailable("journal writer stopped".into()));
        }
        match self.shared.failure.lock().ok().and_then(|f| f.clone()) {
            Some(reason) => Err(JournalError::Unavailable(reason)),
            None => Ok(()),
        }
    }

    async fn prune(&self, older_than: Duration) -> Result<u64, JournalError> {
        let cutoff_ms = schema::now_ms()
            .saturating_sub(i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX));
        let mut total = 0;
        loop {
            let n = self
                .call(|reply| Command::Prune {
                    cutoff_ms,
                    limit: PRUNE_CHUNK,
                    reply,
                })
                .await?;
            total += n;
            if n < PRUNE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    async fn close(&self) -> Result<(), JournalError> {
        self.shared.closed.store(true, Ordering::Release);
        // Drop the read connection first so it cannot block the final checkpoint.
        if let Ok(mut r) = self.reader.lock() {
            r.take();
        }
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Close { reply }).await.is_err() {
            return Ok(()); // already stopped
        }
        rx.await.unwrap_or(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &Connection, query: &str) -> String {
        let mut st = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
            .unwrap();
        let rows = st.query_map([0, 5], |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn the_head_scan_walks_the_open_deliveries_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        let heads = plan(&conn, events::HEADS);
        assert!(
            heads.contains("COVERING INDEX deliveries_open")
                && !heads.contains("TEMP B-TREE FOR GROUP BY"),
            "head scan plan: {heads}"
        );
    }

    #[test]
    fn lease_and_counts_use_the_partial_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        let lease = plan(&conn, writer::LEASE_SCAN);
        assert!(
            lease.contains("requests_active") && !lease.contains("TEMP B-TREE"),
            "lease plan: {lease}"
        );
        let mut st = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", read::COUNTS))
            .unwrap();
        let counts: Vec<String> = st
            .query_map([], |r| r.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let counts = counts.join("; ");
        assert!(
            !counts.contains("SCAN requests;") && !counts.ends_with("SCAN requests"),
            "count plan: {counts}"
        );
        for index in [
            "COVERING INDEX requests_active",
            "requests_done",
            "requests_dead",
        ] {
            assert!(counts.contains(index), "count plan lacks {index}: {counts}");
        }
    }
}
