//! `wagate dlq list|show|replay|purge`: the dead-letter queue of dispatch. `list` and `show`
//! read the journal file read-only; `replay` and `purge` write it (SQLite serialises them with
//! a running server, which picks replayed deliveries up at its next poll).

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use wagate_journal::embedded::{Embedded, Reader};
use wagate_journal::events::{DeadFilter, EventStore};

/// `wagate dlq` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// Dead-lettered deliveries as NDJSON (id, target, conversation, kind, attempts, error, ...).
    List {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        select: Select,
        /// At most this many lines.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// One delivery, with its body, as JSON.
    Show {
        #[command(flatten)]
        common: Common,
        /// Delivery id (from `list`).
        id: String,
    },
    /// Queue dead-lettered deliveries again (due now, attempts reset). They keep their ids,
    /// so each conversation gets them back in the original order.
    Replay {
        #[command(flatten)]
        common: Common,
        /// One delivery id (from `list`).
        id: Option<String>,
        /// Every dead-lettered delivery.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        select: Select,
    },
    /// Delete dead-lettered deliveries.
    Purge {
        #[command(flatten)]
        common: Common,
        /// One delivery id (from `list`).
        id: Option<String>,
        /// Every dead-lettered delivery.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        select: Select,
    },
}

/// Flags every subcommand takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Config file (TOML) naming the journal.
    #[arg(long, short, env = "WAGATE_CONFIG")]
    config: Option<PathBuf>,
}

/// Which dead letters: `--filter key=value`, repeatable (all must match).
#[derive(Debug, clap::Args)]
pub struct Select {
    /// `target=NAME`, `kind=KIND`, `conversation=KEY` or `error=TEXT` (substring of the
    /// last error, e.g. `error=http_4`).
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    filters: Vec<String>,
}

impl Select {
    fn to_filter(&self, id: Option<u64>) -> Result<DeadFilter, String> {
        let mut f = DeadFilter {
            id,
            ..DeadFilter::default()
        };
        for item in &self.filters {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("--filter {item:?}: expected KEY=VALUE"))?;
            let slot = match k {
                "target" => &mut f.target,
                "kind" => &mut f.kind,
                "conversation" => &mut f.conversation_key,
                "error" => &mut f.error,
                _ => {
                    return Err(format!(
                        "--filter {k}: expected target, kind, conversation or error"
                    ));
                }
            };
            *slot = Some(v.to_owned());
        }
        Ok(f)
    }
}

/// Runs a dlq subcommand.
pub fn run(cmd: DlqCommand) -> ExitCode {
    let (DlqCommand::List { common, .. }
    | DlqCommand::Show { common, .. }
    | DlqCommand::Replay { common, .. }
    | DlqCommand::Purge { common, .. }) = &cmd;
    let cfg = match crate::config::load_unvalidated(common.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => return crate::config_error(&e),
    };
    if cfg.journal.backend != wagate_journal::Backend::Embedded {
        return broker(&cfg.journal, cmd);
    }
    let path = cfg.journal.path.clone();
    if !path.exists() {
        eprintln!(
            "wagate dlq: no journal at {} (journal.path)",
            path.display()
        );
        return ExitCode::from(2);
    }
    let result = match cmd {
        DlqCommand::List { select, limit, .. } => {
            select.to_filter(None).and_then(|f| list(&path, &f, limit))
        }
        DlqCommand::Show { id, .. } => numeric(&id).and_then(|id| show(&path, id)),
        DlqCommand::Replay {
            id, all, select, ..
        } => numeric_opt(id.as_deref()).and_then(|id| write(&path, id, all, &select, true)),
        DlqCommand::Purge {
            id, all, select, ..
        } => numeric_opt(id.as_deref()).and_then(|id| write(&path, id, all, &select, false)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wagate dlq: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Delivery ids of the embedded journal are numbers.
fn numeric(id: &str) -> Result<u64, String> {
    id.parse()
        .map_err(|_| format!("delivery id {id:?}: expected a number (from `wagate dlq list`)"))
}

fn numeric_opt(id: Option<&str>) -> Result<Option<u64>, String> {
    id.map(numeric).transpose()
}

/// The same commands on a broker journal (ids are the broker's, as `list` prints them).
fn broker(journal: &wagate_journal::JournalConfig, cmd: DlqCommand) -> ExitCode {
    let filter_of = |select: &Select| {
        select.to_filter(None).map_err(|e| {
            eprintln!("wagate dlq: {e}");
            ExitCode::from(2)
        })
    };
    match cmd {
        DlqCommand::List { select, limit, .. } => match filter_of(&select) {
            Ok(f) => crate::broker_cmd::list(journal, &f, limit),
            Err(code) => code,
        },
        DlqCommand::Show { id, .. } => crate::broker_cmd::show(journal, &id),
        DlqCommand::Replay {
            id, all, select, ..
        }
        | DlqCommand::Purge {
            id, all, select, ..
        } if !all && id.is_none() && select.filters.is_empty() => {
            let _ = select;
            eprintln!("wagate dlq: name a delivery id, --all, or --filter KEY=VALUE");
            ExitCode::FAILURE
        }
        DlqCommand::Replay { id, select, .. } => match filter_of(&select) {
            Ok(f) => crate::broker_cmd::write(journal, &f, id.as_deref(), true),
            Err(code) => code,
        },
        DlqCommand::Purge { id, select, .. } => match filter_of(&select) {
            Ok(f) => crate::broker_cmd::write(journal, &f, id.as_deref(), false),
            Err(code) => code,
        },
    }
}

fn list(path: &std::path::Path, filter: &DeadFilter, limit: usize) -> Result<(), String> {
    let reader = Reader::open(path).map_err(|e| e.to_string())?;
    let mut after = 0;
    let mut left = limit;
    while left > 0 {
        let page = reader
            .dead_deliveries(filter, after, left.min(500))
            .map_err(|e| e.to_string())?;
        let mut out = std::io::stdout().lock();
        for d in &page {
            let line = serde_json::to_string(d).map_err(|e| e.to_string())?;
            // A closed pipe (`| head`) ends the listing; it is not an error.
            if std::io::Write::write_fmt(&mut out, format_args!("{line}\n")).is_err() {
                return Ok(());
            }
        }
        left = left.saturating_sub(page.len());
        match page.last() {
            Some(last) if page.len() == 500 => after = last.id,
            _ => break,
        }
    }
    Ok(())
}

/// `body` as text when it is UTF-8, else `body_base64`.
pub(crate) fn add_body(v: &mut serde_json::Value, body: &[u8]) {
    match std::str::from_utf8(body) {
        Ok(text) => v["body"] = text.into(),
        Err(_) => {
            v["body_base64"] = base64::engine::general_purpose::STANDARD
                .encode(body)
                .into();
        }
    }
}

fn show(path: &std::path::Path, id: u64) -> Result<(), String> {
    let reader = Reader::open(path).map_err(|e| e.to_string())?;
    let d = reader
        .delivery(id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no delivery {id}"))?;
    let mut v = serde_json::to_value(&d).map_err(|e| e.to_string())?;
    add_body(&mut v, &d.body);
    println!(
        "{}",
        serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn write(
    path: &std::path::Path,
    id: Option<u64>,
    all: bool,
    select: &Select,
    replay: bool,
) -> Result<(), String> {
    let filter = select.to_filter(id)?;
    if !all && filter == DeadFilter::default() {
        return Err("name a delivery id, --all, or --filter KEY=VALUE".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        // Durability as the server would write: fsync, the safe default for an operator action.
        let store =
            Embedded::open(path, wagate_journal::Durability::Fsync).map_err(|e| e.to_string())?;
        let result = if replay {
            store.replay(filter).await
        } else {
            store.purge(filter).await
        };
        let _ = wagate_journal::Journal::close(&store).await;
        let n = result.map_err(|e| e.to_string())?;
        println!(
            "{} {n} dead-lettered deliver{}",
            if replay { "replayed" } else { "purged" },
            if n == 1 { "y" } else { "ies" }
        );
        Ok(())
    })
}
