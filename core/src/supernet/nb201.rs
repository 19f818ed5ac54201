//! The NAS-Bench-201 supernet: a 3x3 stem, three stages of `cells` cells (every cell's six
//! edges a mixed op of none, skip, ReLU-conv1x1-BN, ReLU-conv3x3-BN and 3x3 average
//! pooling, the cell's choice shared by every cell as in the benchmark), residual reduction
//! blocks between stages, BN-ReLU, global pooling and a linear classifier. Batch norm in
//! the cells is non-affine, as in NAS-Bench-201's search cells.

use hwnas_kernels::{Activation, Backend, Conv2dSpec, Var};
use serde::{Deserialize, Serialize};

use super::forward::{Forward, PendingStep, begin_step};
use super::params::ParamStore;
use super::{Route, StepOutput, StepRequest};
use crate::error::{Error, Result};
use crate::images::batches::Batch;
use crate::space::Arch;
use crate::space::nb201::{EDGES, OPS};

/// Candidates per edge.
pub const CANDIDATES: usize = OPS.len();

/// The supernet's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nb201SupernetConfig {
    /// Input channels (1 for Fashion-MNIST, 3 for CIFAR).
    pub in_channels: usize,
    /// Channels of the first stage (NAS-Bench-201: 16).
    pub channels: usize,
    /// Cells per stage (NAS-Bench-201: 5).
    pub cells: usize,
    /// Classes.
    pub classes: usize,
}

impl Nb201SupernetConfig {
    /// NAS-Bench-201's size: 16 channels, 5 cells per stage.
    pub fn full(in_channels: usize, classes: usize) -> Self {
        Nb201SupernetConfig {
            in_channels,
            channels: 16,
            cells: 5,
            classes,
        }
    }

    /// The reduced size used on CPU-only machines: 8 channels, 1 cell per stage.
    pub fn reduced(in_channels: usize, classes: usize) -> Self {
        Nb201SupernetConfig {
            in_channels,
            channels: 8,
            cells: 1,
            classes,
        }
    }
}

/// The supernet: its configuration and weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nb201Supernet {
    /// Its size.
    pub config: Nb201SupernetConfig,
    /// Its weights.
    pub params: ParamStore,
}

fn conv_name(stage: usize, cell: usize, edge: usize, kernel: usize) -> String {
    format!("s{stage}.c{cell}.e{edge}.conv{kernel}")
}

impl Nb201Supernet {
    /// A supernet with He-normal weights from `seed`.
    pub fn new(config: Nb201SupernetConfig, seed: u64) -> Result<Self> {
        if config.in_channels == 0
            || config.channels == 0
            || config.cells == 0
            || config.classes < 2
        {
            return Err(Error::Setting {
                name: "supernet".into(),
                problem: format!(
                    "{config:?}: channels, cells and input channels must be positive and classes at least 2"
                ),
            });
        }
        let mut rng = ParamStore::rng(seed);
        let mut p = ParamStore::default();
        let c0 = config.channels;
        p.add_he(
            "stem".into(),
            &[c0, config.in_channels, 3, 3],
            config.in_channels * 9,
            &mut rng,
        );
        let mut c = c0;
        for stage in 0..3 {
            if stage > 0 {
                let out = 2 * c;
                p.add_he(format!("r{stage}.a"), &[out, c, 3, 3], c * 9, &mut rng);
                p.add_he(format!("r{stage}.b"), &[out, out, 3, 3], out * 9, &mut rng);
                p.add_he(format!("r{stage}.short"), &[out, c, 1, 1], c, &mut rng);
                c = out;
            }
            for cell in 0..config.cells {
                for edge in 0..EDGES.len() {
                    for k in [1, 3] {
                        p.add_he(
                            conv_name(stage, cell, edge, k),
                            &[c, c, k, k],
                            c * k * k,
                            &mut rng,
                        );
                    }
                }
            }
        }
        p.add("head.gamma".into(), &[c], vec![1.0; c]);
        p.add("head.beta".into(), &[c], vec![0.0; c]);
        p.add_he("head.w".into(), &[c, config.classes], c, &mut rng);
        p.add(
            "head.b".into(),
            &[config.classes],
            vec![0.0; config.classes],
        );
        Ok(Nb201Supernet { config, params: p })
    }

    /// The routes of a discrete architecture.
    pub fn fixed_routes(arch: &Arch) -> Vec<Route> {
        arch.0
            .iter()
            .map(|&op| Route::Fixed(usize::from(op)))
            .collect()
    }

    /// Runs one batch forward (and backward where asked).
    pub fn step(
        &self,
        backend: &dyn Backend,
        batch: &Batch,
        request: &StepRequest<'_>,
    ) -> Result<StepOutput> {
        self.begin_step(backend, batch, request)?
            .finish(request.sample_weights)
    }

    /// The forward half of [`Self::step`].
    pub(crate) fn begin_step<'b, 's>(
        &'s self,
        backend: &'b dyn Backend,
        batch: &Batch,
        request: &StepRequest<'s>,
    ) -> Result<PendingStep<'b, 's>> {
        let config = self.config;
        begin_step(
            &self.params,
            backend,
            batch,
            request,
            (EDGES.len(), CANDIDATES),
            |f, x| network(f, config, x, request),
        )
    }
}

impl Forward<'_, '_, '_> {
    fn candidate(
        &mut self,
        x: Var,
        op: usize,
        stage: usize,
        cell: usize,
        edge: usize,
    ) -> Result<Var> {
        match op {
            0 => Ok(self.tape.scale(x, 0.0)?),
            1 => Ok(x),
            2 => self.conv_bn(x, &conv_name(stage, cell, edge, 1), 1, true),
            3 => self.conv_bn(x, &conv_name(stage, cell, edge, 3), 1, true),
            4 => Ok(self.tape.avg_pool(x, 3, 1, 1)?),
            other => Err(Error::Setting {
                name: "route".into(),
                problem: format!("operation {other} of {CANDIDATES}"),
            }),
        }
    }

    fn cell(
        &mut self,
        x: Var,
        request: &StepRequest<'_>,
        stage: usize,
        cell: usize,
    ) -> Result<Var> {
        let mut nodes = vec![x];
        for to in 1..4 {
            let mut sum: Option<Var> = None;
            for (e, &(edge_to, from)) in EDGES.iter().enumerate() {
                if edge_to != to {
                    continue;
                }
                let x = nodes[from];
                let out = self.edge(e, &request.routes[e], |f, op| {
                    f.candidate(x, op, stage, cell, e)
                })?;
                sum = Some(match sum {
                    None => out,
                    Some(acc) => self.tape.add(acc, out)?,
                });
            }
            nodes.push(sum.expect("every node has an incoming edge"));
        }
        Ok(nodes[3])
    }

    fn reduction(&mut self, x: Var, stage: usize) -> Result<Var> {
        let a = self.conv_bn(x, &format!("r{stage}.a"), 2, true)?;
        let a = self.conv_bn(a, &format!("r{stage}.b"), 1, true)?;
        let s = self.tape.avg_pool(x, 2, 2, 0)?;
        let s = self.conv(s, &format!("r{stage}.short"), Conv2dSpec::unit())?;
        Ok(self.tape.add(s, a)?)
    }
}

fn network(
    f: &mut Forward<'_, '_, '_>,
    config: Nb201SupernetConfig,
    x: Var,
    request: &StepRequest<'_>,
) -> Result<Var> {
    let mut h = f.conv_bn(x, "stem", 1, false)?;
    for stage in 0..3 {
        if stage > 0 {
            h = f.reduction(h, stage)?;
        }
        for cell in 0..config.cells {
            h = f.cell(h, request, stage, cell)?;
        }
    }
    let gamma = f.param("head.gamma")?;
    let beta = f.param("head.beta")?;
    let h = f.batch_norm(h, "head.bn".into(), Some((gamma, beta)))?;
    let h = f.tape.activation(h, Activation::Relu)?;
    let pooled = f.tape.global_avg_pool(h)?;
    let flat = f.tape.flatten(pooled)?;
    let w = f.param("head.w")?;
    let b = f.param("head.b")?;
    Ok(f.tape.linear(flat, w, b)?)
}
