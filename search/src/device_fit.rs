//! `hwnas latency fit`: a latency predictor for a device from a few of its measurements and
//! every other device of a table, scored on the architectures it did not measure.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hwnas_core::benchmark::nb201::Nb201Table;
use hwnas_core::benchmark::ofa::locate_ofa_dir;
use hwnas_latency::fewshot::{self, DeviceTable, Excluded, TABLE_SPACES};
use hwnas_latency::measured::export_for_profiling;
use hwnas_latency::profile::{profile, profile_interleaved};
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::measure::{Overrides, profile_through};

/// The most measurements a fit takes (the leave-one-out selection refits once per sample).
pub const MAX_FIT_SAMPLES: usize = 2000;

/// What `hwnas latency fit` asks.
#[derive(Debug, Clone)]
pub struct FitRequest {
    /// `nb201` or `fbnet`.
    pub space: String,
    /// The table; for nb201, the shared one when `None`.
    pub table: Option<PathBuf>,
    /// The new device's column; `None` with `target`.
    pub device: Option<String>,
    /// A board to measure the samples on, through its agents (a target's name or TOML
    /// file), instead of a column of the table.
    pub target: Option<String>,
    /// Its measurements the fit may use.
    pub samples: usize,
    /// Which of them.
    pub seed: u64,
    /// Where to write the predicted latency of every architecture, as CSV.
    pub out: Option<PathBuf>,
    /// With `target`: further architectures measured there to score the fit on.
    pub held_out: usize,
    /// With `target`: exactly this many timed runs per measurement instead of the adaptive
    /// protocol (50 to 1,000 runs until the median is pinned down).
    pub runs: Option<usize>,
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
    /// Spearman, within ±10% and ±5%, mean error and architectures scored, on those the fit
    /// did not use (absent for a board without `--held-out`: nothing to score against).
    #[serde(flatten)]
    pub score: Option<fewshot::FewShotScore>,
    /// The agent that measured the samples, for a board.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_by: Option<String>,
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
    if let (Some(runs), None) = (request.runs, &request.target) {
        return Err(Error::plan(
            "runs",
            runs,
            "sets the timed runs of measurements on --target; a table column is not measured",
        ));
    }
    if request.target.is_some() && !matches!(request.space.as_str(), "nb201" | "ofa-mbv3") {
        return Err(Error::plan(
            "space",
            &request.space,
            "a board measures architectures hwnas can export from a table: nb201 or ofa-mbv3",
        ));
    }
    let path = match (&request.table, request.space.as_str()) {
        (Some(path), _) => path.clone(),
        (None, "nb201") => Nb201Table::locate(None)?,
        (None, "ofa-mbv3") => locate_ofa_dir(None)?.join(HELP_OFA_TABLE),
        (None, space) => {
            return Err(Error::plan(
                "table",
                "(none)",
                format!("give the {space} table of device latencies (spaces: {TABLE_SPACES})"),
            ));
        }
    };
    let table = DeviceTable::load(&path, &request.space)?;
    let (fit, score, measured_by) = match (&request.target, &request.device) {
        (Some(target), None) => {
            let (fit, score, agent) = fit_on_board(&table, request, target)?;
            (fit, score, Some(agent))
        }
        (None, Some(device)) => {
            let device = table.column(device)?;
            let fit = fewshot::fit(&table, device, request.samples, request.seed)?;
            let score = fewshot::score(&table, device, &fit);
            (fit, Some(score), None)
        }
        _ => {
            return Err(Error::plan(
                "device",
                request.device.as_deref().unwrap_or("(none)"),
                "give either --device COLUMN (a device of the table) or --target BOARD (measured through its agents)",
            ));
        }
    };
    if let Some(out) = &request.out {
        write_predictions(out, &table, &fit)?;
    }
    Ok(FitReport {
        device: fit.device.clone(),
        samples: request.samples,
        seed: request.seed,
        score,
        measured_by,
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

/// HELP's Once-for-All latency table in the Once-for-All folder.
pub const HELP_OFA_TABLE: &str = "help_ofa_latency.csv.gz";

/// Measures `request.samples` architectures of the table, chosen by the known devices, on
/// `target` (`host`: this machine, each beside the table's largest subnet in one
/// interleaved run so that drift cancels — the slowest by the known devices —; else a board through its agents) and fits its
/// predictor; then measures `request.held_out` others to score it. Returns the fit, the
/// score and what measured.
fn fit_on_board(
    table: &DeviceTable,
    request: &FitRequest,
    target: &str,
) -> Result<(fewshot::FewShotFit, Option<fewshot::FewShotScore>, String)> {
    let space = fewshot::table::space_of(&request.space, &table.archs)
        .map_err(|problem| Error::plan("space", &request.space, problem))?;
    fewshot::check_samples(
        request.samples + request.held_out,
        table.archs.len(),
        target,
    )?;
    let model_of = |row: usize| -> Result<Vec<u8>> {
        Ok(export_for_profiling(
            space.as_ref(),
            &space.parse(&table.archs[row])?,
        )?)
    };
    let protocol = crate::plan::ProtocolSettings {
        runs: request.runs,
        ..crate::plan::ProtocolSettings::default()
    }
    .protocol()?;
    let overrides = Overrides {
        runs: request.runs,
        ..Overrides::default()
    };
    let known = fewshot::Known::of(table, None)?;
    let reference = match target {
        "host" => {
            // The slowest architecture by the known devices.
            let speed = |r: usize| known.devices.iter().map(|d| d[r]).sum::<f64>();
            let largest = (0..table.archs.len())
                .max_by(|&a, &b| speed(a).total_cmp(&speed(b)))
                .expect("the table has rows");
            let model = model_of(largest)?;
            let ms = profile(&model, &protocol)?.stats.median_ms;
            Some((model, ms))
        }
        _ => None,
    };
    let mut agent = "this machine".to_string();
    let mut measure = |row: usize| -> Result<f64> {
        let model = model_of(row)?;
        Ok(match &reference {
            Some((reference, reference_ms)) => {
                let both = profile_interleaved(&[&model, reference], &protocol)?;
                both[0].stats.median_ms / both[1].stats.median_ms * reference_ms
            }
            None => {
                let (measurement, by) = profile_through(target, &model, overrides)?;
                agent = by;
                measurement.stats.median_ms
            }
        })
    };
    let all: Vec<usize> = (0..table.archs.len()).collect();
    let rows = fewshot::choose_rows(&known.devices, &all, request.samples, request.seed);
    let measured = rows
        .iter()
        .map(|&r| measure(r))
        .collect::<Result<Vec<_>>>()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(request.seed ^ 0x5c0e);
    let others: Vec<usize> = all.into_iter().filter(|r| !rows.contains(r)).collect();
    let held: Vec<usize> = others
        .choose_multiple(&mut rng, request.held_out)
        .copied()
        .collect();
    let held_ms = held
        .iter()
        .map(|&r| measure(r))
        .collect::<Result<Vec<_>>>()?;
    let fit = fewshot::fit_rows(table, known, target, rows, &measured)?;
    let score = (!held.is_empty()).then(|| {
        let predicted: Vec<f64> = held.iter().map(|&r| fit.predicted_ms[r]).collect();
        fewshot::score_pairs(&predicted, &held_ms)
    });
    Ok((fit, score, agent))
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
        match &self.score {
            Some(s) => {
                _ = write!(
                    text,
                    "  on the {} architectures it did not measure: Spearman {:.3}, within ±10% {:.1}%, within ±5% {:.1}%, mean error {:.1}%",
                    s.scored,
                    s.spearman,
                    s.within_10pct * 100.0,
                    s.within_5pct * 100.0,
                    s.mape * 100.0
                )
            }
            None => {
                _ = write!(
                    text,
                    "  measured by {}; nothing to score against (give --held-out N to measure N more; -o writes every architecture's prediction)",
                    self.measured_by.as_deref().unwrap_or("?")
                )
            }
        }
        for e in &self.excluded {
            _ = write!(text, "\n  not used: {} ({})", e.column, e.reason);
        }
        text
    }
}
