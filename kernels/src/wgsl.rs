//! The WGSL sources, one file per kernel family under `src/wgsl/`, and the uniform structs
//! the Rust side fills for them (their sizes are checked against the shaders by naga).

use bytemuck::{Pod, Zeroable};

/// A kernel family's shader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shader {
    /// Tiled matrix product.
    Matmul,
    /// Activations forward and backward.
    Activation,
    /// Convolution forward and backward: tiled implicit products and direct kernels.
    Conv2d,
    /// Average, max and global average pooling, forward and backward.
    Pool,
    /// Batch normalisation: statistics, normalisation, backward.
    BatchNorm,
    /// Broadcast add and multiply, forward and operand gradients.
    Broadcast,
    /// Window copies along an axis: slice, concat, centre-crop and their gradients.
    Window,
    /// The mixed op's weighted sum, its gradients, and segment dot products (sums).
    Reduce,
    /// Softmax, log-softmax, Gumbel-softmax and cross-entropy, forward and backward.
    Softmax,
    /// The SGD update with momentum, weight decay and gradient-norm clipping.
    Sgd,
}

/// `(shader, file under src/wgsl/, WGSL text, uniform struct name, its Rust size)`.
macro_rules! shaders {
    ($(($variant:ident, $path:literal, $uniform:ident)),* $(,)?) => {
        impl Shader {
            /// Every shader.
            pub const ALL: [Shader; 10] = [$(Shader::$variant),*];

            /// The file under `src/wgsl/`.
            pub fn path(self) -> &'static str {
                match self {
                    $(Shader::$variant => $path,)*
                }
            }

            /// The WGSL text.
            pub fn source(self) -> &'static str {
                match self {
                    $(Shader::$variant => include_str!(concat!("wgsl/", $path)),)*
                }
            }

            /// The uniform struct's name in the shader and the size of its Rust mirror.
            pub fn uniform(self) -> (&'static str, usize) {
                match self {
                    $(Shader::$variant => (stringify!($uniform), std::mem::size_of::<$uniform>()),)*
                }
            }
        }
    };
}

shaders!(
    (Matmul, "matmul/matmul.wgsl", MatmulParams),
    (Activation, "elementwise/activation.wgsl", ActivationParams),
    (Conv2d, "conv/conv2d.wgsl", Conv2dParams),
    (Pool, "pool/pool.wgsl", PoolParams),
    (BatchNorm, "norm/batch_norm.wgsl", NormParams),
    (Broadcast, "elementwise/broadcast.wgsl", BroadcastParams),
    (Window, "layout/window.wgsl", WindowParams),
    (Reduce, "reduce/reduce.wgsl", ReduceParams),
    (Softmax, "softmax/softmax.wgsl", SoftmaxParams),
    (Sgd, "optim/sgd.wgsl", SgdParams),
);

/// Uniforms of `matmul.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct MatmulParams {
    /// Rows of A and C.
    pub m: u32,
    /// Columns of A, rows of B.
    pub k: u32,
    /// Columns of B and C.
    pub n: u32,
    /// Bit 0: A is stored as `[K, M]`; bit 1: B is stored as `[N, K]`.
    pub transposed: u32,
}

/// Uniforms of `activation.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ActivationParams {
    /// Values.
    pub len: u32,
    /// [`crate::ops::Activation::code`].
    pub kind: u32,
    /// Padding to 16 bytes.
    pub pad: [u32; 2],
}

/// Uniforms of `conv2d.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct Conv2dParams {
    /// Batch.
    pub n: u32,
    /// Input channels.
    pub cin: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output channels.
    pub cout: u32,
    /// Kernel size.
    pub k: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Stride.
    pub stride: u32,
    /// Padding.
    pub padding: u32,
    /// Dilation.
    pub dilation: u32,
    /// Groups.
    pub groups: u32,
    /// Which product the `tiled` entry point computes: 0 forward, 1 input gradient,
    /// 2 weight gradient.
    pub mode: u32,
    /// Padding to 16 bytes.
    pub pad: [u32; 3],
}

/// Uniforms of `pool.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct PoolParams {
    /// Batch.
    pub n: u32,
    /// Channels.
    pub c: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Window size.
    pub kernel: u32,
    /// Stride.
    pub stride: u32,
    /// Padding.
    pub padding: u32,
    /// 1 for max pooling, 0 for average.
    pub is_max: u32,
    /// Padding to 16 bytes.
    pub pad: [u32; 2],
}

/// Uniforms of `batch_norm.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct NormParams {
    /// Batch.
    pub n: u32,
    /// Channels.
    pub c: u32,
    /// Height x width.
    pub plane: u32,
    /// 1: training-mode backward (batch statistics); 0: inference.
    pub training: u32,
    /// Added to the variance.
    pub eps: f32,
    /// Padding to 16 bytes.
    pub pad: [u32; 3],
}

/// Uniforms of `broadcast.wgsl` (shapes padded on the left to four axes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BroadcastParams {
    /// The output's dims.
    pub out_dims: [u32; 4],
    /// Backward: the dims of the operand whose gradient is computed.
    pub target_dims: [u32; 4],
    /// Forward: strides of `a` in output coordinates (0 along broadcast axes).
    pub strides_a: [u32; 4],
    /// Forward: strides of `b`; backward: of the other operand.
    pub strides_b: [u32; 4],
    /// 0 add, 1 multiply, 2 (forward) `a` times `factor`, 3 (forward) `factor a +
    /// factor_b b`, 4 (forward) `factor` everywhere.
    pub op: u32,
    /// Values computed.
    pub len: u32,
    /// The factor of `a` in ops 2 and 3, the value of op 4.
    pub factor: f32,
    /// The factor of `b` in op 3.
    pub factor_b: f32,
}

/// Uniforms of `window.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct WindowParams {
    /// Product of the axes before the windowed one.
    pub outer: u32,
    /// Product of the axes after it.
    pub inner: u32,
    /// The source's length along the axis.
    pub src_length: u32,
    /// The destination's length along the axis.
    pub dst_length: u32,
    /// First index read.
    pub src_start: u32,
    /// First index written.
    pub dst_start: u32,
    /// Indices copied.
    pub count: u32,
    /// Padding to 16 bytes.
    pub pad: u32,
}

/// Uniforms of `reduce.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ReduceParams {
    /// Values per segment.
    pub len: u32,
    /// Segments.
    pub segments: u32,
    /// 1: the second factor is all ones.
    pub ones: u32,
    /// Each result times this (1 for a sum, 1 / count for a mean).
    pub scale: f32,
    /// `channel_sum`: images in the batch.
    pub batches: u32,
    /// Padding to 32 bytes.
    pub pad: [u32; 3],
}

/// Uniforms of `softmax.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct SoftmaxParams {
    /// Rows.
    pub rows: u32,
    /// Columns (classes).
    pub cols: u32,
    /// 1: log-softmax.
    pub log: u32,
    /// 1: add Gumbel noise before scaling.
    pub noisy: u32,
    /// Input scale (1 / tau for Gumbel-softmax).
    pub scale: f32,
    /// Padding to 16 bytes.
    pub pad: [u32; 3],
}

/// Uniforms of `sgd.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct SgdParams {
    /// Values of the parameter (or slots, for the clipping factor).
    pub len: u32,
    /// The squared-norm slot written.
    pub slot: u32,
    /// Padding to 16 bytes.
    pub pad: [u32; 2],
}

/// The per-step block of `sgd.wgsl` (a storage buffer: uploaded once per step, read by
/// every dispatch of it).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct SgdStepValues {
    /// 1: Nesterov momentum.
    pub nesterov: u32,
    /// 1: the gradient is scaled by the clipping factor.
    pub clipped: u32,
    /// Step size.
    pub learning_rate: f32,
    /// Momentum.
    pub momentum: f32,
    /// L2 penalty.
    pub weight_decay: f32,
    /// The largest global gradient norm kept.
    pub max_norm: f32,
    /// Padding to 32 bytes.
    pub pad: [u32; 2],
}
