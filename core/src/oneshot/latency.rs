//! The latency term any one-shot strategy can add to its architecture objective:
//! `c(t) ReLU(lat - T)` over a budget `T`, with a weight `c(t)` ramped up from 0 after the
//! strategy's warm-up, as UNAS ramps its `latency_coeff` over `latency_iter` steps.
//!
//! Latency comes from two places, as in UNAS: a table linear in the choices
//! ([`AdditiveLatency`], UNAS's `SurrogateLinear`) that gradients flow through, fitted to
//! the target's latency; and the target's own latency of a discrete architecture (a
//! published table's row, or a measurement), which only estimators that take
//! non-differentiable rewards can use. Who uses what:
//! - DARTS: the table at the expected weights `softmax(alpha)`;
//! - GDAS: the table at the hard sample, its gradient through the soft one;
//! - AdvantageNAS: the table's cost of the sampled candidate added to its edge's credit (an
//!   additive latency splits exactly over the edges);
//! - REINFORCE, and RADARS's controller: the target's latency of the sampled cell in the
//!   reward (RADARS's DARTS phase: the table, as DARTS);
//! - UNAS: the target's latency of the discrete sample in `f(z)`, the table at the relaxed
//!   sample in `f(zeta)` (the control variate).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::evaluate::LatencyModel;
use crate::space::Arch;

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

    /// Least-squares fit to `samples`: each supernet edge's choice in an architecture
    /// (`SupernetKind::edge_choices`), with that architecture's latency in ms. Edges of the
    /// same `groups[e]` share their costs (edges that compute the same shapes: fewer
    /// unknowns, so fewer measurements); a ridge of 1e-6 resolves the one-hot columns'
    /// collinearity.
    pub fn fit(samples: &[(Vec<usize>, f64)], candidates: usize, groups: &[usize]) -> Result<Self> {
        let k = candidates;
        let group_count = groups.iter().max().map_or(0, |g| g + 1);
        let n = 1 + group_count * k;
        let mut ata = vec![vec![0.0f64; n]; n];
        let mut atb = vec![0.0f64; n];
        for (choices, y) in samples {
            if choices.len() != groups.len() || choices.iter().any(|&c| c >= k) || !y.is_finite() {
                return Err(Error::Setting {
                    name: "latency table".into(),
                    problem: format!(
                        "a sample of {} choices (each below {k}) at {y} ms does not fit {} edges of {k} candidates",
                        choices.len(),
                        groups.len()
                    ),
                });
            }
            let mut row = vec![0.0; n];
            row[0] = 1.0;
            for (&g, &op) in groups.iter().zip(choices) {
                row[1 + g * k + op] += 1.0;
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
            cost: groups
                .iter()
                .map(|&g| x[1 + g * k..1 + (g + 1) * k].to_vec())
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

/// The latency term `c(t) ReLU(lat - target_ms)` with `c` ramped from 0 to `weight`.
#[derive(Clone, Serialize, Deserialize)]
pub struct LatencyPenalty {
    /// The differentiable table, fitted to the target's latency.
    pub table: AdditiveLatency,
    /// The target's latency of a discrete architecture, where it is not the table itself
    /// (a published table's rows, a measurement); `None`: the table. Not saved with a
    /// checkpoint: a resumed search is given its penalty again.
    #[serde(skip)]
    pub model: Option<Arc<dyn LatencyModel>>,
    /// The budget, ms.
    pub target_ms: f64,
    /// The penalty per ms over budget once ramped (UNAS's `latency_coeff`).
    pub weight: f32,
    /// Share of the search, counted from the end of the strategy's warm-up, over which the
    /// weight rises linearly from 0 (0: at full weight from the start).
    pub ramp: f32,
}

impl std::fmt::Debug for LatencyPenalty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyPenalty")
            .field("table", &self.table)
            .field("model", &self.model.as_ref().map(|m| m.name()))
            .field("target_ms", &self.target_ms)
            .field("weight", &self.weight)
            .field("ramp", &self.ramp)
            .finish()
    }
}

/// The default ramp: a quarter of the search.
pub const DEFAULT_RAMP: f32 = 0.25;

/// The latency term at relaxed (or one-hot) weights: its value and its gradient with
/// respect to each edge's weights.
#[derive(Debug, Clone, PartialEq)]
pub struct RelaxedLatency {
    /// `c ReLU(table(weights) - T)`.
    pub value: f32,
    /// Per edge and candidate (zeros while within the budget).
    pub grad: Vec<Vec<f32>>,
}

impl LatencyPenalty {
    /// The weight `c` at `progress` (in `[0, 1]`) of a search whose first `warmup` share
    /// trains the weights alone.
    pub fn weight_at(&self, progress: f32, warmup: f32) -> f32 {
        if self.ramp <= 0.0 {
            return self.weight;
        }
        self.weight * ((progress - warmup) / self.ramp).clamp(0.0, 1.0)
    }

    /// The term at per-edge weights through the table, with weight `c`.
    pub fn relaxed(&self, weights: &[Vec<f32>], c: f32) -> RelaxedLatency {
        let over = self.table.weighted_ms(weights) - self.target_ms;
        let active = over > 0.0 && c > 0.0;
        RelaxedLatency {
            value: if active { c * over as f32 } else { 0.0 },
            grad: self
                .table
                .cost
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|&ms| if active { c * ms as f32 } else { 0.0 })
                        .collect()
                })
                .collect(),
        }
    }

    /// The target's latency of `arch`, ms (the table's where there is no model).
    pub fn arch_ms(&self, arch: &Arch) -> Result<f64> {
        match &self.model {
            Some(model) => model.latency_ms(arch),
            None => Ok(self.table.arch_ms(arch)),
        }
    }

    /// The term for a discrete `arch` at the target's latency, with weight `c`.
    pub fn discrete(&self, arch: &Arch, c: f32) -> Result<f32> {
        if c <= 0.0 {
            return Ok(0.0);
        }
        Ok(c * (self.arch_ms(arch)? - self.target_ms).max(0.0) as f32)
    }
}

/// Adds the latency term's gradient at `weights` to a strategy's route gradients (nothing
/// without a penalty): the differentiable strategies' use of it.
pub fn add_latency_grad(
    route_grads: &mut [Vec<f32>],
    penalty: Option<&LatencyPenalty>,
    weights: &[Vec<f32>],
    progress: f32,
    warmup: f32,
) {
    let Some(penalty) = penalty else {
        return;
    };
    let term = penalty.relaxed(weights, penalty.weight_at(progress, warmup));
    for (g, l) in route_grads.iter_mut().zip(&term.grad) {
        g.iter_mut().zip(l).for_each(|(g, l)| *g += l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn penalty() -> LatencyPenalty {
        LatencyPenalty {
            table: AdditiveLatency {
                base: 1.0,
                cost: vec![vec![0.0, 2.0], vec![0.5, 1.0]],
            },
            model: None,
            target_ms: 2.0,
            weight: 0.5,
            ramp: 0.2,
        }
    }

    #[test]
    fn the_weight_ramps_from_zero_after_the_warm_up() {
        let p = penalty();
        assert_eq!(p.weight_at(0.3, 0.4), 0.0);
        assert!((p.weight_at(0.5, 0.4) - 0.25).abs() < 1e-6);
        assert_eq!(p.weight_at(0.9, 0.4), 0.5);
        let flat = LatencyPenalty { ramp: 0.0, ..p };
        assert_eq!(flat.weight_at(0.0, 0.4), 0.5);
    }

    #[test]
    fn the_term_is_the_hinge_of_the_table_and_its_gradient_the_costs_past_the_budget() {
        let p = penalty();
        // 1 + 0.5 * 2 + (0.5 * 0.5 + 0.5 * 1) = 2.75 ms: 0.75 over.
        let r = p.relaxed(&[vec![0.5, 0.5], vec![0.5, 0.5]], 0.5);
        assert!((r.value - 0.375).abs() < 1e-6, "{r:?}");
        assert_eq!(r.grad, vec![vec![0.0, 1.0], vec![0.25, 0.5]]);
        let within = p.relaxed(&[vec![1.0, 0.0], vec![1.0, 0.0]], 0.5);
        assert_eq!(within.value, 0.0);
        assert!(within.grad.iter().flatten().all(|g| *g == 0.0));
        assert_eq!(p.discrete(&Arch(vec![1, 1]), 0.5).unwrap(), 1.0);
        assert_eq!(p.discrete(&Arch(vec![0, 0]), 0.5).unwrap(), 0.0);
        assert_eq!(p.discrete(&Arch(vec![1, 1]), 0.0).unwrap(), 0.0);
    }
}
