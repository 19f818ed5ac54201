//! The networks of each search space as ONNX models: NAS-Bench-201 cells in their CIFAR
//! macro-skeleton, Once-for-All MobileNetV3 subnets, and DARTS evaluation networks.

pub mod darts;
pub mod inherited;
pub mod nb201;
pub mod ofa;

use hwnas_core::space::{DartsSpace, Nb201Space, SearchSpace};

use crate::error::{Error, Result};
use crate::onnx::Weights;
use crate::onnx::proto::ModelProto;

/// Export settings shared by the spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    /// Batch size of the input (1 for latency).
    pub batch: usize,
    /// Fold batch norm into convolutions (deployment form); off only for parity checks.
    pub fold_batch_norm: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            batch: 1,
            fold_batch_norm: true,
        }
    }
}

/// Exports an architecture given in its space's community text format.
pub fn export_arch(
    space: &str,
    arch_text: &str,
    weights: &mut dyn Weights,
    options: ExportOptions,
) -> Result<ModelProto> {
    let invalid = Error::Arch;
    match space {
        "nb201" => {
            let s = Nb201Space::new();
            let arch = s.parse(arch_text).map_err(invalid)?;
            Ok(nb201::network(
                &s,
                &arch,
                &nb201::Nb201Network::default(),
                weights,
                options,
            ))
        }
        "ofa-mbv3" | "ofa" => {
            let config = hwnas_core::space::ofa::parse_config(arch_text).map_err(invalid)?;
            Ok(ofa::network(&config, weights, options))
        }
        "darts" => {
            let s = DartsSpace::new();
            let arch = s.parse(arch_text).map_err(invalid)?;
            Ok(darts::network(
                &s,
                &arch,
                &darts::DartsNetwork::default(),
                weights,
                options,
            ))
        }
        other => Err(Error::Export(format!(
            "unknown space `{other}`; allowed: nb201, darts, ofa-mbv3"
        ))),
    }
}
