//! Where an exported model's parameters come from: random He initialisation for profiling
//! (latency does not depend on the values), or a trained supernet's weights.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

/// Batch-norm parameters of one layer (inference form).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    /// Scale.
    pub gamma: Vec<f32>,
    /// Shift.
    pub beta: Vec<f32>,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running variance.
    pub var: Vec<f32>,
    /// Added to the variance.
    pub eps: f32,
}

/// A source of parameters, asked by layer name and shape in network order.
pub trait Weights {
    /// A convolution's weight, `[out, in / groups, kh, kw]`, row-major.
    fn conv(&mut self, name: &str, shape: [usize; 4]) -> Vec<f32>;
    /// A bias vector.
    fn bias(&mut self, name: &str, len: usize) -> Vec<f32>;
    /// A batch norm over `channels`.
    fn batch_norm(&mut self, name: &str, channels: usize) -> BatchNorm;
    /// A linear layer's weight `[out, in]`.
    fn linear(&mut self, name: &str, out: usize, inputs: usize) -> Vec<f32>;
}

/// He-normal weights and non-trivial batch-norm statistics from a seeded generator.
#[derive(Debug, Clone)]
pub struct RandomWeights {
    rng: ChaCha8Rng,
}

impl RandomWeights {
    /// Weights drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        RandomWeights {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn normal(&mut self, len: usize, std: f32) -> Vec<f32> {
        let normal = Normal::new(0.0, std).expect("a positive standard deviation");
        (0..len).map(|_| normal.sample(&mut self.rng)).collect()
    }

    fn uniform(&mut self, len: usize, low: f32, high: f32) -> Vec<f32> {
        let uniform = Uniform::new(low, high).expect("low < high");
        (0..len).map(|_| uniform.sample(&mut self.rng)).collect()
    }
}

impl Weights for RandomWeights {
    fn conv(&mut self, _: &str, shape: [usize; 4]) -> Vec<f32> {
        let fan_in = shape[1] * shape[2] * shape[3];
        self.normal(shape.iter().product(), (2.0 / fan_in as f32).sqrt())
    }

    fn bias(&mut self, _: &str, len: usize) -> Vec<f32> {
        self.normal(len, 0.05)
    }

    fn batch_norm(&mut self, _: &str, channels: usize) -> BatchNorm {
        BatchNorm {
            gamma: self.uniform(channels, 0.5, 1.5),
            beta: self.normal(channels, 0.1),
            mean: self.normal(channels, 0.1),
            var: self.uniform(channels, 0.5, 1.5),
            eps: 1e-5,
        }
    }

    fn linear(&mut self, _: &str, out: usize, inputs: usize) -> Vec<f32> {
        self.normal(out * inputs, (1.0 / inputs as f32).sqrt())
    }
}
