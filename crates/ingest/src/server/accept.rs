//! The accept loop: a connection cap enforced *before* `accept()`, so at the cap the kernel
//! backlog holds new connections instead of us refusing them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::conn::{self, Timers};
use super::drain::Drain;
use crate::telemetry::Metrics;

/// Kernel accept queue length; holds bursts while we are at `max_connections`.
const BACKLOG: u32 = 4096;

/// Binds a listening socket with `SO_REUSEADDR` (restarts do not wait for TIME_WAIT).
///
/// # Errors
/// When the address cannot be bound.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accepts until the drain stops it; every connection task is tracked by `tracker`.
pub(crate) async fn run(
    listener: TcpListener,
    router: axum::Router,
    timers: Timers,
    max_connections: usize,
    drain: Drain,
    tracker: TaskTracker,
    metrics: &'static Metrics,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("semaphore never closed"),
            () = drain.stopped() => break,
        };
        let (stream, peer) = tokio::select! {
            res = listener.accept() => match res {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE/ENFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = drain.stopped() => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let drain = drain.clone();
        tracker.spawn(async move {
            conn::serve(stream, peer, router, timers, drain, metrics).await;
            drop(permit);
        });
    }
}
