//! GDAS (Dong & Yang, CVPR 2019): each step draws one candidate per edge by hard
//! Gumbel-softmax and runs only it; the straight-through estimator carries the gradient
//! of the sampled candidate's weight back to the logits through the soft sample. The
//! temperature anneals linearly from 10 to 0.1 over the search. The latency term enters
//! at the hard sample, its gradient through the soft one like the loss's.

use serde::{Deserialize, Serialize};

use super::arch::{ArchLogits, ArchSchedule, argmax, gumbel, softmax, softmax_backward};
use super::latency::{LatencyPenalty, add_latency_grad};
use super::{OneShotStrategy, StepContext, StepReport};
use crate::error::Result;
use crate::supernet::Route;

/// Temperature at the start of the search.
pub const TAU_START: f32 = 10.0;
/// Temperature at its end.
pub const TAU_END: f32 = 0.1;

/// GDAS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gdas {
    logits: ArchLogits,
    #[serde(skip)]
    latency: Option<LatencyPenalty>,
}

impl Gdas {
    /// Uniform logits for `edges` edges.
    pub fn new(
        edges: usize,
        candidates: usize,
        schedule: ArchSchedule,
        latency: Option<LatencyPenalty>,
    ) -> Self {
        Gdas {
            logits: ArchLogits::new(edges, candidates, schedule),
            latency,
        }
    }

    /// The temperature at `progress` in `[0, 1]`.
    pub fn temperature(progress: f32) -> f32 {
        TAU_START + (TAU_END - TAU_START) * progress.clamp(0.0, 1.0)
    }

    /// Per edge: the soft sample and the index of its hard (argmax) version.
    fn draw(&self, tau: f32, rng: &mut impl rand::Rng) -> Vec<(Vec<f32>, usize)> {
        self.logits
            .alpha
            .iter()
            .map(|a| {
                let g = gumbel(a.len(), rng);
                let z: Vec<f32> = a.iter().zip(&g).map(|(a, g)| (a + g) / tau).collect();
                (softmax(&z), argmax(&z))
            })
            .collect()
    }
}

impl OneShotStrategy for Gdas {
    fn name(&self) -> &'static str {
        "gdas"
    }

    fn logits(&self) -> &ArchLogits {
        &self.logits
    }

    fn exclude(&mut self, k: usize) {
        self.logits.exclude(k);
    }

    fn step(&mut self, ctx: &mut StepContext<'_>) -> Result<StepReport> {
        let tau = Self::temperature(ctx.progress);
        let draws = self.draw(tau, ctx.rng);
        let candidates = self.logits.candidates();
        let routes: Vec<Route> = draws
            .iter()
            .map(|(_, k)| Route::one_hot(*k, candidates))
            .collect();
        let valid = ctx.trainer.probe(ctx.backend, ctx.valid, &routes, true)?;
        // The latency term at the hard sample (see `super::latency`).
        let hard: Vec<Vec<f32>> = draws
            .iter()
            .map(|(soft, k)| (0..soft.len()).map(|i| f32::from(i == *k)).collect())
            .collect();
        let mut route_grads = valid.route_grads.clone();
        add_latency_grad(
            &mut route_grads,
            self.latency.as_ref(),
            &hard,
            ctx.progress,
            ctx.warmup,
        );
        // Straight-through: d loss / d soft = d loss / d hard; then through the softmax
        // of (alpha + g) / tau.
        let grad: Vec<Vec<f32>> = draws
            .iter()
            .zip(&route_grads)
            .map(|((soft, _), g)| {
                softmax_backward(soft, g)
                    .into_iter()
                    .map(|v| v / tau)
                    .collect()
            })
            .collect();
        self.logits.descend(&grad);
        let routes: Vec<Route> = self
            .draw(tau, ctx.rng)
            .iter()
            .map(|(_, k)| Route::one_hot(*k, candidates))
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
