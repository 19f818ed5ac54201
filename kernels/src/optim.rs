//! Optimisers over lists of parameter tensors: SGD with momentum (optionally Nesterov) and
//! weight decay, Adam and AdamW, and gradient-norm clipping.

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// One SGD update's settings, as a backend runs it ([`Backend::sgd_step`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdStep {
    /// Step size.
    pub learning_rate: f32,
    /// Momentum (0 for plain SGD).
    pub momentum: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// Clip the gradients' global L2 norm to this first (none: no clipping).
    pub max_norm: Option<f32>,
}

/// Checks one gradient and one velocity of each parameter's length.
pub fn check_sgd_lengths(params: &[Tensor], grads: &[Tensor], velocity: &[Tensor]) -> Result<()> {
    if params.len() != grads.len() || params.len() != velocity.len() {
        return Err(Error::Shape(format!(
            "SGD: {} parameters, {} gradients, {} velocities",
            params.len(),
            grads.len(),
            velocity.len()
        )));
    }
    for ((p, g), v) in params.iter().zip(grads).zip(velocity) {
        if p.len() != g.len() || p.len() != v.len() {
            return Err(Error::Shape(format!(
                "SGD: a parameter of {:?}, its gradient {:?}, its velocity {:?}",
                p.shape(),
                g.shape(),
                v.shape()
            )));
        }
    }
    Ok(())
}

/// The CPU's SGD update: the gradients scaled as [`clip_grad_norm`] scales them (the same
/// product, without copying them), then PyTorch's momentum rule, in place.
pub fn sgd_step_on_host(
    step: &SgdStep,
    params: &mut [Tensor],
    grads: &[Tensor],
    velocity: &mut [Tensor],
) -> Result<()> {
    check_sgd_lengths(params, grads, velocity)?;
    let scale = step
        .max_norm
        .and_then(|max_norm| clip_factor(global_norm(grads), max_norm));
    for ((p, g), v) in params.iter_mut().zip(grads).zip(velocity.iter_mut()) {
        let v = v.data_mut();
        for ((w, &dw), vel) in p.data_mut().iter_mut().zip(g.data()).zip(v.iter_mut()) {
            let dw = scale.map_or(dw, |s| dw * s);
            let d = dw + step.weight_decay * *w;
            *vel = step.momentum * *vel + d;
            let update = if step.nesterov {
                d + step.momentum * *vel
            } else {
                *vel
            };
            *w -= step.learning_rate * update;
        }
    }
    Ok(())
}

/// The global L2 norm of `grads`.
fn global_norm(grads: &[Tensor]) -> f32 {
    grads
        .iter()
        .flat_map(|g| g.data())
        .map(|v| v * v)
        .sum::<f32>()
        .sqrt()
}

/// The factor that brings a global norm down to `max_norm`, or none when it is within it.
fn clip_factor(norm: f32, max_norm: f32) -> Option<f32> {
    (norm > max_norm && norm > 0.0).then(|| max_norm / norm)
}

/// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm before.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f32) -> f32 {
    let norm = global_norm(grads);
    if let Some(scale) = clip_factor(norm, max_norm) {
        grads
            .iter_mut()
            .for_each(|g| g.data_mut().iter_mut().for_each(|v| *v *= scale));
    }
    norm
}

/// SGD with momentum, Nesterov momentum and L2 weight decay (PyTorch's formulation).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sgd {
    /// Step size.
    pub learning_rate: f32,
    /// Momentum (0 for plain SGD).
    pub momentum: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// One velocity per parameter, where the backend computes (flat: only its length
    /// is used).
    #[serde(with = "crate::tensor::flat_values")]
    velocity: Vec<Tensor>,
}

impl Sgd {
    /// SGD with these settings.
    pub fn new(learning_rate: f32, momentum: f32, nesterov: bool, weight_decay: f32) -> Self {
        Sgd {
            learning_rate,
            momentum,
            nesterov,
            weight_decay,
            velocity: Vec::new(),
        }
    }

    /// One step on the host.
    pub fn step(&mut self, params: &mut [Tensor], grads: &[Tensor]) -> Result<()> {
        if self.velocity.len() != params.len() {
            self.velocity = params.iter().map(|p| Tensor::zeros(&[p.len()])).collect();
        }
        sgd_step_on_host(&self.settings(None), params, grads, &mut self.velocity)
    }

    /// One step where `backend` computes, the gradients first clipped to a global norm of
    /// `max_norm` when given: on the wgpu backend the weights and velocity stay on the
    /// device.
    pub fn step_on(
        &mut self,
        backend: &dyn Backend,
        params: &mut [Tensor],
        grads: &[Tensor],
        max_norm: Option<f32>,
    ) -> Result<()> {
        if self.velocity.len() != params.len() {
            self.velocity = params
                .iter()
                .map(|p| backend.zeros(&[p.len()]))
                .collect::<Result<_>>()?;
        }
        backend.sgd_step(&self.settings(max_norm), params, grads, &mut self.velocity)
    }

    fn settings(&self, max_norm: Option<f32>) -> SgdStep {
        SgdStep {
            learning_rate: self.learning_rate,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            max_norm,
        }
    }
}

/// Adam, or AdamW when `decoupled` (weight decay applied to the weights, not the gradient).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Adam {
    /// Step size.
    pub learning_rate: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator floor.
    pub epsilon: f32,
    /// Weight decay.
    pub weight_decay: f32,
    /// AdamW's decoupled weight decay.
    pub decoupled: bool,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    t: i32,
}

impl Adam {
    /// Adam with betas (0.9, 0.999), epsilon 1e-8, no weight decay.
    pub fn new(learning_rate: f32) -> Self {
        Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            m: Vec::new(),
            v: Vec::new(),
            t: 0,
        }
    }

    /// AdamW with decoupled weight decay.
    pub fn adamw(learning_rate: f32, weight_decay: f32) -> Self {
        Adam {
            weight_decay,
            decoupled: true,
            ..Adam::new(learning_rate)
        }
    }

    /// One step.
    pub fn step(&mut self, params: &mut [Tensor], grads: &[Tensor]) {
        if self.m.len() != params.len() {
            self.m = params.iter().map(|p| vec![0.0; p.len()]).collect();
            self.v = self.m.clone();
        }
        self.t += 1;
        let (c1, c2) = (1.0 - self.beta1.powi(self.t), 1.0 - self.beta2.powi(self.t));
        let (beta1, beta2, lr, eps) = (self.beta1, self.beta2, self.learning_rate, self.epsilon);
        let (wd, decoupled) = (self.weight_decay, self.decoupled);
        let (inv_c1, inv_c2) = (1.0 / c1, 1.0 / c2);
        for ((p, g), (m, v)) in params
            .iter_mut()
            .zip(grads)
            .zip(self.m.iter_mut().zip(self.v.iter_mut()))
        {
            // Equal-length slices and the branch outside the loop, so that it vectorises
            // (the same operations per element, in the same order, as one fused loop).
            let w = p.data_mut();
            let n = w.len().min(g.len()).min(m.len()).min(v.len());
            let (w, g, m, v) = (&mut w[..n], &g.data()[..n], &mut m[..n], &mut v[..n]);
            if decoupled {
                for w in w.iter_mut() {
                    *w -= lr * wd * *w;
                }
                for i in 0..n {
                    let d = g[i];
                    m[i] = beta1 * m[i] + (1.0 - beta1) * d;
                    v[i] = beta2 * v[i] + (1.0 - beta2) * d * d;
                    w[i] -= lr * (m[i] * inv_c1) / ((v[i] * inv_c2).sqrt() + eps);
                }
            } else {
                for i in 0..n {
                    let d = g[i] + wd * w[i];
                    m[i] = beta1 * m[i] + (1.0 - beta1) * d;
                    v[i] = beta2 * v[i] + (1.0 - beta2) * d * d;
                    w[i] -= lr * (m[i] * inv_c1) / ((v[i] * inv_c2).sqrt() + eps);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_bounds_the_norm() {
        let mut grads = vec![Tensor::new(&[2], vec![3.0, 4.0]).unwrap()];
        assert_eq!(clip_grad_norm(&mut grads, 1.0), 5.0);
        assert!((grads[0].data()[0] - 0.6).abs() < 1e-6);
    }

    #[test]
    fn optimisers_descend_a_quadratic() {
        for mut step in [
            Box::new({
                let mut o = Sgd::new(0.1, 0.9, true, 0.0);
                move |p: &mut [Tensor], g: &[Tensor]| o.step(p, g).unwrap()
            }) as Box<dyn FnMut(&mut [Tensor], &[Tensor])>,
            Box::new({
                let mut o = Adam::adamw(0.1, 0.01);
                move |p: &mut [Tensor], g: &[Tensor]| o.step(p, g)
            }),
        ] {
            let mut params = vec![Tensor::new(&[2], vec![3.0, -2.0]).unwrap()];
            for _ in 0..200 {
                let grads = vec![
                    Tensor::new(&[2], params[0].data().iter().map(|w| 2.0 * w).collect()).unwrap(),
                ];
                step(&mut params, &grads);
            }
            assert!(
                params[0].data().iter().all(|w| w.abs() < 0.05),
                "{:?}",
                params[0]
            );
        }
    }
}
