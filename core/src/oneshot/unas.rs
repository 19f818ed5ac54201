//! UNAS (Vahdat et al., CVPR 2020): independent categoricals `q = softmax(alpha)` per edge;
//! each step draws one uniform per candidate, giving the Gumbel-max sample `z` and its
//! relaxation `zeta` (temperature 0.4). The architecture descends REBAR's unbiased
//! estimator of the gradient of `E[f(z)]`,
//!
//! `(f(z) - f(zeta~)) grad log q(z) + grad f(zeta) - grad f(zeta~)`,
//!
//! where `zeta~` is the relaxation conditioned on `z`. As in the authors' code, `zeta~` is
//! derived from the same uniforms (`v_b = u_b^(1/q_b)`, `log v_i = log u_i - q_i log v_b`),
//! so it equals `zeta` in value and differs only in how it depends on `q`: one relaxed
//! evaluation serves both terms.
//!
//! `f` is the generalisation-gap objective per image, `mean_i CE_train,i + lambda
//! |CE_valid,i - CE_train,i|` (lambda 0.5, the `i`-th images of paired training and
//! validation batches), plus the latency term of [`LatencyPenalty`]: the target's latency
//! of `z` in `f(z)`, the differentiable table at `zeta` in `f(zeta)`, with its weight ramped
//! from 0 after the warm-up (UNAS's `latency_coeff * min(step / latency_iter, 1)`). The
//! weights train on the detached relaxed sample `zeta` (every candidate, weighted).
//!
//! The relaxed sample's two batches go forward once each, on two tapes held at once
//! ([`super::SupernetTrainer::probe_paired_weighted`]): the gap's per-image weights need
//! both batches' losses before either is differentiated. The architecture step's memory
//! peak is thus about two dense forward passes' intermediates; the step's reported peak
//! (`tape_bytes`) is the weight step's.
//!
//! Deviations, on purpose: the latency term uses the same sample as the loss (UNAS draws a
//! second one for it), which saves a draw and keeps one estimator; the table is fitted by
//! least squares to the target's latency (UNAS trains its linear surrogate by SGD on 10,000
//! measurements).

use serde::{Deserialize, Serialize};

use super::arch::softmax_backward;
use super::arch::{ArchLogits, ArchSchedule, argmax, open_uniform, score_function, softmax};
use super::latency::LatencyPenalty;
use super::{OneShotStrategy, StepContext, StepReport};
use crate::error::{Error, Result};
use crate::space::Arch;
use crate::supernet::Route;

/// Settings of UNAS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UnasSettings {
    /// Temperature of the relaxed samples.
    pub temperature: f32,
    /// Weight of the generalisation gap.
    pub gap_weight: f32,
}

impl Default for UnasSettings {
    fn default() -> Self {
        UnasSettings {
            temperature: 0.4,
            gap_weight: 0.5,
        }
    }
}

/// UNAS.
#[derive(Clone, Serialize, Deserialize)]
pub struct Unas {
    logits: ArchLogits,
    /// Settings.
    pub settings: UnasSettings,
    #[serde(skip)]
    latency: Option<LatencyPenalty>,
}

/// The relaxed objective at per-edge weights: value and gradient per edge.
struct Relaxed {
    value: f32,
    grad: Vec<Vec<f32>>,
}

/// One edge's sample: the discrete choice, its relaxation, and the derivative of the
/// conditional relaxation's logits with respect to `q` (0 for the chosen candidate).
struct EdgeSample {
    choice: usize,
    zeta: Vec<f32>,
    conditional_dq: Vec<f32>,
}

/// Draws one edge's sample from `q` with the uniforms `u` (REBAR with `v` derived from `u`).
fn edge_sample(q: &[f32], u: &[f32], tau: f32) -> EdgeSample {
    // Exponentials E_i = -ln u_i; the Gumbel-max logits are ln q_i - ln E_i.
    let e: Vec<f32> = u.iter().map(|u| -u.ln()).collect();
    let logits: Vec<f32> = q
        .iter()
        .zip(&e)
        .map(|(q, e)| q.max(1e-30).ln() - e.ln())
        .collect();
    let choice = argmax(&logits);
    let zeta = softmax(&logits.iter().map(|v| v / tau).collect::<Vec<_>>());
    // -ln v_b = E_b / q_b =: c; for i != b, -ln v_i = E_i - q_i c =: a_i >= 0, and the
    // conditional logit -ln(a_i / q_i + c) has derivative a_i / (q_i E_i) in q_i.
    let c = e[choice] / q[choice].max(1e-30);
    let conditional_dq = (0..q.len())
        .map(|i| {
            if i == choice {
                0.0
            } else {
                let a = (e[i] - q[i] * c).max(0.0);
                a / (q[i] * e[i]).max(1e-30)
            }
        })
        .collect();
    EdgeSample {
        choice,
        zeta,
        conditional_dq,
    }
}

/// The per-image generalisation-gap objective of paired batches' losses: its value
/// `mean_i t_i + lambda |v_i - t_i|`, and the multipliers of each image's cross-entropy
/// whose weighted means have its gradient (`1 - lambda s_i` for the training image,
/// `lambda s_i` for the validation one, `s_i = sign(v_i - t_i)`).
pub fn generalisation_gap(train: &[f32], valid: &[f32], lambda: f32) -> (f32, Vec<f32>, Vec<f32>) {
    let n = train.len().max(1) as f32;
    let mut value = 0.0;
    let mut train_weights = Vec::with_capacity(train.len());
    let mut valid_weights = Vec::with_capacity(train.len());
    for (&t, &v) in train.iter().zip(valid) {
        value += t + lambda * (v - t).abs();
        let s = if v > t {
            1.0
        } else if v < t {
            -1.0
        } else {
            0.0
        };
        train_weights.push(1.0 - lambda * s);
        valid_weights.push(lambda * s);
    }
    (value / n, train_weights, valid_weights)
}

impl Unas {
    /// Uniform logits for `edges` edges; `latency` adds the latency term.
    pub fn new(
        edges: usize,
        candidates: usize,
        schedule: ArchSchedule,
        settings: UnasSettings,
        latency: Option<LatencyPenalty>,
    ) -> Self {
        Unas {
            logits: ArchLogits::new(edges, candidates, schedule),
            settings,
            latency,
        }
    }

    fn paired(ctx: &StepContext<'_>) -> Result<()> {
        if ctx.train.labels.len() != ctx.valid.labels.len() {
            return Err(Error::Setting {
                name: "batch-size".into(),
                problem: format!(
                    "UNAS pairs training and validation images, but the batches hold {} and {}",
                    ctx.train.labels.len(),
                    ctx.valid.labels.len()
                ),
            });
        }
        Ok(())
    }

    /// `f` at relaxed weights, differentiated with respect to them; `c` weighs latency.
    fn relaxed(&self, ctx: &mut StepContext<'_>, weights: &[Vec<f32>], c: f32) -> Result<Relaxed> {
        let routes: Vec<Route> = weights.iter().map(|w| Route::Dense(w.clone())).collect();
        let lambda = self.settings.gap_weight;
        let mut value = 0.0;
        // One forward pass per batch: the gap's multipliers are chosen between the forward
        // and the backward passes.
        let (gt, gv) = ctx.trainer.probe_paired_weighted(
            ctx.backend,
            (ctx.train, ctx.valid),
            &routes,
            |t, v| {
                let (gap, wt, wv) = generalisation_gap(t, v, lambda);
                value = gap;
                (wt, wv)
            },
        )?;
        let mut grad: Vec<Vec<f32>> = gt
            .route_grads
            .iter()
            .zip(&gv.route_grads)
            .map(|(a, b)| a.iter().zip(b).map(|(a, b)| a + b).collect())
            .collect();
        if let Some(penalty) = &self.latency {
            let term = penalty.relaxed(weights, c);
            value += term.value;
            for (g, l) in grad.iter_mut().zip(&term.grad) {
                g.iter_mut().zip(l).for_each(|(g, l)| *g += l);
            }
        }
        Ok(Relaxed { value, grad })
    }

    /// `f(z)` for the discrete architecture, and its validation loss.
    fn discrete(&self, ctx: &mut StepContext<'_>, arch: &Arch, c: f32) -> Result<(f32, f32)> {
        let routes: Vec<Route> = arch
            .0
            .iter()
            .map(|&k| Route::Fixed(usize::from(k)))
            .collect();
        let t = ctx.trainer.probe(ctx.backend, ctx.train, &routes, false)?;
        let v = ctx.trainer.probe(ctx.backend, ctx.valid, &routes, false)?;
        let (mut value, _, _) =
            generalisation_gap(&t.sample_losses, &v.sample_losses, self.settings.gap_weight);
        if let Some(penalty) = &self.latency {
            value += penalty.discrete(arch, c)?;
        }
        Ok((value, v.loss))
    }
}

impl OneShotStrategy for Unas {
    fn name(&self) -> &'static str {
        "unas"
    }

    fn logits(&self) -> &ArchLogits {
        &self.logits
    }

    fn exclude(&mut self, k: usize) {
        self.logits.exclude(k);
    }

    fn warmup_share(&self) -> f32 {
        // UNAS trains the weights alone for 15 of its 100 epochs.
        0.15
    }

    fn step(&mut self, ctx: &mut StepContext<'_>) -> Result<StepReport> {
        Self::paired(ctx)?;
        let tau = self.settings.temperature;
        let c = self
            .latency
            .as_ref()
            .map_or(0.0, |p| p.weight_at(ctx.progress, ctx.warmup));
        let q = self.logits.probabilities();
        let samples: Vec<EdgeSample> = q
            .iter()
            .map(|q| {
                let u: Vec<f32> = (0..q.len()).map(|_| open_uniform(ctx.rng)).collect();
                edge_sample(q, &u, tau)
            })
            .collect();
        let z = Arch(samples.iter().map(|s| s.choice as u8).collect());
        let zeta: Vec<Vec<f32>> = samples.iter().map(|s| s.zeta.clone()).collect();
        let (f_z, valid_loss) = self.discrete(ctx, &z, c)?;
        let relaxed = self.relaxed(ctx, &zeta, c)?;
        // f(zeta~) = f(zeta) in value: the REINFORCE term's control variate.
        let reinforce = f_z - relaxed.value;
        let grad: Vec<Vec<f32>> = samples
            .iter()
            .enumerate()
            .map(|(e, s)| {
                let score = score_function(&q[e], s.choice);
                // df/dlogits of the relaxation (same for zeta and zeta~: same value).
                let d_logits: Vec<f32> = softmax_backward(&s.zeta, &relaxed.grad[e])
                    .into_iter()
                    .map(|v| v / tau)
                    .collect();
                let d_q: Vec<f32> = d_logits
                    .iter()
                    .zip(&s.conditional_dq)
                    .map(|(g, d)| g * d)
                    .collect();
                let through_conditional = softmax_backward(&q[e], &d_q);
                (0..score.len())
                    .map(|k| reinforce * score[k] + d_logits[k] - through_conditional[k])
                    .collect()
            })
            .collect();
        self.logits.descend(&grad);
        let routes: Vec<Route> = zeta.into_iter().map(Route::Dense).collect();
        let train =
            ctx.trainer
                .train_weights(ctx.backend, ctx.train, &routes, ctx.weights_progress)?;
        let mut report = StepReport::new(&train, None);
        report.valid_loss = Some(valid_loss);
        Ok(report)
    }

    fn save(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("serialisable")
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let latency = self.latency.take();
        *self = super::decode(bytes)?;
        self.latency = latency;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_gap_multipliers_give_the_gradient_of_the_per_image_objective() {
        let t = [0.5f32, 1.0, 2.0];
        let v = [1.5f32, 0.5, 2.5];
        let lambda = 0.5;
        let (value, wt, wv) = generalisation_gap(&t, &v, lambda);
        // (0.5 + 0.5) + (1.0 + 0.25) + (2.0 + 0.25) = 4.5, over 3.
        assert!((value - 1.5).abs() < 1e-6, "{value}");
        for i in 0..3 {
            let f = |dt: f32, dv: f32| {
                let mut t2 = t;
                let mut v2 = v;
                t2[i] += dt;
                v2[i] += dv;
                generalisation_gap(&t2, &v2, lambda).0
            };
            // d value / d t_i = wt_i / N and d value / d v_i = wv_i / N.
            let dt = (f(1e-3, 0.0) - f(-1e-3, 0.0)) / 2e-3;
            let dv = (f(0.0, 1e-3) - f(0.0, -1e-3)) / 2e-3;
            assert!(
                (dt - wt[i] / 3.0).abs() < 1e-3,
                "{i}: {dt} vs {}",
                wt[i] / 3.0
            );
            assert!(
                (dv - wv[i] / 3.0).abs() < 1e-3,
                "{i}: {dv} vs {}",
                wv[i] / 3.0
            );
        }
    }

    /// The conditional relaxation derived from the same uniforms reproduces the sample's
    /// logits, and its stated derivative in `q` is the logit's (finite differences with
    /// `v` held fixed).
    #[test]
    fn the_conditional_relaxation_from_the_same_uniforms_equals_the_sample() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let q = [0.1f32, 0.4, 0.2, 0.3];
        for _ in 0..50 {
            let u: Vec<f32> = (0..4).map(|_| open_uniform(&mut rng)).collect();
            let s = edge_sample(&q, &u, 0.4);
            let b = s.choice;
            let log_vb = u[b].ln() / q[b];
            let log_v: Vec<f64> = (0..4)
                .map(|i| f64::from(u[i].ln()) - f64::from(q[i]) * f64::from(log_vb))
                .collect();
            let conditional = |q: &[f64]| -> Vec<f64> {
                (0..4)
                    .map(|i| {
                        if i == b {
                            -(-f64::from(log_vb)).ln()
                        } else {
                            -(-log_v[i] / q[i] - f64::from(log_vb)).ln()
                        }
                    })
                    .collect()
            };
            let q64: Vec<f64> = q.iter().map(|&v| f64::from(v)).collect();
            let tilde = conditional(&q64);
            let relaxed = softmax(&tilde.iter().map(|v| (*v / 0.4) as f32).collect::<Vec<_>>());
            for (a, b) in relaxed.iter().zip(&s.zeta) {
                assert!((a - b).abs() < 1e-4, "{relaxed:?} vs {:?}", s.zeta);
            }
            for i in (0..4).filter(|&i| i != b) {
                let mut plus = q64.clone();
                plus[i] += 1e-6;
                let mut minus = q64.clone();
                minus[i] -= 1e-6;
                let numeric = (conditional(&plus)[i] - conditional(&minus)[i]) / 2e-6;
                let stated = f64::from(s.conditional_dq[i]);
                assert!(
                    (numeric - stated).abs() < 1e-2 * (1.0 + numeric.abs()),
                    "{i}: {numeric} vs {stated}"
                );
            }
        }
    }
}
