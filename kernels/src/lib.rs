//! The compute engine under hwnas: tensors, WGSL compute kernels run through wgpu on any GPU
//! (or on the CPU through Mesa's lavapipe), and a CPU reference backend that checks them.

pub mod adapters;
pub mod autodiff;
pub mod backend;
pub mod cpu;
pub mod error;
pub mod gpu;
pub mod labels;
pub mod ops;
pub mod optim;
pub mod tensor;
pub mod wgsl;

pub use adapters::{AdapterSummary, list_adapters};
pub use autodiff::{Tape, Var};
pub use backend::{Backend, Cpu, Wgpu};
pub use error::{Error, Result};
pub use labels::Labels;
pub use ops::{Activation, Conv2dSpec};
pub use tensor::{Tensor, Tolerance};
