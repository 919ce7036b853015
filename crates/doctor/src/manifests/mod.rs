//! `wagate doctor manifests`: lints Kubernetes manifests (Ingress, ingress-nginx ConfigMap and
//! controller args, Service, Deployment/StatefulSet, HPA, Istio/Traefik objects) against the
//! app's own settings.

pub mod app;
pub mod kb;
pub mod load;
pub mod model;
pub mod nginx;
pub mod rules;

use crate::finding::{Finding, Severity};
pub use app::{AppOptions, AppSettings};
pub use load::{Document, LoadError};

/// Result of a lint run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Findings, sorted by object then severity (errors first).
    pub findings: Vec<Finding>,
    /// The app settings used, with their sources.
    pub app: AppSettings,
    /// Number of objects read.
    pub objects: usize,
}

impl Report {
    /// Highest severity present.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// Lints already-loaded documents. `Err` for invalid app settings (bad flag/config values).
pub fn check_documents(docs: &[Document], opts: &AppOptions) -> Result<Report, String> {
    let inv = model::Inventory::build(docs);
    let app = app::resolve(&inv, opts)?;
    let mut findings = rules::run(&inv, &app);
    findings.sort_by(|a, b| {
        a.object
            .cmp(&b.object)
            .then(b.severity.cmp(&a.severity))
            .then(a.rule.cmp(b.rule))
    });
    Ok(Report {
        findings,
        app,
        objects: docs.len(),
    })
}

/// Parses YAML text (multi-document) and lints it.
pub fn check_str(name: &str, yaml: &str, opts: &AppOptions) -> Result<Report, String> {
    let docs = load::parse_str(name, yaml).map_err(|e| e.0)?;
    check_documents(&docs, opts)
}
