//! Driving a run: scheduling per pattern, sending, retrying, stopping.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, header};
use http_body_util::{BodyExt, Full};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::config::{LoadConfig, Pattern, RetryPolicy};
use crate::payload::{Generator, PayloadError};
use crate::pool::Pool;
use crate::progress;
use crate::sign::Signer;
use crate::stats::{ConnectionSummary, ErrorKind, Outcome, Recorder, Summary};
use crate::target::{Target, TargetError};

/// Why a run could not start. Failures of individual requests are counted, never returned.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Bad or refused target.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// Payload directory or template problem.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// Inconsistent settings.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// One body ready to send, signature included; retries send these exact bytes again.
struct Prepared {
    body: Bytes,
    signature: Option<(HeaderName, HeaderValue)>,
}

/// State shared by the scheduler, request tasks and the progress display.
pub(crate) struct RunState {
    target: Target,
    pool: Pool,
    retry_pool: Pool,
    pub(crate) recorder: Recorder,
    timeout: Duration,
    retry: Option<RetryPolicy>,
    user_agent: HeaderValue,
    tracker: TaskTracker,
}

/// Runs the load described by `cfg` until its bounds are reached, waits for in-flight requests
/// and retries, and returns the summary.
///
/// # Errors
/// [`LoadError`] when the target, payloads or settings are unusable; nothing is sent then.
pub async fn run_load(cfg: LoadConfig) -> Result<Summary, LoadError> {
    validate(&cfg)?;
    let target = Target::resolve(&cfg.url, cfg.allow_remote).await?;
    let mut generator = Generator::new(&cfg.payloads, cfg.statuses_per_message)?;
    let gaps = cfg.pattern.gaps();
    let shared = Arc::new(RunState {
        pool: Pool::new(target.addr, cfg.connections, cfg.timeout),
        retry_pool: Pool::new(target.addr, cfg.connections, cfg.timeout),
        target,
        recorder: Recorder::new(&gaps),
        timeout: cfg.timeout,
        retry: cfg.retry.clone(),
        user_agent: HeaderValue::from_static(match cfg.signer {
            // Meta's webhook deliveries identify themselves this way.
            Signer::Meta { .. } => "facebookexternalua",
            _ => concat!("wagate-loadgen/", env!("CARGO_PKG_VERSION")),
        }),
        tracker: TaskTracker::new(),
    });
    let bounds = cfg.effective_bounds();
    let started = Instant::now();
    let deadline = bounds.duration.map(|d| started + d);
    let progress = progress::start(cfg.progress, Arc::clone(&shared), bounds.requests);

    let mut sched = Scheduler {
        shared: &shared,
        generator: &mut generator,
        signer: &cfg.signer,
        limit: bounds.requests,
        scheduled: 0,
    };
    match cfg.pattern {
        Pattern::Steady { rate } => sched.steady(rate, deadline).await,
        Pattern::Burst { size, every } => sched.burst(size, every, deadline).await,
        Pattern::BurstIdle { size, .. } => {
            sched.burst_idle(size, &gaps, deadline, bounds.sweeps).await
        }
    }
    shared.tracker.close();
    shared.tracker.wait().await;
    let elapsed = started.elapsed();
    progress.finish().await;

    let connections = ConnectionSummary {
        pool_size: cfg.connections as u64,
        opened: shared.pool.opened.load(Ordering::Relaxed)
            + shared.retry_pool.opened.load(Ordering::Relaxed),
        closed_idle: shared.pool.closed_idle.load(Ordering::Relaxed)
            + shared.retry_pool.closed_idle.load(Ordering::Relaxed),
    };
    Ok(shared.recorder.summary(
        &cfg.url,
        cfg.pattern.name(),
        elapsed,
        connections,
        cfg.retry.is_some(),
    ))
}

fn validate(cfg: &LoadConfig) -> Result<(), LoadError> {
    let bad = |m: &str| Err(LoadError::Config(m.to_owned()));
    if cfg.connections == 0 {
        return bad("--connections must be at least 1");
    }
    if cfg.signer != Signer::None && cfg.signer.header(b"{}").is_none() {
        return bad("the secret is not a valid header value");
    }
    match &cfg.pattern {
        Pattern::Steady { rate: Some(r) } if !(r.is_finite() && *r > 0.0) => {
            bad("--rate must be a positive number")
        }
        Pattern::Burst { size: 0, .. } | Pattern::BurstIdle { size: 0, .. } => {
            bad("--size must be at least 1")
        }
        Pattern::Burst { every, .. } if every.is_zero() => bad("--every must be positive"),
        Pattern::BurstIdle {
            gap_from,
            gap_to,
            step,
            ..
        } if gap_from > gap_to || (step.is_zero() && gap_from != gap_to) => {
            bad("--gap A..B needs A <= B and a positive --step")
        }
        _ => Ok(()),
    }
}

/// Sleeps until `at`, or returns false at once when that is past the deadline.
async fn sleep_until_within(at: Instant, deadline: Option<Instant>) -> bool {
    if deadline.is_some_and(|d| at > d) {
        if let Some(d) = deadline {
            tokio::time::sleep_until(d).await;
        }
        return false;
    }
    tokio::time::sleep_until(at).await;
    true
}

struct Scheduler<'a> {
    shared: &'a Arc<RunState>,
    generator: &'a mut Generator,
    signer: &'a Signer,
    limit: Option<u64>,
    scheduled: u64,
}

impl Scheduler<'_> {
    fn exhausted(&self) -> bool {
        self.limit.is_some_and(|l| self.scheduled >= l)
    }

    /// Waits for a pool slot, or `None` when the deadline passes first.
    async fn slot(&self, deadline: Option<Instant>) -> Option<OwnedSemaphorePermit> {
        match deadline {
            Some(d) => tokio::select! {
                p = self.shared.pool.slot() => Some(p),
                () = tokio::time::sleep_until(d) => None,
            },
            None => Some(self.shared.pool.slot().await),
        }
    }

    fn next(&mut self) -> Arc<Prepared> {
        self.scheduled += 1;
        let body = self.generator.next_body();
        self.shared.recorder.delivery(body.messages, body.statuses);
        let signature = self.signer.header(&body.bytes);
        Arc::new(Prepared {
            body: body.bytes,
            signature,
        })
    }

    fn spawn(
        &mut self,
        permit: OwnedSemaphorePermit,
        gap: Option<usize>,
    ) -> tokio::task::JoinHandle<Outcome> {
        let prepared = self.next();
        let shared = Arc::clone(self.shared);
        self.shared
            .tracker
            .spawn(async move { deliver(shared, permit, prepared, gap).await })
    }

    async fn steady(&mut self, rate: Option<f64>, deadline: Option<Instant>) {
        let start = Instant::now();
        while !self.exhausted() {
            if let Some(rate) = rate {
                let due = start + Duration::from_secs_f64(self.scheduled as f64 / rate);
                if !sleep_until_within(due, deadline).await {
                    return;
                }
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
            let Some(permit) = self.slot(deadline).await else {
                return;
            };
            self.spawn(permit, None);
        }
    }

    async fn burst(&mut self, size: u32, every: Duration, deadline: Option<Instant>) {
        let start = Instant::now();
        let mut k: u32 = 0;
        while !self.exhausted() {
            if !sleep_until_within(start + every * k, deadline).await {
                return;
            }
            for _ in 0..size {
                if self.exhausted() {
                    return;
                }
                let Some(permit) = self.slot(deadline).await else {
                    return;
                };
                self.spawn(permit, None);
            }
            k = k.saturating_add(1);
        }
    }

    /// Sends one burst and waits until every request of it has finished; returns how many got
    /// no response (their connections are gone).
    async fn one_burst(&mut self, size: u32, gap: Option<usize>) -> u32 {
        let before = self.shared.pool.closed_idle.load(Ordering::Relaxed);
        let mut burst = JoinSet::new();
        for _ in 0..size {
            if self.exhausted() {
                break;
            }
            // No deadline here: a started burst is always completed so its row is whole.
            let permit = self.shared.pool.slot().await;
            let handle = self.spawn(permit, gap);
            burst.spawn(async move { matches!(handle.await, Ok(Outcome::Error(_)) | Err(_)) });
        }
        let mut lost = 0;
        while let Some(res) = burst.join_next().await {
            lost += u32::from(res.unwrap_or(true));
        }
        if let Some(g) = gap {
            let reconnects = self.shared.pool.closed_idle.load(Ordering::Relaxed) - before;
            self.shared.recorder.burst(g, reconnects);
        }
        lost
    }

    async fn burst_idle(
        &mut self,
        size: u32,
        gaps: &[Duration],
        deadline: Option<Instant>,
        sweeps: Option<u32>,
    ) {
        // The first burst opens the connections; it belongs to no gap.
        let mut lost = self.one_burst(size, None).await;
        let mut done_sweeps = 0;
        while sweeps.is_none_or(|s| done_sweeps < s) {
            for (i, gap) in gaps.iter().enumerate() {
                // Every gap must start with the whole pool just used: connections that died in
                // the last burst are replaced by a warm-up burst that belongs to no gap.
                if lost > 0 && !self.exhausted() {
                    self.one_burst(size, None).await;
                }
                if self.exhausted() || !sleep_until_within(Instant::now() + *gap, deadline).await {
                    return;
                }
                lost = self.one_burst(size, Some(i)).await;
            }
            done_sweeps += 1;
        }
    }
}

/// First attempt of a delivery, then Meta-style redelivery when configured.
/// Returns the outcome of the first attempt.
async fn deliver(
    shared: Arc<RunState>,
    permit: OwnedSemaphorePermit,
    prepared: Arc<Prepared>,
    gap: Option<usize>,
) -> Outcome {
    let outcome = send(&shared, &shared.pool, permit, &prepared, gap).await;
    if outcome.is_ok() {
        shared.recorder.accepted.fetch_add(1, Ordering::Relaxed);
        return outcome;
    }
    let Some(policy) = shared.retry.clone() else {
        return outcome;
    };
    shared.recorder.retry(|r| r.first_try_failed += 1);
    let shared2 = Arc::clone(&shared);
    // Tracked, so the run waits for redeliveries; holds no slot of the main pool while waiting.
    shared
        .tracker
        .spawn(async move { redeliver(shared2, policy, prepared).await });
    outcome
}

/// Re-sends the same bytes with doubling delays until a `200` or the attempts run out.
async fn redeliver(shared: Arc<RunState>, policy: RetryPolicy, prepared: Arc<Prepared>) {
    let mut delay = policy.first_delay;
    for _ in 0..policy.max_attempts {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(policy.max_delay);
        let permit = shared.retry_pool.slot().await;
        shared.recorder.retry(|r| r.resent += 1);
        if send(&shared, &shared.retry_pool, permit, &prepared, None)
            .await
            .is_ok()
        {
            shared.recorder.accepted.fetch_add(1, Ordering::Relaxed);
            shared.recorder.retry(|r| r.eventually_accepted += 1);
            return;
        }
    }
    shared.recorder.retry(|r| r.gave_up += 1);
}

/// One HTTP exchange on a pooled connection; records and returns its outcome.
async fn send(
    shared: &RunState,
    pool: &Pool,
    permit: OwnedSemaphorePermit,
    p: &Prepared,
    gap: Option<usize>,
) -> Outcome {
    shared.recorder.sent.fetch_add(1, Ordering::Relaxed);
    let mut lease = match pool.checkout(permit).await {
        Ok(lease) => lease,
        Err(kind) => {
            shared.recorder.outcome(Outcome::Error(kind), None, gap);
            return Outcome::Error(kind);
        }
    };
    let mut req = Request::post(shared.target.path_and_query.as_str())
        .header(header::HOST, shared.target.authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, shared.user_agent.clone())
        .body(Full::new(p.body.clone()));
    if let (Ok(r), Some((name, value))) = (&mut req, &p.signature) {
        r.headers_mut().insert(name.clone(), value.clone());
    }
    let Ok(req) = req else {
        shared
            .recorder
            .outcome(Outcome::Error(ErrorKind::Other), None, gap);
        return Outcome::Error(ErrorKind::Other);
    };
    let started = Instant::now();
    let exchange = async {
        let resp = lease.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await?;
        Ok::<u16, hyper::Error>(status)
    };
    let (outcome, latency) = match tokio::time::timeout(shared.timeout, exchange).await {
        Ok(Ok(status)) => (Outcome::Status(status), Some(started.elapsed())),
        Ok(Err(e)) => (Outcome::Error(classify(&e)), None),
        Err(_) => (Outcome::Error(ErrorKind::Timeout), None),
    };
    if matches!(outcome, Outcome::Status(_)) {
        pool.release(lease);
    }
    shared.recorder.outcome(outcome, latency, gap);
    outcome
}

/// Maps a hyper client error to an error class; a connection that ended before the response
/// (EOF, RST, broken pipe) is [`ErrorKind::Reset`].
fn classify(e: &hyper::Error) -> ErrorKind {
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return ErrorKind::Reset;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::ConnectionReset | K::BrokenPipe | K::ConnectionAborted | K::UnexpectedEof
            ) {
                return ErrorKind::Reset;
            }
        }
        source = s.source();
    }
    ErrorKind::Other
}
