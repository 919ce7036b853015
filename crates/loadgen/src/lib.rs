//! WhatsApp-shaped load generator (in progress).

/// `wagate loadgen` command line.
pub mod cli {
    use std::process::ExitCode;

    /// `wagate loadgen URL`.
    #[derive(Debug, clap::Args)]
    pub struct LoadgenArgs {
        /// Target URL, e.g. `http://127.0.0.1:8080/webhook`.
        pub url: String,
    }

    /// Runs `wagate loadgen`.
    pub fn run(_args: LoadgenArgs) -> ExitCode {
        eprintln!("wagate loadgen: not implemented yet");
        ExitCode::from(2)
    }
}
