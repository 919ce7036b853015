//! Doctor: finds the 502/504/413 before it happens (`wagate doctor manifests`: lints Kubernetes
//! manifests for ingress-nginx, load balancers and the app) and explains the one that happened
//! (`wagate doctor logs`: classifies proxy logs from ingress-nginx, nginx, HAProxy, Envoy and
//! Traefik).
//!
//! Rule ids (`KA-001`, `ANN-001`, ...) and log classes (`keepalive_race`, ...) are public, stable
//! ids; each one is documented in `docs/doctor.md` with its source.

pub mod cli;
pub mod finding;
pub mod logs;
pub mod manifests;
pub mod output;
pub mod units;

pub use finding::{Finding, Severity};
