//! A NAS-Bench-201 subnet with the weights it inherits from a trained supernet: the cell's
//! chosen operations take the supernet's weights of those candidates, batch norm takes the
//! subnet's recalibrated statistics (the cells' batch norm is non-affine: scale 1, shift
//! 0), and the network is the supernet's size and input, so the ONNX model computes what
//! the supernet computes for that subnet in inference mode.

use hwnas_core::space::Arch;
use hwnas_core::space::nb201::{EDGES, Nb201Space};
use hwnas_core::supernet::{BnStats, Nb201Supernet};

use super::ExportOptions;
use super::nb201::{Nb201Network, network};
use crate::error::{Error, Result};
use crate::onnx::proto::ModelProto;
use crate::onnx::{BatchNorm, Weights};

/// Batch-norm epsilon of the supernet's batch norm.
const BN_EPS: f32 = 1e-5;

/// The supernet's weights, asked for by the exported network's layer names.
struct Inherited<'a> {
    net: &'a Nb201Supernet,
    stats: &'a BnStats,
    /// The last convolution asked for: its layer name and supernet parameter.
    last_conv: Option<(String, String)>,
    /// The first name that did not map (the export then fails with it).
    error: Option<String>,
}

/// The supernet parameter behind an exported convolution `name` of `kernel` x `kernel`.
fn param_name(name: &str, kernel: usize) -> Option<String> {
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

impl Inherited<'_> {
    fn fail(&mut self, problem: String) {
        self.error.get_or_insert(problem);
    }

    /// Parameter `name`'s values if it exists with `len` values.
    fn values(&mut self, name: &str, len: usize, asked: &str) -> Vec<f32> {
        match self.net.params.get(name) {
            Ok(t) if t.len() == len => t.data().to_vec(),
            Ok(t) => {
                self.fail(format!(
                    "layer `{asked}`: the supernet's `{name}` holds {:?}, the network needs {len} values",
                    t.shape()
                ));
                vec![0.0; len]
            }
            Err(_) => {
                self.fail(format!(
                    "layer `{asked}`: the supernet has no parameter `{name}`"
                ));
                vec![0.0; len]
            }
        }
    }

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
}

impl Weights for Inherited<'_> {
    fn conv(&mut self, name: &str, shape: [usize; 4]) -> Vec<f32> {
        let len = shape.iter().product();
        match param_name(name, shape[2]) {
            Some(param) => {
                let values = self.values(&param, len, name);
                self.last_conv = Some((name.to_string(), param));
                values
            }
            None => {
                self.fail(format!("layer `{name}` has no supernet counterpart"));
                vec![0.0; len]
            }
        }
    }

    fn bias(&mut self, name: &str, len: usize) -> Vec<f32> {
        if name == "classifier.linear.bias" {
            return self.values("head.b", len, name);
        }
        self.fail(format!("bias `{name}` has no supernet counterpart"));
        vec![0.0; len]
    }

    fn batch_norm(&mut self, name: &str, channels: usize) -> BatchNorm {
        if name == "lastact.bn" {
            let gamma = self.values("head.gamma", channels, name);
            let beta = self.values("head.beta", channels, name);
            let (mean, var) = self.stats_of("head.bn", channels, name);
            return BatchNorm {
                gamma,
                beta,
                mean,
                var,
                eps: BN_EPS,
            };
        }
        // A convolution's batch norm follows it: `{conv}.bn`.
        let key = self
            .last_conv
            .as_ref()
            .filter(|(conv, _)| name.strip_suffix(".bn") == Some(conv.as_str()))
            .map(|(_, param)| param.clone());
        let (mean, var) = match key {
            Some(param) => self.stats_of(&format!("{param}.bn"), channels, name),
            None => {
                self.fail(format!(
                    "batch norm `{name}`: no recalibrated statistics; recalibrate this subnet first"
                ));
                (vec![0.0; channels], vec![1.0; channels])
            }
        };
        BatchNorm {
            gamma: vec![1.0; channels],
            beta: vec![0.0; channels],
            mean,
            var,
            eps: BN_EPS,
        }
    }

    fn linear(&mut self, name: &str, out: usize, inputs: usize) -> Vec<f32> {
        // The supernet keeps the classifier as [inputs, out] (x W); ONNX's as [out, inputs].
        let w = self.values("head.w", out * inputs, name);
        (0..out * inputs)
            .map(|i| w[(i % inputs) * out + i / inputs])
            .collect()
    }
}

/// The ONNX model of the NAS-Bench-201 subnet `arch` of `net`, with its inherited weights
/// and the batch-norm statistics `stats` recalibrated for it
/// ([`hwnas_core::oneshot::SupernetTrainer::recalibrate`]), for `resolution` x
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
    let mut weights = Inherited {
        net,
        stats,
        last_conv: None,
        error: None,
    };
    let model = network(&Nb201Space::new(), arch, &shape, &mut weights, options);
    match weights.error {
        Some(problem) => Err(Error::Export(format!(
            "inheriting the supernet's weights: {problem}"
        ))),
        None => Ok(model),
    }
}
