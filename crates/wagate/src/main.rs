//! `wagate`: one binary, subcommands for the gateway and its operator tools.
//!
//! Exit codes: 0 success, 1 failure at run time (or doctor findings), 2 usage or config error.

mod broker_cmd;
mod config;
mod dlq_cmd;
mod journal_cmd;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc gives freed memory back to the OS; with idle connections parked (their hyper
/// buffers freed) that keeps RSS low under many idle keep-alive connections (bench/idle-rss.sh).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "wagate",
    version,
    about = "WhatsApp webhook gateway: verify, journal durably, acknowledge fast, deliver in order"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: receive webhooks, journal them durably, answer 200.
    Serve(serve::ServeArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect the journal (works while the server runs).
    #[command(subcommand)]
    Journal(journal_cmd::JournalCommand),
    /// The dead-letter queue of dispatch: list, show, replay, purge.
    #[command(subcommand)]
    Dlq(dlq_cmd::DlqCommand),
    /// Print the normalized events of raw webhook payload files.
    Inspect(wagate_model::cli::InspectArgs),
    /// Diagnose proxy set-ups: lint manifests, explain proxy logs.
    #[command(subcommand)]
    Doctor(wagate_doctor::cli::DoctorCommand),
    /// Send WhatsApp-shaped webhook load to a local endpoint.
    Loadgen(wagate_loadgen::cli::LoadgenArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective config (defaults + file + WAGATE_* env), secrets masked.
    Print {
        /// Config file (TOML).
        #[arg(long, short, env = "WAGATE_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Config(ConfigCommand::Print { config }) => {
            match config::load(config.as_deref(), &[]) {
                Ok(cfg) => {
                    print!("{}", config::print(&cfg));
                    ExitCode::SUCCESS
                }
                Err(e) => config_error(&e),
            }
        }
        Command::Journal(cmd) => journal_cmd::run(cmd),
        Command::Dlq(cmd) => dlq_cmd::run(cmd),
        Command::Inspect(args) => wagate_model::cli::run(args),
        Command::Doctor(cmd) => wagate_doctor::cli::run(cmd),
        Command::Loadgen(args) => wagate_loadgen::cli::run(args),
    }
}

/// Prints a config error and returns exit code 2.
fn config_error(message: &str) -> ExitCode {
    eprintln!("wagate: invalid configuration: {message}");
    ExitCode::from(2)
}
