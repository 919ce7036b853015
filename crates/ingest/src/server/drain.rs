//! Drain state shared by the listener, every connection and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

/// Two-step shutdown: first *draining* (readiness fails, responses carry `Connection: close`),
/// then *stopped* (no more accepts; connections finish in-flight work and close).
#[derive(Clone, Default)]
pub struct Drain {
    draining: Arc<AtomicBool>,
    stop: CancellationToken,
}

impl Drain {
    /// A fresh, serving state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts draining: `/readyz` answers 503 from now on.
    pub fn begin(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether draining has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Stops accepting and asks every connection to finish.
    pub fn stop(&self) {
        self.begin();
        self.stop.cancel();
    }

    /// Resolves once [`Drain::stop`] was called.
    pub fn stopped(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }
}
