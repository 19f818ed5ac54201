//! The `Backend` trait: the ops the autodiff tape runs, forward and backward, on host
//! tensors. [`Cpu`] is the reference; [`Wgpu`] runs the ops that have WGSL kernels on the
//! GPU and the rest on the CPU reference (each method says which).

use crate::cpu;
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::ops::{Activation, Conv2dSpec};
use crate::tensor::Tensor;

/// Ops with forward and backward passes.
pub trait Backend: Send + Sync {
    /// A name for reports: `cpu` or the adapter's name.
    fn name(&self) -> String;

    /// `x (*) weight + bias`.
    fn conv2d(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        spec: &Conv2dSpec,
    ) -> Result<Tensor> {
        cpu::conv2d(x, weight, bias, spec)
    }

    /// `(dx, dweight, dbias)`.
    fn conv2d_backward(
        &self,
        x: &Tensor,
        weight: &Tensor,
        dy: &Tensor,
        spec: &Conv2dSpec,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        cpu::conv2d_backward(x, weight, dy, spec)
    }

    /// `a x b`.
    fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        cpu::matmul(a, b)
    }

    /// `(da, db)`.
    fn matmul_backward(&self, a: &Tensor, b: &Tensor, dc: &Tensor) -> Result<(Tensor, Tensor)> {
        cpu::matmul_backward(a, b, dc)
    }

    /// `f(x)`.
    fn activation(&self, x: &Tensor, f: Activation) -> Result<Tensor> {
        Ok(cpu::activation(x, f))
    }

    /// `dy * f'(x)`.
    fn activation_backward(&self, x: &Tensor, dy: &Tensor, f: Activation) -> Result<Tensor> {
        cpu::activation_backward(x, dy, f)
    }
}

/// The CPU reference backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

impl Backend for Cpu {
    fn name(&self) -> String {
        "cpu".to_string()
    }
}

/// The wgpu backend: convolution, matmul and activations (forward and backward) run as
/// WGSL kernels; the other ops (pooling, batch norm, the mixed op, losses) run on the CPU
/// reference.
pub struct Wgpu {
    gpu: GpuContext,
}

impl Wgpu {
    /// The backend on the adapter wgpu picks (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`).
    pub fn new() -> Result<Self> {
        Ok(Wgpu {
            gpu: GpuContext::new()?,
        })
    }

    /// The device.
    pub fn context(&self) -> &GpuContext {
        &self.gpu
    }
}

fn transpose(t: &Tensor) -> Tensor {
    let (rows, cols) = (t.shape()[0], t.shape()[1]);
    let mut out = vec![0.0; t.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = t.data()[r * cols + c];
        }
    }
    Tensor::new(&[cols, rows], out).expect("same size")
}

impl Backend for Wgpu {
    fn name(&self) -> String {
        format!("wgpu:{}", self.gpu.adapter().name)
    }

    fn conv2d(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        spec: &Conv2dSpec,
    ) -> Result<Tensor> {
        let mut y = self.gpu.conv2d(x, weight, spec)?;
        if let Some(b) = bias {
            let plane = y.shape()[2] * y.shape()[3];
            let channels = y.shape()[1];
            for (i, v) in y.data_mut().iter_mut().enumerate() {
                *v += b.data()[(i / plane) % channels];
            }
        }
        Ok(y)
    }

    fn conv2d_backward(
        &self,
        x: &Tensor,
        weight: &Tensor,
        dy: &Tensor,
        spec: &Conv2dSpec,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (dx, dw) = self.gpu.conv2d_backward(x, weight, dy, spec)?;
        let [_, cout, oh, ow] = dy.nchw()?;
        let mut db = vec![0.0; cout];
        for (i, chunk) in dy.data().chunks(oh * ow).enumerate() {
            db[i % cout] += chunk.iter().sum::<f32>();
        }
        Ok((dx, dw, Tensor::new(&[cout], db)?))
    }

    fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.gpu.matmul(a, b)
    }

    fn matmul_backward(&self, a: &Tensor, b: &Tensor, dc: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.gpu.matmul(dc, &transpose(b))?,
            self.gpu.matmul(&transpose(a), dc)?,
        ))
    }

    fn activation(&self, x: &Tensor, f: Activation) -> Result<Tensor> {
        self.gpu.activation(x, f)
    }

    fn activation_backward(&self, x: &Tensor, dy: &Tensor, f: Activation) -> Result<Tensor> {
        self.gpu.activation_backward(x, dy, f)
    }
}

/// The wgpu backend when an adapter exists, else the CPU backend, saying so on stderr.
pub fn best_available() -> Box<dyn Backend> {
    match Wgpu::new() {
        Ok(backend) => Box::new(backend),
        Err(e) => {
            eprintln!("note: {e}; using the CPU backend");
            Box::new(Cpu)
        }
    }
}
