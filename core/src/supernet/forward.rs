//! What every supernet's step shares: binding the weights and route weights to a tape,
//! batch norm in training or inference mode, conv-BN blocks, mixed ops routed per
//! [`Route`], and turning the tape into a [`StepOutput`] (loss, accuracy, gradients, batch
//! statistics, peak memory).

use hwnas_kernels::{Activation, Backend, Conv2dSpec, Labels, Tape, Tensor, Var};

use super::batchnorm::BatchStats;
use super::params::{Binding, ParamStore};
use super::{BnMode, Route, StepOutput, StepRequest};
use crate::error::{Error, Result};
use crate::images::batches::Batch;

/// One forward pass being built.
pub(crate) struct Forward<'t, 'b, 's> {
    /// The tape.
    pub tape: &'t mut Tape<'b>,
    binding: Binding<'s>,
    bn: BnMode<'s>,
    stats: Vec<(String, Var)>,
    /// Per edge, the tape variable of its route weights (`None` for fixed routes).
    route_vars: Vec<Option<Var>>,
    unit: Vec<(usize, Var, Var)>,
}

impl Forward<'_, '_, '_> {
    /// The tape variable of parameter `name`.
    pub fn param(&mut self, name: &str) -> Result<Var> {
        self.binding.param(self.tape, name)
    }

    /// Constant gamma = 1, beta = 0 for a non-affine batch norm of `c` channels (written
    /// where the backend computes, once per step and width).
    fn unit_affine(&mut self, c: usize) -> Result<(Var, Var)> {
        if let Some(&(_, g, b)) = self.unit.iter().find(|(n, _, _)| *n == c) {
            return Ok((g, b));
        }
        let backend = self.tape.backend();
        let g = self.tape.leaf(backend.full(&[c], 1.0)?, false);
        let b = self.tape.leaf(backend.zeros(&[c])?, false);
        self.unit.push((c, g, b));
        Ok((g, b))
    }

    /// Batch norm named `name` (its statistics' key), non-affine unless `affine` is given.
    pub fn batch_norm(&mut self, x: Var, name: String, affine: Option<(Var, Var)>) -> Result<Var> {
        let c = self.tape.value(x).shape()[1];
        let (g, b) = match affine {
            Some(pair) => pair,
            None => self.unit_affine(c)?,
        };
        match self.bn {
            BnMode::Batch => {
                let y = self.tape.batch_norm(x, g, b)?;
                self.stats.push((name, y));
                Ok(y)
            }
            BnMode::Fixed(stats) => {
                let (mean, var) = stats.tensors(&name).ok_or_else(|| Error::Setting {
                    name: "batch-norm statistics".into(),
                    problem: format!(
                        "none for layer `{name}`: recalibrate on training batches with this subnet first"
                    ),
                })?;
                // Elastic widths keep the statistics of the widest layer; a narrower
                // subnet uses its first channels' (Once-for-All's rule).
                let (mean, var) = if c < mean.len() {
                    let backend = self.tape.backend();
                    (
                        backend.slice_axis(mean, 0, 0, c)?,
                        backend.slice_axis(var, 0, 0, c)?,
                    )
                } else {
                    (mean.clone(), var.clone())
                };
                Ok(self.tape.batch_norm_inference(x, g, b, &mean, &var)?)
            }
        }
    }

    /// Convolution with weight `name` (no bias).
    pub fn conv(&mut self, x: Var, name: &str, spec: Conv2dSpec) -> Result<Var> {
        let w = self.param(name)?;
        Ok(self.tape.conv2d(x, w, None, spec)?)
    }

    /// (ReLU ->) convolution `name` with "same" padding and `stride` -> non-affine batch
    /// norm `name.bn`.
    pub fn conv_bn(&mut self, x: Var, name: &str, stride: usize, relu_first: bool) -> Result<Var> {
        let input = if relu_first {
            self.tape.activation(x, Activation::Relu)?
        } else {
            x
        };
        let w = self.param(name)?;
        let k = self.tape.value(w).shape()[2];
        let spec = Conv2dSpec {
            stride,
            padding: (k - 1) / 2,
            dilation: 1,
            groups: 1,
        };
        let y = self.tape.conv2d(input, w, None, spec)?;
        self.batch_norm(y, format!("{name}.bn"), None)
    }

    /// Edge `edge` routed by `route`: the fixed candidate, or the weighted sum of the
    /// candidates (only those with non-zero weight computed when sparse). `candidate`
    /// builds candidate `op` on the tape.
    pub fn edge(
        &mut self,
        edge: usize,
        route: &Route,
        mut candidate: impl FnMut(&mut Self, usize) -> Result<Var>,
    ) -> Result<Var> {
        match route {
            Route::Fixed(op) => candidate(self, *op),
            Route::Dense(w) | Route::Sparse(w) => {
                let sparse = matches!(route, Route::Sparse(_));
                let mut candidates = Vec::with_capacity(w.len());
                for (op, &weight) in w.iter().enumerate() {
                    candidates.push(if sparse && weight == 0.0 {
                        None
                    } else {
                        Some(candidate(self, op)?)
                    });
                }
                let weights =
                    self.route_vars[edge].expect("weighted routes have a weight variable");
                Ok(self.tape.mixed(&candidates, weights)?)
            }
        }
    }
}

/// A step whose forward pass has run: the tape holds the logits, and the loss, its
/// backward pass and the readback wait for [`PendingStep::finish`]. It lets a caller choose
/// each image's weight in the loss from the images' losses without a second forward pass
/// (UNAS weighs a training and a validation batch by the sign of their paired losses'
/// difference, so both forward passes run before either backward pass).
pub(crate) struct PendingStep<'b, 's> {
    tape: Tape<'b>,
    binding: Binding<'s>,
    stats: Vec<(String, Var)>,
    route_vars: Vec<Option<Var>>,
    logits: Var,
    labels: Labels,
    candidates: usize,
    weight_grads: bool,
    route_grads: bool,
    /// Each image's cross-entropy, where the backend computes.
    sample_losses: Tensor,
}

/// Runs the forward pass of one step of a supernet whose edges have `candidates`
/// candidates each: binds `params` and the request's route weights and builds the logits
/// with `network`. The request's `sample_weights` are not read here: they are
/// [`PendingStep::finish`]'s, which differentiates the loss where asked.
pub(crate) fn begin_step<'b, 's>(
    params: &'s ParamStore,
    backend: &'b dyn Backend,
    batch: &Batch,
    request: &StepRequest<'s>,
    (edges, candidates): (usize, usize),
    network: impl FnOnce(&mut Forward<'_, 'b, 's>, Var) -> Result<Var>,
) -> Result<PendingStep<'b, 's>> {
    if request.routes.len() != edges {
        return Err(Error::Setting {
            name: "routes".into(),
            problem: format!("{} routes for {edges} edges", request.routes.len()),
        });
    }
    let mut tape = Tape::new(backend);
    let mut route_vars = Vec::with_capacity(edges);
    for route in request.routes {
        route_vars.push(match route {
            Route::Fixed(op) if *op >= candidates => {
                return Err(Error::Setting {
                    name: "route".into(),
                    problem: format!("operation {op} of {candidates}"),
                });
            }
            Route::Fixed(_) => None,
            Route::Dense(w) | Route::Sparse(w) => {
                if w.len() != candidates {
                    return Err(Error::Setting {
                        name: "route".into(),
                        problem: format!("{} weights for {candidates} candidates", w.len()),
                    });
                }
                // On the device once: the forward and the backward pass read it.
                let t = backend.to_device(&Tensor::new(&[candidates], w.clone())?)?;
                Some(tape.leaf(t, request.route_grads))
            }
        });
    }
    let mut f = Forward {
        tape: &mut tape,
        binding: Binding::new(params, request.weight_grads),
        bn: request.bn,
        stats: Vec::new(),
        route_vars,
        unit: Vec::new(),
    };
    // The batch goes to the device once (the stem's forward and backward both read it).
    let x = f.tape.leaf(backend.to_device(&batch.images)?, false);
    let logits = network(&mut f, x)?;
    let Forward {
        binding,
        stats,
        route_vars,
        ..
    } = f;
    // The labels too: the loss, its gradient and the accuracy count read them.
    let labels = Labels::new(backend, &batch.labels)?;
    let sample_losses = backend.per_sample_cross_entropy(tape.value(logits), &labels)?;
    Ok(PendingStep {
        tape,
        binding,
        stats,
        route_vars,
        logits,
        labels,
        candidates,
        weight_grads: request.weight_grads,
        route_grads: request.route_grads,
        sample_losses,
    })
}

impl PendingStep<'_, '_> {
    /// Each image's cross-entropy of two pending steps on one backend, read back to the
    /// host in one transfer.
    pub fn sample_losses_of_both(first: &Self, second: &Self) -> Result<(Vec<f32>, Vec<f32>)> {
        let (a, b) = (&first.sample_losses, &second.sample_losses);
        first.tape.backend().read_back(&[a, b])?;
        Ok((a.data().to_vec(), b.data().to_vec()))
    }

    /// The loss `(1/N) sum_i w_i CE_i` (`sample_weights`; `None`: the mean cross-entropy),
    /// its backward pass where the request asked for gradients, and what the host reads.
    pub fn finish(self, sample_weights: Option<&[f32]>) -> Result<StepOutput> {
        let PendingStep {
            mut tape,
            binding,
            stats,
            route_vars,
            logits,
            labels,
            candidates,
            weight_grads,
            route_grads,
            sample_losses,
        } = self;
        let loss = match sample_weights {
            None => tape.cross_entropy(logits, &labels)?,
            Some(w) => tape.weighted_cross_entropy(logits, &labels, w)?,
        };
        if weight_grads || route_grads {
            tape.backward(loss)?;
        }
        let backend = tape.backend();
        // What the host reads from the step, in one transfer after the backward pass (free
        // on the CPU): the loss, each image's loss, the correct count and the route
        // gradients. The logits and the batch statistics stay where they were computed.
        let batch_stats: BatchStats = stats
            .into_iter()
            .filter_map(|(name, v)| {
                tape.batch_stats(v)
                    .map(|(m, var)| (name, m.clone(), var.clone()))
            })
            .collect();
        let grads: Vec<Option<&Tensor>> = match route_grads {
            true => route_vars
                .iter()
                .map(|v| v.and_then(|v| tape.grad(v)))
                .collect(),
            false => Vec::new(),
        };
        let value = tape.value(logits);
        let correct = backend.correct_count(value, &labels)?;
        let mut wanted = vec![tape.value(loss), &sample_losses, &correct];
        wanted.extend(grads.iter().flatten());
        backend.read_back(&wanted)?;
        let mut output = StepOutput {
            loss: tape.value(loss).data()[0],
            sample_losses: sample_losses.data().to_vec(),
            logits: value.clone(),
            // A count below 2^24, exact in an f32.
            correct: correct.data()[0] as usize,
            route_grads: grads
                .iter()
                .map(|g| g.map_or_else(|| vec![0.0; candidates], |g| g.data().to_vec()))
                .collect(),
            weight_grads: Vec::new(),
            batch_stats,
            tape_bytes: 0,
        };
        if weight_grads {
            output.weight_grads = binding.gradients(&tape)?;
        }
        output.tape_bytes = tape.peak_bytes();
        Ok(output)
    }
}
