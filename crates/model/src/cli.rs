//! `wagate inspect`: print the normalized events of raw payload files.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use crate::{Event, Provider, RawRequest, explode};

/// Output format of `wagate inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// One JSON event per line.
    #[default]
    Ndjson,
    /// One aligned line per event, for humans.
    Table,
}

/// `wagate inspect [FILE|-]...`: print the normalized events of raw payload files.
///
/// Exit status: 0 when every file was read (even if a file is not JSON: its `invalid` event is
/// printed), 2 when a path cannot be read (the other files are still printed).
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Payload files, one webhook POST body each; `-` (or no file) reads standard input.
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    pub format: Format,
    /// Provider dialect (meta, wasender, hmac/other); detected from each body when absent.
    #[arg(long)]
    pub provider: Option<Provider>,
    /// Source name written in the events.
    #[arg(long, default_value = "inspect")]
    pub source: String,
}

/// Runs `wagate inspect`.
pub fn run(args: InspectArgs) -> ExitCode {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let stderr = io::stderr();
    let code = inspect(&args, &mut out, &mut stderr.lock());
    ExitCode::from(code)
}

/// `wagate inspect` writing to `out` (events) and `err` (errors); returns the exit status
/// (0, or 2 when a path could not be read).
pub fn inspect(args: &InspectArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let files = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    let mut status = 0;
    if args.format == Format::Table {
        let _ = writeln!(out, "{}", table_header());
    }
    for path in &files {
        let body = match read(path) {
            Ok(b) => b,
            Err(e) => {
                let _ = out.flush();
                let _ = writeln!(err, "wagate inspect: cannot read {}: {e}", path.display());
                status = 2;
                continue;
            }
        };
        let id = if path.as_os_str() == "-" {
            "stdin".to_owned()
        } else {
            path.display().to_string()
        };
        let req = RawRequest {
            id: &id,
            source: &args.source,
            provider: args.provider.unwrap_or_else(|| Provider::detect(&body)),
            received_at: SystemTime::now(),
            body: &body,
        };
        let mut buf = Vec::with_capacity(body.len() + 1024);
        for e in explode(&req) {
            match args.format {
                Format::Ndjson => e.write_ndjson(&mut buf),
                Format::Table => {
                    buf.extend_from_slice(table_row(&e).as_bytes());
                    buf.push(b'\n');
                }
            }
        }
        if out.write_all(&buf).is_err() {
            // Closed pipe (e.g. `| head`): nothing more to say.
            return status;
        }
    }
    let _ = out.flush();
    status
}

fn read(path: &PathBuf) -> io::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut b = Vec::new();
        io::stdin().lock().read_to_end(&mut b)?;
        Ok(b)
    } else {
        std::fs::read(path)
    }
}

fn table_header() -> String {
    format!(
        "{:<8} {:<24} {:<26} {:<22} {:<40} {}",
        "KIND", "TYPE", "FIELD", "TIMESTAMP", "CONVERSATION", "DEDUPE"
    )
}

/// One human line: kind, type, field, timestamp, conversation key, dedupe key (and the reason
/// of `invalid`/`unknown` events).
pub fn table_row(e: &Event<'_>) -> String {
    let mut line = format!(
        "{:<8} {:<24} {:<26} {:<22} {:<40} {}",
        e.kind.as_str(),
        e.type_.as_deref().unwrap_or("-"),
        e.field.as_deref().unwrap_or("-"),
        e.timestamp.as_deref().unwrap_or("-"),
        e.conversation_key,
        e.dedupe_key,
    );
    if let Some(r) = &e.reason {
        line.push_str("  # ");
        line.push_str(r);
    }
    line
}
