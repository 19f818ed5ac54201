//! NAS-Bench-201's CIFAR network on the tape, for proxies, as the benchmark (and the
//! zero-cost proxies' reference code) builds it: a 3x3 conv + BN stem, three stages of
//! cells separated by ResNet reduction blocks (shortcut: 2x2 average pool and a 1x1
//! convolution, no batch norm), batch norm and ReLU, global pooling and a classifier.

use hwnas_kernels::{Activation, Conv2dSpec, Tape, Tensor, Var};
use rand::Rng;
use rand::SeedableRng;

use crate::space::Arch;
use crate::space::nb201::EDGES;

/// Where the network's parameters come from, in creation order: PyTorch's default
/// initialisation of convolutions and linear layers (uniform in `±1/sqrt(fan_in)`, what the
/// zero-cost proxies' reference code leaves in place), drawn from a seed, optionally replaced
/// by their absolute values (synflow).
pub struct ParamSource {
    rng: rand_chacha::ChaCha8Rng,
    absolute: bool,
    /// The weights created so far (convolutions and the classifier), with their tape
    /// variables: what the proxies sum over.
    pub created: Vec<(Var, Tensor)>,
}

impl ParamSource {
    /// Parameters from `seed`; `absolute` takes their absolute values.
    pub fn new(seed: u64, absolute: bool) -> Self {
        ParamSource {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            absolute,
            created: Vec::new(),
        }
    }

    fn draw(&mut self, len: usize, fan_in: usize) -> Vec<f32> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        (0..len)
            .map(|_| {
                let v = self.rng.random_range(-bound..bound);
                if self.absolute { v.abs() } else { v }
            })
            .collect()
    }

    fn param(&mut self, tape: &mut Tape<'_>, shape: &[usize], fan_in: usize) -> Var {
        let data = self.draw(shape.iter().product(), fan_in);
        let tensor = Tensor::new(shape, data).expect("sizes agree");
        let var = tape.leaf(tensor.clone(), true);
        self.created.push((var, tensor));
        var
    }

    /// A bias (not a weight the proxies sum over).
    fn bias(&mut self, tape: &mut Tape<'_>, len: usize, fan_in: usize) -> Var {
        let data = self.draw(len, fan_in);
        tape.leaf(Tensor::new(&[len], data).expect("size"), false)
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
        let y = self.bare_conv(x, out, k, stride);
        self.bn(y)
    }

    /// Batch norm in training mode (the network's own), unless the network has none.
    fn bn(&mut self, y: Var) -> Var {
        if !self.batch_norm {
            return y;
        }
        let out = self.tape.value(y).shape()[1];
        let gamma = self
            .tape
            .leaf(Tensor::new(&[out], vec![1.0; out]).expect("size"), false);
        let beta = self.tape.leaf(Tensor::zeros(&[out]), false);
        self.tape.batch_norm(y, gamma, beta).expect("batch norm")
    }

    /// A convolution without batch norm (the reduction block's shortcut).
    fn bare_conv(&mut self, x: Var, out: usize, k: usize, stride: usize) -> Var {
        let cin = self.tape.value(x).shape()[1];
        let w = self.params.param(self.tape, &[out, cin, k, k], cin * k * k);
        let spec = Conv2dSpec {
            stride,
            padding: (k - 1) / 2,
            dilation: 1,
            groups: 1,
        };
        self.tape
            .conv2d(x, w, None, spec)
            .expect("conv shapes agree")
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
        // NAS-Bench-201's ResNet block: the shortcut is pooling and a 1x1 convolution, no
        // batch norm.
        let s = self.tape.avg_pool(x, 2, 2, 0).expect("pool");
        let s = self.bare_conv(s, out, 1, 1);
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
        // NAS-Bench-201's `lastact`: batch norm, then ReLU.
        let h = b.bn(h);
        let h = b.relu(h);
        let pooled = b.tape.global_avg_pool(h).expect("pool");
        let flat = b.tape.flatten(pooled).expect("flatten");
        let w = b.params.param(b.tape, &[channels, self.classes], channels);
        let bias = b.params.bias(b.tape, self.classes, channels);
        let logits = b.tape.linear(flat, w, bias).expect("linear");
        (logits, b.relus)
    }
}
