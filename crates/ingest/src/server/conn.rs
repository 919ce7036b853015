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
}

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

    /// When the watchdog should look again, and which timer that is.
    fn deadline(&self, timers: Timers) -> Option<(Instant, CloseReason)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.header_started.load(Ordering::Acquire) {
            0 => Some((
                self.at(self.idle_since.load(Ordering::Acquire)) + timers.idle,
                CloseReason::IdleTimeout,
            )),
            started => Some((
                self.at(started - 1) + timers.header,
                CloseReason::HeaderTimeout,
            )),
        }
    }
}

pin_project! {
    /// Socket wrapper that starts the header timer on the first byte of a request.
    struct TrackedIo {
        #[pin]
        inner: TcpStream,
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
        let res = this.inner.poll_read(cx, buf);
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
        notify: Notify::new(),
        metrics,
    });
    metrics.connections_open.increment(1.0);
    metrics.connections_idle.increment(1.0);

    let io = TokioIo::new(TrackedIo {
        inner: stream,
        shared: shared.clone(),
    });
    let svc_shared = shared.clone();
    let svc_drain = drain.clone();
    let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        svc_shared.request_started();
        let guard = InFlight(svc_shared.clone());
        req.extensions_mut().insert(PeerAddr(peer));
        let draining = svc_drain.clone();
        let fut = router.clone().oneshot(req.map(Body::new));
        async move {
            let mut resp = match fut.await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            // While draining, tell the proxy not to reuse this connection.
            if draining.is_draining() {
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, std::convert::Infallible>(resp.map(|inner| TrackedBody {
                inner,
                _guard: guard,
            }))
        }
    });

    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(256 * 1024)
        .serve_connection(io, service);
    let mut conn = Box::pin(conn);

    let mut stopping = false;
    let reason = loop {
        let deadline = shared.deadline(timers);
        let stop = drain.stopped();
        tokio::select! {
            res = conn.as_mut() => {
                break match res {
                    Ok(()) if stopping => CloseReason::Drain,
                    Ok(()) => CloseReason::Peer,
                    Err(e) if e.is_incomplete_message() || e.is_closed() => CloseReason::Peer,
                    Err(_) => CloseReason::Error,
                };
            }
            () = shared.notify.notified() => {}
            () = sleep_until_opt(deadline.map(|d| d.0)) => {
                if let Some((at, reason)) = shared.deadline(timers)
                    && at <= Instant::now()
                {
                    break reason;
                }
            }
            () = stop, if !stopping => {
                stopping = true;
                // Idle keep-alive connections close at once; in-flight ones finish with
                // `connection: close`.
                conn.as_mut().graceful_shutdown();
                if shared.in_flight.load(Ordering::Acquire) == 0 && shared.header_started.load(Ordering::Acquire) == 0 {
                    break CloseReason::Drain;
                }
            }
        }
    };
    // Dropping the connection closes the socket and ends any request still in flight.
    drop(conn);
    metrics.connections_idle.decrement(1.0);
    metrics.connections_open.decrement(1.0);
    metrics.close(reason);
}

fn sleep_until_opt(deadline: Option<Instant>) -> impl Future<Output = ()> {
    async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    }
}
