//! Live progress on stderr: an indicatif bar on a terminal, plain lines otherwise.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Progress;
use crate::run::RunState;

/// Handle of the progress task.
pub struct Handle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Handle {
    /// Stops the display and waits for its last update.
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn line(state: &RunState) -> String {
    let r = &state.recorder;
    let done = r.done.load(Ordering::Relaxed);
    let ok = r.ok.load(Ordering::Relaxed);
    format!(
        "requests={done} ok={ok} failed={} in_flight={}",
        done - ok,
        r.sent.load(Ordering::Relaxed) - done
    )
}

/// Starts the display for `mode`; `total` is the request bound when known.
pub(crate) fn start(mode: Progress, state: Arc<RunState>, total: Option<u64>) -> Handle {
    if mode == Progress::Quiet {
        return Handle {
            stop: None,
            task: None,
        };
    }
    let (tx, mut rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let bar = (mode == Progress::Bar).then(|| {
            let bar = match total {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new_spinner(),
            };
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        let tick = if bar.is_some() {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
        loop {
            let stop = tokio::select! {
                _ = interval.tick() => false,
                _ = &mut rx => true,
            };
            match &bar {
                Some(bar) => {
                    bar.set_position(state.recorder.deliveries.load(Ordering::Relaxed));
                    bar.set_message(line(&state));
                }
                None => eprintln!(
                    "[{:>6.1}s] {}",
                    started.elapsed().as_secs_f64(),
                    line(&state)
                ),
            }
            if stop {
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                return;
            }
        }
    });
    Handle {
        stop: Some(tx),
        task: Some(task),
    }
}
