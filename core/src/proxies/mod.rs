//! Training-free accuracy proxies (the zero-cost / FreeNAS family), computed on the kernels
//! crate at initialisation: synflow (no data, no labels), NASWOT (activation patterns of a
//! batch, no labels), and grad-norm and snip (one labelled batch).
//!
//! The networks are NAS-Bench-201's CIFAR skeleton ([`Nb201Net`]) without batch norm:
//! synflow is defined on the network's linearised weights, and at initialisation batch norm
//! only rescales each channel, which none of the four rankings depend on to first order.

pub mod nb201_net;
pub mod scores;

pub use nb201_net::{Nb201Net, ParamSource};
pub use scores::{ProxyScores, grad_norm_and_snip, kendall_tau, naswot, spearman, synflow};
