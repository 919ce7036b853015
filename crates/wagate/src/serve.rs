//! `wagate serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

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
    rt.block_on(async move {
        let journal = match wagate_journal::open(&cfg.journal) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(path = %cfg.journal.path.display(), error = %e, "cannot open journal");
                return ExitCode::FAILURE;
            }
        };
        let ingest = wagate_ingest::IngestConfig { server: cfg.server.clone(), shutdown: cfg.shutdown.clone(), sources: cfg.sources.clone() };
        let gateway = match wagate_ingest::Gateway::bind(ingest, journal) {
            Ok(g) => g,
            Err(wagate_ingest::StartError::Config(e)) => return crate::config_error(&e.to_string()),
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            webhook = %gateway.local_addr(),
            admin = %gateway.admin_addr(),
            journal = %cfg.journal.path.display(),
            durability = ?cfg.journal.durability,
            "wagate started"
        );
        gateway.run(shutdown_signal()).await;
        ExitCode::SUCCESS
    })
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
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}
