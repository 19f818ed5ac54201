//! AdvantageNAS (Sato et al., AAAI 2021): one candidate sampled per edge from
//! `softmax(theta_e)` and only it computed; credit is assigned per edge: the advantage of
//! edge `e` is the gradient of the validation loss with respect to the sampled
//! candidate's output weight, `A_e = sum_k a_ek dL/da_ek`, and the logits descend
//! `A_e (a_e - softmax(theta_e))` (optionally `A_e` minus an exponential moving average
//! of itself, the baseline variant).
//!
//! As the authors run it: on NAS-Bench-201 the four candidates other than `none`
//! ([`AdvantageNas::without`]); the weights train alone for the first 50 of 90 parts of the run
//! ([`OneShotStrategy::warmup_share`]); the baseline is a moving average with coefficient
//! 0.05, started at the first advantage; and where the zero operation is kept (the DARTS
//! space), the zero operation, whose output and so whose
//! advantage is always exactly 0, is credited the worst (largest) running-average advantage
//! of the other candidates of its edge — otherwise it wins whenever the others' advantages
//! are positive, as they are on random weights. Deviation, on purpose: the architecture's
//! learning rate stays the shared 0.01 (the authors: 3e-4), because these runs have about
//! 25x fewer steps than theirs and 3e-4 would leave the distribution uniform.
//!
//! The latency term (see [`super::latency`]) adds, while the sampled cell's table latency
//! is over the budget, each sampled candidate's table cost to its edge's credit: the
//! derivative of the additive term with respect to that candidate's output weight, so the
//! latency's credit is per edge as the loss's is. The running averages behind the zero
//! operation's credit hold the loss part only; `none` is charged its own latency.

use serde::{Deserialize, Serialize};

use super::arch::{ArchLogits, ArchSchedule, sample, score_function};
use super::latency::LatencyPenalty;
use super::{OneShotStrategy, StepContext, StepReport};
use crate::error::Result;
use crate::supernet::Route;

/// AdvantageNAS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdvantageNas {
    logits: ArchLogits,
    /// Decay of the per-edge moving-average baseline (`None`: no baseline).
    pub baseline_decay: Option<f32>,
    /// Per edge; `None` before its first advantage.
    baseline: Vec<Option<f32>>,
    /// The candidate that outputs zeros (`none`), if the space has one.
    zero_op: Option<usize>,
    /// Per edge and candidate: the running average of its advantage when sampled.
    running: Vec<Vec<Option<f32>>>,
    /// A candidate never sampled (the authors drop `none` on NAS-Bench-201).
    #[serde(skip)]
    latency: Option<LatencyPenalty>,
}

impl AdvantageNas {
    /// Uniform logits for `edges` edges; `baseline_decay` e.g. `Some(0.9)` for the
    /// baseline variant.
    pub fn new(
        edges: usize,
        candidates: usize,
        schedule: ArchSchedule,
        baseline_decay: Option<f32>,
    ) -> Self {
        AdvantageNas {
            logits: ArchLogits::new(edges, candidates, schedule),
            baseline_decay,
            baseline: vec![None; edges],
            zero_op: None,
            running: vec![vec![None; candidates]; edges],
            latency: None,
        }
    }

    /// Never samples candidate `k` (nor derives it): the authors' candidate set on
    /// NAS-Bench-201, four operations without `none`.
    pub fn without(mut self, k: usize) -> Self {
        self.logits.exclude(k);
        self
    }

    /// With the latency term.
    pub fn with_latency(mut self, latency: Option<LatencyPenalty>) -> Self {
        self.latency = latency;
        self
    }

    /// Credits candidate `zero` (the zero operation) the worst running-average advantage of
    /// its edge's other candidates instead of its own, always-zero one.
    pub fn with_zero_op(mut self, zero: usize) -> Self {
        self.zero_op = Some(zero).filter(|&z| z < self.logits.candidates());
        self
    }

    /// The advantage credited to candidate `k` of edge `e` whose measured advantage is
    /// `measured`; updates the running averages.
    fn credited(&mut self, e: usize, k: usize, measured: f32) -> f32 {
        if self.zero_op == Some(k) {
            return self.running[e]
                .iter()
                .enumerate()
                .filter(|&(j, _)| Some(j) != self.zero_op)
                .filter_map(|(_, a)| *a)
                .fold(None, |worst: Option<f32>, a| {
                    Some(worst.map_or(a, |w| w.max(a)))
                })
                .unwrap_or(0.0);
        }
        let decay = self.baseline_decay.unwrap_or(ADVANTAGE_RUNNING_DECAY);
        let slot = &mut self.running[e][k];
        *slot = Some(slot.map_or(measured, |r| decay * r + (1.0 - decay) * measured));
        measured
    }
}

/// Decay of the per-candidate running advantages when there is no baseline.
const ADVANTAGE_RUNNING_DECAY: f32 = 0.95;

impl OneShotStrategy for AdvantageNas {
    fn name(&self) -> &'static str {
        "advantagenas"
    }

    fn logits(&self) -> &ArchLogits {
        &self.logits
    }

    fn exclude(&mut self, k: usize) {
        self.logits.exclude(k);
    }

    fn warmup_share(&self) -> f32 {
        50.0 / 90.0
    }

    fn step(&mut self, ctx: &mut StepContext<'_>) -> Result<StepReport> {
        let mut probs = self.logits.probabilities();
        // Exactly 0 where the architecture step samples (the warm-up and the weight step
        // draw from the pinned logits, below 1e-13).
        for &k in self.logits.excluded() {
            for p in &mut probs {
                p[k] = 0.0;
                let sum: f32 = p.iter().sum();
                p.iter_mut().for_each(|v| *v /= sum);
            }
        }
        let chosen: Vec<usize> = probs.iter().map(|p| sample(p, ctx.rng)).collect();
        let routes: Vec<Route> = chosen
            .iter()
            .map(|&k| Route::one_hot(k, self.logits.candidates()))
            .collect();
        let valid = ctx.trainer.probe(ctx.backend, ctx.valid, &routes, true)?;
        let latency = self.latency.as_ref().map(|p| {
            let hard: Vec<Vec<f32>> = chosen
                .iter()
                .map(|&k| (0..probs[0].len()).map(|i| f32::from(i == k)).collect())
                .collect();
            p.relaxed(&hard, p.weight_at(ctx.progress, ctx.warmup))
        });
        let mut grad = Vec::with_capacity(chosen.len());
        for (e, (&k, p)) in chosen.iter().zip(&probs).enumerate() {
            // a_e is one-hot, so sum_k a_ek dL/da_ek is the sampled entry.
            let advantage = self.credited(e, k, valid.route_grads[e][k])
                + latency.as_ref().map_or(0.0, |l| l.grad[e][k]);
            let credit = match self.baseline_decay {
                Some(decay) => {
                    let baseline = self.baseline[e].unwrap_or(advantage);
                    self.baseline[e] = Some(decay * baseline + (1.0 - decay) * advantage);
                    advantage - baseline
                }
                None => advantage,
            };
            grad.push(
                score_function(p, k)
                    .into_iter()
                    .map(|s| credit * s)
                    .collect(),
            );
        }
        self.logits.descend(&grad);
        let train = super::train_sampled_path(ctx, &self.logits)?;
        Ok(StepReport::new(&train, Some(&valid)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zero_op_is_credited_the_worst_running_advantage_of_its_edge() {
        let mut nas = AdvantageNas::new(2, 3, ArchSchedule::default(), Some(0.95)).with_zero_op(0);
        // Before any other candidate was seen, the zero op's own advantage (0) stands.
        assert_eq!(nas.credited(0, 0, 0.0), 0.0);
        // Positive advantages (loss rises with the op's weight), as on random weights:
        // without the rule `none` (always 0) would look best; with it, it is the worst.
        assert_eq!(nas.credited(0, 1, 0.5), 0.5);
        assert_eq!(nas.credited(0, 2, 0.2), 0.2);
        assert_eq!(nas.credited(0, 0, 0.0), 0.5);
        // Running averages, per edge.
        nas.credited(0, 1, -0.5);
        assert!((nas.credited(0, 0, 0.0) - 0.45).abs() < 1e-6);
        assert_eq!(nas.credited(1, 0, 0.0), 0.0);
    }
}
