//! Latency for hwnas: ONNX Runtime discovery and loading, ONNX export of subnets, profiling,
//! lookup tables and predictors.

pub mod accuracy;
pub mod cache;
pub mod error;
pub mod export;
pub mod fewshot;
pub mod lut;
pub mod lut_model;
pub mod measured;
pub mod onnx;
pub mod profile;
pub mod runtime;
pub mod wire;

pub use error::{Error, Result};
pub use runtime::{OrtRuntime, PINNED_ORT_VERSION, SETUP_COMMAND};
