//! The NAS-Bench-201 supernet: a 3x3 stem, three stages of `cells` cells (every cell's six
//! edges a mixed op of none, skip, ReLU-conv1x1-BN, ReLU-conv3x3-BN and 3x3 average
//! pooling, the cell's choice shared by every cell as in the benchmark), residual reduction
//! blocks between stages, BN-ReLU, global pooling and a linear classifier. Batch norm in
//! the cells is non-affine, as in NAS-Bench-201's search cells.

use hwnas_kernels::{Activation, Backend, Conv2dSpec, Tape, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::params::{Binding, ParamStore};
use super::{BnMode, Route, StepOutput, StepRequest};
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
        if request.routes.len() != EDGES.len() {
            return Err(Error::Setting {
                name: "routes".into(),
                problem: format!("{} routes for {} edges", request.routes.len(), EDGES.len()),
            });
        }
        let mut tape = Tape::new(backend);
        let mut f = Forward {
            tape: &mut tape,
            binding: Binding::new(&self.params, request.weight_grads),
            bn: request.bn,
            stats: Vec::new(),
            route_vars: Vec::new(),
            unit: Vec::new(),
        };
        let x = f.tape.leaf(batch.images.clone(), false);
        let logits = f.network(self.config, x, request)?;
        let loss = f.tape.cross_entropy(logits, &batch.labels)?;
        let stats = std::mem::take(&mut f.stats);
        let route_vars = std::mem::take(&mut f.route_vars);
        let binding = f.binding;
        let mut batch_stats = Vec::new();
        for (name, v) in stats {
            if let Some((m, var)) = tape.batch_stats(v) {
                batch_stats.push((name, m.to_vec(), var.to_vec()));
            }
        }
        let value = tape.value(logits);
        let classes = self.config.classes;
        let correct = value
            .data()
            .chunks(classes)
            .zip(&batch.labels)
            .filter(|(row, label)| {
                let best = row
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(0, |(i, _)| i);
                best == **label
            })
            .count();
        let loss_value = tape.value(loss).data()[0];
        let mut output = StepOutput {
            loss: loss_value,
            correct,
            route_grads: Vec::new(),
            weight_grads: Vec::new(),
            batch_stats,
            tape_bytes: 0,
        };
        if request.weight_grads || request.route_grads {
            tape.backward(loss)?;
            if request.weight_grads {
                output.weight_grads = binding.gradients(&tape);
            }
            if request.route_grads {
                output.route_grads = route_vars
                    .iter()
                    .map(|v| match v {
                        Some(v) => tape
                            .grad(*v)
                            .map_or_else(|| vec![0.0; CANDIDATES], |g| g.data().to_vec()),
                        None => vec![0.0; CANDIDATES],
                    })
                    .collect();
            }
        }
        output.tape_bytes = tape.peak_bytes();
        Ok(output)
    }
}

/// One forward pass being built.
struct Forward<'t, 'b, 's> {
    tape: &'t mut Tape<'b>,
    binding: Binding<'s>,
    bn: BnMode<'s>,
    stats: Vec<(String, Var)>,
    route_vars: Vec<Option<Var>>,
    unit: Vec<(usize, Var, Var)>,
}

impl Forward<'_, '_, '_> {
    /// Constant gamma = 1, beta = 0 for a non-affine batch norm of `c` channels.
    fn unit_affine(&mut self, c: usize) -> (Var, Var) {
        if let Some(&(_, g, b)) = self.unit.iter().find(|(n, _, _)| *n == c) {
            return (g, b);
        }
        let g = self
            .tape
            .leaf(Tensor::new(&[c], vec![1.0; c]).expect("size"), false);
        let b = self.tape.leaf(Tensor::zeros(&[c]), false);
        self.unit.push((c, g, b));
        (g, b)
    }

    fn batch_norm(&mut self, x: Var, name: String, affine: Option<(Var, Var)>) -> Result<Var> {
        let c = self.tape.value(x).shape()[1];
        let (g, b) = match affine {
            Some(pair) => pair,
            None => self.unit_affine(c),
        };
        match self.bn {
            BnMode::Batch => {
                let y = self.tape.batch_norm(x, g, b)?;
                self.stats.push((name, y));
                Ok(y)
            }
            BnMode::Fixed(stats) => {
                let (mean, var) = stats.get(&name).ok_or_else(|| Error::Setting {
                    name: "batch-norm statistics".into(),
                    problem: format!(
                        "none for layer `{name}`: recalibrate on training batches with this subnet first"
                    ),
                })?;
                Ok(self.tape.batch_norm_inference(x, g, b, mean, var)?)
            }
        }
    }

    fn conv_bn(&mut self, x: Var, name: &str, stride: usize, relu_first: bool) -> Result<Var> {
        let input = if relu_first {
            self.tape.activation(x, Activation::Relu)?
        } else {
            x
        };
        let w = self.binding.param(self.tape, name)?;
        let k = self.tape.value(w).shape()[2];
        let spec = Conv2dSpec {
            stride,
            padding: (k - 1) / 2,
            dilation: 1,
            groups: 1,
        };
        let y = self.tape.conv2d(input, w, None, spec)?;
        self.batch_norm(y, format!("{name}.bn"), None)
    }

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

    fn edge(
        &mut self,
        x: Var,
        route: &Route,
        weights: Option<Var>,
        (stage, cell, edge): (usize, usize, usize),
    ) -> Result<Var> {
        match route {
            Route::Fixed(op) => self.candidate(x, *op, stage, cell, edge),
            Route::Dense(w) | Route::Sparse(w) => {
                let sparse = matches!(route, Route::Sparse(_));
                let mut candidates = Vec::with_capacity(w.len());
                for (op, &weight) in w.iter().enumerate() {
                    candidates.push(if sparse && weight == 0.0 {
                        None
                    } else {
                        Some(self.candidate(x, op, stage, cell, edge)?)
                    });
                }
                let weights = weights.expect("weighted routes have a weight variable");
                Ok(self.tape.mixed(&candidates, weights)?)
            }
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
                let out = self.edge(
                    nodes[from],
                    &request.routes[e],
                    self.route_vars[e],
                    (stage, cell, e),
                )?;
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
        let w = self.binding.param(self.tape, &format!("r{stage}.short"))?;
        let s = self.tape.conv2d(s, w, None, Conv2dSpec::unit())?;
        Ok(self.tape.add(s, a)?)
    }

    fn network(
        &mut self,
        config: Nb201SupernetConfig,
        x: Var,
        request: &StepRequest<'_>,
    ) -> Result<Var> {
        for route in request.routes {
            let var = match route {
                Route::Fixed(_) => None,
                Route::Dense(w) | Route::Sparse(w) => {
                    if w.len() != CANDIDATES {
                        return Err(Error::Setting {
                            name: "route".into(),
                            problem: format!("{} weights for {CANDIDATES} candidates", w.len()),
                        });
                    }
                    let t = Tensor::new(&[CANDIDATES], w.clone())?;
                    Some(self.tape.leaf(t, request.route_grads))
                }
            };
            self.route_vars.push(var);
        }
        let mut h = self.conv_bn(x, "stem", 1, false)?;
        for stage in 0..3 {
            if stage > 0 {
                h = self.reduction(h, stage)?;
            }
            for cell in 0..config.cells {
                h = self.cell(h, request, stage, cell)?;
            }
        }
        let gamma = self.binding.param(self.tape, "head.gamma")?;
        let beta = self.binding.param(self.tape, "head.beta")?;
        let h = self.batch_norm(h, "head.bn".into(), Some((gamma, beta)))?;
        let h = self.tape.activation(h, Activation::Relu)?;
        let pooled = self.tape.global_avg_pool(h)?;
        let flat = self.tape.flatten(pooled)?;
        let w = self.binding.param(self.tape, "head.w")?;
        let b = self.binding.param(self.tape, "head.b")?;
        Ok(self.tape.linear(flat, w, b)?)
    }
}
