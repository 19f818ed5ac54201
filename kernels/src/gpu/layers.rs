//! The network layers beyond convolution, matmul and activations as WGSL dispatches:
//! pooling, batch norm, broadcast arithmetic, window copies (slice, concat, centre-crop),
//! the mixed op and reductions, and the softmax family. Same contracts and shape errors as
//! the CPU reference in [`crate::cpu`].

use super::{GpuContext, Pass, PipelineKey};
use crate::cpu;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::wgsl::{
    BroadcastParams, NormParams, PoolParams, ReduceParams, Shader, SoftmaxParams, WindowParams,
};

fn key(shader: Shader, entry: &'static str) -> PipelineKey {
    PipelineKey { shader, entry }
}

/// Workgroups for one 64-wide invocation per value.
fn per_value(len: usize) -> (u32, u32, u32) {
    let (x, y) = GpuContext::workgroups_2d(len.div_ceil(64));
    (x, y, 1)
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
        let (pb, xb, out) = (
            self.uniform(&params),
            self.storage(x.data()),
            self.output(len),
        );
        let values = self.run3(
            key(Shader::Pool, "forward"),
            &[(0, &pb), (1, &xb), (3, &out)],
            per_value(len),
            &out,
            len,
        )?;
        Tensor::new(&shape, values)
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
        let len = x.len();
        let (pb, xb, dyb, out) = (
            self.uniform(&params),
            self.storage(x.data()),
            self.storage(dy.data()),
            self.output(len),
        );
        let values = self.run3(
            key(Shader::Pool, "backward"),
            &[(0, &pb), (1, &xb), (2, &dyb), (3, &out)],
            per_value(len),
            &out,
            len,
        )?;
        Tensor::new(x.shape(), values)
    }

    /// Global average pooling to `[N, C, 1, 1]`.
    pub fn global_avg_pool(&self, x: &Tensor) -> Result<Tensor> {
        let (params, _) = Self::pool_params(x, 1, 1, 0, false)?;
        let [n, c, _, _] = x.nchw()?;
        let (pb, xb, out) = (
            self.uniform(&params),
            self.storage(x.data()),
            self.output(n * c),
        );
        let values = self.run3(
            key(Shader::Pool, "global_forward"),
            &[(0, &pb), (1, &xb), (3, &out)],
            per_value(n * c),
            &out,
            n * c,
        )?;
        Tensor::new(&[n, c, 1, 1], values)
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
        let (pb, dyb, out) = (
            self.uniform(&params),
            self.storage(dy.data()),
            self.output(x.len()),
        );
        let values = self.run3(
            key(Shader::Pool, "global_backward"),
            &[(0, &pb), (2, &dyb), (3, &out)],
            per_value(x.len()),
            &out,
            x.len(),
        )?;
        Tensor::new(x.shape(), values)
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

    fn check_channels(x: &Tensor, per_channel: &[&[f32]]) -> Result<usize> {
        let c = x.nchw()?[1];
        if per_channel.iter().any(|p| p.len() != c) {
            return Err(Error::Shape(format!(
                "batch norm parameters of {:?} values for an input of {c} channels",
                per_channel.iter().map(|p| p.len()).collect::<Vec<_>>()
            )));
        }
        Ok(c)
    }

    /// Training-mode batch norm: the output and what its backward needs.
    pub fn batch_norm_train(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, cpu::BatchNormCache)> {
        let c = Self::check_channels(x, &[gamma.data(), beta.data()])?;
        let params = self.uniform(&Self::norm_params(x, true, eps)?);
        let affine: Vec<f32> = gamma.data().iter().chain(beta.data()).copied().collect();
        let (xb, ab) = (self.storage(x.data()), self.storage(&affine));
        let (stats, normalised, y) = (
            self.output(3 * c),
            self.output(x.len()),
            self.output(x.len()),
        );
        let passes = [
            Pass {
                key: key(Shader::BatchNorm, "stats"),
                bindings: vec![(0, &params), (1, &xb), (4, &stats)],
                workgroups: (c as u32, 1, 1),
            },
            Pass {
                key: key(Shader::BatchNorm, "normalise"),
                bindings: vec![(0, &params), (1, &xb), (2, &stats), (4, &normalised)],
                workgroups: per_value(x.len()),
            },
            Pass {
                key: key(Shader::BatchNorm, "scale_shift"),
                bindings: vec![(0, &params), (2, &ab), (3, &normalised), (4, &y)],
                workgroups: per_value(x.len()),
            },
        ];
        let mut out = self.execute(
            &passes,
            &[(&stats, 3 * c), (&normalised, x.len()), (&y, x.len())],
        )?;
        let y = Tensor::new(x.shape(), out.pop().expect("three outputs"))?;
        let normalised = Tensor::new(x.shape(), out.pop().expect("three outputs"))?;
        let stats = out.pop().expect("three outputs");
        Ok((
            y,
            cpu::BatchNormCache {
                normalised,
                mean: stats[..c].to_vec(),
                inv_std: stats[c..2 * c].to_vec(),
                var: stats[2 * c..].to_vec(),
            },
        ))
    }

    /// `(dx, dgamma, dbeta)` in training or inference mode from the normalised input,
    /// `1 / sqrt(var + eps)` and `gamma`.
    fn batch_norm_backward(
        &self,
        normalised: &Tensor,
        inv_std: &[f32],
        gamma: &Tensor,
        dy: &Tensor,
        training: bool,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let c = Self::check_channels(dy, &[gamma.data(), inv_std])?;
        if normalised.shape() != dy.shape() {
            return Err(Error::Shape(format!(
                "batch norm backward: dy {:?} for {:?}",
                dy.shape(),
                normalised.shape()
            )));
        }
        let params = self.uniform(&Self::norm_params(dy, training, 0.0)?);
        // [dgamma, dbeta] written by the first pass, [gamma, inv_std] uploaded behind them.
        let per_channel: Vec<f32> = std::iter::repeat_n(0.0, 2 * c)
            .chain(gamma.data().iter().copied())
            .chain(inv_std.iter().copied())
            .collect();
        let (dyb, nb, sums) = (
            self.storage(dy.data()),
            self.storage(normalised.data()),
            self.storage(&per_channel),
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
        let mut out = self.execute(&passes, &[(&sums, 2 * c), (&dx, dy.len())])?;
        let dx = Tensor::new(dy.shape(), out.pop().expect("two outputs"))?;
        let sums = out.pop().expect("two outputs");
        Ok((
            dx,
            Tensor::new(&[c], sums[..c].to_vec())?,
            Tensor::new(&[c], sums[c..].to_vec())?,
        ))
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

    /// Inference-mode batch norm with fixed statistics: `(y, normalised, inv_std)`.
    pub fn batch_norm_inference(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        mean: &[f32],
        var: &[f32],
        eps: f32,
    ) -> Result<(Tensor, Tensor, Vec<f32>)> {
        Self::check_channels(x, &[gamma.data(), beta.data(), mean, var])?;
        let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        let params = self.uniform(&Self::norm_params(x, false, eps)?);
        let stats: Vec<f32> = mean.iter().chain(&inv_std).copied().collect();
        let affine: Vec<f32> = gamma.data().iter().chain(beta.data()).copied().collect();
        let (xb, sb, ab) = (
            self.storage(x.data()),
            self.storage(&stats),
            self.storage(&affine),
        );
        let (normalised, y) = (self.output(x.len()), self.output(x.len()));
        let passes = [
            Pass {
                key: key(Shader::BatchNorm, "normalise"),
                bindings: vec![(0, &params), (1, &xb), (2, &sb), (4, &normalised)],
                workgroups: per_value(x.len()),
            },
            Pass {
                key: key(Shader::BatchNorm, "scale_shift"),
                bindings: vec![(0, &params), (2, &ab), (3, &normalised), (4, &y)],
                workgroups: per_value(x.len()),
            },
        ];
        let mut out = self.execute(&passes, &[(&normalised, x.len()), (&y, x.len())])?;
        let y = Tensor::new(x.shape(), out.pop().expect("two outputs"))?;
        let normalised = Tensor::new(x.shape(), out.pop().expect("two outputs"))?;
        Ok((y, normalised, inv_std))
    }

    /// `(dx, dgamma, dbeta)` of [`GpuContext::batch_norm_inference`].
    pub fn batch_norm_inference_backward(
        &self,
        normalised: &Tensor,
        inv_std: &[f32],
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
            pad: [0; 2],
        };
        let (pb, ab, bb, out) = (
            self.uniform(&params),
            self.storage(a.data()),
            self.storage(b.data()),
            self.output(len),
        );
        let values = self.run3(
            key(Shader::Broadcast, "forward"),
            &[(0, &pb), (1, &ab), (2, &bb), (3, &out)],
            per_value(len),
            &out,
            len,
        )?;
        Tensor::new(&shape, values)
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
        let dyb = self.storage(dy.data());
        let gradient = |target: &Tensor, other: &Tensor| -> Result<Tensor> {
            let params = BroadcastParams {
                out_dims,
                target_dims: u32s(dims4(target.shape())?),
                strides_a: [0; 4],
                strides_b: broadcast_strides(dims4(other.shape())?),
                op: u32::from(multiply),
                len: target.len() as u32,
                pad: [0; 2],
            };
            let (pb, ob, out) = (
                self.uniform(&params),
                self.storage(other.data()),
                self.output(target.len()),
            );
            let values = self.run3(
                key(Shader::Broadcast, "backward"),
                &[(0, &pb), (1, &dyb), (2, &ob), (3, &out)],
                per_value(target.len()),
                &out,
                target.len(),
            )?;
            Tensor::new(target.shape(), values)
        };
        Ok((gradient(a, b)?, gradient(b, a)?))
    }

    /// One window copy pass from `src` into `dst`.
    fn window_pass<'a>(
        &self,
        params: &'a wgpu::Buffer,
        src: &'a wgpu::Buffer,
        dst: &'a wgpu::Buffer,
        count: usize,
    ) -> Pass<'a> {
        Pass {
            key: key(Shader::Window, "copy"),
            bindings: vec![(0, params), (1, src), (3, dst)],
            workgroups: per_value(count),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn window_params(
        outer: usize,
        inner: usize,
        src_length: usize,
        dst_length: usize,
        src_start: usize,
        dst_start: usize,
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
        let (outer, size, inner) = around(x.shape(), axis);
        let params = self.uniform(&Self::window_params(outer, inner, size, len, start, 0, len));
        let (src, dst) = (self.storage(x.data()), self.output(x.len() / size * len));
        let total = outer * len * inner;
        let pass = self.window_pass(&params, &src, &dst, total);
        let values = self
            .execute(&[pass], &[(&dst, total)])?
            .pop()
            .expect("one output");
        Tensor::new(&shape, values)
    }

    /// The gradient of [`GpuContext::slice_axis`]: `dy` placed into zeros of `shape`.
    pub fn slice_axis_backward(
        &self,
        dy: &Tensor,
        shape: &[usize],
        axis: usize,
        start: usize,
    ) -> Result<Tensor> {
        let len = *dy
            .shape()
            .get(axis)
            .ok_or_else(|| Error::Shape(format!("axis {axis} of {:?}", dy.shape())))?;
        if sliced_shape(shape, axis, start, len)? != dy.shape() {
            return Err(Error::Shape(format!(
                "slice backward: {:?} into {shape:?} at {start} of axis {axis}",
                dy.shape()
            )));
        }
        let (outer, size, inner) = around(shape, axis);
        let total_len: usize = shape.iter().product();
        let params = self.uniform(&Self::window_params(outer, inner, len, size, 0, start, len));
        let (src, dst) = (self.storage(dy.data()), self.output(total_len));
        let pass = self.window_pass(&params, &src, &dst, dy.len());
        let values = self
            .execute(&[pass], &[(&dst, total_len)])?
            .pop()
            .expect("one output");
        Tensor::new(shape, values)
    }

    /// Concatenation along axis 1.
    pub fn concat_channels(&self, parts: &[&Tensor]) -> Result<Tensor> {
        // The reference validates the shapes and gives the output's.
        let shape = concat_shape(parts)?;
        let (outer, total, inner) = around(&shape, 1);
        let len: usize = shape.iter().product();
        let dst = self.output(len);
        let mut offset = 0;
        let mut owned = Vec::new();
        for part in parts {
            let c = part.shape()[1];
            owned.push((
                self.uniform(&Self::window_params(outer, inner, c, total, 0, offset, c)),
                self.storage(part.data()),
                part.len(),
            ));
            offset += c;
        }
        let passes: Vec<Pass> = owned
            .iter()
            .map(|(p, s, count)| self.window_pass(p, s, &dst, *count))
            .collect();
        let values = self
            .execute(&passes, &[(&dst, len)])?
            .pop()
            .expect("one output");
        Tensor::new(&shape, values)
    }

    /// The centre `size x size` window of `[..., K, K]` kernels.
    pub fn centre_crop(&self, w: &Tensor, size: usize) -> Result<Tensor> {
        let shape = cpu::layout::cropped_shape(w.shape(), size)?;
        let rank = w.shape().len();
        let k = w.shape()[rank - 1];
        let rows = self.slice_axis(w, rank - 2, (k - size) / 2, size)?;
        let out = self.slice_axis(&rows, rank - 1, (k - size) / 2, size)?;
        debug_assert_eq!(out.shape(), shape.as_slice());
        Ok(out)
    }

    /// The gradient of [`GpuContext::centre_crop`].
    pub fn centre_crop_backward(&self, dy: &Tensor, shape: &[usize]) -> Result<Tensor> {
        let rank = shape.len();
        let size = *dy.shape().last().unwrap_or(&0);
        if cpu::layout::cropped_shape(shape, size)? != dy.shape() {
            return Err(Error::Shape(format!(
                "centre crop backward: {:?} into {shape:?}",
                dy.shape()
            )));
        }
        let k = shape[rank - 1];
        let mut rows_shape = shape.to_vec();
        rows_shape[rank - 2] = size;
        let rows = self.slice_axis_backward(dy, &rows_shape, rank - 1, (k - size) / 2)?;
        self.slice_axis_backward(&rows, shape, rank - 2, (k - size) / 2)
    }

    fn reduce_params(len: usize, segments: usize, ones: bool) -> ReduceParams {
        ReduceParams {
            len: len as u32,
            segments: segments as u32,
            ones: u32::from(ones),
            pad: 0,
        }
    }

    /// The mixed op (see [`cpu::mixed_op`]): only the computed candidates are summed.
    pub fn mixed(&self, candidates: &[Option<&Tensor>], weights: &[f32]) -> Result<Tensor> {
        let shape = cpu::mixed::checked_shape(candidates, weights)?;
        let present: Vec<(&Tensor, f32)> = candidates
            .iter()
            .zip(weights)
            .filter_map(|(c, w)| c.map(|c| (c, *w)))
            .collect();
        let len: usize = shape.iter().product();
        let stacked: Vec<f32> = present
            .iter()
            .flat_map(|(c, _)| c.data().iter().copied())
            .collect();
        let ws: Vec<f32> = present.iter().map(|(_, w)| *w).collect();
        let params = self.uniform(&Self::reduce_params(len, present.len(), false));
        let (sb, wb, out) = (self.storage(&stacked), self.storage(&ws), self.output(len));
        let values = self.run3(
            key(Shader::Reduce, "weighted_sum"),
            &[(0, &params), (1, &sb), (2, &wb), (3, &out)],
            per_value(len),
            &out,
            len,
        )?;
        Tensor::new(&shape, values)
    }

    /// `(dweights, dcandidates)` of [`GpuContext::mixed`].
    pub fn mixed_backward(
        &self,
        candidates: &[Option<&Tensor>],
        weights: &[f32],
        dy: &Tensor,
    ) -> Result<(Vec<f32>, Vec<Option<Tensor>>)> {
        let shape = cpu::mixed::checked_shape(candidates, weights)?;
        if dy.shape() != shape.as_slice() {
            return Err(Error::Shape(format!(
                "mixed op backward: dy {:?} for candidates of {shape:?}",
                dy.shape()
            )));
        }
        let present: Vec<(&Tensor, f32)> = candidates
            .iter()
            .zip(weights)
            .filter_map(|(c, w)| c.map(|c| (c, *w)))
            .collect();
        let (len, k) = (dy.len(), present.len());
        let stacked: Vec<f32> = present
            .iter()
            .flat_map(|(c, _)| c.data().iter().copied())
            .collect();
        let ws: Vec<f32> = present.iter().map(|(_, w)| *w).collect();
        let params = self.uniform(&Self::reduce_params(len, k, false));
        let (sb, wb, dyb) = (
            self.storage(&stacked),
            self.storage(&ws),
            self.storage(dy.data()),
        );
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
        let mut out = self.execute(&passes, &[(&dw, k), (&dc, k * len)])?;
        let dc = out.pop().expect("two outputs");
        let dw = out.pop().expect("two outputs");
        let mut chunks = dc.chunks(len).zip(dw);
        let mut dweights = Vec::with_capacity(weights.len());
        let mut dcandidates = Vec::with_capacity(weights.len());
        for candidate in candidates {
            if candidate.is_some() {
                let (grad, dweight) = chunks.next().expect("one gradient per computed candidate");
                dweights.push(dweight);
                dcandidates.push(Some(Tensor::new(&shape, grad.to_vec())?));
            } else {
                dweights.push(0.0);
                dcandidates.push(None);
            }
        }
        Ok((dweights, dcandidates))
    }

    /// The sum of all values.
    pub fn sum(&self, x: &Tensor) -> Result<f32> {
        let params = self.uniform(&Self::reduce_params(x.len(), 1, true));
        let (xb, dummy, out) = (self.storage(x.data()), self.storage(&[]), self.output(1));
        let values = self.run3(
            key(Shader::Reduce, "segment_dot"),
            &[(0, &params), (1, &xb), (2, &dummy), (3, &out)],
            (1, 1, 1),
            &out,
            1,
        )?;
        Ok(values[0])
    }

    fn softmax_params(x: &Tensor, log: bool, noisy: bool, scale: f32) -> Result<SoftmaxParams> {
        let cols = *x.shape().last().filter(|c| **c > 0).ok_or_else(|| {
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
        let rows = params.rows as usize;
        let (pb, xb, nb, out) = (
            self.uniform(&params),
            self.storage(x.data()),
            self.storage(noise.map_or(&[][..], Tensor::data)),
            self.output(x.len()),
        );
        let values = self.run3(
            key(Shader::Softmax, "forward"),
            &[(0, &pb), (1, &xb), (2, &nb), (3, &out)],
            per_value(rows),
            &out,
            x.len(),
        )?;
        Tensor::new(x.shape(), values)
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
        let (pb, yb, dyb, out) = (
            self.uniform(&params),
            self.storage(y.data()),
            self.storage(dy.data()),
            self.output(y.len()),
        );
        let values = self.run3(
            key(Shader::Softmax, "backward"),
            &[(0, &pb), (1, &yb), (2, &dyb), (3, &out)],
            per_value(y.len()),
            &out,
            y.len(),
        )?;
        Tensor::new(y.shape(), values)
    }

    fn label_buffer(&self, logits: &Tensor, labels: &[usize]) -> Result<wgpu::Buffer> {
        cpu::unary::check_labels(labels, logits.shape()[0], logits.shape()[1])?;
        let labels: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        Ok(self.storage_u32(&labels))
    }

    /// Mean cross-entropy of `[N, C]` logits.
    pub fn cross_entropy(&self, logits: &Tensor, labels: &[usize]) -> Result<f32> {
        let params = Self::softmax_params(logits, true, false, 1.0)?;
        if logits.shape().len() != 2 {
            return Err(Error::Shape(format!(
                "cross-entropy needs [N, C], got {:?}",
                logits.shape()
            )));
        }
        let lb = self.label_buffer(logits, labels)?;
        let n = labels.len();
        let (pb, xb, out) = (
            self.uniform(&params),
            self.storage(logits.data()),
            self.output(n),
        );
        let losses = self.run3(
            key(Shader::Softmax, "cross_entropy"),
            &[
                (0, &pb),
                (1, &xb),
                (2, &self.storage(&[])),
                (3, &out),
                (4, &lb),
            ],
            per_value(n),
            &out,
            n,
        )?;
        Ok(losses.iter().sum::<f32>() / n.max(1) as f32)
    }

    /// Gradient of the mean cross-entropy.
    pub fn cross_entropy_backward(&self, logits: &Tensor, labels: &[usize]) -> Result<Tensor> {
        if logits.shape().len() != 2 {
            return Err(Error::Shape(format!(
                "cross-entropy needs [N, C], got {:?}",
                logits.shape()
            )));
        }
        let params = Self::softmax_params(logits, true, false, 1.0)?;
        let lb = self.label_buffer(logits, labels)?;
        let (pb, xb, out) = (
            self.uniform(&params),
            self.storage(logits.data()),
            self.output(logits.len()),
        );
        let values = self.run3(
            key(Shader::Softmax, "cross_entropy_backward"),
            &[
                (0, &pb),
                (1, &xb),
                (2, &self.storage(&[])),
                (3, &out),
                (4, &lb),
            ],
            per_value(logits.len()),
            &out,
            logits.len(),
        )?;
        Tensor::new(logits.shape(), values)
    }
}

/// `(outer, size, inner)` around `axis` of a shape (the axis checked by the caller).
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

fn sliced_shape(shape: &[usize], axis: usize, start: usize, len: usize) -> Result<Vec<usize>> {
    match shape.get(axis) {
        Some(&size) if len > 0 && start + len <= size => {
            let mut out = shape.to_vec();
            out[axis] = len;
            Ok(out)
        }
        _ => Err(Error::Shape(format!(
            "slice {start}..{} of axis {axis} of a tensor of shape {shape:?}",
            start + len
        ))),
    }
}

fn concat_shape(parts: &[&Tensor]) -> Result<Vec<usize>> {
    let first = parts
        .first()
        .ok_or_else(|| Error::Shape("concat: no inputs".into()))?;
    if first.shape().len() < 2 {
        return Err(Error::Shape(format!(
            "concat needs rank >= 2, got {:?}",
            first.shape()
        )));
    }
    let mut shape = first.shape().to_vec();
    shape[1] = 0;
    for part in parts {
        let s = part.shape();
        if s.len() != shape.len() || s[0] != shape[0] || s[2..] != shape[2..] {
            return Err(Error::Shape(format!(
                "concat: {s:?} beside {:?}",
                first.shape()
            )));
        }
        shape[1] += s[1];
    }
    Ok(shape)
}
