//! Training-free accuracy proxies (the zero-cost / FreeNAS family), computed on the kernels
//! crate at initialisation: synflow (no data, no labels), NASWOT (activation patterns of a
//! batch, no labels), and grad-norm and snip (one labelled batch).
//!
//! The networks are NAS-Bench-201's CIFAR skeleton ([`Nb201Net`]), with batch norm in
//! training mode for NASWOT, grad-norm and snip (as the published scores were computed), and
//! without it for synflow, which is defined on the linearised network.

pub mod nb201_net;
pub mod scores;
pub mod synflow_periodic;

pub use nb201_net::{Nb201Net, ParamSource};
pub use scores::{
    ProxyScores, SYNFLOW_NET, grad_norm_and_snip, jacob_cov, kendall_tau, naswot, spearman, synflow,
};
pub use synflow_periodic::PeriodicSynflow;

use std::sync::Arc;

use crate::benchmark::Nb201Table;
use crate::evaluate::{Evaluation, Evaluator};
use crate::space::Arch;

/// Synflow as an evaluator of NAS-Bench-201 cells: the search signal is log10 synflow (no
/// training, no data); the reported accuracy comes from a table when one is given.
pub struct SynflowEvaluator {
    /// A table for reporting test accuracy (not seen by the search).
    pub table: Option<Arc<Nb201Table>>,
}

impl Evaluator for SynflowEvaluator {
    fn name(&self) -> String {
        "proxy:synflow".to_string()
    }

    fn evaluate(&self, arch: &Arch) -> crate::Result<Evaluation> {
        Ok(Evaluation {
            accuracy: synflow(&SYNFLOW_NET, arch, 32),
            test_accuracy: self.table.as_ref().and_then(|t| t.test(arch)),
            cost_seconds: 0.0,
        })
    }
}
