//! The network layers beyond convolution, matmul and activations as WGSL dispatches:
//! pooling, batch norm, broadcast arithmetic, window copies (slice, concat, centre-crop),
//! the mixed op and reductions, and the softmax family. Same contracts and shape errors as
//! the CPU reference in [`crate::cpu`], whose shape checks they share.

use super::{GpuContext, Pass, PipelineKey};
use crate::cpu;
use crate::cpu::layout::{
    around_axis, check_slice_gradient, concat_shape, cropped_shape, sliced_shape,
};
use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::tensor::Tensor;
use crate::wgsl::{
    BroadcastParams, NormParams, PoolParams, ReduceParams, Shader, SoftmaxParams, WindowParams,
};

fn key(shader: Shader, entry: &'static str) -> PipelineKey {
    PipelineKey { shader, entry }
}

/// Workgroups for one 64-wide invocation per value.
fn per_value(len: usize) -> (u32, u32, u32) {
    GpuContext::workgroups_2d(len.div_ceil(64))
}

/// A shape padded on the left to four axes.
fn dims4(shape: &[usize]) -> Result<[usize; 4]> {
    if shape.len() > 4 {
        return Err(Error::Shape(format!(
            "broadcasting supports up to 4 axes, got {shape:?}"
        )));
    }
    let mut dims = [1; 4];
    dims[4 - shape.len()..].copy_from_slice(shape);
    Ok(dims)
}

/// Strides of a tensor of `dims` read at output coordinates (0 along broadcast axes).
fn broadcast_strides(dims: [usize; 4]) -> [u32; 4] {
    let mut strides = [0u32; 4];
    let mut stride = 1;
    for i in (0..4).rev() {
        strides[i] = if dims[i] == 1 { 0 } else { stride as u32 };
        stride *= dims[i];
    }
    strides
}

fn u32s<const N: usize>(values: [usize; N]) -> [u32; N] {
    values.map(|v| v as u32)
}

impl GpuContext {
    fn pool_params(
        x: &Tensor,
        kernel: usize,
        stride: usize,
        padding: usize,
        max: bool,
    ) -> Result<(PoolParams, [usize; 4])> {
        let [n, c, h, w] = x.nchw()?;
        let (oh, ow) = (
            cpu::pool::out_size(h, kernel, stride, padding)?,
            cpu::pool::out_size(w, kernel, stride, padding)?,
        );
        let [n32, c32, h32, w32, oh32, ow32, k32, s32, p32] =
            u32s([n, c, h, w, oh, ow, kernel, stride, padding]);
        Ok((
            PoolParams {
                n: n32,
                c: c32,
                h: h32,
                w: w32,
                oh: oh32,
                ow: ow32,
                kernel: k32,
                stride: s32,
                padding: p32,
                is_max: u32::from(max),
                pad: [0; 2],
            },
            [n, c, oh, ow],
        ))
    }

    /// Average (padding not counted) or max pooling.
    pub fn pool(
        &self,
        x: &Tensor,
        max: bool,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Tensor> {
        let (params, shape) = Self::pool_params(x, kernel, stride, padding, max)?;
        let len = shape.iter().product();
        let inputs = [(1, &self.input(x))];
        self.launch(
            key(Shader::Pool, "forward"),
            &params,
            &inputs,
            per_value(len),
            &shape,
        )
    }

    /// Gradient of [`GpuContext::pool`].
    pub fn pool_backward(
        &self,
        x: &Tensor,
        dy: &Tensor,
        max: bool,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Tensor> {
        let (params, shape) = Self::pool_params(x, kernel, stride, padding, max)?;
        if dy.shape() != shape {
            return Err(Error::Shape(format!(
                "pool backward: dy {:?} for an output of {shape:?}",
                dy.shape()
            )));
        }
        let inputs = [(1, &self.input(x)), (2, &self.input(dy))];
        let len = x.len();
        self.launch(
            key(Shader::Pool, "backward"),
            &params,
            &inputs,
            per_value(len),
            x.shape(),
        )
    }

    /// Global average pooling to `[N, C, 1, 1]`.
    pub fn global_avg_pool(&self, x: &Tensor) -> Result<Tensor> {
        let (params, _) = Self::pool_params(x, 1, 1, 0, false)?;
        let [n, c, _, _] = x.nchw()?;
        let inputs = [(1, &self.input(x))];
        self.launch(
            key(Shader::Pool, "global_forward"),
            &params,
            &inputs,
            per_value(n * c),
            &[n, c, 1, 1],
        )
    }

    /// Gradient of [`GpuContext::global_avg_pool`].
    pub fn global_avg_pool_backward(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        let (params, _) = Self::pool_params(x, 1, 1, 0, false)?;
        let [n, c, _, _] = x.nchw()?;
        if dy.len() != n * c {
            return Err(Error::Shape(format!(
                "global pool backward: dy {:?} for {:?}",
                dy.shape(),
                x.shape()
            )));
        }
        let inputs = [(2, &self.input(dy))];
        self.launch(
            key(Shader::Pool, "global_backward"),
            &params,
            &inputs,
            per_value(x.len()),
            x.shape(),
        )
    }

    fn norm_params(x: &Tensor, training: bool, eps: f32) -> Result<NormParams> {
        let [n, c, h, w] = x.nchw()?;
        Ok(NormParams {
            n: n as u32,
            c: c as u32,
            plane: (h * w) as u32,
            training: u32::from(training),
            eps,
            pad: [0; 3],
        })
    }

    /// The channels of `x`, checked against the lengths of its per-channel parameters.
    fn check_channels(x: &Tensor, per_channel: &[usize]) -> Result<usize> {
        let c = x.nchw()?[1];
        if per_channel.iter().any(|&p| p != c) {
            return Err(Error::Shape(format!(
                "batch norm parameters of {per_channel:?} values for an input of {c} channels"
            )));
        }
        Ok(c)
    }

    /// One buffer holding `parts` (tensors of `c` values each) one after another, copied on
    /// the device; `zeros` values of zeros before them.
    fn per_channel_block(&self, zeros: usize, parts: &[&Tensor], c: usize) -> wgpu::Buffer {
        let block = self.output(zeros + parts.len() * c);
        let inputs: Vec<wgpu::Buffer> = parts.iter().map(|t| self.input(t)).collect();
        let bytes = (c * 4) as u64;
        if bytes > 0 {
            self.with_encoder(|e| {
                for (i, part) in inputs.iter().enumerate() {
                    e.copy_buffer_to_buffer(
                        part,
                        0,
                        &block,
                        (zeros * 4) as u64 + i as u64 * bytes,
                        bytes,
                    );
                }
            });
        }
        block
    }

    /// The `[c]` slots `slots` of a per-channel `block` (slot `i`: values `i*c..(i+1)*c`),
    /// each copied on the device into a tensor of its own.
    fn channel_slots(
        &self,
        block: &wgpu::Buffer,
        c: usize,
        slots: &[usize],
    ) -> Result<Vec<Tensor>> {
        let parts: Vec<wgpu::Buffer> = slots.iter().map(|_| self.output(c)).collect();
        let bytes = (c * 4) as u64;
        if bytes > 0 {
            self.with_encoder(|e| {
                for (&slot, part) in slots.iter().zip(&parts) {
                    e.copy_buffer_to_buffer(block, slot as u64 * bytes, part, 0, bytes);
                }
            });
        }
        parts.into_iter().map(|b| self.resident(&[c], b)).collect()
    }

    /// Records `(x - mean) * inv_std` into `normalised` from per-channel `stats` (mean,
    /// inv_std), then `gamma * normalised + beta` into `y` from `affine` (gamma, beta).
    fn normalise_passes<'a>(
        params: &'a wgpu::Buffer,
        x: &'a wgpu::Buffer,
        stats: &'a wgpu::Buffer,
        affine: &'a wgpu::Buffer,
        normalised: &'a wgpu::Buffer,
        y: &'a wgpu::Buffer,
        len: usize,
    ) -> [Pass<'a>; 2] {
        [
            Pass {
                key: key(Shader::BatchNorm, "normalise"),
                bindings: vec![(0, params), (1, x), (2, stats), (4, normalised)],
                workgroups: per_value(len),
            },
            Pass {
                key: key(Shader::BatchNorm, "scale_shift"),
                bindings: vec![(0, params), (2, affine), (3, normalised), (4, y)],
                workgroups: per_value(len),
            },
        ]
    }

    /// Training-mode batch norm: the output and what its backward needs.
    pub fn batch_norm_train(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, cpu::BatchNormCache)> {
        let c = Self::check_channels(x, &[gamma.len(), beta.len()])?;
        let params = self.uniform(&Self::norm_params(x, true, eps)?);
        let (xb, ab) = (self.input(x), self.per_channel_block(0, &[gamma, beta], c));
        let (stats, normalised, y) = (
            self.output(3 * c),
            self.output(x.len()),
            self.output(x.len()),
        );
        let mut passes = vec![Pass {
            key: key(Shader::BatchNorm, "stats"),
            bindings: vec![(0, &params), (1, &xb), (4, &stats)],
            workgroups: (c as u32, 1, 1),
        }];
        passes.extend(Self::normalise_passes(
            &params,
            &xb,
            &stats,
            &ab,
            &normalised,
            &y,
            x.len(),
        ));
        self.record(&passes);
        let y = self.resident(x.shape(), y)?;
        let normalised = self.resident(x.shape(), normalised)?;
        // `stats` holds mean, inv_std and var one after another: split on the device.
        let [mean, inv_std, var]: [Tensor; 3] = self
            .channel_slots(&stats, c, &[0, 1, 2])?
            .try_into()
            .expect("three slots");
        Ok((
            y,
            cpu::BatchNormCache {
                normalised,
                mean,
                inv_std,
                var,
            },
        ))
    }

    /// `(dx, dgamma, dbeta)` in training or inference mode from the normalised input,
    /// `1 / sqrt(var + eps)` and `gamma`.
    fn batch_norm_backward(
        &self,
        normalised: &Tensor,
        inv_std: &Tensor,
        gamma: &Tensor,
        dy: &Tensor,
        training: bool,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let c = Self::check_channels(dy, &[gamma.len(), inv_std.len()])?;
        if normalised.shape() != dy.shape() {
            return Err(Error::Shape(format!(
                "batch norm backward: dy {:?} for {:?}",
                dy.shape(),
                normalised.shape()
            )));
        }
        let params = self.uniform(&Self::norm_params(dy, training, 0.0)?);
        // [dgamma, dbeta] written by the first pass, [gamma, inv_std] behind them.
        let (dyb, nb, sums) = (
            self.input(dy),
            self.input(normalised),
            self.per_channel_block(2 * c, &[gamma, inv_std], c),
        );
        let dx = self.output(dy.len());
        let passes = [
            Pass {
                key: key(Shader::BatchNorm, "sums"),
                bindings: vec![(0, &params), (1, &dyb), (3, &nb), (4, &sums)],
                workgroups: (c as u32, 1, 1),
            },
            Pass {
                key: key(Shader::BatchNorm, "backward_input"),
                bindings: vec![(0, &params), (1, &dyb), (2, &sums), (3, &nb), (4, &dx)],
                workgroups: per_value(dy.len()),
            },
        ];
        self.record(&passes);
        let dx = self.resident(dy.shape(), dx)?;
        // The first 2c values of `sums`: dgamma, then dbeta.
        let [dgamma, dbeta]: [Tensor; 2] = self
            .channel_slots(&sums, c, &[0, 1])?
            .try_into()
            .expect("two slots");
        Ok((dx, dgamma, dbeta))
    }

    /// `(dx, dgamma, dbeta)` of [`GpuContext::batch_norm_train`].
    pub fn batch_norm_train_backward(
        &self,
        cache: &cpu::BatchNormCache,
        gamma: &Tensor,
        dy: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        self.batch_norm_backward(&cache.normalised, &cache.inv_std, gamma, dy, true)
    }

    /// Inference-mode batch norm with fixed statistics: `(y, normalised, inv_std)`, all on
    /// the device.
    pub fn batch_norm_inference(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let c = Self::check_channels(x, &[gamma.len(), beta.len(), mean.len(), var.len()])?;
        let params = self.uniform(&Self::norm_params(x, false, eps)?);
        let (xb, fixed, ab) = (
            self.input(x),
            self.per_channel_block(0, &[mean, var], c),
            self.per_channel_block(0, &[gamma, beta], c),
        );
        let (stats, normalised, y) = (
            self.output(2 * c),
            self.output(x.len()),
            self.output(x.len()),
        );
        let mut passes = vec![Pass {
            key: key(Shader::BatchNorm, "fixed_stats"),
            bindings: vec![(0, &params), (2, &fixed), (4, &stats)],
            workgroups: per_value(c),
        }];
        passes.extend(Self::normalise_passes(
            &params,
            &xb,
            &stats,
            &ab,
            &normalised,
            &y,
            x.len(),
        ));
        self.record(&passes);
        // `stats` holds mean, then inv_std: the backward reads inv_std alone.
        let inv_std = self.channel_slots(&stats, c, &[1])?.remove(0);
        Ok((
            self.resident(x.shape(), y)?,
            self.resident(x.shape(), normalised)?,
            inv_std,
        ))
    }

    /// `(dx, dgamma, dbeta)` of [`GpuContext::batch_norm_inference`].
    pub fn batch_norm_inference_backward(
        &self,
        normalised: &Tensor,
        inv_std: &Tensor,
        gamma: &Tensor,
        dy: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        self.batch_norm_backward(normalised, inv_std, gamma, dy, false)
    }

    /// `a + b` (`multiply` false) or `a * b` with broadcasting.
    pub fn binary(&self, a: &Tensor, b: &Tensor, multiply: bool) -> Result<Tensor> {
        let shape = cpu::broadcast_shape(a.shape(), b.shape())?;
        let len: usize = shape.iter().product();
        let params = BroadcastParams {
            out_dims: u32s(dims4(&shape)?),
            target_dims: [1; 4],
            strides_a: broadcast_strides(dims4(a.shape())?),
            strides_b: broadcast_strides(dims4(b.shape())?),
            op: u32::from(multiply),
            len: len as u32,
            factor: 0.0,
            factor_b: 0.0,
        };
        let inputs = [(1, &self.input(a)), (2, &self.input(b))];
        self.launch(
            key(Shader::Broadcast, "forward"),
            &params,
            &inputs,
            per_value(len),
            &shape,
        )
    }

    /// `alpha a + beta b` for `a` and `b` of one shape.
    pub fn axpby(&self, a: &Tensor, b: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
        crate::backend::check_same_shape("axpby", a, b)?;
        let len = a.len();
        let strides = broadcast_strides(dims4(a.shape())?);
        let params = BroadcastParams {
            out_dims: u32s(dims4(a.shape())?),
            target_dims: [1; 4],
            strides_a: strides,
            strides_b: strides,
            op: 3,
            len: len as u32,
            factor: alpha,
            factor_b: beta,
        };
        let inputs = [(1, &self.input(a)), (2, &self.input(b))];
        self.launch(
            key(Shader::Broadcast, "forward"),
            &params,
            &inputs,
            per_value(len),
            a.shape(),
        )
    }

    /// `value` in every element of a fresh tensor of `shape` (written on the device, nothing
    /// uploaded).
    pub fn full(&self, shape: &[usize], value: f32) -> Result<Tensor> {
        let len: usize = shape.iter().product();
        let params = BroadcastParams {
            out_dims: u32s(dims4(&[len])?),
            target_dims: [1; 4],
            strides_a: [0; 4],
            strides_b: [0; 4],
            op: 4,
            len: len as u32,
            factor: value,
            factor_b: 0.0,
        };
        let dummy = self.dummy();
        let inputs = [(1, &dummy), (2, &dummy)];
        self.launch(
            key(Shader::Broadcast, "forward"),
            &params,
            &inputs,
            per_value(len),
            shape,
        )
    }

    /// `x` broadcast to `shape`, times `factor`.
    pub fn scale_to(&self, x: &Tensor, shape: &[usize], factor: f32) -> Result<Tensor> {
        let out = cpu::broadcast_shape(x.shape(), shape)?;
        if out != shape {
            return Err(Error::Shape(format!(
                "{:?} does not broadcast to {shape:?}",
                x.shape()
            )));
        }
        let len: usize = shape.iter().product();
        let params = BroadcastParams {
            out_dims: u32s(dims4(shape)?),
            target_dims: [1; 4],
            strides_a: broadcast_strides(dims4(x.shape())?),
            strides_b: [0; 4],
            op: 2,
            len: len as u32,
            factor,
            factor_b: 0.0,
        };
        let inputs = [(1, &self.input(x)), (2, &self.dummy())];
        self.launch(
            key(Shader::Broadcast, "forward"),
            &params,
            &inputs,
            per_value(len),
            shape,
        )
    }

    /// `(da, db)` of [`GpuContext::binary`].
    pub fn binary_backward(
        &self,
        a: &Tensor,
        b: &Tensor,
        dy: &Tensor,
        multiply: bool,
    ) -> Result<(Tensor, Tensor)> {
        let shape = cpu::broadcast_shape(a.shape(), b.shape())?;
        if dy.shape() != shape.as_slice() {
            return Err(Error::Shape(format!(
                "broadcast backward: dy {:?} for an output of {shape:?}",
                dy.shape()
            )));
        }
        let out_dims = u32s(dims4(&shape)?);
        let dyb = self.input(dy);
        let gradient = |target: &Tensor, other: &Tensor| -> Result<Tensor> {
            let params = BroadcastParams {
                out_dims,
                target_dims: u32s(dims4(target.shape())?),
                strides_a: [0; 4],
                strides_b: broadcast_strides(dims4(other.shape())?),
                op: u32::from(multiply),
                len: target.len() as u32,
                factor: 0.0,
                factor_b: 0.0,
            };
            let inputs = [(1, &dyb), (2, &self.input(other))];
            let len = target.len();
            self.launch(
                key(Shader::Broadcast, "backward"),
                &params,
                &inputs,
                per_value(len),
                target.shape(),
            )
        };
        Ok((gradient(a, b)?, gradient(b, a)?))
    }

    /// Copies `count` indices of an axis viewed as `[outer, length, inner]` from
    /// `src[.., src_start..]` (source length `src_length`) to a fresh zeroed destination
    /// of `shape` (`dst_length` along the axis) at `dst_start`.
    fn window(
        &self,
        src: &Tensor,
        (outer, inner): (usize, usize),
        (src_length, src_start): (usize, usize),
        (dst_length, dst_start): (usize, usize),
        count: usize,
        shape: &[usize],
    ) -> Result<Tensor> {
        let params = Self::window_params(
            outer,
            inner,
            (src_length, src_start),
            (dst_length, dst_start),
            count,
        );
        debug_assert_eq!(shape.iter().product::<usize>(), outer * dst_length * inner);
        let inputs = [(1, &self.input(src))];
        self.launch(
            key(Shader::Window, "copy"),
            &params,
            &inputs,
            per_value(outer * count * inner),
            shape,
        )
    }

    fn window_params(
        outer: usize,
        inner: usize,
        (src_length, src_start): (usize, usize),
        (dst_length, dst_start): (usize, usize),
        count: usize,
    ) -> WindowParams {
        let [
            outer,
            inner,
            src_length,
            dst_length,
            src_start,
            dst_start,
            count,
        ] = u32s([
            outer, inner, src_length, dst_length, src_start, dst_start, count,
        ]);
        WindowParams {
            outer,
            inner,
            src_length,
            dst_length,
            src_start,
            dst_start,
            count,
            pad: 0,
        }
    }

    /// Indices `start..start + len` along `axis` (see [`cpu::slice_axis`]).
    pub fn slice_axis(&self, x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        let shape = sliced_shape(x.shape(), axis, start, len)?;
        let (outer, size, inner) = around_axis(x.shape(), axis)?;
        self.window(x, (outer, inner), (size, start), (len, 0), len, &shape)
    }

    /// The gradient of [`GpuContext::slice_axis`]: `dy` placed into zeros of `shape`.
    pub fn slice_axis_backward(
        &self,
        dy: &Tensor,
        shape: &[usize],
        axis: usize,
        start: usize,
    ) -> Result<Tensor> {
        let (outer, size, len, inner) = check_slice_gradient(dy, shape, axis, start)?;
        self.window(dy, (outer, inner), (len, 0), (size, start), len, shape)
    }

    /// Concatenation along axis 1: one window copy per part into one destination, in one
    /// submission.
    pub fn concat_channels(&self, parts: &[&Tensor]) -> Result<Tensor> {
        let shape = concat_shape(parts)?;
        let (outer, total, inner) = around_axis(&shape, 1)?;
        let len: usize = shape.iter().product();
        let dst = self.output(len);
        let mut offset = 0;
        let mut uploads = Vec::with_capacity(parts.len());
        for part in parts {
            let c = part.shape()[1];
            let params = Self::window_params(outer, inner, (c, 0), (total, offset), c);
            uploads.push((self.uniform(&params), self.input(part), part.len()));
            offset += c;
        }
        let passes: Vec<Pass> = uploads
            .iter()
            .map(|(params, src, count)| Pass {
                key: key(Shader::Window, "copy"),
                bindings: vec![(0, params), (1, src), (3, &dst)],
                workgroups: per_value(*count),
            })
            .collect();
        self.record(&passes);
        self.resident(&shape, dst)
    }

    /// The centre `size x size` window of `[..., K, K]` kernels: a slice of the rows,
    /// then of the columns.
    pub fn centre_crop(&self, w: &Tensor, size: usize) -> Result<Tensor> {
        cropped_shape(w.shape(), size)?;
        let rank = w.shape().len();
        let offset = (w.shape()[rank - 1] - size) / 2;
        let rows = self.slice_axis(w, rank - 2, offset, size)?;
        self.slice_axis(&rows, rank - 1, offset, size)
    }

    /// The gradient of [`GpuContext::centre_crop`].
    pub fn centre_crop_backward(&self, dy: &Tensor, shape: &[usize]) -> Result<Tensor> {
        let rank = shape.len();
        let size = dy.shape().last().copied().unwrap_or(0);
        if cropped_shape(shape, size)? != dy.shape() {
            return Err(Error::Shape(format!(
                "centre crop backward: {:?} into {shape:?}",
                dy.shape()
            )));
        }
        let offset = (shape[rank - 1] - size) / 2;
        let mut rows_shape = shape.to_vec();
        rows_shape[rank - 2] = size;
        let rows = self.slice_axis_backward(dy, &rows_shape, rank - 1, offset)?;
        self.slice_axis_backward(&rows, shape, rank - 2, offset)
    }

    fn reduce_params(len: usize, segments: usize, ones: bool) -> ReduceParams {
        ReduceParams {
            len: len as u32,
            segments: segments as u32,
            ones: u32::from(ones),
            scale: 1.0,
            batches: 1,
            pad: [0; 3],
        }
    }

    /// `scale` times the sum of all values, as a `[1]` tensor on the device.
    fn scaled_sum(&self, x: &Tensor, scale: f32) -> Result<Tensor> {
        let params = ReduceParams {
            scale,
            ..Self::reduce_params(x.len(), 1, true)
        };
        let inputs = [(1, &self.input(x)), (2, &self.dummy())];
        self.launch(
            key(Shader::Reduce, "segment_dot"),
            &params,
            &inputs,
            (1, 1, 1),
            &[1],
        )
    }

    /// Per-channel sums of an NCHW tensor (a convolution's bias gradient): `[C]`.
    pub fn channel_sum(&self, x: &Tensor) -> Result<Tensor> {
        let [n, c, h, w] = x.nchw()?;
        let params = ReduceParams {
            batches: n as u32,
            ..Self::reduce_params(h * w, c, true)
        };
        let inputs = [(1, &self.input(x))];
        self.launch(
            key(Shader::Reduce, "channel_sum"),
            &params,
            &inputs,
            (c.max(1) as u32, 1, 1),
            &[c],
        )
    }

    /// The common shape of a mixed op's computed candidates, checked against `weights`
    /// (its zeros for skipped candidates only when the weights are on the host: reading
    /// a device tensor back to check would cost a round trip).
    fn mixed_shape(candidates: &[Option<&Tensor>], weights: &Tensor) -> Result<Vec<usize>> {
        if weights.is_on_device() {
            // Zeros of the weights' length: the count and shape checks without the values.
            cpu::mixed::checked_shape(candidates, &vec![0.0; weights.len()])
        } else {
            cpu::mixed::checked_shape(candidates, weights.data())
        }
    }

    /// The computed candidates stacked one after another in one buffer, and their weights
    /// gathered in candidate order: device copies, nothing read back.
    fn stack_computed(
        &self,
        candidates: &[Option<&Tensor>],
        weights: &Tensor,
        len: usize,
    ) -> (wgpu::Buffer, wgpu::Buffer, usize) {
        let computed: Vec<usize> = (0..candidates.len())
            .filter(|&k| candidates[k].is_some())
            .collect();
        let stacked = self.output(computed.len() * len);
        let gathered = self.output(computed.len());
        let inputs: Vec<wgpu::Buffer> = computed
            .iter()
            .map(|&k| self.input(candidates[k].expect("computed")))
            .collect();
        let wb = self.input(weights);
        let bytes = (len * 4) as u64;
        self.with_encoder(|e| {
            for (slot, (&k, input)) in computed.iter().zip(&inputs).enumerate() {
                if bytes > 0 {
                    e.copy_buffer_to_buffer(input, 0, &stacked, slot as u64 * bytes, bytes);
                }
                e.copy_buffer_to_buffer(&wb, k as u64 * 4, &gathered, slot as u64 * 4, 4);
            }
        });
        (stacked, gathered, computed.len())
    }

    /// The mixed op (see [`cpu::mixed_op`]): only the computed candidates are summed.
    pub fn mixed(&self, candidates: &[Option<&Tensor>], weights: &Tensor) -> Result<Tensor> {
        let shape = Self::mixed_shape(candidates, weights)?;
        let len: usize = shape.iter().product();
        let (stacked, gathered, k) = self.stack_computed(candidates, weights, len);
        let params = Self::reduce_params(len, k, false);
        let inputs = [(1, &stacked), (2, &gathered)];
        self.launch(
            key(Shader::Reduce, "weighted_sum"),
            &params,
            &inputs,
            per_value(len),
            &shape,
        )
    }

    /// `(dweights, dcandidates)` of [`GpuContext::mixed`], left on the device.
    pub fn mixed_backward(
        &self,
        candidates: &[Option<&Tensor>],
        weights: &Tensor,
        dy: &Tensor,
    ) -> Result<(Tensor, Vec<Option<Tensor>>)> {
        let shape = Self::mixed_shape(candidates, weights)?;
        if dy.shape() != shape.as_slice() {
            return Err(Error::Shape(format!(
                "mixed op backward: dy {:?} for candidates of {shape:?}",
                dy.shape()
            )));
        }
        let len = dy.len();
        let (sb, wb, k) = self.stack_computed(candidates, weights, len);
        let params = self.uniform(&Self::reduce_params(len, k, false));
        let dyb = self.input(dy);
        let (dw, dc) = (self.output(k), self.output(k * len));
        let passes = [
            Pass {
                key: key(Shader::Reduce, "segment_dot"),
                bindings: vec![(0, &params), (1, &sb), (2, &dyb), (3, &dw)],
                workgroups: (k as u32, 1, 1),
            },
            Pass {
                key: key(Shader::Reduce, "spread"),
                bindings: vec![(0, &params), (1, &dyb), (2, &wb), (3, &dc)],
                workgroups: per_value(k * len),
            },
        ];
        self.record(&passes);
        // Scatter: one weight gradient per candidate (0 for skipped ones), one candidate
        // gradient per computed candidate.
        let dweights = self.output(candidates.len());
        let mut grads = Vec::with_capacity(candidates.len());
        let mut slot = 0u64;
        let bytes = (len * 4) as u64;
        for candidate in candidates {
            if candidate.is_some() {
                let grad = self.output(len);
                self.with_encoder(|e| {
                    e.copy_buffer_to_buffer(&dw, slot * 4, &dweights, grads.len() as u64 * 4, 4);
                    if bytes > 0 {
                        e.copy_buffer_to_buffer(&dc, slot * bytes, &grad, 0, bytes);
                    }
                });
                grads.push(Some(self.resident(&shape, grad)?));
                slot += 1;
            } else {
                grads.push(None);
            }
        }
        Ok((self.resident(weights.shape(), dweights)?, grads))
    }

    /// The sum of all values, as a `[1]` tensor on the device.
    pub fn sum(&self, x: &Tensor) -> Result<Tensor> {
        self.scaled_sum(x, 1.0)
    }

    fn softmax_params(x: &Tensor, log: bool, noisy: bool, scale: f32) -> Result<SoftmaxParams> {
        let cols = x
            .shape()
            .last()
            .copied()
            .filter(|c| *c > 0)
            .ok_or_else(|| {
                Error::Shape(format!(
                    "a softmax needs a non-empty last axis, got {:?}",
                    x.shape()
                ))
            })?;
        Ok(SoftmaxParams {
            rows: (x.len() / cols) as u32,
            cols: cols as u32,
            log: u32::from(log),
            noisy: u32::from(noisy),
            scale,
            pad: [0; 3],
        })
    }

    /// Softmax (or log-softmax) along the last axis of `(x + noise) * scale`.
    pub fn softmax(
        &self,
        x: &Tensor,
        noise: Option<&Tensor>,
        scale: f32,
        log: bool,
    ) -> Result<Tensor> {
        if let Some(noise) = noise.filter(|n| n.shape() != x.shape()) {
            return Err(Error::Shape(format!(
                "softmax noise {:?} for logits {:?}",
                noise.shape(),
                x.shape()
            )));
        }
        let params = Self::softmax_params(x, log, noise.is_some(), scale)?;
        let noise = noise.map_or_else(|| self.dummy(), |n| self.input(n));
        let inputs = [(1, &self.input(x)), (2, &noise)];
        let rows = params.rows as usize;
        self.launch(
            key(Shader::Softmax, "forward"),
            &params,
            &inputs,
            per_value(rows),
            x.shape(),
        )
    }

    /// Gradient through [`GpuContext::softmax`] from its output `y`: times `scale` for a
    /// softmax (1/tau for Gumbel-softmax).
    pub fn softmax_backward(
        &self,
        y: &Tensor,
        dy: &Tensor,
        scale: f32,
        log: bool,
    ) -> Result<Tensor> {
        if y.shape() != dy.shape() {
            return Err(Error::Shape(format!(
                "softmax backward: {:?} vs {:?}",
                y.shape(),
                dy.shape()
            )));
        }
        let params = Self::softmax_params(y, log, false, scale)?;
        let inputs = [(1, &self.input(y)), (2, &self.input(dy))];
        self.launch(
            key(Shader::Softmax, "backward"),
            &params,
            &inputs,
            per_value(y.len()),
            y.shape(),
        )
    }

    /// One cross-entropy entry point over `[N, C]` logits and labels, output of `shape`.
    fn cross_entropy_pass(
        &self,
        logits: &Tensor,
        labels: &Labels,
        entry: &'static str,
        shape: &[usize],
    ) -> Result<Tensor> {
        let &[n, c] = logits.shape() else {
            return Err(Error::Shape(format!(
                "cross-entropy needs [N, C], got {:?}",
                logits.shape()
            )));
        };
        cpu::unary::check_labels(labels.classes(), n, c)?;
        let params = Self::softmax_params(logits, true, false, 1.0)?;
        // The entry points read `aux` through the shared input helper: bound, never noisy.
        let inputs = [
            (1, &self.input(logits)),
            (2, &self.dummy()),
            (4, &self.input(labels.values())),
        ];
        let len = shape.iter().product();
        self.launch(
            key(Shader::Softmax, entry),
            &params,
            &inputs,
            per_value(len),
            shape,
        )
    }

    /// Each row's cross-entropy against its label, `[N]`, on the device.
    pub fn per_sample_cross_entropy(&self, logits: &Tensor, labels: &Labels) -> Result<Tensor> {
        self.cross_entropy_pass(logits, labels, "cross_entropy", &[labels.len()])
    }

    /// Mean cross-entropy of `[N, C]` logits, as a `[1]` tensor on the device.
    pub fn cross_entropy(&self, logits: &Tensor, labels: &Labels) -> Result<Tensor> {
        let losses = self.per_sample_cross_entropy(logits, labels)?;
        self.scaled_sum(&losses, 1.0 / labels.len().max(1) as f32)
    }

    /// `(1/N) sum_i weights[i] CE_i`, as a `[1]` tensor on the device.
    pub fn weighted_cross_entropy(
        &self,
        logits: &Tensor,
        labels: &Labels,
        weights: &Tensor,
    ) -> Result<Tensor> {
        crate::backend::check_row_weights(weights, labels)?;
        let losses = self.per_sample_cross_entropy(logits, labels)?;
        let weighted = self.binary(&losses, weights, true)?;
        self.scaled_sum(&weighted, 1.0 / labels.len().max(1) as f32)
    }

    /// Gradient of the mean cross-entropy.
    pub fn cross_entropy_backward(&self, logits: &Tensor, labels: &Labels) -> Result<Tensor> {
        self.cross_entropy_pass(logits, labels, "cross_entropy_backward", logits.shape())
    }

    /// How many rows' largest logit is their label's, as a `[1]` tensor on the device.
    pub fn correct_count(&self, logits: &Tensor, labels: &Labels) -> Result<Tensor> {
        let hits = self.cross_entropy_pass(logits, labels, "hits", &[labels.len()])?;
        self.scaled_sum(&hits, 1.0)
    }
}
