//! `wagate journal stats|export`: read the journal file directly, also while the server runs
//! (SQLite WAL readers do not block the writer). Broker journals: `crate::broker_cmd`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use wagate_journal::embedded::Reader;

/// `wagate journal` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum JournalCommand {
    /// Counts by state, oldest pending age and size on disk, as JSON.
    Stats {
        /// Config file (TOML) naming the journal.
        #[arg(long, short, env = "WAGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Every stored request as NDJSON: seq, id, source, received_at, state, body (base64), ...
    Export {
        /// Config file (TOML) naming the journal.
        #[arg(long, short, env = "WAGATE_CONFIG")]
        config: Option<PathBuf>,
        /// Only requests with a sequence number above this one.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

/// Runs a journal subcommand.
pub fn run(cmd: JournalCommand) -> ExitCode {
    let (JournalCommand::Stats { config } | JournalCommand::Export { config, .. }) = &cmd;
    let cfg = match crate::config::load_unvalidated(config.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => return crate::config_error(&e),
    };
    if cfg.journal.backend != wagate_journal::Backend::Embedded {
        return match cmd {
            JournalCommand::Stats { .. } => crate::broker_cmd::stats(&cfg.journal),
            JournalCommand::Export { .. } => {
                eprintln!(
                    "wagate journal export: reads the embedded journal file; journal.backend = {} is read with the broker's own tools",
                    cfg.journal.backend.as_str()
                );
                ExitCode::from(2)
            }
        };
    }
    let path = &cfg.journal.path;
    if !path.exists() {
        eprintln!(
            "wagate journal: no journal at {} (journal.path)",
            path.display()
        );
        return ExitCode::from(2);
    }
    let reader = match Reader::open(path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wagate journal: cannot open {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let result = match cmd {
        JournalCommand::Stats { .. } => reader.stats().map(|stats| {
            let json = serde_json::json!({ "path": path, "stats": stats });
            println!(
                "{}",
                serde_json::to_string_pretty(&json).expect("serializable")
            );
        }),
        JournalCommand::Export { after, .. } => {
            let stdout = std::io::stdout();
            let mut out = PipeWriter {
                inner: std::io::BufWriter::new(stdout.lock()),
                closed: false,
            };
            let result = reader.export_ndjson(after, &mut out).map(|_| {
                let _ = out.flush();
            });
            // `| head` closing the pipe early is not a journal error.
            if out.closed { Ok(()) } else { result }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wagate journal: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Stdout writer that remembers whether the reader went away (`EPIPE`).
struct PipeWriter<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> Write for PipeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner
            .write(buf)
            .inspect_err(|e| self.closed |= e.kind() == std::io::ErrorKind::BrokenPipe)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner
            .flush()
            .inspect_err(|e| self.closed |= e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}
