//! `hwnas latency fit`: a latency predictor for a device from a few of its measurements and
//! every other device of a table, scored on the architectures it did not measure.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hwnas_core::benchmark::nb201::Nb201Table;
use hwnas_latency::fewshot::{self, DeviceTable, Excluded, TABLE_SPACES};
use serde::Serialize;

use crate::error::{Error, Result};

/// The most measurements a fit takes (the leave-one-out selection refits once per sample).
pub const MAX_FIT_SAMPLES: usize = 2000;

/// What `hwnas latency fit` asks.
#[derive(Debug, Clone)]
pub struct FitRequest {
    /// `nb201` or `fbnet`.
    pub space: String,
    /// The table; for nb201, the shared one when `None`.
    pub table: Option<PathBuf>,
    /// The new device's column.
    pub device: String,
    /// Its measurements the fit may use.
    pub samples: usize,
    /// Which of them.
    pub seed: u64,
    /// Where to write the predicted latency of every architecture, as CSV.
    pub out: Option<PathBuf>,
}

/// The fit and its score on the architectures it did not measure.
#[derive(Debug, Serialize)]
pub struct FitReport {
    /// The device's column.
    pub device: String,
    /// Measurements used.
    pub samples: usize,
    /// The sampling seed.
    pub seed: u64,
    /// Spearman's rank correlation on the unmeasured architectures.
    pub spearman: f64,
    /// Share of them predicted within ±10%.
    pub within_10pct: f64,
    /// Share within ±5%.
    pub within_5pct: f64,
    /// Mean absolute percentage error, as a share.
    pub mape: f64,
    /// Architectures scored.
    pub scored: usize,
    /// The model kind the leave-one-out selection kept.
    pub model: String,
    /// Its leave-one-out RMSE in log latency on the samples.
    pub loo_log_rmse: f64,
    /// The known devices the model leans on most (none listed for plain ridge).
    pub references: Vec<String>,
    /// Known devices the features are made of.
    pub known_devices: usize,
    /// Columns left out of the features, and why.
    pub excluded: Vec<Excluded>,
    /// The table.
    pub table: PathBuf,
}

/// Fits and scores the predictor `request` describes.
pub fn fit_device(request: &FitRequest) -> Result<FitReport> {
    if request.samples > MAX_FIT_SAMPLES {
        return Err(Error::plan(
            "samples",
            request.samples,
            format!("at most {MAX_FIT_SAMPLES} (the few-shot fit is for a few measurements)"),
        ));
    }
    let path = match (&request.table, request.space.as_str()) {
        (Some(path), _) => path.clone(),
        (None, "nb201") => Nb201Table::locate(None)?,
        (None, space) => {
            return Err(Error::plan(
                "table",
                "(none)",
                format!("give the {space} table of device latencies (spaces: {TABLE_SPACES})"),
            ));
        }
    };
    let table = DeviceTable::load(&path, &request.space)?;
    let device = table.column(&request.device)?;
    let fit = fewshot::fit(&table, device, request.samples, request.seed)?;
    let score = fewshot::score(&table, device, &fit);
    if let Some(out) = &request.out {
        write_predictions(out, &table, &fit)?;
    }
    Ok(FitReport {
        device: fit.device.clone(),
        samples: request.samples,
        seed: request.seed,
        spearman: score.spearman,
        within_10pct: score.within_10pct,
        within_5pct: score.within_5pct,
        mape: score.mape,
        scored: score.scored,
        model: fit.model.kind().to_string(),
        loo_log_rmse: fit.loo_log_rmse,
        references: fit
            .model
            .devices()
            .iter()
            .map(|&d| fit.known[d].clone())
            .collect(),
        known_devices: fit.known.len(),
        excluded: fit.excluded,
        table: path,
    })
}

/// Writes `arch,<device>_predicted_ms,measured_for_fit` for every row.
fn write_predictions(out: &Path, table: &DeviceTable, fit: &fewshot::FewShotFit) -> Result<()> {
    let csv_error = |source| Error::Csv {
        path: out.to_path_buf(),
        source,
    };
    let mut writer = csv::Writer::from_path(out).map_err(csv_error)?;
    writer
        .write_record(["arch", &format!("{}_predicted_ms", fit.device), "measured"])
        .map_err(csv_error)?;
    for (row, arch) in table.archs.iter().enumerate() {
        let measured = fit.sample_rows.contains(&row);
        writer
            .write_record([
                arch.as_str(),
                &format!("{:.6}", fit.predicted_ms[row]),
                if measured { "1" } else { "0" },
            ])
            .map_err(csv_error)?;
    }
    writer.flush().map_err(|e| Error::io("write", out, e))
}

impl FitReport {
    /// The report for a person.
    pub fn text(&self) -> String {
        let mut text = format!(
            "{}: predicted from {} of its measurements and {} other devices ({}; leave-one-out log RMSE {:.3})\n",
            self.device,
            self.samples,
            self.known_devices,
            match self.references.is_empty() {
                true => self.model.clone(),
                false => format!("{} on {}", self.model, self.references.join(", ")),
            },
            self.loo_log_rmse
        );
        _ = write!(
            text,
            "  on the {} architectures it did not measure: Spearman {:.3}, within ±10% {:.1}%, within ±5% {:.1}%, mean error {:.1}%",
            self.scored,
            self.spearman,
            self.within_10pct * 100.0,
            self.within_5pct * 100.0,
            self.mape * 100.0
        );
        for e in &self.excluded {
            _ = write!(text, "\n  not used: {} ({})", e.column, e.reason);
        }
        text
    }
}
