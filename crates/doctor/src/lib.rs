//! Doctor: lints ingress manifests and classifies proxy logs (in progress).

/// `wagate doctor` command line.
pub mod cli {
    use std::process::ExitCode;

    /// `wagate doctor manifests|logs`.
    #[derive(Debug, clap::Subcommand)]
    pub enum DoctorCommand {
        /// Lint Kubernetes YAML (Ingress, ConfigMap, Deployment, ...) against wagate's timeouts.
        Manifests {
            /// Files or folders; `-` reads standard input.
            paths: Vec<std::path::PathBuf>,
        },
        /// Explain proxy errors from nginx, HAProxy, Envoy or Traefik logs.
        Logs {
            /// Log files; `-` reads standard input.
            files: Vec<std::path::PathBuf>,
        },
    }

    /// Runs `wagate doctor`.
    pub fn run(_command: DoctorCommand) -> ExitCode {
        eprintln!("wagate doctor: not implemented yet");
        ExitCode::from(2)
    }
}
