//! The search side of hwnas: search spaces, strategies, evaluators and the search loop.

pub mod error;
pub mod space;

pub use error::{Error, Result};
pub use hwnas_kernels as kernels;
pub use space::{Arch, Decision, SearchSpace};
