//! `wagate serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;
use std::time::Duration;

use wagate_dispatch::partitioned::PartitionedDispatcher;
use wagate_dispatch::partitioned::route::LogJournal;
use wagate_journal::embedded::Embedded;
use wagate_journal::{
    Appended, Backend, Journal, JournalError, Leased, Request, Seq, Settlement, Stats,
};

use crate::config::{self, LogFormat};

/// `wagate serve` flags; each overrides the config file and environment.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Config file (TOML).
    #[arg(long, short, env = "WAGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Webhook listener address (`server.listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin listener address (`server.admin_listen`).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Journal file of the embedded backend (`journal.path`).
    #[arg(long)]
    journal_path: Option<PathBuf>,
    /// Log format (`log.format`).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// What this process does: `ingest` (receive and journal), `dispatch` (deliver what is
    /// journaled; no public listener) or `all`.
    #[arg(long, value_enum, default_value_t = Role::All)]
    role: Role,
}

/// `wagate serve --role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Receive webhooks and journal them.
    Ingest,
    /// Deliver journaled requests to `[[targets]]`; only the admin listener is opened.
    Dispatch,
    /// Both, in one process (dispatch stops after ingest has drained).
    All,
}

/// Runs the gateway until SIGTERM/SIGINT; a second signal exits at once.
pub fn run(args: ServeArgs) -> ExitCode {
    let mut overrides: Vec<(&str, figment::value::Value)> = Vec::new();
    if let Some(a) = args.listen {
        overrides.push(("server.listen", a.to_string().into()));
    }
    if let Some(a) = args.admin_listen {
        overrides.push(("server.admin_listen", a.to_string().into()));
    }
    if let Some(p) = &args.journal_path {
        overrides.push(("journal.path", p.display().to_string().into()));
    }
    if let Some(f) = args.log_format {
        overrides.push((
            "log.format",
            if f == LogFormat::Json { "json" } else { "text" }.into(),
        ));
    }
    let cfg = match config::load(args.config.as_deref(), &overrides) {
        Ok(cfg) => cfg,
        Err(e) => return crate::config_error(&e),
    };
    init_logging(&cfg.log);

    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wagate")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wagate: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let role = args.role;
    rt.block_on(run_role(cfg, role))
}

/// The dispatcher of the configured backend.
enum Running {
    /// Embedded: one dispatcher per journal file, woken by appends.
    Embedded(wagate_dispatch::Dispatcher),
    /// Broker: partitions shared with the other dispatchers.
    Partitioned(PartitionedDispatcher),
}

impl Running {
    fn waker(&self) -> Option<Arc<tokio::sync::Notify>> {
        match self {
            Running::Embedded(d) => Some(d.waker()),
            Running::Partitioned(_) => None,
        }
    }

    async fn shutdown(self) {
        match self {
            Running::Embedded(d) => d.shutdown().await,
            Running::Partitioned(d) => d.shutdown().await,
        }
    }
}

/// How long `serve` waits for an unreachable broker at start (pods often start before it).
const BROKER_WAIT: Duration = Duration::from_secs(60);

/// Opens the broker journal, retrying while the broker is unreachable for up to
/// [`BROKER_WAIT`]; a refusal that retrying cannot fix (a different partition count) ends it
/// at once.
async fn open_log_patiently(
    cfg: &wagate_journal::JournalConfig,
) -> Result<Arc<dyn wagate_journal::log::Log>, JournalError> {
    let deadline = tokio::time::Instant::now() + BROKER_WAIT;
    let mut wait = Duration::from_millis(500);
    loop {
        match wagate_journal::open_log(cfg).await {
            Ok(l) => return Ok(l),
            // Retrying cannot fix a different partition count or a malformed URL.
            Err(e)
                if ["journal.partitions", "is not"]
                    .iter()
                    .any(|m| e.to_string().contains(m)) =>
            {
                return Err(e);
            }
            Err(e) if tokio::time::Instant::now() + wait < deadline => {
                tracing::warn!(backend = cfg.backend.as_str(), error = %e, retry_in = ?wait, "journal not reachable yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Ingest => "ingest",
        Role::Dispatch => "dispatch",
        Role::All => "all",
    }
}

fn durability_name(d: wagate_journal::Durability) -> &'static str {
    match d {
        wagate_journal::Durability::Fsync => "fsync",
        wagate_journal::Durability::Os => "os",
    }
}

/// This process's holder name in a broker: the host (pod) name, the pid and a random part,
/// so a restarted pod never inherits the holds of its previous life.
fn owner_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "wagate".into());
    format!("{host}-{}-{:08x}", std::process::id(), rand_u32())
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.subsec_nanos() ^ (std::process::id().rotate_left(16))
}

async fn run_role(cfg: config::Config, role: Role) -> ExitCode {
    // The recorder must exist before any metric handle is registered.
    wagate_ingest::telemetry::init();
    if role == Role::Dispatch && cfg.targets.is_empty() {
        return crate::config_error("--role dispatch needs at least one [[targets]] entry");
    }
    let dispatching = role != Role::Ingest && !cfg.targets.is_empty();
    let settings = if dispatching {
        match dispatch_settings(&cfg) {
            Ok(s) => Some(s),
            Err(e) => return crate::config_error(&e),
        }
    } else {
        None
    };
    let embedded_backend = cfg.journal.backend == Backend::Embedded;
    let journal: Arc<dyn Journal>;
    let mut dispatcher = None;
    // Held for the life of the process (embedded only).
    let mut _dispatch_lock = None;
    if embedded_backend {
        let embedded = match Embedded::open(&cfg.journal.path, cfg.journal.durability) {
            Ok(j) => Arc::new(j),
            Err(e) => {
                tracing::error!(path = %cfg.journal.path.display(), error = %e, "cannot open journal");
                return ExitCode::FAILURE;
            }
        };
        journal = embedded.clone();
        if let Some(settings) = settings {
            // One dispatcher per journal file: two would both deliver every event.
            // Ingest-only processes may share the file.
            match lock_dispatch(&cfg.journal.path) {
                Ok(lock) => _dispatch_lock = Some(lock),
                Err(e) => return crate::config_error(&e),
            }
            match wagate_dispatch::Dispatcher::start(settings, embedded.clone(), journal.clone()) {
                Ok(d) => dispatcher = Some(Running::Embedded(d)),
                Err(e) => return crate::config_error(&e.to_string()),
            }
        }
    } else {
        let log = match open_log_patiently(&cfg.journal).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(backend = cfg.journal.backend.as_str(), error = %e, "cannot open journal");
                return ExitCode::FAILURE;
            }
        };
        let providers = source_providers(&cfg);
        journal = Arc::new(LogJournal::new(log.clone(), providers));
        if let Err(e) = journal.health().await {
            tracing::warn!(error = %e, "journal not healthy at start");
        }
        for w in journal.warnings().await {
            tracing::warn!(warning = %w, "journal");
        }
        if let Some(settings) = settings {
            match PartitionedDispatcher::start(settings, log, owner_name(), cfg.journal.hold_ttl) {
                Ok(d) => dispatcher = Some(Running::Partitioned(d)),
                Err(e) => return crate::config_error(&e.to_string()),
            }
        }
    }
    if role == Role::All && cfg.targets.is_empty() {
        tracing::warn!("no [[targets]]: requests are journaled but not delivered");
    }
    let where_ = if embedded_backend {
        cfg.journal.path.display().to_string()
    } else {
        format!("{} {}", cfg.journal.backend.as_str(), cfg.journal.prefix)
    };

    if role == Role::Dispatch {
        if let Err(code) = serve_admin_only(&cfg, journal.clone(), &where_).await {
            if let Some(d) = dispatcher {
                d.shutdown().await;
            }
            let _ = journal.close().await;
            return code;
        }
    } else {
        // Ingest gets a view whose close() is left to us, so the dispatcher can finish first.
        let handover: Arc<dyn Journal> = Arc::new(Handover {
            inner: journal.clone(),
            wake: dispatcher.as_ref().and_then(Running::waker),
        });
        let ingest = wagate_ingest::IngestConfig {
            server: cfg.server.clone(),
            shutdown: cfg.shutdown.clone(),
            sources: cfg.sources.clone(),
        };
        let gateway = match wagate_ingest::Gateway::bind(ingest, handover) {
            Ok(g) => g,
            Err(wagate_ingest::StartError::Config(e)) => {
                return crate::config_error(&e.to_string());
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            webhook = %gateway.local_addr(),
            admin = %gateway.admin_addr(),
            journal = %where_,
            durability = if embedded_backend { durability_name(cfg.journal.durability) } else { "broker" },
            role = role_name(role),
            targets = if dispatcher.is_some() { cfg.targets.len() } else { 0 },
            "wagate started"
        );
        gateway.run(shutdown_signal()).await;
    }
    if let Some(d) = dispatcher {
        d.shutdown().await;
    }
    if let Err(e) = journal.close().await {
        tracing::error!(error = %e, "journal close failed");
    }
    ExitCode::SUCCESS
}

/// `--role dispatch`: only the admin listener (`/healthz`, `/readyz`, `/metrics`), until a signal.
async fn serve_admin_only(
    cfg: &config::Config,
    journal: Arc<dyn Journal>,
    where_: &str,
) -> Result<(), ExitCode> {
    let state = wagate_ingest::admin::AdminState {
        journal,
        drain: wagate_ingest::Drain::new(),
        warnings: Arc::new(Vec::new()),
    };
    let admin = match wagate_ingest::AdminServer::start(&cfg.server, state) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return Err(ExitCode::FAILURE);
        }
    };
    tracing::info!(
        admin = %admin.local_addr(),
        journal = %where_,
        role = role_name(Role::Dispatch),
        targets = cfg.targets.len(),
        "wagate started"
    );
    shutdown_signal().await;
    tracing::info!("shutdown requested: stopping dispatch");
    admin.stop().await;
    Ok(())
}

/// Takes the exclusive dispatch lock of a journal (`<journal>.dispatch.lock`, an OS file lock
/// released when the process exits, also on SIGKILL).
///
/// # Errors
/// When another process holds it.
fn lock_dispatch(journal: &std::path::Path) -> Result<std::fs::File, String> {
    let mut path = journal.as_os_str().to_owned();
    path.push(".dispatch.lock");
    if let Some(dir) = journal.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            format!(
                "journal.path: cannot open {}: {e}",
                std::path::Path::new(&path).display()
            )
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(_) => Err(format!(
            "journal.path: another wagate process already dispatches from {} (one dispatcher per journal; run other instances with --role ingest or give them their own journal.path)",
            journal.display()
        )),
    }
}

/// The dispatcher's settings from the config: secrets resolved, source providers mapped.
fn dispatch_settings(cfg: &config::Config) -> Result<wagate_dispatch::Settings, String> {
    let mut targets = cfg.targets.clone();
    for (i, t) in targets.iter_mut().enumerate() {
        if let Some(s) = &t.secret {
            let key = format!("targets[{i}].secret");
            t.secret =
                Some(wagate_ingest::config::resolve_secret(&key, s).map_err(|e| e.to_string())?);
        }
    }
    Ok(wagate_dispatch::Settings {
        dispatch: cfg.dispatch.clone(),
        targets,
        providers: source_providers(cfg),
    })
}

/// Provider of each `[[sources]]` name.
pub(crate) fn source_providers(
    cfg: &config::Config,
) -> std::collections::HashMap<String, wagate_model::Provider> {
    cfg.sources
        .iter()
        .map(|s| {
            let p = match s.provider {
                wagate_ingest::config::Provider::Meta => wagate_model::Provider::Meta,
                wagate_ingest::config::Provider::Wasender => wagate_model::Provider::Wasender,
                wagate_ingest::config::Provider::Hmac => wagate_model::Provider::Hmac,
            };
            (s.name.clone(), p)
        })
        .collect()
}

/// The journal as ingest sees it: appends wake the dispatcher; `close` is a no-op because
/// `serve` closes the journal itself once the dispatcher has stopped.
struct Handover {
    inner: Arc<dyn Journal>,
    wake: Option<Arc<tokio::sync::Notify>>,
}

#[async_trait::async_trait]
impl Journal for Handover {
    async fn append(&self, request: Request) -> Result<Appended, JournalError> {
        let out = self.inner.append(request).await;
        if let (Ok(_), Some(w)) = (&out, &self.wake) {
            w.notify_one();
        }
        out
    }
    async fn lease(&self, max: usize, lease_for: Duration) -> Result<Vec<Leased>, JournalError> {
        self.inner.lease(max, lease_for).await
    }
    async fn settle(&self, seq: Seq, settlement: Settlement) -> Result<(), JournalError> {
        self.inner.settle(seq, settlement).await
    }
    async fn stats(&self) -> Result<Stats, JournalError> {
        self.inner.stats().await
    }
    async fn health(&self) -> Result<(), JournalError> {
        self.inner.health().await
    }
    async fn warnings(&self) -> Vec<String> {
        self.inner.warnings().await
    }
    async fn prune(&self, older_than: Duration) -> Result<u64, JournalError> {
        self.inner.prune(older_than).await
    }
    async fn close(&self) -> Result<(), JournalError> {
        Ok(())
    }
}

/// Resolves on the first SIGTERM or SIGINT and arms the second one to exit immediately (the
/// journal stays consistent: SQLite's write-ahead log recovers on the next open).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

fn init_logging(log: &config::LogConfig) {
    use tracing_subscriber::EnvFilter;
    // The AMQP client logs every channel the broker closes as an error (including the expected
    // "partition held by another dispatcher") and returned messages with their bytes; the
    // backend reports real failures itself, without contents.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},lapin=off", log.level)));
    // Colours only on a terminal: log collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}
