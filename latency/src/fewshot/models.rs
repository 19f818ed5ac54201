//! The candidate predictors of a new device's log latency from a few of its measurements:
//! a line on the best-matching known device, the mean of the three best lines, ridge
//! regression on every known device and the architecture's encoding, and the best line with
//! a ridge correction. Each is fitted on the sampled rows only; [`select`] keeps the one
//! with the lowest leave-one-out error on them.

use nalgebra::{DMatrix, DVector};
use serde::Serialize;

/// What a model sees of one architecture: the known devices' log latencies (each
/// standardised over the table) and the architecture's one-hot encoding.
pub struct Features<'a> {
    /// `[device][row]` standardised log latency.
    pub devices: &'a [Vec<f64>],
    /// `[row]` one-hot encoding.
    pub arch: &'a [Vec<f64>],
}

impl Features<'_> {
    fn joint(&self, row: usize) -> Vec<f64> {
        let mut x: Vec<f64> = self.devices.iter().map(|d| d[row]).collect();
        x.extend_from_slice(&self.arch[row]);
        x
    }
}

/// `log y = slope * z[device] + intercept`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Line {
    /// Index of the known device.
    pub device: usize,
    /// Slope on its standardised log latency.
    pub slope: f64,
    /// Intercept.
    pub intercept: f64,
}

/// Ridge regression on the joint features, centred on the rows it was fitted on.
#[derive(Debug, Clone, Serialize)]
pub struct Ridge {
    /// Penalty chosen by leave-one-out error.
    pub lambda: f64,
    weights: Vec<f64>,
    feature_means: Vec<f64>,
    target_mean: f64,
}

/// A fitted predictor of log latency.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// The best single line.
    Line(Line),
    /// The mean of the best lines.
    MeanOfLines(Vec<Line>),
    /// Ridge on every known device and the architecture.
    Ridge(Ridge),
    /// The best line plus a ridge model of what it leaves.
    LineAndRidge {
        /// The line.
        line: Line,
        /// The correction.
        ridge: Ridge,
    },
}

/// The kinds [`select`] chooses among.
pub const KINDS: [&str; 4] = ["line", "mean_of_lines", "ridge", "line_and_ridge"];

impl Model {
    /// Predicted log latency of `row`.
    pub fn predict(&self, f: &Features, row: usize) -> f64 {
        let line = |l: &Line| l.slope * f.devices[l.device][row] + l.intercept;
        match self {
            Model::Line(l) => line(l),
            Model::MeanOfLines(ls) => ls.iter().map(line).sum::<f64>() / ls.len() as f64,
            Model::Ridge(r) => r.predict(&f.joint(row)),
            Model::LineAndRidge { line: l, ridge } => line(l) + ridge.predict(&f.joint(row)),
        }
    }

    /// The known devices the model leans on.
    pub fn devices(&self) -> Vec<usize> {
        match self {
            Model::Line(l) | Model::LineAndRidge { line: l, .. } => vec![l.device],
            Model::MeanOfLines(ls) => ls.iter().map(|l| l.device).collect(),
            Model::Ridge(_) => Vec::new(),
        }
    }

    /// The kind's name, one of [`KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Model::Line(_) => KINDS[0],
            Model::MeanOfLines(_) => KINDS[1],
            Model::Ridge(_) => KINDS[2],
            Model::LineAndRidge { .. } => KINDS[3],
        }
    }
}

impl Ridge {
    fn predict(&self, x: &[f64]) -> f64 {
        self.target_mean
            + x.iter()
                .zip(&self.feature_means)
                .zip(&self.weights)
                .map(|((x, m), w)| (x - m) * w)
                .sum::<f64>()
    }

    /// Fits `y` on `x` for each penalty in `lambdas` and keeps the one with the lowest
    /// closed-form leave-one-out error.
    fn fit(x: &[Vec<f64>], y: &[f64], lambdas: &[f64]) -> Ridge {
        let (n, p) = (x.len(), x[0].len());
        let feature_means: Vec<f64> = (0..p)
            .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64)
            .collect();
        let target_mean = y.iter().sum::<f64>() / n as f64;
        let xc = DMatrix::from_fn(n, p, |i, j| x[i][j] - feature_means[j]);
        let yc = DVector::from_iterator(n, y.iter().map(|v| v - target_mean));
        let gram = xc.transpose() * &xc;
        let xty = xc.transpose() * &yc;
        let mut best: Option<(f64, f64, DVector<f64>)> = None;
        for &lambda in lambdas {
            let a = &gram + DMatrix::identity(p, p) * lambda;
            let Some(chol) = a.cholesky() else { continue };
            let w = chol.solve(&xty);
            let hat_inner = chol.solve(&xc.transpose());
            let residuals = &yc - &xc * &w;
            let loo: f64 = (0..n)
                .map(|i| {
                    let h = xc.row(i).dot(&hat_inner.column(i).transpose()) + 1.0 / n as f64;
                    (residuals[i] / (1.0 - h).max(1e-9)).powi(2)
                })
                .sum();
            if best.as_ref().is_none_or(|b| loo < b.0) {
                best = Some((loo, lambda, w));
            }
        }
        let (_, lambda, w) = best.expect("a positive penalty makes the system solvable");
        Ridge {
            lambda,
            weights: w.iter().copied().collect(),
            feature_means,
            target_mean,
        }
    }
}

/// Every known device's line through the rows, best (by leave-one-out error) first.
fn ranked_lines(f: &Features, rows: &[usize], y: &[f64]) -> Vec<(f64, Line)> {
    let n = rows.len() as f64;
    let my = y.iter().sum::<f64>() / n;
    let mut lines: Vec<(f64, Line)> = f
        .devices
        .iter()
        .enumerate()
        .filter_map(|(device, z)| {
            let x: Vec<f64> = rows.iter().map(|&r| z[r]).collect();
            let mx = x.iter().sum::<f64>() / n;
            let sxx: f64 = x.iter().map(|v| (v - mx).powi(2)).sum();
            if sxx <= 1e-12 {
                return None;
            }
            let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
            let slope = sxy / sxx;
            let intercept = my - slope * mx;
            let loo: f64 = x
                .iter()
                .zip(y)
                .map(|(a, b)| {
                    let h = 1.0 / n + (a - mx).powi(2) / sxx;
                    ((b - slope * a - intercept) / (1.0 - h).max(1e-9)).powi(2)
                })
                .sum();
            Some((
                loo,
                Line {
                    device,
                    slope,
                    intercept,
                },
            ))
        })
        .collect();
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    lines
}

const RIDGE_LAMBDAS: [f64; 13] = [
    1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0,
];
const RESIDUAL_LAMBDAS: [f64; 13] = [
    1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4,
];

/// Fits a model of `kind` (one of [`KINDS`]) to log latencies `y` of `rows`.
pub fn fit(kind: &str, f: &Features, rows: &[usize], y: &[f64]) -> Option<Model> {
    let joint = || -> Vec<Vec<f64>> { rows.iter().map(|&r| f.joint(r)).collect() };
    Some(match kind {
        "line" => Model::Line(ranked_lines(f, rows, y).first()?.1),
        "mean_of_lines" => Model::MeanOfLines(
            ranked_lines(f, rows, y)
                .iter()
                .take(3)
                .map(|l| l.1)
                .collect(),
        ),
        "ridge" => Model::Ridge(Ridge::fit(&joint(), y, &RIDGE_LAMBDAS)),
        _ => {
            let line = ranked_lines(f, rows, y).first()?.1;
            let left: Vec<f64> = rows
                .iter()
                .zip(y)
                .map(|(&r, v)| v - (line.slope * f.devices[line.device][r] + line.intercept))
                .collect();
            Model::LineAndRidge {
                line,
                ridge: Ridge::fit(&joint(), &left, &RESIDUAL_LAMBDAS),
            }
        }
    })
}

/// A model kind's leave-one-out root-mean-square error in log latency on `rows`.
pub fn leave_one_out(kind: &str, f: &Features, rows: &[usize], y: &[f64]) -> Option<f64> {
    let mut squared = 0.0;
    for held in 0..rows.len() {
        let (train, train_y): (Vec<usize>, Vec<f64>) = rows
            .iter()
            .zip(y)
            .enumerate()
            .filter(|(i, _)| *i != held)
            .map(|(_, (r, v))| (*r, *v))
            .unzip();
        let model = fit(kind, f, &train, &train_y)?;
        squared += (model.predict(f, rows[held]) - y[held]).powi(2);
    }
    Some((squared / rows.len() as f64).sqrt())
}

/// The kind with the lowest leave-one-out error, fitted on all `rows`, with that error.
pub fn select(f: &Features, rows: &[usize], y: &[f64]) -> Option<(Model, f64)> {
    let (kind, error) = KINDS
        .iter()
        .filter_map(|k| leave_one_out(k, f, rows, y).map(|e| (*k, e)))
        .min_by(|a, b| a.1.total_cmp(&b.1))?;
    Some((fit(kind, f, rows, y)?, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_that_is_a_scaled_copy_of_another_is_found_and_fitted_exactly() {
        // Known device 1 is the new one's log latency halved and shifted: the line finds it.
        let z0: Vec<f64> = (0..30).map(|i| ((i * 7) % 11) as f64).collect();
        let z1: Vec<f64> = (0..30).map(|i| i as f64 / 10.0).collect();
        let arch: Vec<Vec<f64>> = (0..30).map(|i| vec![(i % 2) as f64]).collect();
        let devices = vec![z0, z1.clone()];
        let f = Features {
            devices: &devices,
            arch: &arch,
        };
        let rows: Vec<usize> = (0..30).step_by(3).collect();
        let y: Vec<f64> = rows.iter().map(|&r| 2.0 * z1[r] + 0.5).collect();
        let (model, error) = select(&f, &rows, &y).unwrap();
        assert!(error < 1e-6, "{error}");
        for (row, z) in z1.iter().enumerate() {
            assert!((model.predict(&f, row) - (2.0 * z + 0.5)).abs() < 1e-4);
        }
        assert!(model.devices().contains(&1) || model.kind() == "ridge");
    }

    #[test]
    fn ridge_recovers_an_additive_architecture_cost() {
        // No known device helps; the cost is additive in the encoding.
        let arch: Vec<Vec<f64>> = (0..40)
            .map(|i| vec![(i % 2) as f64, ((i / 2) % 2) as f64, ((i / 4) % 2) as f64])
            .collect();
        let devices = vec![(0..40).map(|i| ((i * 13) % 7) as f64).collect::<Vec<_>>()];
        let f = Features {
            devices: &devices,
            arch: &arch,
        };
        let truth = |r: usize| 1.0 + 0.3 * arch[r][0] + 0.7 * arch[r][1] - 0.2 * arch[r][2];
        let rows: Vec<usize> = (0..40).step_by(3).collect();
        let y: Vec<f64> = rows.iter().map(|&r| truth(r)).collect();
        let (model, _) = select(&f, &rows, &y).unwrap();
        for row in 0..40 {
            assert!((model.predict(&f, row) - truth(row)).abs() < 0.01, "{row}");
        }
    }
}
