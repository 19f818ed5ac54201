//! The search side of hwnas: search spaces, strategies, evaluators and the search loop.

pub mod benchmark;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod space;

pub use error::{Error, Result};
pub use evaluate::{Evaluation, Evaluator, LatencyModel};
pub use hwnas_kernels as kernels;
pub use space::{Arch, Decision, SearchSpace};
