//! `wagate journal stats` and `wagate dlq ...` on a broker journal (`journal.backend` =
//! `redis`, `amqp`, `nats`): the same commands as on the embedded file, through the broker.

use std::io::Write as _;
use std::process::ExitCode;

use wagate_journal::JournalConfig;
use wagate_journal::events::DeadFilter;
use wagate_journal::log::{DeadId, DeadLetter, Log, Record, from_unix_ms, partition_of};

/// Dead letters read per broker call.
const PAGE: usize = 500;

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

async fn open(cfg: &JournalConfig) -> Result<std::sync::Arc<dyn Log>, String> {
    wagate_journal::open_log(cfg)
        .await
        .map_err(|e| e.to_string())
}

/// `wagate journal stats`: depth per partition and dead letters, as JSON.
pub fn stats(cfg: &JournalConfig) -> ExitCode {
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let log = open(cfg).await?;
            let stats = log.stats().await.map_err(|e| e.to_string())?;
            let warning = log.health().await.map_err(|e| e.to_string())?;
            let pending: u64 = stats.partitions.iter().map(|p| p.depth).sum();
            let json = serde_json::json!({
                "backend": cfg.backend.as_str(),
                "prefix": cfg.prefix,
                "stats": {
                    "pending": pending,
                    "dead": stats.dead,
                    "partitions": stats.partitions,
                },
                "warning": warning,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&json).expect("serializable")
            );
            Ok(())
        })
    });
    finish("journal", result)
}

fn finish(cmd: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wagate {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether a dead letter matches the `--filter`s (the id is matched separately).
fn matches(f: &DeadFilter, d: &DeadLetter) -> bool {
    let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    is(&f.target, &d.target)
        && is(&f.kind, &d.kind)
        && is(&f.conversation_key, &d.conversation_key)
        && f.error.as_deref().is_none_or(|e| d.error.contains(e))
}

/// The `dlq list` line of a dead letter: the fields of the embedded listing that a broker
/// keeps.
fn line(id: &str, d: &DeadLetter) -> serde_json::Value {
    let time = |ms: u64| humantime::format_rfc3339_millis(from_unix_ms(ms)).to_string();
    serde_json::json!({
        "id": id,
        "target": d.target,
        "conversation_key": d.conversation_key,
        "dedupe_key": d.dedupe_key,
        "event_id": d.event_id,
        "kind": d.kind,
        "received_at": time(d.received_at_ms),
        "content_type": d.content_type,
        "state": "dead",
        "attempts": d.attempts,
        "last_error": d.error,
        "settled_at": time(d.dead_at_ms),
    })
}

/// Every dead letter matching `filter` (and `id` when given), in bury order, up to `limit`.
async fn select(
    log: &dyn Log,
    filter: &DeadFilter,
    id: Option<&str>,
    limit: usize,
) -> Result<Vec<(DeadId, DeadLetter)>, String> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = log
            .dead(after.clone(), PAGE)
            .await
            .map_err(|e| e.to_string())?;
        for (i, bytes) in &page {
            if id.is_some_and(|want| want != i) {
                continue;
            }
            let d = DeadLetter::decode(bytes).map_err(|e| e.to_string())?;
            if matches(filter, &d) {
                out.push((i.clone(), d));
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        match page.last() {
            Some((last, _)) if page.len() == PAGE => after = Some(last.clone()),
            _ => return Ok(out),
        }
    }
}

/// `wagate dlq list`.
pub fn list(cfg: &JournalConfig, filter: &DeadFilter, limit: usize) -> ExitCode {
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let log = open(cfg).await?;
            let mut out = std::io::stdout().lock();
            for (id, d) in select(&*log, filter, None, limit).await? {
                // A closed pipe (`| head`) ends the listing; it is not an error.
                if writeln!(out, "{}", line(&id, &d)).is_err() {
                    break;
                }
            }
            Ok(())
        })
    });
    finish("dlq", result)
}

/// `wagate dlq show ID`.
pub fn show(cfg: &JournalConfig, id: &str) -> ExitCode {
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let log = open(cfg).await?;
            let found = select(&*log, &DeadFilter::default(), Some(id), 1).await?;
            let (id, d) = found
                .into_iter()
                .next()
                .ok_or_else(|| format!("no dead letter {id}"))?;
            let mut v = line(&id, &d);
            crate::dlq_cmd::add_body(&mut v, &d.body);
            println!(
                "{}",
                serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
            );
            Ok(())
        })
    });
    finish("dlq", result)
}

/// `wagate dlq replay|purge`. Replay appends each dead letter to its conversation's
/// partition (after the entries already there: a log cannot put it back in its original
/// place) and only then removes it from the dead letters, so a crash in between replays it
/// twice rather than losing it.
pub fn write(cfg: &JournalConfig, filter: &DeadFilter, id: Option<&str>, replay: bool) -> ExitCode {
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let log = open(cfg).await?;
            let chosen = select(&*log, filter, id, usize::MAX).await?;
            if let (Some(id), true) = (id, chosen.is_empty()) {
                return Err(format!("no dead letter {id}"));
            }
            let mut n = 0u64;
            for (dead_id, d) in chosen {
                if replay {
                    let p = partition_of(&d.conversation_key, log.partitions());
                    let record = Record::Replay(d).encode();
                    log.append(p, &format!("replay:{dead_id}"), record)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                n += log
                    .remove_dead(std::slice::from_ref(&dead_id))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            log.close().await.map_err(|e| e.to_string())?;
            println!(
                "{} {n} dead-lettered deliver{}",
                if replay { "replayed" } else { "purged" },
                if n == 1 { "y" } else { "ies" }
            );
            Ok(())
        })
    });
    finish("dlq", result)
}
