use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = kube_log_exporter::cli::Cli::parse();
    ExitCode::from(kube_log_exporter::main_with(cli))
}
