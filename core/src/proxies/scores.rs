//! The proxies themselves, and the rank correlations that judge them.

use hwnas_kernels::{Cpu, Tape, Tensor};
use serde::{Deserialize, Serialize};

use super::nb201_net::{Nb201Net, ParamSource};
use crate::space::Arch;

/// Scores of one architecture (higher is predicted better).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProxyScores {
    /// log10 of synflow.
    pub synflow: f64,
    /// NASWOT's log-determinant.
    pub naswot: f64,
    /// Sum over layers of the gradient's L2 norm.
    pub grad_norm: f64,
    /// Sum of |weight x gradient|.
    pub snip: f64,
}

/// The network synflow is computed on: NAS-Bench-201's own (16 channels, 5 cells per
/// stage) without batch norm, as the reference builds it for synflow.
pub const SYNFLOW_NET: Nb201Net = Nb201Net {
    channels: 16,
    cells: 5,
    classes: 10,
    batch_norm: false,
};

/// log10 of synflow: with all weights replaced by their absolute values and an all-ones
/// input, `R = sum(output)`, the score is `sum(|theta * dR/dtheta|)` over the convolution
/// and classifier weights, as the reference computes it in `f64`.
///
/// In `f32` the five-cell network's path gains overflow, so the same quantity is computed
/// scaled: the input by `s` and the backward pass's seed by `g`. The network is linear in
/// its input once its weights are non-negative (every ReLU passes its input), so every
/// activation scales by `s`, every gradient by `g`, and each `theta * dR/dtheta` by exactly
/// `s * g`, which is divided out in `f64`. The pair is chosen from a grid until the forward
/// and backward values stay in range: the same score, not an approximation of it.
pub fn synflow(net: &Nb201Net, arch: &Arch, resolution: usize) -> f64 {
    for (input_exp, seed_exp) in [(0i32, 0i32), (-20, -10), (-30, -20), (-35, -30), (-20, -30)] {
        let (s, g) = (10f32.powi(input_exp), 10f32.powi(seed_exp));
        let backend = Cpu;
        let mut tape = Tape::new(&backend);
        let mut params = ParamSource::new(0, true);
        let x = tape.leaf(
            Tensor::new(
                &[1, 3, resolution, resolution],
                vec![s; 3 * resolution * resolution],
            )
            .expect("size"),
            false,
        );
        let (logits, _) = net.forward(&mut tape, &mut params, arch, x);
        let r = tape.sum(logits).expect("sum");
        let seeded = tape.scale(r, g).expect("scale");
        if !tape.value(seeded).data()[0].is_finite() {
            continue;
        }
        tape.backward(seeded).expect("scalar");
        let mut finite = true;
        let score: f64 = params
            .created
            .iter()
            .map(|(v, t)| {
                tape.grad(*v).map_or(0.0, |grad| {
                    t.data()
                        .iter()
                        .zip(grad.data())
                        .map(|(a, b)| {
                            finite &= b.is_finite();
                            (f64::from(*a) * f64::from(*b)).abs()
                        })
                        .sum()
                })
            })
            .sum();
        if !finite || !score.is_finite() {
            continue;
        }
        if score > 0.0 {
            return score.log10() - f64::from(input_exp) - f64::from(seed_exp);
        }
        if score == 0.0 && tape.value(r).data()[0] == 0.0 {
            // No path from the input to the output (a cell of `none` edges).
            return f64::NEG_INFINITY;
        }
    }
    f64::NEG_INFINITY
}

/// NASWOT (Mellor et al. 2021): binary codes of every ReLU unit for a batch; the kernel
/// `K[i][j]` counts the units on which images `i` and `j` agree; the score is log|K|.
pub fn naswot(net: &Nb201Net, arch: &Arch, batch: &Tensor) -> f64 {
    let backend = Cpu;
    let mut tape = Tape::new(&backend);
    let mut params = ParamSource::new(0, false);
    let x = tape.leaf(batch.clone(), false);
    let (_, relus) = net.forward(&mut tape, &mut params, arch, x);
    let n = batch.shape()[0];
    let mut kernel = vec![0.0f64; n * n];
    for relu in relus {
        let value = tape.value(relu);
        let units = value.len() / n;
        let on: Vec<f32> = value.data().iter().map(|&v| f32::from(v > 0.0)).collect();
        let off: Vec<f32> = on.iter().map(|v| 1.0 - v).collect();
        let mut agree = vec![0.0f32; n * n];
        hwnas_kernels::cpu::gemm::sgemm(n, units, n, &on, false, &on, true, 0.0, &mut agree);
        hwnas_kernels::cpu::gemm::sgemm(n, units, n, &off, false, &off, true, 1.0, &mut agree);
        kernel
            .iter_mut()
            .zip(agree)
            .for_each(|(k, a)| *k += f64::from(a));
    }
    log_det_psd(&kernel, n)
}

/// log|det K| of a symmetric positive semi-definite matrix by Cholesky (with a tiny ridge).
fn log_det_psd(k: &[f64], n: usize) -> f64 {
    let mut l = vec![0.0f64; n * n];
    let ridge = 1e-9 * (0..n).map(|i| k[i * n + i]).fold(0.0, f64::max).max(1.0);
    let mut log_det = 0.0;
    for i in 0..n {
        for j in 0..=i {
            let mut sum = k[i * n + j] + if i == j { ridge } else { 0.0 };
            for p in 0..j {
                sum -= l[i * n + p] * l[j * n + p];
            }
            if i == j {
                if sum <= 0.0 {
                    return f64::NEG_INFINITY;
                }
                l[i * n + i] = sum.sqrt();
                log_det += 2.0 * sum.sqrt().ln();
            } else {
                l[i * n + j] = sum / l[j * n + j];
            }
        }
    }
    log_det
}

/// grad-norm (sum over layers of the L2 norm of the loss gradient) and snip (sum of
/// |weight x gradient|) for one labelled batch.
pub fn grad_norm_and_snip(
    net: &Nb201Net,
    arch: &Arch,
    batch: &Tensor,
    labels: &[usize],
) -> (f64, f64) {
    let backend = Cpu;
    let mut tape = Tape::new(&backend);
    let mut params = ParamSource::new(0, false);
    let x = tape.leaf(batch.clone(), false);
    let (logits, _) = net.forward(&mut tape, &mut params, arch, x);
    let labels = hwnas_kernels::Labels::on_host(labels).expect("labels fit");
    let loss = tape.cross_entropy(logits, &labels).expect("labels fit");
    tape.backward(loss).expect("scalar");
    let mut grad_norm = 0.0;
    let mut snip = 0.0;
    for (v, t) in &params.created {
        if let Some(g) = tape.grad(*v) {
            grad_norm += g
                .data()
                .iter()
                .map(|x| f64::from(*x).powi(2))
                .sum::<f64>()
                .sqrt();
            snip += t
                .data()
                .iter()
                .zip(g.data())
                .map(|(a, b)| f64::from(*a * *b).abs())
                .sum::<f64>();
        }
    }
    (grad_norm, snip)
}

/// jacob_cov (Mellor et al. 2020, as the zero-cost proxies compute it): the gradient of the
/// summed outputs with respect to each input image (batch norm in training mode), the
/// correlation matrix of those per-image Jacobians, and `-sum(log(v + k) + 1 / (v + k))`
/// over its eigenvalues `v` (`k` = 1e-5): higher when the images' Jacobians are less
/// correlated. `NaN` where the correlations are undefined (a Jacobian that is constant).
pub fn jacob_cov(net: &Nb201Net, arch: &Arch, batch: &Tensor) -> f64 {
    let backend = Cpu;
    let mut tape = Tape::new(&backend);
    let mut params = ParamSource::new(0, false);
    let x = tape.leaf(batch.clone(), true);
    let (logits, _) = net.forward(&mut tape, &mut params, arch, x);
    let total = tape.sum(logits).expect("sum");
    tape.backward(total).expect("scalar");
    let n = batch.shape()[0];
    let Some(grad) = tape.grad(x) else {
        return f64::NAN;
    };
    let per_image = grad.len() / n;
    // Each image's Jacobian centred and scaled to unit norm: their Gram matrix is the
    // correlation matrix (numpy's corrcoef of the rows).
    let mut rows = Vec::with_capacity(n);
    for image in grad.data().chunks(per_image) {
        let mean = image.iter().map(|&v| f64::from(v)).sum::<f64>() / per_image as f64;
        let centred: Vec<f64> = image.iter().map(|&v| f64::from(v) - mean).collect();
        let norm = centred.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return f64::NAN;
        }
        rows.push(centred.into_iter().map(|v| v / norm).collect::<Vec<f64>>());
    }
    let correlations = nalgebra::DMatrix::from_fn(n, n, |i, j| {
        rows[i]
            .iter()
            .zip(&rows[j])
            .map(|(a, b)| a * b)
            .sum::<f64>()
    });
    let k = 1e-5;
    -correlations
        .symmetric_eigenvalues()
        .iter()
        .map(|&v| (v + k).ln() + 1.0 / (v + k))
        .sum::<f64>()
}

fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0;
        for &k in &order[i..=j] {
            ranks[k] = average;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rank correlation (ties get average ranks).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Kendall's tau-b.
pub fn kendall_tau(a: &[f64], b: &[f64]) -> f64 {
    let (mut concordant, mut discordant, mut ties_a, mut ties_b) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for i in 0..a.len() {
        for j in i + 1..a.len() {
            let (da, db) = ((a[i] - a[j]).signum(), (b[i] - b[j]).signum());
            if da == 0.0 && db == 0.0 {
                continue;
            } else if da == 0.0 {
                ties_a += 1.0;
            } else if db == 0.0 {
                ties_b += 1.0;
            } else if da == db {
                concordant += 1.0;
            } else {
                discordant += 1.0;
            }
        }
    }
    (concordant - discordant)
        / ((concordant + discordant + ties_a) * (concordant + discordant + ties_b)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_correlations_of_known_orders() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((spearman(&a, &[2.0, 4.0, 6.0, 8.0, 10.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[5.0, 4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert!((kendall_tau(&a, &[1.0, 3.0, 2.0, 4.0, 5.0]) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn log_det_of_a_diagonal() {
        let k = [2.0, 0.0, 0.0, 3.0];
        assert!((log_det_psd(&k, 2) - 6f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn synflow_ranks_a_conv_cell_above_an_empty_one() {
        let net = Nb201Net {
            channels: 4,
            cells: 1,
            classes: 10,
            batch_norm: false,
        };
        let conv = synflow(&net, &Arch(vec![3; 6]), 8);
        let skip = synflow(&net, &Arch(vec![1; 6]), 8);
        let none = synflow(&net, &Arch(vec![0; 6]), 8);
        assert!(conv > skip, "{conv} vs {skip}");
        assert!(none < skip, "{none} vs {skip}");
    }

    /// With NAS-Bench-201's own network (batch norm before the last ReLU, no batch norm on
    /// the reduction shortcut), the gradient proxies see convolutions, not linear paths: a
    /// cell of 3x3 convolutions outranks an all-skip and an all-pool cell.
    #[test]
    fn grad_norm_and_snip_rank_convolutions_above_skips_and_pools() {
        let net = Nb201Net::default();
        let batch = Tensor::randn(&[8, 3, 32, 32], 1.0, 3);
        let labels: Vec<usize> = (0..8).map(|i| i % 10).collect();
        let score = |op: u8| grad_norm_and_snip(&net, &Arch(vec![op; 6]), &batch, &labels);
        let (conv, skip, pool) = (score(3), score(1), score(4));
        assert!(
            conv.0 > skip.0 && conv.0 > pool.0,
            "grad-norm {conv:?} {skip:?} {pool:?}"
        );
        assert!(
            conv.1 > skip.1 && conv.1 > pool.1,
            "snip {conv:?} {skip:?} {pool:?}"
        );
    }

    /// Synflow on the full five-cell network stays finite (the scaled computation) and
    /// ranks as the paths say: convolutions over skips over nothing.
    #[test]
    fn synflow_is_finite_on_the_full_network() {
        let conv = synflow(&SYNFLOW_NET, &Arch(vec![3; 6]), 32);
        let skip = synflow(&SYNFLOW_NET, &Arch(vec![1; 6]), 32);
        assert!(conv.is_finite() && skip.is_finite(), "{conv} {skip}");
        assert!(conv > skip, "{conv} vs {skip}");
        assert_eq!(
            synflow(&SYNFLOW_NET, &Arch(vec![0; 6]), 32),
            f64::NEG_INFINITY
        );
    }

    /// Identical images have identical Jacobians: perfectly correlated, the lowest score; a
    /// batch of distinct images scores higher.
    #[test]
    fn jacob_cov_rewards_decorrelated_jacobians() {
        let net = Nb201Net {
            channels: 4,
            cells: 1,
            classes: 10,
            batch_norm: true,
        };
        let arch = Arch(vec![3; 6]);
        let distinct = Tensor::randn(&[6, 3, 8, 8], 1.0, 5);
        let one = Tensor::randn(&[1, 3, 8, 8], 1.0, 6);
        let near: Vec<f32> = (0..6)
            .flat_map(|i| one.data().iter().map(move |v| v + 1e-3 * i as f32))
            .collect();
        let near = Tensor::new(&[6, 3, 8, 8], near).unwrap();
        let (a, b) = (
            jacob_cov(&net, &arch, &distinct),
            jacob_cov(&net, &arch, &near),
        );
        assert!(a.is_finite() && a > b, "distinct {a} vs near-identical {b}");
    }
}
