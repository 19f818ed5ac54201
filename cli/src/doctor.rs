//! `hwnas doctor`: what a user needs to know before a search.

use std::process::ExitCode;

use clap::Args;
use hwnas_search::doctor::Report;

use crate::output::emit;

/// Options of `hwnas doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `hwnas doctor`; exits non-zero when ONNX Runtime cannot be loaded.
pub fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let report = Report::detect();
    emit(args.json, &report, Report::text)?;
    if let Some(error) = &report.onnxruntime.error {
        eprintln!("error: {error}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
