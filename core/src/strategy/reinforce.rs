//! REINFORCE (Williams 1992) as the NAS-Bench-201 paper runs it: an independent softmax
//! per decision, the reward minus an exponential-moving-average baseline as the advantage,
//! and Adam on the logits.

use rand::{Rng, RngCore};

use super::Strategy;
use crate::history::{History, Record};
use crate::optim::Adam;
use crate::space::{Arch, SearchSpace};

/// A per-decision softmax policy trained by REINFORCE with a moving-average baseline.
///
/// Defaults: Adam with learning rate 0.01 (the policy visibly sharpens within a few hundred
/// queries whatever the reward's scale, since Adam normalises the step) and baseline
/// momentum 0.9, as in the NAS-Bench-201 paper's REINFORCE.
#[derive(Debug, Clone)]
pub struct Reinforce {
    logits: Vec<Vec<f64>>,
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
    pub fn with_settings(space: &dyn SearchSpace, learning_rate: f64, momentum: f64) -> Self {
        let logits: Vec<Vec<f64>> = space
            .decisions()
            .iter()
            .map(|d| vec![0.0; d.choices.len()])
            .collect();
        let size = logits.iter().map(Vec::len).sum();
        Reinforce {
            logits,
            optimiser: Adam::new(size, learning_rate),
            momentum,
            baseline: None,
        }
    }

    /// The policy's probabilities for each decision.
    pub fn probabilities(&self) -> Vec<Vec<f64>> {
        self.logits.iter().map(|l| softmax(l)).collect()
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

impl Strategy for Reinforce {
    fn name(&self) -> &'static str {
        "reinforce"
    }

    fn propose(&mut self, _: &dyn SearchSpace, _: &History, rng: &mut dyn RngCore) -> Arch {
        Arch(
            self.probabilities()
                .iter()
                .map(|p| {
                    let u: f64 = rng.random();
                    let mut acc = 0.0;
                    for (i, pi) in p.iter().enumerate() {
                        acc += pi;
                        if u < acc {
                            return i as u8;
                        }
                    }
                    (p.len() - 1) as u8
                })
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
        let advantage = reward - baseline;
        // Gradient of -advantage * log pi(arch) with respect to the logits.
        let mut gradient = Vec::with_capacity(self.optimiser.len());
        for (probs, &choice) in self.probabilities().iter().zip(&record.arch.0) {
            for (i, p) in probs.iter().enumerate() {
                let indicator = if i == usize::from(choice) { 1.0 } else { 0.0 };
                gradient.push(-advantage * (indicator - p));
            }
        }
        let mut flat: Vec<f64> = self.logits.iter().flatten().copied().collect();
        self.optimiser.step(&mut flat, &gradient);
        let mut at = 0;
        for logits in &mut self.logits {
            let n = logits.len();
            logits.copy_from_slice(&flat[at..at + n]);
            at += n;
        }
    }
}
