//! One-shot (weight-sharing) search on a supernet: DARTS, GDAS, AdvantageNAS, UNAS,
//! REINFORCE and RADARS behind one [`OneShotStrategy`] trait and one loop ([`OneShotRun`])
//! in three phases: the weights trained alone on uniformly drawn paths (the warm-up), the
//! architecture and weight steps alternating on the two halves of the training set (the
//! search), and the found architecture's path trained alone with its learning rate
//! restarted (the fine-tuning, [`OneShotConfig::finetune_share`]). It scores the current
//! argmax architecture with inherited weights (after batch-norm recalibration) as it goes,
//! and checkpoints so a stopped search continues exactly.
//!
//! The fine-tuning is this loop's addition to the papers' searches, on purpose: at the
//! few epochs a CPU affords, the shared weights serve the found cell far below what it
//! reaches (GDAS, NAS-Bench-201 on Fashion-MNIST: 78.9% held out at the search's end,
//! 88.5% after 828 fine-tuning steps; docs/BENCHMARKS.md), and the cell the user ships
//! is the fine-tuned one. Set the share to 0 for the papers' protocol.

pub mod advantage;
pub mod arch;
pub mod darts;
pub mod gdas;
pub mod latency;
pub mod radars;
pub mod reinforce;
pub mod sandwich;
pub mod standalone;
pub mod trainer;
pub mod unas;

use std::path::Path;
use std::time::Instant;

use hwnas_kernels::Backend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use advantage::AdvantageNas;
pub use arch::{ArchLogits, ArchSchedule};
pub use darts::Darts;
pub use gdas::Gdas;
pub use latency::{AdditiveLatency, DEFAULT_RAMP, LatencyPenalty, RelaxedLatency};
pub use radars::{Radars, RadarsSettings};
pub use reinforce::SupernetReinforce;
pub use sandwich::SandwichSampling;
pub use standalone::{TrainingEvaluator, TrainingSettings};
pub use trainer::{SupernetTrainer, WeightSchedule};
pub use unas::{Unas, UnasSettings};

use crate::error::{Error, Result};
use crate::images::ImageSet;
use crate::images::batches::{Augmentation, Batch, Normalisation};
use crate::space::Arch;
use crate::supernet::StepOutput;
use crate::supernet::SupernetKind;
use crate::supernet::checkpoint;

/// The one-shot strategies `hwnas search --evaluator supernet` accepts.
pub const NAMES: [&str; 6] = [
    "darts",
    "gdas",
    "advantagenas",
    "unas",
    "reinforce",
    "radars",
];

/// What a strategy's step sees.
pub struct StepContext<'a> {
    /// The supernet and its weight optimiser.
    pub trainer: &'a mut SupernetTrainer,
    /// The backend the kernels run on.
    pub backend: &'a dyn Backend,
    /// A batch of the weights' half of the training set.
    pub train: &'a Batch,
    /// A batch of the architecture's half.
    pub valid: &'a Batch,
    /// Share of the architecture search done, in `[0, 1]` (the strategy's schedules: its
    /// temperature, its latency ramp); the fine-tuning phase after it is not counted.
    pub progress: f32,
    /// Share of the weights' current learning-rate cycle done, in `[0, 1]`: one cosine
    /// over the warm-up and the search, a second (a warm restart) over the fine-tuning.
    pub weights_progress: f32,
    /// Share of the architecture search (in `progress`'s units) that trained the weights
    /// alone before the architecture moved: a latency ramp starts after it.
    pub warmup: f32,
    /// This step's random numbers.
    pub rng: &'a mut ChaCha8Rng,
}

/// What one step reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Training loss of the weight step.
    pub train_loss: f32,
    /// Validation loss of the architecture step, where it computed one.
    pub valid_loss: Option<f32>,
    /// The most bytes the tape held in the step's passes.
    pub tape_bytes: usize,
}

impl StepReport {
    /// From the weight step's and the architecture step's outputs.
    pub fn new(train: &StepOutput, valid: Option<&StepOutput>) -> Self {
        StepReport {
            train_loss: train.loss,
            valid_loss: valid.map(|v| v.loss),
            tape_bytes: train.tape_bytes.max(valid.map_or(0, |v| v.tape_bytes)),
        }
    }
}

/// A one-shot strategy: one architecture update and one weight update per step.
pub trait OneShotStrategy: Send {
    /// Its name on the command line.
    fn name(&self) -> &'static str;

    /// The architecture logits.
    fn logits(&self) -> &ArchLogits;

    /// Never samples nor derives candidate `k` on any edge ([`ArchLogits::exclude`]).
    fn exclude(&mut self, k: usize);

    /// One search step.
    fn step(&mut self, ctx: &mut StepContext<'_>) -> Result<StepReport>;

    /// The share of the training steps at the start that train the weights alone (one
    /// path sampled from the still uniform distribution per step), before the architecture
    /// moves: what the authors run (UNAS 15 of 100 epochs, AdvantageNAS 50 of 90), so that
    /// architecture credit is not assigned on random weights. None by default.
    fn warmup_share(&self) -> f32 {
        0.0
    }

    /// What a person should know of the search beyond its answer (RADARS: the memory
    /// estimates and the pruning), one line each; none by default.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Its state, for a checkpoint.
    fn save(&self) -> Vec<u8>;

    /// Restores a state written by [`OneShotStrategy::save`].
    fn restore(&mut self, bytes: &[u8]) -> Result<()>;
}

/// The weight step of the sampling strategies: one path drawn from the current
/// architecture distribution, trained on the weights' batch.
fn train_sampled_path(ctx: &mut StepContext<'_>, logits: &ArchLogits) -> Result<StepOutput> {
    let routes: Vec<crate::supernet::Route> = logits
        .probabilities()
        .iter()
        .map(|p| crate::supernet::Route::Fixed(arch::sample(p, ctx.rng)))
        .collect();
    ctx.trainer
        .train_weights(ctx.backend, ctx.train, &routes, ctx.weights_progress)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Setting {
        name: "checkpoint".into(),
        problem: format!("the strategy state does not decode ({e}); start afresh"),
    })
}

/// Controller steps between RADARS's prunings.
pub const RADARS_ROUND_STEPS: usize = 4;

/// Decay of AdvantageNAS's moving-average baseline: the authors' coefficient 0.05.
pub const ADVANTAGE_BASELINE_DECAY: f32 = 0.95;

/// `none`'s index among NAS-Bench-201's candidates. Every one-shot strategy searches that
/// space without it, as AdvantageNAS's authors do: `none` has no weights and a zero
/// output, so its gradient, advantage and reward signal is structurally 0 and it wins by
/// default whenever the other candidates' credit is positive early in training (measured
/// here: GDAS put `none` on 4 or 5 of the 6 edges in each of three runs of 920 and 2,766
/// steps: cells of one or two convolutions, which cap the found network's accuracy). The DARTS space keeps it under each
/// strategy's zero-op rule and its derivation, which never picks it.
pub const NB201_NONE: usize = 0;

/// A one-shot strategy with default settings, by name, for a supernet of `kind`;
/// `latency` adds the latency term to the architecture's objective (see [`latency`]),
/// `None` searches for accuracy alone; `memory_bytes` bounds a training step's memory (the
/// tape's accounting), which RADARS needs.
pub fn by_name(
    name: &str,
    kind: SupernetKind,
    schedule: ArchSchedule,
    latency: Option<LatencyPenalty>,
    memory_bytes: Option<usize>,
) -> Result<Box<dyn OneShotStrategy>> {
    let (edges, candidates) = kind.shape();
    let mut strategy: Box<dyn OneShotStrategy> = match name {
        "darts" => Box::new(Darts::new(edges, candidates, schedule, latency)),
        "gdas" => Box::new(Gdas::new(edges, candidates, schedule, latency)),
        // The DARTS space keeps `none` under the authors' worst-advantage rule.
        "advantagenas" => {
            let nas =
                AdvantageNas::new(edges, candidates, schedule, Some(ADVANTAGE_BASELINE_DECAY))
                    .with_latency(latency);
            Box::new(if kind == SupernetKind::Nb201 {
                nas
            } else {
                nas.with_zero_op(0)
            })
        }
        "unas" => Box::new(Unas::new(
            edges,
            candidates,
            schedule,
            UnasSettings::default(),
            latency,
        )),
        "radars" => {
            let Some(memory_bytes) = memory_bytes else {
                return Err(Error::Setting {
                    name: "memory-mib".into(),
                    problem: "radars searches within a memory budget: give --memory-mib M (a training step's MiB)".into(),
                });
            };
            Box::new(Radars::new(
                edges,
                candidates,
                schedule,
                RadarsSettings {
                    memory_bytes,
                    round_steps: RADARS_ROUND_STEPS,
                    zero_op: Some(0),
                },
                latency,
            ))
        }
        "reinforce" => Box::new(SupernetReinforce::new(edges, candidates, schedule, latency)),
        other => {
            return Err(Error::Setting {
                name: "strategy".into(),
                problem: format!(
                    "`{other}` is not a one-shot strategy; use one of {}",
                    NAMES.join(", ")
                ),
            });
        }
    };
    if kind == SupernetKind::Nb201 {
        strategy.exclude(NB201_NONE);
    }
    Ok(strategy)
}

/// The images of a one-shot search.
#[derive(Debug, Clone)]
pub struct OneShotData {
    /// The weights' half of the training set.
    pub train: ImageSet,
    /// The architecture's half.
    pub valid: ImageSet,
    /// Held-out images the argmax architecture is scored on.
    pub eval: ImageSet,
    /// Normalisation (of the training set).
    pub normalisation: Normalisation,
    /// Augmentation of the search batches.
    pub augmentation: Augmentation,
}

/// The batches a subnet is scored with: `config.recalibration_batches` training batches
/// to re-estimate batch norm (unaugmented, always the same), and the held-out images.
pub fn scoring_batches(data: &OneShotData, config: &OneShotConfig) -> (Vec<Batch>, Vec<Batch>) {
    let b = config.batch_size.max(1);
    let recalibration = (0..config.recalibration_batches.max(1))
        .map(|i| {
            let idx: Vec<usize> = (i * b..(i + 1) * b).map(|j| j % data.train.len()).collect();
            data.train.batch(&idx, &data.normalisation)
        })
        .collect();
    let eval = (0..data.eval.len())
        .collect::<Vec<_>>()
        .chunks(b)
        .map(|idx| data.eval.batch(idx, &data.normalisation))
        .collect();
    (recalibration, eval)
}

/// An [`Evaluator`](crate::Evaluator) backed by a trained supernet: an architecture's
/// accuracy is its held-out accuracy with inherited weights after batch-norm
/// recalibration (Once-for-All's "train once, search many").
pub struct SupernetEvaluator {
    trainer: SupernetTrainer,
    backend: Box<dyn Backend + Send + Sync>,
    recalibration: Vec<Batch>,
    eval: Vec<Batch>,
    normalisation: Normalisation,
}

impl SupernetEvaluator {
    /// Scores with `trainer`'s weights on `backend`, with the batches of
    /// [`scoring_batches`].
    pub fn new(
        trainer: SupernetTrainer,
        backend: Box<dyn Backend + Send + Sync>,
        data: &OneShotData,
        config: &OneShotConfig,
    ) -> Self {
        let (recalibration, eval) = scoring_batches(data, config);
        SupernetEvaluator {
            trainer,
            backend,
            recalibration,
            eval,
            normalisation: data.normalisation.clone(),
        }
    }

    /// The per-channel normalisation of the images the supernet was trained on (its inputs
    /// are images in [0, 1] normalised with it).
    pub fn normalisation(&self) -> &Normalisation {
        &self.normalisation
    }

    /// The trained supernet.
    pub fn trainer(&self) -> &SupernetTrainer {
        &self.trainer
    }

    /// The batch-norm statistics of `arch` on the recalibration batches it is scored with.
    pub fn recalibrate(&self, arch: &Arch) -> Result<crate::supernet::BnStats> {
        self.trainer
            .recalibrate(self.backend.as_ref(), arch, &self.recalibration)
    }
}

impl crate::Evaluator for SupernetEvaluator {
    fn name(&self) -> String {
        format!("supernet:{}", self.trainer.net.space())
    }

    fn evaluate(&self, arch: &Arch) -> Result<crate::Evaluation> {
        let (accuracy, _) =
            self.trainer
                .evaluate(self.backend.as_ref(), arch, &self.recalibration, &self.eval)?;
        Ok(crate::Evaluation {
            accuracy,
            test_accuracy: None,
            cost_seconds: 0.0,
        })
    }
}

/// Settings of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OneShotConfig {
    /// Passes over the smaller half.
    pub epochs: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Seeds batches and samples.
    pub seed: u64,
    /// Score the argmax architecture every this many steps (and at the end).
    pub eval_every: usize,
    /// Training batches used to recalibrate batch norm before scoring.
    pub recalibration_batches: usize,
    /// The least share of the search phase that trains the weights alone (one path drawn
    /// uniformly per step) before the architecture moves, for every strategy; a strategy
    /// whose authors warm up longer keeps its own ([`OneShotStrategy::warmup_share`]).
    #[serde(default)]
    pub warmup_share: f32,
    /// The share of all steps at the end that train the weights of the architecture the
    /// search found, alone (the architecture frozen, its path through the supernet
    /// trained on both halves of the training set in turn, the learning rate's cosine
    /// restarted): the chosen cell's inherited weights are then trained for it, not for the
    /// mixture or the random paths that shared them.
    #[serde(default)]
    pub finetune_share: f32,
}

impl OneShotConfig {
    /// The steps of the architecture search (warm-up included) out of `total`; the rest
    /// fine-tune the found architecture.
    pub fn search_steps(&self, total: usize) -> usize {
        let finetune = (f64::from(self.finetune_share.clamp(0.0, 1.0)) * total as f64).round();
        total.saturating_sub(finetune as usize).max(1).min(total)
    }
}

/// One point of a search's trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Steps done.
    pub step: usize,
    /// The epoch the step belongs to.
    pub epoch: usize,
    /// The argmax architecture.
    pub arch: Arch,
    /// Its held-out accuracy with inherited weights, percent.
    pub eval_accuracy: f64,
    /// Its held-out loss.
    pub eval_loss: f64,
    /// Mean training loss since the previous point.
    pub train_loss: f64,
    /// Architecture probabilities per edge.
    pub probabilities: Vec<Vec<f32>>,
    /// Seconds of search so far (this process).
    pub seconds: f64,
    /// Whether the point is in the fine-tuning phase (the architecture frozen; see
    /// [`OneShotConfig::finetune_share`]); the point at the last step before it is not.
    #[serde(default)]
    pub finetuning: bool,
}

/// A checkpoint's contents.
#[derive(Serialize, Deserialize)]
struct Saved {
    step: usize,
    strategy: String,
    trainer: SupernetTrainer,
    state: Vec<u8>,
}

/// A search in progress.
pub struct OneShotRun {
    /// The supernet and its optimiser.
    pub trainer: SupernetTrainer,
    /// The strategy.
    pub strategy: Box<dyn OneShotStrategy>,
    /// Steps done.
    pub step: usize,
    /// The most bytes the tape held in any step this process ran (not saved: a resumed
    /// search measures afresh).
    pub peak_tape_bytes: usize,
}

impl OneShotRun {
    /// A fresh search.
    pub fn new(trainer: SupernetTrainer, strategy: Box<dyn OneShotStrategy>) -> Self {
        OneShotRun {
            trainer,
            strategy,
            step: 0,
            peak_tape_bytes: 0,
        }
    }

    /// Continues the search saved at `path` with `strategy` (which must be the same kind).
    pub fn resume(path: &Path, mut strategy: Box<dyn OneShotStrategy>) -> Result<Self> {
        let mut saved: Saved = checkpoint::load(path)?;
        if saved.strategy != strategy.name() {
            return Err(Error::Setting {
                name: "strategy".into(),
                problem: format!(
                    "{} holds a {} search, not {}",
                    path.display(),
                    saved.strategy,
                    strategy.name()
                ),
            });
        }
        strategy.restore(&saved.state)?;
        saved.trainer.net.params_mut().reindex();
        Ok(OneShotRun {
            trainer: saved.trainer,
            strategy,
            step: saved.step,
            peak_tape_bytes: 0,
        })
    }

    /// The supernet a checkpoint holds (its trained weights), without the strategy that
    /// trained it; with the steps it was trained for.
    pub fn saved_supernet(path: &Path) -> Result<(crate::supernet::Supernet, usize)> {
        let mut saved: Saved = checkpoint::load(path)?;
        saved.trainer.net.params_mut().reindex();
        Ok((saved.trainer.net, saved.step))
    }

    /// Writes a checkpoint.
    pub fn save(&self, path: &Path) -> Result<()> {
        checkpoint::save(
            path,
            &Saved {
                step: self.step,
                strategy: self.strategy.name().to_string(),
                trainer: self.trainer.clone(),
                state: self.strategy.save(),
            },
        )
    }

    /// Steps per epoch for `data` and `config`.
    pub fn steps_per_epoch(data: &OneShotData, config: &OneShotConfig) -> usize {
        let b = config.batch_size.max(1);
        (data.train.len() / b).min(data.valid.len() / b).max(1)
    }

    /// Scores the current argmax architecture on the held-out images.
    pub fn evaluate(
        &self,
        backend: &dyn Backend,
        data: &OneShotData,
        config: &OneShotConfig,
    ) -> Result<(Arch, f64, f64)> {
        let (recalibration, eval) = scoring_batches(data, config);
        let arch = self
            .trainer
            .net
            .derive(&self.strategy.logits().probabilities())?;
        let (acc, loss) = self
            .trainer
            .evaluate(backend, &arch, &recalibration, &eval)?;
        Ok((arch, acc, loss))
    }

    /// Runs until `config.epochs` are done, or until `stop_at` steps (a checkpoint is then
    /// written, as when stopped by a signal between steps); checkpoints to `checkpoint`
    /// at every trace point; `on_trace` sees each point.
    pub fn run(
        &mut self,
        backend: &dyn Backend,
        data: &OneShotData,
        config: &OneShotConfig,
        checkpoint_path: Option<&Path>,
        stop_at: Option<usize>,
        on_trace: &mut dyn FnMut(&Trace) -> Result<()>,
    ) -> Result<()> {
        let started = Instant::now();
        let per_epoch = Self::steps_per_epoch(data, config);
        let total = per_epoch * config.epochs.max(1);
        let mut losses = Vec::new();
        let mut epoch_batches: Option<(usize, Vec<Batch>, Vec<Batch>)> = None;
        while self.step < total {
            if stop_at.is_some_and(|s| self.step >= s) {
                if let Some(path) = checkpoint_path {
                    self.save(path)?;
                }
                return Ok(());
            }
            let epoch = self.step / per_epoch;
            if epoch_batches.as_ref().is_none_or(|(e, _, _)| *e != epoch) {
                let train = data
                    .train
                    .epoch_batches(
                        config.batch_size,
                        config.seed,
                        epoch,
                        &data.normalisation,
                        data.augmentation,
                    )
                    .take(per_epoch)
                    .collect();
                let valid = data
                    .valid
                    .epoch_batches(
                        config.batch_size,
                        config.seed ^ 0x5A5A,
                        epoch,
                        &data.normalisation,
                        data.augmentation,
                    )
                    .take(per_epoch)
                    .collect();
                epoch_batches = Some((epoch, train, valid));
            }
            let (_, train, valid) = epoch_batches.as_ref().expect("batches of this epoch");
            let index = self.step % per_epoch;
            let mut rng = ChaCha8Rng::seed_from_u64(
                config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.step as u64,
            );
            let search_steps = config.search_steps(total);
            let warmup = self
                .strategy
                .warmup_share()
                .max(config.warmup_share)
                .clamp(0.0, 1.0);
            // Fine-tuning needs no architecture half: it trains on both halves in turn.
            let finetuning = self.step >= search_steps;
            let weights_batch = if finetuning && self.step % 2 == 1 {
                &valid[index]
            } else {
                &train[index]
            };
            let mut ctx = StepContext {
                trainer: &mut self.trainer,
                backend,
                train: weights_batch,
                valid: &valid[index],
                progress: (self.step as f32 / search_steps as f32).min(1.0),
                weights_progress: if self.step < search_steps {
                    self.step as f32 / search_steps as f32
                } else {
                    (self.step - search_steps) as f32 / (total - search_steps) as f32
                },
                warmup,
                rng: &mut rng,
            };
            let report = if finetuning {
                // Fine-tuning: the found architecture's path alone.
                let arch = ctx
                    .trainer
                    .net
                    .derive(&self.strategy.logits().probabilities())?;
                let routes = ctx.trainer.net.fixed_routes(&arch);
                let progress = ctx.weights_progress;
                let out = ctx
                    .trainer
                    .train_weights(backend, ctx.train, &routes, progress)?;
                StepReport::new(&out, None)
            } else if (self.step as f32) < warmup * search_steps as f32 {
                let out = train_sampled_path(&mut ctx, self.strategy.logits())?;
                StepReport::new(&out, None)
            } else {
                self.strategy.step(&mut ctx)?
            };
            if !report.train_loss.is_finite() {
                return Err(Error::Setting {
                    name: "search".into(),
                    problem: format!(
                        "the training loss diverged at step {}; lower the learning rate",
                        self.step
                    ),
                });
            }
            losses.push(f64::from(report.train_loss));
            self.peak_tape_bytes = self.peak_tape_bytes.max(report.tape_bytes);
            self.step += 1;
            let phase_end = self.step == search_steps && search_steps < total;
            if self.step.is_multiple_of(config.eval_every.max(1)) || self.step == total || phase_end
            {
                let (arch, eval_accuracy, eval_loss) = self.evaluate(backend, data, config)?;
                let trace = Trace {
                    step: self.step,
                    epoch,
                    arch,
                    eval_accuracy,
                    eval_loss,
                    train_loss: losses.iter().sum::<f64>() / losses.len().max(1) as f64,
                    probabilities: self.strategy.logits().probabilities(),
                    seconds: started.elapsed().as_secs_f64(),
                    finetuning: self.step > search_steps,
                };
                losses.clear();
                if let Some(path) = checkpoint_path {
                    self.save(path)?;
                }
                on_trace(&trace)?;
            }
        }
        Ok(())
    }
}
