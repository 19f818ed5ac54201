//! A subnet with the weights it inherits from a trained supernet, as an ONNX model that
//! computes what the supernet computes for that subnet in inference mode:
//! - NAS-Bench-201: the cell's chosen operations take the supernet's weights of those
//!   candidates; the cells' batch norm is non-affine (scale 1, shift 0).
//! - Once-for-All: every layer takes the first channels of the supernet's widest layer and
//!   the centre of its 7x7 kernels; the network is the supernet's width.
//!
//! Batch norm takes the subnet's recalibrated statistics
//! ([`hwnas_core::oneshot::SupernetTrainer::recalibrate`]); the network takes the
//! supernet's input channels and the images' resolution.

use hwnas_core::kernels::Tensor;
use hwnas_core::space::Arch;
use hwnas_core::space::nb201::{EDGES, Nb201Space};
use hwnas_core::space::ofa::{MAX_DEPTH, OfaConfig};
use hwnas_core::supernet::{BnStats, Nb201Supernet, OfaSupernet, ParamStore};

use super::ExportOptions;
use super::nb201::{Nb201Network, network};
use super::ofa::{OfaLayer, OfaWidths, layers_with, network_with};
use crate::error::{Error, Result};
use crate::onnx::proto::ModelProto;
use crate::onnx::{BatchNorm, Weights};

/// Batch-norm epsilon of the supernet's batch norm.
const BN_EPS: f32 = 1e-5;

/// The supernet's parameters and statistics, with the first problem met.
struct Source<'a> {
    params: &'a ParamStore,
    stats: &'a BnStats,
    error: Option<String>,
}

impl Source<'_> {
    fn fail(&mut self, problem: String) {
        self.error.get_or_insert(problem);
    }

    /// Parameter `name` fitted to `shape`: the leading entries along every axis, except
    /// the last two of a 4-D weight (the kernel), whose centre is taken.
    fn fitted(&mut self, name: &str, shape: &[usize], asked: &str) -> Vec<f32> {
        let len = shape.iter().product();
        let Ok(t) = self.params.get(name) else {
            self.fail(format!(
                "layer `{asked}`: the supernet has no parameter `{name}`"
            ));
            return vec![0.0; len];
        };
        match fit(&t, shape) {
            Some(values) => values,
            None => {
                self.fail(format!(
                    "layer `{asked}`: the supernet's `{name}` holds {:?}, which does not contain {shape:?}",
                    t.shape()
                ));
                vec![0.0; len]
            }
        }
    }

    /// Statistics `key` of `channels` channels.
    fn stats_of(&mut self, key: &str, channels: usize, asked: &str) -> (Vec<f32>, Vec<f32>) {
        match self.stats.get(key) {
            Some((mean, var)) if mean.len() == channels => (mean.to_vec(), var.to_vec()),
            _ => {
                self.fail(format!(
                    "layer `{asked}`: no recalibrated statistics `{key}` of {channels} channels; recalibrate this subnet first"
                ));
                (vec![0.0; channels], vec![1.0; channels])
            }
        }
    }

    /// Batch norm with statistics `{param}.bn`, affine from `{param}.bn.gamma/beta` where
    /// `affine`, else scale 1 and shift 0.
    fn batch_norm(&mut self, param: &str, channels: usize, affine: bool, asked: &str) -> BatchNorm {
        let key = format!("{param}.bn");
        let (mean, var) = self.stats_of(&key, channels, asked);
        let (gamma, beta) = if affine {
            (
                self.fitted(&format!("{key}.gamma"), &[channels], asked),
                self.fitted(&format!("{key}.beta"), &[channels], asked),
            )
        } else {
            (vec![1.0; channels], vec![0.0; channels])
        };
        BatchNorm {
            gamma,
            beta,
            mean,
            var,
            eps: BN_EPS,
        }
    }

    /// A classifier kept as `[inputs, out]` (x W) as ONNX's `[out, inputs]`.
    fn transposed(&mut self, name: &str, out: usize, inputs: usize, asked: &str) -> Vec<f32> {
        let w = self.fitted(name, &[inputs, out], asked);
        (0..out * inputs)
            .map(|i| w[(i % inputs) * out + i / inputs])
            .collect()
    }

    fn finish(self, model: ModelProto) -> Result<ModelProto> {
        match self.error {
            Some(problem) => Err(Error::Export(format!(
                "inheriting the supernet's weights: {problem}"
            ))),
            None => Ok(model),
        }
    }
}

/// The part of `t` a layer of `shape` inherits, or `None` where `t` does not contain it.
fn fit(t: &Tensor, shape: &[usize]) -> Option<Vec<f32>> {
    let have = t.shape();
    if have.len() != shape.len() || have.iter().zip(shape).any(|(h, w)| h < w) {
        return None;
    }
    if have == shape {
        return Some(t.data().to_vec());
    }
    // Offsets: 0 on leading axes, centred on a 4-D weight's kernel axes.
    let offsets: Vec<usize> = (0..shape.len())
        .map(|axis| {
            if shape.len() == 4 && axis >= 2 {
                (have[axis] - shape[axis]) / 2
            } else {
                0
            }
        })
        .collect();
    let len: usize = shape.iter().product();
    let mut out = Vec::with_capacity(len);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..len {
        let flat = index
            .iter()
            .zip(&offsets)
            .zip(have)
            .fold(0, |acc, ((i, o), h)| acc * h + i + o);
        out.push(t.data()[flat]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Some(out)
}

/// NAS-Bench-201's layer names to the supernet's.
struct Nb201Inherited<'a> {
    source: Source<'a>,
    /// The last convolution asked for: its layer name and supernet parameter.
    last_conv: Option<(String, String)>,
}

/// The supernet parameter behind an exported convolution `name` of `kernel` x `kernel`.
fn nb201_param(name: &str, kernel: usize) -> Option<String> {
    let layer = name.strip_suffix(".conv")?;
    if layer == "stem" {
        return Some("stem".into());
    }
    if let Some(rest) = layer.strip_prefix("reduce") {
        let (stage, part) = rest.split_once('.').unwrap_or((rest, ""));
        let part = match part {
            "" => "a",
            "b" => "b",
            "shortcut" => "short",
            _ => return None,
        };
        return Some(format!("r{stage}.{part}"));
    }
    // stage{s}.cell{c}.edge{to}{from}
    let mut parts = layer.split('.');
    let stage = parts.next()?.strip_prefix("stage")?;
    let cell = parts.next()?.strip_prefix("cell")?;
    let edge = parts.next()?.strip_prefix("edge")?;
    let digits: Vec<usize> = edge
        .chars()
        .map(|c| c.to_digit(10).map(|d| d as usize))
        .collect::<Option<_>>()?;
    let &[to, from] = digits.as_slice() else {
        return None;
    };
    let e = EDGES.iter().position(|&pair| pair == (to, from))?;
    Some(format!("s{stage}.c{cell}.e{e}.conv{kernel}"))
}

impl Weights for Nb201Inherited<'_> {
    fn conv(&mut self, name: &str, shape: [usize; 4]) -> Vec<f32> {
        match nb201_param(name, shape[2]) {
            Some(param) => {
                let values = self.source.fitted(&param, &shape, name);
                self.last_conv = Some((name.to_string(), param));
                values
            }
            None => {
                self.source
                    .fail(format!("layer `{name}` has no supernet counterpart"));
                vec![0.0; shape.iter().product()]
            }
        }
    }

    fn bias(&mut self, name: &str, len: usize) -> Vec<f32> {
        if name == "classifier.linear.bias" {
            return self.source.fitted("head.b", &[len], name);
        }
        self.source
            .fail(format!("bias `{name}` has no supernet counterpart"));
        vec![0.0; len]
    }

    fn batch_norm(&mut self, name: &str, channels: usize) -> BatchNorm {
        if name == "lastact.bn" {
            // The head's affine batch norm: gamma and beta are `head.gamma/beta`.
            let (mean, var) = self.source.stats_of("head.bn", channels, name);
            return BatchNorm {
                gamma: self.source.fitted("head.gamma", &[channels], name),
                beta: self.source.fitted("head.beta", &[channels], name),
                mean,
                var,
                eps: BN_EPS,
            };
        }
        // A convolution's batch norm follows it: `{conv}.bn`.
        let param = self
            .last_conv
            .as_ref()
            .filter(|(conv, _)| name.strip_suffix(".bn") == Some(conv.as_str()))
            .map(|(_, param)| param.clone())
            .unwrap_or_else(|| name.to_string());
        self.source.batch_norm(&param, channels, false, name)
    }

    fn linear(&mut self, name: &str, out: usize, inputs: usize) -> Vec<f32> {
        self.source.transposed("head.w", out, inputs, name)
    }
}

/// The ONNX model of the NAS-Bench-201 subnet `arch` of `net`, with its inherited weights
/// and the batch-norm statistics `stats` recalibrated for it, for `resolution` x
/// `resolution` inputs.
pub fn nb201_inherited(
    net: &Nb201Supernet,
    stats: &BnStats,
    arch: &Arch,
    resolution: usize,
    options: ExportOptions,
) -> Result<ModelProto> {
    let config = net.config;
    let shape = Nb201Network {
        in_channels: config.in_channels,
        channels: config.channels,
        cells_per_stage: config.cells,
        classes: config.classes,
        resolution,
    };
    let mut weights = Nb201Inherited {
        source: Source {
            params: &net.params,
            stats,
            error: None,
        },
        last_conv: None,
    };
    let model = network(&Nb201Space::new(), arch, &shape, &mut weights, options);
    weights.source.finish(model)
}

/// Once-for-All's layer names to the supernet's: layer `i` of the exported network is the
/// supernet's `prefixes[i]` (`first`, `b{block}`, `final`).
struct OfaInherited<'a> {
    source: Source<'a>,
    prefixes: Vec<String>,
}

impl OfaInherited<'_> {
    /// The supernet parameter behind exported convolution `name` (`layer{i}.{part}.conv`).
    fn param(&self, name: &str) -> Option<String> {
        let (layer, rest) = name.split_once('.')?;
        let prefix = self
            .prefixes
            .get(layer.strip_prefix("layer")?.parse::<usize>().ok()?)?;
        let part = rest.strip_suffix(".conv")?;
        let part = match part {
            "first_conv" => "conv",
            "first_block.depth" => "depth",
            "first_block.point" => "point",
            "final_expand" => "expand",
            "feature_mix" => "mix",
            other => other,
        };
        Some(format!("{prefix}.{part}"))
    }
}

impl Weights for OfaInherited<'_> {
    fn conv(&mut self, name: &str, shape: [usize; 4]) -> Vec<f32> {
        match self.param(name) {
            Some(param) => self.source.fitted(&param, &shape, name),
            None => {
                self.source
                    .fail(format!("layer `{name}` has no supernet counterpart"));
                vec![0.0; shape.iter().product()]
            }
        }
    }

    fn bias(&mut self, name: &str, len: usize) -> Vec<f32> {
        if name.ends_with("classifier.linear.bias") {
            return self.source.fitted("classifier.b", &[len], name);
        }
        match name.strip_suffix(".bias").and_then(|conv| self.param(conv)) {
            Some(param) => self.source.fitted(&format!("{param}.bias"), &[len], name),
            None => {
                self.source
                    .fail(format!("bias `{name}` has no supernet counterpart"));
                vec![0.0; len]
            }
        }
    }

    fn batch_norm(&mut self, name: &str, channels: usize) -> BatchNorm {
        let param = name
            .strip_suffix(".bn")
            .and_then(|conv| self.param(conv))
            .unwrap_or_else(|| name.to_string());
        self.source.batch_norm(&param, channels, true, name)
    }

    fn linear(&mut self, name: &str, out: usize, inputs: usize) -> Vec<f32> {
        self.source.transposed("classifier.w", out, inputs, name)
    }
}

/// The ONNX model of the Once-for-All subnet `config` of `net` at the supernet's widths,
/// with its inherited weights and the batch-norm statistics `stats` recalibrated for it;
/// inputs of `config.r` x `config.r`.
pub fn ofa_inherited(
    net: &OfaSupernet,
    stats: &BnStats,
    config: &OfaConfig,
    options: ExportOptions,
) -> Result<ModelProto> {
    let c = net.config;
    let widths = OfaWidths {
        in_channels: c.in_channels,
        stem: c.stem as u32,
        stages: c
            .stages
            .map(|s| (s.width as u32, s.stride as u32, s.se, s.hswish)),
        final_expand: c.final_expand,
        feature_mix: c.feature_mix,
        classes: c.classes,
    };
    let mut blocks =
        (0..c.stages.len()).flat_map(|s| (0..config.d[s] as usize).map(move |i| s * MAX_DEPTH + i));
    let prefixes = layers_with(config, &widths)
        .iter()
        .map(|layer| match layer {
            OfaLayer::FirstConv { .. } | OfaLayer::FirstBlock { .. } => "first".to_string(),
            OfaLayer::MbConv { .. } => format!("b{}", blocks.next().unwrap_or_default()),
            OfaLayer::Head { .. } => "final".to_string(),
        })
        .collect();
    let mut weights = OfaInherited {
        source: Source {
            params: &net.params,
            stats,
            error: None,
        },
        prefixes,
    };
    let model = network_with(config, &widths, &mut weights, options);
    weights.source.finish(model)
}
