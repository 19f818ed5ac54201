//! `hwnas eval`: a model's accuracy in ONNX Runtime on a data set.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use hwnas_core::images::Split;
use hwnas_search::model_eval::{EvalReport, evaluate_model};
use hwnas_search::plan::DataSource;

use crate::output::emit;

/// Options of `hwnas eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The ONNX model (e.g. a run directory's `best-inherited.onnx`), taking images in [0, 1].
    model: PathBuf,
    /// The images: fashion-mnist, cifar:DIR (CIFAR-10/100 binary batches) or folder:DIR (a
    /// folder of images per class, read whole).
    #[arg(long, default_value = "fashion-mnist")]
    data: DataSource,
    /// Which part of a published data set: test (never seen by a search) or train.
    #[arg(long, default_value = "test")]
    split: Split,
    /// Only the first N images.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// ONNX Runtime intra-op threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object: {"accuracy", "images", "model", "data", "split", "seconds"}.
    #[arg(long)]
    json: bool,
}

/// Runs `hwnas eval`.
pub fn run(args: &EvalArgs) -> Result<ExitCode> {
    if args.threads == 0 {
        anyhow::bail!("--threads 0: give at least one ONNX Runtime thread");
    }
    let report = evaluate_model(
        &args.model,
        &args.data,
        args.split,
        args.limit,
        args.threads,
    )
    .with_context(|| format!("evaluating {}", args.model.display()))?;
    emit(args.json, &report, EvalReport::text)?;
    Ok(ExitCode::SUCCESS)
}
