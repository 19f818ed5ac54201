//! Once-for-All MobileNetV3 (w1.2) subnets: first conv, a fixed first block, the searchable
//! MBConv blocks (elastic kernel, expand and depth; squeeze-excite and h-swish where
//! MobileNetV3 has them), final expand, feature mix and classifier. Each network is a
//! sequence of [`OfaLayer`]s, so a lookup table can measure the layers one by one.

use hwnas_core::benchmark::ofa::{STAGE_SETTINGS, STEM_WIDTH};
use hwnas_core::space::ofa::{MAX_DEPTH, OfaConfig};
use serde::{Deserialize, Serialize};

use super::ExportOptions;
use crate::onnx::builder::ConvSpec;
use crate::onnx::proto::ModelProto;
use crate::onnx::{GraphBuilder, Tensor, Weights};

/// Width of the final expand layer.
pub const FINAL_EXPAND: usize = 1152;
/// Width of the feature-mix layer.
pub const FEATURE_MIX: usize = 1536;
/// ImageNet classes.
pub const CLASSES: usize = 1000;

/// The widths of an Once-for-All network: MobileNetV3 w1.2 for ImageNet by default (what
/// latency is measured on); a supernet trained at another width exports at its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfaWidths {
    /// Input channels.
    pub in_channels: usize,
    /// Width of the first conv and the fixed first block.
    pub stem: u32,
    /// Per stage: output width, stride of its first block, squeeze-excite, h-swish.
    pub stages: [(u32, u32, bool, bool); 5],
    /// Width of the final expand layer.
    pub final_expand: usize,
    /// Width of the feature-mix layer.
    pub feature_mix: usize,
    /// Classes.
    pub classes: usize,
}

impl Default for OfaWidths {
    fn default() -> Self {
        OfaWidths {
            in_channels: 3,
            stem: STEM_WIDTH,
            stages: STAGE_SETTINGS,
            final_expand: FINAL_EXPAND,
            feature_mix: FEATURE_MIX,
            classes: CLASSES,
        }
    }
}

/// One layer of an Once-for-All subnet, with everything its latency depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OfaLayer {
    /// 3x3 stride-2 convolution to 24 channels, batch norm, h-swish, on an `r`x`r` image.
    FirstConv {
        /// Input resolution.
        r: u32,
    },
    /// The fixed first block: depthwise 3x3 + ReLU, pointwise 24 -> 24, residual.
    FirstBlock {
        /// Input size.
        h: u32,
    },
    /// A searchable inverted-bottleneck block.
    MbConv {
        /// Input size.
        h: u32,
        /// Input channels.
        cin: u32,
        /// Output channels.
        cout: u32,
        /// Middle (expanded) channels.
        mid: u32,
        /// Depthwise kernel size.
        kernel: u32,
        /// Stride.
        stride: u32,
        /// Squeeze-excite.
        se: bool,
        /// h-swish (else ReLU).
        hswish: bool,
    },
    /// Final expand 1x1 to 1152 + h-swish, global pool, feature mix to 1536 + h-swish,
    /// classifier.
    Head {
        /// Input size.
        h: u32,
        /// Input channels.
        cin: u32,
    },
}

impl OfaLayer {
    /// The input shape `[C, H, W]` of the layer.
    pub fn input_shape(&self) -> [usize; 3] {
        match *self {
            OfaLayer::FirstConv { r } => [3, r as usize, r as usize],
            OfaLayer::FirstBlock { h } => [STEM_WIDTH as usize, h as usize, h as usize],
            OfaLayer::MbConv { h, cin, .. } | OfaLayer::Head { h, cin } => {
                [cin as usize, h as usize, h as usize]
            }
        }
    }

    /// A short name for progress messages and files.
    pub fn label(&self) -> String {
        match *self {
            OfaLayer::FirstConv { r } => format!("first-conv r{r}"),
            OfaLayer::FirstBlock { h } => format!("first-block h{h}"),
            OfaLayer::MbConv {
                h,
                cin,
                cout,
                mid,
                kernel,
                stride,
                se,
                hswish,
            } => format!(
                "mbconv h{h} {cin}->{mid}->{cout} k{kernel} s{stride}{}{}",
                if se { " se" } else { "" },
                if hswish { " hs" } else { "" }
            ),
            OfaLayer::Head { h, cin } => format!("head h{h} c{cin}"),
        }
    }
}

fn strided(size: u32, stride: u32) -> u32 {
    size.div_ceil(stride)
}

/// The layers of a subnet of the w1.2 network, in order.
pub fn layers(config: &OfaConfig) -> Vec<OfaLayer> {
    layers_with(config, &OfaWidths::default())
}

/// The layers of a subnet at `widths`, in order.
pub fn layers_with(config: &OfaConfig, widths: &OfaWidths) -> Vec<OfaLayer> {
    let mut h = strided(config.r, 2);
    let mut out = vec![
        OfaLayer::FirstConv { r: config.r },
        OfaLayer::FirstBlock { h },
    ];
    let mut cin = widths.stem;
    for (stage, &(cout, stage_stride, se, hswish)) in widths.stages.iter().enumerate() {
        for depth in 0..config.d[stage] as usize {
            let block = stage * MAX_DEPTH + depth;
            let stride = if depth == 0 { stage_stride } else { 1 };
            out.push(OfaLayer::MbConv {
                h,
                cin,
                cout,
                mid: cin * config.e[block],
                kernel: config.ks[block],
                stride,
                se,
                hswish,
            });
            h = strided(h, stride);
            cin = cout;
        }
    }
    out.push(OfaLayer::Head { h, cin });
    out
}

/// Once-for-All's `make_divisible(v, 8)`.
fn make_divisible(v: usize, divisor: usize) -> usize {
    let rounded = (v + divisor / 2) / divisor * divisor;
    let rounded = rounded.max(divisor);
    if (rounded as f64) < 0.9 * v as f64 {
        rounded + divisor
    } else {
        rounded
    }
}

fn act(b: &mut GraphBuilder<'_>, x: &Tensor, hswish: bool) -> Tensor {
    if hswish { b.hswish(x) } else { b.relu(x) }
}

/// Adds one layer of the w1.2 network to a graph.
pub fn add_layer(b: &mut GraphBuilder<'_>, x: &Tensor, layer: &OfaLayer) -> Tensor {
    add_layer_with(b, x, layer, &OfaWidths::default())
}

/// Adds one layer of a network at `widths` to a graph.
pub fn add_layer_with(
    b: &mut GraphBuilder<'_>,
    x: &Tensor,
    layer: &OfaLayer,
    widths: &OfaWidths,
) -> Tensor {
    let stem = widths.stem as usize;
    match *layer {
        OfaLayer::FirstConv { .. } => {
            let y = b.scoped("first_conv", |b| b.conv_bn(x, ConvSpec::same(stem, 3, 2)));
            b.hswish(&y)
        }
        OfaLayer::FirstBlock { .. } => b.scoped("first_block", |b| {
            let c = stem;
            let y = b.scoped("depth", |b| b.conv_bn(x, ConvSpec::same(c, 3, 1).groups(c)));
            let y = b.relu(&y);
            let y = b.scoped("point", |b| b.conv_bn(&y, ConvSpec::same(c, 1, 1)));
            b.add(x, &y)
        }),
        OfaLayer::MbConv {
            cin,
            cout,
            mid,
            kernel,
            stride,
            se,
            hswish,
            ..
        } => {
            let (mid, cout) = (mid as usize, cout as usize);
            let y = b.scoped("expand", |b| b.conv_bn(x, ConvSpec::same(mid, 1, 1)));
            let y = act(b, &y, hswish);
            let y = b.scoped("depth", |b| {
                b.conv_bn(
                    &y,
                    ConvSpec::same(mid, kernel as usize, stride as usize).groups(mid),
                )
            });
            let mut y = act(b, &y, hswish);
            if se {
                y = b.scoped("se", |b| {
                    let squeezed = make_divisible(mid / 4, 8);
                    let s = b.global_avg_pool(&y);
                    let s = b.scoped("reduce", |b| {
                        b.conv(&s, ConvSpec::same(squeezed, 1, 1), true)
                    });
                    let s = b.relu(&s);
                    let s = b.scoped("expand", |b| b.conv(&s, ConvSpec::same(mid, 1, 1), true));
                    let gate = b.hsigmoid(&s);
                    b.mul(&y, &gate)
                });
            }
            let y = b.scoped("point", |b| b.conv_bn(&y, ConvSpec::same(cout, 1, 1)));
            if stride == 1 && cin as usize == cout {
                b.add(x, &y)
            } else {
                y
            }
        }
        OfaLayer::Head { .. } => {
            let y = b.scoped("final_expand", |b| {
                b.conv_bn(x, ConvSpec::same(widths.final_expand, 1, 1))
            });
            let y = b.hswish(&y);
            let y = b.global_avg_pool(&y);
            let y = b.scoped("feature_mix", |b| {
                b.conv(&y, ConvSpec::same(widths.feature_mix, 1, 1), false)
            });
            let y = b.hswish(&y);
            b.scoped("classifier", |b| b.linear(&y, widths.classes))
        }
    }
}

fn builder<'w>(weights: &'w mut dyn Weights, options: ExportOptions) -> GraphBuilder<'w> {
    let b = GraphBuilder::new(weights);
    if options.fold_batch_norm {
        b
    } else {
        b.keep_batch_norm()
    }
}

/// The ONNX model of a whole subnet of the w1.2 network.
pub fn network(
    config: &OfaConfig,
    weights: &mut dyn Weights,
    options: ExportOptions,
) -> ModelProto {
    network_with(config, &OfaWidths::default(), weights, options)
}

/// The ONNX model of a whole subnet of the network at `widths`; layer `i` of
/// [`layers_with`] is scoped `layer{i}`.
pub fn network_with(
    config: &OfaConfig,
    widths: &OfaWidths,
    weights: &mut dyn Weights,
    options: ExportOptions,
) -> ModelProto {
    let mut b = builder(weights, options);
    let r = config.r as usize;
    let mut x = b.input("input", &[options.batch, widths.in_channels, r, r]);
    for (i, layer) in layers_with(config, widths).iter().enumerate() {
        x = b.scoped(&format!("layer{i}"), |b| {
            add_layer_with(b, &x, layer, widths)
        });
    }
    let name = serde_json::to_string(config).unwrap_or_default();
    b.finish(&x, &format!("ofa-mbv3 {name}"))
}

/// The ONNX model of one layer on its own (for lookup tables).
pub fn layer_model(
    layer: &OfaLayer,
    weights: &mut dyn Weights,
    options: ExportOptions,
) -> ModelProto {
    let mut b = builder(weights, options);
    let [c, h, w] = layer.input_shape();
    let x = b.input("input", &[options.batch, c, h, w]);
    let y = add_layer(&mut b, &x, layer);
    b.finish(&y, &layer.label())
}
