//! A keep-alive pool of HTTP/1.1 connections, reused the way a reverse proxy reuses upstream
//! connections: last-released first, closed ones dropped and replaced on checkout, and a request
//! on a connection the server closes mid-flight fails (no transparent resend).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::stats::ErrorKind;

type Sender = SendRequest<Full<Bytes>>;

/// Connection pool for one target address. At most `size` requests are in flight.
pub struct Pool {
    addr: std::net::SocketAddr,
    idle: Mutex<Vec<Sender>>,
    permits: std::sync::Arc<Semaphore>,
    connect_timeout: Duration,
    /// Connections opened so far.
    pub opened: AtomicU64,
    /// Pooled connections found closed by the server while idle (replaced on checkout).
    pub closed_idle: AtomicU64,
}

/// A connection checked out for one request; give it back with [`Pool::release`].
pub struct Lease {
    /// The request handle.
    pub sender: Sender,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    /// A pool of up to `size` connections to `addr`.
    pub fn new(addr: std::net::SocketAddr, size: usize, connect_timeout: Duration) -> Self {
        Self {
            addr,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: std::sync::Arc::new(Semaphore::new(size.max(1))),
            connect_timeout,
            opened: AtomicU64::new(0),
            closed_idle: AtomicU64::new(0),
        }
    }

    /// Waits for a free slot; returns its permit (the slot stays reserved while held).
    pub async fn slot(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed.
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("pool semaphore is never closed")
    }

    fn pop_idle(&self) -> Option<Sender> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Checks out a live connection for a held slot: the most recently released idle one, or a
    /// new one when none is idle or the idle ones were closed by the server.
    ///
    /// # Errors
    /// [`ErrorKind::Connect`] when a new connection cannot be made within the timeout.
    pub async fn checkout(&self, permit: OwnedSemaphorePermit) -> Result<Lease, ErrorKind> {
        while let Some(mut sender) = self.pop_idle() {
            // A proxy notices an upstream FIN on an idle cached connection and drops it; only a
            // close racing the reuse slips through (that race is what burst-idle measures).
            if sender.is_closed() {
                self.closed_idle.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if is_ready(&mut sender).await {
                return Ok(Lease {
                    sender,
                    _permit: permit,
                });
            }
            self.closed_idle.fetch_add(1, Ordering::Relaxed);
        }
        let sender = self.connect().await?;
        Ok(Lease {
            sender,
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<Sender, ErrorKind> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.addr))
            .await
            .map_err(|_| ErrorKind::Connect)?
            .map_err(|_| ErrorKind::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ErrorKind::Connect)?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        // The connection task ends when the server closes or the sender is dropped.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Returns a connection after a complete response; dropped if it can't carry another request.
    pub fn release(&self, lease: Lease) {
        if !lease.sender.is_closed() {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(lease.sender);
        }
    }
}

/// True when the connection can take a request; false when it is closed.
async fn is_ready(sender: &mut Sender) -> bool {
    // An idle pooled connection becomes ready as soon as its task has seen the last response
    // end, or fails once closed; the timeout only guards against a stuck connection.
    matches!(
        tokio::time::timeout(Duration::from_secs(1), sender.ready()).await,
        Ok(Ok(()))
    )
}
