//! The `Backend` trait: the ops the autodiff tape runs, forward and backward, on host
//! tensors. [`Cpu`] is the reference (the trait's default methods); [`Wgpu`] overrides
//! every op with its WGSL kernels.

use crate::cpu;
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::labels::Labels;
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

    /// `(da, db)`: both of [`Backend::matmul_backward_parts`].
    fn matmul_backward(&self, a: &Tensor, b: &Tensor, dc: &Tensor) -> Result<(Tensor, Tensor)> {
        let (da, db) = self.matmul_backward_parts(a, b, dc, (true, true))?;
        Ok((da.expect("da was asked for"), db.expect("db was asked for")))
    }

    /// `da` and `db`, each only when asked for (`want`): the gradient of an operand that
    /// is data is a product nobody reads.
    fn matmul_backward_parts(
        &self,
        a: &Tensor,
        b: &Tensor,
        dc: &Tensor,
        want: (bool, bool),
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        cpu::matmul_backward_parts(a, b, dc, want.0, want.1)
    }

    /// `f(x)`.
    fn activation(&self, x: &Tensor, f: Activation) -> Result<Tensor> {
        Ok(cpu::activation(x, f))
    }

    /// `dy * f'(x)`.
    fn activation_backward(&self, x: &Tensor, dy: &Tensor, f: Activation) -> Result<Tensor> {
        cpu::activation_backward(x, dy, f)
    }

    /// `dy * f'(x)` where the forward output `y = f(x)` is at hand (the tape's): by default
    /// [`Backend::activation_backward`]; the CPU reads tanh's and the sigmoid's derivative
    /// off `y` (the same values, without evaluating them again).
    fn activation_backward_with_output(
        &self,
        x: &Tensor,
        y: &Tensor,
        dy: &Tensor,
        f: Activation,
    ) -> Result<Tensor> {
        _ = y;
        self.activation_backward(x, dy, f)
    }

    /// Average (padding not counted) or max pooling.
    fn pool(
        &self,
        x: &Tensor,
        max: bool,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Tensor> {
        if max {
            cpu::max_pool(x, kernel, stride, padding)
        } else {
            cpu::avg_pool(x, kernel, stride, padding)
        }
    }

    /// Gradient of [`Backend::pool`].
    fn pool_backward(
        &self,
        x: &Tensor,
        dy: &Tensor,
        max: bool,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Tensor> {
        if max {
            cpu::max_pool_backward(x, dy, kernel, stride, padding)
        } else {
            cpu::avg_pool_backward(x, dy, kernel, stride, padding)
        }
    }

    /// Global average pooling to `[N, C, 1, 1]`.
    fn global_avg_pool(&self, x: &Tensor) -> Result<Tensor> {
        cpu::global_avg_pool(x)
    }

    /// Gradient of [`Backend::global_avg_pool`].
    fn global_avg_pool_backward(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        cpu::global_avg_pool_backward(x, dy)
    }

    /// Training-mode batch norm: the output and what its backward needs.
    fn batch_norm_train(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, cpu::BatchNormCache)> {
        cpu::batch_norm_train(x, gamma, beta, eps)
    }

    /// `(dx, dgamma, dbeta)` of [`Backend::batch_norm_train`].
    fn batch_norm_train_backward(
        &self,
        cache: &cpu::BatchNormCache,
        gamma: &Tensor,
        dy: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        cpu::batch_norm_train_backward(cache, gamma, dy)
    }

    /// Inference-mode batch norm with fixed per-channel `mean` and `var` (`[C]`): `(y,
    /// normalised, 1 / sqrt(var + eps))`.
    fn batch_norm_inference(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        cpu::batch_norm_inference(x, gamma, beta, mean, var, eps)
    }

    /// `(dx, dgamma, dbeta)` of [`Backend::batch_norm_inference`].
    fn batch_norm_inference_backward(
        &self,
        normalised: &Tensor,
        inv_std: &Tensor,
        gamma: &Tensor,
        dy: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        cpu::batch_norm_inference_backward(normalised, inv_std, gamma, dy)
    }

    /// `a + b` or (`multiply`) `a * b` with broadcasting.
    fn binary(&self, a: &Tensor, b: &Tensor, multiply: bool) -> Result<Tensor> {
        cpu::binary(a, b, multiply)
    }

    /// `(da, db)` of [`Backend::binary`].
    fn binary_backward(
        &self,
        a: &Tensor,
        b: &Tensor,
        dy: &Tensor,
        multiply: bool,
    ) -> Result<(Tensor, Tensor)> {
        cpu::binary_backward(a, b, dy, multiply)
    }

    /// Indices `start..start + len` along `axis`.
    fn slice_axis(&self, x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        cpu::slice_axis(x, axis, start, len)
    }

    /// Gradient of [`Backend::slice_axis`]: `dy` placed into zeros of `shape`.
    fn slice_axis_backward(
        &self,
        dy: &Tensor,
        shape: &[usize],
        axis: usize,
        start: usize,
    ) -> Result<Tensor> {
        cpu::slice_axis_backward(dy, shape, axis, start)
    }

    /// Concatenation along axis 1.
    fn concat_channels(&self, parts: &[&Tensor]) -> Result<Tensor> {
        cpu::concat_channels(parts)
    }

    /// Gradient of [`Backend::concat_channels`]: one channel slice per part.
    fn concat_channels_backward(&self, dy: &Tensor, channels: &[usize]) -> Result<Vec<Tensor>> {
        let total = dy.shape().get(1).copied().unwrap_or(0);
        if channels.iter().sum::<usize>() != total {
            return Err(crate::Error::Shape(format!(
                "concat backward: parts of {channels:?} channels for a gradient of {total}"
            )));
        }
        let mut offset = 0;
        let mut grads = Vec::with_capacity(channels.len());
        for &c in channels {
            grads.push(self.slice_axis(dy, 1, offset, c)?);
            offset += c;
        }
        Ok(grads)
    }

    /// The centre `size x size` window of `[..., K, K]` kernels.
    fn centre_crop(&self, w: &Tensor, size: usize) -> Result<Tensor> {
        cpu::centre_crop(w, size)
    }

    /// Gradient of [`Backend::centre_crop`].
    fn centre_crop_backward(&self, dy: &Tensor, shape: &[usize]) -> Result<Tensor> {
        cpu::centre_crop_backward(dy, shape)
    }

    /// The mixed op: `sum_k weights[k] * candidates[k]` over the computed candidates
    /// (`weights` is `[K]`).
    fn mixed(&self, candidates: &[Option<&Tensor>], weights: &Tensor) -> Result<Tensor> {
        cpu::mixed_op(candidates, weights.data())
    }

    /// `(dweights, dcandidates)` of [`Backend::mixed`].
    fn mixed_backward(
        &self,
        candidates: &[Option<&Tensor>],
        weights: &Tensor,
        dy: &Tensor,
    ) -> Result<(Tensor, Vec<Option<Tensor>>)> {
        let (dweights, dcandidates) = cpu::mixed_op_backward(candidates, weights.data(), dy)?;
        Ok((Tensor::new(weights.shape(), dweights)?, dcandidates))
    }

    /// The sum of all values, as `[1]`.
    fn sum(&self, x: &Tensor) -> Result<Tensor> {
        Tensor::new(&[1], vec![x.data().iter().sum()])
    }

    /// `x` broadcast to `shape`, times `factor`.
    fn scale_to(&self, x: &Tensor, shape: &[usize], factor: f32) -> Result<Tensor> {
        let zeros = Tensor::zeros(shape);
        let mut out = cpu::binary(&zeros, x, false)?;
        if out.shape() != shape {
            return Err(crate::Error::Shape(format!(
                "{:?} does not broadcast to {shape:?}",
                x.shape()
            )));
        }
        out.data_mut().iter_mut().for_each(|v| *v *= factor);
        Ok(out)
    }

    /// Zeros of `shape` where this backend computes (cleared on the device, nothing
    /// uploaded).
    fn zeros(&self, shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::zeros(shape))
    }

    /// `value` everywhere in a tensor of `shape`, where this backend computes (written on
    /// the device, nothing uploaded).
    fn full(&self, shape: &[usize], value: f32) -> Result<Tensor> {
        Tensor::new(shape, vec![value; shape.iter().product()])
    }

    /// One SGD update of `params` (and their `velocity`, flat, one per parameter) from
    /// `grads`; on the wgpu backend every tensor stays on the device.
    fn sgd_step(
        &self,
        step: &crate::optim::SgdStep,
        params: &mut [Tensor],
        grads: &[Tensor],
        velocity: &mut [Tensor],
    ) -> Result<()> {
        crate::optim::sgd_step_on_host(step, params, grads, velocity)
    }

    /// `t` where this backend computes: on its device for the wgpu backend (an upload),
    /// unchanged for the CPU. Parameters moved once stay there across steps.
    fn to_device(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }

    /// Reads every tensor of `tensors` that lives on this backend's device back to the host
    /// in one transfer (their [`Tensor::data`] is free afterwards); nothing for the CPU.
    fn read_back(&self, tensors: &[&Tensor]) -> Result<()> {
        let _ = tensors;
        Ok(())
    }

    /// Softmax, or log-softmax, along the last axis of `(x + noise) * scale` (Gumbel noise
    /// and `1 / tau` for a Gumbel-softmax; none and 1 for a plain one).
    fn softmax(&self, x: &Tensor, noise: Option<&Tensor>, scale: f32, log: bool) -> Result<Tensor> {
        let mut input = x.clone();
        if let Some(noise) = noise {
            input = cpu::binary(&input, noise, false)?;
        }
        input.data_mut().iter_mut().for_each(|v| *v *= scale);
        if log {
            let c = *x.shape().last().unwrap_or(&1);
            let rows = input.reshape(&[x.len() / c.max(1), c])?;
            cpu::log_softmax(&rows)?.reshape(x.shape())
        } else {
            cpu::softmax(&input)
        }
    }

    /// Gradient through [`Backend::softmax`] from its output `y` (times `scale` for a
    /// softmax).
    fn softmax_backward(&self, y: &Tensor, dy: &Tensor, scale: f32, log: bool) -> Result<Tensor> {
        if log {
            cpu::log_softmax_backward(y, dy)
        } else {
            let mut dx = cpu::softmax_backward(y, dy)?;
            dx.data_mut().iter_mut().for_each(|v| *v *= scale);
            Ok(dx)
        }
    }

    /// Mean cross-entropy of `[N, C]` logits against their labels, as `[1]`.
    fn cross_entropy(&self, logits: &Tensor, labels: &Labels) -> Result<Tensor> {
        Tensor::new(&[1], vec![cpu::cross_entropy(logits, labels.classes())?])
    }

    /// `(1/N) sum_i weights[i] CE_i` of `[N, C]` logits (`weights` `[N]`), as `[1]`.
    fn weighted_cross_entropy(
        &self,
        logits: &Tensor,
        labels: &Labels,
        weights: &Tensor,
    ) -> Result<Tensor> {
        check_row_weights(weights, labels)?;
        let per_row = cpu::per_sample_cross_entropy(logits, labels.classes())?;
        let loss = per_row
            .iter()
            .zip(weights.data())
            .map(|(l, w)| l * w)
            .sum::<f32>()
            / labels.len().max(1) as f32;
        Tensor::new(&[1], vec![loss])
    }

    /// Gradient of [`Backend::cross_entropy`].
    fn cross_entropy_backward(&self, logits: &Tensor, labels: &Labels) -> Result<Tensor> {
        cpu::cross_entropy_backward(logits, labels.classes())
    }

    /// Each row's cross-entropy against its label, `[N]`.
    fn per_sample_cross_entropy(&self, logits: &Tensor, labels: &Labels) -> Result<Tensor> {
        let losses = cpu::per_sample_cross_entropy(logits, labels.classes())?;
        Tensor::new(&[losses.len()], losses)
    }

    /// How many rows' largest logit is their label's (the last of equal maxima), as `[1]`.
    fn correct_count(&self, logits: &Tensor, labels: &Labels) -> Result<Tensor> {
        let count = cpu::correct_count(logits, labels.classes())?;
        Tensor::new(&[1], vec![count as f32])
    }

    /// `alpha a + beta b`, element by element, for `a` and `b` of one shape.
    fn axpby(&self, a: &Tensor, b: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
        check_same_shape("axpby", a, b)?;
        let values = a
            .data()
            .iter()
            .zip(b.data())
            .map(|(x, y)| alpha * x + beta * y)
            .collect();
        Tensor::new(a.shape(), values)
    }
}

/// Refuses a per-row weight list that is not one weight per label.
pub(crate) fn check_row_weights(weights: &Tensor, labels: &Labels) -> Result<()> {
    if weights.shape() != [labels.len()] {
        return Err(crate::Error::Shape(format!(
            "cross-entropy weights of shape {:?} for {} labels",
            weights.shape(),
            labels.len()
        )));
    }
    Ok(())
}

/// Refuses operands of an element-wise op whose shapes differ.
pub(crate) fn check_same_shape(op: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(crate::Error::Shape(format!(
            "{op}: shapes {:?} and {:?} differ",
            a.shape(),
            b.shape()
        )));
    }
    Ok(())
}

/// The CPU reference backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

impl Backend for Cpu {
    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn activation_backward_with_output(
        &self,
        x: &Tensor,
        y: &Tensor,
        dy: &Tensor,
        f: Activation,
    ) -> Result<Tensor> {
        cpu::activation_backward_with_output(x, y, dy, f)
    }
}

/// The wgpu backend: every op forward and backward as WGSL kernels, its results left on the
/// device until the host reads them.
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
        let y = self.gpu.conv2d(x, weight, spec)?;
        match bias {
            Some(b) => {
                let per_channel = b.clone().reshape(&[b.len(), 1, 1])?;
                self.gpu.binary(&y, &per_channel, false)
            }
            None => Ok(y),
        }
    }

    fn conv2d_backward(
        &self,
        x: &Tensor,
        weight: &Tensor,
        dy: &Tensor,
        spec: &Conv2dSpec,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (dx, dw) = self.gpu.conv2d_backward(x, weight, dy, spec)?;
        Ok((dx, dw, self.gpu.channel_sum(dy)?))
    }

    fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.gpu.matmul(a, b)
    }

    fn matmul_backward_parts(
        &self,
        a: &Tensor,
        b: &Tensor,
        dc: &Tensor,
        want: (bool, bool),
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let da = match want.0 {
            true => Some(self.gpu.matmul_transposed(dc, false, b, true)?),
            false => None,
        };
        let db = match want.1 {
            true => Some(self.gpu.matmul_transposed(a, true, dc, false)?),
            false => None,
        };
        Ok((da, db))
    }

    fn activation(&self, x: &Tensor, f: Activation) -> Result<Tensor> {
        self.gpu.activation(x, f)
    }

    fn activation_backward(&self, x: &Tensor, dy: &Tensor, f: Activation) -> Result<Tensor> {
        self.gpu.activation_backward(x, dy, f)
    }

    fn pool(
        &self,
        x: &Tensor,
        max: bool,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Tensor> {
        self.gpu.pool(x, max, kernel, stride, padding)
    }

    fn pool_backward(
        &self,
        x: &Tensor,
        dy: &Tensor,
        max: bool,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Tensor> {
        self.gpu.pool_backward(x, dy, max, kernel, stride, padding)
    }

    fn global_avg_pool(&self, x: &Tensor) -> Result<Tensor> {
        self.gpu.global_avg_pool(x)
    }

    fn global_avg_pool_backward(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        self.gpu.global_avg_pool_backward(x, dy)
    }

    fn batch_norm_train(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, cpu::BatchNormCache)> {
        self.gpu.batch_norm_train(x, gamma, beta, eps)
    }

    fn batch_norm_train_backward(
        &self,
        cache: &cpu::BatchNormCache,
        gamma: &Tensor,
        dy: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        self.gpu.batch_norm_train_backward(cache, gamma, dy)
    }

    fn batch_norm_inference(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        self.gpu
            .batch_norm_inference(x, gamma, beta, mean, var, eps)
    }

    fn batch_norm_inference_backward(
        &self,
        normalised: &Tensor,
        inv_std: &Tensor,
        gamma: &Tensor,
        dy: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        self.gpu
            .batch_norm_inference_backward(normalised, inv_std, gamma, dy)
    }

    fn binary(&self, a: &Tensor, b: &Tensor, multiply: bool) -> Result<Tensor> {
        self.gpu.binary(a, b, multiply)
    }

    fn binary_backward(
        &self,
        a: &Tensor,
        b: &Tensor,
        dy: &Tensor,
        multiply: bool,
    ) -> Result<(Tensor, Tensor)> {
        self.gpu.binary_backward(a, b, dy, multiply)
    }

    fn slice_axis(&self, x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        self.gpu.slice_axis(x, axis, start, len)
    }

    fn slice_axis_backward(
        &self,
        dy: &Tensor,
        shape: &[usize],
        axis: usize,
        start: usize,
    ) -> Result<Tensor> {
        self.gpu.slice_axis_backward(dy, shape, axis, start)
    }

    fn concat_channels(&self, parts: &[&Tensor]) -> Result<Tensor> {
        self.gpu.concat_channels(parts)
    }

    fn centre_crop(&self, w: &Tensor, size: usize) -> Result<Tensor> {
        self.gpu.centre_crop(w, size)
    }

    fn centre_crop_backward(&self, dy: &Tensor, shape: &[usize]) -> Result<Tensor> {
        self.gpu.centre_crop_backward(dy, shape)
    }

    fn mixed(&self, candidates: &[Option<&Tensor>], weights: &Tensor) -> Result<Tensor> {
        self.gpu.mixed(candidates, weights)
    }

    fn mixed_backward(
        &self,
        candidates: &[Option<&Tensor>],
        weights: &Tensor,
        dy: &Tensor,
    ) -> Result<(Tensor, Vec<Option<Tensor>>)> {
        self.gpu.mixed_backward(candidates, weights, dy)
    }

    fn sum(&self, x: &Tensor) -> Result<Tensor> {
        self.gpu.sum(x)
    }

    fn scale_to(&self, x: &Tensor, shape: &[usize], factor: f32) -> Result<Tensor> {
        self.gpu.scale_to(x, shape, factor)
    }

    fn to_device(&self, t: &Tensor) -> Result<Tensor> {
        self.gpu.upload(t)
    }

    fn zeros(&self, shape: &[usize]) -> Result<Tensor> {
        self.gpu.zeros(shape)
    }

    fn sgd_step(
        &self,
        step: &crate::optim::SgdStep,
        params: &mut [Tensor],
        grads: &[Tensor],
        velocity: &mut [Tensor],
    ) -> Result<()> {
        self.gpu.sgd_step(step, params, grads, velocity)
    }

    fn read_back(&self, tensors: &[&Tensor]) -> Result<()> {
        self.gpu.read_back_all(tensors)
    }

    fn softmax(&self, x: &Tensor, noise: Option<&Tensor>, scale: f32, log: bool) -> Result<Tensor> {
        self.gpu.softmax(x, noise, scale, log)
    }

    fn softmax_backward(&self, y: &Tensor, dy: &Tensor, scale: f32, log: bool) -> Result<Tensor> {
        self.gpu.softmax_backward(y, dy, scale, log)
    }

    fn cross_entropy(&self, logits: &Tensor, labels: &Labels) -> Result<Tensor> {
        self.gpu.cross_entropy(logits, labels)
    }

    fn weighted_cross_entropy(
        &self,
        logits: &Tensor,
        labels: &Labels,
        weights: &Tensor,
    ) -> Result<Tensor> {
        self.gpu.weighted_cross_entropy(logits, labels, weights)
    }

    fn cross_entropy_backward(&self, logits: &Tensor, labels: &Labels) -> Result<Tensor> {
        self.gpu.cross_entropy_backward(logits, labels)
    }

    fn per_sample_cross_entropy(&self, logits: &Tensor, labels: &Labels) -> Result<Tensor> {
        self.gpu.per_sample_cross_entropy(logits, labels)
    }

    fn correct_count(&self, logits: &Tensor, labels: &Labels) -> Result<Tensor> {
        self.gpu.correct_count(logits, labels)
    }

    fn axpby(&self, a: &Tensor, b: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
        self.gpu.axpby(a, b, alpha, beta)
    }

    fn full(&self, shape: &[usize], value: f32) -> Result<Tensor> {
        self.gpu.full(shape, value)
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
