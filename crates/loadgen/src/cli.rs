//! `wagate loadgen` command line.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use http::HeaderName;
use wagate_verify::{Algorithm, Encoding};

use crate::config::{Bounds, LoadConfig, Pattern, Progress, RetryPolicy};
use crate::payload::PayloadSource;
use crate::sign::Signer;

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// `A..B` idle-gap range, e.g. `4s..6s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapRange(pub Duration, pub Duration);

fn gap_range(s: &str) -> Result<GapRange, String> {
    let (a, b) = s.split_once("..").ok_or("expected A..B, e.g. 4s..6s")?;
    Ok(GapRange(duration(a.trim())?, duration(b.trim())?))
}

/// Traffic pattern, as a subcommand (`loadgen URL burst --size 8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand, clap::ValueEnum)]
pub enum PatternCmd {
    /// Evenly spaced requests (`--rate R` per second; without it, as fast as the pool allows).
    Steady,
    /// `--size N` requests at once every `--every T`.
    Burst,
    /// Bursts of `--size N` after idle gaps swept over `--gap A..B` in `--step S` increments.
    BurstIdle,
}

/// Signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Provider {
    /// `X-Hub-Signature-256` (HMAC-SHA256 of the body with the app secret).
    Meta,
    /// `X-Webhook-Signature: <secret>` and WasenderAPI-shaped built-in bodies.
    Wasender,
    /// A generic HMAC header (see `--hmac-*`).
    Hmac,
    /// No signature.
    None,
}

/// HMAC digest for `--provider hmac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HmacAlgorithm {
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// Tag encoding for `--provider hmac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HmacEncoding {
    /// Hex.
    Hex,
    /// Standard base64.
    Base64,
}

/// Redelivery behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RetryMode {
    /// Like Meta: re-send what did not get a 200, later, with growing delays.
    Meta,
}

/// `wagate loadgen URL [PATTERN] [OPTIONS]`: send WhatsApp-shaped webhook load to a local endpoint.
#[derive(Debug, clap::Args)]
pub struct LoadgenArgs {
    /// Target URL, e.g. `http://127.0.0.1:8080/webhook` (plain HTTP).
    pub url: String,
    /// Pattern as a subcommand (same as `--pattern`).
    #[command(subcommand)]
    pub command: Option<PatternCmd>,
    /// Pattern (default: steady).
    #[arg(long, value_enum, global = true)]
    pub pattern: Option<PatternCmd>,
    /// steady: requests per second (default: closed loop, as fast as the pool allows).
    #[arg(long, global = true)]
    pub rate: Option<f64>,
    /// burst, burst-idle: requests per burst (default: --connections).
    #[arg(long, global = true)]
    pub size: Option<u32>,
    /// burst: interval between bursts.
    #[arg(long, global = true, value_parser = duration, default_value = "1s")]
    pub every: Duration,
    /// burst-idle: idle gap range `A..B` swept per run.
    #[arg(long, global = true, value_parser = gap_range, default_value = "4s..6s")]
    pub gap: GapRange,
    /// burst-idle: gap increment.
    #[arg(long, global = true, value_parser = duration, default_value = "250ms")]
    pub step: Duration,
    /// burst-idle: complete gap sweeps (default 1 when no other bound is given).
    #[arg(long, global = true)]
    pub sweeps: Option<u32>,
    /// Stop scheduling after this long (e.g. `30s`).
    #[arg(long, global = true, value_parser = duration)]
    pub duration: Option<Duration>,
    /// Stop after this many deliveries (retries come on top). Without any bound: 10000 requests / 60 s.
    #[arg(long, global = true)]
    pub requests: Option<u64>,
    /// Keep-alive connections in the pool (= maximum requests in flight).
    #[arg(long, global = true, default_value_t = 8)]
    pub connections: usize,
    /// Limit for connecting and for one request/response exchange.
    #[arg(long, global = true, value_parser = duration, default_value = "10s")]
    pub timeout: Duration,
    /// Send every `*.json` file of this directory byte-exact instead of the built-in templates.
    #[arg(long, global = true)]
    pub payloads: Option<PathBuf>,
    /// Built-in templates to rotate (comma list of text, interactive, media, location, status, batch, unicode).
    #[arg(long, global = true, value_delimiter = ',')]
    pub templates: Vec<String>,
    /// Status POSTs (sent, delivered, read) after each message, like production traffic.
    #[arg(long, global = true, default_value_t = 0)]
    pub statuses_per_message: u32,
    /// Signature scheme.
    #[arg(long, global = true, value_enum, default_value = "meta")]
    pub provider: Provider,
    /// Secret for the provider (Meta app secret, WasenderAPI webhook secret, HMAC key).
    #[arg(
        long,
        global = true,
        alias = "secret",
        env = "WAGATE_LOADGEN_SECRET",
        hide_env_values = true
    )]
    pub app_secret: Option<String>,
    /// hmac: header name.
    #[arg(long, global = true, default_value = "x-webhook-hmac")]
    pub hmac_header: String,
    /// hmac: digest.
    #[arg(long, global = true, value_enum, default_value = "sha256")]
    pub hmac_algorithm: HmacAlgorithm,
    /// hmac: tag encoding.
    #[arg(long, global = true, value_enum, default_value = "hex")]
    pub hmac_encoding: HmacEncoding,
    /// hmac: text before the tag, e.g. `sha256=`.
    #[arg(long, global = true, default_value = "")]
    pub hmac_prefix: String,
    /// Re-send what did not get a 200, later (`meta`).
    #[arg(long, global = true, value_enum)]
    pub retry: Option<RetryMode>,
    /// retry: first delay, doubled per attempt.
    #[arg(long, global = true, value_parser = duration, default_value = "200ms")]
    pub retry_delay: Duration,
    /// retry: largest delay.
    #[arg(long, global = true, value_parser = duration, default_value = "5s")]
    pub retry_max_delay: Duration,
    /// retry: redeliveries per body before giving up.
    #[arg(long, global = true, default_value_t = 6)]
    pub retry_attempts: u32,
    /// Write the summary as JSON to this file.
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// Exit with status 1 when any request got something other than 200 (or no response).
    #[arg(long, global = true)]
    pub expect_all_200: bool,
    /// Allow targets outside 127.0.0.0/8 and ::1.
    #[arg(long, global = true)]
    pub allow_remote: bool,
    /// No progress display.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

impl LoadgenArgs {
    /// Builds the run configuration.
    ///
    /// # Errors
    /// A usage message for contradictory or missing options.
    pub fn to_config(&self) -> Result<LoadConfig, String> {
        let pattern = match (self.command, self.pattern) {
            (Some(a), Some(b)) if a != b => {
                return Err("pattern given twice with different values".into());
            }
            (a, b) => a.or(b).unwrap_or(PatternCmd::Steady),
        };
        let size = self
            .size
            .unwrap_or(self.connections.try_into().unwrap_or(u32::MAX));
        let pattern = match pattern {
            PatternCmd::Steady => Pattern::Steady { rate: self.rate },
            PatternCmd::Burst => Pattern::Burst {
                size,
                every: self.every,
            },
            PatternCmd::BurstIdle => Pattern::BurstIdle {
                size,
                gap_from: self.gap.0,
                gap_to: self.gap.1,
                step: self.step,
            },
        };
        let secret = || {
            self.app_secret
                .as_ref()
                .map(|s| s.as_bytes().to_vec())
                .ok_or_else(|| "this provider needs --app-secret (or WAGATE_LOADGEN_SECRET); --provider none sends unsigned".to_owned())
        };
        let signer = match self.provider {
            Provider::None => Signer::None,
            Provider::Meta => Signer::Meta {
                app_secret: secret()?,
            },
            Provider::Wasender => Signer::Wasender { secret: secret()? },
            Provider::Hmac => Signer::Hmac {
                header: HeaderName::try_from(self.hmac_header.as_str())
                    .map_err(|e| format!("--hmac-header: {e}"))?,
                algorithm: match self.hmac_algorithm {
                    HmacAlgorithm::Sha256 => Algorithm::Sha256,
                    HmacAlgorithm::Sha512 => Algorithm::Sha512,
                },
                encoding: match self.hmac_encoding {
                    HmacEncoding::Hex => Encoding::Hex,
                    HmacEncoding::Base64 => Encoding::Base64,
                },
                prefix: self.hmac_prefix.clone(),
                secret: secret()?,
            },
        };
        let payloads = match (&self.payloads, self.provider) {
            (Some(dir), _) => PayloadSource::Dir(dir.clone()),
            (None, Provider::Wasender) => PayloadSource::WasenderTemplates,
            (None, _) => PayloadSource::CloudTemplates(self.templates.clone()),
        };
        let progress = if self.quiet {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            Progress::Bar
        } else {
            Progress::Lines
        };
        Ok(LoadConfig {
            url: self.url.clone(),
            allow_remote: self.allow_remote,
            payloads,
            statuses_per_message: self.statuses_per_message,
            signer,
            pattern,
            bounds: Bounds {
                duration: self.duration,
                requests: self.requests,
                sweeps: self.sweeps,
            },
            connections: self.connections,
            timeout: self.timeout,
            retry: self.retry.map(|RetryMode::Meta| RetryPolicy {
                first_delay: self.retry_delay,
                max_delay: self.retry_max_delay,
                max_attempts: self.retry_attempts,
            }),
            progress,
        })
    }
}

/// Runs `wagate loadgen`: 0 on success, 1 when `--expect-all-200` saw a failure, 2 on usage or
/// setup errors (bad URL, refused remote target, unreadable payloads, unwritable `--json`).
pub fn run(args: LoadgenArgs) -> ExitCode {
    let cfg = match args.to_config() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("wagate loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wagate loadgen: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let summary = match runtime.block_on(crate::run_load(cfg)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wagate loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", crate::report::render(&summary));
    if let Some(path) = &args.json {
        let written = serde_json::to_vec_pretty(&summary)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(path, json));
        if let Err(e) = written {
            eprintln!("wagate loadgen: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if args.expect_all_200 && !summary.all_200() {
        eprintln!(
            "wagate loadgen: {} of {} requests did not get a 200",
            summary.requests - summary.ok,
            summary.requests
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
