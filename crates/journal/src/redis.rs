//! The Redis Streams backend (`journal.backend = "redis"`, cargo feature `redis`, Redis ≥ 6.2).
//!
//! Keys, all under `journal.prefix` (`P`, default `wagate`):
//!
//! | key | type | content |
//! |---|---|---|
//! | `P:requests` | stream | one entry per request, id `0-<seq>`; fields `id`, `source`, `received_at` (unix ms), `body`, `content_type`, `signature`, `peer`, `valid_json` (`0`/`1`); consumer group `dispatch` |
//! | `P:seq` | string | the last issued `seq` (`INCR` in the append script) |
//! | `P:open` | sorted set | open (pending or leased) seqs, score `received_at` ms |
//! | `P:leased` | sorted set | leased seqs, score = lease end (server ms) |
//! | `P:delayed` | sorted set | seqs waiting for a retry, score = `not_before` (server ms) |
//! | `P:done` | sorted set | done seqs, score = settle time (server ms), until pruned |
//! | `P:dead` | hash | dead-lettered seq → reason |
//!
//! Every write is one Lua script, so each is atomic across any number of replicas. Times come
//! from the server's clock (`TIME`), so replicas with skewed clocks agree on lease ends.
//! Leased and retrying requests stay in the group's pending entries list; a lease end or a
//! retry time is a score in `P:leased` / `P:delayed`, and `XCLAIM` takes such an entry back
//! when it is due (which also counts the attempt: `attempt` is the entry's delivery count).
//! The lease length is stored per lease because each `lease` call picks its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use tokio::sync::OnceCell;

use crate::{
    Appended, Durability, Journal, JournalError, Leased, Request, Seq, Settlement, State, Stats,
};

/// Consumer group of the dispatchers.
const GROUP: &str = "dispatch";
/// Consumer name in the group. Lease ownership lives in `P:leased`, so all replicas share it.
const CONSUMER: &str = "wagate";
/// Most requests one `lease` call returns (bounds the time one script blocks the server).
const LEASE_MAX: usize = 10_000;
/// Requests pruned per script call (bounds the time one call blocks the server).
const PRUNE_CHUNK: usize = 1000;

/// Names of the keys of one journal (see the module docs).
#[derive(Debug, Clone)]
struct Keys {
    stream: String,
    seq: String,
    open: String,
    leased: String,
    delayed: String,
    done: String,
    dead: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        let k = |s: &str| format!("{prefix}:{s}");
        Keys {
            stream: k("requests"),
            seq: k("seq"),
            open: k("open"),
            leased: k("leased"),
            delayed: k("delayed"),
            done: k("done"),
            dead: k("dead"),
        }
    }
}

const NOW: &str = "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// KEYS: stream, seq, open. ARGV: received_at ms, then field/value pairs.
const APPEND: &str = "local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], '0-' .. seq, unpack(ARGV, 2))
redis.call('ZADD', KEYS[3], ARGV[1], seq)
return seq";

/// KEYS: stream, leased, delayed. ARGV: max, lease ms, group, consumer.
/// Returns `[[id, fields, attempt], ...]`, oldest seq first.
fn lease_script() -> String {
    format!(
        "{NOW}local max = tonumber(ARGV[1])
local lease_end = now + tonumber(ARGV[2])
local due = {{}}
for _, z in ipairs({{KEYS[2], KEYS[3]}}) do
  for _, s in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, max)) do
    table.insert(due, s)
  end
end
table.sort(due, function(a, b) return tonumber(a) < tonumber(b) end)
local out = {{}}
for _, s in ipairs(due) do
  if #out >= max then break end
  local id = '0-' .. s
  redis.call('ZREM', KEYS[2], s)
  redis.call('ZREM', KEYS[3], s)
  local c = redis.call('XCLAIM', KEYS[1], ARGV[3], ARGV[4], 0, id)
  if type(c[1]) == 'table' and c[1][2] then
    redis.call('ZADD', KEYS[2], lease_end, s)
    local p = redis.call('XPENDING', KEYS[1], ARGV[3], id, id, 1)
    table.insert(out, {{c[1][1], c[1][2], p[1][4]}})
  end
end
if #out < max then
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[3], ARGV[4], 'COUNT', max - #out, 'STREAMS', KEYS[1], '>')
  if r then
    for _, e in ipairs(r[1][2]) do
      redis.call('ZADD', KEYS[2], lease_end, string.sub(e[1], 3))
      table.insert(out, {{e[1], e[2], 1}})
    end
  end
end
return out"
    )
}

/// KEYS: stream, open, leased, delayed, done, dead. ARGV: seq, kind (done|retry|dead),
/// delay ms or reason, group. Returns 1 when applied or already final, 0 when unknown.
fn settle_script() -> String {
    format!(
        "{NOW}local s = ARGV[1]
if redis.call('ZSCORE', KEYS[5], s) or redis.call('HEXISTS', KEYS[6], s) == 1 then return 1 end
if not redis.call('ZSCORE', KEYS[2], s) then return 0 end
local kind = ARGV[2]
if kind == 'retry' then
  redis.call('ZREM', KEYS[3], s)
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), s)
  return 1
end
redis.call('XACK', KEYS[1], ARGV[4], '0-' .. s)
redis.call('ZREM', KEYS[2], s)
redis.call('ZREM', KEYS[3], s)
redis.call('ZREM', KEYS[4], s)
if kind == 'done' then
  redis.call('ZADD', KEYS[5], now, s)
else
  redis.call('HSET', KEYS[6], s, ARGV[3])
end
return 1"
    )
}

/// KEYS: stream, done. ARGV: age ms, chunk. Returns how many went.
fn prune_script() -> String {
    format!(
        "{NOW}local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0, tonumber(ARGV[2]))
for _, s in ipairs(gone) do
  redis.call('XDEL', KEYS[1], '0-' .. s)
  redis.call('ZREM', KEYS[2], s)
end
return #gone"
    )
}

/// The scripts, hashed once (`EVALSHA`, loaded on demand by the client).
struct Scripts {
    append: Script,
    lease: Script,
    settle: Script,
    prune: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            append: Script::new(APPEND),
            lease: Script::new(&lease_script()),
            settle: Script::new(&settle_script()),
            prune: Script::new(&prune_script()),
        }
    }
}

/// A journal in Redis Streams. Cheap to share; every method is one round trip (a script or a
/// pipeline), and any number of processes may use the same keys at once.
pub struct Redis {
    conn: ConnectionManager,
    keys: Keys,
    scripts: Arc<Scripts>,
    durability: Durability,
    group_ready: OnceCell<()>,
    closed: AtomicBool,
}

fn unavailable(e: redis::RedisError) -> JournalError {
    JournalError::Unavailable(format!("redis: {e}"))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Redis {
    /// Connects lazily to `url` (`redis://host:port[/db]`, `rediss://` is not built in): the
    /// first call opens the connection, and a lost connection is re-established on later
    /// calls. Operations time out after 10 s.
    ///
    /// # Errors
    /// [`JournalError::Unavailable`] when `url` is not a Redis URL.
    pub fn open(url: &str, prefix: &str, durability: Durability) -> Result<Self, JournalError> {
        let client = redis::Client::open(url).map_err(|e| {
            JournalError::Unavailable(format!("journal.url is not a redis URL: {e}"))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        Ok(Redis {
            conn,
            keys: Keys::new(prefix),
            scripts: Arc::new(Scripts::new()),
            durability,
            group_ready: OnceCell::new(),
            closed: AtomicBool::new(false),
        })
    }

    fn check_open(&self) -> Result<(), JournalError> {
        if self.closed.load(Ordering::Acquire) {
            Err(JournalError::Closed)
        } else {
            Ok(())
        }
    }

    /// Creates the stream and the consumer group once (`BUSYGROUP` means another replica did).
    async fn ensure_group(&self) -> Result<(), JournalError> {
        self.group_ready
            .get_or_try_init(|| async {
                let mut c = self.conn.clone();
                let r: redis::RedisResult<Value> = redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&self.keys.stream)
                    .arg(GROUP)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async(&mut c)
                    .await;
                match r {
                    Ok(_) => Ok(()),
                    Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
                    Err(e) => Err(unavailable(e)),
                }
            })
            .await
            .map(|_| ())
    }

    /// Reads `seq` with its state through this journal's connection, `None` when absent
    /// (never issued or pruned).
    ///
    /// # Errors
    /// [`JournalError::Unavailable`] on a Redis error, [`JournalError::Corrupt`] when the
    /// entry cannot be decoded.
    pub async fn get(&self, seq: Seq) -> Result<Option<Stored>, JournalError> {
        let mut c = self.conn.clone();
        get_with(&mut c, &self.keys, seq).await
    }
}

/// A stored request with its state, as read by [`Redis::get`] or [`read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Sequence number.
    pub seq: Seq,
    /// The request as appended (`received_at` at millisecond precision).
    pub request: Request,
    /// Dispatch state (a retry waiting for its time is `Pending`).
    pub state: State,
    /// Reason, when dead-lettered.
    pub dead_reason: Option<String>,
}

/// Reads `seq` through a new connection to `url` (for tools and tests that must not share
/// the server's connection).
///
/// # Errors
/// As [`Redis::get`], plus [`JournalError::Unavailable`] when the server cannot be reached.
pub async fn read(url: &str, prefix: &str, seq: Seq) -> Result<Option<Stored>, JournalError> {
    let client = redis::Client::open(url).map_err(unavailable)?;
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .map_err(unavailable)?;
    get_with(&mut c, &Keys::new(prefix), seq).await
}

async fn get_with(
    c: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
    seq: Seq,
) -> Result<Option<Stored>, JournalError> {
    let id = format!("0-{seq}");
    let (entries, done, dead, leased): (Value, Option<f64>, Option<String>, Option<f64>) =
        redis::pipe()
            .cmd("XRANGE")
            .arg(&keys.stream)
            .arg(&id)
            .arg(&id)
            .cmd("ZSCORE")
            .arg(&keys.done)
            .arg(seq)
            .cmd("HGET")
            .arg(&keys.dead)
            .arg(seq)
            .cmd("ZSCORE")
            .arg(&keys.leased)
            .arg(seq)
            .query_async(c)
            .await
            .map_err(unavailable)?;
    let Value::Array(entries) = entries else {
        return Err(corrupt("XRANGE reply"));
    };
    let Some(Value::Array(entry)) = entries.into_iter().next() else {
        return Ok(None);
    };
    let fields = entry.into_iter().nth(1).ok_or_else(|| corrupt("entry"))?;
    let request = decode_request(fields)?;
    let state = if done.is_some() {
        State::Done
    } else if dead.is_some() {
        State::Dead
    } else if leased.is_some() {
        State::Leased
    } else {
        State::Pending
    };
    Ok(Some(Stored {
        seq,
        request,
        state,
        dead_reason: dead,
    }))
}

fn corrupt(what: &str) -> JournalError {
    JournalError::Corrupt(format!("redis: unexpected {what}"))
}

fn text(v: Vec<u8>, what: &str) -> Result<String, JournalError> {
    String::from_utf8(v).map_err(|_| corrupt(what))
}

fn bytes_of(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

/// Decodes a stream entry's flat `[field, value, ...]` array.
fn decode_request(fields: Value) -> Result<Request, JournalError> {
    let Value::Array(flat) = fields else {
        return Err(corrupt("entry fields"));
    };
    let mut id = None;
    let mut source = None;
    let mut received_at = None;
    let mut body = None;
    let mut r = Request {
        id: String::new(),
        source: String::new(),
        received_at: UNIX_EPOCH,
        body: Bytes::new(),
        content_type: None,
        signature: None,
        peer: None,
        valid_json: false,
    };
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let k = bytes_of(k).ok_or_else(|| corrupt("field name"))?;
        let v = bytes_of(v).ok_or_else(|| corrupt("field value"))?;
        match k.as_slice() {
            b"id" => id = Some(text(v, "id")?),
            b"source" => source = Some(text(v, "source")?),
            b"received_at" => {
                let n: u64 = text(v, "received_at")?
                    .parse()
                    .map_err(|_| corrupt("received_at"))?;
                received_at = Some(UNIX_EPOCH + Duration::from_millis(n));
            }
            b"body" => body = Some(Bytes::from(v)),
            b"content_type" => r.content_type = Some(text(v, "content_type")?),
            b"signature" => r.signature = Some(text(v, "signature")?),
            b"peer" => r.peer = Some(text(v, "peer")?),
            b"valid_json" => r.valid_json = v == b"1",
            _ => {}
        }
    }
    r.id = id.ok_or_else(|| corrupt("entry without id"))?;
    r.source = source.ok_or_else(|| corrupt("entry without source"))?;
    r.received_at = received_at.ok_or_else(|| corrupt("entry without received_at"))?;
    r.body = body.ok_or_else(|| corrupt("entry without body"))?;
    Ok(r)
}

/// `0-<seq>` → seq.
fn seq_of(id: &[u8]) -> Result<Seq, JournalError> {
    std::str::from_utf8(id)
        .ok()
        .and_then(|s| s.strip_prefix("0-"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| corrupt("stream id"))
}

fn decode_leased(v: Value) -> Result<Leased, JournalError> {
    let Value::Array(parts) = v else {
        return Err(corrupt("lease reply"));
    };
    let mut it = parts.into_iter();
    let (Some(id), Some(fields), Some(Value::Int(attempt))) = (it.next(), it.next(), it.next())
    else {
        return Err(corrupt("lease reply"));
    };
    Ok(Leased {
        seq: seq_of(&bytes_of(id).ok_or_else(|| corrupt("stream id"))?)?,
        request: decode_request(fields)?,
        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
    })
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, ms)
}

#[async_trait::async_trait]
impl Journal for Redis {
    async fn append(&self, request: Request) -> Result<Appended, JournalError> {
        self.check_open()?;
        let mut inv = self.scripts.append.prepare_invoke();
        inv.key(&self.keys.stream)
            .key(&self.keys.seq)
            .key(&self.keys.open)
            .arg(unix_ms(request.received_at));
        inv.arg("id")
            .arg(&request.id)
            .arg("source")
            .arg(&request.source)
            .arg("received_at")
            .arg(unix_ms(request.received_at))
            .arg("body")
            .arg(request.body.as_ref())
            .arg("valid_json")
            .arg(if request.valid_json { "1" } else { "0" });
        for (name, value) in [
            ("content_type", &request.content_type),
            ("signature", &request.signature),
            ("peer", &request.peer),
        ] {
            if let Some(v) = value {
                inv.arg(name).arg(v);
            }
        }
        let mut c = self.conn.clone();
        let seq: u64 = inv.invoke_async(&mut c).await.map_err(unavailable)?;
        Ok(Appended { seq })
    }

    async fn lease(&self, max: usize, lease_for: Duration) -> Result<Vec<Leased>, JournalError> {
        self.check_open()?;
        if max == 0 {
            return Ok(Vec::new());
        }
        self.ensure_group().await?;
        let mut c = self.conn.clone();
        let reply: Value = self
            .scripts
            .lease
            .key(&self.keys.stream)
            .key(&self.keys.leased)
            .key(&self.keys.delayed)
            .arg(max.min(LEASE_MAX))
            .arg(ms(lease_for).max(1))
            .arg(GROUP)
            .arg(CONSUMER)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        match reply {
            Value::Array(items) => items.into_iter().map(decode_leased).collect(),
            Value::Nil => Ok(Vec::new()),
            _ => Err(corrupt("lease reply")),
        }
    }

    async fn settle(&self, seq: Seq, settlement: Settlement) -> Result<(), JournalError> {
        self.check_open()?;
        self.ensure_group().await?;
        let (kind, arg) = match settlement {
            Settlement::Done => ("done", String::new()),
            Settlement::Retry { after } => ("retry", ms(after).to_string()),
            Settlement::DeadLetter { reason } => ("dead", reason),
        };
        let mut c = self.conn.clone();
        let applied: i64 = self
            .scripts
            .settle
            .key(&self.keys.stream)
            .key(&self.keys.open)
            .key(&self.keys.leased)
            .key(&self.keys.delayed)
            .key(&self.keys.done)
            .key(&self.keys.dead)
            .arg(seq)
            .arg(kind)
            .arg(arg)
            .arg(GROUP)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        if applied == 1 {
            Ok(())
        } else {
            Err(JournalError::NotFound(seq))
        }
    }

    async fn stats(&self) -> Result<Stats, JournalError> {
        let mut c = self.conn.clone();
        let k = &self.keys;
        let (total, open, leased, done, dead, oldest, now): (
            u64,
            u64,
            u64,
            u64,
            u64,
            Vec<(String, f64)>,
            (u64, u64),
        ) = redis::pipe()
            .cmd("XLEN")
            .arg(&k.stream)
            .cmd("ZCARD")
            .arg(&k.open)
            .cmd("ZCARD")
            .arg(&k.leased)
            .cmd("ZCARD")
            .arg(&k.done)
            .cmd("HLEN")
            .arg(&k.dead)
            .cmd("ZRANGE")
            .arg(&k.open)
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .cmd("TIME")
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let now_ms = now.0 * 1000 + now.1 / 1000;
        Ok(Stats {
            total,
            pending: open.saturating_sub(leased),
            leased,
            done,
            dead,
            // Scores are whole unix ms, exact in an f64.
            oldest_pending_age_secs: oldest
                .first()
                .map(|(_, at)| now_ms.saturating_sub(*at as u64) / 1000),
            size_bytes: None,
            deliveries: None,
        })
    }

    async fn health(&self) -> Result<(), JournalError> {
        self.check_open()?;
        let mut c = self.conn.clone();
        let r: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("append*")
            .query_async(&mut c)
            .await;
        let config = match r {
            Ok(v) => v,
            // Managed services often disable CONFIG: persistence is theirs to guarantee.
            Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => {
                let _: () = redis::cmd("PING")
                    .query_async(&mut c)
                    .await
                    .map_err(unavailable)?;
                return Ok(());
            }
            Err(e) => return Err(unavailable(e)),
        };
        persistence_problem(&config, self.durability)
            .map_or(Ok(()), |m| Err(JournalError::Unavailable(m)))
    }

    async fn prune(&self, older_than: Duration) -> Result<u64, JournalError> {
        self.check_open()?;
        let mut c = self.conn.clone();
        let mut total = 0;
        loop {
            let n: u64 = self
                .scripts
                .prune
                .key(&self.keys.stream)
                .key(&self.keys.done)
                .arg(ms(older_than))
                .arg(PRUNE_CHUNK)
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            total += n;
            if n < PRUNE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    async fn close(&self) -> Result<(), JournalError> {
        // Every acknowledged write is already on the server: nothing to flush.
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}

/// Why the server's persistence (from `CONFIG GET append*`, flat name/value pairs) does not
/// give `durability`, if it does not: `appendonly no` keeps nothing across a restart;
/// `fsync` needs `appendfsync always` (`everysec` may lose the last second on power loss,
/// which `os` accepts).
fn persistence_problem(config: &[String], durability: Durability) -> Option<String> {
    let get = |name: &str| {
        config
            .chunks(2)
            .find(|p| p[0] == name)
            .and_then(|p| p.get(1))
            .map(String::as_str)
    };
    if get("appendonly") != Some("yes") {
        return Some(
            "redis does not persist (appendonly is not yes): set appendonly yes and appendfsync always"
                .into(),
        );
    }
    match (durability, get("appendfsync")) {
        (_, Some("always")) => None,
        (Durability::Os, Some("everysec")) => None,
        (Durability::Fsync, Some(other)) => Some(format!(
            "redis appendfsync is {other}: journal.durability = \"fsync\" needs appendfsync always (or set journal.durability = \"os\" to accept everysec)"
        )),
        (Durability::Os, Some(other)) => Some(format!(
            "redis appendfsync is {other}: journal.durability = \"os\" needs everysec or always"
        )),
        (_, None) => Some("redis did not report appendfsync".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[&str]) -> Vec<String> {
        pairs.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn persistence_rules() {
        let always = cfg(&["appendonly", "yes", "appendfsync", "always"]);
        let everysec = cfg(&["appendfsync", "everysec", "appendonly", "yes"]);
        let off = cfg(&["appendonly", "no", "appendfsync", "always"]);
        assert_eq!(persistence_problem(&always, Durability::Fsync), None);
        assert_eq!(persistence_problem(&everysec, Durability::Os), None);
        assert!(persistence_problem(&everysec, Durability::Fsync).is_some());
        assert!(
            persistence_problem(&off, Durability::Os)
                .unwrap()
                .contains("appendonly")
        );
        assert!(
            persistence_problem(
                &cfg(&["appendonly", "yes", "appendfsync", "no"]),
                Durability::Os
            )
            .is_some()
        );
    }

    #[test]
    fn stream_ids_map_to_seqs() {
        assert_eq!(seq_of(b"0-42").unwrap(), 42);
        assert!(seq_of(b"1700000000000-0").is_err());
        assert!(seq_of(b"0-x").is_err());
    }
}
