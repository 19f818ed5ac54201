//! `hwnas search`: the main job. The flags become a search plan; the search library runs
//! it; this prints the outcome.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use clap::parser::ValueSource;
use hwnas_search::plan::{default_epochs, default_train_images};
use hwnas_search::{RunOptions, SearchPlan, SearchRequest};

use crate::latency_cmds::ProtocolArgs;
use crate::output::emit;

/// Options of `hwnas search`.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// Search space: ofa-mbv3 (Once-for-All MobileNetV3), nb201 (NAS-Bench-201) or darts
    /// (DARTS cells, with `--evaluator supernet`).
    #[arg(long, default_value = "ofa-mbv3")]
    space: String,
    /// Strategy: random, rea, evolution, reinforce, l2nas or ganas (sampling strategies); with
    /// `--evaluator supernet` on nb201 or darts, a one-shot strategy: darts, gdas,
    /// advantagenas, unas, reinforce or radars (within `--memory-mib`).
    #[arg(long, default_value = "rea")]
    strategy: String,
    /// Accuracy estimate: `predictor` (Once-for-All's published ImageNet predictor, for
    /// ofa-mbv3), `table` (the NAS-Bench-201 table, for nb201), `proxy` (synflow, nb201) or
    /// `supernet` (a weight-sharing supernet trained on `--data`: a one-shot search for
    /// nb201 and darts; for ofa-mbv3 the Once-for-All supernet trained once, then searched
    /// by the sampling strategy) or `train` (each candidate trained for `--epochs` on
    /// `--data`, any space; see `--executor`). Default: the space's.
    #[arg(long)]
    evaluator: Option<String>,
    /// Latency target: `host` (this machine, measured with ONNX Runtime), table:DEVICE (a
    /// published latency table: table:note10 for ofa-mbv3, table:pixel3 etc. for nb201), or
    /// a target's name or TOML file (`hwnas targets list`; agent targets measure on the board).
    #[arg(long, default_value = "host")]
    target: String,
    /// Latency budget in ms. Default: 50% of the reference network's latency on the target
    /// (ofa-mbv3: the largest subnet, kernel 7, expand 6, depth 4, at 224; nb201: the cell of
    /// all 3x3 convolutions).
    #[arg(long, value_name = "MS")]
    latency_ms: Option<f64>,
    /// Distinct architectures to evaluate. Default: by what a query costs: 5000 with a
    /// predictor or a table (under a second), 500 with a proxy or a supernet's subnets, 100
    /// with `--evaluator train`.
    #[arg(long)]
    budget: Option<usize>,
    /// Seeds every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run directory (on a filesystem every machine of the run sees).
    #[arg(long, value_name = "DIR", default_value = "hwnas-run")]
    out: PathBuf,
    /// Continue the interrupted run in DIR (its settings are read from DIR/manifest.json).
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// NAS-Bench-201 table (nb201); default: $HWNAS_NB201_TABLE or the shared data.
    #[arg(long, value_name = "FILE")]
    table: Option<PathBuf>,
    /// Dataset columns of the NAS-Bench-201 table.
    #[arg(long, default_value = "cifar10")]
    dataset: String,
    /// Folder with Once-for-All's predictor and lookup tables; default: $HWNAS_OFA_DIR or
    /// the shared data.
    #[arg(long, value_name = "DIR")]
    ofa_dir: Option<PathBuf>,
    #[command(flatten)]
    training: TrainingArgs,
    /// Finalists re-measured end to end before the answer is given.
    #[arg(long, default_value_t = 5)]
    finalists: usize,
    /// Architectures proposed and evaluated together (default: 8 with `--evaluator train`,
    /// 25 with `--evaluator predictor`, else 1); the history depends on it, not on the
    /// executor.
    #[arg(long, value_name = "N")]
    proposals: Option<usize>,
    /// Weight of a one-shot search's latency term `c ReLU(latency - budget)`, in units of
    /// 1/budget per ms over the budget (default 1; 0 searches for accuracy alone). Every
    /// one-shot strategy uses it, ramped up from 0 after its warm-up.
    #[arg(long, value_name = "W")]
    latency_weight: Option<f64>,
    /// The memory a one-shot training step may hold, MiB (activations, saved intermediates
    /// and gradients, as the tape accounts them). `--strategy radars` prunes the space
    /// until DARTS's dense step over what is left fits.
    #[arg(long, value_name = "M")]
    memory_mib: Option<f64>,
    /// The least share of a one-shot search's architecture phase that trains the weights
    /// alone first, one uniformly drawn path per step (default 0.3; AdvantageNAS keeps its
    /// authors' 50/90).
    #[arg(long, value_name = "S")]
    warmup_share: Option<f64>,
    /// The share of a one-shot search's steps at the end that train the found cell's path
    /// alone, its architecture frozen, with the learning rate restarted (default 0.3; 0
    /// scores the cell with the weights the search left).
    #[arg(long, value_name = "S")]
    finetune_share: Option<f64>,
    #[command(flatten)]
    protocol: ProtocolArgs,
    #[command(flatten)]
    executor: crate::cluster::ExecutorArgs,
    /// Print one JSON object for scripts.
    #[arg(long)]
    json: bool,
    /// Testing aid: sleep this long after each evaluation.
    #[arg(long, hide = true, default_value_t = 0)]
    throttle_ms: u64,
}

/// The images a network trains on and how: shared by `hwnas search` (a supernet, or each
/// candidate under `--evaluator train`) and `hwnas train` (one architecture).
#[derive(Debug, Clone, Args)]
pub struct TrainingArgs {
    /// Images to train on: `fashion-mnist` (the Debian package or the shared data), `cifar:DIR` (CIFAR-10/100 binary batches) or `folder:DIR` (a folder of
    /// images per class).
    #[arg(long, default_value = "fashion-mnist")]
    pub(crate) data: String,
    /// Epochs of supernet training (`--evaluator supernet`), of each candidate's
    /// (`--evaluator train`), or of `hwnas train`'s architecture [default: 6 for a one-shot
    /// search of nb201 cells (darts: 4, unas: 2), 4 otherwise].
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
    /// Training images (a one-shot search: half for weights, half for the architecture);
    /// 0 for all but the held-out ones [default: 0 for a one-shot search of nb201 cells,
    /// 8000 otherwise].
    #[arg(long)]
    pub(crate) train_images: Option<usize>,
    /// Held-out training images the architectures are scored on.
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
    /// Kernels a supernet runs on: `cpu` (the reference implementation) or `wgpu` (the WGSL
    /// kernels on the adapter wgpu picks: a GPU, or Mesa's lavapipe on a CPU-only machine;
    /// `WGPU_ADAPTER_NAME` chooses).
    #[arg(long, default_value = "cpu")]
    pub(crate) backend: String,
    /// Images per training batch.
    #[arg(long, default_value_t = 64)]
    pub(crate) batch_size: usize,
    /// Side images of a `folder:DIR` data set are resized to.
    #[arg(long, default_value_t = 32)]
    pub(crate) image_size: usize,
    /// Augment the training batches: random crops of the image padded by an eighth of its
    /// side, and horizontal flips (off: at a search's few epochs it costs accuracy).
    #[arg(long)]
    pub(crate) augment: bool,
}

/// Parses a flag's text into its typed setting, naming the flag on failure.
pub fn typed<T: std::str::FromStr<Err = String>>(flag: &str, text: &str) -> Result<T> {
    text.parse()
        .map_err(|problem| anyhow!("--{flag} {text}: {problem}"))
}

impl SearchArgs {
    /// The plan these flags describe.
    fn plan(&self) -> Result<SearchPlan> {
        let space = typed("space", &self.space)?;
        let evaluator = self
            .evaluator
            .as_deref()
            .map(|e| typed("evaluator", e))
            .transpose()?;
        let strategy = typed("strategy", &self.strategy)?;
        Ok(SearchPlan {
            space,
            strategy,
            evaluator,
            target: typed("target", &self.target)?,
            latency_ms: self.latency_ms,
            budget: self.budget,
            seed: self.seed,
            out: self.out.clone(),
            table: self.table.clone(),
            dataset: self.dataset.clone(),
            ofa_dir: self.ofa_dir.clone(),
            data: typed("data", &self.training.data)?,
            epochs: self
                .training
                .epochs
                .unwrap_or_else(|| default_epochs(space, evaluator, strategy)),
            train_images: self
                .training
                .train_images
                .unwrap_or_else(|| default_train_images(space, evaluator)),
            eval_images: self.training.eval_images,
            channels: self.training.channels,
            cells: self.training.cells,
            backend: typed("backend", &self.training.backend)?,
            batch_size: self.training.batch_size,
            image_size: self.training.image_size,
            finalists: self.finalists,
            protocol: self.protocol.settings(),
            proposals: self.proposals,
            latency_weight: self.latency_weight,
            memory_mib: self.memory_mib,
            augment: self.training.augment,
            warmup_share: self.warmup_share,
            finetune_share: self.finetune_share,
        })
    }
}

/// The plan's settings given on the command line (not defaulted), as the flags spell them.
pub fn given_flags(matches: &clap::ArgMatches) -> Vec<String> {
    matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.as_str().replace('_', "-"))
        .filter(|flag| !matches!(flag.as_str(), "resume" | "json" | "throttle-ms"))
        .filter(|flag| !flag.starts_with("slurm-") && !matches!(flag.as_str(), "executor" | "jobs"))
        .collect()
}

/// Runs `hwnas search`; `given` names the flags given on the command line.
pub fn run(args: &SearchArgs, given: &[String]) -> Result<ExitCode> {
    let request = match &args.resume {
        Some(dir) => SearchRequest::Resume {
            dir: dir.clone(),
            given: given.to_vec(),
            values: Some(Box::new(args.plan()?)),
        },
        None => {
            let plan = args.plan()?;
            plan.validate()?;
            SearchRequest::New(Box::new(plan))
        }
    };
    let options = RunOptions {
        command: std::env::args().collect(),
        throttle_ms: args.throttle_ms,
        executor: args.executor.settings()?,
    };
    let observer = crate::progress::Bars::new(args.json);
    let outcome = hwnas_search::run(&request, &options, &observer)?;
    emit(args.json, &outcome, hwnas_search::Outcome::summary)?;
    if let Some(failure) = outcome.over_budget_message() {
        bail!(failure);
    }
    Ok(ExitCode::SUCCESS)
}
