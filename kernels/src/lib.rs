//! The compute engine under hwnas: tensors, WGSL compute kernels run through wgpu on any GPU
//! (or on the CPU through Mesa's lavapipe), and a CPU reference backend.

pub mod adapters;
pub mod error;

pub use adapters::{AdapterSummary, list_adapters};
pub use error::{Error, Result};
