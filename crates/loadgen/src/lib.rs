//! WhatsApp-shaped webhook load generator behind `wagate loadgen`.
//!
//! Sends signed WhatsApp Cloud API (or WasenderAPI) webhook bodies to a local endpoint over a
//! keep-alive HTTP/1.1 pool, in `steady`, `burst` or `burst-idle` patterns, and summarises status
//! codes, connection errors and HDR latency percentiles. Drive it from Rust with [`run_load`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), wagate_loadgen::LoadError> {
//! use wagate_loadgen::{LoadConfig, Signer};
//! let mut cfg = LoadConfig::new("http://127.0.0.1:8080/webhook");
//! cfg.signer = Signer::Meta { app_secret: b"secret".to_vec() };
//! cfg.bounds.requests = Some(1000);
//! let summary = wagate_loadgen::run_load(cfg).await?;
//! assert!(summary.all_200());
//! # Ok(()) }
//! ```

pub mod cli;
pub mod config;
pub mod payload;
mod pool;
mod progress;
pub mod report;
mod run;
pub mod sign;
pub mod stats;
pub mod target;
mod templates;
pub mod wire;

pub use config::{Bounds, LoadConfig, Pattern, Progress, RetryPolicy};
pub use payload::PayloadSource;
pub use run::{LoadError, run_load};
pub use sign::Signer;
pub use stats::{GapRow, Summary};
