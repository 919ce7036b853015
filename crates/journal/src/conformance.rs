//! The journal contract as executable checks (`docs/journal.md`), one `async fn` per clause,
//! for any backend. A backend's tests implement [`Factory`] and expand
//! [`journal_conformance!`](crate::journal_conformance), which makes one `#[tokio::test]` per
//! clause. Each clause asks the factory for fresh, empty storage and panics with a message
//! naming the broken rule.
//!
//! Time-based clauses use leases and delays of a few hundred milliseconds, so a backend's
//! clock resolution must be finer than that (all of ours use milliseconds).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::{Journal, JournalError, Request, Seq, Settlement, State};

/// A stored request as seen by an independent reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The request, `received_at` at millisecond precision.
    pub request: Request,
    /// Its state.
    pub state: State,
    /// Reason, when dead-lettered.
    pub dead_reason: Option<String>,
}

/// One journal under test with its own storage.
#[async_trait::async_trait]
pub trait Subject: Send + Sync {
    /// The journal under test.
    fn journal(&self) -> Arc<dyn Journal>;
    /// Reads `seq` through a new connection that shares nothing with [`Subject::journal`]
    /// (for the embedded backend: a fresh read-only SQLite connection). `None` if absent.
    async fn read_fresh(&self, seq: Seq) -> Result<Option<Record>, JournalError>;
}

/// Makes subjects over fresh, empty storage.
#[async_trait::async_trait]
pub trait Factory: Send + Sync {
    /// A new subject; nothing else uses its storage.
    async fn create(&self) -> Box<dyn Subject>;
}

/// Lease length used by the time-based clauses.
pub const SHORT_LEASE: Duration = Duration::from_millis(300);
const LONG_LEASE: Duration = Duration::from_secs(60);

/// A deterministic request: `n` picks the id and a body of `len` bytes (not valid UTF-8 when
/// `len > 1`: byte values run through 0..=255).
pub fn sample(n: u64, len: usize) -> Request {
    let body: Vec<u8> = (0..len)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(n) as u8)
        .collect();
    Request {
        id: format!("0190c8e0-0000-7000-8000-{n:012}"),
        source: "meta".into(),
        received_at: UNIX_EPOCH + Duration::from_millis(1_750_000_000_000 + n),
        body: Bytes::from(body),
        content_type: Some("application/json".into()),
        signature: Some(format!("x-hub-signature-256: sha256={n:064x}")),
        peer: Some("127.0.0.1:40000".into()),
        valid_json: n % 2 == 0,
    }
}

fn ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// Compares everything, `received_at` at millisecond precision.
fn assert_same(got: &Request, want: &Request, what: &str) {
    assert_eq!(
        got.body.len(),
        want.body.len(),
        "{what}: body length differs"
    );
    assert!(got.body == want.body, "{what}: body bytes differ");
    assert_eq!(got.id, want.id, "{what}: id");
    assert_eq!(got.source, want.source, "{what}: source");
    assert_eq!(
        ms(got.received_at),
        ms(want.received_at),
        "{what}: received_at (ms)"
    );
    assert_eq!(got.content_type, want.content_type, "{what}: content_type");
    assert_eq!(got.signature, want.signature, "{what}: signature");
    assert_eq!(got.peer, want.peer, "{what}: peer");
    assert_eq!(got.valid_json, want.valid_json, "{what}: valid_json");
}

async fn append(j: &dyn Journal, r: Request) -> Seq {
    j.append(r).await.expect("append").seq
}

async fn lease_seqs(j: &dyn Journal, max: usize, lease_for: Duration) -> Vec<Seq> {
    j.lease(max, lease_for)
        .await
        .expect("lease")
        .iter()
        .map(|l| l.seq)
        .collect()
}

/// `append` returns only once a fresh, independent reader sees the request.
pub async fn append_is_readable_by_a_fresh_reader(f: &dyn Factory) {
    let s: Arc<dyn Subject> = Arc::from(f.create().await);
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let want = sample(n, 512);
                let seq = append(&*s.journal(), want.clone()).await;
                let got = s
                    .read_fresh(seq)
                    .await
                    .expect("read")
                    .expect("appended request not visible to a fresh reader");
                assert_same(&got.request, &want, "fresh read after append");
                assert_eq!(got.state, State::Pending, "a new request is pending");
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

/// Bodies come back byte-identical: empty, binary/non-UTF-8, and 3 MB (Meta's maximum), both
/// through a fresh reader and through `lease`.
pub async fn bodies_round_trip_byte_identical(f: &dyn Factory) {
    let s = f.create().await;
    let j = s.journal();
    let mut binary = sample(1, 0);
    binary.body = Bytes::from_static(b"\xff\xfe\x00\x01{\"not\":\"utf8\x80\"}\r\n\x00");
    binary.content_type = None;
    binary.signature = None;
    binary.peer = None;
    let mut empty = sample(2, 0);
    empty.valid_json = false;
    let big = sample(3, 3_000_000);
    let all = [binary, empty, big];
    let mut seqs = Vec::new();
    for r in &all {
        seqs.push(append(&*j, r.clone()).await);
    }
    for (seq, want) in seqs.iter().zip(&all) {
        let got = s.read_fresh(*seq).await.expect("read").expect("stored");
        assert_same(&got.request, want, "fresh read");
    }
    let leased = j.lease(10, LONG_LEASE).await.expect("lease");
    assert_eq!(
        leased.len(),
        all.len(),
        "every appended request is leasable"
    );
    for (l, want) in leased.iter().zip(&all) {
        assert_same(&l.request, want, "leased copy");
    }
}

/// Lease hands out requests in append order, oldest first, across several lease calls.
pub async fn lease_order_is_append_order(f: &dyn Factory) {
    let s = f.create().await;
    let j = s.journal();
    let mut appended = Vec::new();
    for n in 0..50 {
        appended.push(append(&*j, sample(n, 64)).await);
    }
    let mut w = appended.clone();
    w.sort_unstable();
    assert_eq!(w, appended, "seqs increase in append order");
    let mut leased = Vec::new();
    for max in [1, 7, 20, 100] {
        leased.extend(lease_seqs(&*j, max, LONG_LEASE).await);
    }
    assert_eq!(leased, appended, "lease order is append order");
}

/// A leased request is not leased again while its lease runs; once it expires it is leased
/// again with `attempt` + 1 (at-least-once).
pub async fn leased_request_is_not_leased_again_until_its_lease_expires(f: &dyn Factory) {
    let s = f.create().await;
    let j = s.journal();
    let seq = append(&*j, sample(1, 100)).await;
    let first = j.lease(10, SHORT_LEASE).await.expect("lease");
    assert_eq!(
        first.iter().map(|l| (l.seq, l.attempt)).collect::<Vec<_>>(),
        vec![(seq, 1)]
    );
    assert!(
        lease_seqs(&*j, 10, SHORT_LEASE).await.is_empty(),
        "leased twice during its lease"
    );
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(150)).await;
    let again = j.lease(10, LONG_LEASE).await.expect("lease");
    assert_eq!(
        again.iter().map(|l| (l.seq, l.attempt)).collect::<Vec<_>>(),
        vec![(seq, 2)],
        "expired lease"
    );
    assert!(
        lease_seqs(&*j, 10, LONG_LEASE).await.is_empty(),
        "leased during the second lease"
    );
}

/// `Retry { after }` hides the request until `after` has passed, then it is leased again;
/// other requests are not held back by it.
pub async fn retry_hides_the_request_until_after(f: &dyn Factory) {
    let s = f.create().await;
    let j = s.journal();
    let a = append(&*j, sample(1, 10)).await;
    assert_eq!(lease_seqs(&*j, 1, LONG_LEASE).await, vec![a]);
    let b = append(&*j, sample(2, 10)).await;
    j.settle(
        a,
        Settlement::Retry {
            after: Duration::from_millis(400),
        },
    )
    .await
    .expect("settle retry");
    assert_eq!(
        lease_seqs(&*j, 10, LONG_LEASE).await,
        vec![b],
        "retrying request leased before its time"
    );
    assert_eq!(
        s.read_fresh(a).await.expect("read").expect("stored").state,
        State::Pending
    );
    tokio::time::sleep(Duration::from_millis(550)).await;
    let l = j.lease(10, LONG_LEASE).await.expect("lease");
    assert_eq!(
        l.iter().map(|l| (l.seq, l.attempt)).collect::<Vec<_>>(),
        vec![(a, 2)],
        "due retry"
    );
}

/// `DeadLetter` keeps its reason and the request is never leased again, even after its
/// lease would have expired.
pub async fn dead_letter_keeps_its_reason_and_is_never_leased_again(f: &dyn Factory) {
    let s = f.create().await;
    let j = s.journal();
    let seq = append(&*j, sample(1, 10)).await;
    assert_eq!(lease_seqs(&*j, 1, SHORT_LEASE).await, vec![seq]);
    j.settle(
        seq,
        Settlement::DeadLetter {
            reason: "http_400: rejected".into(),
        },
    )
    .await
    .expect("settle");
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(150)).await;
    assert!(
        lease_seqs(&*j, 10, LONG_LEASE).await.is_empty(),
        "dead-lettered request leased"
    );
    let r = s
        .read_fresh(seq)
        .await
        .expect("read")
        .expect("dead-lettered requests are kept");
    assert_eq!(r.state, State::Dead);
    assert_eq!(r.dead_reason.as_deref(), Some("http_400: rejected"));
    // A late settle (e.g. from a holder whose lease had expired) does not revive it.
    j.settle(
        seq,
        Settlement::Retry {
            after: Duration::ZERO,
        },
    )
    .await
    .expect("late settle");
    assert!(
        lease_seqs(&*j, 10, LONG_LEASE).await.is_empty(),
        "late retry revived a dead request"
    );
}

/// `Done` is final: never leased again, even after the lease time or a late `Retry`.
pub async fn done_is_never_leased_again(f: &dyn Factory) {
    let s = f.create().await;
    let j = s.journal();
    let seq = append(&*j, sample(1, 10)).await;
    assert_eq!(lease_seqs(&*j, 1, SHORT_LEASE).await, vec![seq]);
    j.settle(seq, Settlement::Done).await.expect("settle");
    j.settle(
        seq,
        Settlement::Retry {
            after: Duration::ZERO,
        },
    )
    .await
    .expect("late settle");
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(150)).await;
    assert!(
        lease_seqs(&*j, 10, LONG_LEASE).await.is_empty(),
        "done request leased again"
    );
    if let Some(r) = s.read_fresh(seq).await.expect("read") {
        assert_eq!(r.state, State::Done);
    }
}

/// Settling a sequence number the journal never issued is `NotFound`.
pub async fn settle_of_an_unknown_seq_is_not_found(f: &dyn Factory) {
    let s = f.create().await;
    let j = s.journal();
    let seq = append(&*j, sample(1, 10)).await;
    let bogus = seq + 1_000_000;
    match j.settle(bogus, Settlement::Done).await {
        Err(JournalError::NotFound(n)) => assert_eq!(n, bogus),
        other => panic!("settle of unknown seq: {other:?}"),
    }
}

/// Appends from many concurrent tasks all succeed, get distinct seqs and are all stored.
pub async fn concurrent_appends_get_distinct_seqs_and_are_all_stored(f: &dyn Factory) {
    let s: Arc<dyn Subject> = Arc::from(f.create().await);
    let tasks: Vec<_> = (0..64u64)
        .map(|t| {
            let j = s.journal();
            tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0..20 {
                    let n = t * 1000 + i;
                    out.push((n, append(&*j, sample(n, 700)).await));
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let distinct: HashSet<Seq> = all.iter().map(|(_, seq)| *seq).collect();
    assert_eq!(distinct.len(), all.len(), "two appends got the same seq");
    for (n, seq) in &all {
        let got = s
            .read_fresh(*seq)
            .await
            .expect("read")
            .expect("appended request missing");
        assert_same(&got.request, &sample(*n, 700), "concurrent append");
    }
    let stats = s.journal().stats().await.expect("stats");
    assert_eq!(stats.pending, all.len() as u64);
}

/// After `close()`, `append` fails with `Closed` and `health` reports it; data appended
/// before stays readable.
pub async fn append_after_close_fails_with_closed(f: &dyn Factory) {
    let s = f.create().await;
    let j = s.journal();
    let seq = append(&*j, sample(1, 10)).await;
    j.close().await.expect("close");
    match j.append(sample(2, 10)).await {
        Err(JournalError::Closed) => {}
        other => panic!("append after close: {other:?}"),
    }
    assert!(
        matches!(j.health().await, Err(JournalError::Closed)),
        "health after close"
    );
    assert!(
        s.read_fresh(seq).await.expect("read").is_some(),
        "data appended before close is kept"
    );
}

/// `stats` counts every state exactly, and reports the oldest open request's age.
pub async fn stats_counts_match(f: &dyn Factory) {
    let s = f.create().await;
    let j = s.journal();
    assert_eq!(
        j.stats().await.expect("stats").total,
        0,
        "fresh journal is empty"
    );
    let mut seqs = Vec::new();
    for n in 0..10 {
        let mut r = sample(n, 32);
        r.received_at = SystemTime::now() - Duration::from_secs(120);
        seqs.push(append(&*j, r).await);
    }
    let leased = lease_seqs(&*j, 6, LONG_LEASE).await;
    assert_eq!(leased, seqs[..6]);
    j.settle(seqs[0], Settlement::Done).await.expect("settle");
    j.settle(seqs[1], Settlement::Done).await.expect("settle");
    j.settle(
        seqs[2],
        Settlement::DeadLetter {
            reason: "invalid_json".into(),
        },
    )
    .await
    .expect("settle");
    j.settle(
        seqs[3],
        Settlement::Retry {
            after: Duration::from_secs(60),
        },
    )
    .await
    .expect("settle");
    let st = j.stats().await.expect("stats");
    assert_eq!(
        (st.total, st.pending, st.leased, st.done, st.dead),
        (10, 5, 2, 2, 1),
        "stats (total, pending, leased, done, dead): {st:?}"
    );
    let age = st.oldest_pending_age_secs.expect("oldest pending age");
    assert!(
        (119..=180).contains(&age),
        "oldest pending age {age}s, want about 120 s"
    );
    assert!(j.health().await.is_ok(), "healthy journal");
}

/// Retention never removes open or dead-lettered requests (it may remove `Done` ones).
pub async fn prune_keeps_open_and_dead_requests(f: &dyn Factory) {
    let s = f.create().await;
    let j = s.journal();
    let seqs: Vec<Seq> = {
        let mut v = Vec::new();
        for n in 0..4 {
            v.push(append(&*j, sample(n, 16)).await);
        }
        v
    };
    assert_eq!(lease_seqs(&*j, 3, LONG_LEASE).await, seqs[..3]);
    j.settle(seqs[0], Settlement::Done).await.expect("settle");
    j.settle(seqs[1], Settlement::DeadLetter { reason: "x".into() })
        .await
        .expect("settle");
    j.prune(Duration::ZERO).await.expect("prune");
    for (seq, state) in [
        (seqs[1], State::Dead),
        (seqs[2], State::Leased),
        (seqs[3], State::Pending),
    ] {
        let r = s
            .read_fresh(seq)
            .await
            .expect("read")
            .expect("kept by prune");
        assert_eq!(r.state, state);
    }
}

/// Expands to one `#[tokio::test]` per conformance clause. `$factory` is an expression of a
/// type implementing [`Factory`], evaluated once per test.
///
/// ```ignore
/// wagate_journal::journal_conformance!(MyFactory::new());
/// ```
#[macro_export]
macro_rules! journal_conformance {
    ($factory:expr) => {
        $crate::journal_conformance!(@tests $factory;
            append_is_readable_by_a_fresh_reader,
            bodies_round_trip_byte_identical,
            lease_order_is_append_order,
            leased_request_is_not_leased_again_until_its_lease_expires,
            retry_hides_the_request_until_after,
            dead_letter_keeps_its_reason_and_is_never_leased_again,
            done_is_never_leased_again,
            settle_of_an_unknown_seq_is_not_found,
            concurrent_appends_get_distinct_seqs_and_are_all_stored,
            append_after_close_fails_with_closed,
            stats_counts_match,
            prune_keeps_open_and_dead_requests,
        );
    };
    (@tests $factory:expr; $($clause:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $clause() {
                let factory = $factory;
                $crate::conformance::$clause(&factory).await;
            }
        )+
    };
}
