//! One HTTP/1.1 connection with its own watchdog.
//!
//! hyper's `header_read_timeout` doubles as its keep-alive idle timer (hyper >= 1.6), so one knob
//! would set both the slowloris bound and the idle time. Proxies need the idle time *longer* than
//! their upstream keep-alive (nginx `keepalive_timeout` in the `upstream` block) and the header
//! bound short, so we switch hyper's timer off and run our own:
//!
//! - [`TrackedIo`] notes the first byte read while no request is in flight (`header_started`);
//! - the service wrapper counts requests in flight and stamps `idle_since` when the last response
//!   body is dropped;
//! - [`serve`] sleeps until `header_started + header_read_timeout`, else `idle_since +
//!   idle_timeout`, and drops the connection (closing the socket) only when nothing is in flight.
//!
//! A fresh connection starts idle at accept time, which also bounds silent connections and covers
//! hyper's graceful-shutdown gap for connections that never sent a request.
//!
//! Idle connections are *parked*: after [`PARK_AFTER`] without a request we let hyper finish the
//! connection without closing the socket (`poll_without_shutdown`, then `into_parts`), drop its
//! read and write buffers, and wait for the socket to become readable; then a new hyper
//! connection takes over the same socket. A proxy's pool of idle keep-alive connections then costs
//! a socket and a small task each instead of hyper's buffers (see `bench/idle-rss.sh`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::header::{CONNECTION, HeaderValue};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::ServiceExt;

use super::drain::Drain;
use crate::telemetry::{CloseReason, Metrics};

/// Connection timers, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timers {
    pub idle: Duration,
    pub header: Duration,
    /// Park idle connections after this long (`None`: never; the admin listener).
    pub park: Option<Duration>,
}

/// What the watchdog wakes up for.
#[derive(Debug, Clone, Copy)]
enum Wake {
    Park,
    Close(CloseReason),
}

/// Idle time after which a connection gives back hyper's buffers until its next request.
pub(crate) const PARK_AFTER: Duration = Duration::from_secs(2);

/// Peer address of the connection, inserted into every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// State shared between the socket wrapper, the service and the watchdog.
struct Shared {
    base: Instant,
    in_flight: AtomicU32,
    /// Nanoseconds since `base` + 1 when a request head started arriving; 0 when none.
    header_started: AtomicU64,
    /// Nanoseconds since `base` when the connection last became idle.
    idle_since: AtomicU64,
    /// Requests started on this connection (to tell whether one slipped in while parking).
    requests: AtomicU64,
    notify: Notify,
    metrics: &'static Metrics,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        Instant::now().duration_since(self.base).as_nanos() as u64
    }

    fn at(&self, ns: u64) -> Instant {
        self.base + Duration::from_nanos(ns)
    }

    fn request_started(&self) {
        self.requests.fetch_add(1, Ordering::AcqRel);
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.metrics.connections_idle.decrement(1.0);
        }
        self.header_started.store(0, Ordering::Release);
    }

    fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(self.now_ns(), Ordering::Release);
            self.metrics.connections_idle.increment(1.0);
            self.notify.notify_one();
        }
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && self.header_started.load(Ordering::Acquire) == 0
    }

    /// When the watchdog should look again, and what for.
    fn deadline(&self, timers: Timers) -> Option<(Instant, Wake)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.header_started.load(Ordering::Acquire) {
            0 => {
                let idle_since = self.at(self.idle_since.load(Ordering::Acquire));
                let close = idle_since + timers.idle;
                match timers.park {
                    Some(park) if idle_since + park < close => {
                        Some((idle_since + park, Wake::Park))
                    }
                    _ => Some((close, Wake::Close(CloseReason::IdleTimeout))),
                }
            }
            started => Some((
                self.at(started - 1) + timers.header,
                Wake::Close(CloseReason::HeaderTimeout),
            )),
        }
    }
}

pin_project! {
    /// Socket wrapper that starts the header timer on the first byte of a request.
    struct TrackedIo {
        #[pin]
        inner: TcpStream,
        // Bytes hyper had read but not parsed when the connection was parked.
        prefix: bytes::Bytes,
        shared: Arc<Shared>,
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let res = if this.prefix.is_empty() {
            this.inner.poll_read(cx, buf)
        } else {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            Poll::Ready(Ok(()))
        };
        if buf.filled().len() > before
            && this.shared.in_flight.load(Ordering::Acquire) == 0
            && this.shared.header_started.load(Ordering::Acquire) == 0
        {
            this.shared
                .header_started
                .store(this.shared.now_ns() + 1, Ordering::Release);
            this.shared.notify.notify_one();
        }
        res
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Decrements the in-flight count when the response body is done (or dropped).
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

pin_project! {
    /// Response body that holds the in-flight guard until hyper drops it.
    struct TrackedBody {
        #[pin]
        inner: Body,
        _guard: InFlight,
    }
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one accepted connection until the peer closes it, a timer fires with nothing in
/// flight, or the drain finishes it.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    timers: Timers,
    drain: Drain,
    metrics: &'static Metrics,
) {
    let shared = Arc::new(Shared {
        base: Instant::now(),
        in_flight: AtomicU32::new(0),
        header_started: AtomicU64::new(0),
        idle_since: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        notify: Notify::new(),
        metrics,
    });
    metrics.connections_open.increment(1.0);
    metrics.connections_idle.increment(1.0);

    let service = Service {
        shared: shared.clone(),
        drain: drain.clone(),
        router,
        peer,
    };
    let mut io = TrackedIo {
        inner: stream,
        prefix: bytes::Bytes::new(),
        shared: shared.clone(),
    };
    let reason = loop {
        match run_http(io, &service, &shared, timers, &drain).await {
            Ended::Closed(reason) => break reason,
            Ended::Parked(parked) => match park(&parked, &shared, timers, &drain).await {
                Some(reason) => break reason,
                None => io = parked,
            },
        }
    };
    metrics.connections_idle.decrement(1.0);
    metrics.connections_open.decrement(1.0);
    metrics.close(reason);
}

/// How a hyper connection on our socket ended.
enum Ended {
    /// The socket is closed (dropped).
    Closed(CloseReason),
    /// Idle: hyper is gone, the socket stays open.
    Parked(TrackedIo),
}

/// Per-connection service: counts requests in flight, tags the peer address, adds
/// `Connection: close` while draining.
#[derive(Clone)]
struct Service {
    shared: Arc<Shared>,
    drain: Drain,
    router: axum::Router,
    peer: SocketAddr,
}

type ResponseFuture = Pin<
    Box<dyn Future<Output = Result<http::Response<TrackedBody>, std::convert::Infallible>> + Send>,
>;

impl hyper::service::Service<http::Request<Incoming>> for Service {
    type Response = http::Response<TrackedBody>;
    type Error = std::convert::Infallible;
    type Future = ResponseFuture;

    fn call(&self, mut req: http::Request<Incoming>) -> Self::Future {
        self.shared.request_started();
        let guard = InFlight(self.shared.clone());
        req.extensions_mut().insert(PeerAddr(self.peer));
        let draining = self.drain.clone();
        let fut = self.router.clone().oneshot(req.map(Body::new));
        // Boxed so the future is `Unpin`, which `poll_without_shutdown` (parking) requires.
        Box::pin(async move {
            let mut resp = match fut.await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            // While draining, tell the proxy not to reuse this connection.
            if draining.is_draining() {
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(resp.map(|inner| TrackedBody {
                inner,
                _guard: guard,
            }))
        })
    }
}

/// Runs hyper on the socket until it closes or parks.
async fn run_http(
    io: TrackedIo,
    service: &Service,
    shared: &Arc<Shared>,
    timers: Timers,
    drain: &Drain,
) -> Ended {
    let mut conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(256 * 1024)
        .serve_connection(TokioIo::new(io), service.clone());
    let requests_at_start = shared.requests.load(Ordering::Acquire);
    // `Some(n)`: graceful shutdown requested to park, `n` requests seen at that moment.
    let mut parking: Option<u64> = None;
    let mut stopping = false;
    loop {
        let mut timers_now = timers;
        // Only park a connection hyper considers idle (it served a request), and only once.
        if parking.is_some()
            || shared.requests.load(Ordering::Acquire) == requests_at_start
            || stopping
        {
            timers_now.park = None;
        }
        let deadline = shared.deadline(timers_now);
        let stop = drain.stopped();
        tokio::select! {
            res = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                return match res {
                    Ok(()) if parking == Some(shared.requests.load(Ordering::Acquire)) && shared.is_idle() && !stopping => {
                        let parts = conn.into_parts();
                        let mut io = parts.io.into_inner();
                        io.prefix = parts.read_buf;
                        Ended::Parked(io)
                    }
                    Ok(()) if stopping => Ended::Closed(CloseReason::Drain),
                    Ok(()) => Ended::Closed(CloseReason::Peer),
                    Err(e) if e.is_incomplete_message() || e.is_closed() => Ended::Closed(CloseReason::Peer),
                    Err(_) => Ended::Closed(CloseReason::Error),
                };
            }
            () = shared.notify.notified() => {}
            () = sleep_until_opt(deadline.map(|d| d.0)) => {
                match shared.deadline(timers_now) {
                    Some((at, Wake::Close(reason))) if at <= Instant::now() => return Ended::Closed(reason),
                    Some((at, Wake::Park)) if at <= Instant::now() => {
                        // hyper closes an idle keep-alive connection at once; a request that slips
                        // in first is answered with `connection: close` and we close after it.
                        parking = Some(shared.requests.load(Ordering::Acquire));
                        Pin::new(&mut conn).graceful_shutdown();
                    }
                    _ => {}
                }
            }
            () = stop, if !stopping => {
                stopping = true;
                // Idle keep-alive connections close at once; in-flight ones finish with
                // `connection: close`.
                Pin::new(&mut conn).graceful_shutdown();
                if shared.is_idle() {
                    return Ended::Closed(CloseReason::Drain);
                }
            }
        }
    }
}

/// Waits, without any hyper state, until the parked socket has bytes to read (`None`: serve it
/// again), its idle time is over, or the drain stops it.
async fn park(
    io: &TrackedIo,
    shared: &Shared,
    timers: Timers,
    drain: &Drain,
) -> Option<CloseReason> {
    if !io.prefix.is_empty() {
        return None;
    }
    let (deadline, _) = shared.deadline(Timers {
        park: None,
        ..timers
    })?;
    tokio::select! {
        res = io.inner.readable() => match res {
            Ok(()) => None,
            Err(_) => Some(CloseReason::Error),
        },
        () = tokio::time::sleep_until(deadline) => Some(CloseReason::IdleTimeout),
        () = drain.stopped() => Some(CloseReason::Drain),
    }
}

fn sleep_until_opt(deadline: Option<Instant>) -> impl Future<Output = ()> {
    async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    }
}
