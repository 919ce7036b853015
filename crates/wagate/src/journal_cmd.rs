//! `wagate journal stats|export`: read the journal file directly, also while the server runs.

use std::path::PathBuf;
use std::process::ExitCode;

/// `wagate journal` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum JournalCommand {
    /// Counts by state, oldest pending age, size on disk (JSON).
    Stats {
        /// Config file (TOML) naming the journal.
        #[arg(long, short, env = "WAGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Every stored request as NDJSON: id, seq, source, received_at, state, body (base64).
    Export {
        /// Config file (TOML) naming the journal.
        #[arg(long, short, env = "WAGATE_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Runs a journal subcommand.
pub fn run(cmd: JournalCommand) -> ExitCode {
    let _ = cmd;
    eprintln!("wagate journal: not available yet");
    ExitCode::from(2)
}
