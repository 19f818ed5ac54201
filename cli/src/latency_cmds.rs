//! `hwnas export`, `hwnas profile` and `hwnas lut build|eval`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use hwnas_latency::cache::{MeasurementCache, default_dir};
use hwnas_latency::export::{ExportOptions, export_arch};
use hwnas_latency::lut::{LayerLut, report};
use hwnas_latency::onnx::RandomWeights;
use hwnas_latency::onnx::builder::encode;
use hwnas_latency::profile::{Measurement, Protocol, profile};
use hwnas_search::ProtocolSettings;
use serde::Serialize;

use crate::progress;

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

    /// The protocol these flags describe, checked against its real ranges.
    pub fn protocol(&self) -> Result<Protocol> {
        Ok(self.settings().protocol()?)
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
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let options = ExportOptions {
        batch: args.batch,
        fold_batch_norm: !args.no_fold,
    };
    let model = export_arch(&args.space, &args.arch, &mut RandomWeights::new(0), options)?;
    let bytes = encode(&model);
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "wrote {} ({} KiB, opset 17, random He weights)",
        args.out.display(),
        bytes.len() / 1024
    );
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

/// The JSON `hwnas profile --json` prints.
#[derive(Debug, Serialize)]
pub struct ProfileJson<'a> {
    median_ms: f64,
    p10_ms: f64,
    p90_ms: f64,
    mean_ms: f64,
    std_ms: f64,
    runs: usize,
    median_rel_ci: f64,
    fingerprint: &'a hwnas_latency::profile::Fingerprint,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
}

impl<'a> ProfileJson<'a> {
    /// The printed form of a measurement.
    pub fn new(m: &'a Measurement) -> Self {
        let s = m.stats;
        ProfileJson {
            median_ms: s.median_ms,
            p10_ms: s.p10_ms,
            p90_ms: s.p90_ms,
            mean_ms: s.mean_ms,
            std_ms: s.std_ms,
            runs: s.runs,
            median_rel_ci: s.median_rel_ci,
            fingerprint: &m.fingerprint,
            agent: None,
        }
    }
}

/// Runs `hwnas profile`.
pub fn profile_cmd(args: &ProfileArgs) -> Result<ExitCode> {
    let protocol = args.protocol.protocol()?;
    let bytes = std::fs::read(&args.model)
        .with_context(|| format!("cannot read the model {}", args.model.display()))?;
    let (measurement, agent) = match &args.target {
        Some(target) => {
            let threads = (args.protocol.threads != 1).then_some(args.protocol.threads);
            let (m, agent) = hwnas_search::measure::profile_through(target, &bytes, threads)?;
            (m, Some(agent))
        }
        None => (
            profile(&bytes, &protocol)
                .with_context(|| format!("profiling {}", args.model.display()))?,
            None,
        ),
    };
    if args.json {
        let mut json = ProfileJson::new(&measurement);
        json.agent = agent;
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        let s = measurement.stats;
        let f = &measurement.fingerprint;
        match &agent {
            Some(agent) => println!("{} (measured by agent {agent})", args.model.display()),
            None => println!("{}", args.model.display()),
        }
        println!(
            "  median {:.3} ms  (p10 {:.3}, p90 {:.3}, mean {:.3} ± {:.3})",
            s.median_ms, s.p10_ms, s.p90_ms, s.mean_ms, s.std_ms
        );
        println!(
            "  {} timed runs after {} warm-up; median 95% CI ±{:.2}%",
            s.runs,
            protocol.warmup,
            s.median_rel_ci * 100.0
        );
        println!(
            "  ONNX Runtime {} {} on {} ({} threads of {} cores{})",
            f.ort_version,
            f.execution_provider,
            f.cpu_model,
            f.threads,
            f.cores,
            f.governor
                .as_ref()
                .map(|g| format!(", governor {g}"))
                .unwrap_or_default()
        );
    }
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
    /// Subnets measured end to end to calibrate the layer sum.
    #[arg(long, default_value_t = 12)]
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

fn open_cache() -> Option<MeasurementCache> {
    MeasurementCache::open(&default_dir()).ok()
}

/// Runs `hwnas lut ...`.
pub fn lut(command: &LutCommand) -> Result<ExitCode> {
    match command {
        LutCommand::Build(args) => lut_build(args),
        LutCommand::Eval(args) => lut_eval(args),
    }
}

fn lut_build(args: &LutBuildArgs) -> Result<ExitCode> {
    if args.space != "ofa-mbv3" && args.space != "ofa" {
        bail!(
            "--space {}: per-layer lookup tables exist for ofa-mbv3 (nb201 and darts are measured end to end)",
            args.space
        );
    }
    if args.target != "host" {
        bail!(
            "--target {}: lookup tables are built on this machine (`host`); on a board, run `hwnas lut build` there",
            args.target
        );
    }
    let allowed = hwnas_core::space::ofa::RESOLUTIONS;
    if let Some(bad) = args.resolutions.iter().find(|r| !allowed.contains(*r)) {
        bail!("--resolutions: {bad} is outside {allowed:?}");
    }
    let protocol = args.protocol.protocol()?;
    let cache = open_cache();
    let bar = progress::bar("lut build", 1);
    let warn = |w: &str| bar.println(format!("warning: {w}"));
    let lut = LayerLut::build(
        &args.out,
        &args.resolutions,
        &protocol,
        args.calibration,
        cache.as_ref(),
        &progress::callback(&bar),
        &warn,
    )?;
    bar.finish_and_clear();
    println!(
        "{} layers at resolutions {:?} in {}",
        lut.entries.len(),
        lut.resolutions,
        args.out.display()
    );
    if let Some(c) = lut.calibration {
        println!(
            "calibration on {} subnets: measured = {:.3} x layer sum + {:.3} ms (fit RMSE {:.3} ms)",
            c.subnets, c.slope, c.intercept, c.fit_rmse_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn lut_eval(args: &LutEvalArgs) -> Result<ExitCode> {
    if args.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let lut = LayerLut::load(&args.lut)?;
    let cache = open_cache();
    let bar = progress::bar("lut eval", args.samples as u64);
    let warn = |w: &str| bar.println(format!("warning: {w}"));
    let points = lut.measure_subnets(
        args.samples,
        2,
        &lut.protocol,
        cache.as_ref(),
        &progress::callback(&bar),
        &warn,
    )?;
    bar.finish_and_clear();
    let pairs: Vec<(f64, f64)> = points
        .iter()
        .map(|&(sum, measured)| {
            let predicted = lut.calibration.map_or(sum, |c| c.slope * sum + c.intercept);
            (predicted, measured)
        })
        .collect();
    let result = report(&pairs);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!(
            "{} held-out subnets measured end to end vs the table's prediction:",
            result.samples
        );
        println!(
            "  RMSE {:.3} ms, mean absolute error {:.2}%",
            result.rmse_ms,
            result.mape * 100.0
        );
        println!(
            "  within ±5%: {:.1}%   within ±10%: {:.1}%",
            result.within_5pct * 100.0,
            result.within_10pct * 100.0
        );
    }
    Ok(ExitCode::SUCCESS)
}
