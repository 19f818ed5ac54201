//! `hwnas train`: one architecture trained on the user's images, written as ONNX.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use hwnas_search::plan::{EvaluatorKind, ProtocolSettings, SearchPlan};
use hwnas_search::train_arch::{TrainReport, train_architecture};

use crate::output::emit;
use crate::search::{TrainingArgs, typed};

/// Options of `hwnas train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The space: nb201 or ofa-mbv3.
    #[arg(long, default_value = "nb201")]
    space: String,
    /// The architecture in the space's text format (a search's `arch`, e.g.
    /// `|nor_conv_3x3~0|+|...|` or `{"ks":[...],"e":[...],"d":[...],"r":[28]}`).
    #[arg(long)]
    arch: String,
    #[command(flatten)]
    training: TrainingArgs,
    /// Seeds the initial weights, the split and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Start from the weights the architecture inherits from the supernet of this run
    /// directory (a `--evaluator supernet` search's; its sizes, not --channels/--cells).
    #[arg(long, value_name = "RUN_DIR")]
    from: Option<PathBuf>,
    /// Where trained.onnx and report.md are written.
    #[arg(long, default_value = "hwnas-train")]
    out: PathBuf,
    /// Print one JSON object: {"space", "arch", "data", "epochs", "from", "train_images",
    /// "heldout_accuracy", "test_accuracy", "test_images", "onnx", "report", "seconds"}.
    #[arg(long)]
    json: bool,
}

/// Runs `hwnas train`.
pub fn run(args: &TrainArgs) -> Result<ExitCode> {
    let plan = SearchPlan {
        space: typed("space", &args.space)?,
        strategy: typed("strategy", "random")?,
        evaluator: Some(EvaluatorKind::Train),
        target: typed("target", "host")?,
        latency_ms: None,
        budget: None,
        seed: args.seed,
        out: args.out.clone(),
        table: None,
        dataset: "cifar10".into(),
        ofa_dir: None,
        data: typed("data", &args.training.data)?,
        epochs: args.training.epochs.unwrap_or(4),
        train_images: args.training.train_images.unwrap_or(8000),
        eval_images: args.training.eval_images,
        channels: args.training.channels,
        cells: args.training.cells,
        backend: typed("backend", &args.training.backend)?,
        batch_size: args.training.batch_size,
        image_size: args.training.image_size,
        finalists: 0,
        protocol: ProtocolSettings::default(),
        proposals: None,
        latency_weight: None,
        memory_mib: None,
        augment: args.training.augment,
        warmup_share: None,
        finetune_share: None,
    };
    let observer = crate::progress::Bars::new(args.json);
    let report = train_architecture(&plan, &args.arch, args.from.as_deref(), &observer)
        .with_context(|| format!("training {}", args.arch))?;
    emit(args.json, &report, TrainReport::text)?;
    Ok(ExitCode::SUCCESS)
}
