//! ONNX models: the generated `onnx.proto` types, a small graph builder that folds batch
//! norm as deployment does, and the networks of each search space.

#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto;

pub mod builder;
pub mod normalise;
pub mod weights;

pub use builder::{GraphBuilder, Tensor};
pub use weights::{BatchNorm, RandomWeights, Weights};

/// The opset every exported model declares.
pub const OPSET: i64 = 17;
/// The IR version every exported model declares (ONNX Runtime 1.31 loads up to 13).
pub const IR_VERSION: i64 = 8;
