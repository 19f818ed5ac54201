//! The search side of hwnas: search spaces, strategies, evaluators and the search loop.

pub use hwnas_kernels as kernels;
