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
}

impl Shader {
    /// Every shader.
    pub const ALL: [Shader; 3] = [Shader::Matmul, Shader::Activation, Shader::Conv2d];

    /// The file under `src/wgsl/`.
    pub fn path(self) -> &'static str {
        match self {
            Shader::Matmul => "matmul/matmul.wgsl",
            Shader::Activation => "elementwise/activation.wgsl",
            Shader::Conv2d => "conv/conv2d.wgsl",
        }
    }

    /// The WGSL text.
    pub fn source(self) -> &'static str {
        match self {
            Shader::Matmul => include_str!("wgsl/matmul/matmul.wgsl"),
            Shader::Activation => include_str!("wgsl/elementwise/activation.wgsl"),
            Shader::Conv2d => include_str!("wgsl/conv/conv2d.wgsl"),
        }
    }

    /// The uniform struct's name in the shader and the size of its Rust mirror.
    pub fn uniform(self) -> (&'static str, usize) {
        match self {
            Shader::Matmul => ("MatmulParams", std::mem::size_of::<MatmulParams>()),
            Shader::Activation => ("ActivationParams", std::mem::size_of::<ActivationParams>()),
            Shader::Conv2d => ("Conv2dParams", std::mem::size_of::<Conv2dParams>()),
        }
    }
}

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
    /// Padding to 16 bytes.
    pub pad: u32,
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
