//! RADARS (reinforcement-learning-aided, memory-bounded DNAS): where the dense supernet's
//! training step would not fit in a memory budget, a REINFORCE controller first explores
//! the space on single sampled paths (which hold a fraction of the dense step's memory)
//! and prunes the candidates it rates least, one per edge per round, until the dense step
//! over the remaining candidates fits; DARTS (first order) then searches the pruned space,
//! computing only the remaining candidates.
//!
//! Memory is the tape's accounting (activations, saved intermediates and live gradients at
//! their peak, [`crate::supernet::StepOutput::tape_bytes`]). A step's memory is estimated
//! without running it at full size: it grows linearly with the batch, so two probes on the
//! first 2 and 4 images of a batch give `fixed + per_image * batch`. The estimate decides
//! when pruning stops; the search's measured peak is reported beside it.
//!
//! The controller's round is [`RadarsSettings::round_steps`] steps: each samples one path
//! from the controller restricted to the remaining candidates, rewards it with the negative
//! validation loss (and the latency term, see [`super::latency`]) against a moving-average
//! baseline, and trains the weights on a path sampled from the updated controller. A round
//! ends by pruning, on each edge with more than one candidate left (and never the last
//! candidate other than the zero operation), the one with the lowest controller
//! probability, lowest first across edges, re-estimating after each, until the estimate
//! fits. The estimates are held to 95% of the budget (a margin for their error). Single
//! paths differ in memory too (a path of convolutions holds several times one of skips):
//! a path whose estimate is over the budget is redrawn, so the controller learns among the
//! paths that fit, as the pruned space will hold only such; where 32 draws find none, the
//! batch is the thing to shrink, and the search stops with an error saying so.

use serde::{Deserialize, Serialize};

use super::arch::{ArchLogits, ArchSchedule, sample, score_function, softmax_backward};
use super::latency::{LatencyPenalty, add_latency_grad};
use super::{OneShotStrategy, StepContext, StepReport};
use crate::error::{Error, Result};
use crate::images::batches::Batch;
use crate::supernet::{BnMode, Route, StepRequest};

/// Settings of RADARS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RadarsSettings {
    /// The memory a training step may hold, bytes (the tape's accounting).
    pub memory_bytes: usize,
    /// Controller steps between prunings.
    pub round_steps: usize,
    /// The zero operation (`none`), never the last candidate left on an edge.
    pub zero_op: Option<usize>,
}

/// The logit a pruned candidate is pinned at (probability below 1e-13; exactly 0 where
/// routes and samples are built).
const PRUNED_LOGIT: f32 = -30.0;

/// Draws of a path before the pruning phase gives up on finding one that fits.
pub const PATH_DRAWS: usize = 32;

/// The share of the memory budget the estimates must stay within.
const ESTIMATE_MARGIN: f64 = 0.95;

/// Which phase the search is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    /// The controller explores and prunes.
    Pruning,
    /// DARTS searches the pruned space.
    Darts,
}

/// RADARS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Radars {
    /// Settings.
    pub settings: RadarsSettings,
    controller: ArchLogits,
    baseline: Option<f32>,
    darts: ArchLogits,
    remaining: Vec<Vec<bool>>,
    phase: Phase,
    steps_in_round: usize,
    /// The dense step's estimated bytes over every candidate (the first step's estimate).
    dense_estimate: Option<usize>,
    /// The dense step's estimated bytes over the remaining candidates, at the last estimate.
    estimate: Option<usize>,
    /// Steps taken before DARTS started.
    pruning_steps: usize,
    #[serde(skip)]
    latency: Option<LatencyPenalty>,
}

/// The first `n` images of `batch`.
fn first_images(batch: &Batch, n: usize) -> Result<Batch> {
    let n = n.min(batch.labels.len());
    let per_image = batch.images.len() / batch.labels.len().max(1);
    let mut shape = batch.images.shape().to_vec();
    shape[0] = n;
    Ok(Batch {
        images: hwnas_kernels::Tensor::new(&shape, batch.images.data()[..n * per_image].to_vec())?,
        labels: batch.labels[..n].to_vec(),
    })
}

/// The tape's bytes of a training step (weight and route gradients) through `routes` on a
/// batch of `batch`'s size, estimated from steps on its first 2 and 4 images.
pub fn estimate_step_bytes(
    ctx: &StepContext<'_>,
    batch: &Batch,
    routes: &[Route],
) -> Result<usize> {
    let size = batch.labels.len();
    let probe = |n: usize| -> Result<usize> {
        let small = first_images(batch, n)?;
        let out = ctx.trainer.net.step(
            ctx.backend,
            &small,
            &StepRequest {
                routes,
                bn: BnMode::Batch,
                weight_grads: true,
                route_grads: true,
                sample_weights: None,
            },
        )?;
        Ok(out.tape_bytes)
    };
    if size <= 4 {
        return probe(size);
    }
    let (two, four) = (probe(2)?, probe(4)?);
    let per_image = four.saturating_sub(two) as f64 / 2.0;
    let fixed = two as f64 - 2.0 * per_image;
    Ok((fixed + per_image * size as f64).max(four as f64).round() as usize)
}

/// Mebibytes, for messages.
fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl Radars {
    /// Uniform controller and DARTS logits for `edges` edges of `candidates`.
    pub fn new(
        edges: usize,
        candidates: usize,
        schedule: ArchSchedule,
        settings: RadarsSettings,
        latency: Option<LatencyPenalty>,
    ) -> Self {
        Radars {
            settings,
            controller: ArchLogits::new(edges, candidates, schedule),
            baseline: None,
            darts: ArchLogits::new(edges, candidates, schedule),
            remaining: vec![vec![true; candidates]; edges],
            phase: Phase::Pruning,
            steps_in_round: 0,
            dense_estimate: None,
            estimate: None,
            pruning_steps: 0,
            latency,
        }
    }

    /// Which candidates are left, per edge.
    pub fn remaining(&self) -> &[Vec<bool>] {
        &self.remaining
    }

    /// Whether DARTS has started.
    pub fn pruned(&self) -> bool {
        self.phase == Phase::Darts
    }

    /// `softmax` of `logits` over the remaining candidates (exactly 0 elsewhere).
    fn masked(&self, logits: &ArchLogits) -> Vec<Vec<f32>> {
        logits
            .probabilities()
            .into_iter()
            .zip(&self.remaining)
            .map(|(mut p, keep)| {
                p.iter_mut().zip(keep).for_each(|(v, k)| {
                    if !k {
                        *v = 0.0;
                    }
                });
                let sum: f32 = p.iter().sum();
                p.iter_mut().for_each(|v| *v /= sum.max(1e-30));
                p
            })
            .collect()
    }

    /// Pins every pruned candidate's logits.
    fn pin(&mut self) {
        for (e, keep) in self.remaining.iter().enumerate() {
            for (k, &kept) in keep.iter().enumerate() {
                if !kept {
                    self.controller.alpha[e][k] = PRUNED_LOGIT;
                    self.darts.alpha[e][k] = PRUNED_LOGIT;
                }
            }
        }
    }

    /// The dense step over the remaining candidates (uniform weights on them).
    fn dense_routes(&self) -> Vec<Route> {
        self.remaining
            .iter()
            .map(|keep| {
                let n = keep.iter().filter(|&&k| k).count().max(1) as f32;
                Route::Sparse(keep.iter().map(|&k| f32::from(u8::from(k)) / n).collect())
            })
            .collect()
    }

    fn fits(&mut self, ctx: &StepContext<'_>) -> Result<bool> {
        let bytes = estimate_step_bytes(ctx, ctx.train, &self.dense_routes())?;
        self.estimate = Some(bytes);
        Ok(bytes <= self.budget())
    }

    /// Whether candidate `k` of an edge may be pruned.
    fn prunable(&self, e: usize, k: usize) -> bool {
        let keep = &self.remaining[e];
        let left = keep.iter().filter(|&&v| v).count();
        let left_non_zero = keep
            .iter()
            .enumerate()
            .filter(|&(j, &v)| v && Some(j) != self.settings.zero_op)
            .count();
        keep[k] && left > 1 && (Some(k) == self.settings.zero_op || left_non_zero > 1)
    }

    /// Prunes one candidate per edge, lowest controller probability first, until the dense
    /// step fits; `Ok(true)` once it does.
    fn prune(&mut self, ctx: &StepContext<'_>) -> Result<bool> {
        let probs = self.masked(&self.controller);
        let mut ranked: Vec<(f32, usize, usize)> = Vec::new();
        for (e, p) in probs.iter().enumerate() {
            if let Some(k) = (0..p.len())
                .filter(|&k| self.prunable(e, k))
                .min_by(|&a, &b| p[a].total_cmp(&p[b]))
            {
                ranked.push((p[k], e, k));
            }
        }
        if ranked.is_empty() {
            return Err(Error::Setting {
                name: "memory-mib".into(),
                problem: format!(
                    "every edge is down to one candidate and the step still needs {:.1} MiB, over the {:.1} MiB budget; use a smaller --batch-size or raise --memory-mib",
                    mib(self.estimate.unwrap_or(0)),
                    mib(self.settings.memory_bytes)
                ),
            });
        }
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        for (_, e, k) in ranked {
            self.remaining[e][k] = false;
            self.pin();
            if self.fits(ctx)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A path drawn from `probs` whose step fits the budget (estimated), redrawn up to
    /// [`PATH_DRAWS`] times.
    fn feasible_path(&self, ctx: &mut StepContext<'_>, probs: &[Vec<f32>]) -> Result<Vec<usize>> {
        let mut smallest = usize::MAX;
        for _ in 0..PATH_DRAWS {
            let chosen: Vec<usize> = probs.iter().map(|p| sample(p, ctx.rng)).collect();
            let routes: Vec<Route> = chosen.iter().map(|&k| Route::Fixed(k)).collect();
            let bytes = estimate_step_bytes(ctx, ctx.train, &routes)?;
            if bytes <= self.budget() {
                return Ok(chosen);
            }
            smallest = smallest.min(bytes);
        }
        Err(Error::Setting {
            name: "memory-mib".into(),
            problem: format!(
                "{PATH_DRAWS} paths drawn from the controller all need more than the {:.1} MiB budget (the smallest {:.1} MiB); use a smaller --batch-size or raise --memory-mib",
                mib(self.settings.memory_bytes),
                mib(smallest)
            ),
        })
    }

    /// The budget the estimates are held to: 95% of the memory budget, a margin for the
    /// estimate's error.
    fn budget(&self) -> usize {
        (self.settings.memory_bytes as f64 * ESTIMATE_MARGIN) as usize
    }

    fn pruning_step(&mut self, ctx: &mut StepContext<'_>) -> Result<StepReport> {
        let probs = self.masked(&self.controller);
        let chosen = self.feasible_path(ctx, &probs)?;
        let routes: Vec<Route> = chosen.iter().map(|&k| Route::Fixed(k)).collect();
        let valid = ctx.trainer.probe(ctx.backend, ctx.valid, &routes, false)?;
        let over = match &self.latency {
            Some(p) => {
                let arch = crate::space::Arch(chosen.iter().map(|&k| k as u8).collect());
                p.discrete(&arch, p.weight_at(ctx.progress, ctx.warmup))?
            }
            None => 0.0,
        };
        let reward = -valid.loss - over;
        let baseline = self.baseline.unwrap_or(reward);
        let advantage = reward - baseline;
        self.baseline = Some(0.9 * baseline + 0.1 * reward);
        let grad: Vec<Vec<f32>> = chosen
            .iter()
            .zip(&probs)
            .map(|(&k, p)| {
                score_function(p, k)
                    .into_iter()
                    .map(|s| -advantage * s)
                    .collect()
            })
            .collect();
        self.controller.descend(&grad);
        self.pin();
        let probs = self.masked(&self.controller);
        let routes: Vec<Route> = self
            .feasible_path(ctx, &probs)?
            .into_iter()
            .map(Route::Fixed)
            .collect();
        let train =
            ctx.trainer
                .train_weights(ctx.backend, ctx.train, &routes, ctx.weights_progress)?;
        self.steps_in_round += 1;
        if self.steps_in_round >= self.settings.round_steps.max(1) {
            self.steps_in_round = 0;
            if self.prune(ctx)? {
                self.phase = Phase::Darts;
            }
        }
        Ok(StepReport::new(&train, Some(&valid)))
    }

    fn darts_step(&mut self, ctx: &mut StepContext<'_>) -> Result<StepReport> {
        let probs = self.masked(&self.darts);
        let routes: Vec<Route> = probs.iter().map(|p| Route::Sparse(p.clone())).collect();
        let valid = ctx.trainer.probe(ctx.backend, ctx.valid, &routes, true)?;
        let mut route_grads = valid.route_grads.clone();
        add_latency_grad(
            &mut route_grads,
            self.latency.as_ref(),
            &probs,
            ctx.progress,
            ctx.warmup,
        );
        let grad: Vec<Vec<f32>> = probs
            .iter()
            .zip(&route_grads)
            .map(|(p, g)| softmax_backward(p, g))
            .collect();
        self.darts.descend(&grad);
        self.pin();
        let routes: Vec<Route> = self
            .masked(&self.darts)
            .into_iter()
            .map(Route::Sparse)
            .collect();
        let train =
            ctx.trainer
                .train_weights(ctx.backend, ctx.train, &routes, ctx.weights_progress)?;
        Ok(StepReport::new(&train, Some(&valid)))
    }
}

impl OneShotStrategy for Radars {
    fn name(&self) -> &'static str {
        "radars"
    }

    fn logits(&self) -> &ArchLogits {
        match self.phase {
            Phase::Pruning => &self.controller,
            Phase::Darts => &self.darts,
        }
    }

    /// Removes candidate `k` from every edge before the search (as if pruned at the start).
    fn exclude(&mut self, k: usize) {
        for keep in &mut self.remaining {
            if k < keep.len() && keep.iter().filter(|&&v| v).count() > 1 {
                keep[k] = false;
            }
        }
        self.controller.exclude(k);
        self.darts.exclude(k);
    }

    fn step(&mut self, ctx: &mut StepContext<'_>) -> Result<StepReport> {
        if self.dense_estimate.is_none() {
            let fits = self.fits(ctx)?;
            self.dense_estimate = self.estimate;
            if fits {
                self.phase = Phase::Darts;
            }
        }
        match self.phase {
            Phase::Pruning => {
                self.pruning_steps += 1;
                self.pruning_step(ctx)
            }
            Phase::Darts => self.darts_step(ctx),
        }
    }

    fn notes(&self) -> Vec<String> {
        let left: usize = self.remaining.iter().flatten().filter(|&&k| k).count();
        let all: usize = self.remaining.iter().map(Vec::len).sum();
        vec![format!(
            "RADARS: the dense step was estimated at {:.1} MiB against the {:.1} MiB budget; {} steps of the controller pruned it to {left} of {all} candidates ({:.1} MiB estimated){}",
            mib(self.dense_estimate.unwrap_or(0)),
            mib(self.settings.memory_bytes),
            self.pruning_steps,
            mib(self.estimate.unwrap_or(0)),
            if self.pruned() {
                ", then DARTS searched the pruned space"
            } else {
                "; the search ended before the pruned space fitted (search longer)"
            }
        )]
    }

    fn save(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("serialisable")
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let latency = self.latency.take();
        *self = super::decode(bytes)?;
        self.latency = latency;
        Ok(())
    }
}
