//! `hwnas export`, `hwnas profile`, `hwnas lut build|eval` and `hwnas latency fit`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hwnas_search::ProtocolSettings;
use hwnas_search::device_fit::{FitReport, FitRequest, fit_device};
use hwnas_search::latency_tools::{
    ProfileReport, build_lut, evaluate_lut, export_model, lut_report_text, profile_model,
};

use crate::output::{emit, print};
use crate::progress::Bars;

/// Measurement settings shared by the commands that profile.
#[derive(Debug, Clone, Args)]
pub struct ProtocolArgs {
    /// ONNX Runtime intra-op threads (fixed for every run).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Exactly this many timed runs (default: adaptive, 50 to 1000 until the median's 95%
    /// confidence half-width is under 1%).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
}

impl ProtocolArgs {
    /// The settings these flags give.
    pub fn settings(&self) -> ProtocolSettings {
        ProtocolSettings {
            threads: self.threads,
            runs: self.runs,
            warmup: self.warmup,
        }
    }
}

/// Options of `hwnas export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Search space: nb201, darts or ofa-mbv3.
    #[arg(long)]
    space: String,
    /// The architecture in the space's format (NB201 string, DARTS genotype, OFA arch dict JSON).
    #[arg(long)]
    arch: String,
    /// Where to write the ONNX model.
    #[arg(short, long, value_name = "FILE")]
    out: PathBuf,
    /// Batch size of the model's input.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Keep batch norm as separate nodes instead of folding it into the convolutions.
    #[arg(long)]
    no_fold: bool,
}

/// Runs `hwnas export`.
pub fn export(args: &ExportArgs) -> Result<ExitCode> {
    let written = export_model(
        &args.space,
        &args.arch,
        &args.out,
        args.batch,
        !args.no_fold,
    )?;
    eprintln!("{written}");
    Ok(ExitCode::SUCCESS)
}

/// Options of `hwnas profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The ONNX model to time.
    model: PathBuf,
    #[command(flatten)]
    protocol: ProtocolArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Profile through the agents of this target (a TOML file or a name from `hwnas targets list`).
    #[arg(long, value_name = "TARGET")]
    target: Option<String>,
}

/// Runs `hwnas profile`.
pub fn profile_cmd(args: &ProfileArgs) -> Result<ExitCode> {
    let report = profile_model(
        &args.model,
        &args.protocol.settings(),
        args.target.as_deref(),
    )
    .with_context(|| format!("profiling {}", args.model.display()))?;
    emit(args.json, &report, ProfileReport::text)?;
    Ok(ExitCode::SUCCESS)
}

/// `hwnas lut` subcommands.
#[derive(Debug, Subcommand)]
pub enum LutCommand {
    /// Measure every distinct layer of the space on this machine into a lookup table.
    Build(LutBuildArgs),
    /// Measure random subnets end to end and report the table's prediction error.
    Eval(LutEvalArgs),
}

/// Options of `hwnas lut build`.
#[derive(Debug, Args)]
pub struct LutBuildArgs {
    /// Search space (only ofa-mbv3 has per-layer tables).
    #[arg(long, default_value = "ofa-mbv3")]
    space: String,
    /// Target (only `host`, this machine, for now).
    #[arg(long, default_value = "host")]
    target: String,
    /// Input resolutions to cover.
    #[arg(long, value_delimiter = ',', default_value = "160,176,192,208,224")]
    resolutions: Vec<u32>,
    /// Subnets measured end to end to fit the end-to-end model over the layers.
    #[arg(long, default_value_t = 30)]
    calibration: usize,
    /// Where to write the table (an interrupted build resumes from it).
    #[arg(short, long, value_name = "FILE", default_value = "lut.json")]
    out: PathBuf,
    #[command(flatten)]
    protocol: ProtocolArgs,
}

/// Options of `hwnas lut eval`.
#[derive(Debug, Args)]
pub struct LutEvalArgs {
    /// The table to evaluate.
    #[arg(long, value_name = "FILE")]
    lut: PathBuf,
    /// Random subnets to measure (never those used for calibration).
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `hwnas lut ...`.
pub fn lut(command: &LutCommand) -> Result<ExitCode> {
    match command {
        LutCommand::Build(args) => {
            let observer = Bars::new(false);
            let settings = args.protocol.settings();
            let text = build_lut(
                &args.space,
                &args.target,
                &args.out,
                &args.resolutions,
                args.calibration,
                &settings,
                &observer,
            )?;
            print(&text)?;
        }
        LutCommand::Eval(args) => {
            let result = evaluate_lut(&args.lut, args.samples, &Bars::new(false))?;
            emit(args.json, &result, lut_report_text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `hwnas latency` subcommands.
#[derive(Debug, Subcommand)]
pub enum LatencyCommand {
    /// Fit a device's latency predictor from a few measurements and a table's other devices.
    Fit(FitArgs),
}

/// Options of `hwnas latency fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// The table's space: nb201, ofa-mbv3 (HELP's table) or fbnet (HW-NAS-Bench's).
    #[arg(long, default_value = "nb201")]
    space: String,
    /// The table of device latencies (by default the shared data's, for nb201 and ofa-mbv3).
    #[arg(long, value_name = "FILE")]
    table: Option<PathBuf>,
    /// The new device's column (`pixel3`, `lat_help_pixel3`, `hwnb-raspi4`).
    #[arg(long, required_unless_present = "target", conflicts_with = "target")]
    device: Option<String>,
    /// Or measure the samples on `host` or a board's agents (a target name or TOML file).
    #[arg(long)]
    target: Option<String>,
    /// Its measurements the fit uses (the tool chooses which).
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// With --target: this many more architectures measured there to score the fit on.
    #[arg(long, default_value_t = 0)]
    held_out: usize,
    /// With --target: exactly this many timed runs per measurement (by default adaptive,
    /// 50 to 1,000 until the median is pinned down).
    #[arg(long)]
    runs: Option<usize>,
    /// Which measurements are chosen.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write every architecture's predicted latency to this CSV file.
    #[arg(short, long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `hwnas latency ...`.
pub fn latency(command: &LatencyCommand) -> Result<ExitCode> {
    let LatencyCommand::Fit(args) = command;
    let report = fit_device(&FitRequest {
        space: args.space.clone(),
        table: args.table.clone(),
        device: args.device.clone(),
        target: args.target.clone(),
        samples: args.samples,
        seed: args.seed,
        out: args.out.clone(),
        held_out: args.held_out,
        runs: args.runs,
    })?;
    emit(args.json, &report, FitReport::text)?;
    Ok(ExitCode::SUCCESS)
}
