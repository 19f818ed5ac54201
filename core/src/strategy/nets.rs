//! Small multilayer perceptrons on the kernels crate's tape (CPU backend), for the learned
//! strategies' actors, critics, generators and discriminators, and the softmax, sampling
//! and loss helpers they share.

use hwnas_kernels::optim::Adam;
use hwnas_kernels::{Activation, Cpu, Tape, Tensor, Var};
use rand::{Rng, RngCore};

/// A ReLU MLP: linear layers with ReLU between them and none after the last.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// `(weight [in, out], bias [out])` per layer.
    pub layers: Vec<(Tensor, Tensor)>,
    optimiser: Adam,
}

impl Mlp {
    /// An MLP with the given widths (`[in, hidden..., out]`), He-initialised from `seed`.
    pub fn new(widths: &[usize], learning_rate: f32, seed: u64) -> Self {
        let shapes: Vec<(usize, usize)> = widths.windows(2).map(|w| (w[0], w[1])).collect();
        Self::with_layers(&shapes, learning_rate, seed)
    }

    /// Layers of the given `(in, out)` shapes that need not chain (the weight matrices of
    /// a recurrent cell), He-initialised from `seed`, trained by one Adam.
    pub fn with_layers(shapes: &[(usize, usize)], learning_rate: f32, seed: u64) -> Self {
        let layers = shapes
            .iter()
            .enumerate()
            .map(|(i, &(inputs, outputs))| {
                let scale = (2.0 / inputs as f32).sqrt();
                (
                    Tensor::randn(
                        &[inputs, outputs],
                        scale,
                        seed.wrapping_mul(31).wrapping_add(i as u64),
                    ),
                    Tensor::zeros(&[outputs]),
                )
            })
            .collect();
        Mlp {
            layers,
            optimiser: Adam::new(learning_rate),
        }
    }

    /// Puts the parameters on a tape; returns their variables in layer order.
    pub fn on_tape(&self, tape: &mut Tape<'_>) -> Vec<(Var, Var)> {
        self.layers
            .iter()
            .map(|(w, b)| (tape.leaf(w.clone(), true), tape.leaf(b.clone(), true)))
            .collect()
    }

    /// The forward pass of `x [N, in]` with parameters already on the tape.
    pub fn forward(tape: &mut Tape<'_>, params: &[(Var, Var)], x: Var) -> Var {
        let mut h = x;
        for (i, (w, b)) in params.iter().enumerate() {
            h = tape.linear(h, *w, *b).expect("layer shapes agree");
            if i + 1 < params.len() {
                h = tape.activation(h, Activation::Relu).expect("relu");
            }
        }
        h
    }

    /// Outputs for a batch of inputs (no gradients).
    pub fn predict(&self, inputs: &Tensor) -> Tensor {
        let backend = Cpu;
        let mut tape = Tape::new(&backend);
        let params = self.on_tape(&mut tape);
        let x = tape.leaf(inputs.clone(), false);
        let y = Self::forward(&mut tape, &params, x);
        tape.value(y).clone()
    }

    /// The gradients the tape holds for `params`, in parameter order (zeros where none
    /// reached a parameter); hand them to [`Mlp::apply`] once the tape is dropped, so that
    /// the parameters are updated in place instead of copied.
    pub fn gradients(&self, tape: &Tape<'_>, params: &[(Var, Var)]) -> Vec<Tensor> {
        params
            .iter()
            .flat_map(|(w, b)| [*w, *b])
            .zip(self.layers.iter().flat_map(|(w, b)| [w, b]))
            .map(|(v, p)| {
                tape.grad(v)
                    .cloned()
                    .unwrap_or_else(|| Tensor::zeros(p.shape()))
            })
            .collect()
    }

    /// One Adam step along `gradients` (from [`Mlp::gradients`]). The parameters are
    /// updated in place when no tape still shares them, copied first otherwise.
    pub fn apply(&mut self, gradients: &[Tensor]) {
        let mut flat: Vec<Tensor> = std::mem::take(&mut self.layers)
            .into_iter()
            .flat_map(|(w, b)| [w, b])
            .collect();
        self.optimiser.step(&mut flat, gradients);
        let mut flat = flat.into_iter();
        while let (Some(w), Some(b)) = (flat.next(), flat.next()) {
            self.layers.push((w, b));
        }
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let mut weights = logits.to_vec();
    let sum = softmax_weights(&mut weights);
    weights.into_iter().map(|e| e / sum).collect()
}

/// The softmax of `logits` unnormalised, in place (`exp(l - max)`), and the weights' sum:
/// what [`draw`] needs without a division per option.
pub fn softmax_weights(logits: &mut [f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for l in logits.iter_mut() {
        *l = (*l - max).exp();
        sum += *l;
    }
    sum
}

/// Draws option `i` with probability `weights[i] / total` (inverse CDF over the running
/// sum; the last option where rounding leaves the draw past the sum).
pub fn draw(weights: &[f32], total: f32, rng: &mut dyn RngCore) -> u8 {
    let u = rng.random::<f32>() * total;
    let mut acc = 0.0;
    for (i, w) in weights.iter().enumerate() {
        acc += w;
        if u < acc {
            return i as u8;
        }
    }
    weights.len().saturating_sub(1) as u8
}

/// Pinball (quantile) loss of predictions `q` for targets `y` at quantile `tau`, and its
/// gradient with respect to `q` (mean over the batch).
pub fn pinball(q: &[f32], y: &[f32], tau: f32) -> (f32, Vec<f32>) {
    let n = q.len().max(1) as f32;
    let mut loss = 0.0;
    let mut grad = Vec::with_capacity(q.len());
    for (&qi, &yi) in q.iter().zip(y) {
        let u = yi - qi;
        if u >= 0.0 {
            loss += tau * u;
            grad.push(-tau / n);
        } else {
            loss += (tau - 1.0) * u;
            grad.push((1.0 - tau) / n);
        }
    }
    (loss / n, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinball_loss_and_gradient() {
        let (loss, grad) = pinball(&[1.0, 3.0], &[2.0, 2.0], 0.9);
        assert!((loss - (0.9 * 1.0 + 0.1 * 1.0) / 2.0).abs() < 1e-6);
        assert!(
            (grad[0] + 0.45).abs() < 1e-6 && (grad[1] - 0.05).abs() < 1e-6,
            "{grad:?}"
        );
        // Finite differences of the loss agree with the gradient away from the kink.
        let eps = 1e-3;
        let numeric = (pinball(&[1.0 + eps, 3.0], &[2.0, 2.0], 0.9).0
            - pinball(&[1.0 - eps, 3.0], &[2.0, 2.0], 0.9).0)
            / (2.0 * eps);
        assert!((numeric - grad[0]).abs() < 1e-3);
    }

    #[test]
    fn fitting_to_a_high_quantile_lands_above_the_median() {
        // A constant critic fitted by pinball loss at 0.9 converges to the 90th percentile.
        let targets: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let mut q = 0.0f32;
        for _ in 0..4000 {
            let (_, grad) = pinball(&vec![q; 100], &targets, 0.9);
            q -= 0.5 * grad.iter().sum::<f32>();
        }
        assert!((q - 0.9).abs() < 0.03, "{q}");
    }
}
