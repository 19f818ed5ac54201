//! The DARTS supernet (Liu et al., ICLR 2019): a 3x3 stem to 3C channels, `cells` cells
//! (reduction cells at a third and two thirds of the depth, doubling the channels), each
//! cell preprocessing its two inputs (the two previous cells' outputs) to C channels, then
//! 4 nodes, node i the sum of a mixed op on every earlier node (14 edges per cell, 8
//! candidates each: none, 3x3 max and average pooling with batch norm, skip — a factorized
//! reduction where it strides —, separable 3x3/5x5 and dilated 3x3/5x5 convolutions), its
//! output the concatenation of the 4 nodes; global pooling and a linear classifier. All
//! normal cells share one set of route weights and all reduction cells another, so a step
//! takes 28 routes: the normal cell's 14 edges, then the reduction cell's. Batch norm is
//! non-affine, as in DARTS's search network.

use hwnas_kernels::cpu::argmax;
use hwnas_kernels::{Activation, Backend, Conv2dSpec, Var};
use serde::{Deserialize, Serialize};

use super::forward::{Forward, PendingStep, begin_step};
use super::params::ParamStore;
use super::{Route, StepOutput, StepRequest};
use crate::error::{Error, Result};
use crate::images::batches::Batch;
use crate::space::Arch;
use crate::space::darts::{DartsSpace, NODES, OPS, input_pairs};

/// Candidates per edge.
pub const CANDIDATES: usize = OPS.len();

/// Edges of one cell: node i reads the two inputs and the i nodes before it.
pub const CELL_EDGES: usize = 14;

/// Routes a step takes: the normal cell's edges, then the reduction cell's.
pub const EDGES: usize = 2 * CELL_EDGES;

/// The edge (within a cell) from input `input` (0 and 1 are the cell's inputs) to
/// intermediate node `node` (0-based).
pub fn edge_index(node: usize, input: usize) -> usize {
    node * (node + 3) / 2 + input
}

/// The supernet's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DartsSupernetConfig {
    /// Input channels (1 for Fashion-MNIST, 3 for CIFAR).
    pub in_channels: usize,
    /// Channels of a node in the first cells (DARTS's search: 16); even.
    pub channels: usize,
    /// Cells (DARTS's search: 8).
    pub cells: usize,
    /// Classes.
    pub classes: usize,
}

impl DartsSupernetConfig {
    /// DARTS's search network: 16 channels, 8 cells.
    pub fn full(in_channels: usize, classes: usize) -> Self {
        DartsSupernetConfig {
            in_channels,
            channels: 16,
            cells: 8,
            classes,
        }
    }

    /// The reduced size used on CPU-only machines: 4 channels, 3 cells (normal, reduction,
    /// reduction).
    pub fn reduced(in_channels: usize, classes: usize) -> Self {
        DartsSupernetConfig {
            in_channels,
            channels: 4,
            cells: 3,
            classes,
        }
    }

    /// Whether cell `cell` is a reduction cell (DARTS: at cells / 3 and 2 cells / 3).
    pub fn is_reduction(&self, cell: usize) -> bool {
        cell == self.cells / 3 || cell == 2 * self.cells / 3
    }
}

/// The supernet: its configuration and weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DartsSupernet {
    /// Its size.
    pub config: DartsSupernetConfig,
    /// Its weights.
    pub params: ParamStore,
}

/// Where one cell sits: its index, channels per node, whether it reduces and whether the
/// cell before it did.
#[derive(Debug, Clone, Copy)]
struct CellPlan {
    index: usize,
    channels: usize,
    reduction: bool,
    after_reduction: bool,
    /// Channels of its two inputs.
    inputs: (usize, usize),
}

fn plan(config: &DartsSupernetConfig) -> Vec<CellPlan> {
    let stem = 3 * config.channels;
    let (mut before, mut last) = (stem, stem);
    let mut channels = config.channels;
    let mut after_reduction = false;
    (0..config.cells)
        .map(|index| {
            let reduction = config.is_reduction(index);
            if reduction {
                channels *= 2;
            }
            let cell = CellPlan {
                index,
                channels,
                reduction,
                after_reduction,
                inputs: (before, last),
            };
            (before, last) = (last, NODES * channels);
            after_reduction = reduction;
            cell
        })
        .collect()
}

fn edge_name(cell: usize, edge: usize, op: usize) -> String {
    format!("c{cell}.e{edge}.{}", OPS[op])
}

/// Adds the weights of a factorized reduction `name` (two stride-2 1x1 convolutions of
/// half the output channels each, on the input and on it shifted by one pixel).
fn add_factorized(
    p: &mut ParamStore,
    name: &str,
    cin: usize,
    cout: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
) {
    p.add_he(format!("{name}.a"), &[cout / 2, cin, 1, 1], cin, rng);
    p.add_he(format!("{name}.b"), &[cout / 2, cin, 1, 1], cin, rng);
}

impl DartsSupernet {
    /// A supernet with He-normal weights from `seed`.
    pub fn new(config: DartsSupernetConfig, seed: u64) -> Result<Self> {
        if config.in_channels == 0
            || config.channels < 2
            || !config.channels.is_multiple_of(2)
            || config.cells == 0
            || config.classes < 2
        {
            return Err(Error::Setting {
                name: "supernet".into(),
                problem: format!(
                    "{config:?}: channels must be even and at least 2, cells and input channels positive, classes at least 2"
                ),
            });
        }
        let mut rng = ParamStore::rng(seed);
        let mut p = ParamStore::default();
        let stem = 3 * config.channels;
        p.add_he(
            "stem".into(),
            &[stem, config.in_channels, 3, 3],
            config.in_channels * 9,
            &mut rng,
        );
        let cells = plan(&config);
        for cell in &cells {
            let (i, c) = (cell.index, cell.channels);
            if cell.after_reduction {
                add_factorized(&mut p, &format!("c{i}.pre0"), cell.inputs.0, c, &mut rng);
            } else {
                p.add_he(
                    format!("c{i}.pre0"),
                    &[c, cell.inputs.0, 1, 1],
                    cell.inputs.0,
                    &mut rng,
                );
            }
            p.add_he(
                format!("c{i}.pre1"),
                &[c, cell.inputs.1, 1, 1],
                cell.inputs.1,
                &mut rng,
            );
            for node in 0..NODES {
                for input in 0..node + 2 {
                    let e = edge_index(node, input);
                    if cell.reduction && input < 2 {
                        add_factorized(&mut p, &edge_name(i, e, 3), c, c, &mut rng);
                    }
                    for (op, k) in [(4, 3), (5, 5)] {
                        let name = edge_name(i, e, op);
                        for half in ["1", "2"] {
                            p.add_he(format!("{name}.dw{half}"), &[c, 1, k, k], k * k, &mut rng);
                            p.add_he(format!("{name}.pw{half}"), &[c, c, 1, 1], c, &mut rng);
                        }
                    }
                    for (op, k) in [(6, 3), (7, 5)] {
                        let name = edge_name(i, e, op);
                        p.add_he(format!("{name}.dw"), &[c, 1, k, k], k * k, &mut rng);
                        p.add_he(format!("{name}.pw"), &[c, c, 1, 1], c, &mut rng);
                    }
                }
            }
        }
        let last = cells.last().map_or(stem, |c| NODES * c.channels);
        p.add_he("head.w".into(), &[last, config.classes], last, &mut rng);
        p.add(
            "head.b".into(),
            &[config.classes],
            vec![0.0; config.classes],
        );
        Ok(DartsSupernet { config, params: p })
    }

    /// The routes of a discrete DARTS genotype: each node's two chosen edges fixed to their
    /// operations, every other edge off (`none`, not computed).
    pub fn fixed_routes(arch: &Arch) -> Vec<Route> {
        let space = DartsSpace::new();
        let mut routes = vec![Route::Fixed(0); EDGES];
        for cell in 0..2 {
            for (at, edge) in space.edges(arch, cell).into_iter().enumerate() {
                routes[cell * CELL_EDGES + edge_index(at / 2, edge.input)] = Route::Fixed(edge.op);
            }
        }
        routes
    }

    /// DARTS's discretisation of route weights (one row per edge, as a step takes them):
    /// per node, the two inputs whose strongest operation other than `none` is strongest,
    /// each with that operation.
    pub fn derive(weights: &[Vec<f32>]) -> Result<Arch> {
        if weights.len() != EDGES || weights.iter().any(|w| w.len() != CANDIDATES) {
            return Err(Error::Setting {
                name: "architecture weights".into(),
                problem: format!(
                    "DARTS needs {EDGES} edges of {CANDIDATES} weights, got {} edges",
                    weights.len()
                ),
            });
        }
        let mut choices = Vec::with_capacity(2 * NODES * 3);
        for cell in 0..2 {
            for node in 0..NODES {
                // (input, its strongest operation other than `none`, that weight)
                let mut ranked: Vec<(usize, usize, f32)> = (0..node + 2)
                    .map(|input| {
                        let w = &weights[cell * CELL_EDGES + edge_index(node, input)];
                        let op = 1 + argmax(&w[1..]);
                        (input, op, w[op])
                    })
                    .collect();
                ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
                let (first, second) = (ranked[0], ranked[1]);
                let (a, b) = if first.0 < second.0 {
                    (first, second)
                } else {
                    (second, first)
                };
                let pair = input_pairs(node)
                    .iter()
                    .position(|&p| p == (a.0, b.0))
                    .expect("a pair of distinct inputs");
                choices.extend([pair as u8, a.1 as u8, b.1 as u8]);
            }
        }
        Ok(Arch(choices))
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
            (EDGES, CANDIDATES),
            |f, x| network(f, &config, x, request),
        )
    }
}

fn depthwise(k: usize, stride: usize, dilation: usize, channels: usize) -> Conv2dSpec {
    Conv2dSpec {
        stride,
        padding: dilation * (k - 1) / 2,
        dilation,
        groups: channels,
    }
}

impl Forward<'_, '_, '_> {
    /// ReLU -> two stride-2 1x1 convolutions (on x, and on x shifted by one pixel) ->
    /// concatenation -> batch norm; needs even spatial sizes.
    fn factorized_reduce(&mut self, x: Var, name: &str) -> Result<Var> {
        let shape = self.tape.value(x).shape().to_vec();
        if shape[2] % 2 == 1 || shape[3] % 2 == 1 {
            return Err(Error::Setting {
                name: "image size".into(),
                problem: format!(
                    "a DARTS reduction halves {}x{} feature maps, which needs even sizes; use images whose side divides by 4 (e.g. 28 or 32)",
                    shape[2], shape[3]
                ),
            });
        }
        let x = self.tape.activation(x, Activation::Relu)?;
        let stride2 = Conv2dSpec {
            stride: 2,
            padding: 0,
            dilation: 1,
            groups: 1,
        };
        let a = self.conv(x, &format!("{name}.a"), stride2)?;
        let shifted = self.tape.slice(x, 2, 1, shape[2] - 1)?;
        let shifted = self.tape.slice(shifted, 3, 1, shape[3] - 1)?;
        let b = self.conv(shifted, &format!("{name}.b"), stride2)?;
        let y = self.tape.concat(&[a, b])?;
        self.batch_norm(y, format!("{name}.bn"), None)
    }

    /// ReLU -> 1x1 convolution -> batch norm.
    fn relu_conv1x1_bn(&mut self, x: Var, name: &str) -> Result<Var> {
        self.conv_bn(x, name, 1, true)
    }

    /// ReLU -> depthwise k x k (stride, dilation) -> pointwise -> batch norm, `part` naming
    /// the weights (`dw{part}`, `pw{part}`).
    fn relu_dw_pw_bn(
        &mut self,
        x: Var,
        name: &str,
        part: &str,
        k: usize,
        stride: usize,
        dilation: usize,
    ) -> Result<Var> {
        let c = self.tape.value(x).shape()[1];
        let x = self.tape.activation(x, Activation::Relu)?;
        let x = self.conv(
            x,
            &format!("{name}.dw{part}"),
            depthwise(k, stride, dilation, c),
        )?;
        let x = self.conv(x, &format!("{name}.pw{part}"), Conv2dSpec::unit())?;
        self.batch_norm(x, format!("{name}.bn{part}"), None)
    }

    fn darts_candidate(
        &mut self,
        x: Var,
        op: usize,
        cell: usize,
        edge: usize,
        stride: usize,
    ) -> Result<Var> {
        let name = edge_name(cell, edge, op);
        match op {
            0 => {
                let x = if stride == 1 {
                    x
                } else {
                    self.tape.avg_pool(x, 1, stride, 0)?
                };
                Ok(self.tape.scale(x, 0.0)?)
            }
            1 | 2 => {
                let y = if op == 1 {
                    self.tape.max_pool(x, 3, stride, 1)?
                } else {
                    self.tape.avg_pool(x, 3, stride, 1)?
                };
                self.batch_norm(y, format!("{name}.bn"), None)
            }
            3 if stride == 1 => Ok(x),
            3 => self.factorized_reduce(x, &name),
            4 | 5 => {
                let k = if op == 4 { 3 } else { 5 };
                let y = self.relu_dw_pw_bn(x, &name, "1", k, stride, 1)?;
                self.relu_dw_pw_bn(y, &name, "2", k, 1, 1)
            }
            6 | 7 => {
                let k = if op == 6 { 3 } else { 5 };
                self.relu_dw_pw_bn(x, &name, "", k, stride, 2)
            }
            other => Err(Error::Setting {
                name: "route".into(),
                problem: format!("operation {other} of {CANDIDATES}"),
            }),
        }
    }

    fn darts_cell(
        &mut self,
        cell: &CellPlan,
        s0: Var,
        s1: Var,
        request: &StepRequest<'_>,
    ) -> Result<Var> {
        let i = cell.index;
        let s0 = if cell.after_reduction {
            self.factorized_reduce(s0, &format!("c{i}.pre0"))?
        } else {
            self.relu_conv1x1_bn(s0, &format!("c{i}.pre0"))?
        };
        let s1 = self.relu_conv1x1_bn(s1, &format!("c{i}.pre1"))?;
        let routes = if cell.reduction {
            &request.routes[CELL_EDGES..]
        } else {
            &request.routes[..CELL_EDGES]
        };
        let offset = if cell.reduction { CELL_EDGES } else { 0 };
        let mut states = vec![s0, s1];
        for node in 0..NODES {
            let mut sum: Option<Var> = None;
            for (input, &x) in states.clone().iter().enumerate() {
                let e = edge_index(node, input);
                let stride = if cell.reduction && input < 2 { 2 } else { 1 };
                // A fixed `none` edge is absent from the subnet: nothing to compute.
                if routes[e] == Route::Fixed(0) {
                    continue;
                }
                let out = self.edge(offset + e, &routes[e], |f, op| {
                    f.darts_candidate(x, op, i, e, stride)
                })?;
                sum = Some(match sum {
                    None => out,
                    Some(acc) => self.tape.add(acc, out)?,
                });
            }
            let node_value = match sum {
                Some(v) => v,
                // Every edge into the node is off: it is zero (of the strided shape).
                None => {
                    let stride = if cell.reduction { 2 } else { 1 };
                    self.darts_candidate(states[1], 0, i, edge_index(node, 1), stride)?
                }
            };
            states.push(node_value);
        }
        Ok(self.tape.concat(&states[2..])?)
    }
}

fn network(
    f: &mut Forward<'_, '_, '_>,
    config: &DartsSupernetConfig,
    x: Var,
    request: &StepRequest<'_>,
) -> Result<Var> {
    let stem = f.conv_bn(x, "stem", 1, false)?;
    let (mut s0, mut s1) = (stem, stem);
    for cell in plan(config) {
        let out = f.darts_cell(&cell, s0, s1, request)?;
        (s0, s1) = (s1, out);
    }
    let pooled = f.tape.global_avg_pool(s1)?;
    let flat = f.tape.flatten(pooled)?;
    let w = f.param("head.w")?;
    let b = f.param("head.b")?;
    Ok(f.tape.linear(flat, w, b)?)
}
