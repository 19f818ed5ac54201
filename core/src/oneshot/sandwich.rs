//! Weight-sharing training without an architecture distribution to learn (Once-for-All,
//! BigNAS): one subnet per step, by the sandwich rule — the largest subnet, then a uniform
//! random one, the smallest, another random one, and round again — so the shared weights
//! serve the whole space. The architecture is chosen afterwards, by a search that scores
//! subnets with inherited weights. The trace follows the largest subnet.

use serde::{Deserialize, Serialize};

use super::arch::{ArchLogits, ArchSchedule};
use super::{OneShotStrategy, StepContext, StepReport};
use crate::error::Result;
use crate::supernet::Route;

/// Sandwich-rule subnet sampling.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandwichSampling {
    logits: ArchLogits,
    steps: usize,
}

impl SandwichSampling {
    /// For `edges` decisions of `candidates` choices, ordered smallest to largest (the
    /// Once-for-All supernet's routes).
    pub fn new(edges: usize, candidates: usize) -> Self {
        let mut logits = ArchLogits::new(edges, candidates, ArchSchedule::default());
        // Not learned: a mark on the largest choice, so the trace scores the largest
        // subnet.
        for row in &mut logits.alpha {
            if let Some(last) = row.last_mut() {
                *last = 1.0;
            }
        }
        SandwichSampling { logits, steps: 0 }
    }

    /// The routes of step `step`: largest, random, smallest, random.
    fn routes(&self, step: usize, ctx: &mut StepContext<'_>) -> Vec<Route> {
        let (edges, k) = (self.logits.alpha.len(), self.logits.candidates());
        match step % 4 {
            0 => vec![Route::Fixed(k - 1); edges],
            2 => vec![Route::Fixed(0); edges],
            _ => (0..edges)
                .map(|_| Route::Fixed(rand::Rng::random_range(ctx.rng, 0..k)))
                .collect(),
        }
    }
}

impl OneShotStrategy for SandwichSampling {
    fn name(&self) -> &'static str {
        "sandwich"
    }

    fn logits(&self) -> &ArchLogits {
        &self.logits
    }

    fn exclude(&mut self, k: usize) {
        self.logits.exclude(k);
    }

    fn step(&mut self, ctx: &mut StepContext<'_>) -> Result<StepReport> {
        let routes = self.routes(self.steps, ctx);
        let out =
            ctx.trainer
                .train_weights(ctx.backend, ctx.train, &routes, ctx.weights_progress)?;
        self.steps += 1;
        Ok(StepReport::new(&out, None))
    }

    fn save(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("serialisable")
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        *self = super::decode(bytes)?;
        Ok(())
    }
}
