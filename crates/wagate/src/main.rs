//! `wagate`: one binary, subcommands for the gateway and its operator tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "wagate", version, about = "WhatsApp webhook gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the normalized events of raw webhook payload files.
    Inspect(wagate_model::cli::InspectArgs),
    /// Diagnose proxy set-ups: lint manifests, explain proxy logs.
    #[command(subcommand)]
    Doctor(wagate_doctor::cli::DoctorCommand),
    /// Send WhatsApp-shaped webhook load to a local endpoint.
    Loadgen(wagate_loadgen::cli::LoadgenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect(args) => wagate_model::cli::run(args),
        Command::Doctor(cmd) => wagate_doctor::cli::run(cmd),
        Command::Loadgen(args) => wagate_loadgen::cli::run(args),
    }
}
