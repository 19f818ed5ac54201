//! The lookup table's per-layer times as features, not the answer: a subnet's end-to-end
//! latency is regressed on its stem, per-stage and head layer sums and its per-stage depths
//! (nn-Meter's finding: the parts of a network do not cost their isolated sum, and each
//! block adds its own overhead), with the model kind chosen by cross-validation on the
//! calibration subnets.

use hwnas_core::space::ofa::OfaConfig;
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::ridge_regression::{RidgeRegression, RidgeRegressionParameters};
use smartcore::xgboost::{XGRegressor, XGRegressorParameters};

use crate::error::{Error, Result};
use crate::export::ofa::{OfaLayer, layers};
use crate::lut::LayerLut;

/// Names of [`features`]' entries.
pub const FEATURES: [&str; 12] = [
    "stem ms",
    "stage 1 ms",
    "stage 2 ms",
    "stage 3 ms",
    "stage 4 ms",
    "stage 5 ms",
    "head ms",
    "stage 1 depth",
    "stage 2 depth",
    "stage 3 depth",
    "stage 4 depth",
    "stage 5 depth",
];

/// The leading features that are milliseconds (stem, five stages, head): their sum is the
/// layer sum.
const TIME_FEATURES: usize = 7;

/// A subnet's features: the table's medians summed over the stem (first conv and first
/// block), each stage and the head, then each stage's depth.
pub fn features(lut: &LayerLut, config: &OfaConfig) -> Result<Vec<f64>> {
    let median = |layer: &OfaLayer| lut.median_ms(layer, config.r);
    let all = layers(config);
    let mut x = vec![0.0; FEATURES.len()];
    let mut next = 2;
    x[0] = median(&all[0])? + median(&all[1])?;
    for (stage, &depth) in config.d.iter().enumerate() {
        for layer in &all[next..next + depth as usize] {
            x[1 + stage] += median(layer)?;
        }
        next += depth as usize;
        x[7 + stage] = f64::from(depth);
    }
    x[6] = median(&all[next])?;
    Ok(x)
}

/// The regressors compared by cross-validation.
pub const KINDS: [&str; 4] = ["line", "ridge", "random_forest", "gradient_boosting"];

/// A fitted end-to-end model over [`features`]: linear ones keep their coefficients; the
/// tree ensembles are refitted from the stored calibration points when loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndToEndModel {
    /// One of [`KINDS`].
    pub kind: String,
    /// The calibration subnets' features and measured milliseconds.
    pub points: Vec<(Vec<f64>, f64)>,
    /// Cross-validated error of every kind on `points`.
    pub cross_validation: Vec<KindError>,
}

/// One kind's cross-validated error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindError {
    /// The kind.
    pub kind: String,
    /// Root-mean-square error in milliseconds, out of fold.
    pub rmse_ms: f64,
    /// Share predicted within ±10%, out of fold.
    pub within_10pct: f64,
    /// Share within ±5%.
    pub within_5pct: f64,
}

/// A regressor fitted on some points.
enum Fitted {
    /// `slope * layer sum + intercept`.
    Line {
        slope: f64,
        intercept: f64,
    },
    /// Weights of the features, then the intercept.
    Linear(Vec<f64>),
    Forest(RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>),
    Boosting(XGRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>),
}

fn matrix(rows: &[Vec<f64>]) -> Result<DenseMatrix<f64>> {
    DenseMatrix::from_2d_vec(&rows.to_vec()).map_err(|e| Error::Setting(format!("features: {e}")))
}

fn failed(kind: &str) -> impl Fn(smartcore::error::Failed) -> Error + '_ {
    move |e| Error::Setting(format!("fitting the {kind} model: {e}"))
}

impl Fitted {
    fn fit(kind: &str, x: &[Vec<f64>], y: &[f64]) -> Result<Fitted> {
        let y = y.to_vec();
        Ok(match kind {
            "line" => {
                let sums: Vec<(f64, f64)> = x
                    .iter()
                    .zip(&y)
                    .map(|(f, m)| (f[..TIME_FEATURES].iter().sum(), *m))
                    .collect();
                let c = crate::lut::fit_line(&sums);
                Fitted::Line {
                    slope: c.slope,
                    intercept: c.intercept,
                }
            }
            "ridge" => {
                // Features that never vary here (the stem of a one-resolution table) carry
                // no weight and would break the normalisation.
                let varying: Vec<usize> = (0..x[0].len())
                    .filter(|&j| x.iter().any(|r| (r[j] - x[0][j]).abs() > 1e-12))
                    .collect();
                let narrowed: Vec<Vec<f64>> = x
                    .iter()
                    .map(|r| varying.iter().map(|&j| r[j]).collect())
                    .collect();
                let model = RidgeRegression::fit(
                    &matrix(&narrowed)?,
                    &y,
                    RidgeRegressionParameters::default()
                        .with_alpha(1e-3)
                        .with_normalize(true),
                )
                .map_err(failed(kind))?;
                let mut coefficients = vec![0.0; x[0].len() + 1];
                for (&j, w) in varying.iter().zip(model.coefficients().iterator(0)) {
                    coefficients[j] = *w;
                }
                coefficients[x[0].len()] = *model.intercept();
                Fitted::Linear(coefficients)
            }
            "random_forest" => Fitted::Forest(
                RandomForestRegressor::fit(
                    &matrix(x)?,
                    &y,
                    RandomForestRegressorParameters::default()
                        .with_n_trees(200)
                        .with_seed(0),
                )
                .map_err(failed(kind))?,
            ),
            _ => Fitted::Boosting(
                XGRegressor::fit(
                    &matrix(x)?,
                    &y,
                    XGRegressorParameters::default()
                        .with_n_estimators(200)
                        .with_learning_rate(0.1)
                        .with_max_depth(3)
                        .with_seed(0),
                )
                .map_err(failed(kind))?,
            ),
        })
    }

    fn predict(&self, x: &[f64]) -> Result<f64> {
        Ok(match self {
            Fitted::Line { slope, intercept } => {
                slope * x[..TIME_FEATURES].iter().sum::<f64>() + intercept
            }
            Fitted::Linear(c) => c.iter().zip(x).map(|(w, v)| w * v).sum::<f64>() + c[c.len() - 1],
            Fitted::Forest(m) => m
                .predict(&matrix(&[x.to_vec()])?)
                .map_err(failed("forest"))?[0],
            Fitted::Boosting(m) => m
                .predict(&matrix(&[x.to_vec()])?)
                .map_err(failed("boosting"))?[0],
        })
    }
}

/// Out-of-fold predictions of `kind` on `points` by `folds`-fold cross-validation.
pub fn out_of_fold(kind: &str, points: &[(Vec<f64>, f64)], folds: usize) -> Result<Vec<f64>> {
    let mut predicted = vec![0.0; points.len()];
    for fold in 0..folds {
        let (train, test): (Vec<usize>, Vec<usize>) =
            (0..points.len()).partition(|i| i % folds != fold);
        let x: Vec<Vec<f64>> = train.iter().map(|&i| points[i].0.clone()).collect();
        let y: Vec<f64> = train.iter().map(|&i| points[i].1).collect();
        let model = Fitted::fit(kind, &x, &y)?;
        for i in test {
            predicted[i] = model.predict(&points[i].0)?;
        }
    }
    Ok(predicted)
}

/// Every kind's cross-validated error on `points`; kinds that cannot be fitted on these
/// points (too few for the features, a feature that never varies) are left out, the line
/// always fits.
pub fn cross_validate(points: &[(Vec<f64>, f64)], folds: usize) -> Result<Vec<KindError>> {
    KINDS
        .iter()
        .filter_map(|kind| {
            let predicted = match out_of_fold(kind, points, folds) {
                Ok(p) if p.iter().all(|v| v.is_finite()) => p,
                _ if *kind != "line" => return None,
                Ok(_) => {
                    return Some(Err(Error::Setting(
                        "the calibration line is not finite".into(),
                    )));
                }
                Err(e) => return Some(Err(e)),
            };
            let pairs: Vec<(f64, f64)> = predicted
                .iter()
                .zip(points)
                .map(|(p, (_, m))| (*p, *m))
                .collect();
            let r = crate::lut::report(&pairs);
            Some(Ok(KindError {
                kind: kind.to_string(),
                rmse_ms: r.rmse_ms,
                within_10pct: r.within_10pct,
                within_5pct: r.within_5pct,
            }))
        })
        .collect()
}

impl EndToEndModel {
    /// Compares every kind on `points` by 5-fold cross-validation and keeps the one with
    /// the lowest error.
    pub fn choose(points: Vec<(Vec<f64>, f64)>) -> Result<Self> {
        let folds = points.len().clamp(2, 5);
        let cross_validation = cross_validate(&points, folds)?;
        let kind = cross_validation
            .iter()
            .min_by(|a, b| a.rmse_ms.total_cmp(&b.rmse_ms))
            .map(|k| k.kind.clone())
            .expect("there are kinds");
        Ok(EndToEndModel {
            kind,
            points,
            cross_validation,
        })
    }

    /// The model refitted on every calibration point, ready to predict.
    pub fn predictor(&self) -> Result<Predictor> {
        let x: Vec<Vec<f64>> = self.points.iter().map(|p| p.0.clone()).collect();
        let y: Vec<f64> = self.points.iter().map(|p| p.1).collect();
        Ok(Predictor(Fitted::fit(&self.kind, &x, &y)?))
    }
}

/// A fitted [`EndToEndModel`].
pub struct Predictor(Fitted);

impl Predictor {
    /// Predicted end-to-end milliseconds of a subnet with `features`.
    pub fn predict_ms(&self, features: &[f64]) -> Result<f64> {
        self.0.predict(features)
    }
}
