//! The contract of a partitioned broker log ([`Log`], `docs/journal.md` "Broker backends") as
//! executable checks, one `async fn` per clause, run unchanged against every broker backend.
//! A backend's tests implement [`LogFactory`] and expand
//! [`log_conformance!`](crate::log_conformance). Each clause opens its own namespace; opening
//! one namespace twice gives two independent clients (two replicas) over the same storage.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::log::{DeadLetter, Entry, Log, Record};
use crate::{JournalError, Request};

/// Opens clients of broker logs for the clauses.
#[async_trait::async_trait]
pub trait LogFactory: Send + Sync {
    /// A client of the log named `ns` with `partitions` partitions. `ns` is new for each
    /// clause run (the factory may add its own prefix); opening it again gives another
    /// client over the same storage. Dropping a client must behave like its process dying
    /// (no release of held partitions).
    async fn open(&self, ns: &str, partitions: u32) -> Arc<dyn Log>;
}

/// Lease length used by the holding clauses.
pub const TTL: Duration = Duration::from_millis(1500);

fn ns(clause: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{clause}{nanos:x}")
}

/// Request record number `n` with a body of `len` bytes (binary, not UTF-8, when `len > 1`).
pub fn record(n: u64, len: usize) -> Bytes {
    let body: Vec<u8> = (0..len).map(|i| ((i as u64 + n) % 256) as u8).collect();
    Record::Request(Request {
        id: format!("req-{n:06}"),
        source: "meta".into(),
        received_at: crate::log::from_unix_ms(1_767_225_600_000 + n),
        body: Bytes::from(body),
        content_type: Some("application/json".into()),
        signature: None,
        peer: None,
        valid_json: true,
    })
    .encode()
}

fn id_of(e: &Entry) -> String {
    match Record::decode(&e.record).expect("decodable record") {
        Record::Request(r) => r.id,
        Record::Replay(d) => d.event_id,
    }
}

/// Reads partition `p` until `n` entries came or 10 s passed.
async fn read_n(log: &dyn Log, p: u32, owner: &str, n: usize) -> Vec<Entry> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        let got = log
            .read(p, owner, n - out.len(), Duration::from_millis(200))
            .await
            .expect("read");
        out.extend(got);
    }
    out
}

/// Holds `p` for `owner`, retrying until `within` has passed.
async fn hold_within(log: &dyn Log, p: u32, owner: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if log.hold(p, owner, TTL).await.expect("hold") {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Appends land in their partition only, come back byte-identical (a 3 MB binary body too:
/// Meta's maximum) and in append order.
pub async fn appends_come_back_in_order_per_partition(f: &dyn LogFactory) {
    let log = f.open(&ns("order"), 2).await;
    let mut want: [Vec<Bytes>; 2] = [Vec::new(), Vec::new()];
    for n in 0..40u64 {
        let len = if n == 7 {
            3 * 1024 * 1024
        } else {
            10 + n as usize
        };
        let rec = record(n, len);
        let p = (n % 2) as u32;
        log.append(p, &format!("m{n}"), rec.clone())
            .await
            .expect("append");
        want[p as usize].push(rec);
    }
    for p in 0..2u32 {
        assert!(log.hold(p, "a", TTL).await.expect("hold"), "free partition");
        let got = read_n(&*log, p, "a", 20).await;
        let got: Vec<Bytes> = got.into_iter().map(|e| e.record).collect();
        assert_eq!(got.len(), 20, "partition {p}: every entry once");
        assert!(
            got == want[p as usize],
            "partition {p}: entries byte-identical, in append order"
        );
        let more = log
            .read(p, "a", 10, Duration::from_millis(300))
            .await
            .expect("read");
        assert!(more.is_empty(), "an entry is returned once per holding");
    }
}

/// A held partition cannot be taken; renewing keeps it, `release` frees it, and a holder
/// that dies (client dropped, no release) loses it within its ttl.
pub async fn holding_is_exclusive_and_ends_with_the_holder(f: &dyn LogFactory) {
    let name = ns("hold");
    let a = f.open(&name, 1).await;
    let b = f.open(&name, 1).await;
    assert!(a.hold(0, "a", TTL).await.expect("hold"));
    assert!(!b.hold(0, "b", TTL).await.expect("hold"), "held by a");
    tokio::time::sleep(TTL / 2).await;
    assert!(a.hold(0, "a", TTL).await.expect("renew"), "a renews");
    tokio::time::sleep(TTL * 3 / 4).await;
    assert!(!b.hold(0, "b", TTL).await.expect("hold"), "renewed");
    a.release(0, "a").await.expect("release");
    assert!(
        hold_within(&*b, 0, "b", Duration::from_secs(2)).await,
        "free after release"
    );
    assert!(!a.hold(0, "a", TTL).await.expect("hold"), "held by b now");
    drop(b);
    assert!(
        hold_within(&*a, 0, "a", TTL * 4).await,
        "a dead holder loses the partition"
    );
}

/// After a takeover the new holder first gets what the old one never acknowledged, in order,
/// marked redelivered, then new entries; acknowledged entries never come back.
pub async fn takeover_redelivers_unacked_entries_first(f: &dyn LogFactory) {
    let name = ns("takeover");
    let a = f.open(&name, 1).await;
    for n in 0..10 {
        a.append(0, &format!("m{n}"), record(n, 50))
            .await
            .expect("append");
    }
    assert!(a.hold(0, "a", TTL).await.expect("hold"));
    let first = read_n(&*a, 0, "a", 10).await;
    assert_eq!(first.len(), 10);
    assert!(first.iter().all(|e| e.deliveries == 1), "first delivery");
    for e in &first[..3] {
        a.ack(0, "a", &e.id).await.expect("ack");
    }
    a.ack(0, "a", &first[5].id).await.expect("ack");
    drop(a);
    let b = f.open(&name, 1).await;
    for n in 10..14 {
        b.append(0, &format!("m{n}"), record(n, 50))
            .await
            .expect("append");
    }
    assert!(
        hold_within(&*b, 0, "b", TTL * 4).await,
        "takes over the dead holder's partition"
    );
    let got = read_n(&*b, 0, "b", 10).await;
    let ids: Vec<String> = got.iter().map(id_of).collect();
    let want: Vec<String> = [3, 4, 6, 7, 8, 9, 10, 11, 12, 13]
        .iter()
        .map(|n| format!("req-{n:06}"))
        .collect();
    assert_eq!(ids, want, "unacked first, in order, acked ones never again");
    assert!(
        got[..6].iter().all(|e| e.deliveries >= 2),
        "redeliveries are marked"
    );
    assert!(got[6..].iter().all(|e| e.deliveries == 1), "new entries");
    for e in &got {
        b.ack(0, "b", &e.id).await.expect("ack");
    }
    b.release(0, "b").await.expect("release");
    let c = f.open(&name, 1).await;
    assert!(hold_within(&*c, 0, "c", TTL * 4).await);
    let rest = c
        .read(0, "c", 10, Duration::from_millis(500))
        .await
        .expect("read");
    assert!(rest.is_empty(), "everything was acknowledged");
}

/// `claim`, made by the partition's holder: a new key is taken, the same tag may claim again,
/// another tag may not until the ttl passed; concurrent claims of one key: exactly one wins;
/// claims survive a takeover by another client (the window is durable).
pub async fn claims_are_atomic_durable_and_expire(f: &dyn LogFactory) {
    let name = ns("claim");
    let a = f.open(&name, 1).await;
    assert!(a.hold(0, "a", TTL).await.expect("hold"));
    let short = vec!["msg:wamid.E".to_string()];
    let ms = Duration::from_millis;
    assert_eq!(
        a.claim(0, &short, "r0", ms(1000)).await.expect("claim"),
        [true]
    );
    assert_eq!(
        a.claim(0, &short, "r9", ms(1000)).await.expect("claim"),
        [false]
    );
    tokio::time::sleep(ms(1700)).await;
    assert_eq!(
        a.claim(0, &short, "r9", ms(1000)).await.expect("claim"),
        [true],
        "free again after the window"
    );
    let ttl = Duration::from_secs(120);
    let keys = vec!["msg:wamid.A".to_string(), "st:wamid.B:read".to_string()];
    assert_eq!(
        a.claim(0, &keys, "r1", ttl).await.expect("claim"),
        [true, true]
    );
    assert_eq!(
        a.claim(0, &keys, "r1", ttl).await.expect("claim"),
        [true, true],
        "a redelivery of the same request may claim again"
    );
    let race = vec!["msg:wamid.RACE".to_string()];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let log = a.clone();
        let key = race.clone();
        tasks.spawn(async move { log.claim(0, &key, &format!("t{i}"), ttl).await });
    }
    let mut wins = 0;
    while let Some(r) = tasks.join_next().await {
        if r.expect("task").expect("claim")[0] {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "exactly one concurrent claim wins");
    drop(a);
    let b = f.open(&name, 1).await;
    assert!(hold_within(&*b, 0, "b", TTL * 4).await, "takeover");
    let mixed = vec!["msg:wamid.A".to_string(), "msg:wamid.C".to_string()];
    assert_eq!(
        b.claim(0, &mixed, "r2", ttl).await.expect("claim"),
        [false, true],
        "a duplicate from another request, after a takeover"
    );
    assert_eq!(b.claim(0, &race, "x", ttl).await.expect("claim"), [false]);
    assert_eq!(
        b.claim(0, &keys[1..], "r1", ttl).await.expect("claim"),
        [true],
        "the same request redelivered to the new holder"
    );
}

fn dead_letter(n: u32) -> DeadLetter {
    DeadLetter {
        target: "crm".into(),
        conversation_key: "101:155".into(),
        dedupe_key: format!("msg:wamid.{n}"),
        event_id: format!("req:{n}"),
        kind: "message".into(),
        received_at_ms: 1_767_225_600_000,
        dead_at_ms: 1_767_225_700_000,
        attempts: n,
        error: "http_400".into(),
        content_type: Some("application/json".into()),
        signature: None,
        body: Bytes::from(vec![0, 255, n as u8]),
    }
}

/// Dead letters are kept in bury order, paged by id, removed by id, and counted.
pub async fn dead_letters_are_listed_in_order_and_removed(f: &dyn LogFactory) {
    let log = f.open(&ns("dead"), 1).await;
    for n in 0..5 {
        log.bury(dead_letter(n).encode()).await.expect("bury");
    }
    let page1 = log.dead(None, 2).await.expect("dead");
    let page2 = log.dead(Some(page1[1].0.clone()), 10).await.expect("dead");
    let all: Vec<DeadLetter> = page1
        .iter()
        .chain(&page2)
        .map(|(_, b)| DeadLetter::decode(b).expect("decode"))
        .collect();
    assert_eq!(all, (0..5).map(dead_letter).collect::<Vec<_>>());
    let gone = log
        .remove_dead(&[page1[0].0.clone(), page2[1].0.clone()])
        .await
        .expect("remove");
    assert_eq!(gone, 2);
    let left: Vec<u32> = log
        .dead(None, 10)
        .await
        .expect("dead")
        .iter()
        .map(|(_, b)| DeadLetter::decode(b).expect("decode").attempts)
        .collect();
    assert_eq!(left, [1, 2, 4]);
    assert_eq!(log.stats().await.expect("stats").dead, 3);
}

/// `stats` counts stored, unacknowledged entries per partition.
pub async fn stats_count_unacked_entries(f: &dyn LogFactory) {
    let log = f.open(&ns("stats"), 2).await;
    for n in 0..5 {
        log.append(0, &format!("m{n}"), record(n, 20))
            .await
            .expect("append");
    }
    log.append(1, "m9", record(9, 20)).await.expect("append");
    let wait_depth = |want: [u64; 2]| {
        let log = log.clone();
        async move {
            // Some brokers count asynchronously; give them a moment.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let s = log.stats().await.expect("stats");
                let got = [s.partitions[0].depth, s.partitions[1].depth];
                if got == want || Instant::now() > deadline {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(wait_depth([5, 1]).await, [5, 1]);
    assert!(log.hold(0, "a", TTL).await.expect("hold"));
    let got = read_n(&*log, 0, "a", 5).await;
    log.ack(0, "a", &got[0].id).await.expect("ack");
    log.ack(0, "a", &got[1].id).await.expect("ack");
    assert_eq!(wait_depth([3, 1]).await, [3, 1], "acked entries are gone");
}

/// Appends from many tasks over two clients are all stored exactly once.
pub async fn concurrent_appends_are_all_stored(f: &dyn LogFactory) {
    let name = ns("many");
    let a = f.open(&name, 1).await;
    let b = f.open(&name, 1).await;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..20u64 {
        let log = if t % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move {
            for i in 0..10u64 {
                let n = t * 100 + i;
                log.append(0, &format!("m{n}"), record(n, 100))
                    .await
                    .expect("append");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
    assert!(a.hold(0, "a", TTL).await.expect("hold"));
    let got = read_n(&*a, 0, "a", 200).await;
    let ids: HashSet<String> = got.iter().map(id_of).collect();
    assert_eq!((got.len(), ids.len()), (200, 200), "all stored, once");
}

/// After `close`, appends fail with `Closed`.
pub async fn append_after_close_fails(f: &dyn LogFactory) {
    let log = f.open(&ns("close"), 1).await;
    log.append(0, "m0", record(0, 10)).await.expect("append");
    assert!(log.health().await.is_ok());
    log.close().await.expect("close");
    match log.append(0, "m1", record(1, 10)).await {
        Err(JournalError::Closed) => {}
        other => panic!("append after close: want Closed, got {other:?}"),
    }
}

/// Expands to one `#[tokio::test]` per clause. `$factory` is an expression of a type
/// implementing [`LogFactory`], evaluated once per test.
#[macro_export]
macro_rules! log_conformance {
    ($factory:expr) => {
        $crate::log_conformance!(@clauses $factory;
            appends_come_back_in_order_per_partition,
            holding_is_exclusive_and_ends_with_the_holder,
            takeover_redelivers_unacked_entries_first,
            claims_are_atomic_durable_and_expire,
            dead_letters_are_listed_in_order_and_removed,
            stats_count_unacked_entries,
            concurrent_appends_are_all_stored,
            append_after_close_fails,
        );
    };
    (@clauses $factory:expr; $($clause:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $clause() {
                let factory = $factory;
                $crate::log_conformance::$clause(&factory).await;
            }
        )+
    };
}
