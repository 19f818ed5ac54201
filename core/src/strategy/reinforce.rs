//! REINFORCE (Williams 1992) as the NAS-Bench-201 paper runs it: an independent softmax
//! per decision, the reward minus an exponential-moving-average baseline as the advantage,
//! and Adam on the logits.

use hwnas_kernels::Tensor;
use hwnas_kernels::optim::Adam;
use rand::RngCore;

use super::Strategy;
use super::nets::{draw, softmax};
use crate::history::{History, Record};
use crate::space::{Arch, SearchSpace};

/// A per-decision softmax policy trained by REINFORCE with a moving-average baseline.
///
/// Defaults: Adam with learning rate 0.01 (the policy visibly sharpens within a few hundred
/// queries whatever the reward's scale, since Adam normalises the step) and baseline
/// momentum 0.9, as in the NAS-Bench-201 paper's REINFORCE.
#[derive(Debug, Clone)]
pub struct Reinforce {
    /// Every decision's logits, one after the other.
    logits: Tensor,
    sizes: Vec<usize>,
    optimiser: Adam,
    /// Baseline momentum: `baseline = m * baseline + (1 - m) * reward`.
    pub momentum: f64,
    baseline: Option<f64>,
}

impl Reinforce {
    /// A uniform policy over `space` with the default settings.
    pub fn new(space: &dyn SearchSpace) -> Self {
        Self::with_settings(space, 0.01, 0.9)
    }

    /// A uniform policy with the given Adam learning rate and baseline momentum.
    pub fn with_settings(space: &dyn SearchSpace, learning_rate: f32, momentum: f64) -> Self {
        let sizes: Vec<usize> = space.decisions().iter().map(|d| d.choices.len()).collect();
        Reinforce {
            logits: Tensor::zeros(&[sizes.iter().sum()]),
            sizes,
            optimiser: Adam::new(learning_rate),
            momentum,
            baseline: None,
        }
    }

    /// The policy's probabilities for each decision.
    pub fn probabilities(&self) -> Vec<Vec<f32>> {
        let mut at = 0;
        self.sizes
            .iter()
            .map(|&n| {
                let probs = softmax(&self.logits.data()[at..at + n]);
                at += n;
                probs
            })
            .collect()
    }
}

impl Strategy for Reinforce {
    fn name(&self) -> &'static str {
        "reinforce"
    }

    fn propose(&mut self, _: &dyn SearchSpace, _: &History, rng: &mut dyn RngCore) -> Arch {
        Arch(
            self.probabilities()
                .iter()
                .map(|p| draw(p, 1.0, rng))
                .collect(),
        )
    }

    fn observe(&mut self, _: &dyn SearchSpace, _: &History, record: &Record) {
        let reward = record.reward;
        let baseline = match self.baseline {
            None => reward,
            Some(b) => self.momentum * b + (1.0 - self.momentum) * reward,
        };
        self.baseline = Some(baseline);
        let advantage = (reward - baseline) as f32;
        // Gradient of -advantage * log pi(arch) with respect to the logits.
        let mut gradient = Vec::with_capacity(self.logits.len());
        for (probs, &choice) in self.probabilities().iter().zip(&record.arch.0) {
            for (i, p) in probs.iter().enumerate() {
                let indicator = f32::from(i == usize::from(choice));
                gradient.push(-advantage * (indicator - p));
            }
        }
        let gradient = Tensor::new(self.logits.shape(), gradient).expect("one per logit");
        self.optimiser
            .step(std::slice::from_mut(&mut self.logits), &[gradient]);
    }
}
