//! `wagate doctor` command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::finding::Severity;
use crate::manifests::kb::FrontLb;
use crate::manifests::{self, AppOptions};
use crate::{logs, output, units};

/// `wagate doctor manifests|logs`.
#[derive(Debug, Subcommand)]
pub enum DoctorCommand {
    /// Lint Kubernetes YAML (Ingress, ingress-nginx ConfigMap/controller, Service, Deployment,
    /// HPA) against the app's timeouts and limits. Exit 1 on any error finding.
    Manifests(ManifestsArgs),
    /// Explain proxy errors from ingress-nginx/nginx, HAProxy, Envoy/Istio or Traefik logs.
    Logs(LogsArgs),
}

/// App server kinds with known defaults.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AppServer {
    /// Node.js http (<= v25): keep-alive 5 s.
    Node,
    /// Express on Node: keep-alive 5 s, body 100kb.
    Express,
    /// Fastify: keep-alive 72 s, body 1 MiB.
    Fastify,
    /// hyper 1.x with a timer: idle close 30 s.
    Hyper,
    /// axum 0.8 `axum::serve`: no idle close, body 2 MB.
    Axum,
    /// actix-web: keep-alive 5 s, Json 2 MiB.
    Actix,
    /// uvicorn: keep-alive 5 s.
    Uvicorn,
    /// gunicorn: keep-alive 2 s.
    Gunicorn,
    /// Go net/http with zero IdleTimeout/ReadTimeout: no idle close.
    Go,
    /// Tomcat: keep-alive 60 s.
    Tomcat,
}

/// Front load balancers with known defaults.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FrontLbArg {
    /// GCP external Application LB (GFE): backend keep-alive 600 s.
    Gcp,
    /// AWS ALB: idle 60 s.
    Alb,
    /// AWS NLB (L4).
    Nlb,
    /// Azure Application Gateway.
    AzureAppgw,
    /// Cloudflare: origin idle 900 s, read timeout 120 s.
    Cloudflare,
    /// Nothing in front of the ingress.
    None,
}

/// Output format of `manifests`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// Human-readable, grouped by object.
    Text,
    /// `{"findings": [...]}`.
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

/// Output format of `logs`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogsFormat {
    /// Human-readable.
    Text,
    /// `{"primary": ..., "classes": [...]}`.
    Json,
}

/// Lowest severity that makes the run fail (exit 1).
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum FailOn {
    /// Only errors fail.
    Error,
    /// Warnings and errors fail.
    Warn,
}

/// `wagate doctor manifests` arguments.
#[derive(Debug, Args)]
pub struct ManifestsArgs {
    /// YAML files or folders (multi-document; `kind: List` too); `-` reads standard input.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The app's keep-alive idle timeout (`75s`, `75`, or `none` = never closes idle connections).
    #[arg(long, value_parser = parse_idle)]
    pub app_idle_timeout: Option<IdleArg>,
    /// The app's request body limit (`4MiB`, `4m`, `4194304`).
    #[arg(long, value_parser = units::parse_size)]
    pub app_max_body: Option<u64>,
    /// Worst-case time before the app sends response headers (`5s`).
    #[arg(long, value_parser = units::parse_duration)]
    pub handler_max: Option<Duration>,
    /// App server whose known defaults apply (overridden by the other --app-* flags).
    #[arg(long, value_enum)]
    pub app_server: Option<AppServer>,
    /// Load balancer in front of the ingress (or of the app).
    #[arg(long, value_enum)]
    pub front_lb: Option<FrontLbArg>,
    /// Largest webhook body that must pass (default 3 MiB, Meta's maximum).
    #[arg(long, value_parser = units::parse_size)]
    pub payload_size: Option<u64>,
    /// wagate config file (TOML: `[server] idle_timeout`, `max_body`, `ack_timeout`, `[shutdown]`).
    #[arg(long)]
    pub app_config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Lowest severity that fails the run.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
}

/// `--app-idle-timeout` value: `None` means the app never closes idle connections.
#[derive(Debug, Clone, Copy)]
pub struct IdleArg(pub Option<Duration>);

fn parse_idle(s: &str) -> Result<IdleArg, String> {
    if matches!(s, "none" | "never" | "0") {
        return Ok(IdleArg(None));
    }
    units::parse_duration(s).map(|d| IdleArg(Some(d)))
}

/// `wagate doctor logs` arguments.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Log files (any mix of formats); `-` reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = LogsFormat::Text)]
    pub format: LogsFormat,
}

/// Runs `wagate doctor`. Exit codes: 0 clean, 1 findings at or above `--fail-on`, 2 unreadable
/// input or invalid values.
pub fn run(command: DoctorCommand) -> ExitCode {
    match command {
        DoctorCommand::Manifests(args) => run_manifests(args),
        DoctorCommand::Logs(args) => run_logs(args),
    }
}

fn app_options(args: &ManifestsArgs) -> Result<AppOptions, String> {
    let app_config = match &args.app_config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Some((p.display().to_string(), text))
        }
        None => None,
    };
    let server = args.app_server.map(|s| {
        s.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    });
    let front_lb = args.front_lb.map(|l| match l {
        FrontLbArg::Gcp => FrontLb::Gcp,
        FrontLbArg::Alb => FrontLb::Alb,
        FrontLbArg::Nlb => FrontLb::Nlb,
        FrontLbArg::AzureAppgw => FrontLb::AzureAppGw,
        FrontLbArg::Cloudflare => FrontLb::Cloudflare,
        FrontLbArg::None => FrontLb::None,
    });
    Ok(AppOptions {
        idle_timeout: args.app_idle_timeout.map(|i| i.0),
        max_body: args.app_max_body,
        handler_max: args.handler_max,
        server,
        front_lb,
        payload_size: args.payload_size,
        app_config,
    })
}

fn run_manifests(args: ManifestsArgs) -> ExitCode {
    let result = app_options(&args).and_then(|opts| {
        let docs = manifests::load::load_paths(&args.paths).map_err(|e| e.0)?;
        manifests::check_documents(&docs, &opts)
    });
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wagate doctor manifests: {e}");
            return ExitCode::from(2);
        }
    };
    let text = match args.format {
        Format::Text => output::text::render(&report),
        Format::Json => output::json::render(&report) + "\n",
        Format::Sarif => output::sarif::render(&report) + "\n",
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    let threshold = match args.fail_on {
        FailOn::Error => Severity::Error,
        FailOn::Warn => Severity::Warn,
    };
    if report.max_severity().is_some_and(|s| s >= threshold) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn run_logs(args: LogsArgs) -> ExitCode {
    let report = match logs::analyze_paths(&args.files) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wagate doctor logs: {e}");
            return ExitCode::from(2);
        }
    };
    let text = match args.format {
        LogsFormat::Text => logs::report::render_text(&report),
        LogsFormat::Json => logs::report::render_json(&report) + "\n",
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}
