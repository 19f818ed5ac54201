//! Weight-sharing supernets on the kernels crate's tape: every edge a mixed op of its
//! candidates, run in one of three ways per step (see [`Route`]): all candidates weighted
//! (DARTS), only the candidates with non-zero weight computed (GDAS, AdvantageNAS,
//! ProxylessNAS-style), or one fixed candidate (a discrete subnet with inherited weights).

pub mod batchnorm;
pub mod checkpoint;
pub mod darts;
mod forward;
pub(crate) use forward::PendingStep;
pub mod nb201;
pub mod ofa;
pub mod params;

pub use batchnorm::{BatchStats, BnStats};
pub use darts::{DartsSupernet, DartsSupernetConfig};
pub use nb201::{Nb201Supernet, Nb201SupernetConfig};
pub use ofa::{OfaStage, OfaSupernet, OfaSupernetConfig};
pub use params::{Binding, ParamStore};

use hwnas_kernels::Tensor;
use serde::{Deserialize, Serialize};

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
    /// Per image, the multiplier of its cross-entropy in the loss, which is then
    /// `(1/N) sum_i w_i CE_i` (UNAS's per-sample generalisation gap); `None`: the mean.
    pub sample_weights: Option<&'a [f32]>,
}

/// What one step returns.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// The batch's loss: its mean cross-entropy (weighted as the request asks).
    pub loss: f32,
    /// Each image's cross-entropy (unweighted).
    pub sample_losses: Vec<f32>,
    /// The network's output, `[batch, classes]`.
    pub logits: Tensor,
    /// Correctly classified images.
    pub correct: usize,
    /// Per edge: d loss / d route weight (empty unless asked; zeros for `Fixed` routes).
    pub route_grads: Vec<Vec<f32>>,
    /// d loss / d parameter, in the store's order (empty unless asked).
    pub weight_grads: Vec<Tensor>,
    /// Per training-mode batch-norm layer: its name, batch mean and variance (where the
    /// backend computed them).
    pub batch_stats: BatchStats,
    /// Bytes of activations, gradients and saved intermediates the tape held at its peak.
    pub tape_bytes: usize,
}

/// The kinds of supernet, known before one is built: what sizes a strategy for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SupernetKind {
    /// NAS-Bench-201's cell supernet.
    Nb201,
    /// DARTS's normal and reduction cells.
    Darts,
    /// Once-for-All's MobileNetV3.
    Ofa,
}

impl SupernetKind {
    /// Routes per step and candidates per route: `(edges, candidates)`.
    pub fn shape(self) -> (usize, usize) {
        match self {
            SupernetKind::Nb201 => (crate::space::nb201::EDGES.len(), nb201::CANDIDATES),
            SupernetKind::Darts => (darts::EDGES, darts::CANDIDATES),
            SupernetKind::Ofa => (ofa::EDGES, ofa::CANDIDATES),
        }
    }

    /// Each edge's choice in a discrete architecture of the space (`none`, 0, for a DARTS
    /// edge its genotype leaves out): the one-hot rows a latency table linear in the
    /// choices reads.
    pub fn edge_choices(self, arch: &crate::space::Arch) -> Vec<usize> {
        let routes = match self {
            SupernetKind::Nb201 => Nb201Supernet::fixed_routes(arch),
            SupernetKind::Darts => DartsSupernet::fixed_routes(arch),
            SupernetKind::Ofa => OfaSupernet::fixed_routes(arch),
        };
        routes
            .iter()
            .map(|r| match r {
                Route::Fixed(k) => *k,
                Route::Dense(w) | Route::Sparse(w) => hwnas_kernels::cpu::argmax(w),
            })
            .collect()
    }

    /// Edges that compute the same shapes, numbered from 0 (a latency table may share their
    /// costs): NAS-Bench-201's six edges of a cell all map C channels to C at one
    /// resolution; DARTS's edges by cell and by whether they read a cell input (which a
    /// reduction cell strides); Once-for-All's decisions each on their own.
    pub fn edge_groups(self) -> Vec<usize> {
        match self {
            SupernetKind::Nb201 => vec![0; self.shape().0],
            SupernetKind::Darts => (0..darts::EDGES)
                .map(|e| {
                    let (cell, within) = (e / darts::CELL_EDGES, e % darts::CELL_EDGES);
                    let node = (0..crate::space::darts::NODES)
                        .rfind(|&n| darts::edge_index(n, 0) <= within)
                        .unwrap_or(0);
                    let from_input = within - darts::edge_index(node, 0) < 2;
                    2 * cell + usize::from(!from_input)
                })
                .collect(),
            SupernetKind::Ofa => (0..self.shape().0).collect(),
        }
    }
}

/// A supernet of one of the cell search spaces, as the one-shot strategies drive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Supernet {
    /// NAS-Bench-201's: 6 edges of 5 candidates.
    Nb201(Nb201Supernet),
    /// DARTS's: 14 edges of 8 candidates in each of the normal and the reduction cell.
    Darts(DartsSupernet),
    /// Once-for-All's MobileNetV3: 20 kernel, 20 expand and 5 depth decisions of 3
    /// choices, one subnet per step.
    Ofa(OfaSupernet),
}

impl Supernet {
    /// The input channels and classes it was built for.
    pub fn channels_and_classes(&self) -> (usize, usize) {
        match self {
            Supernet::Nb201(n) => (n.config.in_channels, n.config.classes),
            Supernet::Darts(n) => (n.config.in_channels, n.config.classes),
            Supernet::Ofa(n) => (n.config.in_channels, n.config.classes),
        }
    }

    /// The search space's name (`nb201`, `darts`).
    pub fn space(&self) -> &'static str {
        match self {
            Supernet::Nb201(_) => "nb201",
            Supernet::Darts(_) => "darts",
            Supernet::Ofa(_) => "ofa-mbv3",
        }
    }

    /// One line for reports: the space, its size and its number of scalar weights.
    pub fn describe(&self) -> String {
        let scalars = self.params().scalars();
        match self {
            Supernet::Nb201(net) => format!(
                "NAS-Bench-201, {} channels, {} cell(s) per stage, {scalars} scalar weights",
                net.config.channels, net.config.cells
            ),
            Supernet::Darts(net) => format!(
                "DARTS, {} channels, {} cells, {scalars} scalar weights",
                net.config.channels, net.config.cells
            ),
            Supernet::Ofa(net) => {
                let widths: Vec<String> = net
                    .config
                    .stages
                    .iter()
                    .map(|s| s.width.to_string())
                    .collect();
                format!(
                    "Once-for-All MobileNetV3, stem {}, stages {}, head {}/{}, {scalars} scalar weights",
                    net.config.stem,
                    widths.join("/"),
                    net.config.final_expand,
                    net.config.feature_mix
                )
            }
        }
    }

    /// Which of the supernets this is.
    pub fn kind(&self) -> SupernetKind {
        match self {
            Supernet::Nb201(_) => SupernetKind::Nb201,
            Supernet::Darts(_) => SupernetKind::Darts,
            Supernet::Ofa(_) => SupernetKind::Ofa,
        }
    }

    /// Routes a step takes (one per edge).
    pub fn edges(&self) -> usize {
        self.kind().shape().0
    }

    /// Candidates per edge.
    pub fn candidates(&self) -> usize {
        self.kind().shape().1
    }

    /// Its weights.
    pub fn params(&self) -> &ParamStore {
        match self {
            Supernet::Nb201(net) => &net.params,
            Supernet::Darts(net) => &net.params,
            Supernet::Ofa(net) => &net.params,
        }
    }

    /// Its weights, to update.
    pub fn params_mut(&mut self) -> &mut ParamStore {
        match self {
            Supernet::Nb201(net) => &mut net.params,
            Supernet::Darts(net) => &mut net.params,
            Supernet::Ofa(net) => &mut net.params,
        }
    }

    /// Runs one batch forward (and backward where asked).
    pub fn step(
        &self,
        backend: &dyn hwnas_kernels::Backend,
        batch: &crate::images::batches::Batch,
        request: &StepRequest<'_>,
    ) -> crate::Result<StepOutput> {
        match self {
            Supernet::Nb201(net) => net.step(backend, batch, request),
            Supernet::Darts(net) => net.step(backend, batch, request),
            Supernet::Ofa(net) => net.step(backend, batch, request),
        }
    }

    /// The forward half of [`Self::step`]: the loss's per-image weights are given to
    /// [`forward::PendingStep::finish`] once the images' losses are known.
    pub(crate) fn begin_step<'b, 's>(
        &'s self,
        backend: &'b dyn hwnas_kernels::Backend,
        batch: &crate::images::batches::Batch,
        request: &StepRequest<'s>,
    ) -> crate::Result<forward::PendingStep<'b, 's>> {
        match self {
            Supernet::Nb201(net) => net.begin_step(backend, batch, request),
            Supernet::Darts(net) => net.begin_step(backend, batch, request),
            Supernet::Ofa(net) => net.begin_step(backend, batch, request),
        }
    }

    /// The routes of a discrete architecture of the space.
    pub fn fixed_routes(&self, arch: &crate::space::Arch) -> Vec<Route> {
        match self {
            Supernet::Nb201(_) => Nb201Supernet::fixed_routes(arch),
            Supernet::Darts(_) => DartsSupernet::fixed_routes(arch),
            Supernet::Ofa(_) => OfaSupernet::fixed_routes(arch),
        }
    }

    /// The discrete architecture route weights (one row per edge) stand for: the strongest
    /// candidate per edge (NAS-Bench-201), DARTS's two strongest inputs per node (DARTS),
    /// the strongest choice per decision at the first resolution (Once-for-All).
    pub fn derive(&self, weights: &[Vec<f32>]) -> crate::Result<crate::space::Arch> {
        match self {
            Supernet::Nb201(_) => Ok(crate::space::Arch(
                weights
                    .iter()
                    .map(|w| hwnas_kernels::cpu::argmax(w) as u8)
                    .collect(),
            )),
            Supernet::Darts(_) => DartsSupernet::derive(weights),
            Supernet::Ofa(_) => OfaSupernet::derive(weights),
        }
    }
}
