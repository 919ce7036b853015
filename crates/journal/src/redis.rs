//! The Redis Streams backend of the partitioned broker log (`journal.backend = "redis"`, cargo
//! feature `redis`, Redis ≥ 6.2, one primary: not Redis Cluster, scripts touch several keys).
//!
//! Keys, all under `journal.prefix` (`P`, default `wagate`):
//!
//! | key | type | content |
//! |---|---|---|
//! | `P:p<n>` | stream | partition `n`: one entry per [`Log::append`], id `*` (server time), fields `r` (the record bytes, verbatim) and `m` (`msg_id`); consumer group `dispatch`, whose consumer names are the holders' `owner`s |
//! | `P:hold:p<n>` | string | the `owner` holding partition `n`, with a TTL of the hold's `ttl` |
//! | `P:dd:<key>` | string | the dedupe window: the `tag` that claimed `<key>`, with a TTL |
//! | `P:dead` | stream | dead letters, fields `r`; the entry id is the [`DeadId`] |
//!
//! How each operation maps:
//!
//! - `open`: connects (one multiplexed connection, re-established on later calls after a
//!   loss) and creates every partition's stream and group (`XGROUP CREATE ... 0 MKSTREAM`,
//!   `BUSYGROUP` ignored).
//! - `append`: `XADD P:p<n> * r <record> m <msg_id>`; the reply comes after the write reached
//!   the AOF under the server's `appendfsync` (`always`: fsynced). No publish dedupe: a retried
//!   append may store a record twice, which the dedupe window absorbs.
//! - `hold` / `release`: a script sets `P:hold:p<n>` with `PX ttl` when it is absent or holds
//!   `owner`; `release` deletes it only when it holds `owner`. A hold that was absent, or that
//!   this client did not hold, starts a new holding (tracked in memory per partition).
//! - `read`: the first read of a holding takes every pending entry of the group (read and never
//!   acknowledged by earlier holders, or by this owner name in an earlier process) with
//!   `XAUTOCLAIM ... 0` to `owner`, cursor by cursor, in id order, with `deliveries` = the
//!   delivery count from `XPENDING`; then new entries with `XREADGROUP ... BLOCK wait ... >`
//!   (`deliveries` 1), on a connection of the partition's own, so blocking never stalls the
//!   shared one. A read cancelled while it blocks leaves its broker read running and the next
//!   read of the partition returns what it got, so no entry is lost to a cancelled future.
//! - `ack`: a script, `XACK` then `XDEL` when the entry was pending, so `XLEN` is the depth.
//! - `claim`: a script over `P:dd:<key>`: `SET tag NX PX ttl`, else `true` iff the value is
//!   `tag`; one boolean per key, atomic for all keys of the call.
//! - `bury` / `dead` / `remove_dead`: `XADD P:dead * r <record>` / `XRANGE P:dead (<after> +`
//!   / `XDEL`.
//! - `stats`: `XLEN` (depth) and the `XPENDING` summary count (unacked) per partition,
//!   `XLEN P:dead`.
//! - `health`: `PING`, then `CONFIG GET append*`: a warning when the server does not persist
//!   (`appendonly no`: acknowledged webhooks are lost when Redis restarts) or does not fsync
//!   every write (`appendfsync everysec` or `no`). Where `CONFIG` is refused (managed
//!   services) only `PING` counts.
//! - `close`: later appends fail with [`JournalError::Closed`].
//!
//! **Durability is the server's**: the fsync guarantee of an acknowledged append needs
//! `appendonly yes` and `appendfsync always`. Errors of the broker are
//! [`JournalError::Unavailable`] `redis: ...`, never with record contents.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Script, Value};
use tokio::task::JoinHandle;

use crate::JournalError;
use crate::log::{DeadId, Entry, EntryId, Log, LogStats, PartitionStats};

/// Consumer group of the holders of each partition stream.
const GROUP: &str = "dispatch";
/// Cursor of `XAUTOCLAIM`: the start of the pending list, and "scan complete" in replies.
const CURSOR_START: &str = "0-0";
/// Margin over a read's `wait` before a silent server counts as gone.
const READ_MARGIN: Duration = Duration::from_secs(10);
/// Longest error text kept (server messages are short; this bounds anything unexpected).
const ERROR_MAX: usize = 300;

/// KEYS: the partition streams. ARGV: group. Creates each stream and its group.
const CREATE_GROUPS: &str = "for _, k in ipairs(KEYS) do
  local r = redis.pcall('XGROUP', 'CREATE', k, ARGV[1], '0', 'MKSTREAM')
  if type(r) == 'table' and r.err and not string.find(r.err, 'BUSYGROUP', 1, true) then
    return r
  end
end
return #KEYS";

/// KEYS: hold key. ARGV: owner, ttl ms. 2: taken (was free), 1: renewed, 0: held by another.
const HOLD: &str = "local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if v then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2";

/// KEYS: hold key. ARGV: owner.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// KEYS: stream. ARGV: group, id. Deletes the entry only if it was pending (an unread entry
/// is never dropped by a stray ack).
const ACK: &str = "if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('XDEL', KEYS[1], ARGV[2])
  return 1
end
return 0";

/// KEYS: the dedupe keys. ARGV: tag, ttl ms. One 1/0 per key.
const CLAIM: &str = "local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('SET', k, ARGV[1], 'NX', 'PX', ARGV[2]) then
    out[i] = 1
  elseif redis.call('GET', k) == ARGV[1] then
    out[i] = 1
  else
    out[i] = 0
  end
end
return out";

/// KEYS: stream. ARGV: group, owner, cursor, count. Claims up to `count` pending entries from
/// `cursor` on to `owner`. Returns `{next cursor, {{id, fields, deliveries}, ...}}`, in id
/// order. Entries deleted behind the group's back (Redis 6.2 keeps them pending) are
/// acknowledged away.
const AUTOCLAIM: &str =
    "local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'COUNT', ARGV[4])
local live = {}
for _, e in ipairs(r[2]) do
  if type(e) == 'table' and e[2] then
    table.insert(live, e)
  elseif type(e) == 'table' and e[1] then
    redis.call('XACK', KEYS[1], ARGV[1], e[1])
  end
end
local counts = {}
if #live > 0 then
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], live[1][1], live[#live][1], #live, ARGV[2])
  for _, x in ipairs(p) do counts[x[1]] = x[4] end
end
local out = {}
for _, e in ipairs(live) do
  table.insert(out, {e[1], e[2], counts[e[1]] or 2})
end
return {r[1], out}";

/// The scripts, hashed once (`EVALSHA`, loaded on demand by the client).
struct Scripts {
    create_groups: Script,
    hold: Script,
    release: Script,
    ack: Script,
    claim: Script,
    autoclaim: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            create_groups: Script::new(CREATE_GROUPS),
            hold: Script::new(HOLD),
            release: Script::new(RELEASE),
            ack: Script::new(ACK),
            claim: Script::new(CLAIM),
            autoclaim: Script::new(AUTOCLAIM),
        }
    }
}

/// Names of the keys of one log (see the module docs).
struct Keys {
    prefix: String,
    streams: Vec<String>,
    holds: Vec<String>,
    dead: String,
}

impl Keys {
    fn new(prefix: &str, partitions: u32) -> Self {
        Keys {
            prefix: prefix.to_string(),
            streams: (0..partitions).map(|p| format!("{prefix}:p{p}")).collect(),
            holds: (0..partitions)
                .map(|p| format!("{prefix}:hold:p{p}"))
                .collect(),
            dead: format!("{prefix}:dead"),
        }
    }

    fn dedupe(&self, key: &str) -> String {
        format!("{}:dd:{key}", self.prefix)
    }
}

/// What this client knows of one partition.
#[derive(Default)]
struct PartState {
    /// The owner this client holds the partition for, as of its last `hold`.
    held_by: Option<String>,
    /// Incremented with every new holding, so a late result of an older one changes nothing.
    epoch: u64,
    /// `XAUTOCLAIM` cursor while pending entries remain to be taken over; `None` once new
    /// entries are read.
    backlog: Option<String>,
    /// Highest entry id returned in this holding.
    last: Option<(u64, u64)>,
}

/// A blocking read whose caller may have gone.
struct Inflight {
    epoch: u64,
    handle: JoinHandle<redis::RedisResult<Value>>,
}

/// One partition's state, its read in flight and its connection for blocking reads.
#[derive(Default)]
struct Part {
    state: Mutex<PartState>,
    reading: tokio::sync::Mutex<Option<Inflight>>,
    reader: Arc<Mutex<Option<MultiplexedConnection>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Part {
    /// Records that `entries` (in id order) were returned in holding `epoch`.
    fn returned(&self, epoch: u64, entries: &[Entry]) {
        let mut s = lock(&self.state);
        if s.epoch != epoch {
            return;
        }
        if let Some(id) = entries.last().and_then(|e| parse_id(&e.id)) {
            s.last = s.last.max(Some(id));
        }
    }

    /// A read of holding `epoch` failed after the server may have handed it entries: take
    /// this owner's pending entries after the last returned one before reading new ones.
    fn dirty(&self, epoch: u64) {
        let mut s = lock(&self.state);
        if s.epoch == epoch && s.backlog.is_none() {
            s.backlog = Some(match s.last {
                None => CURSOR_START.to_string(),
                Some((ms, seq)) => match seq.checked_add(1) {
                    Some(seq) => format!("{ms}-{seq}"),
                    None => format!("{}-0", ms.saturating_add(1)),
                },
            });
        }
    }
}

/// `<ms>-<seq>` of a stream id.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// A partitioned log in Redis Streams (see the module docs). Cheap to share; any number of
/// processes may use the same prefix at once.
pub struct Redis {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    scripts: Scripts,
    parts: Vec<Part>,
    closed: AtomicBool,
}

/// Maps a client or server error; server messages name keys and commands, never values.
fn unavailable(e: redis::RedisError) -> JournalError {
    let mut m = format!("redis: {e}");
    if m.len() > ERROR_MAX {
        let mut end = ERROR_MAX;
        while !m.is_char_boundary(end) {
            end -= 1;
        }
        m.truncate(end);
    }
    JournalError::Unavailable(m)
}

fn corrupt(what: &str) -> JournalError {
    JournalError::Corrupt(format!("redis: unexpected {what}"))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Redis {
    /// Connects to `url` (`redis://[user:password@]host:port[/db]`; `rediss://` is not built
    /// in) and creates the `partitions` streams with their consumer group under `prefix`.
    /// A connection lost later is re-established by later calls; commands time out after
    /// 10 s.
    ///
    /// # Errors
    /// [`JournalError::Unavailable`] when `url` is not a Redis URL (naming `journal.url`), the
    /// server cannot be reached, or refuses the streams.
    pub async fn open(url: &str, prefix: &str, partitions: u32) -> Result<Self, JournalError> {
        if partitions == 0 {
            return Err(JournalError::Unavailable(
                "journal.partitions = 0: must be 1..=1024".into(),
            ));
        }
        // The URL may carry a password: never echo it.
        let client = redis::Client::open(url).map_err(|e| {
            JournalError::Unavailable(format!("journal.url is not a redis URL: {}", e.category()))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| {
                JournalError::Unavailable(format!("redis: cannot reach journal.url: {e}"))
            })?;
        let log = Redis {
            client,
            conn,
            keys: Keys::new(prefix, partitions),
            scripts: Scripts::new(),
            parts: (0..partitions).map(|_| Part::default()).collect(),
            closed: AtomicBool::new(false),
        };
        log.check_partitions(prefix, partitions).await?;
        log.create_groups(&log.keys.streams).await?;
        Ok(log)
    }

    /// Records the partition count under `P:partitions` on first use and refuses another
    /// one: replicas that disagree would route a conversation to a partition nobody reads.
    async fn check_partitions(&self, prefix: &str, partitions: u32) -> Result<(), JournalError> {
        let mut c = self.conn.clone();
        let key = format!("{prefix}:partitions");
        let _: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(partitions)
            .arg("NX")
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let stored: Option<u32> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        crate::log::same_partitions(stored, partitions, prefix)
    }

    /// Creates these streams and their group where missing (also after the data was lost:
    /// `NOGROUP`).
    async fn create_groups(&self, streams: &[String]) -> Result<(), JournalError> {
        let mut c = self.conn.clone();
        let mut inv = self.scripts.create_groups.prepare_invoke();
        for s in streams {
            inv.key(s);
        }
        inv.arg(GROUP);
        let _: i64 = inv.invoke_async(&mut c).await.map_err(unavailable)?;
        Ok(())
    }

    fn part(&self, p: u32) -> Result<&Part, JournalError> {
        self.parts.get(p as usize).ok_or_else(|| {
            JournalError::Unavailable(format!(
                "redis: partition {p} out of range 0..{}",
                self.parts.len()
            ))
        })
    }

    fn stream(&self, p: u32) -> &str {
        &self.keys.streams[p as usize]
    }

    /// One `XAUTOCLAIM` step of the takeover: `(next cursor, entries)`.
    async fn autoclaim(
        &self,
        p: u32,
        owner: &str,
        cursor: &str,
        count: usize,
    ) -> Result<(String, Vec<Entry>), JournalError> {
        let invoke = || async {
            let mut c = self.conn.clone();
            self.scripts
                .autoclaim
                .key(self.stream(p))
                .arg(GROUP)
                .arg(owner)
                .arg(cursor)
                .arg(count)
                .invoke_async::<Value>(&mut c)
                .await
        };
        let reply = match invoke().await {
            Err(e) if e.code() == Some("NOGROUP") => {
                self.create_groups(&self.keys.streams[p as usize..=p as usize])
                    .await?;
                invoke().await
            }
            r => r,
        }
        .map_err(unavailable)?;
        let Value::Array(mut parts) = reply else {
            return Err(corrupt("XAUTOCLAIM reply"));
        };
        if parts.len() != 2 {
            return Err(corrupt("XAUTOCLAIM reply"));
        }
        let entries = parts.pop().unwrap_or(Value::Nil);
        let next = text(parts.pop().unwrap_or(Value::Nil)).ok_or_else(|| corrupt("cursor"))?;
        let Value::Array(entries) = entries else {
            return Err(corrupt("XAUTOCLAIM entries"));
        };
        let entries = entries
            .into_iter()
            .map(|e| {
                let Value::Array(e) = e else {
                    return Err(corrupt("claimed entry"));
                };
                let mut it = e.into_iter();
                let (Some(id), Some(fields), Some(Value::Int(n))) =
                    (it.next(), it.next(), it.next())
                else {
                    return Err(corrupt("claimed entry"));
                };
                Ok(Entry {
                    id: text(id).ok_or_else(|| corrupt("entry id"))?,
                    record: record_of(fields)?,
                    deliveries: u32::try_from(n).unwrap_or(u32::MAX).max(2),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((next, entries))
    }

    /// Starts `XREADGROUP ... >` on the partition's reading connection, as a task that
    /// finishes even when the caller stops waiting.
    fn spawn_read(
        &self,
        p: u32,
        owner: &str,
        max: usize,
        wait: Duration,
    ) -> JoinHandle<redis::RedisResult<Value>> {
        let client = self.client.clone();
        let slot = Arc::clone(&self.parts[p as usize].reader);
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(GROUP).arg(owner).arg("COUNT").arg(max);
        if !wait.is_zero() {
            cmd.arg("BLOCK").arg(ms(wait).max(1));
        }
        cmd.arg("STREAMS").arg(self.stream(p)).arg(">");
        tokio::spawn(async move {
            let held = lock(&slot).take();
            let mut conn = match held {
                Some(c) => c,
                None => {
                    // No response timeout on it: the read blocks for `wait` by design.
                    let config = AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(Duration::from_secs(5)))
                        .set_response_timeout(None);
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?
                }
            };
            match tokio::time::timeout(wait + READ_MARGIN, cmd.query_async::<Value>(&mut conn))
                .await
            {
                Ok(Ok(v)) => {
                    *lock(&slot) = Some(conn);
                    Ok(v)
                }
                Ok(Err(e)) => {
                    // A server error leaves the connection usable; anything else drops it.
                    if matches!(
                        e.kind(),
                        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
                    ) {
                        *lock(&slot) = Some(conn);
                    }
                    Err(e)
                }
                Err(_) => Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "blocking read got no reply in time",
                ))),
            }
        })
    }

    /// Waits for the read in `slot` and turns its reply into entries.
    async fn finish_read(
        &self,
        p: u32,
        part: &Part,
        slot: &mut Option<Inflight>,
    ) -> Result<Vec<Entry>, JournalError> {
        let Some(inflight) = slot.as_mut() else {
            return Ok(Vec::new());
        };
        // Cancel-safe: if this await is dropped, the task stays in `slot` for the next read.
        let joined = (&mut inflight.handle).await;
        let epoch = inflight.epoch;
        *slot = None;
        let reply = match joined {
            Ok(r) => r,
            Err(e) => {
                part.dirty(epoch);
                return Err(JournalError::Unavailable(format!("redis: read task: {e}")));
            }
        };
        match reply {
            Ok(v) => {
                let entries = xread_entries(v)?;
                part.returned(epoch, &entries);
                if lock(&part.state).epoch == epoch {
                    Ok(entries)
                } else {
                    // A newer holding takes these over from the pending list.
                    Ok(Vec::new())
                }
            }
            Err(e) if e.code() == Some("NOGROUP") => {
                self.create_groups(&self.keys.streams[p as usize..=p as usize])
                    .await?;
                Ok(Vec::new())
            }
            Err(e) => {
                part.dirty(epoch);
                Err(unavailable(e))
            }
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // Like a process that died: blocking reads end now, holds simply expire.
        for part in &self.parts {
            if let Ok(slot) = part.reading.try_lock()
                && let Some(inflight) = slot.as_ref()
            {
                inflight.handle.abort();
            }
        }
    }
}

/// Text of a bulk or simple string.
fn text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// The `r` field of an entry's flat `[field, value, ...]` array (or map).
fn record_of(fields: Value) -> Result<Bytes, JournalError> {
    let pairs: Vec<(Value, Value)> = match fields {
        Value::Array(flat) => {
            let mut it = flat.into_iter();
            std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
        }
        Value::Map(m) => m,
        _ => return Err(corrupt("entry fields")),
    };
    for (k, v) in pairs {
        if matches!(&k, Value::BulkString(b) if b == b"r")
            && let Value::BulkString(b) = v
        {
            return Ok(Bytes::from(b));
        }
    }
    Err(corrupt("entry without r"))
}

/// `[[id, fields], ...]` of `XRANGE` and of one stream of `XREADGROUP`.
fn range_entries(v: Value) -> Result<Vec<(String, Bytes)>, JournalError> {
    let Value::Array(entries) = v else {
        return Err(corrupt("entry list"));
    };
    entries
        .into_iter()
        .map(|e| {
            let Value::Array(e) = e else {
                return Err(corrupt("entry"));
            };
            let mut it = e.into_iter();
            let (Some(id), Some(fields)) = (it.next(), it.next()) else {
                return Err(corrupt("entry"));
            };
            Ok((
                text(id).ok_or_else(|| corrupt("entry id"))?,
                record_of(fields)?,
            ))
        })
        .collect()
}

/// The entries of a one-stream `XREADGROUP` reply (nil when the wait passed empty).
fn xread_entries(v: Value) -> Result<Vec<Entry>, JournalError> {
    let entries = match v {
        Value::Nil => return Ok(Vec::new()),
        // RESP2: [[stream, entries]]
        Value::Array(streams) => match streams.into_iter().next() {
            Some(Value::Array(s)) => s.into_iter().nth(1),
            None => return Ok(Vec::new()),
            _ => return Err(corrupt("XREADGROUP reply")),
        },
        // RESP3: {stream: entries}
        Value::Map(m) => m.into_iter().next().map(|(_, v)| v),
        _ => return Err(corrupt("XREADGROUP reply")),
    };
    let Some(entries) = entries else {
        return Ok(Vec::new());
    };
    Ok(range_entries(entries)?
        .into_iter()
        .map(|(id, record)| Entry {
            id,
            record,
            deliveries: 1,
        })
        .collect())
}

/// Count of an `XPENDING` summary reply `[count, min, max, consumers]`.
fn pending_count(v: &Value) -> Option<u64> {
    match v {
        Value::Array(a) => match a.first() {
            Some(Value::Int(n)) => u64::try_from(*n).ok(),
            _ => None,
        },
        _ => None,
    }
}

#[async_trait::async_trait]
impl Log for Redis {
    fn partitions(&self) -> u32 {
        u32::try_from(self.parts.len()).unwrap_or(u32::MAX)
    }

    async fn append(&self, p: u32, msg_id: &str, record: Bytes) -> Result<(), JournalError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(JournalError::Closed);
        }
        self.part(p)?;
        let mut c = self.conn.clone();
        let _: Value = redis::cmd("XADD")
            .arg(self.stream(p))
            .arg("*")
            .arg("r")
            .arg(record.as_ref())
            .arg("m")
            .arg(msg_id)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn hold(&self, p: u32, owner: &str, ttl: Duration) -> Result<bool, JournalError> {
        let part = self.part(p)?;
        let mut c = self.conn.clone();
        let r: i64 = self
            .scripts
            .hold
            .key(&self.keys.holds[p as usize])
            .arg(owner)
            .arg(ms(ttl).max(1))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        let mut s = lock(&part.state);
        if r == 0 {
            s.held_by = None;
            return Ok(false);
        }
        // Renewed in Redis yet unknown here: an earlier process of the same owner name held
        // it, and its unacknowledged entries are pending under that name.
        if r == 2 || s.held_by.as_deref() != Some(owner) {
            s.epoch += 1;
            s.backlog = Some(CURSOR_START.to_string());
            s.last = None;
            s.held_by = Some(owner.to_string());
        }
        Ok(true)
    }

    async fn release(&self, p: u32, owner: &str) -> Result<(), JournalError> {
        let part = self.part(p)?;
        {
            let mut s = lock(&part.state);
            s.held_by = None;
            s.epoch += 1;
            s.backlog = None;
            s.last = None;
        }
        let mut c = self.conn.clone();
        let _: i64 = self
            .scripts
            .release
            .key(&self.keys.holds[p as usize])
            .arg(owner)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn read(
        &self,
        p: u32,
        owner: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Entry>, JournalError> {
        let part = self.part(p)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut slot = part.reading.lock().await;
        // A read whose caller went away while it blocked: its entries come first.
        if slot.is_some() {
            let got = self.finish_read(p, part, &mut slot).await?;
            if !got.is_empty() {
                return Ok(got);
            }
        }
        let (epoch, backlog) = {
            let s = lock(&part.state);
            (s.epoch, s.backlog.clone())
        };
        if let Some(mut cursor) = backlog {
            let mut out = Vec::new();
            let mut done = false;
            while !done && out.len() < max {
                let (next, got) = self.autoclaim(p, owner, &cursor, max - out.len()).await?;
                out.extend(got);
                done = next == CURSOR_START;
                cursor = next;
            }
            {
                let mut s = lock(&part.state);
                if s.epoch == epoch {
                    s.backlog = (!done).then_some(cursor);
                }
            }
            part.returned(epoch, &out);
            if !out.is_empty() {
                return Ok(out);
            }
        }
        *slot = Some(Inflight {
            epoch,
            handle: self.spawn_read(p, owner, max, wait),
        });
        self.finish_read(p, part, &mut slot).await
    }

    async fn ack(&self, p: u32, _owner: &str, id: &EntryId) -> Result<(), JournalError> {
        self.part(p)?;
        let mut c = self.conn.clone();
        let _: i64 = self
            .scripts
            .ack
            .key(self.stream(p))
            .arg(GROUP)
            .arg(id)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn claim(
        &self,
        p: u32,
        keys: &[String],
        tag: &str,
        ttl: Duration,
    ) -> Result<Vec<bool>, JournalError> {
        self.part(p)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.scripts.claim.prepare_invoke();
        for k in keys {
            inv.key(self.keys.dedupe(k));
        }
        inv.arg(tag).arg(ms(ttl).max(1));
        let mut c = self.conn.clone();
        let got: Vec<i64> = inv.invoke_async(&mut c).await.map_err(unavailable)?;
        if got.len() != keys.len() {
            return Err(corrupt("claim reply"));
        }
        Ok(got.into_iter().map(|n| n == 1).collect())
    }

    async fn bury(&self, record: Bytes) -> Result<(), JournalError> {
        let mut c = self.conn.clone();
        let _: Value = redis::cmd("XADD")
            .arg(&self.keys.dead)
            .arg("*")
            .arg("r")
            .arg(record.as_ref())
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn dead(
        &self,
        after: Option<DeadId>,
        limit: usize,
    ) -> Result<Vec<(DeadId, Bytes)>, JournalError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = after.map_or_else(|| "-".to_string(), |a| format!("({a}"));
        let mut c = self.conn.clone();
        let v: Value = redis::cmd("XRANGE")
            .arg(&self.keys.dead)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        range_entries(v)
    }

    async fn remove_dead(&self, ids: &[DeadId]) -> Result<u64, JournalError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut c = self.conn.clone();
        redis::cmd("XDEL")
            .arg(&self.keys.dead)
            .arg(ids)
            .query_async(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn stats(&self) -> Result<LogStats, JournalError> {
        let mut pipe = redis::pipe();
        for s in &self.keys.streams {
            pipe.cmd("XLEN").arg(s).cmd("XPENDING").arg(s).arg(GROUP);
        }
        pipe.cmd("XLEN").arg(&self.keys.dead);
        let mut c = self.conn.clone();
        let replies: Vec<Value> = pipe.query_async(&mut c).await.map_err(unavailable)?;
        let count = |v: &Value| match v {
            Value::Int(n) => u64::try_from(*n).ok(),
            _ => None,
        };
        let mut partitions = Vec::with_capacity(self.keys.streams.len());
        for (p, pair) in (0u32..).zip(replies.chunks_exact(2)) {
            partitions.push(PartitionStats {
                partition: p,
                depth: count(&pair[0]).ok_or_else(|| corrupt("XLEN reply"))?,
                unacked: pending_count(&pair[1]),
            });
        }
        let dead = replies
            .last()
            .and_then(count)
            .ok_or_else(|| corrupt("XLEN reply"))?;
        Ok(LogStats { partitions, dead })
    }

    async fn health(&self) -> Result<Option<String>, JournalError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(JournalError::Closed);
        }
        let mut c = self.conn.clone();
        let _: Value = redis::cmd("PING")
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let config: Value = match redis::cmd("CONFIG")
            .arg("GET")
            .arg("append*")
            .query_async(&mut c)
            .await
        {
            Ok(v) => v,
            // Managed services often refuse CONFIG: persistence is theirs to guarantee.
            Err(e)
                if matches!(
                    e.kind(),
                    redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(unavailable(e)),
        };
        let pairs: Vec<(String, String)> = match config {
            Value::Array(flat) => {
                let mut it = flat.into_iter();
                std::iter::from_fn(|| Some((it.next()?, it.next()?)))
                    .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
                    .collect()
            }
            Value::Map(m) => m
                .into_iter()
                .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
                .collect(),
            _ => return Ok(None),
        };
        Ok(persistence_problem(&pairs))
    }

    async fn close(&self) -> Result<(), JournalError> {
        // Every acknowledged write is already on the server: nothing to flush.
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}

/// The warning for a server whose persistence (`CONFIG GET append*` pairs) does not give the
/// fsync guarantee, if it does not: `appendonly yes` and `appendfsync always` are required.
fn persistence_problem(config: &[(String, String)]) -> Option<String> {
    let get = |name: &str| {
        config
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match (get("appendonly"), get("appendfsync")) {
        (Some("yes"), Some("always")) => None,
        (Some("yes"), Some("everysec")) => Some(
            "redis appendfsync is everysec: a crash of the redis host may lose up to about 1 s of acknowledged webhooks; appendfsync always gives the fsync guarantee"
                .into(),
        ),
        (Some("yes"), Some(other)) => Some(format!(
            "redis appendfsync is {other}: the OS decides when appends reach the disk, so a crash of the redis host may lose acknowledged webhooks; appendfsync always gives the fsync guarantee"
        )),
        (Some("yes"), None) => None,
        (None, _) => None,
        (Some(_), _) => Some(
            "redis does not persist (appendonly no): acknowledged webhooks are lost if redis restarts; set appendonly yes and appendfsync always"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn persistence_rules() {
        let always = cfg(&[("appendonly", "yes"), ("appendfsync", "always")]);
        assert_eq!(persistence_problem(&always), None);
        let everysec = cfg(&[("appendfsync", "everysec"), ("appendonly", "yes")]);
        assert!(
            persistence_problem(&everysec)
                .unwrap()
                .contains("appendfsync is everysec")
        );
        let no = cfg(&[("appendonly", "yes"), ("appendfsync", "no")]);
        assert!(
            persistence_problem(&no)
                .unwrap()
                .contains("appendfsync is no")
        );
        let off = cfg(&[("appendonly", "no"), ("appendfsync", "always")]);
        assert!(persistence_problem(&off).unwrap().contains("appendonly no"));
        assert_eq!(persistence_problem(&[]), None, "nothing reported: no claim");
    }

    #[test]
    fn stream_ids_and_replies_parse() {
        assert_eq!(parse_id("1700000000000-3"), Some((1_700_000_000_000, 3)));
        assert_eq!(parse_id("x-1"), None);
        let bulk = |s: &[u8]| Value::BulkString(s.to_vec());
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(b"P:p0"),
            Value::Array(vec![Value::Array(vec![
                bulk(b"1-0"),
                Value::Array(vec![bulk(b"r"), bulk(b"\x00\xff"), bulk(b"m"), bulk(b"m1")]),
            ])]),
        ])]);
        let got = xread_entries(reply).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].id.as_str(), &got[0].record[..], got[0].deliveries),
            ("1-0", &b"\x00\xff"[..], 1)
        );
        assert!(xread_entries(Value::Nil).unwrap().is_empty());
        assert!(record_of(Value::Array(vec![bulk(b"m"), bulk(b"x")])).is_err());
    }

    #[test]
    fn a_failed_read_resumes_after_the_last_returned_entry() {
        let part = Part::default();
        part.dirty(0);
        assert_eq!(lock(&part.state).backlog.as_deref(), Some("0-0"));
        lock(&part.state).backlog = None;
        let e = |id: &str| Entry {
            id: id.into(),
            record: Bytes::new(),
            deliveries: 1,
        };
        part.returned(0, &[e("5-1"), e("7-2")]);
        part.returned(1, &[e("9-0")]);
        part.dirty(0);
        assert_eq!(lock(&part.state).backlog.as_deref(), Some("7-3"));
    }

    #[tokio::test]
    async fn a_bad_url_names_the_setting() {
        match Redis::open("http://x", "p", 1).await {
            Err(JournalError::Unavailable(m)) => assert!(m.contains("journal.url"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened"),
        }
    }
}
