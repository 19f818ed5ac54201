//! NAS-Bench-201's CIFAR network: a 3x3 stem, three stages of cells at 16/32/64 channels
//! separated by residual reduction blocks, batch norm + ReLU, global pooling, a classifier.

use hwnas_core::space::nb201::{EDGES, Nb201Space};
use hwnas_core::space::{Arch, SearchSpace};

use super::ExportOptions;
use crate::onnx::builder::ConvSpec;
use crate::onnx::proto::ModelProto;
use crate::onnx::{GraphBuilder, Tensor, Weights};

/// The macro-skeleton's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nb201Network {
    /// Input channels (3 for CIFAR, 1 for Fashion-MNIST).
    pub in_channels: usize,
    /// Channels of the first stage (doubled at each reduction).
    pub channels: usize,
    /// Cells per stage.
    pub cells_per_stage: usize,
    /// Classes of the classifier.
    pub classes: usize,
    /// Input resolution.
    pub resolution: usize,
}

impl Default for Nb201Network {
    /// The benchmark's network: 16 channels, 5 cells per stage, 10 classes, 32x32x3 input.
    fn default() -> Self {
        Nb201Network {
            in_channels: 3,
            channels: 16,
            cells_per_stage: 5,
            classes: 10,
            resolution: 32,
        }
    }
}

/// ReLU, convolution, batch norm: NAS-Bench-201's `ReLUConvBN`.
fn relu_conv_bn(b: &mut GraphBuilder<'_>, x: &Tensor, spec: ConvSpec) -> Tensor {
    let y = b.relu(x);
    b.conv_bn(&y, spec)
}

fn cell(b: &mut GraphBuilder<'_>, x: &Tensor, ops: &[u8]) -> Tensor {
    let c = x.channels();
    let mut nodes: Vec<Tensor> = vec![x.clone()];
    for to in 1..4 {
        let mut inputs = Vec::new();
        for (e, &(edge_to, from)) in EDGES.iter().enumerate() {
            if edge_to != to {
                continue;
            }
            let input = nodes[from].clone();
            let out = b.scoped(&format!("edge{to}{from}"), |b| match ops[e] {
                1 => Some(input),
                2 => Some(relu_conv_bn(b, &input, ConvSpec::same(c, 1, 1))),
                3 => Some(relu_conv_bn(b, &input, ConvSpec::same(c, 3, 1))),
                4 => Some(b.avg_pool(&input, 3, 1, 1)),
                _ => None,
            });
            inputs.extend(out);
        }
        let node = if inputs.is_empty() {
            b.zeros_like(x)
        } else {
            b.sum(&inputs)
        };
        nodes.push(node);
    }
    nodes.pop().expect("four nodes")
}

fn reduction_block(b: &mut GraphBuilder<'_>, x: &Tensor, out: usize) -> Tensor {
    let a = relu_conv_bn(b, x, ConvSpec::same(out, 3, 2));
    let a = b.scoped("b", |b| relu_conv_bn(b, &a, ConvSpec::same(out, 3, 1)));
    let shortcut = b.avg_pool(x, 2, 2, 0);
    let shortcut = b.scoped("shortcut", |b| {
        b.conv(&shortcut, ConvSpec::same(out, 1, 1), false)
    });
    b.add(&shortcut, &a)
}

/// The ONNX model of a cell in the network.
pub fn network(
    space: &Nb201Space,
    arch: &Arch,
    net: &Nb201Network,
    weights: &mut dyn Weights,
    options: ExportOptions,
) -> ModelProto {
    // Dead edges compute nothing the output sees; export the canonical cell.
    let arch = space.canonical(arch);
    let mut b = GraphBuilder::new(weights);
    if !options.fold_batch_norm {
        b = b.keep_batch_norm();
    }
    let r = net.resolution;
    let input = b.input("input", &[options.batch, net.in_channels, r, r]);
    let mut x = b.scoped("stem", |b| {
        b.conv_bn(&input, ConvSpec::same(net.channels, 3, 1))
    });
    let mut channels = net.channels;
    for stage in 0..3 {
        if stage > 0 {
            channels *= 2;
            x = b.scoped(&format!("reduce{stage}"), |b| {
                reduction_block(b, &x, channels)
            });
        }
        for i in 0..net.cells_per_stage {
            x = b.scoped(&format!("stage{stage}.cell{i}"), |b| cell(b, &x, &arch.0));
        }
    }
    let x = b.scoped("lastact", |b| {
        let y = b.batch_norm(&x);
        b.relu(&y)
    });
    let pooled = b.global_avg_pool(&x);
    let logits = b.scoped("classifier", |b| b.linear(&pooled, net.classes));
    b.finish(&logits, &format!("nb201 {}", space.format(&arch)))
}
