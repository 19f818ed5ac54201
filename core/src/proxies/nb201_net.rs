//! NAS-Bench-201's CIFAR network on the tape, for proxies: a 3x3 stem, three stages of
//! cells separated by residual reduction blocks, global pooling and a classifier.

use hwnas_kernels::{Activation, Conv2dSpec, Tape, Tensor, Var};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::space::Arch;
use crate::space::nb201::EDGES;

/// Where the network's parameters come from, in creation order: He-normal draws from a
/// seed, optionally replaced by their absolute values (synflow).
pub struct ParamSource {
    rng: rand_chacha::ChaCha8Rng,
    absolute: bool,
    scale: f32,
    /// The parameters created so far, with their tape variables.
    pub created: Vec<(Var, Tensor)>,
}

impl ParamSource {
    /// He-normal parameters from `seed`; `absolute` takes their absolute values.
    pub fn new(seed: u64, absolute: bool) -> Self {
        ParamSource {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            absolute,
            scale: 1.0,
            created: Vec::new(),
        }
    }

    /// Every parameter multiplied by `scale` (e.g. to match another initialisation's
    /// magnitudes).
    pub fn scaled(mut self, scale: f32) -> Self {
        self.scale = scale;
        self
    }

    fn param(&mut self, tape: &mut Tape<'_>, shape: &[usize], fan_in: usize) -> Var {
        let std = self.scale * (2.0 / fan_in as f32).sqrt();
        let data: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| {
                let v = std
                    * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut self.rng);
                if self.absolute { v.abs() } else { v }
            })
            .collect();
        let tensor = Tensor::new(shape, data).expect("sizes agree");
        let var = tape.leaf(tensor.clone(), true);
        self.created.push((var, tensor));
        var
    }
}

/// The network's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nb201Net {
    /// Channels of the first stage.
    pub channels: usize,
    /// Cells per stage.
    pub cells: usize,
    /// Classes.
    pub classes: usize,
    /// Batch norm (training mode) after every convolution, as NAS-Bench-201's ReLU-Conv-BN.
    pub batch_norm: bool,
}

impl Default for Nb201Net {
    /// The benchmark's network: 16 channels, 5 cells per stage, 10 classes, batch norm.
    fn default() -> Self {
        Nb201Net {
            channels: 16,
            cells: 5,
            classes: 10,
            batch_norm: true,
        }
    }
}

struct Builder<'t, 'b, 'p> {
    tape: &'t mut Tape<'b>,
    params: &'p mut ParamSource,
    relus: Vec<Var>,
    batch_norm: bool,
}

impl Builder<'_, '_, '_> {
    fn relu(&mut self, x: Var) -> Var {
        let y = self.tape.activation(x, Activation::Relu).expect("relu");
        self.relus.push(y);
        y
    }

    fn conv(&mut self, x: Var, out: usize, k: usize, stride: usize) -> Var {
        let cin = self.tape.value(x).shape()[1];
        let w = self.params.param(self.tape, &[out, cin, k, k], cin * k * k);
        let spec = Conv2dSpec {
            stride,
            padding: (k - 1) / 2,
            dilation: 1,
            groups: 1,
        };
        let y = self
            .tape
            .conv2d(x, w, None, spec)
            .expect("conv shapes agree");
        if !self.batch_norm {
            return y;
        }
        let gamma = self
            .tape
            .leaf(Tensor::new(&[out], vec![1.0; out]).expect("size"), false);
        let beta = self.tape.leaf(Tensor::zeros(&[out]), false);
        self.tape.batch_norm(y, gamma, beta).expect("batch norm")
    }

    fn relu_conv(&mut self, x: Var, out: usize, k: usize, stride: usize) -> Var {
        let r = self.relu(x);
        self.conv(r, out, k, stride)
    }

    fn cell(&mut self, x: Var, ops: &[u8]) -> Var {
        let c = self.tape.value(x).shape()[1];
        let mut nodes = vec![x];
        for to in 1..4 {
            let mut inputs = Vec::new();
            for (e, &(edge_to, from)) in EDGES.iter().enumerate() {
                if edge_to != to {
                    continue;
                }
                let input = nodes[from];
                match ops[e] {
                    1 => inputs.push(input),
                    2 => inputs.push(self.relu_conv(input, c, 1, 1)),
                    3 => inputs.push(self.relu_conv(input, c, 3, 1)),
                    4 => inputs.push(self.tape.avg_pool(input, 3, 1, 1).expect("pool")),
                    _ => {}
                }
            }
            let node = match inputs.split_first() {
                None => self.tape.scale(x, 0.0).expect("scale"),
                Some((first, rest)) => rest
                    .iter()
                    .fold(*first, |acc, v| self.tape.add(acc, *v).expect("same shape")),
            };
            nodes.push(node);
        }
        nodes[3]
    }

    fn reduction(&mut self, x: Var, out: usize) -> Var {
        let a = self.relu_conv(x, out, 3, 2);
        let a = self.relu_conv(a, out, 3, 1);
        let s = self.tape.avg_pool(x, 2, 2, 0).expect("pool");
        let s = self.conv(s, out, 1, 1);
        self.tape.add(s, a).expect("same shape")
    }
}

impl Nb201Net {
    /// The forward pass of `x [N, 3, H, W]` for `arch`; returns the logits and every ReLU
    /// output (for NASWOT's activation codes).
    pub fn forward(
        &self,
        tape: &mut Tape<'_>,
        params: &mut ParamSource,
        arch: &Arch,
        x: Var,
    ) -> (Var, Vec<Var>) {
        let mut b = Builder {
            tape,
            params,
            relus: Vec::new(),
            batch_norm: self.batch_norm,
        };
        let mut h = b.conv(x, self.channels, 3, 1);
        let mut channels = self.channels;
        for stage in 0..3 {
            if stage > 0 {
                channels *= 2;
                h = b.reduction(h, channels);
            }
            for _ in 0..self.cells {
                h = b.cell(h, &arch.0);
            }
        }
        let h = b.relu(h);
        let pooled = b.tape.global_avg_pool(h).expect("pool");
        let flat = b.tape.flatten(pooled).expect("flatten");
        let w = b.params.param(b.tape, &[channels, self.classes], channels);
        let bias = b.tape.leaf(Tensor::zeros(&[self.classes]), false);
        let logits = b.tape.linear(flat, w, bias).expect("linear");
        (logits, b.relus)
    }
}
