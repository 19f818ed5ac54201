//! DARTS, first order (Liu et al., ICLR 2019): every candidate runs, weighted by
//! `softmax(alpha)`; the architecture descends the validation loss's gradient (plus the
//! latency term's at the expected weights, see [`super::latency`]), the weights the training
//! loss's.

use serde::{Deserialize, Serialize};

use super::arch::{ArchLogits, ArchSchedule, softmax_backward};
use super::latency::{LatencyPenalty, add_latency_grad};
use super::{OneShotStrategy, StepContext, StepReport};
use crate::error::Result;
use crate::supernet::Route;

/// First-order DARTS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Darts {
    logits: ArchLogits,
    #[serde(skip)]
    latency: Option<LatencyPenalty>,
}

impl Darts {
    /// Uniform logits for `edges` edges; `latency` adds the latency term.
    pub fn new(
        edges: usize,
        candidates: usize,
        schedule: ArchSchedule,
        latency: Option<LatencyPenalty>,
    ) -> Self {
        Darts {
            logits: ArchLogits::new(edges, candidates, schedule),
            latency,
        }
    }
}

impl OneShotStrategy for Darts {
    fn name(&self) -> &'static str {
        "darts"
    }

    fn logits(&self) -> &ArchLogits {
        &self.logits
    }

    fn exclude(&mut self, k: usize) {
        self.logits.exclude(k);
    }

    fn step(&mut self, ctx: &mut StepContext<'_>) -> Result<StepReport> {
        let probs = self.logits.probabilities();
        let routes: Vec<Route> = probs.iter().map(|p| Route::Dense(p.clone())).collect();
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
        self.logits.descend(&grad);
        let routes: Vec<Route> = self
            .logits
            .probabilities()
            .into_iter()
            .map(Route::Dense)
            .collect();
        let train =
            ctx.trainer
                .train_weights(ctx.backend, ctx.train, &routes, ctx.weights_progress)?;
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
