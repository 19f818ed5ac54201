//! The search plan: every setting of `hwnas search`, typed, and checked as a whole before
//! anything expensive runs (ONNX Runtime, a lookup table, a reference measurement, images).
//!
//! The plan's setting names are the command's flags (`latency_ms` is `--latency-ms`): a
//! [`Error::Plan`] names the setting, the value given and the fix. The plan is what the run
//! directory's manifest stores, so it is serialised in its own schema (plain strings for the
//! enums, as the flags spell them), independent of how the command line is parsed.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use hwnas_core::supernet::SupernetKind;
use hwnas_latency::profile::Protocol;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `a, b or c`.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => only.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Declares a setting enum spelled as the command line spells it: `FromStr` (with the
/// allowed names in the error), `Display`, and serde as the same strings.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text $(, alias = $alias)*)] $variant),+
        }

        impl $name {
            /// Every value, as spelled on the command line.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The value as spelled on the command line.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> std::result::Result<Self, String> {
                match text {
                    $($text $(| $alias)* => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} `{other}`; use {}",
                        $what,
                        one_of(Self::NAMES)
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// The search space.
    SpaceKind, "space" {
        /// Once-for-All MobileNetV3 (kernel, expand, depth, resolution).
        Ofa = "ofa-mbv3" | "ofa",
        /// NAS-Bench-201 cells.
        Nb201 = "nb201",
        /// DARTS normal and reduction cells.
        Darts = "darts",
    }
);

named_enum!(
    /// The search strategy: a sampling strategy (proposes architectures an evaluator scores)
    /// or a one-shot strategy (learns an architecture distribution on a supernet).
    StrategyKind, "strategy" {
        /// Random search.
        Random = "random",
        /// Regularized evolution.
        Rea = "rea",
        /// Once-for-All's generational evolution (for cheap evaluators).
        Evolution = "evolution",
        /// REINFORCE (a sampling controller, or on a supernet).
        Reinforce = "reinforce",
        /// L2NAS's actor-critic.
        L2nas = "l2nas",
        /// GA-NAS's generator and discriminator.
        Ganas = "ganas",
        /// DARTS (one-shot).
        Darts = "darts",
        /// GDAS (one-shot).
        Gdas = "gdas",
        /// AdvantageNAS (one-shot).
        Advantagenas = "advantagenas",
        /// UNAS (one-shot).
        Unas = "unas",
        /// RADARS (one-shot within `--memory-mib`: a controller prunes, then DARTS).
        Radars = "radars",
    }
);

named_enum!(
    /// What scores accuracy.
    EvaluatorKind, "evaluator" {
        /// Once-for-All's published ImageNet accuracy predictor (ofa-mbv3).
        Predictor = "predictor",
        /// The NAS-Bench-201 table (nb201).
        Table = "table",
        /// Synflow, training-free (nb201).
        Proxy = "proxy",
        /// A weight-sharing supernet trained on the user's images.
        Supernet = "supernet",
        /// Each candidate trained on its own for `--epochs` on the user's images, scored on
        /// held-out ones (an executor fans the training out).
        Train = "train",
    }
);

named_enum!(
    /// Who evaluates a batch of proposals (how the search runs, never what it answers).
    ExecutorKind, "executor" {
        /// This machine, `--jobs` evaluations at a time.
        Local = "local",
        /// A Slurm cluster: each batch one job array of `hwnas worker` tasks.
        Slurm = "slurm",
    }
);

named_enum!(
    /// The kernels a supernet runs on.
    BackendKind, "backend" {
        /// The CPU reference implementation.
        Cpu = "cpu",
        /// The WGSL kernels through wgpu (a GPU, or lavapipe on a CPU).
        Wgpu = "wgpu",
    }
);

impl StrategyKind {
    /// The sampling strategies (core's `strategy::by_name`).
    pub const SAMPLING: [StrategyKind; 6] = [
        StrategyKind::Random,
        StrategyKind::Rea,
        StrategyKind::Evolution,
        StrategyKind::Reinforce,
        StrategyKind::L2nas,
        StrategyKind::Ganas,
    ];
    /// The one-shot strategies (core's `oneshot::by_name`).
    pub const ONE_SHOT: [StrategyKind; 6] = [
        StrategyKind::Darts,
        StrategyKind::Gdas,
        StrategyKind::Advantagenas,
        StrategyKind::Unas,
        StrategyKind::Reinforce,
        StrategyKind::Radars,
    ];

    /// Whether it proposes architectures for an evaluator to score.
    pub fn is_sampling(self) -> bool {
        Self::SAMPLING.contains(&self)
    }

    /// Whether it drives the mixed ops of a supernet.
    pub fn is_one_shot(self) -> bool {
        Self::ONE_SHOT.contains(&self)
    }
}

fn names(kinds: &[StrategyKind]) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl SpaceKind {
    /// The space's evaluator when none is given.
    pub fn default_evaluator(self) -> EvaluatorKind {
        match self {
            SpaceKind::Nb201 => EvaluatorKind::Table,
            SpaceKind::Ofa => EvaluatorKind::Predictor,
            SpaceKind::Darts => EvaluatorKind::Supernet,
        }
    }

    /// Its supernet.
    pub fn supernet(self) -> SupernetKind {
        match self {
            SpaceKind::Nb201 => SupernetKind::Nb201,
            SpaceKind::Darts => SupernetKind::Darts,
            SpaceKind::Ofa => SupernetKind::Ofa,
        }
    }
}

/// Where latency comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TargetSpec {
    /// This machine, measured with ONNX Runtime.
    Host,
    /// A published latency table's device column (`table:pixel3`, `table:note10`).
    Table(String),
    /// A target description: a name from the targets folder or a TOML file.
    Described(String),
}

impl FromStr for TargetSpec {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text {
            "host" => Ok(TargetSpec::Host),
            "" => Err(
                "an empty target; use host, table:DEVICE or a target's name or TOML file".into(),
            ),
            t => match t.strip_prefix("table:") {
                Some("") => Err("table: needs a device, e.g. table:pixel3 or table:note10".into()),
                Some(device) => Ok(TargetSpec::Table(device.to_string())),
                None => Ok(TargetSpec::Described(t.to_string())),
            },
        }
    }
}

impl TryFrom<String> for TargetSpec {
    type Error = String;
    fn try_from(text: String) -> std::result::Result<Self, String> {
        text.parse()
    }
}

impl From<TargetSpec> for String {
    fn from(target: TargetSpec) -> String {
        target.to_string()
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Host => f.write_str("host"),
            TargetSpec::Table(device) => write!(f, "table:{device}"),
            TargetSpec::Described(name) => f.write_str(name),
        }
    }
}

/// The images a supernet trains on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DataSource {
    /// Fashion-MNIST (Debian's package or the shared data).
    FashionMnist,
    /// CIFAR-10/100 binary batches in a folder.
    Cifar(PathBuf),
    /// A folder of images per class.
    Folder(PathBuf),
}

impl FromStr for DataSource {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        if text == "fashion-mnist" {
            return Ok(DataSource::FashionMnist);
        }
        let dir = |d: &str| {
            if d.is_empty() {
                Err(format!(
                    "`{text}` names no folder; give cifar:DIR or folder:DIR"
                ))
            } else {
                Ok(PathBuf::from(d))
            }
        };
        if let Some(d) = text.strip_prefix("cifar:") {
            return dir(d).map(DataSource::Cifar);
        }
        if let Some(d) = text.strip_prefix("folder:") {
            return dir(d).map(DataSource::Folder);
        }
        Err(format!(
            "unknown data set `{text}`; use fashion-mnist, cifar:DIR (CIFAR-10/100 binary batches) or folder:DIR (a folder of images per class)"
        ))
    }
}

impl TryFrom<String> for DataSource {
    type Error = String;
    fn try_from(text: String) -> std::result::Result<Self, String> {
        text.parse()
    }
}

impl From<DataSource> for String {
    fn from(data: DataSource) -> String {
        data.to_string()
    }
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::FashionMnist => f.write_str("fashion-mnist"),
            DataSource::Cifar(d) => write!(f, "cifar:{}", d.display()),
            DataSource::Folder(d) => write!(f, "folder:{}", d.display()),
        }
    }
}

/// The most ONNX Runtime threads a measurement may ask for.
pub const MAX_THREADS: usize = 1024;
/// The most timed runs a measurement may ask for.
pub const MAX_RUNS: usize = 100_000;

/// How each latency measurement is taken.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProtocolSettings {
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
    /// Exactly this many timed runs (`None`: adaptive, 50 to 1000).
    pub runs: Option<usize>,
    /// Untimed warm-up runs.
    pub warmup: usize,
}

impl Default for ProtocolSettings {
    fn default() -> Self {
        ProtocolSettings {
            threads: 1,
            runs: None,
            warmup: 10,
        }
    }
}

impl ProtocolSettings {
    /// The profiling protocol, checked against its real ranges.
    pub fn protocol(&self) -> Result<Protocol> {
        if self.threads == 0 || self.threads > MAX_THREADS {
            return Err(Error::plan(
                "threads",
                self.threads,
                format!("ONNX Runtime threads must be 1 to {MAX_THREADS}"),
            ));
        }
        if self.warmup > MAX_RUNS {
            return Err(Error::plan(
                "warmup",
                self.warmup,
                format!("at most {MAX_RUNS} warm-up runs"),
            ));
        }
        let mut protocol = Protocol {
            threads: self.threads,
            warmup: self.warmup,
            ..Protocol::default()
        };
        if let Some(runs) = self.runs {
            if runs == 0 || runs > MAX_RUNS {
                return Err(Error::plan(
                    "runs",
                    runs,
                    format!("timed runs must be 1 to {MAX_RUNS}"),
                ));
            }
            protocol.min_runs = runs;
            protocol.max_runs = runs;
            protocol.max_seconds = 1e9;
        }
        protocol.validate()?;
        Ok(protocol)
    }
}

/// Every setting of one search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchPlan {
    /// The search space.
    pub space: SpaceKind,
    /// The strategy.
    pub strategy: StrategyKind,
    /// The evaluator; `None` for the space's default.
    pub evaluator: Option<EvaluatorKind>,
    /// Where latency comes from.
    pub target: TargetSpec,
    /// The latency budget in ms; `None` for half the reference network's latency.
    pub latency_ms: Option<f64>,
    /// Distinct architectures a sampling search evaluates (`None`: by the evaluator's cost,
    /// see [`SearchPlan::budget`]).
    pub budget: Option<usize>,
    /// Seeds every random choice.
    pub seed: u64,
    /// The run directory.
    pub out: PathBuf,
    /// The NAS-Bench-201 table; `None` for `$HWNAS_NB201_TABLE` or the shared data.
    pub table: Option<PathBuf>,
    /// The NAS-Bench-201 table's data set columns.
    pub dataset: String,
    /// Once-for-All's predictor and tables; `None` for `$HWNAS_OFA_DIR` or the shared data.
    pub ofa_dir: Option<PathBuf>,
    /// Images a supernet trains on.
    pub data: DataSource,
    /// Epochs of supernet training.
    pub epochs: usize,
    /// Training images a supernet uses (0: all but the held-out ones).
    pub train_images: usize,
    /// Held-out images a supernet's architectures are scored on.
    pub eval_images: usize,
    /// Supernet channels (`None`: the space's reduced default).
    pub channels: Option<usize>,
    /// Supernet cells (`None`: the space's reduced default).
    pub cells: Option<usize>,
    /// The kernels a supernet runs on.
    #[serde(default = "default_backend")]
    pub backend: BackendKind,
    /// Images per supernet batch.
    pub batch_size: usize,
    /// Side a `folder:DIR` data set's images are resized to.
    pub image_size: usize,
    /// Finalists re-measured end to end.
    pub finalists: usize,
    /// How latency is measured.
    pub protocol: ProtocolSettings,
    /// Architectures proposed and evaluated together (`None`: 8 with `--evaluator train`,
    /// 1 otherwise); the history depends on it, never on the executor.
    #[serde(default)]
    pub proposals: Option<usize>,
    /// Weight of a one-shot search's latency term per ms over the budget, as a multiple
    /// of `1 / budget` (`None`: 1; 0: accuracy alone).
    #[serde(default)]
    pub latency_weight: Option<f64>,
    /// The memory a one-shot training step may hold, MiB (the tape's accounting); RADARS
    /// searches within it.
    #[serde(default)]
    pub memory_mib: Option<f64>,
    /// The least share of a one-shot search's architecture phase that trains the weights
    /// alone first (`None`: [`DEFAULT_WARMUP_SHARE`]).
    #[serde(default)]
    pub warmup_share: Option<f64>,
    /// Whether training batches are augmented (random crops of the image padded by an
    /// eighth of its side, horizontal flips). Off by default: at the few epochs a search
    /// affords it costs accuracy (a cell trained alone for 1,100 steps on Fashion-MNIST:
    /// 85.5% held out with it, 89.5% without).
    #[serde(default)]
    pub augment: bool,
    /// The share of a one-shot search's steps at the end that train the found cell's path
    /// alone (`None`: [`DEFAULT_FINETUNE_SHARE`]).
    #[serde(default)]
    pub finetune_share: Option<f64>,
}

/// A one-shot search's default weights-only warm-up, as a share of its architecture phase
/// (a strategy whose authors warm up longer keeps its own: AdvantageNAS 50/90).
pub const DEFAULT_WARMUP_SHARE: f64 = 0.3;

/// A one-shot search's default fine-tuning of the found cell, as a share of all its steps.
pub const DEFAULT_FINETUNE_SHARE: f64 = 0.3;

/// Epochs of a one-shot NAS-Bench-201 search when `--epochs` is not given (over each half
/// of every training image but the held-out ones): sized so the default search ends within
/// 15 minutes on 2 cores (docs/BENCHMARKS.md).
pub const ONE_SHOT_NB201_EPOCHS: usize = 6;

/// [`ONE_SHOT_NB201_EPOCHS`] for DARTS, whose every architecture and weight step runs all
/// candidates (0.78 s a step against 0.17-0.28 s for the sampling strategies).
pub const ONE_SHOT_NB201_DARTS_EPOCHS: usize = 4;

/// [`ONE_SHOT_NB201_EPOCHS`] for UNAS, whose architecture step runs the discrete and the
/// relaxed sample on both halves (0.6-0.9 s a step; 829 s for the whole search, against
/// 332-482 s at 2 epochs, whose cells took 3 or 4 parameter-free edges).
pub const ONE_SHOT_NB201_UNAS_EPOCHS: usize = 4;

/// `--epochs` when not given: [`ONE_SHOT_NB201_EPOCHS`] (DARTS:
/// [`ONE_SHOT_NB201_DARTS_EPOCHS`], UNAS: [`ONE_SHOT_NB201_UNAS_EPOCHS`]) for a one-shot search of NAS-Bench-201 cells, 4
/// otherwise (`evaluator`: `None` for the space's default).
pub fn default_epochs(
    space: SpaceKind,
    evaluator: Option<EvaluatorKind>,
    strategy: StrategyKind,
) -> usize {
    match (one_shot_nb201(space, evaluator), strategy) {
        (true, StrategyKind::Darts) => ONE_SHOT_NB201_DARTS_EPOCHS,
        (true, StrategyKind::Unas) => ONE_SHOT_NB201_UNAS_EPOCHS,
        (true, _) => ONE_SHOT_NB201_EPOCHS,
        _ => 4,
    }
}

/// `--train-images` when not given: every image but the held-out ones (0) for a one-shot
/// search of NAS-Bench-201 cells, 8,000 otherwise.
pub fn default_train_images(space: SpaceKind, evaluator: Option<EvaluatorKind>) -> usize {
    if one_shot_nb201(space, evaluator) {
        0
    } else {
        8000
    }
}

fn one_shot_nb201(space: SpaceKind, evaluator: Option<EvaluatorKind>) -> bool {
    space == SpaceKind::Nb201
        && evaluator.unwrap_or_else(|| space.default_evaluator()) == EvaluatorKind::Supernet
}

fn default_backend() -> BackendKind {
    BackendKind::Cpu
}

/// The kinds of search a plan can describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    /// A sampling strategy scores architectures with a predictor, a table or a proxy.
    Sampling,
    /// A one-shot strategy learns a cell on a supernet (nb201, darts).
    OneShot,
    /// Once-for-All: the supernet trained once, then searched by a sampling strategy.
    TrainOnceThenSample,
}

/// Proposals per batch of a training search: enough to keep a few cluster nodes or cores
/// busy, few enough that the strategy still learns between batches.
pub const DEFAULT_TRAINING_PROPOSALS: usize = 8;

/// Proposals per round with a predictor's microsecond queries: the learning strategies
/// (L2NAS, GA-NAS) learn once per round, the predictor scores a round in one matrix
/// product per layer (docs/BENCHMARKS.md: L2NAS on Once-for-All in under a second).
pub const DEFAULT_PREDICTOR_PROPOSALS: usize = 25;

/// Distinct cells of NAS-Bench-201: a budget cannot exceed them.
const NB201_CELLS: usize = 15_625;

/// The most architectures proposed at a time.
pub const MAX_PROPOSALS: usize = 4096;

/// The most architectures one search evaluates.
const MAX_BUDGET: usize = 10_000_000;

/// The largest `--channels`, `--cells`, `--epochs` or batch a plan accepts: far past
/// anything this machine can run, short of sizes that overflow.
const MAX_SIZE: usize = 1 << 20;

impl SearchPlan {
    /// The evaluator the search uses.
    pub fn evaluator(&self) -> EvaluatorKind {
        self.evaluator
            .unwrap_or_else(|| self.space.default_evaluator())
    }

    /// Distinct architectures the search evaluates: as given, or by what a query costs —
    /// 5,000 where it costs microseconds (a predictor, a table: under a second), 500 for a
    /// proxy or a trained supernet's subnets, 100 candidates trained on their own.
    pub fn budget(&self) -> usize {
        self.budget.unwrap_or(match self.evaluator() {
            EvaluatorKind::Predictor | EvaluatorKind::Table => 5_000,
            EvaluatorKind::Proxy | EvaluatorKind::Supernet => 500,
            EvaluatorKind::Train => 100,
        })
    }

    /// A one-shot search's weights-only warm-up share (of its architecture phase) and
    /// fine-tuning share (of all steps), defaults filled in.
    pub fn phase_shares(&self) -> (f64, f64) {
        (
            self.warmup_share.unwrap_or(DEFAULT_WARMUP_SHARE),
            self.finetune_share.unwrap_or(DEFAULT_FINETUNE_SHARE),
        )
    }

    /// Architectures proposed and evaluated together: as given, else a batch for cluster
    /// or cores where candidates are trained, a round where a predictor scores them, one
    /// at a time otherwise.
    pub fn proposals(&self) -> usize {
        self.proposals.unwrap_or(match self.evaluator() {
            EvaluatorKind::Train => DEFAULT_TRAINING_PROPOSALS,
            EvaluatorKind::Predictor => DEFAULT_PREDICTOR_PROPOSALS,
            _ => 1,
        })
    }

    /// What kind of search the plan describes (valid only after [`SearchPlan::validate`]).
    pub fn kind(&self) -> SearchKind {
        match (self.evaluator(), self.space) {
            (EvaluatorKind::Supernet, SpaceKind::Ofa) => SearchKind::TrainOnceThenSample,
            (EvaluatorKind::Supernet, _) => SearchKind::OneShot,
            _ => SearchKind::Sampling,
        }
    }

    /// Checks every setting and their combinations; cheap (touches no file, library or
    /// device), so a bad plan fails in milliseconds.
    pub fn validate(&self) -> Result<()> {
        if let Some(b) = self.latency_ms
            && !(b.is_finite() && b > 0.0)
        {
            return Err(Error::plan(
                "latency-ms",
                b,
                "the budget must be a positive number of milliseconds",
            ));
        }
        let most = if self.space == SpaceKind::Nb201 {
            NB201_CELLS
        } else {
            MAX_BUDGET
        };
        if self.budget() == 0 || self.budget() > most {
            return Err(Error::plan(
                "budget",
                self.budget(),
                format!("evaluate 1 to {most} distinct architectures (the most this space allows)"),
            ));
        }
        self.protocol.protocol()?;
        if self.finalists == 0 || self.finalists > 1000 {
            return Err(Error::plan(
                "finalists",
                self.finalists,
                "re-measure 1 to 1000 finalists",
            ));
        }
        if self.train_images > MAX_SIZE {
            return Err(Error::plan(
                "train-images",
                self.train_images,
                format!("at most {MAX_SIZE} images (0 for all)"),
            ));
        }
        let evaluator = self.evaluator();
        let allowed = match self.space {
            SpaceKind::Ofa => &[
                EvaluatorKind::Predictor,
                EvaluatorKind::Supernet,
                EvaluatorKind::Train,
            ][..],
            SpaceKind::Nb201 => &[
                EvaluatorKind::Table,
                EvaluatorKind::Proxy,
                EvaluatorKind::Supernet,
                EvaluatorKind::Train,
            ][..],
            SpaceKind::Darts => &[EvaluatorKind::Supernet, EvaluatorKind::Train][..],
        };
        if !allowed.contains(&evaluator) {
            return Err(Error::plan(
                "evaluator",
                evaluator,
                format!(
                    "not available for --space {}; use `predictor`, `supernet` (trained here, then searched) or `train` for ofa-mbv3, or `table`, `proxy` (synflow, training-free), `supernet` (one-shot: darts, gdas, advantagenas, unas, reinforce, radars) or `train` (each candidate trained) for nb201, `supernet` or `train` for darts",
                    self.space
                ),
            ));
        }
        match self.kind() {
            SearchKind::Sampling if !self.strategy.is_sampling() => {
                return Err(Error::plan(
                    "strategy",
                    self.strategy,
                    format!(
                        "a one-shot strategy needs --evaluator supernet; with --evaluator {evaluator} use a sampling strategy: {}",
                        names(&StrategyKind::SAMPLING)
                    ),
                ));
            }
            SearchKind::TrainOnceThenSample if !self.strategy.is_sampling() => {
                return Err(Error::plan(
                    "strategy",
                    self.strategy,
                    format!(
                        "--space ofa-mbv3 --evaluator supernet: the supernet is trained by the sandwich rule, then --strategy searches it: give a sampling strategy ({})",
                        names(&StrategyKind::SAMPLING)
                    ),
                ));
            }
            SearchKind::OneShot if !self.strategy.is_one_shot() => {
                return Err(Error::plan(
                    "strategy",
                    self.strategy,
                    format!(
                        "not a one-shot strategy; with --evaluator supernet use one of {}",
                        names(&StrategyKind::ONE_SHOT)
                    ),
                ));
            }
            _ => {}
        }
        if let Some(w) = self.latency_weight
            && (!(w.is_finite() && w >= 0.0) || self.kind() != SearchKind::OneShot)
        {
            return Err(Error::plan(
                "latency-weight",
                w,
                "a one-shot search's (--evaluator supernet, nb201 or darts) latency term weighs 0 (accuracy alone) or more, in units of 1/budget per ms over the budget",
            ));
        }
        if let Some(n) = self.proposals
            && (n == 0 || n > MAX_PROPOSALS || self.kind() != SearchKind::Sampling)
        {
            return Err(Error::plan(
                "proposals",
                n,
                format!(
                    "a sampling search proposes 1 to {MAX_PROPOSALS} architectures at a time; a one-shot search proposes none"
                ),
            ));
        }
        for (setting, share) in [
            ("warmup-share", self.warmup_share),
            ("finetune-share", self.finetune_share),
        ] {
            if let Some(s) = share
                && (!(s.is_finite() && (0.0..1.0).contains(&s))
                    || self.kind() != SearchKind::OneShot)
            {
                return Err(Error::plan(
                    setting,
                    s,
                    "a one-shot search's (--evaluator supernet, nb201 or darts) share of steps is at least 0 and below 1",
                ));
            }
        }
        if self.kind() == SearchKind::OneShot {
            let (warmup, finetune) = self.phase_shares();
            if warmup * (1.0 - finetune) + finetune >= 0.95 {
                return Err(Error::plan(
                    "finetune-share",
                    finetune,
                    format!(
                        "with --warmup-share {warmup} the architecture would get under 5% of the steps; lower either"
                    ),
                ));
            }
        }
        match (self.strategy, self.memory_mib) {
            (StrategyKind::Radars, None) => {
                return Err(Error::plan(
                    "strategy",
                    self.strategy,
                    "radars searches within a memory budget: give --memory-mib M (the MiB a training step may hold)",
                ));
            }
            (StrategyKind::Radars, Some(m)) if !(m.is_finite() && m > 0.0) => {
                return Err(Error::plan(
                    "memory-mib",
                    m,
                    "a step's memory budget is a positive number of MiB",
                ));
            }
            (StrategyKind::Radars, _) | (_, None) => {}
            (_, Some(m)) => {
                return Err(Error::plan(
                    "memory-mib",
                    m,
                    "only --strategy radars searches within a memory budget",
                ));
            }
        }
        self.validate_target()?;
        if matches!(evaluator, EvaluatorKind::Supernet | EvaluatorKind::Train) {
            self.validate_supernet_sizes()?;
        }
        Ok(())
    }

    /// The settings in which `other` differs from this plan: `(setting, this value, other
    /// value)`, settings spelled as the command line spells them (`latency-ms`, `threads`).
    pub fn differences(&self, other: &SearchPlan) -> Vec<(String, String, String)> {
        // Defaults compare as the values they stand for (`--evaluator table` is nb201's
        // default evaluator, `--channels 8` its default width).
        let effective = |plan: &SearchPlan| {
            let mut plan = plan.clone();
            plan.evaluator = Some(plan.evaluator());
            plan.proposals = Some(plan.proposals());
            if plan.kind() == SearchKind::OneShot {
                plan.latency_weight = Some(plan.latency_weight.unwrap_or(1.0));
                let (warmup, finetune) = plan.phase_shares();
                plan.warmup_share = Some(warmup);
                plan.finetune_share = Some(finetune);
            }
            plan.budget = Some(plan.budget());
            plan.channels = Some(
                plan.channels
                    .unwrap_or(crate::oneshot::default_channels(plan.space)),
            );
            plan.cells = Some(
                plan.cells
                    .unwrap_or(crate::oneshot::default_cells(plan.space)),
            );
            plan
        };
        let (this, other) = (effective(self), effective(other));
        fn flat(plan: &SearchPlan) -> Vec<(String, serde_json::Value)> {
            let value = serde_json::to_value(plan).expect("a plan serialises");
            let mut settings = Vec::new();
            for (key, value) in value.as_object().expect("a plan is an object") {
                match value.as_object() {
                    Some(nested) => settings.extend(nested.clone()),
                    None => settings.push((key.clone(), value.clone())),
                }
            }
            settings
                .into_iter()
                .map(|(k, v)| (k.replace('_', "-"), v))
                .collect()
        }
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "(default)".into(),
            other => other.to_string(),
        };
        let theirs = flat(&other);
        flat(&this)
            .into_iter()
            .zip(theirs)
            .filter(|((_, a), (_, b))| a != b)
            .map(|((key, a), (_, b))| (key, text(&a), text(&b)))
            .collect()
    }

    fn validate_target(&self) -> Result<()> {
        let at_image_resolution = self.kind() == SearchKind::TrainOnceThenSample
            || (self.space == SpaceKind::Ofa && self.evaluator() == EvaluatorKind::Train);
        let TargetSpec::Table(device) = &self.target else {
            if at_image_resolution && !matches!(self.target, TargetSpec::Host) {
                return Err(Error::plan(
                    "target",
                    &self.target,
                    "a supernet-scored Once-for-All search measures subnets at the images' resolution on this machine; use --target host (published tables cover 128-224 px)",
                ));
            }
            return Ok(());
        };
        match self.space {
            SpaceKind::Ofa if at_image_resolution => Err(Error::plan(
                "target",
                &self.target,
                "a supernet-scored Once-for-All search measures subnets at the images' resolution on this machine; use --target host (published tables cover 128-224 px)",
            )),
            SpaceKind::Ofa if device != "note10" => Err(Error::plan(
                "target",
                &self.target,
                "for ofa-mbv3 use `host`, `table:note10`, or a target file",
            )),
            SpaceKind::Darts => Err(Error::plan(
                "target",
                &self.target,
                "no published latency table covers DARTS cells; use --target host",
            )),
            _ => Ok(()),
        }
    }

    fn validate_supernet_sizes(&self) -> Result<()> {
        if !(8..=1024).contains(&self.image_size) {
            return Err(Error::plan(
                "image-size",
                self.image_size,
                "images are resized to 8 to 1024 pixels a side",
            ));
        }
        let positive = [
            ("epochs", self.epochs),
            ("batch-size", self.batch_size),
            ("eval-images", self.eval_images),
        ];
        for (setting, value) in positive {
            if value == 0 || value > MAX_SIZE {
                return Err(Error::plan(
                    setting,
                    value,
                    format!("must be 1 to {MAX_SIZE}"),
                ));
            }
        }
        if self.train_images != 0 && self.train_images < 2 * self.batch_size {
            return Err(Error::plan(
                "train-images",
                self.train_images,
                format!(
                    "a supernet needs at least two batches of --batch-size {} (give at least {}, or 0 for all)",
                    self.batch_size,
                    2 * self.batch_size
                ),
            ));
        }
        for (setting, value) in [("channels", self.channels), ("cells", self.cells)] {
            if let Some(v) = value {
                if self.space == SpaceKind::Ofa {
                    return Err(Error::plan(
                        setting,
                        v,
                        "--channels and --cells size the cell supernets (nb201, darts); the Once-for-All supernet is a quarter of MobileNetV3 w1.2's width",
                    ));
                }
                if v == 0 || v > 4096 {
                    return Err(Error::plan(setting, v, "must be 1 to 4096"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn plan() -> SearchPlan {
        SearchPlan {
            space: SpaceKind::Ofa,
            strategy: StrategyKind::Rea,
            evaluator: None,
            target: TargetSpec::Host,
            latency_ms: None,
            budget: Some(500),
            seed: 0,
            out: PathBuf::from("hwnas-run"),
            table: None,
            dataset: "cifar10".into(),
            ofa_dir: None,
            data: DataSource::FashionMnist,
            epochs: 4,
            train_images: 8000,
            eval_images: 1000,
            channels: None,
            cells: None,
            backend: BackendKind::Cpu,
            batch_size: 64,
            image_size: 32,
            finalists: 5,
            protocol: ProtocolSettings::default(),
            proposals: None,
            latency_weight: None,
            memory_mib: None,
            augment: false,
            warmup_share: None,
            finetune_share: None,
        }
    }

    #[test]
    fn training_length_defaults_by_search_kind_and_strategy() {
        let supernet = Some(EvaluatorKind::Supernet);
        for (strategy, epochs) in [
            (StrategyKind::Gdas, ONE_SHOT_NB201_EPOCHS),
            (StrategyKind::Darts, ONE_SHOT_NB201_DARTS_EPOCHS),
            (StrategyKind::Unas, ONE_SHOT_NB201_UNAS_EPOCHS),
        ] {
            assert_eq!(default_epochs(SpaceKind::Nb201, supernet, strategy), epochs);
        }
        assert_eq!(default_train_images(SpaceKind::Nb201, supernet), 0);
        // Every other search keeps 4 epochs of 8,000 images.
        for (space, evaluator) in [
            (SpaceKind::Nb201, Some(EvaluatorKind::Train)),
            (SpaceKind::Nb201, None),
            (SpaceKind::Darts, supernet),
            (SpaceKind::Ofa, supernet),
        ] {
            assert_eq!(default_epochs(space, evaluator, StrategyKind::Gdas), 4);
            assert_eq!(default_train_images(space, evaluator), 8000);
        }
    }

    #[test]
    fn the_default_plan_is_valid_and_bad_combinations_name_the_setting() {
        plan().validate().unwrap();
        type Change = Box<dyn Fn(&mut SearchPlan)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|p| p.latency_ms = Some(-1.0)), "--latency-ms -1"),
            (
                Box::new(|p| p.latency_ms = Some(f64::NAN)),
                "--latency-ms NaN",
            ),
            (Box::new(|p| p.budget = Some(0)), "--budget 0"),
            (
                Box::new(|p| p.evaluator = Some(EvaluatorKind::Table)),
                "--evaluator table",
            ),
            (
                Box::new(|p| p.strategy = StrategyKind::Gdas),
                "--strategy gdas",
            ),
            (
                Box::new(|p| p.target = TargetSpec::Table("pixel9000".into())),
                "table:note10",
            ),
            (Box::new(|p| p.protocol.threads = 0), "--threads 0"),
            (Box::new(|p| p.protocol.threads = usize::MAX), "--threads"),
            (
                Box::new(|p| p.protocol.runs = Some(u32::MAX as usize)),
                "--runs",
            ),
            (
                Box::new(|p| {
                    p.space = SpaceKind::Darts;
                    p.evaluator = Some(EvaluatorKind::Supernet);
                    p.strategy = StrategyKind::Unas;
                    p.latency_weight = Some(-1.0);
                }),
                "latency term weighs 0",
            ),
            (
                Box::new(|p| p.latency_weight = Some(1.0)),
                "a one-shot search's",
            ),
            (
                Box::new(|p| p.finetune_share = Some(0.2)),
                "a one-shot search's",
            ),
            (
                Box::new(|p| {
                    p.space = SpaceKind::Nb201;
                    p.evaluator = Some(EvaluatorKind::Supernet);
                    p.strategy = StrategyKind::Gdas;
                    p.warmup_share = Some(-0.1);
                }),
                "--warmup-share -0.1",
            ),
            (
                Box::new(|p| {
                    p.space = SpaceKind::Nb201;
                    p.evaluator = Some(EvaluatorKind::Supernet);
                    p.strategy = StrategyKind::Gdas;
                    p.warmup_share = Some(0.5);
                    p.finetune_share = Some(0.9);
                }),
                "under 5% of the steps",
            ),
            (
                Box::new(|p| p.memory_mib = Some(100.0)),
                "only --strategy radars",
            ),
            (
                Box::new(|p| {
                    p.space = SpaceKind::Darts;
                    p.evaluator = Some(EvaluatorKind::Supernet);
                    p.strategy = StrategyKind::Radars;
                }),
                "give --memory-mib M",
            ),
            (
                Box::new(|p| {
                    p.space = SpaceKind::Nb201;
                    p.evaluator = Some(EvaluatorKind::Supernet);
                    p.strategy = StrategyKind::Rea;
                }),
                "advantagenas",
            ),
            (
                Box::new(|p| {
                    p.space = SpaceKind::Nb201;
                    p.evaluator = Some(EvaluatorKind::Supernet);
                    p.strategy = StrategyKind::Gdas;
                    p.channels = Some(0);
                }),
                "--channels 0",
            ),
            (
                Box::new(|p| {
                    p.space = SpaceKind::Nb201;
                    p.evaluator = Some(EvaluatorKind::Supernet);
                    p.strategy = StrategyKind::Gdas;
                    p.train_images = 1;
                }),
                "--train-images 1",
            ),
        ];
        for (change, expected) in cases {
            let mut p = plan();
            change(&mut p);
            let message = p.validate().unwrap_err().to_string();
            assert!(message.contains(expected), "{expected}: {message}");
        }
    }

    #[test]
    fn differences_name_the_settings_as_the_command_line_does() {
        let mut other = plan();
        other.latency_ms = Some(3.0);
        other.protocol.threads = 4;
        let diffs = plan().differences(&other);
        let names: Vec<&str> = diffs.iter().map(|(s, _, _)| s.as_str()).collect();
        assert_eq!(names, vec!["latency-ms", "threads"]);
        assert_eq!(diffs[0].2, "3.0");
        assert!(plan().differences(&plan()).is_empty());
        // A default given explicitly is no difference.
        let mut explicit = plan();
        explicit.evaluator = Some(EvaluatorKind::Predictor);
        explicit.channels = Some(8);
        assert!(plan().differences(&explicit).is_empty());
    }

    #[test]
    fn settings_read_back_as_the_command_line_spells_them() {
        let json = serde_json::to_value(plan()).unwrap();
        assert_eq!(json["space"], "ofa-mbv3");
        assert_eq!(json["target"], "host");
        assert_eq!(json["data"], "fashion-mnist");
        let back: SearchPlan = serde_json::from_value(json).unwrap();
        assert_eq!(back, plan());
        assert_eq!("ofa".parse::<SpaceKind>().unwrap(), SpaceKind::Ofa);
        assert_eq!(
            "table:pixel3".parse::<TargetSpec>().unwrap(),
            TargetSpec::Table("pixel3".into())
        );
        assert!(
            "annealing"
                .parse::<StrategyKind>()
                .unwrap_err()
                .contains("annealing")
        );
        assert!("cifar:".parse::<DataSource>().is_err());
    }
}
