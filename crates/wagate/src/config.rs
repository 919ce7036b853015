//! The whole config file: defaults, then the TOML file, then `WAGATE_*` environment variables
//! (`__` separates nesting levels: `WAGATE_SERVER__LISTEN`), then command-line flags.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use wagate_dispatch::{DispatchConfig, TargetConfig};
use wagate_ingest::{ServerConfig, ShutdownConfig, SourceConfig};
use wagate_journal::JournalConfig;

/// Top-level sections; environment variables outside them are not config.
const SECTIONS: [&str; 7] = [
    "server", "shutdown", "journal", "sources", "log", "targets", "dispatch",
];

/// The effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[shutdown]`.
    pub shutdown: ShutdownConfig,
    /// `[journal]`.
    pub journal: JournalConfig,
    /// `[[sources]]`; defaults to one Meta source at `/webhook`.
    pub sources: Vec<SourceConfig>,
    /// `[log]`.
    pub log: LogConfig,
    /// `[[targets]]`: where dispatch delivers (none: requests stay in the journal).
    pub targets: Vec<TargetConfig>,
    /// `[dispatch]`.
    pub dispatch: DispatchConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            shutdown: ShutdownConfig::default(),
            journal: JournalConfig::default(),
            sources: vec![SourceConfig::default_meta()],
            log: LogConfig::default(),
            targets: Vec::new(),
            dispatch: DispatchConfig::default(),
        }
    }
}

/// `[log]`: log format and level (`RUST_LOG` overrides the level).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `wagate=debug` (debug logs every accepted request).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Loads the layered config; `overrides` are `(dotted key, value)` pairs from flags.
///
/// # Errors
/// A message naming the offending key (unknown keys, wrong types, failed validation).
pub fn load(
    file: Option<&Path>,
    overrides: &[(&str, figment::value::Value)],
) -> Result<Config, String> {
    let mut figment = layered(file)?;
    for (key, value) in overrides {
        figment = figment.merge(Serialized::default(key, value.clone()));
    }
    let config = extract(&figment)?;
    wagate_ingest::config::validate(&config.server, &config.shutdown, &config.sources)
        .map_err(|e| e.to_string())?;
    wagate_dispatch::config::validate(&config.targets, &config.dispatch)
        .map_err(|e| e.to_string())?;
    check_log_level(&config.log.level)?;
    wagate_journal::validate(&config.journal)?;
    Ok(config)
}

/// Like [`load`] without the cross-field checks: operator commands that only need
/// `journal.path` work with a config whose secrets live elsewhere.
///
/// # Errors
/// Unknown keys and wrong types.
pub fn load_unvalidated(file: Option<&Path>) -> Result<Config, String> {
    extract(&layered(file)?)
}

/// Defaults, then the file, then `WAGATE_*` variables of the known sections.
fn layered(file: Option<&Path>) -> Result<Figment, String> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(format!("config file {} does not exist", path.display()));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let env = Env::prefixed("WAGATE_").split("__").filter(|key| {
        // Keys arrive upper-case as in the environment: `SERVER.LISTEN`.
        let key = key.as_str().to_ascii_lowercase();
        SECTIONS.iter().any(|s| {
            key.strip_prefix(s)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        })
    });
    Ok(figment.merge(env))
}

fn extract(figment: &Figment) -> Result<Config, String> {
    figment.extract().map_err(|e| {
        e.into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// `log.level` must be a level name or a filter with directives (`wagate_ingest=debug,info`): a
/// bare word such as `loud` would parse as a target name and silently disable every log line.
fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let bare = !level.contains(['=', ',', '[']);
    let ok = if bare {
        LEVELS.contains(&level.to_ascii_lowercase().as_str())
    } else {
        tracing_subscriber::EnvFilter::try_new(level).is_ok()
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "log.level: {level:?} is not a level (trace, debug, info, warn, error, off) or a filter such as \"wagate_ingest=debug,info\""
        ))
    }
}

/// The effective config as TOML with every secret masked.
pub fn print(config: &Config) -> String {
    let mut masked = config.clone();
    masked.sources = masked.sources.iter().map(SourceConfig::masked).collect();
    masked.targets = masked.targets.iter().map(TargetConfig::masked).collect();
    masked.journal.url = mask_password(&masked.journal.url);
    for t in &mut masked.targets {
        t.url = mask_password(&t.url);
    }
    toml::to_string_pretty(&masked).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
}

/// `scheme://user:secret@host...` → `scheme://user:***@host...` (broker URLs carry passwords).
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_owned()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod mask_tests {
    use super::mask_password;

    #[test]
    fn broker_passwords_are_masked() {
        assert_eq!(
            mask_password("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            mask_password("redis://:s3cret@redis:6379/0"),
            "redis://:***@redis:6379/0"
        );
        assert_eq!(
            mask_password("nats://token@nats:4222"),
            "nats://***@nats:4222"
        );
        assert_eq!(
            mask_password("http://app:8080/hook?x=1"),
            "http://app:8080/hook?x=1"
        );
        assert_eq!(mask_password(""), "");
    }
}
