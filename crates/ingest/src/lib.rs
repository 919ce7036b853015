//! Ingest: receives webhooks, verifies them, appends them durably to the journal and only then
//! answers `200`.
//!
//! ```text
//! socket ─▶ server::accept (cap) ─▶ server::conn (idle/header watchdog) ─▶ routes
//!          ─▶ verify (raw bytes) ─▶ Journal::append (durable) ─▶ 200 | 401 | 413 | 503
//! ```
//!
//! [`Gateway::bind`] opens both listeners; [`Gateway::run`] serves until the shutdown signal,
//! then drains: `/readyz` fails at once, responses carry `Connection: close` for
//! `shutdown.drain_delay`, accepting stops, in-flight requests finish (bounded by
//! `shutdown.timeout`), idle connections close and the journal is flushed.

pub mod admin;
pub mod config;
pub mod routes;
pub mod server;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wagate_journal::Journal;

pub use config::{ConfigError, ServerConfig, ShutdownConfig, SourceConfig};
pub use server::drain::Drain;

/// Everything ingest needs from the config file.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[shutdown]`.
    pub shutdown: ShutdownConfig,
    /// `[[sources]]`, secrets possibly still as `env:`/`file:` references.
    pub sources: Vec<SourceConfig>,
}

/// Builds the routed sources (resolving secrets) and the standing warnings.
///
/// # Errors
/// A secret reference that cannot be resolved.
pub fn build_sources(
    config: &IngestConfig,
    shared: Arc<routes::Shared>,
) -> Result<(Vec<Arc<routes::Source>>, Vec<String>), ConfigError> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (i, s) in config.sources.iter().enumerate() {
        let key = |f: &str| format!("sources[{i}].{f}");
        let verify_token = s
            .verify_token
            .as_deref()
            .map(|t| config::resolve_secret(&key("verify_token"), t))
            .transpose()?;
        let mut secrets = Vec::new();
        for v in &s.app_secrets {
            secrets.push(config::resolve_secret(&key("app_secrets"), v)?.into_bytes());
        }
        if let Some(v) = &s.secret {
            secrets.push(config::resolve_secret(&key("secret"), v)?.into_bytes());
        }
        if s.insecure_skip_signature {
            let w = format!(
                "source {:?} accepts unsigned webhooks (insecure_skip_signature = true)",
                s.name
            );
            tracing::warn!(
                "{w}: anyone who can reach {} can inject webhooks; never use this in production",
                s.path
            );
            warnings.push(w);
        }
        let auth = routes::Source::auth_for(
            s.provider,
            s.insecure_skip_signature,
            secrets,
            s.header.as_deref(),
            s.algorithm,
            s.encoding,
            s.prefix.as_deref(),
        );
        out.push(Arc::new(routes::Source {
            name: s.name.clone(),
            path: s.path.clone(),
            provider: s.provider,
            verify_token,
            auth,
            metrics: telemetry::SourceMetrics::new(&s.name),
            shared: shared.clone(),
        }));
    }
    Ok((out, warnings))
}

/// A bound gateway, ready to [`run`](Gateway::run).
pub struct Gateway {
    config: IngestConfig,
    journal: Arc<dyn Journal>,
    listener: TcpListener,
    admin: std::net::TcpListener,
    router: axum::Router,
    admin_router: axum::Router,
    drain: Drain,
    metrics: &'static telemetry::Metrics,
}

impl Gateway {
    /// Binds the public and admin listeners (port 0 picks a free port).
    ///
    /// Must be called inside a Tokio runtime.
    ///
    /// # Errors
    /// Bind failures, or unresolvable secrets.
    pub fn bind(config: IngestConfig, journal: Arc<dyn Journal>) -> Result<Self, StartError> {
        let metrics = telemetry::init();
        let drain = Drain::new();
        let shared = Arc::new(routes::Shared::new(
            journal.clone(),
            &config.server,
            drain.clone(),
            metrics,
        ));
        let (sources, warnings) = build_sources(&config, shared)?;
        let router = routes::router(sources);
        let admin_router = admin::router(admin::AdminState {
            journal: journal.clone(),
            drain: drain.clone(),
            warnings: Arc::new(warnings),
        });
        let listener = server::accept::bind(config.server.listen)
            .map_err(|e| StartError::Bind(config.server.listen, e))?;
        let admin = std::net::TcpListener::bind(config.server.admin_listen)
            .map_err(|e| StartError::Bind(config.server.admin_listen, e))?;
        admin
            .set_nonblocking(true)
            .map_err(|e| StartError::Bind(config.server.admin_listen, e))?;
        Ok(Gateway {
            config,
            journal,
            listener,
            admin,
            router,
            admin_router,
            drain,
            metrics,
        })
    }

    /// Address of the webhook listener.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound socket")
    }

    /// Address of the admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr().expect("bound socket")
    }

    /// The drain handle (tests and embedders may trigger it directly).
    pub fn drain(&self) -> Drain {
        self.drain.clone()
    }

    /// Serves until `shutdown` resolves, then drains and flushes the journal.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Gateway {
            config,
            journal,
            listener,
            admin,
            router,
            admin_router,
            drain,
            metrics,
        } = self;
        let timers = server::conn::Timers {
            idle: config.server.idle_timeout,
            header: config.server.header_read_timeout,
            park: Some(server::conn::PARK_AFTER),
        };

        let admin_stop = CancellationToken::new();
        let admin_timers = ADMIN_TIMERS;
        let admin_thread = spawn_admin(admin, admin_router, admin_timers, admin_stop.clone());
        let depth = tokio::spawn(refresh_depth(journal.clone()));

        let tracker = TaskTracker::new();
        let accept = tokio::spawn(server::accept::run(
            listener,
            router,
            timers,
            config.server.max_connections,
            drain.clone(),
            tracker.clone(),
            metrics,
        ));
        tracing::info!(listen = %config.server.listen, idle_timeout = ?config.server.idle_timeout, "serving webhooks");

        shutdown.await;
        tracing::info!(drain_delay = ?config.shutdown.drain_delay, "shutdown requested: readiness fails, draining");
        drain.begin();
        metrics.draining.set(1.0);
        tokio::time::sleep(config.shutdown.drain_delay).await;

        tracing::info!("drain delay over: accepting stopped, finishing in-flight requests");
        drain.stop();
        let _ = accept.await;
        tracker.close();
        if tokio::time::timeout(config.shutdown.timeout, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?config.shutdown.timeout, open = tracker.len(), "shutdown timeout: closing remaining connections");
        }
        depth.abort();
        if let Err(e) = journal.close().await {
            tracing::error!(error = %e, "journal close failed");
        }
        admin_stop.cancel();
        let _ = tokio::task::spawn_blocking(move || admin_thread.join()).await;
        tracing::info!("shutdown complete");
    }
}

fn spawn_admin(
    listener: std::net::TcpListener,
    router: axum::Router,
    timers: server::conn::Timers,
    stop: CancellationToken,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("wagate-admin".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("admin runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("admin listener");
                let drain = Drain::new();
                let tracker = TaskTracker::new();
                let accept = server::accept::run(
                    listener,
                    router,
                    timers,
                    ADMIN_MAX_CONNECTIONS,
                    drain.clone(),
                    tracker.clone(),
                    admin_metrics(),
                );
                tokio::select! {
                    () = accept => {}
                    () = stop.cancelled() => {}
                }
                drain.stop();
                tracker.close();
                let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
            });
        })
        .expect("spawn admin thread")
}

/// Admin connections come from probes and scrapers, not from a proxy pool: short timers so
/// silent connections cannot hold the listener's slots for long.
const ADMIN_TIMERS: server::conn::Timers = server::conn::Timers {
    idle: Duration::from_secs(10),
    header: Duration::from_secs(2),
    park: None,
};

/// Connection slots of the admin listener.
const ADMIN_MAX_CONNECTIONS: usize = 1024;

/// The admin listener on its own, with the same connection loop and timers as the public one
/// (for `serve --role dispatch`, which has no webhook listener).
pub struct AdminServer {
    addr: SocketAddr,
    stop: CancellationToken,
    thread: std::thread::JoinHandle<()>,
}

impl AdminServer {
    /// Binds `server.admin_listen` and serves `/healthz`, `/readyz`, `/metrics` on its own thread.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn start(server: &ServerConfig, state: admin::AdminState) -> Result<Self, StartError> {
        telemetry::init();
        let bind_err = |e| StartError::Bind(server.admin_listen, e);
        let listener = std::net::TcpListener::bind(server.admin_listen).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let timers = server::conn::Timers {
            idle: server.idle_timeout,
            header: server.header_read_timeout,
            park: None,
        };
        let stop = CancellationToken::new();
        let thread = spawn_admin(listener, admin::router(state), timers, stop.clone());
        Ok(AdminServer { addr, stop, thread })
    }

    /// Bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the listener and waits for its thread.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::task::spawn_blocking(move || self.thread.join()).await;
    }
}

/// Admin connections are not counted with the public ones.
fn admin_metrics() -> &'static telemetry::Metrics {
    static ADMIN: std::sync::OnceLock<telemetry::Metrics> = std::sync::OnceLock::new();
    ADMIN.get_or_init(telemetry::Metrics::detached)
}

async fn refresh_depth(journal: Arc<dyn Journal>) {
    let states = ["pending", "leased", "done", "dead"]
        .map(|s| metrics::gauge!("wagate_journal_requests", "state" => s));
    let oldest = metrics::gauge!("wagate_journal_oldest_pending_age_seconds");
    loop {
        if let Ok(stats) = journal.stats().await {
            for (g, v) in states
                .iter()
                .zip([stats.pending, stats.leased, stats.done, stats.dead])
            {
                g.set(v as f64);
            }
            oldest.set(stats.oldest_pending_age_secs.unwrap_or(0) as f64);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// A config value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}
