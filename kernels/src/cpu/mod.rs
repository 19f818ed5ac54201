//! The CPU reference backend: every op forward and backward, written plainly (im2col +
//! a GEMM crate for convolutions and matrix products, rayon across the batch). Every GPU
//! kernel is checked against it, and every backward here against finite differences.

/// Elements below which an element-wise op runs on the calling thread: waking the pool
/// costs more than a small tensor's work (a strategy's MLP spent 40% of its time switching).
const PARALLEL_MIN: usize = 1 << 15;

pub mod allocator;
pub mod broadcast;
pub mod conv;
pub mod conv_direct;
mod elementwise;
pub mod gemm;
pub mod layout;
pub mod matmul;
pub mod mixed;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod softmax;
pub mod unary;

pub use broadcast::{binary, binary_backward, broadcast_shape, mul, mul_backward};
pub use conv::{conv2d, conv2d_backward};
pub use layout::{
    centre_crop, centre_crop_backward, concat_channels, slice_axis, slice_axis_backward,
};
pub use matmul::{matmul, matmul_backward, matmul_backward_parts};
pub use mixed::{mixed_op, mixed_op_backward};
pub use norm::{
    BatchNormCache, batch_norm_inference, batch_norm_inference_backward, batch_norm_train,
    batch_norm_train_backward,
};
pub use pool::{
    avg_pool, avg_pool_backward, global_avg_pool, global_avg_pool_backward, max_pool,
    max_pool_backward,
};
pub use softmax::{
    argmax, gumbel, gumbel_noise, log_softmax_backward, one_hot_argmax, open_uniform,
    segment_softmax, segment_softmax_backward, softmax, softmax_backward,
};
pub use unary::{
    activation, activation_backward, activation_backward_with_output, correct_count, cross_entropy,
    cross_entropy_backward, log_softmax, per_sample_cross_entropy,
};
