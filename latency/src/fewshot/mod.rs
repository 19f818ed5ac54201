//! A new device's latency predictor from a few of its measurements, HELP's idea: the devices
//! already measured teach the shape of a new one. The tool chooses which architectures to
//! measure (spread over the known devices' latency range), fits the candidate models of
//! [`models`] in log latency and keeps the one with the lowest leave-one-out error.

pub mod models;
pub mod table;

use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::error::{Error, Result};
use models::{Features, Model};
pub use table::{DeviceTable, TABLE_SPACES};

/// The fewest measurements a fit accepts: leave-one-out needs a line through two of three.
pub const MIN_SAMPLES: usize = 3;

/// A known device left out of the features, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Excluded {
    /// The column.
    pub column: String,
    /// Why it is not used.
    pub reason: String,
}

/// A fitted predictor of one device's latency over a table's architectures.
#[derive(Debug, Clone, Serialize)]
pub struct FewShotFit {
    /// The device's column.
    pub device: String,
    /// Rows measured for the fit.
    pub sample_rows: Vec<usize>,
    /// The model kept, and its parameters.
    pub model: Model,
    /// Its leave-one-out RMSE in log latency on the sampled rows.
    pub loo_log_rmse: f64,
    /// The known devices' columns the features are made of.
    pub known: Vec<String>,
    /// Columns left out of the features.
    pub excluded: Vec<Excluded>,
    /// Predicted milliseconds for every row.
    #[serde(skip)]
    pub predicted_ms: Vec<f64>,
}

/// Known devices: every complete latency column but the target and copies of it.
fn known_columns(table: &DeviceTable, target: Option<usize>) -> (Vec<usize>, Vec<Excluded>) {
    let mut known = Vec::new();
    let mut excluded = Vec::new();
    for (i, column) in table.columns.iter().enumerate() {
        if Some(i) == target {
            continue;
        }
        if !column.complete() {
            let missing = column.values.iter().filter(|v| v.is_none()).count();
            excluded.push(Excluded {
                column: column.name.clone(),
                reason: format!("{missing} rows without a value"),
            });
            continue;
        }
        // The same measurements under another name (HW-NAS-Bench's copies of HELP's columns)
        // would make a fit look better than a new device can be predicted.
        let Some(target) = target else {
            known.push(i);
            continue;
        };
        let (shared, equal) = column
            .values
            .iter()
            .zip(&table.columns[target].values)
            .filter_map(|(a, b)| Some((a.as_ref()?, b.as_ref()?)))
            .fold((0usize, 0usize), |(s, e), (a, b)| {
                (s + 1, e + usize::from((a - b).abs() <= 1e-6 * b.abs()))
            });
        if shared > 0 && equal as f64 >= 0.99 * shared as f64 {
            excluded.push(Excluded {
                column: column.name.clone(),
                reason: format!(
                    "a copy of the device's own column ({equal} of {shared} rows equal)"
                ),
            });
            continue;
        }
        known.push(i);
    }
    (known, excluded)
}

/// Each known column's log latency, standardised over the table.
fn standardised_logs(table: &DeviceTable, known: &[usize]) -> Vec<Vec<f64>> {
    known
        .iter()
        .map(|&c| {
            let logs: Vec<f64> = table.columns[c]
                .values
                .iter()
                .map(|v| v.expect("known columns are complete").ln())
                .collect();
            let n = logs.len() as f64;
            let mean = logs.iter().sum::<f64>() / n;
            let sd = (logs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n)
                .sqrt()
                .max(1e-12);
            logs.iter().map(|v| (v - mean) / sd).collect()
        })
        .collect()
}

/// `k` rows to measure among `candidates`: one from each of `k` equal strata of the known
/// devices' mean standardised log latency, so the sample spans slow and fast architectures.
pub fn choose_rows(devices: &[Vec<f64>], candidates: &[usize], k: usize, seed: u64) -> Vec<usize> {
    let speed = |row: usize| devices.iter().map(|d| d[row]).sum::<f64>();
    let mut ordered = candidates.to_vec();
    ordered.sort_by(|&a, &b| speed(a).total_cmp(&speed(b)).then(a.cmp(&b)));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = ordered.len();
    (0..k)
        .map(|s| ordered[rng.random_range(s * n / k..((s + 1) * n / k).max(s * n / k + 1))])
        .collect()
}

/// The known devices of `table` for a new device (`target`, a column of the table when it
/// is one), standardised, and the columns left out.
pub struct Known {
    /// Column indices.
    pub columns: Vec<usize>,
    /// `[device][row]` standardised log latency.
    pub devices: Vec<Vec<f64>>,
    /// Columns left out, and why.
    pub excluded: Vec<Excluded>,
}

impl Known {
    /// Every complete column but `target` and copies of it.
    pub fn of(table: &DeviceTable, target: Option<usize>) -> Result<Self> {
        let (columns, excluded) = known_columns(table, target);
        if columns.is_empty() {
            return Err(Error::Setting(format!(
                "--table: {} has no complete latency column to learn from{}",
                table.path.display(),
                target.map_or(String::new(), |t| format!(
                    " besides `{}`",
                    table.columns[t].name
                ))
            )));
        }
        let devices = standardised_logs(table, &columns);
        Ok(Known {
            columns,
            devices,
            excluded,
        })
    }
}

/// Fits a predictor from the latencies `measured_ms` of `rows` (of a device the table has
/// no column for, or whose column is `known`'s target).
pub fn fit_rows(
    table: &DeviceTable,
    known: Known,
    device: &str,
    rows: Vec<usize>,
    measured_ms: &[f64],
) -> Result<FewShotFit> {
    let y: Vec<f64> = measured_ms.iter().map(|v| v.ln()).collect();
    let features = Features {
        devices: &known.devices,
        arch: &table.arch_features,
    };
    let (model, loo_log_rmse) = models::select(&features, &rows, &y).ok_or_else(|| {
        Error::Setting(format!(
            "--samples {}: the sampled architectures do not vary in any known device; give more samples or another --seed",
            rows.len()
        ))
    })?;
    let predicted_ms = (0..table.archs.len())
        .map(|r| model.predict(&features, r).exp())
        .collect();
    Ok(FewShotFit {
        device: device.to_string(),
        sample_rows: rows,
        model,
        loo_log_rmse,
        known: known
            .columns
            .iter()
            .map(|&c| table.columns[c].name.clone())
            .collect(),
        excluded: known.excluded,
        predicted_ms,
    })
}

/// Fits a predictor of `device` (a column of `table`) from `samples` of its rows, chosen by
/// [`choose_rows`] with `seed`.
pub fn fit(table: &DeviceTable, device: usize, samples: usize, seed: u64) -> Result<FewShotFit> {
    let known = Known::of(table, Some(device))?;
    let name = &table.columns[device].name;
    let target = &table.columns[device].values;
    let candidates: Vec<usize> = (0..target.len()).filter(|&r| target[r].is_some()).collect();
    check_samples(samples, candidates.len(), name)?;
    let rows = choose_rows(&known.devices, &candidates, samples, seed);
    let measured: Vec<f64> = rows
        .iter()
        .map(|&r| target[r].expect("candidates have values"))
        .collect();
    fit_rows(table, known, name, rows, &measured)
}

/// Checks a sample count against the `available` rows of `device`.
pub fn check_samples(samples: usize, available: usize, device: &str) -> Result<()> {
    if samples < MIN_SAMPLES || samples >= available {
        return Err(Error::Setting(format!(
            "--samples {samples}: give {MIN_SAMPLES} to {} (the rows of `{device}` with a value, less one to score on)",
            available.saturating_sub(1)
        )));
    }
    Ok(())
}

/// How a fit predicts the rows it did not measure.
#[derive(Debug, Clone, Serialize)]
pub struct FewShotScore {
    /// Rows scored.
    pub scored: usize,
    /// Spearman's rank correlation of predicted and measured latency.
    pub spearman: f64,
    /// Share predicted within ±10%.
    pub within_10pct: f64,
    /// Share within ±5%.
    pub within_5pct: f64,
    /// Mean absolute percentage error, as a share.
    pub mape: f64,
}

/// Scores `fit` on every row of its device that it did not measure.
pub fn score(table: &DeviceTable, device: usize, fit: &FewShotFit) -> FewShotScore {
    let (predicted, measured): (Vec<f64>, Vec<f64>) = table.columns[device]
        .values
        .iter()
        .enumerate()
        .filter(|(r, _)| !fit.sample_rows.contains(r))
        .filter_map(|(r, v)| v.map(|m| (fit.predicted_ms[r], m)))
        .unzip();
    score_pairs(&predicted, &measured)
}

/// Scores predictions against measurements of the same architectures.
pub fn score_pairs(predicted: &[f64], measured: &[f64]) -> FewShotScore {
    let pairs: Vec<(f64, f64)> = predicted
        .iter()
        .copied()
        .zip(measured.iter().copied())
        .collect();
    let errors = crate::lut::report(&pairs);
    FewShotScore {
        scored: predicted.len(),
        spearman: hwnas_core::proxies::scores::spearman(predicted, measured),
        within_10pct: errors.within_10pct,
        within_5pct: errors.within_5pct,
        mape: errors.mape,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use table::DeviceColumn;

    /// 60 architectures of one 4-choice decision; device `a` is arbitrary, `copy` equals
    /// the target, `partial` misses a row, and the target is `a` scaled by 1.5 and bent
    /// by the architecture.
    fn toy() -> DeviceTable {
        let arch: Vec<Vec<f64>> = (0..60)
            .map(|i| (0..4).map(|c| f64::from(u8::from(i % 4 == c))).collect())
            .collect();
        let a: Vec<f64> = (0..60).map(|i| 1.0 + ((i * 37) % 17) as f64).collect();
        let target: Vec<f64> = (0..60)
            .map(|i| 1.5 * a[i] * (1.0 + 0.05 * (i % 4) as f64))
            .collect();
        let column = |name: &str, values: Vec<Option<f64>>| DeviceColumn {
            name: name.to_string(),
            values,
        };
        let mut partial: Vec<Option<f64>> = a.iter().map(|v| Some(v * 2.0)).collect();
        partial[7] = None;
        DeviceTable {
            path: "toy.csv".into(),
            archs: (0..60).map(|i| i.to_string()).collect(),
            arch_features: arch,
            columns: vec![
                column("a", a.iter().copied().map(Some).collect()),
                column("copy", target.iter().copied().map(Some).collect()),
                column("partial", partial),
                column("target", target.into_iter().map(Some).collect()),
            ],
        }
    }

    #[test]
    fn copies_and_incomplete_columns_are_no_features_and_a_power_law_is_found() {
        let table = toy();
        let fit = fit(&table, 3, 12, 0).unwrap();
        assert_eq!(fit.known, ["a"]);
        let reasons: Vec<&str> = fit.excluded.iter().map(|e| e.reason.as_str()).collect();
        assert!(reasons[0].contains("copy"), "{reasons:?}");
        assert!(reasons[1].contains("1 rows without a value"), "{reasons:?}");
        let score = score(&table, 3, &fit);
        assert_eq!(score.scored, 48);
        assert!(score.within_5pct > 0.99, "{score:?} with {:?}", fit.model);
        assert!(score.spearman > 0.99);
    }

    #[test]
    fn the_chosen_rows_span_the_range_and_depend_on_the_seed() {
        let devices = vec![(0..100).map(f64::from).collect::<Vec<_>>()];
        let candidates: Vec<usize> = (0..100).collect();
        let rows = choose_rows(&devices, &candidates, 10, 3);
        for (stratum, row) in rows.iter().enumerate() {
            assert!((stratum * 10..stratum * 10 + 10).contains(row), "{rows:?}");
        }
        assert_eq!(rows, choose_rows(&devices, &candidates, 10, 3));
        assert_ne!(rows, choose_rows(&devices, &candidates, 10, 4));
    }

    #[test]
    fn too_few_or_too_many_samples_are_named() {
        let table = toy();
        for samples in [2, 60] {
            let error = fit(&table, 3, samples, 0).unwrap_err().to_string();
            assert!(error.contains(&format!("--samples {samples}")), "{error}");
            assert!(error.contains("3 to 59"), "{error}");
        }
    }
}
