//! Reverse-mode automatic differentiation: a tape records each op as it runs forward on a
//! [`Backend`]; [`Tape::backward`] walks it in reverse, accumulating gradients for every
//! value that needs one (weights, inputs, architecture parameters alike).

use crate::backend::Backend;
use crate::cpu;
use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::ops::{Activation, Conv2dSpec};
use crate::tensor::Tensor;

/// A value on the tape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Var(usize);

#[derive(Debug, Clone)]
enum Op {
    Leaf,
    Conv2d {
        x: Var,
        weight: Var,
        bias: Option<Var>,
        spec: Conv2dSpec,
    },
    Matmul {
        a: Var,
        b: Var,
    },
    AddBias {
        x: Var,
        bias: Var,
    },
    Activation {
        x: Var,
        f: Activation,
    },
    Add {
        a: Var,
        b: Var,
    },
    Scale {
        x: Var,
        factor: f32,
    },
    Pool {
        x: Var,
        max: bool,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    GlobalAvgPool {
        x: Var,
    },
    Flatten {
        x: Var,
    },
    Mixed {
        candidates: Vec<Option<Var>>,
        weights: Var,
    },
    Softmax {
        x: Var,
    },
    SegmentSoftmax {
        x: Var,
        sizes: Vec<usize>,
        scale: f32,
    },
    LogSoftmax {
        x: Var,
    },
    GumbelSoftmax {
        logits: Var,
        tau: f32,
        soft: Tensor,
    },
    Mul {
        a: Var,
        b: Var,
    },
    Concat {
        parts: Vec<Var>,
    },
    Slice {
        x: Var,
        axis: usize,
        start: usize,
    },
    CentreCrop {
        x: Var,
    },
    Mean {
        x: Var,
    },
    CrossEntropy {
        logits: Var,
        labels: Labels,
        /// Per-row multipliers, `[N]` (`None`: all 1).
        weights: Option<Tensor>,
    },
    Sum {
        x: Var,
    },
    BatchNorm {
        x: Var,
        gamma: Var,
        beta: Var,
        cache: Box<cpu::BatchNormCache>,
    },
    BatchNormInference {
        x: Var,
        gamma: Var,
        beta: Var,
        inv_std: Tensor,
        normalised: Tensor,
    },
}

struct Node {
    value: Tensor,
    grad: Option<Tensor>,
    op: Op,
    needs_grad: bool,
}

/// A tape over one backend.
pub struct Tape<'b> {
    backend: &'b dyn Backend,
    nodes: Vec<Node>,
    live_bytes: usize,
    peak_bytes: usize,
}

/// Adds `delta` into a gradient slot: on the host in place, or through the backend where
/// either lives on a device (nothing is read back to add).
fn add_into(backend: &dyn Backend, slot: &mut Option<Tensor>, delta: &Tensor) -> Result<()> {
    match slot {
        Some(g) if g.is_on_device() || delta.is_on_device() => {
            *g = backend.binary(g, delta, false)?;
        }
        Some(g) => g
            .data_mut()
            .iter_mut()
            .zip(delta.data())
            .for_each(|(a, b)| *a += b),
        None => *slot = Some(delta.clone()),
    }
    Ok(())
}

impl<'b> Tape<'b> {
    /// An empty tape on `backend`.
    pub fn new(backend: &'b dyn Backend) -> Self {
        Tape {
            backend,
            nodes: Vec::new(),
            live_bytes: 0,
            peak_bytes: 0,
        }
    }

    fn push(&mut self, value: Tensor, op: Op, inputs: &[Var]) -> Var {
        let needs_grad = inputs.iter().any(|v| self.nodes[v.0].needs_grad);
        self.nodes.push(Node {
            value,
            grad: None,
            op,
            needs_grad,
        });
        Var(self.nodes.len() - 1)
    }

    /// A value from outside: a parameter (`needs_grad`) or data.
    pub fn leaf(&mut self, value: Tensor, needs_grad: bool) -> Var {
        self.nodes.push(Node {
            value,
            grad: None,
            op: Op::Leaf,
            needs_grad,
        });
        Var(self.nodes.len() - 1)
    }

    /// The value of a variable.
    pub fn value(&self, v: Var) -> &Tensor {
        &self.nodes[v.0].value
    }

    /// The backend this tape runs on.
    pub fn backend(&self) -> &'b dyn Backend {
        self.backend
    }

    /// The gradient of the last [`Tape::backward`]'s loss with respect to `v`, a leaf
    /// (intermediate gradients are freed once propagated).
    pub fn grad(&self, v: Var) -> Option<&Tensor> {
        self.nodes[v.0].grad.as_ref()
    }

    /// Convolution.
    pub fn conv2d(
        &mut self,
        x: Var,
        weight: Var,
        bias: Option<Var>,
        spec: Conv2dSpec,
    ) -> Result<Var> {
        let value = self.backend.conv2d(
            self.value(x),
            self.value(weight),
            bias.map(|b| self.value(b)),
            &spec,
        )?;
        let mut inputs = vec![x, weight];
        inputs.extend(bias);
        Ok(self.push(
            value,
            Op::Conv2d {
                x,
                weight,
                bias,
                spec,
            },
            &inputs,
        ))
    }

    /// `x W + b` for `x [N, in]`, `W [in, out]`, `b [out]`.
    pub fn linear(&mut self, x: Var, weight: Var, bias: Var) -> Result<Var> {
        let product = self.matmul(x, weight)?;
        self.add_bias(product, bias)
    }

    /// Matrix product.
    pub fn matmul(&mut self, a: Var, b: Var) -> Result<Var> {
        let value = self.backend.matmul(self.value(a), self.value(b))?;
        Ok(self.push(value, Op::Matmul { a, b }, &[a, b]))
    }

    /// Adds a bias along the last axis of `[N, F]`.
    pub fn add_bias(&mut self, x: Var, bias: Var) -> Result<Var> {
        let (xv, bv) = (self.value(x), self.value(bias));
        let features = *xv.shape().last().unwrap_or(&0);
        if bv.len() != features {
            return Err(Error::Shape(format!(
                "bias of {} for {features} features",
                bv.len()
            )));
        }
        let value = self.backend.binary(xv, bv, false)?;
        Ok(self.push(value, Op::AddBias { x, bias }, &[x, bias]))
    }

    /// An activation.
    pub fn activation(&mut self, x: Var, f: Activation) -> Result<Var> {
        let value = self.backend.activation(self.value(x), f)?;
        Ok(self.push(value, Op::Activation { x, f }, &[x]))
    }

    /// `a + b` (same shapes).
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        if self.value(a).shape() != self.value(b).shape() {
            return Err(Error::Shape(format!(
                "add: {:?} + {:?}",
                self.value(a).shape(),
                self.value(b).shape()
            )));
        }
        let value = self.backend.binary(self.value(a), self.value(b), false)?;
        Ok(self.push(value, Op::Add { a, b }, &[a, b]))
    }

    /// `factor * x`.
    pub fn scale(&mut self, x: Var, factor: f32) -> Result<Var> {
        let xv = self.value(x);
        let value = self.backend.scale_to(xv, xv.shape(), factor)?;
        Ok(self.push(value, Op::Scale { x, factor }, &[x]))
    }

    /// Average pooling (padding not counted).
    pub fn avg_pool(
        &mut self,
        x: Var,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Var> {
        self.pool(x, false, kernel, stride, padding)
    }

    /// Max pooling.
    pub fn max_pool(
        &mut self,
        x: Var,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Var> {
        self.pool(x, true, kernel, stride, padding)
    }

    fn pool(
        &mut self,
        x: Var,
        max: bool,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Var> {
        let value = self
            .backend
            .pool(self.value(x), max, kernel, stride, padding)?;
        let op = Op::Pool {
            x,
            max,
            kernel,
            stride,
            padding,
        };
        Ok(self.push(value, op, &[x]))
    }

    /// Global average pooling to `[N, C, 1, 1]`.
    pub fn global_avg_pool(&mut self, x: Var) -> Result<Var> {
        let value = self.backend.global_avg_pool(self.value(x))?;
        Ok(self.push(value, Op::GlobalAvgPool { x }, &[x]))
    }

    /// `[N, ...]` to `[N, rest]`.
    pub fn flatten(&mut self, x: Var) -> Result<Var> {
        let xv = self.value(x);
        let n = xv.shape()[0];
        let value = xv.clone().reshape(&[n, xv.len() / n.max(1)])?;
        Ok(self.push(value, Op::Flatten { x }, &[x]))
    }

    /// The mixed op: `sum_k weights[k] * candidates[k]`, skipped candidates (`None`) having
    /// weight 0; `weights` is a `[K]` variable (e.g. a softmax of architecture parameters).
    pub fn mixed(&mut self, candidates: &[Option<Var>], weights: Var) -> Result<Var> {
        let values: Vec<Option<&Tensor>> = candidates
            .iter()
            .map(|c| c.map(|v| self.value(v)))
            .collect();
        let w = self.value(weights);
        let present: Vec<usize> = (0..values.len()).filter(|&k| values[k].is_some()).collect();
        // One path at weight exactly 1 (a hard one-hot sample held on the host): the output
        // is that path's values, shared rather than copied (1 * x == x in floating point).
        let value = match present.as_slice() {
            &[k] if !w.is_on_device()
                && w.data().get(k) == Some(&1.0)
                && w.len() == values.len() =>
            {
                values[k].expect("present").clone()
            }
            _ => self.backend.mixed(&values, w)?,
        };
        let mut inputs: Vec<Var> = candidates.iter().flatten().copied().collect();
        inputs.push(weights);
        Ok(self.push(
            value,
            Op::Mixed {
                candidates: candidates.to_vec(),
                weights,
            },
            &inputs,
        ))
    }

    /// Softmax along the last axis (e.g. of a `[K]` vector of architecture parameters).
    pub fn softmax(&mut self, x: Var) -> Result<Var> {
        let value = self.backend.softmax(self.value(x), None, 1.0, false)?;
        Ok(self.push(value, Op::Softmax { x }, &[x]))
    }

    /// A softmax over each segment of each row of `x [N, D]` (`sizes` add up to `D`) of
    /// the values times `scale`: the same values and gradients as slicing, scaling, a
    /// softmax per slice and concatenating, as one operation. Computed on the host (the
    /// values are read back from a device; it serves the strategies' small networks).
    pub fn segment_softmax(&mut self, x: Var, sizes: &[usize], scale: f32) -> Result<Var> {
        let value = cpu::segment_softmax(self.value(x), sizes, scale)?;
        Ok(self.push(
            value,
            Op::SegmentSoftmax {
                x,
                sizes: sizes.to_vec(),
                scale,
            },
            &[x],
        ))
    }

    /// Log-softmax of `[N, C]` logits, row-wise.
    pub fn log_softmax(&mut self, x: Var) -> Result<Var> {
        let value = self.backend.softmax(self.value(x), None, 1.0, true)?;
        Ok(self.push(value, Op::LogSoftmax { x }, &[x]))
    }

    /// Gumbel-softmax along the last axis with the given Gumbel `noise` (see
    /// [`cpu::gumbel_noise`]) and temperature: the relaxed sample, or with `hard` the
    /// one-hot argmax whose gradient is the relaxed sample's (straight-through).
    pub fn gumbel_softmax(
        &mut self,
        logits: Var,
        noise: &Tensor,
        tau: f32,
        hard: bool,
    ) -> Result<Var> {
        if tau.is_nan() || tau <= 0.0 {
            return Err(Error::Shape(format!(
                "gumbel-softmax temperature must be > 0, got {tau}"
            )));
        }
        let soft = self
            .backend
            .softmax(self.value(logits), Some(noise), 1.0 / tau, false)?;
        let value = if hard {
            cpu::one_hot_argmax(&soft)?
        } else {
            soft.clone()
        };
        Ok(self.push(value, Op::GumbelSoftmax { logits, tau, soft }, &[logits]))
    }

    /// `a * b` element-wise with NumPy-style broadcasting (e.g. `[N, C, H, W]` by
    /// `[N, C, 1, 1]` gates).
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        let value = self.backend.binary(self.value(a), self.value(b), true)?;
        Ok(self.push(value, Op::Mul { a, b }, &[a, b]))
    }

    /// Concatenation along the channel axis (axis 1).
    pub fn concat(&mut self, parts: &[Var]) -> Result<Var> {
        let values: Vec<&Tensor> = parts.iter().map(|&v| self.value(v)).collect();
        let value = self.backend.concat_channels(&values)?;
        Ok(self.push(
            value,
            Op::Concat {
                parts: parts.to_vec(),
            },
            parts,
        ))
    }

    /// Indices `start..start + len` along `axis` (elastic width: output channels of a
    /// weight on axis 0, input channels on axis 1).
    pub fn slice(&mut self, x: Var, axis: usize, start: usize, len: usize) -> Result<Var> {
        let value = self.backend.slice_axis(self.value(x), axis, start, len)?;
        Ok(self.push(value, Op::Slice { x, axis, start }, &[x]))
    }

    /// The centre `size x size` window of `[..., K, K]` kernels (elastic kernel size).
    pub fn centre_crop(&mut self, x: Var, size: usize) -> Result<Var> {
        let value = self.backend.centre_crop(self.value(x), size)?;
        Ok(self.push(value, Op::CentreCrop { x }, &[x]))
    }

    /// The mean of all values, as `[1]`.
    pub fn mean(&mut self, x: Var) -> Result<Var> {
        let xv = self.value(x);
        let sum = self.backend.sum(xv)?;
        let value = self
            .backend
            .scale_to(&sum, &[1], 1.0 / xv.len().max(1) as f32)?;
        Ok(self.push(value, Op::Mean { x }, &[x]))
    }

    /// Mean cross-entropy of `[N, C]` logits.
    pub fn cross_entropy(&mut self, logits: Var, labels: &Labels) -> Result<Var> {
        let value = self.backend.cross_entropy(self.value(logits), labels)?;
        Ok(self.push(
            value,
            Op::CrossEntropy {
                logits,
                labels: labels.clone(),
                weights: None,
            },
            &[logits],
        ))
    }

    /// `(1/N) sum_i weights[i] * CE_i` of `[N, C]` logits: the mean cross-entropy with each
    /// row's term scaled (all ones give [`Tape::cross_entropy`]).
    pub fn weighted_cross_entropy(
        &mut self,
        logits: Var,
        labels: &Labels,
        weights: &[f32],
    ) -> Result<Var> {
        if weights.len() != labels.len() {
            return Err(Error::Shape(format!(
                "{} cross-entropy weights for {} labels",
                weights.len(),
                labels.len()
            )));
        }
        let weights = self
            .backend
            .to_device(&Tensor::new(&[weights.len()], weights.to_vec())?)?;
        let value = self
            .backend
            .weighted_cross_entropy(self.value(logits), labels, &weights)?;
        Ok(self.push(
            value,
            Op::CrossEntropy {
                logits,
                labels: labels.clone(),
                weights: Some(weights),
            },
            &[logits],
        ))
    }

    /// Batch normalisation in training mode (the batch's statistics), `gamma` and `beta`
    /// of shape `[C]`.
    pub fn batch_norm(&mut self, x: Var, gamma: Var, beta: Var) -> Result<Var> {
        let (value, cache) = self.backend.batch_norm_train(
            self.value(x),
            self.value(gamma),
            self.value(beta),
            1e-5,
        )?;
        Ok(self.push(
            value,
            Op::BatchNorm {
                x,
                gamma,
                beta,
                cache: Box::new(cache),
            },
            &[x, gamma, beta],
        ))
    }

    /// Batch normalisation in inference mode: fixed per-channel `mean` and `var` (running
    /// or recalibrated statistics), `gamma` and `beta` of shape `[C]`.
    pub fn batch_norm_inference(
        &mut self,
        x: Var,
        gamma: Var,
        beta: Var,
        mean: &Tensor,
        var: &Tensor,
    ) -> Result<Var> {
        let (y, normalised, inv_std) = self.backend.batch_norm_inference(
            self.value(x),
            self.value(gamma),
            self.value(beta),
            mean,
            var,
            1e-5,
        )?;
        Ok(self.push(
            y,
            Op::BatchNormInference {
                x,
                gamma,
                beta,
                inv_std,
                normalised,
            },
            &[x, gamma, beta],
        ))
    }

    /// The batch mean and (biased) variance per channel of a training-mode
    /// [`Tape::batch_norm`] output, for running averages and batch-norm recalibration.
    pub fn batch_stats(&self, v: Var) -> Option<(&Tensor, &Tensor)> {
        match &self.nodes[v.0].op {
            Op::BatchNorm { cache, .. } => Some((&cache.mean, &cache.var)),
            _ => None,
        }
    }

    /// Bytes of `f32` data the tape holds now: every value, gradient and saved
    /// intermediate, each buffer counted once (values passed through share one).
    pub fn bytes(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        let mut floats = 0;
        for n in &self.nodes {
            for t in std::iter::once(&n.value).chain(&n.grad) {
                if seen.insert(t.storage_id()) {
                    floats += t.len();
                }
            }
            floats += match &n.op {
                Op::BatchNorm { cache, .. } => cache.normalised.len(),
                Op::BatchNormInference { normalised, .. } => normalised.len(),
                Op::GumbelSoftmax { soft, .. } => soft.len(),
                _ => 0,
            };
        }
        floats * std::mem::size_of::<f32>()
    }

    /// The sum of all values, as `[1]`.
    pub fn sum(&mut self, x: Var) -> Result<Var> {
        let value = self.backend.sum(self.value(x))?;
        Ok(self.push(value, Op::Sum { x }, &[x]))
    }

    /// Computes the gradient of the scalar `loss` with respect to every value that needs one.
    pub fn backward(&mut self, loss: Var) -> Result<()> {
        if self.value(loss).len() != 1 {
            return Err(Error::Shape(format!(
                "backward needs a scalar loss, got {:?}",
                self.value(loss).shape()
            )));
        }
        // The seed where the backend computes (written on the device, not uploaded).
        let seed = self.backend.full(&[1], 1.0)?;
        self.backward_from(loss, seed)
    }

    /// Vector-Jacobian product: propagates `seed` (the gradient of some scalar with respect
    /// to `output`, computed outside the tape, e.g. of a pinball or policy-gradient loss)
    /// back to every value that needs a gradient.
    pub fn backward_from(&mut self, output: Var, seed: Tensor) -> Result<()> {
        if seed.shape() != self.value(output).shape() {
            return Err(Error::Shape(format!(
                "seed {:?} for a value of shape {:?}",
                seed.shape(),
                self.value(output).shape()
            )));
        }
        for node in &mut self.nodes {
            node.grad = None;
        }
        self.nodes[output.0].grad = Some(seed);
        let held = self.bytes();
        self.peak_bytes = self.peak_bytes.max(held);
        self.live_bytes = held;
        for index in (0..=output.0).rev() {
            let (Some(dy), true) = (self.nodes[index].grad.clone(), self.nodes[index].needs_grad)
            else {
                continue;
            };
            let op = self.nodes[index].op.clone();
            self.backward_op(&op, index, &dy)?;
            // An intermediate's gradient is spent once propagated (as in PyTorch): only
            // leaves keep theirs, for the optimiser.
            if !matches!(self.nodes[index].op, Op::Leaf) {
                self.nodes[index].grad = None;
                self.live_bytes -= dy.len() * std::mem::size_of::<f32>();
            }
        }
        Ok(())
    }

    /// The most bytes the tape held at any moment of its forward and backward passes so
    /// far (values, saved intermediates and live gradients): a step's peak memory.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes.max(self.bytes())
    }

    fn accumulate(&mut self, v: Var, delta: &Tensor) -> Result<()> {
        if self.nodes[v.0].needs_grad {
            if self.nodes[v.0].grad.is_none() {
                self.live_bytes += delta.len() * std::mem::size_of::<f32>();
                self.peak_bytes = self.peak_bytes.max(self.live_bytes);
            }
            add_into(self.backend, &mut self.nodes[v.0].grad, delta)?;
        }
        Ok(())
    }

    fn backward_op(&mut self, op: &Op, index: usize, dy: &Tensor) -> Result<()> {
        let backend = self.backend;
        match op {
            Op::Leaf => {}
            Op::Conv2d {
                x,
                weight,
                bias,
                spec,
            } => {
                let (dx, dw, db) =
                    backend.conv2d_backward(self.value(*x), self.value(*weight), dy, spec)?;
                self.accumulate(*x, &dx)?;
                self.accumulate(*weight, &dw)?;
                if let Some(b) = bias {
                    self.accumulate(*b, &db)?;
                }
            }
            Op::Matmul { a, b } => {
                let want = (self.nodes[a.0].needs_grad, self.nodes[b.0].needs_grad);
                let (da, db) =
                    backend.matmul_backward_parts(self.value(*a), self.value(*b), dy, want)?;
                if let Some(da) = da {
                    self.accumulate(*a, &da)?;
                }
                if let Some(db) = db {
                    self.accumulate(*b, &db)?;
                }
            }
            Op::AddBias { x, bias } => {
                let (dx, db) =
                    backend.binary_backward(self.value(*x), self.value(*bias), dy, false)?;
                self.accumulate(*x, &dx)?;
                self.accumulate(*bias, &db)?;
            }
            Op::Activation { x, f } => {
                let y = &self.nodes[index].value;
                let dx = backend.activation_backward_with_output(self.value(*x), y, dy, *f)?;
                self.accumulate(*x, &dx)?;
            }
            Op::Add { a, b } => {
                self.accumulate(*a, dy)?;
                self.accumulate(*b, dy)?;
            }
            Op::Scale { x, factor } => {
                let dx = backend.scale_to(dy, dy.shape(), *factor)?;
                self.accumulate(*x, &dx)?;
            }
            Op::Pool {
                x,
                max,
                kernel,
                stride,
                padding,
            } => {
                let dx =
                    backend.pool_backward(self.value(*x), dy, *max, *kernel, *stride, *padding)?;
                self.accumulate(*x, &dx)?;
            }
            Op::GlobalAvgPool { x } => {
                let dx = backend.global_avg_pool_backward(self.value(*x), dy)?;
                self.accumulate(*x, &dx)?;
            }
            Op::Flatten { x } => {
                let dx = dy.clone().reshape(self.value(*x).shape())?;
                self.accumulate(*x, &dx)?;
            }
            Op::Mixed {
                candidates,
                weights,
            } => {
                let values: Vec<Option<&Tensor>> = candidates
                    .iter()
                    .map(|c| c.map(|v| self.value(v)))
                    .collect();
                let (dw, dcandidates) =
                    backend.mixed_backward(&values, self.value(*weights), dy)?;
                for (candidate, grad) in candidates.iter().zip(dcandidates) {
                    if let (Some(c), Some(g)) = (candidate, grad) {
                        self.accumulate(*c, &g)?;
                    }
                }
                self.accumulate(*weights, &dw)?;
            }
            Op::Softmax { x } => {
                let dx = backend.softmax_backward(&self.nodes[index].value, dy, 1.0, false)?;
                self.accumulate(*x, &dx)?;
            }
            Op::SegmentSoftmax { x, sizes, scale } => {
                let dx =
                    cpu::segment_softmax_backward(&self.nodes[index].value, dy, sizes, *scale)?;
                self.accumulate(*x, &dx)?;
            }
            Op::LogSoftmax { x } => {
                let dx = backend.softmax_backward(&self.nodes[index].value, dy, 1.0, true)?;
                self.accumulate(*x, &dx)?;
            }
            Op::GumbelSoftmax { logits, tau, soft } => {
                let dx = backend.softmax_backward(soft, dy, 1.0 / *tau, false)?;
                self.accumulate(*logits, &dx)?;
            }
            Op::Mul { a, b } => {
                let (da, db) = backend.binary_backward(self.value(*a), self.value(*b), dy, true)?;
                self.accumulate(*a, &da)?;
                self.accumulate(*b, &db)?;
            }
            Op::Concat { parts } => {
                let channels: Vec<usize> =
                    parts.iter().map(|&p| self.value(p).shape()[1]).collect();
                let grads = backend.concat_channels_backward(dy, &channels)?;
                for (part, grad) in parts.iter().zip(grads) {
                    self.accumulate(*part, &grad)?;
                }
            }
            Op::Slice { x, axis, start } => {
                let shape = self.value(*x).shape().to_vec();
                let dx = backend.slice_axis_backward(dy, &shape, *axis, *start)?;
                self.accumulate(*x, &dx)?;
            }
            Op::CentreCrop { x } => {
                let shape = self.value(*x).shape().to_vec();
                let dx = backend.centre_crop_backward(dy, &shape)?;
                self.accumulate(*x, &dx)?;
            }
            Op::Mean { x } => {
                let shape = self.value(*x).shape().to_vec();
                let len: usize = shape.iter().product();
                let dx = backend.scale_to(dy, &shape, 1.0 / len.max(1) as f32)?;
                self.accumulate(*x, &dx)?;
            }
            Op::CrossEntropy {
                logits,
                labels,
                weights,
            } => {
                let mut dx = backend.cross_entropy_backward(self.value(*logits), labels)?;
                if dx.is_on_device() || dy.is_on_device() {
                    // Scaled on the device: by dy (a `[1]` broadcast), then per row.
                    dx = backend.binary(&dx, dy, true)?;
                    if let Some(weights) = weights {
                        let rows = weights.clone().reshape(&[weights.len(), 1])?;
                        dx = backend.binary(&dx, &rows, true)?;
                    }
                    self.accumulate(*logits, &dx)?;
                    return Ok(());
                }
                let scale = dy.data()[0];
                match weights {
                    None => dx.data_mut().iter_mut().for_each(|v| *v *= scale),
                    Some(weights) => {
                        let classes = dx.shape()[1];
                        for (row, w) in dx.data_mut().chunks_mut(classes).zip(weights.data()) {
                            row.iter_mut().for_each(|v| *v *= scale * w);
                        }
                    }
                }
                self.accumulate(*logits, &dx)?;
            }
            Op::BatchNorm {
                x,
                gamma,
                beta,
                cache,
            } => {
                let (dx, dgamma, dbeta) =
                    backend.batch_norm_train_backward(cache, self.value(*gamma), dy)?;
                self.accumulate(*x, &dx)?;
                self.accumulate(*gamma, &dgamma)?;
                self.accumulate(*beta, &dbeta)?;
            }
            Op::BatchNormInference {
                x,
                gamma,
                beta,
                inv_std,
                normalised,
            } => {
                let (dx, dgamma, dbeta) = backend.batch_norm_inference_backward(
                    normalised,
                    inv_std,
                    self.value(*gamma),
                    dy,
                )?;
                self.accumulate(*x, &dx)?;
                self.accumulate(*gamma, &dgamma)?;
                self.accumulate(*beta, &dbeta)?;
            }
            Op::Sum { x } => {
                let shape = self.value(*x).shape().to_vec();
                let dx = backend.scale_to(dy, &shape, 1.0)?;
                self.accumulate(*x, &dx)?;
            }
        }
        Ok(())
    }
}
