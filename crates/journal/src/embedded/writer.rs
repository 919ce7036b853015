//! The writer thread: owns the write connection and commits queued commands in groups.

use std::any::Any;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::schema::{add_ms, from_ms, now_ms, sql};
use crate::{Appended, JournalError, Leased, Request, Seq, Settlement};

/// Most commands committed in one transaction.
pub(crate) const MAX_GROUP: usize = 512;
/// Body bytes after which a group stops taking more appends (it may exceed this by one body).
pub(crate) const MAX_GROUP_BYTES: usize = 16 << 20;

type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

/// Work for the writer. Every command carries the channel its caller waits on.
pub(crate) enum Command {
    Append {
        request: Request,
        reply: Reply<Appended>,
    },
    Lease {
        max: usize,
        lease_for: Duration,
        reply: Reply<Vec<Leased>>,
    },
    Settle {
        seq: Seq,
        settlement: Settlement,
        reply: Reply<()>,
    },
    /// Deletes at most `limit` done rows settled before `cutoff_ms`.
    Prune {
        cutoff_ms: i64,
        limit: usize,
        reply: Reply<u64>,
    },
    /// Any other write, run inside the group transaction (the event store's commands). The
    /// job is taken out when it runs; its result is answered after the commit.
    Run {
        job: Option<Job>,
        reply: Reply<Box<dyn Any + Send>>,
    },
    /// Commit what came before, checkpoint, stop.
    Close { reply: Reply<()> },
}

/// A write run by the writer thread inside the current group's transaction, given the group's
/// `now` (unix ms). An `Err` rolls back the whole group, so logical outcomes belong in the value.
pub(crate) type Job =
    Box<dyn FnOnce(&Transaction<'_>, i64) -> rusqlite::Result<Box<dyn Any + Send>> + Send>;

/// Result of one command inside a group, sent only once the group committed.
enum Output {
    Append(Appended),
    Lease(Vec<Leased>),
    Settle(Result<(), JournalError>),
    Prune(u64),
    Run(Box<dyn Any + Send>),
}

impl Command {
    fn cost(&self) -> usize {
        match self {
            Command::Append { request, .. } => request.body.len(),
            _ => 0,
        }
    }

    /// Answers with `err` (for a `Close`: it already happened, so `Ok`).
    fn fail(self, err: JournalError) {
        // A caller that gave up (timeout) dropped its receiver: nothing to tell.
        match self {
            Command::Append { reply, .. } => drop(reply.send(Err(err))),
            Command::Lease { reply, .. } => drop(reply.send(Err(err))),
            Command::Settle { reply, .. } => drop(reply.send(Err(err))),
            Command::Prune { reply, .. } => drop(reply.send(Err(err))),
            Command::Run { reply, .. } => drop(reply.send(Err(err))),
            Command::Close { reply } => drop(reply.send(Ok(()))),
        }
    }

    fn answer(self, out: Output) {
        match (self, out) {
            (Command::Append { reply, .. }, Output::Append(a)) => drop(reply.send(Ok(a))),
            (Command::Lease { reply, .. }, Output::Lease(l)) => drop(reply.send(Ok(l))),
            (Command::Settle { reply, .. }, Output::Settle(r)) => drop(reply.send(r)),
            (Command::Prune { reply, .. }, Output::Prune(n)) => drop(reply.send(Ok(n))),
            (Command::Run { reply, .. }, Output::Run(v)) => drop(reply.send(Ok(v))),
            (cmd, _) => cmd.fail(JournalError::Unavailable(
                "internal: output mismatch".into(),
            )),
        }
    }
}

/// State shared between the handle and the writer thread.
#[derive(Default)]
pub(crate) struct Shared {
    /// Set by `close()`; appends fail fast afterwards.
    pub(crate) closed: AtomicBool,
    /// Error of the last group, cleared by the next successful commit (for `health`).
    pub(crate) failure: Mutex<Option<String>>,
}

/// The writer loop: block for one command, drain what else is queued (bounded), run it all in
/// one transaction, commit (one WAL sync), then answer every caller.
pub(crate) fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    checkpointer: Checkpointer,
) {
    let mut batch: Vec<Command> = Vec::with_capacity(MAX_GROUP);
    let mut outputs: Vec<Output> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        let mut bytes = first.cost();
        batch.push(first);
        while batch.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(cmd) => {
                    bytes += cmd.cost();
                    batch.push(cmd);
                }
                Err(_) => break,
            }
        }
        let close = match batch
            .iter()
            .position(|c| matches!(c, Command::Close { .. }))
        {
            Some(i) => {
                let mut rest = batch.split_off(i).into_iter();
                let close = rest.next();
                rest.for_each(|c| c.fail(JournalError::Closed));
                close
            }
            None => None,
        };
        if !batch.is_empty() {
            commit_group(&mut conn, &mut batch, &mut outputs, &shared);
        }
        if let Some(close) = close {
            rx.close();
            while let Ok(cmd) = rx.try_recv() {
                cmd.fail(JournalError::Closed);
            }
            checkpointer.stop();
            let result = shutdown(conn);
            if let Command::Close { reply } = close {
                drop(reply.send(result));
            }
            return;
        }
    }
    // Every handle dropped without close(): dropping the connection still checkpoints.
    checkpointer.stop();
}

/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Runs `wal_checkpoint(PASSIVE)` on its own connection and thread: PASSIVE never blocks the
/// writer or readers, it copies what it can and leaves the rest for the next round.
pub(crate) struct Checkpointer {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(conn: Connection) -> std::io::Result<Self> {
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("journal-checkpoint".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(CHECKPOINT_EVERY) {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "journal checkpoint failed");
                    }
                }
            })?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it (so the final TRUNCATE checkpoint is not contended).
    fn stop(mut self) {
        drop(self.stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn commit_group(
    conn: &mut Connection,
    batch: &mut Vec<Command>,
    outputs: &mut Vec<Output>,
    shared: &Shared,
) {
    outputs.clear();
    let result = (|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_ms();
        for cmd in batch.iter_mut() {
            outputs.push(execute(&tx, cmd, now)?);
        }
        tx.commit()
    })();
    match result {
        Ok(()) => {
            if let Ok(mut f) = shared.failure.lock() {
                *f = None;
            }
            for (cmd, out) in batch.drain(..).zip(outputs.drain(..)) {
                cmd.answer(out);
            }
        }
        Err(e) => {
            let err = sql(e);
            tracing::error!(error = %err, group = batch.len(), "journal group commit failed");
            if let Ok(mut f) = shared.failure.lock() {
                *f = Some(err.to_string());
            }
            outputs.clear();
            for cmd in batch.drain(..) {
                cmd.fail(match &err {
                    JournalError::Corrupt(m) => JournalError::Corrupt(m.clone()),
                    other => JournalError::Unavailable(other.to_string()),
                });
            }
        }
    }
}

fn execute(tx: &Transaction<'_>, cmd: &mut Command, now: i64) -> rusqlite::Result<Output> {
    Ok(match cmd {
        Command::Append { request: r, .. } => {
            let mut st = tx.prepare_cached(
                "INSERT INTO requests (id, source, received_at, body, content_type, signature, peer, valid_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let seq = st.insert(params![
                r.id,
                r.source,
                super::schema::to_ms(r.received_at),
                &r.body[..],
                r.content_type,
                r.signature,
                r.peer,
                r.valid_json,
            ])?;
            Output::Append(Appended {
                seq: seq.cast_unsigned(),
            })
        }
        Command::Lease { max, lease_for, .. } => Output::Lease(lease(tx, *max, *lease_for, now)?),
        Command::Settle {
            seq, settlement, ..
        } => Output::Settle(settle(tx, *seq, settlement, now)?),
        Command::Prune {
            cutoff_ms, limit, ..
        } => {
            let mut st = tx.prepare_cached(
                "DELETE FROM requests WHERE seq IN (
                     SELECT seq FROM requests WHERE state = 'done' AND settled_at < ?1 LIMIT ?2)",
            )?;
            let n = st.execute(params![
                *cutoff_ms,
                i64::try_from(*limit).unwrap_or(i64::MAX)
            ])?;
            Output::Prune(n as u64)
        }
        Command::Run { job, .. } => match job.take() {
            Some(job) => Output::Run(job(tx, now)?),
            None => Output::Run(Box::new(())),
        },
        // Split off before a group runs; never reached, and harmless if it were.
        Command::Close { .. } => Output::Settle(Ok(())),
    })
}

/// Due open requests, oldest first. Repeats the `requests_active` condition so SQLite walks
/// that partial index in `seq` order (no sort, no table scan).
pub(crate) const LEASE_SCAN: &str = "SELECT seq FROM requests
     WHERE state IN ('pending', 'leased')
       AND ((state = 'pending' AND not_before <= ?1) OR (state = 'leased' AND lease_until <= ?1))
     ORDER BY seq LIMIT ?2";

fn lease(
    tx: &Transaction<'_>,
    max: usize,
    lease_for: Duration,
    now: i64,
) -> rusqlite::Result<Vec<Leased>> {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let seqs: Vec<i64> = {
        let mut st = tx.prepare_cached(LEASE_SCAN)?;
        st.query_map(params![now, max], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let until = add_ms(now, lease_for);
    let mut st = tx.prepare_cached(
        "UPDATE requests SET state = 'leased', attempts = attempts + 1, lease_until = ?2 WHERE seq = ?1
         RETURNING attempts, id, source, received_at, body, content_type, signature, peer, valid_json",
    )?;
    let mut out = Vec::with_capacity(seqs.len());
    for seq in seqs {
        let leased = st.query_row(params![seq, until], |r| {
            Ok(Leased {
                seq: seq.cast_unsigned(),
                attempt: r.get(0)?,
                request: Request {
                    id: r.get(1)?,
                    source: r.get(2)?,
                    received_at: from_ms(r.get(3)?),
                    body: Bytes::from(r.get::<_, Vec<u8>>(4)?),
                    content_type: r.get(5)?,
                    signature: r.get(6)?,
                    peer: r.get(7)?,
                    valid_json: r.get(8)?,
                },
            })
        })?;
        out.push(leased);
    }
    Ok(out)
}

fn settle(
    tx: &Transaction<'_>,
    seq: Seq,
    s: &Settlement,
    now: i64,
) -> rusqlite::Result<Result<(), JournalError>> {
    let Ok(key) = i64::try_from(seq) else {
        return Ok(Err(JournalError::NotFound(seq)));
    };
    // Only an open request (leased, or pending after its lease expired) changes; a settle that
    // arrives after a final outcome is a harmless no-op.
    let changed = match s {
        Settlement::Done => tx
            .prepare_cached(
                "UPDATE requests SET state = 'done', settled_at = ?2, lease_until = NULL
                 WHERE seq = ?1 AND state IN ('pending', 'leased')",
            )?
            .execute(params![key, now])?,
        Settlement::Retry { after } => tx
            .prepare_cached(
                "UPDATE requests SET state = 'pending', not_before = ?2, lease_until = NULL
                 WHERE seq = ?1 AND state IN ('pending', 'leased')",
            )?
            .execute(params![key, add_ms(now, *after)])?,
        Settlement::DeadLetter { reason } => tx
            .prepare_cached(
                "UPDATE requests SET state = 'dead', dead_reason = ?2, settled_at = ?3, lease_until = NULL
                 WHERE seq = ?1 AND state IN ('pending', 'leased')",
            )?
            .execute(params![key, reason, now])?,
    };
    if changed > 0 {
        return Ok(Ok(()));
    }
    let exists = tx
        .prepare_cached("SELECT 1 FROM requests WHERE seq = ?1")?
        .query_row([key], |_| Ok(()))
        .optional()?;
    Ok(if exists.is_some() {
        Ok(())
    } else {
        Err(JournalError::NotFound(seq))
    })
}

/// Truncates the WAL so the database file alone holds everything, then closes.
fn shutdown(conn: Connection) -> Result<(), JournalError> {
    let (busy, log, done): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(sql)?;
    if busy != 0 {
        // A reader (e.g. `wagate journal export`) held the WAL; data is committed anyway.
        tracing::warn!(
            wal_frames = log,
            checkpointed = done,
            "journal checkpoint on close was blocked by a reader"
        );
    }
    conn.close().map_err(|(_, e)| sql(e))
}
