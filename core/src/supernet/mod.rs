//! Weight-sharing supernets on the kernels crate's tape: every edge a mixed op of its
//! candidates, run in one of three ways per step (see [`Route`]): all candidates weighted
//! (DARTS), only the candidates with non-zero weight computed (GDAS, AdvantageNAS,
//! ProxylessNAS-style), or one fixed candidate (a discrete subnet with inherited weights).

pub mod batchnorm;
pub mod checkpoint;
pub mod nb201;
pub mod params;

pub use batchnorm::BnStats;
pub use nb201::{Nb201Supernet, Nb201SupernetConfig};
pub use params::{Binding, ParamStore};

use hwnas_kernels::Tensor;

/// How one edge's mixed op runs in a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Every candidate computed and summed with these weights (one per candidate).
    Dense(Vec<f32>),
    /// Only candidates with non-zero weight computed, summed with their weights (a hard
    /// one-hot for GDAS and AdvantageNAS; two paths for ProxylessNAS).
    Sparse(Vec<f32>),
    /// One candidate, unweighted: the discrete subnet.
    Fixed(usize),
}

impl Route {
    /// One-hot sparse weights selecting `op` of `k`.
    pub fn one_hot(op: usize, k: usize) -> Route {
        let mut w = vec![0.0; k];
        w[op] = 1.0;
        Route::Sparse(w)
    }
}

/// Batch normalisation in a step.
#[derive(Debug, Clone, Copy)]
pub enum BnMode<'a> {
    /// Training mode: the batch's own statistics (returned for running averages).
    Batch,
    /// Inference mode with these statistics.
    Fixed(&'a BnStats),
}

/// What one step asks for.
#[derive(Debug, Clone)]
pub struct StepRequest<'a> {
    /// One route per edge.
    pub routes: &'a [Route],
    /// Batch normalisation mode.
    pub bn: BnMode<'a>,
    /// Gradients of the loss with respect to the network's weights.
    pub weight_grads: bool,
    /// Gradients of the loss with respect to each edge's route weights.
    pub route_grads: bool,
}

/// What one step returns.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// Mean cross-entropy of the batch.
    pub loss: f32,
    /// Correctly classified images.
    pub correct: usize,
    /// Per edge: d loss / d route weight (empty unless asked; zeros for `Fixed` routes).
    pub route_grads: Vec<Vec<f32>>,
    /// d loss / d parameter, in the store's order (empty unless asked).
    pub weight_grads: Vec<Tensor>,
    /// Per training-mode batch-norm layer: its name, batch mean and variance.
    pub batch_stats: Vec<(String, Vec<f32>, Vec<f32>)>,
    /// Bytes of activations, gradients and saved intermediates the tape held at its peak.
    pub tape_bytes: usize,
}
