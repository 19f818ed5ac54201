//! AdvantageNAS (Sato et al., AAAI 2021): one candidate sampled per edge from
//! `softmax(theta_e)` and only it computed; credit is assigned per edge: the advantage of
//! edge `e` is the gradient of the validation loss with respect to the sampled
//! candidate's output weight, `A_e = sum_k a_ek dL/da_ek`, and the logits descend
//! `A_e (a_e - softmax(theta_e))` (optionally `A_e` minus an exponential moving average
//! of itself, the baseline variant).

use serde::{Deserialize, Serialize};

use super::arch::{ArchLogits, ArchSchedule, sample, score_function};
use super::{OneShotStrategy, StepContext, StepReport};
use crate::error::Result;
use crate::supernet::Route;

/// AdvantageNAS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdvantageNas {
    logits: ArchLogits,
    /// Decay of the per-edge moving-average baseline (`None`: no baseline).
    pub baseline_decay: Option<f32>,
    baseline: Vec<f32>,
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
            baseline: vec![0.0; edges],
        }
    }
}

impl OneShotStrategy for AdvantageNas {
    fn name(&self) -> &'static str {
        "advantagenas"
    }

    fn logits(&self) -> &ArchLogits {
        &self.logits
    }

    fn step(&mut self, ctx: &mut StepContext<'_>) -> Result<StepReport> {
        let probs = self.logits.probabilities();
        let chosen: Vec<usize> = probs.iter().map(|p| sample(p, ctx.rng)).collect();
        let routes: Vec<Route> = chosen
            .iter()
            .map(|&k| Route::one_hot(k, self.logits.candidates()))
            .collect();
        let valid = ctx.trainer.probe(ctx.backend, ctx.valid, &routes, true)?;
        let mut grad = Vec::with_capacity(chosen.len());
        for (e, (&k, p)) in chosen.iter().zip(&probs).enumerate() {
            // a_e is one-hot, so sum_k a_ek dL/da_ek is the sampled entry.
            let advantage = valid.route_grads[e][k];
            let credit = match self.baseline_decay {
                Some(decay) => {
                    let centred = advantage - self.baseline[e];
                    self.baseline[e] = decay * self.baseline[e] + (1.0 - decay) * advantage;
                    centred
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
        *self = super::decode(bytes)?;
        Ok(())
    }
}
