//! Read-only access: stats and export while a server owns the journal (WAL lets readers run
//! beside the writer), and the stats of an open [`super::Embedded`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde::Serialize;

use super::schema::{BUSY_TIMEOUT, from_ms, now_ms, parse_state, sql};
use crate::{JournalError, Request, Seq, State, Stats};

/// One stored request with its dispatch state, as read back from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Sequence number.
    pub seq: Seq,
    /// The request as appended (`received_at` at millisecond precision).
    pub request: Request,
    /// Dispatch state.
    pub state: State,
    /// Leases so far.
    pub attempts: u32,
    /// Not leased before this time (retry schedule).
    pub not_before: SystemTime,
    /// End of the current lease, when leased.
    pub lease_until: Option<SystemTime>,
    /// Reason given when dead-lettered.
    pub dead_reason: Option<String>,
    /// When it became done or dead.
    pub settled_at: Option<SystemTime>,
}

/// A read-only connection to a journal file, safe to use while a server writes to it.
pub struct Reader {
    pub(crate) conn: Connection,
    path: PathBuf,
}

/// Counts by state; each names its partial index's condition so SQLite counts index entries.
pub(crate) const COUNTS: &str = "SELECT
    (SELECT count(*) FROM requests WHERE state IN ('pending', 'leased') AND state = 'pending'),
    (SELECT count(*) FROM requests WHERE state IN ('pending', 'leased') AND state = 'leased'),
    (SELECT count(*) FROM requests WHERE state = 'done'),
    (SELECT count(*) FROM requests WHERE state = 'dead')";

const COLUMNS: &str =
    "seq, id, source, received_at, body, content_type, signature, peer, valid_json,
                       state, attempts, not_before, lease_until, dead_reason, settled_at";

impl Reader {
    /// Opens `path` read-only.
    ///
    /// # Errors
    /// [`JournalError::Unavailable`] when the file does not exist or cannot be opened.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        if !path.exists() {
            return Err(JournalError::Unavailable(format!(
                "no journal at {}",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(sql)?;
        Reader::from_connection(conn, path)
    }

    pub(crate) fn from_connection(conn: Connection, path: &Path) -> Result<Self, JournalError> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
        Ok(Reader {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Counts by state, oldest pending age and size on disk.
    ///
    /// # Errors
    /// [`JournalError::Unavailable`] on an I/O or SQLite error.
    pub fn stats(&self) -> Result<Stats, JournalError> {
        let (pending, leased, done, dead): (i64, i64, i64, i64) = self
            .conn
            .prepare_cached(COUNTS)
            .and_then(|mut st| {
                st.query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            })
            .map_err(sql)?;
        let oldest: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT received_at FROM requests WHERE state IN ('pending', 'leased') ORDER BY seq LIMIT 1",
            )
            .and_then(|mut st| st.query_row([], |r| r.get(0)).optional())
            .map_err(sql)?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(Stats {
            total: count(pending + leased + done + dead),
            pending: count(pending),
            leased: count(leased),
            done: count(done),
            dead: count(dead),
            oldest_pending_age_secs: oldest.map(|t| count(now_ms().saturating_sub(t)) / 1000),
            size_bytes: Some(size_on_disk(&self.path)),
            // A file from before the event store has no such tables: no delivery counts.
            deliveries: self.delivery_stats().ok(),
        })
    }

    /// The request `seq`, if stored.
    ///
    /// # Errors
    /// [`JournalError::Unavailable`] on a SQLite error, [`JournalError::Corrupt`] on a bad row.
    pub fn get(&self, seq: Seq) -> Result<Option<Stored>, JournalError> {
        let Ok(key) = i64::try_from(seq) else {
            return Ok(None);
        };
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM requests WHERE seq = ?1"))
            .map_err(sql)?;
        st.query_row([key], stored).optional().map_err(row_error)
    }

    /// Up to `limit` requests with `seq > after`, in `seq` order, all states. Page through a
    /// whole journal by passing the last `seq` of a page as the next `after`; each page is
    /// its own snapshot. Memory is bounded by `limit` bodies.
    ///
    /// # Errors
    /// As [`Reader::get`].
    pub fn export(&self, after: Seq, limit: usize) -> Result<Vec<Stored>, JournalError> {
        self.page(
            &format!("SELECT {COLUMNS} FROM requests WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
            after,
            limit,
        )
    }

    /// Like [`Reader::export`], dead-lettered requests only.
    ///
    /// # Errors
    /// As [`Reader::get`].
    pub fn dead(&self, after: Seq, limit: usize) -> Result<Vec<Stored>, JournalError> {
        self.page(
            &format!("SELECT {COLUMNS} FROM requests WHERE state = 'dead' AND seq > ?1 ORDER BY seq LIMIT ?2"),
            after,
            limit,
        )
    }

    fn page(&self, query: &str, after: Seq, limit: usize) -> Result<Vec<Stored>, JournalError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut st = self.conn.prepare_cached(query).map_err(sql)?;
        let rows = st.query_map(params![after, limit], stored).map_err(sql)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(row_error)
    }

    /// Writes every stored request with `seq > after` as NDJSON (see [`ExportLine`]) and
    /// returns how many lines were written.
    ///
    /// # Errors
    /// As [`Reader::get`]; a write error becomes [`JournalError::Unavailable`].
    pub fn export_ndjson(&self, after: Seq, out: &mut dyn Write) -> Result<u64, JournalError> {
        const PAGE: usize = 64;
        let mut after = after;
        let mut lines = 0;
        loop {
            let page = self.export(after, PAGE)?;
            for s in &page {
                let line = serde_json::to_vec(&ExportLine::from(s))
                    .map_err(|e| JournalError::Unavailable(format!("export: {e}")))?;
                out.write_all(&line)
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(|e| JournalError::Unavailable(format!("export: {e}")))?;
                lines += 1;
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = last.seq,
                _ => return Ok(lines),
            }
        }
    }
}

/// One NDJSON line of `wagate journal export`.
#[derive(Debug, Serialize)]
pub struct ExportLine<'a> {
    /// Sequence number.
    pub seq: Seq,
    /// Request id.
    pub id: &'a str,
    /// Source name.
    pub source: &'a str,
    /// RFC 3339 UTC with milliseconds.
    pub received_at: String,
    /// `pending`, `leased`, `done` or `dead`.
    pub state: &'static str,
    /// Leases so far.
    pub attempts: u32,
    /// Whether the body parsed as JSON at ingest.
    pub valid_json: bool,
    /// `Content-Type` as received.
    pub content_type: Option<&'a str>,
    /// Signature header as received (`name: value`).
    pub signature: Option<&'a str>,
    /// Peer address.
    pub peer: Option<&'a str>,
    /// Dead-letter reason.
    pub dead_reason: Option<&'a str>,
    /// The raw body, standard base64 with padding.
    pub body: String,
}

impl<'a> From<&'a Stored> for ExportLine<'a> {
    fn from(s: &'a Stored) -> Self {
        let r = &s.request;
        ExportLine {
            seq: s.seq,
            id: &r.id,
            source: &r.source,
            received_at: humantime::format_rfc3339_millis(r.received_at).to_string(),
            state: s.state.as_str(),
            attempts: s.attempts,
            valid_json: r.valid_json,
            content_type: r.content_type.as_deref(),
            signature: r.signature.as_deref(),
            peer: r.peer.as_deref(),
            dead_reason: s.dead_reason.as_deref(),
            body: base64::engine::general_purpose::STANDARD.encode(&r.body),
        }
    }
}

/// [`Reader::stats`] of the journal at `path`, opened read-only (works while a server runs).
///
/// # Errors
/// As [`Reader::open`] and [`Reader::stats`].
pub fn stats_at(path: &Path) -> Result<Stats, JournalError> {
    Reader::open(path)?.stats()
}

/// [`Reader::export`] of the journal at `path`, opened read-only (works while a server runs).
///
/// # Errors
/// As [`Reader::open`] and [`Reader::export`].
pub fn export_at(path: &Path, after: Seq, limit: usize) -> Result<Vec<Stored>, JournalError> {
    Reader::open(path)?.export(after, limit)
}

/// Bytes of the database file plus its write-ahead log.
pub(crate) fn size_on_disk(path: &Path) -> u64 {
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    len(path) + len(Path::new(&wal))
}

fn stored(r: &Row<'_>) -> rusqlite::Result<Stored> {
    let state: String = r.get(9)?;
    let state = parse_state(&state).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            9,
            rusqlite::types::Type::Text,
            format!("state {state:?}").into(),
        )
    })?;
    Ok(Stored {
        seq: r.get::<_, i64>(0)?.cast_unsigned(),
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
        state,
        attempts: r.get(10)?,
        not_before: from_ms(r.get(11)?),
        lease_until: r.get::<_, Option<i64>>(12)?.map(from_ms),
        dead_reason: r.get(13)?,
        settled_at: r.get::<_, Option<i64>>(14)?.map(from_ms),
    })
}

fn row_error(e: rusqlite::Error) -> JournalError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => {
            JournalError::Corrupt(e.to_string())
        }
        e => sql(e),
    }
}
