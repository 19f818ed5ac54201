//! Training-free accuracy proxies (the zero-cost / FreeNAS family), computed on the kernels
//! crate at initialisation: synflow (no data, no labels), NASWOT (activation patterns of a
//! batch, no labels), and grad-norm and snip (one labelled batch).
//!
//! The networks are NAS-Bench-201's CIFAR skeleton ([`Nb201Net`]), with batch norm in
//! training mode for NASWOT, grad-norm and snip (as the published scores were computed), and
//! without it for synflow, which is defined on the linearised network.

pub mod nb201_net;
pub mod scores;

pub use nb201_net::{Nb201Net, ParamSource};
pub use scores::{
    ProxyScores, SYNFLOW_NET, grad_norm_and_snip, kendall_tau, naswot, spearman, synflow,
};
