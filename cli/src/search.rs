//! `hwnas search`: the main job. Searches a space for the most accurate architecture under
//! a latency budget on a target, re-measures the finalists end to end, and writes a run
//! directory a person can read and a script can parse.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use hwnas_core::benchmark::ofa::{PREDICTOR_FILE, locate_ofa_dir};
use hwnas_core::benchmark::{Nb201Table, OfaPredictor};
use hwnas_core::oneshot::SupernetEvaluator;
use hwnas_core::space::ofa::OfaConfig;
use hwnas_core::space::{Nb201Space, OfaSpace, SearchSpace};
use hwnas_core::{
    Arch, Budget, Evaluation, Evaluator, LatencyModel, Objective, Oracle, Record, SearchConfig,
    run_search, strategy,
};
use hwnas_latency::export::{ExportOptions, export_arch};
use hwnas_latency::lut::{LutLatency, host_lut};
use hwnas_latency::measured::MeasuredLatency;
use hwnas_latency::onnx::RandomWeights;
use hwnas_latency::onnx::builder::encode;
use hwnas_latency::profile::{Fingerprint, Protocol, profile};
use hwnas_latency::runtime::OrtRuntime;
use serde::{Deserialize, Serialize};

use crate::latency_cmds::ProtocolArgs;
use crate::{plot, progress};

/// Share of the reference network's measured latency used as the default budget.
pub const DEFAULT_BUDGET_FRACTION: f64 = 0.5;

/// The answer's fresh re-profile must come in this far under the budget, so that a later
/// `hwnas profile best.onnx` confirms it despite run-to-run spread (medians of separate
/// processes vary by about 0.7%, see docs/BENCHMARKS.md; 2% covers three of those).
pub const CONFIRMATION_MARGIN: f64 = 0.02;

/// Options of `hwnas search`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct SearchArgs {
    /// Search space: ofa-mbv3 (Once-for-All MobileNetV3), nb201 (NAS-Bench-201) or darts
    /// (DARTS cells, with `--evaluator supernet`).
    #[arg(long, default_value = "ofa-mbv3")]
    pub(crate) space: String,
    /// Strategy: random, rea, reinforce, l2nas or ganas (sampling strategies); with
    /// `--evaluator supernet` on nb201 or darts, a one-shot strategy: darts, gdas,
    /// advantagenas, unas or reinforce.
    #[arg(long, default_value = "rea")]
    pub(crate) strategy: String,
    /// Accuracy estimate: `predictor` (Once-for-All's published ImageNet predictor, for
    /// ofa-mbv3), `table` (the NAS-Bench-201 table, for nb201), `proxy` (synflow, nb201) or
    /// `supernet` (a weight-sharing supernet trained on `--data`: a one-shot search for
    /// nb201 and darts; for ofa-mbv3 the Once-for-All supernet trained once, then searched
    /// by the sampling strategy). Default: the space's.
    #[arg(long)]
    pub(crate) evaluator: Option<String>,
    /// Latency target: `host` (this machine, measured with ONNX Runtime), table:DEVICE (a
    /// published latency table: table:note10 for ofa-mbv3, table:pixel3 etc. for nb201), or
    /// a target's name or TOML file (`hwnas targets list`; agent targets measure on the board).
    #[arg(long, default_value = "host")]
    pub(crate) target: String,
    /// Latency budget in ms. Default: 50% of the reference network's latency on the target
    /// (ofa-mbv3: the largest subnet, kernel 7, expand 6, depth 4, at 224; nb201: the cell of
    /// all 3x3 convolutions).
    #[arg(long, value_name = "MS")]
    pub(crate) latency_ms: Option<f64>,
    /// Distinct architectures to evaluate.
    #[arg(long, default_value_t = 500)]
    pub(crate) budget: usize,
    /// Seeds every random choice.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Run directory.
    #[arg(long, value_name = "DIR", default_value = "hwnas-run")]
    pub(crate) out: PathBuf,
    /// Continue the interrupted run in DIR (its settings are read from DIR/manifest.json).
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    #[serde(skip)]
    pub(crate) resume: Option<PathBuf>,
    /// NAS-Bench-201 table (nb201); default: $HWNAS_NB201_TABLE or the shared data.
    #[arg(long, value_name = "FILE")]
    pub(crate) table: Option<PathBuf>,
    /// Dataset columns of the NAS-Bench-201 table.
    #[arg(long, default_value = "cifar10")]
    pub(crate) dataset: String,
    /// Folder with Once-for-All's predictor and lookup tables; default: $HWNAS_OFA_DIR or
    /// the shared data.
    #[arg(long, value_name = "DIR")]
    pub(crate) ofa_dir: Option<PathBuf>,
    /// Images for `--evaluator supernet`: `fashion-mnist` (the Debian package or the
    /// shared data), `cifar:DIR` (CIFAR-10/100 binary batches) or `folder:DIR` (a folder of
    /// images per class).
    #[arg(long, default_value = "fashion-mnist")]
    pub(crate) data: String,
    /// Epochs of a one-shot (`--evaluator supernet`) search.
    #[arg(long, default_value_t = 4)]
    pub(crate) epochs: usize,
    /// Training images a one-shot search uses (half for weights, half for the
    /// architecture); 0 for all.
    #[arg(long, default_value_t = 8000)]
    pub(crate) train_images: usize,
    /// Held-out images the supernet's argmax architecture is scored on.
    #[arg(long, default_value_t = 1000)]
    pub(crate) eval_images: usize,
    /// Supernet channels of the first cells (full size: 16 for both spaces; default, reduced
    /// for CPUs: 8 for nb201, 4 for darts).
    #[arg(long)]
    pub(crate) channels: Option<usize>,
    /// Supernet cells: per stage for nb201 (full: 5; default 1), in all for darts (full: 8;
    /// default 3).
    #[arg(long)]
    pub(crate) cells: Option<usize>,
    /// Kernels a supernet (`--evaluator supernet`) runs on: `cpu` (the reference
    /// implementation) or `wgpu` (the WGSL kernels on the adapter wgpu picks: a GPU, or
    /// Mesa's lavapipe on a CPU-only machine; `WGPU_ADAPTER_NAME` chooses).
    #[arg(long, default_value = "cpu")]
    #[serde(default = "default_backend")]
    pub(crate) backend: String,
    /// Images per batch of a one-shot search.
    #[arg(long, default_value_t = 64)]
    pub(crate) batch_size: usize,
    /// Side images of a `folder:DIR` data set are resized to.
    #[arg(long, default_value_t = 32)]
    pub(crate) image_size: usize,
    /// Finalists re-measured end to end before the answer is given.
    #[arg(long, default_value_t = 5)]
    pub(crate) finalists: usize,
    #[command(flatten)]
    pub(crate) protocol: ProtocolArgs,
    /// Print one JSON object for scripts.
    #[arg(long)]
    #[serde(skip)]
    pub(crate) json: bool,
    /// Testing aid: sleep this long after each evaluation.
    #[arg(long, hide = true, default_value_t = 0)]
    #[serde(skip)]
    pub(crate) throttle_ms: u64,
}

/// `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    command: Vec<String>,
    hwnas_version: String,
    settings: SearchArgs,
    seed: u64,
    space: String,
    strategy: String,
    evaluator: String,
    target: String,
    latency_model: String,
    latency_budget_ms: f64,
    budget_origin: String,
    target_fingerprint: Option<Fingerprint>,
    onnxruntime: Option<String>,
}

/// The object `--json` prints.
#[derive(Debug, Serialize)]
pub(crate) struct SearchJson {
    space: String,
    strategy: String,
    arch: String,
    latency_ms: f64,
    latency_budget_ms: f64,
    accuracy_estimate: f64,
    onnx: String,
    measured: bool,
    queries: usize,
    /// The chosen subnet with the weights it inherits from the supernet that scored it.
    #[serde(skip_serializing_if = "Option::is_none")]
    inherited_onnx: Option<String>,
}

fn default_backend() -> String {
    "cpu".into()
}

/// DARTS-V2's published cells (Liu et al., 2019), the reference of a DARTS search's budget.
const DARTS_V2: &str = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])";

/// Everything a search needs, built from the flags.
pub(crate) struct World {
    pub(crate) space: Box<dyn SearchSpace>,
    /// Scores architectures (none where only a supernet can: DARTS cells).
    pub(crate) evaluator: Option<Box<dyn Evaluator>>,
    pub(crate) evaluator_name: String,
    pub(crate) search_latency: Box<dyn LatencyModel>,
    /// End-to-end measurement for finalists (host targets).
    pub(crate) measured: Option<Box<dyn FinalMeasure>>,
    pub(crate) fingerprint: Option<Fingerprint>,
    pub(crate) budget_ms: f64,
    pub(crate) budget_origin: String,
    pub(crate) reference: Option<(String, f64)>,
    /// The NAS-Bench-201 table, when the space is nb201 and the table was found.
    pub(crate) nb201_table: Option<std::sync::Arc<Nb201Table>>,
    /// The trained Once-for-All supernet scoring the search (`--evaluator supernet`).
    pub(crate) supernet: Option<std::sync::Arc<SupernetEvaluator>>,
}

fn throttle(ms: u64) {
    if ms > 0 {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

struct Throttled<'a> {
    inner: &'a dyn Evaluator,
    ms: u64,
}

impl Evaluator for Throttled<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn evaluate(&self, arch: &Arch) -> hwnas_core::Result<Evaluation> {
        throttle(self.ms);
        self.inner.evaluate(arch)
    }
}

/// End-to-end measurement of finalists on the target.
pub(crate) trait FinalMeasure {
    /// Median latency of an architecture (through the measurement cache).
    fn arch_ms(&self, arch: &Arch) -> Result<f64>;
    /// Median latency of a model's bytes, measured afresh.
    fn model_ms(&self, model: &[u8]) -> Result<f64>;
}

/// This machine, through ONNX Runtime.
struct LocalMeasure(MeasuredLatency, Protocol);

impl FinalMeasure for LocalMeasure {
    fn arch_ms(&self, arch: &Arch) -> Result<f64> {
        Ok(self.0.measure(arch)?.stats.median_ms)
    }
    fn model_ms(&self, model: &[u8]) -> Result<f64> {
        Ok(profile(model, &self.1)?.stats.median_ms)
    }
}

/// A board, through the agents of a target file.
struct RemoteMeasure {
    space: Box<dyn SearchSpace>,
    target: hwnas_targets::Target,
    token: Vec<u8>,
}

impl RemoteMeasure {
    fn model_median(&self, model: &[u8]) -> Result<f64> {
        let log = |line: &str| eprintln!("{line}");
        let results = hwnas_targets::client::profile_fleet(
            &self.target.agents,
            &self.token,
            &[model.to_vec()],
            &self.target.wire_protocol(),
            Duration::from_secs(600),
            &log,
        )?;
        let result = results.into_iter().next().context("one result")?;
        let (stats, _) = result.outcome.map_err(|reason| {
            anyhow::anyhow!(
                "agent {} could not profile the model: {reason}",
                result.agent
            )
        })?;
        Ok(stats.median_ms)
    }
}

impl FinalMeasure for RemoteMeasure {
    fn arch_ms(&self, arch: &Arch) -> Result<f64> {
        let model = hwnas_latency::measured::export_for_profiling(self.space.as_ref(), arch)?;
        self.model_median(&model)
    }
    fn model_ms(&self, model: &[u8]) -> Result<f64> {
        self.model_median(model)
    }
}

impl LatencyModel for RemoteMeasure {
    fn name(&self) -> String {
        format!("agents:{}", self.target.name)
    }
    fn latency_ms(&self, arch: &Arch) -> hwnas_core::Result<f64> {
        self.arch_ms(arch).map_err(|e| hwnas_core::Error::Missing {
            source_name: self.name(),
            arch: self.space.format(arch),
            problem: format!("{e:#}"),
        })
    }
}

fn largest_ofa(r: u32) -> OfaConfig {
    OfaConfig {
        ks: vec![7; 20],
        e: vec![6; 20],
        d: vec![4; 5],
        r,
    }
}

impl SearchArgs {
    fn build_world(&self, quiet: bool) -> Result<World> {
        if let Some(b) = self.latency_ms
            && !(b.is_finite() && b > 0.0)
        {
            bail!("--latency-ms must be a positive number of milliseconds, got {b}");
        }
        if self.budget == 0 {
            bail!("--budget must be at least 1 architecture");
        }
        if !matches!(self.backend.as_str(), "cpu" | "wgpu") {
            bail!("--backend {}: use cpu or wgpu", self.backend);
        }
        let ofa_supernet = self.evaluator.as_deref() == Some("supernet")
            && matches!(self.space.as_str(), "ofa-mbv3" | "ofa");
        if ofa_supernet {
            // Once-for-All trains the supernet once, then a sampling strategy searches it.
            strategy::by_name(&self.strategy, &OfaSpace::default()).with_context(|| {
                "--space ofa-mbv3 --evaluator supernet: the supernet is trained by the sandwich rule, then --strategy searches it: give a sampling strategy"
            })?;
        } else if self.evaluator.as_deref() == Some("supernet") {
            hwnas_core::oneshot::by_name(
                &self.strategy,
                crate::oneshot_cmd::supernet_shape(&self.space)?,
                hwnas_core::oneshot::ArchSchedule::default(),
                None,
            )?;
        } else {
            strategy::by_name(&self.strategy, &Nb201Space::new())?;
        }
        let space_name = hwnas_core::space::space_by_name(&self.space)?.name();
        let evaluator = self.evaluator.clone().unwrap_or_else(|| {
            if space_name == "nb201" {
                "table"
            } else {
                "predictor"
            }
            .to_string()
        });
        match (space_name, evaluator.as_str()) {
            ("ofa-mbv3", "predictor")
            | ("nb201", "table")
            | ("nb201", "proxy")
            | ("nb201" | "darts" | "ofa-mbv3", "supernet") => {}
            (space, other) => bail!(
                "--evaluator {other} is not available for --space {space}; use `predictor` or `supernet` (trained here, then searched) for ofa-mbv3, or `table`, `proxy` (synflow, training-free) or `supernet` (one-shot: darts, gdas, advantagenas, unas, reinforce) for nb201, `supernet` for darts"
            ),
        }
        let mut protocol = self.protocol.protocol()?;
        let mut resolved = self.clone();
        if self.target != "host" && !self.target.starts_with("table:") {
            let target = hwnas_targets::description::find(&self.target)?;
            protocol.threads = target.ort.threads as usize;
            match target.kind {
                hwnas_targets::TargetKind::Local => resolved.target = "host".into(),
                hwnas_targets::TargetKind::Table => {
                    let table = target.table.clone().unwrap_or_default();
                    let device = table.split_once(':').map(|(_, d)| d).unwrap_or(&table);
                    resolved.target = format!("table:{device}");
                }
                hwnas_targets::TargetKind::Agent => {
                    if space_name != "nb201" {
                        bail!(
                            "--target {}: an agent target measures every architecture end to end, which suits nb201; for ofa-mbv3 run `hwnas search` on the board itself, where it builds the board's lookup table",
                            self.target
                        );
                    }
                    return self.nb201_remote_world(target);
                }
            }
        }
        match space_name {
            "ofa-mbv3" if ofa_supernet => resolved.ofa_supernet_world(&protocol),
            "ofa-mbv3" => resolved.ofa_world(&protocol, quiet),
            "darts" => resolved.darts_world(&protocol),
            _ => resolved.nb201_world(&protocol, quiet),
        }
    }

    fn ofa_world(&self, protocol: &Protocol, quiet: bool) -> Result<World> {
        if self.target != "host" && self.target != "table:note10" {
            bail!(
                "--target {}: for ofa-mbv3 use `host`, `table:note10`, or a target file",
                self.target
            );
        }
        let dir = locate_ofa_dir(self.ofa_dir.as_deref())?;
        match self.target.as_str() {
            "host" => {
                let runtime = OrtRuntime::load()?;
                let resolutions: Vec<u32> = (160..=224).step_by(16).collect();
                let bar = progress::bar("lookup table", 1);
                if quiet {
                    bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
                }
                let warn = |w: &str| bar.println(format!("warning: {w}"));
                let (lut, path) =
                    host_lut(&resolutions, protocol, 12, &progress::callback(&bar), &warn)
                        .context("building the latency lookup table for this machine")?;
                bar.finish_and_clear();
                let latency = LutLatency::new(lut)?;
                let space = latency.space().clone();
                let predictor = OfaPredictor::load(&dir.join(PREDICTOR_FILE), space.clone())?;
                let measured = MeasuredLatency::new(
                    Box::new(space.clone()),
                    *protocol,
                    hwnas_latency::cache::MeasurementCache::open(
                        &hwnas_latency::cache::default_dir(),
                    )
                    .ok(),
                );
                let reference_arch = space.from_config(&largest_ofa(224))?;
                let reference_ms = measured.measure(&reference_arch)?.stats.median_ms;
                let (budget_ms, budget_origin) = self.budget_from(
                    reference_ms,
                    "the largest Once-for-All subnet (kernel 7, expand 6, depth 4, r 224)",
                );
                if !quiet {
                    eprintln!(
                        "lookup table: {} ({} layers)",
                        path.display(),
                        latency.lut().entries.len()
                    );
                }
                Ok(World {
                    evaluator_name: "ofa-predictor".into(),
                    evaluator: Some(Box::new(predictor)),
                    search_latency: Box::new(latency),
                    measured: Some(Box::new(LocalMeasure(measured, *protocol))),
                    fingerprint: Some(Fingerprint::local(runtime, protocol.threads)),
                    budget_ms,
                    budget_origin,
                    reference: Some(("largest OFA subnet at 224".into(), reference_ms)),
                    space: Box::new(space),
                    nb201_table: None,
                    supernet: None,
                })
            }
            "table:note10" => {
                let lut = hwnas_core::benchmark::Note10Lut::load(
                    &dir.join(hwnas_core::benchmark::ofa::NOTE10_DIR),
                )?;
                let space = lut.space().clone();
                let reference_ms = lut.latency_of(&largest_ofa(224))?;
                let (budget_ms, budget_origin) = self.budget_from(
                    reference_ms,
                    "the largest Once-for-All subnet on the Note10 table",
                );
                let predictor = OfaPredictor::load(&dir.join(PREDICTOR_FILE), space.clone())?;
                Ok(World {
                    evaluator_name: "ofa-predictor".into(),
                    evaluator: Some(Box::new(predictor)),
                    search_latency: Box::new(lut),
                    measured: None,
                    fingerprint: None,
                    budget_ms,
                    budget_origin,
                    reference: Some(("largest OFA subnet at 224".into(), reference_ms)),
                    space: Box::new(space),
                    nb201_table: None,
                    supernet: None,
                })
            }
            other => unreachable!("target {other} was checked above"),
        }
    }

    fn nb201_world(&self, protocol: &Protocol, _quiet: bool) -> Result<World> {
        // The proxy needs no data: on this machine's own latency it runs without the table,
        // which then only reports test accuracy when present.
        let proxy_on_host = matches!(self.evaluator.as_deref(), Some("proxy" | "supernet"))
            && self.target == "host";
        let table = match Nb201Table::locate(self.table.as_deref()) {
            Ok(path) => Some(std::sync::Arc::new(Nb201Table::load(&path, &self.dataset)?)),
            Err(_) if proxy_on_host => None,
            Err(e) => return Err(e.into()),
        };
        let (evaluator, evaluator_name) = self.nb201_evaluator(table.as_ref());
        let space = Nb201Space::new();
        let reference_arch = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")?;
        let what = "the NAS-Bench-201 cell of all 3x3 convolutions";
        if self.target == "host" {
            return self.host_world(
                protocol,
                space,
                (&reference_arch, what),
                (Some(evaluator), evaluator_name),
                table,
            );
        }
        let device = self
            .target
            .strip_prefix("table:")
            .with_context(|| format!("--target {}: use `host` or table:DEVICE", self.target))?;
        let table = table.context("a table target needs the NAS-Bench-201 table")?;
        let latency = table.latency_column(device)?;
        let reference_ms = latency.latency_ms(&reference_arch)?;
        let (budget_ms, budget_origin) = self.budget_from(reference_ms, what);
        Ok(World {
            evaluator_name,
            evaluator: Some(evaluator),
            search_latency: Box::new(latency),
            measured: None,
            fingerprint: None,
            budget_ms,
            budget_origin,
            reference: Some((what.into(), reference_ms)),
            space: Box::new(space),
            nb201_table: Some(table),
            supernet: None,
        })
    }

    /// Once-for-All subnets scored by a supernet trained on `--data`, measured end to end
    /// on this machine at the images' resolution (the supernet sees no other).
    fn ofa_supernet_world(&self, protocol: &Protocol) -> Result<World> {
        if self.target != "host" {
            bail!(
                "--target {}: a supernet-scored Once-for-All search measures subnets at the images' resolution on this machine; use --target host (published tables cover 128-224 px)",
                self.target
            );
        }
        let r = match self.data.as_str() {
            "fashion-mnist" => 28,
            d if d.starts_with("cifar:") => 32,
            _ => self.image_size as u32,
        };
        let space = OfaSpace::new(vec![r])?;
        let reference_arch = space.from_config(&largest_ofa(r))?;
        self.host_world(
            protocol,
            space,
            (
                &reference_arch,
                &format!("the largest Once-for-All subnet (kernel 7, expand 6, depth 4) at {r} px"),
            ),
            (None, "supernet:ofa-mbv3".into()),
            None,
        )
    }

    /// DARTS cells, searched on their supernet, measured end to end on this machine (no
    /// published table covers them).
    fn darts_world(&self, protocol: &Protocol) -> Result<World> {
        if self.target != "host" {
            bail!(
                "--target {}: no published latency table covers DARTS cells; use --target local",
                self.target
            );
        }
        let space = hwnas_core::space::DartsSpace::new();
        let reference_arch = space.parse(DARTS_V2)?;
        self.host_world(
            protocol,
            space,
            (&reference_arch, "DARTS-V2's published cells"),
            (None, "supernet".into()),
            None,
        )
    }

    /// A world measuring on this machine: the budget from `reference` (an architecture and
    /// what to call it) measured here, unless given.
    fn host_world<S: SearchSpace + Clone + 'static>(
        &self,
        protocol: &Protocol,
        space: S,
        (reference_arch, what): (&Arch, &str),
        (evaluator, evaluator_name): (Option<Box<dyn Evaluator>>, String),
        nb201_table: Option<std::sync::Arc<Nb201Table>>,
    ) -> Result<World> {
        let runtime = OrtRuntime::load()?;
        let cache = || {
            hwnas_latency::cache::MeasurementCache::open(&hwnas_latency::cache::default_dir()).ok()
        };
        let measured = MeasuredLatency::new(Box::new(space.clone()), *protocol, cache());
        let reference_ms = measured.measure(reference_arch)?.stats.median_ms;
        let (budget_ms, budget_origin) = self.budget_from(reference_ms, what);
        let search = MeasuredLatency::new(Box::new(space.clone()), *protocol, cache());
        Ok(World {
            evaluator_name,
            evaluator,
            search_latency: Box::new(search),
            measured: Some(Box::new(LocalMeasure(measured, *protocol))),
            fingerprint: Some(Fingerprint::local(runtime, protocol.threads)),
            budget_ms,
            budget_origin,
            reference: Some((what.into(), reference_ms)),
            space: Box::new(space),
            nb201_table,
            supernet: None,
        })
    }

    fn nb201_remote_world(&self, target: hwnas_targets::Target) -> Result<World> {
        let path = Nb201Table::locate(self.table.as_deref())?;
        let table = std::sync::Arc::new(Nb201Table::load(&path, &self.dataset)?);
        let (evaluator, evaluator_name) = self.nb201_evaluator(Some(&table));
        let space = Nb201Space::new();
        let token = target.token()?;
        let remote = |space: &Nb201Space| RemoteMeasure {
            space: Box::new(space.clone()),
            target: target.clone(),
            token: token.clone(),
        };
        let reference_arch = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")?;
        let search = remote(&space);
        let reference_ms = search.arch_ms(&reference_arch)?;
        let what = "the NAS-Bench-201 cell of all 3x3 convolutions";
        let (budget_ms, budget_origin) = self.budget_from(reference_ms, what);
        Ok(World {
            evaluator_name,
            evaluator: Some(evaluator),
            search_latency: Box::new(search),
            measured: Some(Box::new(remote(&space))),
            fingerprint: None,
            budget_ms,
            budget_origin,
            reference: Some((what.into(), reference_ms)),
            space: Box::new(space),
            nb201_table: Some(table),
            supernet: None,
        })
    }

    /// The NAS-Bench-201 evaluator the flags ask for: the table, or synflow (with the table
    /// only reporting test accuracy).
    fn nb201_evaluator(
        &self,
        table: Option<&std::sync::Arc<Nb201Table>>,
    ) -> (Box<dyn Evaluator>, String) {
        match table {
            Some(table) if self.evaluator.as_deref() != Some("proxy") => {
                (Box::new(std::sync::Arc::clone(table)), table.name())
            }
            _ => {
                let proxy = hwnas_core::proxies::SynflowEvaluator {
                    table: table.cloned(),
                };
                let name = proxy.name();
                (Box::new(proxy), name)
            }
        }
    }

    fn budget_from(&self, reference_ms: f64, what: &str) -> (f64, String) {
        match self.latency_ms {
            Some(b) => (b, "given with --latency-ms".to_string()),
            None => (
                DEFAULT_BUDGET_FRACTION * reference_ms,
                format!(
                    "{:.0}% of {what}, which measured {reference_ms:.3} ms on the target",
                    DEFAULT_BUDGET_FRACTION * 100.0
                ),
            ),
        }
    }
}

fn read_history(path: &Path) -> Result<Vec<Record>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut records = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(&line) {
            Ok(record) => records.push(record),
            // A line cut short by a kill is the last one: drop it, it will be evaluated again.
            Err(_) => {
                eprintln!(
                    "note: {} line {} is incomplete (the run was killed while writing it); it will be evaluated again",
                    path.display(),
                    i + 1
                );
                break;
            }
        }
    }
    Ok(records)
}

/// Runs `hwnas search`.
pub fn run(args: &SearchArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let (settings, out, prior) = match &args.resume {
        Some(dir) => {
            let manifest_path = dir.join("manifest.json");
            let text = std::fs::read_to_string(&manifest_path).with_context(|| {
                format!("--resume {}: no manifest.json there; give the run directory of an earlier `hwnas search`", dir.display())
            })?;
            let manifest: Manifest = serde_json::from_str(&text)
                .with_context(|| format!("{} is not an hwnas manifest", manifest_path.display()))?;
            let mut settings = manifest.settings;
            settings.json = args.json;
            settings.throttle_ms = args.throttle_ms;
            let prior = read_history(&dir.join("history.jsonl"))?;
            (settings, dir.clone(), prior)
        }
        None => (args.clone(), args.out.clone(), Vec::new()),
    };
    if args.resume.is_none() && out.join("history.jsonl").exists() {
        bail!(
            "{} already holds a run; continue it with `--resume {}` or give another --out",
            out.display(),
            out.display()
        );
    }
    std::fs::create_dir_all(&out)
        .with_context(|| format!("cannot create the run directory {}", out.display()))?;
    let quiet = settings.json;
    let mut world = settings.build_world(quiet)?;

    let manifest = Manifest {
        command: std::env::args().collect(),
        hwnas_version: env!("CARGO_PKG_VERSION").to_string(),
        settings: settings.clone(),
        seed: settings.seed,
        space: world.space.name().to_string(),
        strategy: settings.strategy.clone(),
        evaluator: world.evaluator_name.clone(),
        target: settings.target.clone(),
        latency_model: world.search_latency.name(),
        latency_budget_ms: world.budget_ms,
        budget_origin: world.budget_origin.clone(),
        target_fingerprint: world.fingerprint.clone(),
        onnxruntime: OrtRuntime::load().ok().map(|r| r.version.clone()),
    };
    if args.resume.is_none() {
        std::fs::write(
            out.join("manifest.json"),
            serde_json::to_string_pretty(&manifest)?,
        )?;
    }
    if settings.evaluator.as_deref() == Some("supernet") {
        if world.space.name() != "ofa-mbv3" {
            return crate::oneshot_cmd::run(&settings, world, &out, args.resume.is_some(), started);
        }
        // Train once (or finish training), then search with the supernet as evaluator.
        let supernet = crate::oneshot_cmd::train_ofa(&settings, &out, args.resume.is_some())?;
        world.evaluator = Some(Box::new(std::sync::Arc::clone(&supernet)));
        world.supernet = Some(supernet);
    }

    // The search: every new record is appended and flushed before the next evaluation.
    let history_path = out.join("history.jsonl");
    let mut history_file = std::io::BufWriter::new(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&history_path)
            .with_context(|| format!("cannot write {}", history_path.display()))?,
    );
    let evaluator = world
        .evaluator
        .as_deref()
        .context("this space has no evaluator but a supernet: use --evaluator supernet")?;
    let mut oracle_inner = Oracle::new(evaluator, Some(world.search_latency.as_ref()));
    let known: HashMap<Arch, (Evaluation, Option<f64>)> = prior
        .iter()
        .map(|r| {
            let evaluation = Evaluation {
                accuracy: r.accuracy,
                test_accuracy: r.test_accuracy,
                cost_seconds: 0.0,
            };
            (r.arch.clone(), (evaluation, r.latency_ms))
        })
        .collect();
    let throttled = Throttled {
        inner: evaluator,
        ms: settings.throttle_ms,
    };
    if settings.throttle_ms > 0 {
        oracle_inner.evaluator = &throttled;
    }
    oracle_inner.known = known;
    let mut strategy = strategy::by_name(&settings.strategy, world.space.as_ref())?;
    let mut config = SearchConfig::new(Budget::Queries(settings.budget), settings.seed);
    config.objective = Objective::latency_budget(world.budget_ms);
    let bar = progress::bar("search", settings.budget as u64);
    if quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let already = prior.len();
    let history = run_search(
        world.space.as_ref(),
        strategy.as_mut(),
        &oracle_inner,
        &config,
        &mut |record| {
            if record.query > already {
                let mut line = serde_json::to_string(record).expect("records serialise");
                line.push('\n');
                history_file
                    .write_all(line.as_bytes())
                    .and_then(|()| history_file.flush())
                    .map_err(|source| hwnas_core::Error::Io {
                        path: history_path.clone(),
                        source,
                    })?;
            }
            bar.set_position(record.query as u64);
            Ok(())
        },
    )
    .map_err(anyhow::Error::from)?;
    bar.finish_and_clear();

    // Finalists: the most accurate architectures predicted within budget, re-measured.
    let mut candidates: Vec<&Record> = history.records().iter().filter(|r| r.feasible).collect();
    candidates.sort_by(|a, b| {
        b.accuracy
            .total_cmp(&a.accuracy)
            .then(a.query.cmp(&b.query))
    });
    if candidates.is_empty() {
        bail!(
            "no architecture met the {:.3} ms budget in {} queries; raise --latency-ms or --budget",
            world.budget_ms,
            history.len()
        );
    }
    // best.onnx is written for each finalist that measured within budget and profiled
    // again from the written file; the first to pass both is the answer.
    let onnx_path = out.join("best.onnx");
    let write_onnx = |record: &Record| -> Result<Vec<u8>> {
        let model = export_arch(
            world.space.name(),
            &record.arch_text,
            &mut RandomWeights::new(0),
            ExportOptions::default(),
        )?;
        let bytes = encode(&model);
        std::fs::write(&onnx_path, &bytes)
            .with_context(|| format!("cannot write {}", onnx_path.display()))?;
        Ok(bytes)
    };
    let mut finalists: Vec<(Record, Option<f64>)> = Vec::new();
    let mut chosen: Option<(Record, f64, bool)> = None;
    let mut verified = None;
    if let Some(measured) = &world.measured {
        let wanted = settings.finalists.max(1);
        let bar = progress::bar("finalists", wanted as u64);
        if quiet {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        for record in candidates.iter().take(wanted * 4) {
            bar.set_position(finalists.len().min(wanted) as u64);
            let ms = measured.arch_ms(&record.arch)?;
            finalists.push(((*record).clone(), Some(ms)));
            if ms <= world.budget_ms && chosen.is_none() {
                let check = measured.model_ms(&write_onnx(record)?)?;
                if check <= world.budget_ms * (1.0 - CONFIRMATION_MARGIN) {
                    chosen = Some(((*record).clone(), ms, true));
                    verified = Some(check);
                }
            }
            if finalists.len() >= wanted && chosen.is_some() {
                break;
            }
        }
        bar.finish_and_clear();
        if chosen.is_none() {
            let _ = std::fs::remove_file(&onnx_path);
            bail!(
                "none of the {} finalists measured within {:.3} ms end to end, with 2% to spare on a second profile (the lookup table is optimistic here, or the machine is busy); raise --latency-ms, or run again on a quiet machine",
                finalists.len(),
                world.budget_ms
            );
        }
    } else {
        let best = candidates[0];
        write_onnx(best)?;
        chosen = Some((best.clone(), best.latency_ms.unwrap_or(f64::NAN), false));
        finalists.push((best.clone(), None));
    }
    let (best, best_latency, measured) = chosen.expect("a chosen architecture");
    let inherited_onnx = match &world.supernet {
        Some(supernet) => Some(crate::oneshot_cmd::write_ofa_inherited(
            supernet,
            &best.arch,
            &best.arch_text,
            &out,
        )?),
        None => None,
    };

    write_pareto(
        &out,
        &history,
        &finalists,
        &best,
        world.budget_ms,
        world.space.name(),
    )?;
    let summary = Summary {
        world: &world,
        settings: &settings,
        best: &best,
        best_latency,
        measured,
        verified,
        finalists: &finalists,
        queries: history.len(),
        resumed_from: already,
        elapsed: started.elapsed(),
    };
    std::fs::write(out.join("report.md"), summary.report_md())?;

    if settings.json {
        let json = SearchJson {
            space: world.space.name().to_string(),
            strategy: settings.strategy.clone(),
            arch: best.arch_text.clone(),
            latency_ms: best_latency,
            latency_budget_ms: world.budget_ms,
            accuracy_estimate: best.accuracy,
            onnx: onnx_path.display().to_string(),
            measured,
            queries: history.len(),
            inherited_onnx: inherited_onnx.map(|p| p.display().to_string()),
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        summary.print();
    }
    Ok(ExitCode::SUCCESS)
}

/// Points not dominated in (lower latency, higher accuracy), by latency.
fn pareto_front(records: &[Record]) -> Vec<&Record> {
    let mut sorted: Vec<&Record> = records.iter().filter(|r| r.latency_ms.is_some()).collect();
    sorted.sort_by(|a, b| {
        a.latency_ms
            .unwrap()
            .total_cmp(&b.latency_ms.unwrap())
            .then(b.accuracy.total_cmp(&a.accuracy))
    });
    let mut front: Vec<&Record> = Vec::new();
    for r in sorted {
        if front.last().is_none_or(|last| r.accuracy > last.accuracy) {
            front.push(r);
        }
    }
    front
}

fn write_pareto(
    out: &Path,
    history: &hwnas_core::History,
    finalists: &[(Record, Option<f64>)],
    best: &Record,
    budget: f64,
    space: &str,
) -> Result<()> {
    let front = pareto_front(history.records());
    let mut csv = csv::Writer::from_path(out.join("pareto.csv"))?;
    csv.write_record([
        "query",
        "latency_ms",
        "measured_latency_ms",
        "accuracy",
        "within_budget",
        "chosen",
        "arch",
    ])?;
    for r in &front {
        let measured = finalists
            .iter()
            .find(|(f, _)| f.arch == r.arch)
            .and_then(|(_, m)| *m);
        csv.write_record([
            r.query.to_string(),
            format!("{:.4}", r.latency_ms.unwrap_or(f64::NAN)),
            measured.map(|m| format!("{m:.4}")).unwrap_or_default(),
            format!("{:.4}", r.accuracy),
            (r.latency_ms.unwrap_or(f64::INFINITY) <= budget).to_string(),
            (r.arch == best.arch).to_string(),
            r.arch_text.clone(),
        ])?;
    }
    csv.flush()?;
    let points: Vec<(f64, f64)> = history
        .records()
        .iter()
        .filter_map(|r| r.latency_ms.map(|l| (l, r.accuracy)))
        .collect();
    let front_points: Vec<(f64, f64)> = front
        .iter()
        .map(|r| (r.latency_ms.unwrap(), r.accuracy))
        .collect();
    let chosen = (best.latency_ms.unwrap_or(f64::NAN), best.accuracy);
    plot::pareto_svg(
        &out.join("pareto.svg"),
        &format!("{space}: accuracy estimate vs latency"),
        &points,
        &front_points,
        chosen,
        budget,
    )
}

struct Summary<'a> {
    world: &'a World,
    settings: &'a SearchArgs,
    best: &'a Record,
    best_latency: f64,
    measured: bool,
    verified: Option<f64>,
    finalists: &'a [(Record, Option<f64>)],
    queries: usize,
    resumed_from: usize,
    elapsed: Duration,
}

impl Summary<'_> {
    fn print(&self) {
        let w = self.world;
        println!(
            "hwnas search: {} with {} on {} ({} queries{})",
            w.space.name(),
            self.settings.strategy,
            self.settings.target,
            self.queries,
            if self.resumed_from > 0 {
                format!(", {} replayed from the earlier run", self.resumed_from)
            } else {
                String::new()
            }
        );
        println!("  budget     {:.3} ms ({})", w.budget_ms, w.budget_origin);
        println!("  chosen     {}", self.best.arch_text);
        println!(
            "  accuracy   {:.2} (estimate: {})",
            self.best.accuracy, w.evaluator_name
        );
        println!(
            "  latency    {:.3} ms {}",
            self.best_latency,
            if self.measured {
                "measured end to end"
            } else {
                "from the table"
            }
        );
        if let Some(v) = self.verified {
            println!("  best.onnx  {:.3} ms re-profiled from the written file", v);
        }
        println!(
            "  run dir    {}  (report.md, manifest.json, history.jsonl, pareto.csv, pareto.svg, best.onnx)",
            self.settings.out.display()
        );
        println!("  time       {:.1} s", self.elapsed.as_secs_f64());
    }

    fn report_md(&self) -> String {
        let w = self.world;
        let mut md = String::new();
        md.push_str(&format!(
            "# hwnas search report\n\n**Chosen architecture** ({}):\n\n```\n{}\n```\n\n",
            w.space.name(),
            self.best.arch_text
        ));
        md.push_str("| | |\n| --- | --- |\n");
        md.push_str(&format!(
            "| accuracy estimate | {:.2} ({}) |\n",
            self.best.accuracy, w.evaluator_name
        ));
        md.push_str(&format!(
            "| latency | {:.3} ms ({}) |\n",
            self.best_latency,
            if self.measured {
                "measured end to end with ONNX Runtime"
            } else {
                "from the target's table"
            }
        ));
        if let Some(v) = self.verified {
            md.push_str(&format!("| best.onnx re-profiled | {v:.3} ms |\n"));
        }
        md.push_str(&format!(
            "| latency budget | {:.3} ms — {} |\n",
            w.budget_ms, w.budget_origin
        ));
        md.push_str(&format!(
            "| target | {} ({}) |\n",
            self.settings.target,
            w.search_latency.name()
        ));
        if let Some(f) = &w.fingerprint {
            md.push_str(&format!(
                "| measured on | ONNX Runtime {} {} on {} ({} threads of {} cores) |\n",
                f.ort_version, f.execution_provider, f.cpu_model, f.threads, f.cores
            ));
        }
        md.push_str(&format!(
            "| strategy | {} (seed {}), {} distinct architectures evaluated |\n",
            self.settings.strategy, self.settings.seed, self.queries
        ));
        if let Some((what, ms)) = &w.reference {
            md.push_str(&format!("| reference | {what}: {ms:.3} ms |\n"));
        }
        md.push_str(&format!(
            "| wall time | {:.1} s |\n\n",
            self.elapsed.as_secs_f64()
        ));
        md.push_str("![accuracy vs latency](pareto.svg)\n\n");
        if self.finalists.iter().any(|(_, m)| m.is_some()) {
            let ranked_by = if self.world.search_latency.name().starts_with("measured") {
                "its own end-to-end measurement"
            } else {
                "the latency model's prediction"
            };
            md.push_str(&format!("## Finalists re-measured end to end\n\nThe search ranks architectures by {ranked_by}; the most accurate ones within budget were then exported and measured whole again, and the answer profiled once more from the written file, with 2% to spare for run-to-run spread.\n\n| accuracy | search ms | measured ms | within budget |\n| --- | --- | --- | --- |\n"));
            for (r, m) in self.finalists {
                md.push_str(&format!(
                    "| {:.2} | {:.3} | {} | {} |\n",
                    r.accuracy,
                    r.latency_ms.unwrap_or(f64::NAN),
                    m.map(|v| format!("{v:.3}")).unwrap_or_default(),
                    m.is_some_and(|v| v <= w.budget_ms)
                ));
            }
            md.push('\n');
        }
        md.push_str("## Files\n\n- `best.onnx`: the chosen network, opset 17, batch norm folded. Its weights are random (He initialisation): it has the chosen architecture's exact structure and latency; train it, or take weights from a supernet, before use.\n- `history.jsonl`: every evaluated architecture, one JSON object per line, written as it was evaluated.\n- `pareto.csv` / `pareto.svg`: the accuracy-latency Pareto front of what was evaluated; the budget line and the chosen point are marked.\n- `manifest.json`: the command, versions, seed, settings and target fingerprint; `hwnas search --resume DIR` continues an interrupted run from it.\n");
        if let Some(supernet) = &self.world.supernet {
            let n = supernet.normalisation();
            md.push_str(&format!(
                "- `best-inherited.onnx`: the chosen subnet at the supernet's width with the weights it inherits from the supernet that scored it (batch norm recalibrated, folded): the network its accuracy estimate was measured with. Inputs: images in [0, 1] normalised per channel with mean {:?} and std {:?}.\n",
                n.mean, n.std
            ));
        }
        md
    }
}
