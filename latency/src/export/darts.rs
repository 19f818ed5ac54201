//! DARTS's CIFAR evaluation network: a 3x3 stem to 3C channels, `layers` cells with
//! reduction cells at one and two thirds of the depth, global pooling, a classifier.

use hwnas_core::space::Arch;
use hwnas_core::space::darts::{DartsSpace, Edge, NODES};

use super::ExportOptions;
use crate::onnx::builder::ConvSpec;
use crate::onnx::proto::ModelProto;
use crate::onnx::{GraphBuilder, Tensor, Weights};

/// The evaluation network's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DartsNetwork {
    /// Initial channels C.
    pub channels: usize,
    /// Cells.
    pub layers: usize,
    /// Classes.
    pub classes: usize,
    /// Input resolution.
    pub resolution: usize,
}

impl Default for DartsNetwork {
    /// DARTS's CIFAR-10 evaluation network: C = 36, 20 cells, 32x32 input.
    fn default() -> Self {
        DartsNetwork {
            channels: 36,
            layers: 20,
            classes: 10,
            resolution: 32,
        }
    }
}

fn relu_conv_bn(b: &mut GraphBuilder<'_>, x: &Tensor, spec: ConvSpec) -> Tensor {
    let y = b.relu(x);
    b.conv_bn(&y, spec)
}

/// ReLU, two 1x1 stride-2 convolutions on offset grids, concatenated, batch norm; folded
/// here as two convolutions with their halves of the batch norm.
fn factorized_reduce(b: &mut GraphBuilder<'_>, x: &Tensor, out: usize) -> Tensor {
    let y = b.relu(x);
    let a = b.scoped("conv1", |b| b.conv_bn(&y, ConvSpec::same(out / 2, 1, 2)));
    let shifted = b.crop_top_left(&y, 1);
    let shifted = b.scoped("conv2", |b| {
        b.conv_bn(&shifted, ConvSpec::same(out - out / 2, 1, 2).padded(0))
    });
    b.concat(&[a, shifted])
}

fn sep_conv(b: &mut GraphBuilder<'_>, x: &Tensor, kernel: usize, stride: usize) -> Tensor {
    let c = x.channels();
    let mut y = x.clone();
    for (i, s) in [stride, 1].into_iter().enumerate() {
        y = b.scoped(&format!("sep{i}"), |b| {
            let r = b.relu(&y);
            let d = b.scoped("depth", |b| {
                b.conv(&r, ConvSpec::same(c, kernel, s).groups(c), false)
            });
            b.scoped("point", |b| b.conv_bn(&d, ConvSpec::same(c, 1, 1)))
        });
    }
    y
}

fn dil_conv(b: &mut GraphBuilder<'_>, x: &Tensor, kernel: usize, stride: usize) -> Tensor {
    let c = x.channels();
    let r = b.relu(x);
    let d = b.scoped("depth", |b| {
        b.conv(
            &r,
            ConvSpec::same(c, kernel, stride).groups(c).dilated(2),
            false,
        )
    });
    b.scoped("point", |b| b.conv_bn(&d, ConvSpec::same(c, 1, 1)))
}

fn operation(b: &mut GraphBuilder<'_>, x: &Tensor, op: usize, stride: usize) -> Tensor {
    match op {
        0 => {
            let strided = if stride == 1 {
                x.clone()
            } else {
                b.max_pool(x, 1, stride, 0)
            };
            b.zeros_like(&strided)
        }
        1 => b.max_pool(x, 3, stride, 1),
        2 => b.avg_pool(x, 3, stride, 1),
        3 if stride == 1 => x.clone(),
        3 => factorized_reduce(b, x, x.channels()),
        4 => sep_conv(b, x, 3, stride),
        5 => sep_conv(b, x, 5, stride),
        6 => dil_conv(b, x, 3, stride),
        _ => dil_conv(b, x, 5, stride),
    }
}

fn cell(
    b: &mut GraphBuilder<'_>,
    s0: &Tensor,
    s1: &Tensor,
    edges: &[Edge],
    c: usize,
    reduction: bool,
    reduction_prev: bool,
) -> Tensor {
    let s0 = b.scoped("pre0", |b| {
        if reduction_prev {
            factorized_reduce(b, s0, c)
        } else {
            relu_conv_bn(b, s0, ConvSpec::same(c, 1, 1))
        }
    });
    let s1 = b.scoped("pre1", |b| relu_conv_bn(b, s1, ConvSpec::same(c, 1, 1)));
    let mut states = vec![s0, s1];
    for node in 0..NODES {
        let mut outs = Vec::new();
        for (j, edge) in edges[node * 2..node * 2 + 2].iter().enumerate() {
            let stride = if reduction && edge.input < 2 { 2 } else { 1 };
            let input = states[edge.input].clone();
            outs.push(b.scoped(&format!("node{node}.edge{j}"), |b| {
                operation(b, &input, edge.op, stride)
            }));
        }
        states.push(b.sum(&outs));
    }
    b.concat(&states[2..])
}

/// The ONNX model of a genotype's evaluation network.
pub fn network(
    space: &DartsSpace,
    arch: &Arch,
    net: &DartsNetwork,
    weights: &mut dyn Weights,
    options: ExportOptions,
) -> ModelProto {
    let mut b = GraphBuilder::new(weights);
    if !options.fold_batch_norm {
        b = b.keep_batch_norm();
    }
    let r = net.resolution;
    let input = b.input("input", &[options.batch, 3, r, r]);
    let stem = b.scoped("stem", |b| {
        b.conv_bn(&input, ConvSpec::same(3 * net.channels, 3, 1))
    });
    let (mut s0, mut s1) = (stem.clone(), stem);
    let mut c = net.channels;
    let mut reduction_prev = false;
    for i in 0..net.layers {
        let reduction = i == net.layers / 3 || i == 2 * net.layers / 3;
        if reduction {
            c *= 2;
        }
        let edges = space.edges(arch, usize::from(reduction));
        let out = b.scoped(&format!("cell{i}"), |b| {
            cell(b, &s0, &s1, &edges, c, reduction, reduction_prev)
        });
        s0 = s1;
        s1 = out;
        reduction_prev = reduction;
    }
    let pooled = b.global_avg_pool(&s1);
    let logits = b.scoped("classifier", |b| b.linear(&pooled, net.classes));
    b.finish(&logits, "darts")
}
