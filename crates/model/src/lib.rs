//! WhatsApp event model (in progress).

/// `wagate inspect` command line.
pub mod cli {
    use std::process::ExitCode;

    /// `wagate inspect [FILE|-]...`: print the normalized events of raw payload files.
    #[derive(Debug, clap::Args)]
    pub struct InspectArgs {
        /// Payload files; `-` reads standard input.
        pub files: Vec<std::path::PathBuf>,
    }

    /// Runs `wagate inspect`.
    pub fn run(_args: InspectArgs) -> ExitCode {
        eprintln!("wagate inspect: not implemented yet");
        ExitCode::from(2)
    }
}
