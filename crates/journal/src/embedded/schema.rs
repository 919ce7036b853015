//! Schema, connection settings and value conversions of the embedded backend.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

use crate::{Durability, JournalError, State};

/// Schema version stored in `PRAGMA user_version`. Bump it and add a migration step in
/// [`migrate`] when the layout changes; a file with a newer version is refused.
pub(crate) const VERSION: i64 = 2;

/// Version 1. `AUTOINCREMENT` so that a `seq` is never reused, even after the newest rows were
/// pruned. States are stored as [`State::as_str`]; times are unix milliseconds.
///
/// Indexes are partial so that done rows (the bulk of the table until pruned) cost nothing
/// to the lease scan:
/// - `requests_active`: lease scan in `seq` order and pending/leased counts, covering the
///   due-time check without touching the table;
/// - `requests_done`: retention prune by `settled_at` and the done count;
/// - `requests_dead`: dead-letter listing and count.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS requests (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    body         BLOB    NOT NULL,
    content_type TEXT,
    signature    TEXT,
    peer         TEXT,
    valid_json   INTEGER NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    not_before   INTEGER NOT NULL DEFAULT 0,
    lease_until  INTEGER,
    dead_reason  TEXT,
    settled_at   INTEGER
);
CREATE INDEX IF NOT EXISTS requests_active
    ON requests(seq, state, not_before, lease_until) WHERE state IN ('pending', 'leased');
CREATE INDEX IF NOT EXISTS requests_done ON requests(settled_at) WHERE state = 'done';
CREATE INDEX IF NOT EXISTS requests_dead ON requests(seq) WHERE state = 'dead';
";

/// Version 2: the event store of dispatch (see `docs/dispatch.md`).
///
/// - `deliveries`: one row per event (or raw request) per target. `id` orders deliveries of
///   a conversation (FIFO); `next_attempt_at` is the retry schedule, so it survives restarts.
///   `deliveries_open` serves the per-conversation head scan, `deliveries_done` retention,
///   `deliveries_dead` the dead-letter list.
/// - `dedupe`: every `dedupe_key` seen within the window; the primary key makes the
///   insert-if-absent atomic.
const SCHEMA_V2: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    target           TEXT    NOT NULL,
    conversation_key TEXT    NOT NULL,
    dedupe_key       TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    request_seq      INTEGER NOT NULL,
    kind             TEXT    NOT NULL,
    received_at      INTEGER NOT NULL,
    body             BLOB    NOT NULL,
    content_type     TEXT,
    signature        TEXT,
    state            TEXT    NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    settled_at       INTEGER
);
CREATE INDEX IF NOT EXISTS deliveries_open
    ON deliveries(target, conversation_key, id, next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_done ON deliveries(settled_at) WHERE state = 'delivered';
CREATE INDEX IF NOT EXISTS deliveries_dead ON deliveries(target, id) WHERE state = 'dead';
CREATE TABLE IF NOT EXISTS dedupe (
    key        TEXT    PRIMARY KEY,
    first_seen INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_seen ON dedupe(first_seen);
";

/// Busy timeout of every connection: the writer may wait for a checkpoint or backup run by
/// another process, readers for the writer's lock.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the write connection (also used by the checkpointer). Automatic checkpoints
/// are off: the checkpointer thread runs them beside the writer, so a checkpoint's page
/// copying and database fsync never sit in a commit's latency.
///
/// Settings of the write connection. `synchronous=FULL` in WAL mode fsyncs the WAL at every
/// commit; `NORMAL` leaves that to checkpoints (consistent after power loss, but the last
/// commits may be gone).
pub(crate) fn configure_writer(
    conn: &Connection,
    durability: Durability,
) -> Result<(), JournalError> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(JournalError::Unavailable(format!(
            "cannot switch the journal to WAL mode (got {mode}); is the file on a network file system?"
        )));
    }
    let sync = match durability {
        Durability::Fsync => "FULL",
        Durability::Os => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous={sync};
         PRAGMA temp_store=MEMORY;
         PRAGMA cache_size=-16384;
         PRAGMA wal_autocheckpoint=0;
         PRAGMA journal_size_limit=67108864;"
    ))
    .map_err(sql)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// Creates or upgrades the schema.
///
/// # Errors
/// [`JournalError::Corrupt`] when the file was written by a newer version.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), JournalError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql)?;
    if version > VERSION {
        return Err(JournalError::Corrupt(format!(
            "journal schema version {version} is newer than this binary supports ({VERSION})"
        )));
    }
    if version < VERSION {
        let tx = conn.transaction().map_err(sql)?;
        if version < 1 {
            tx.execute_batch(SCHEMA_V1).map_err(sql)?;
        }
        tx.execute_batch(SCHEMA_V2).map_err(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version={VERSION}"))
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
    }
    Ok(())
}

/// Maps a SQLite error to the journal's error kinds.
pub(crate) fn sql(e: rusqlite::Error) -> JournalError {
    use rusqlite::ffi::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            JournalError::Corrupt(e.to_string())
        }
        _ => JournalError::Unavailable(e.to_string()),
    }
}

/// Unix milliseconds; times before 1970 clamp to 0.
pub(crate) fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Inverse of [`to_ms`] (millisecond precision).
pub(crate) fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Now, in unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

/// `base + d` in milliseconds, saturating.
pub(crate) fn add_ms(base: i64, d: Duration) -> i64 {
    base.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Parses a stored state name.
pub(crate) fn parse_state(s: &str) -> Option<State> {
    Some(match s {
        "pending" => State::Pending,
        "leased" => State::Leased,
        "done" => State::Done,
        "dead" => State::Dead,
        _ => return None,
    })
}
