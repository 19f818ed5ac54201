//! Architecture parameters of a one-shot search: a logit per edge and candidate, their
//! Adam optimiser, and the sampling helpers the strategies share (categorical draws,
//! Gumbel noise, the softmax's backward).

use hwnas_kernels::Tensor;
use hwnas_kernels::optim::Adam;
use rand::Rng;
use serde::{Deserialize, Serialize};

pub use crate::strategy::nets::softmax;

/// Settings of the architecture optimiser (DARTS' Adam, betas 0.5 / 0.999, weight decay
/// 1e-3), with a learning rate raised for searches of hundreds rather than thousands of
/// steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArchSchedule {
    /// Adam's step size.
    pub lr: f32,
    /// L2 weight decay on the logits.
    pub weight_decay: f32,
}

impl Default for ArchSchedule {
    fn default() -> Self {
        ArchSchedule {
            lr: 0.01,
            weight_decay: 1e-3,
        }
    }
}

/// Logits per edge (`[edges][candidates]`) and their optimiser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchLogits {
    /// The logits.
    pub alpha: Vec<Vec<f32>>,
    adam: Adam,
    /// Candidates never sampled nor derived: their logit is pinned at [`EXCLUDED_LOGIT`].
    excluded: Vec<usize>,
}

/// The logit an excluded candidate is pinned at: probability below 1e-13 against logits
/// near 0 (every draw from the distribution misses it; its logarithm stays finite).
pub const EXCLUDED_LOGIT: f32 = -30.0;

impl ArchLogits {
    /// Zero logits (uniform choice) for `edges` x `candidates`.
    pub fn new(edges: usize, candidates: usize, schedule: ArchSchedule) -> Self {
        let mut adam = Adam::new(schedule.lr);
        adam.beta1 = 0.5;
        adam.weight_decay = schedule.weight_decay;
        ArchLogits {
            alpha: vec![vec![0.0; candidates]; edges],
            adam,
            excluded: Vec::new(),
        }
    }

    /// Never samples nor derives candidate `k` on any edge (its logit pinned far below the
    /// others, its gradient ignored); a `k` past the candidates is ignored.
    pub fn exclude(&mut self, k: usize) {
        if k < self.candidates() && !self.excluded.contains(&k) {
            self.excluded.push(k);
        }
        self.pin();
    }

    /// The excluded candidates.
    pub fn excluded(&self) -> &[usize] {
        &self.excluded
    }

    fn pin(&mut self) {
        for a in &mut self.alpha {
            for &k in &self.excluded {
                a[k] = EXCLUDED_LOGIT;
            }
        }
    }

    /// Candidates per edge.
    pub fn candidates(&self) -> usize {
        self.alpha.first().map_or(0, Vec::len)
    }

    /// `softmax(alpha_e)` per edge.
    pub fn probabilities(&self) -> Vec<Vec<f32>> {
        self.alpha.iter().map(|a| softmax(a)).collect()
    }

    /// One Adam descent step along `grad` (`[edges][candidates]`).
    pub fn descend(&mut self, grad: &[Vec<f32>]) {
        let shape = [self.alpha.len(), self.alpha[0].len()];
        let flat = |v: &[Vec<f32>]| {
            Tensor::new(&shape, v.iter().flatten().copied().collect()).expect("edges x candidates")
        };
        let mut params = [flat(&self.alpha)];
        self.adam.step(&mut params, &[flat(grad)]);
        let [p] = params;
        for (row, values) in self.alpha.iter_mut().zip(p.data().chunks(shape[1])) {
            row.copy_from_slice(values);
        }
        self.pin();
    }
}

/// The backward of `p = softmax(x)`: `dx = p * (dp - <p, dp>)`.
pub fn softmax_backward(p: &[f32], dp: &[f32]) -> Vec<f32> {
    let inner: f32 = p.iter().zip(dp).map(|(a, b)| a * b).sum();
    p.iter().zip(dp).map(|(p, g)| p * (g - inner)).collect()
}

/// A draw from the categorical distribution `p`.
pub fn sample(p: &[f32], rng: &mut impl Rng) -> usize {
    let u: f32 = rng.random();
    let mut acc = 0.0;
    for (i, &q) in p.iter().enumerate() {
        acc += q;
        if u < acc {
            return i;
        }
    }
    // Rounding left the sum just below 1: the last candidate that can be drawn.
    p.iter().rposition(|&q| q > 0.0).unwrap_or(p.len() - 1)
}

pub use hwnas_kernels::cpu::{argmax, gumbel, open_uniform};

/// `one_hot(k) - p`: the gradient of `log p_k` with respect to the logits.
pub fn score_function(p: &[f32], k: usize) -> Vec<f32> {
    p.iter()
        .enumerate()
        .map(|(i, &q)| f32::from(i == k) - q)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn softmax_backward_matches_finite_differences() {
        let x = [0.3f32, -1.0, 0.7, 0.0];
        let dp = [0.5f32, -0.2, 0.1, 0.9];
        let analytic = softmax_backward(&softmax(&x), &dp);
        for i in 0..4 {
            let f = |d: f32| {
                let mut y = x;
                y[i] += d;
                softmax(&y).iter().zip(&dp).map(|(a, b)| a * b).sum::<f32>()
            };
            let numeric = (f(1e-3) - f(-1e-3)) / 2e-3;
            assert!(
                (numeric - analytic[i]).abs() < 1e-3,
                "{i}: {numeric} vs {}",
                analytic[i]
            );
        }
    }

    #[test]
    fn gumbel_argmax_samples_the_softmax() {
        let logits = [1.0f32, 0.0, -1.0];
        let p = softmax(&logits);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut counts = [0usize; 3];
        let n = 20_000;
        for _ in 0..n {
            let g = gumbel(3, &mut rng);
            let z: Vec<f32> = logits.iter().zip(&g).map(|(a, b)| a + b).collect();
            counts[argmax(&z)] += 1;
        }
        for (c, q) in counts.iter().zip(&p) {
            assert!(
                (*c as f32 / n as f32 - q).abs() < 0.015,
                "{counts:?} vs {p:?}"
            );
        }
    }
}
