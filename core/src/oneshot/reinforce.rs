//! REINFORCE on the supernet (ENAS-style, the comparison AdvantageNAS draws): one
//! candidate sampled per edge, the whole architecture rewarded with the negative
//! validation loss of that subnet, minus an exponential moving average baseline, and the
//! same reward credited to every edge.

use serde::{Deserialize, Serialize};

use super::arch::{ArchLogits, ArchSchedule, sample, score_function};
use super::latency::LatencyPenalty;
use super::{OneShotStrategy, StepContext, StepReport};
use crate::error::Result;
use crate::supernet::Route;

/// REINFORCE with a moving-average baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupernetReinforce {
    logits: ArchLogits,
    /// Decay of the reward baseline.
    pub baseline_decay: f32,
    baseline: Option<f32>,
    #[serde(skip)]
    latency: Option<LatencyPenalty>,
}

impl SupernetReinforce {
    /// Uniform logits for `edges` edges, baseline decay 0.9.
    pub fn new(
        edges: usize,
        candidates: usize,
        schedule: ArchSchedule,
        latency: Option<LatencyPenalty>,
    ) -> Self {
        SupernetReinforce {
            logits: ArchLogits::new(edges, candidates, schedule),
            baseline_decay: 0.9,
            baseline: None,
            latency,
        }
    }
}

impl OneShotStrategy for SupernetReinforce {
    fn name(&self) -> &'static str {
        "reinforce"
    }

    fn logits(&self) -> &ArchLogits {
        &self.logits
    }

    fn exclude(&mut self, k: usize) {
        self.logits.exclude(k);
    }

    fn step(&mut self, ctx: &mut StepContext<'_>) -> Result<StepReport> {
        let probs = self.logits.probabilities();
        let chosen: Vec<usize> = probs.iter().map(|p| sample(p, ctx.rng)).collect();
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
        self.baseline = Some(self.baseline_decay * baseline + (1.0 - self.baseline_decay) * reward);
        // Descend -advantage * grad log p.
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
