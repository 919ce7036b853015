//! Circuit breaker of one target: after `threshold` consecutive failed attempts the target is
//! paused for `cooldown`; then exactly one probe attempt goes out: success closes the breaker,
//! failure opens it for another (doubled, capped at 16 × cooldown) period. While open,
//! deliveries wait in the journal instead of burning attempts.

use std::time::{Duration, Instant};

/// Breaker state, also the value of the `wagate_dispatch_breaker_state` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Deliveries flow.
    Closed = 0,
    /// Paused until the cool-down ends.
    Open = 1,
    /// One probe attempt in flight or allowed.
    HalfOpen = 2,
}

/// Per-target breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    opened: u32,
    until: Option<Instant>,
    probing: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold,
            cooldown,
            failures: 0,
            opened: 0,
            until: None,
            probing: false,
        }
    }

    /// Current state at `now`.
    pub fn state(&self, now: Instant) -> State {
        match self.until {
            None => State::Closed,
            Some(t) if now < t => State::Open,
            Some(_) => State::HalfOpen,
        }
    }

    /// How many new attempts may start now, given `inflight` running and `concurrency`.
    pub fn permits(&self, now: Instant, inflight: usize, concurrency: usize) -> usize {
        match self.state(now) {
            State::Closed => concurrency.saturating_sub(inflight),
            State::Open => 0,
            State::HalfOpen => usize::from(inflight == 0 && !self.probing),
        }
    }

    /// When an open breaker allows its probe.
    pub fn reopens_at(&self) -> Option<Instant> {
        self.until
    }

    /// Marks an attempt started (in half-open state it is the probe).
    pub fn started(&mut self, now: Instant) {
        if self.state(now) == State::HalfOpen {
            self.probing = true;
        }
    }

    /// Records an attempt's result; returns the new state when it changed.
    pub fn record(&mut self, ok: bool, now: Instant) -> Option<State> {
        let before = self.state(now);
        if ok {
            self.failures = 0;
            self.opened = 0;
            self.until = None;
            self.probing = false;
        } else {
            self.failures = self.failures.saturating_add(1);
            if self.probing || (before == State::Closed && self.failures >= self.threshold) {
                self.opened = (self.opened + 1).min(5);
                self.until = Some(now + self.cooldown * (1 << (self.opened - 1)));
                self.probing = false;
            }
        }
        let after = self.state(now);
        (after != before).then_some(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_probes_and_closes() {
        let t0 = Instant::now();
        let cd = Duration::from_millis(100);
        let mut b = Breaker::new(3, cd);
        assert_eq!(b.permits(t0, 0, 8), 8);
        b.record(false, t0);
        b.record(false, t0);
        assert_eq!(b.state(t0), State::Closed);
        assert_eq!(b.record(false, t0), Some(State::Open));
        assert_eq!(b.permits(t0, 0, 8), 0);
        // Late failures of attempts started before the trip do not extend the pause.
        b.record(false, t0);
        let t1 = t0 + cd;
        assert_eq!(b.state(t1), State::HalfOpen);
        assert_eq!(b.permits(t1, 0, 8), 1);
        b.started(t1);
        assert_eq!(b.permits(t1, 1, 8), 0);
        // A failed probe reopens for twice the cool-down.
        b.record(false, t1);
        assert_eq!(b.state(t1 + cd), State::Open);
        let t2 = t1 + cd * 2;
        assert_eq!(b.permits(t2, 0, 8), 1);
        b.started(t2);
        assert_eq!(b.record(true, t2), Some(State::Closed));
        assert_eq!(b.permits(t2, 0, 8), 8);
    }
}
