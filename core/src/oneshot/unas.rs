//! UNAS (Vahdat et al., CVPR 2020): independent categoricals `q = softmax(alpha)` per edge;
//! each step draws Gumbel noise, giving a discrete sample `z` (its argmax) and a relaxed
//! one `zeta` (temperature 0.4), plus REBAR's conditional relaxation `zeta~ | z`. The
//! architecture descends the unbiased estimator
//!
//! `(f(z) - f(zeta~)) grad log q(z) + grad f(zeta) - grad f(zeta~)`
//!
//! of the gradient of `E[f(z)]`, where `f = CE_train + lambda |CE_valid - CE_train|`
//! (the generalisation-gap objective, lambda 0.5, on paired batches) plus a latency term
//! `c ReLU(lat - T)`. A lookup table linear in the choices ([`AdditiveLatency`]) is
//! differentiated through the relaxed samples; any other [`LatencyModel`] (a measured
//! one) enters only `f(z)`, so only the REINFORCE term carries it — UNAS's point.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::arch::{
    ArchLogits, ArchSchedule, argmax, gumbel, open_uniform, score_function, softmax,
    softmax_backward,
};
use super::{OneShotStrategy, StepContext, StepReport};
use crate::error::Result;
use crate::evaluate::LatencyModel;
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

/// A latency table linear in the choices: `base + sum_e cost[e][k]` for the chosen `k`
/// on each edge (and the expectation under relaxed weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdditiveLatency {
    /// Latency of everything but the choices, ms.
    pub base: f64,
    /// Per edge and candidate, ms.
    pub cost: Vec<Vec<f64>>,
}

impl AdditiveLatency {
    /// Latency under per-edge weights (one-hot for a discrete architecture).
    pub fn weighted_ms(&self, weights: &[Vec<f32>]) -> f64 {
        self.base
            + self
                .cost
                .iter()
                .zip(weights)
                .map(|(c, w)| c.iter().zip(w).map(|(c, w)| c * f64::from(*w)).sum::<f64>())
                .sum::<f64>()
    }

    /// Latency of a discrete architecture.
    pub fn arch_ms(&self, arch: &Arch) -> f64 {
        self.base
            + self
                .cost
                .iter()
                .zip(&arch.0)
                .map(|(c, &k)| c[usize::from(k)])
                .sum::<f64>()
    }

    /// Least-squares fit of the table to a latency model over `archs` (one decision per
    /// edge, `candidates` choices each; a ridge of 1e-6 resolves the one-hot columns'
    /// collinearity).
    pub fn fit(
        model: &dyn LatencyModel,
        archs: &[Arch],
        edges: usize,
        candidates: usize,
    ) -> Result<Self> {
        let k = candidates;
        let n = 1 + edges * k;
        let mut ata = vec![vec![0.0f64; n]; n];
        let mut atb = vec![0.0f64; n];
        for arch in archs {
            let y = model.latency_ms(arch)?;
            let mut row = vec![0.0; n];
            row[0] = 1.0;
            for (e, &op) in arch.0.iter().enumerate() {
                row[1 + e * k + usize::from(op)] = 1.0;
            }
            for i in 0..n {
                atb[i] += row[i] * y;
                for j in 0..n {
                    ata[i][j] += row[i] * row[j];
                }
            }
        }
        for (i, r) in ata.iter_mut().enumerate() {
            r[i] += 1e-6;
        }
        let x = solve(ata, atb);
        Ok(AdditiveLatency {
            base: x[0],
            cost: (0..edges)
                .map(|e| x[1 + e * k..1 + (e + 1) * k].to_vec())
                .collect(),
        })
    }
}

/// Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let d = a[col][col];
        if d.abs() < 1e-12 {
            continue;
        }
        for row in col + 1..n {
            let factor = a[row][col] / d;
            let pivot_row = a[col].clone();
            for (target, source) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *target -= factor * source;
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|c| a[row][c] * x[c]).sum();
        x[row] = if a[row][row].abs() < 1e-12 {
            0.0
        } else {
            (b[row] - s) / a[row][row]
        };
    }
    x
}

/// Where UNAS's latency comes from.
#[derive(Clone)]
pub enum LatencySource {
    /// A linear table: differentiable through the relaxed samples.
    Table(AdditiveLatency),
    /// Any model, measured latency included: through the REINFORCE term only.
    Measured(Arc<dyn LatencyModel>),
}

/// UNAS's latency term `weight * ReLU(lat - target_ms)`.
#[derive(Clone)]
pub struct LatencyPenalty {
    /// The latency.
    pub source: LatencySource,
    /// The budget, ms.
    pub target_ms: f64,
    /// The penalty per ms over budget (UNAS's `c_t`).
    pub weight: f32,
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

    /// `f` at relaxed (or one-hot) weights, differentiated with respect to them.
    fn relaxed(&self, ctx: &mut StepContext<'_>, weights: &[Vec<f32>]) -> Result<Relaxed> {
        let routes: Vec<Route> = weights.iter().map(|w| Route::Dense(w.clone())).collect();
        let t = ctx.trainer.probe(ctx.backend, ctx.train, &routes, true)?;
        let v = ctx.trainer.probe(ctx.backend, ctx.valid, &routes, true)?;
        let lambda = self.settings.gap_weight;
        let sign = (v.loss - t.loss).signum();
        let mut value = t.loss + lambda * (v.loss - t.loss).abs();
        let mut grad: Vec<Vec<f32>> = t
            .route_grads
            .iter()
            .zip(&v.route_grads)
            .map(|(gt, gv)| {
                gt.iter()
                    .zip(gv)
                    .map(|(a, b)| (1.0 - lambda * sign) * a + lambda * sign * b)
                    .collect()
            })
            .collect();
        if let Some(LatencyPenalty {
            source: LatencySource::Table(table),
            target_ms,
            weight,
        }) = &self.latency
        {
            let over = table.weighted_ms(weights) - target_ms;
            if over > 0.0 {
                value += weight * over as f32;
                for (g, c) in grad.iter_mut().zip(&table.cost) {
                    g.iter_mut()
                        .zip(c)
                        .for_each(|(g, c)| *g += weight * *c as f32);
                }
            }
        }
        Ok(Relaxed { value, grad })
    }

    /// `f(z)` for the discrete architecture.
    fn discrete(&self, ctx: &mut StepContext<'_>, arch: &Arch) -> Result<(f32, f32)> {
        let routes: Vec<Route> = arch
            .0
            .iter()
            .map(|&k| Route::Fixed(usize::from(k)))
            .collect();
        let t = ctx.trainer.probe(ctx.backend, ctx.train, &routes, false)?;
        let v = ctx.trainer.probe(ctx.backend, ctx.valid, &routes, false)?;
        let mut value = t.loss + self.settings.gap_weight * (v.loss - t.loss).abs();
        if let Some(penalty) = &self.latency {
            let lat = match &penalty.source {
                LatencySource::Table(table) => table.arch_ms(arch),
                LatencySource::Measured(model) => model.latency_ms(arch)?,
            };
            value += penalty.weight * (lat - penalty.target_ms).max(0.0) as f32;
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

    fn warmup_share(&self) -> f32 {
        // UNAS trains the weights alone for 15 of its 100 epochs.
        0.15
    }

    fn step(&mut self, ctx: &mut StepContext<'_>) -> Result<StepReport> {
        let tau = self.settings.temperature;
        let q = self.logits.probabilities();
        let mut z = Vec::new();
        let mut zeta = Vec::new();
        let mut zeta_c = Vec::new();
        // d zeta~_i / d theta_i per edge (0 for the sampled candidate).
        let mut dz_dtheta = Vec::new();
        for (alpha, theta) in self.logits.alpha.iter().zip(&q) {
            let g = gumbel(alpha.len(), ctx.rng);
            let shifted: Vec<f32> = alpha.iter().zip(&g).map(|(a, g)| a + g).collect();
            let b = argmax(&shifted);
            z.push(b as u8);
            zeta.push(softmax(
                &shifted.iter().map(|v| v / tau).collect::<Vec<_>>(),
            ));
            // REBAR's conditional Gumbel sample given argmax b, in log-theta space.
            let v: Vec<f32> = (0..alpha.len()).map(|_| open_uniform(ctx.rng)).collect();
            let c = -v[b].ln();
            let mut tilde = vec![0.0f32; alpha.len()];
            let mut derivative = vec![0.0f32; alpha.len()];
            for i in 0..alpha.len() {
                if i == b {
                    tilde[i] = -c.ln();
                } else {
                    let a = -v[i].ln();
                    let inner = a / theta[i].max(1e-12) + c;
                    tilde[i] = -inner.ln();
                    derivative[i] = a / (theta[i] * theta[i]).max(1e-24) / inner;
                }
            }
            zeta_c.push(softmax(&tilde.iter().map(|v| v / tau).collect::<Vec<_>>()));
            dz_dtheta.push(derivative);
        }
        let z = Arch(z);
        let (f_z, valid_loss) = self.discrete(ctx, &z)?;
        let relaxed = self.relaxed(ctx, &zeta)?;
        let conditional = self.relaxed(ctx, &zeta_c)?;
        let reinforce = f_z - conditional.value;
        let grad: Vec<Vec<f32>> = (0..q.len())
            .map(|e| {
                let score = score_function(&q[e], usize::from(z.0[e]));
                let through_zeta: Vec<f32> = softmax_backward(&zeta[e], &relaxed.grad[e])
                    .into_iter()
                    .map(|v| v / tau)
                    .collect();
                let d_tilde: Vec<f32> = softmax_backward(&zeta_c[e], &conditional.grad[e])
                    .into_iter()
                    .zip(&dz_dtheta[e])
                    .map(|(v, d)| v / tau * d)
                    .collect();
                let through_tilde = softmax_backward(&q[e], &d_tilde);
                (0..score.len())
                    .map(|k| reinforce * score[k] + through_zeta[k] - through_tilde[k])
                    .collect()
            })
            .collect();
        self.logits.descend(&grad);
        let routes: Vec<Route> = z.0.iter().map(|&k| Route::Fixed(usize::from(k))).collect();
        let train = ctx
            .trainer
            .train_weights(ctx.backend, ctx.train, &routes, ctx.progress)?;
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
