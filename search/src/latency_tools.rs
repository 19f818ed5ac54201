//! The latency commands' work: profiling a model (here or through a target's agents),
//! building this machine's lookup table and judging a table against end-to-end
//! measurements. Each returns a report that prints as JSON or as text.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hwnas_latency::OrtRuntime;
use hwnas_latency::cache::{MeasurementCache, default_dir};
use hwnas_latency::export::{ExportOptions, export_arch};
use hwnas_latency::lut::{LayerLut, LutPredictor, LutReport, report};
use hwnas_latency::onnx::RandomWeights;
use hwnas_latency::onnx::builder::encode;
use hwnas_latency::profile::{Fingerprint, Measurement, Stats, profile};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::observer::Observer;
use crate::plan::ProtocolSettings;

/// The most subnets `hwnas lut eval` measures in one run.
pub const MAX_LUT_SAMPLES: usize = 10_000;

/// A model's measurement, as `hwnas profile` reports it.
#[derive(Debug, Serialize)]
pub struct ProfileReport {
    /// Median, percentiles, mean, spread and runs.
    #[serde(flatten)]
    pub stats: Stats,
    /// Where it was measured.
    pub fingerprint: Fingerprint,
    /// The agent that measured it, for a target's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The model file.
    #[serde(skip)]
    pub model: PathBuf,
    /// Untimed warm-up runs.
    #[serde(skip)]
    pub warmup: usize,
}

/// Times the ONNX model at `path` on this machine, or through the agents of `target`.
pub fn profile_model(
    path: &Path,
    settings: &ProtocolSettings,
    target: Option<&str>,
) -> Result<ProfileReport> {
    let protocol = settings.protocol()?;
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let (m, agent): (Measurement, Option<String>) = match target {
        Some(target) => {
            // Flags left at their defaults keep the target's own protocol.
            let defaults = ProtocolSettings::default();
            let overrides = crate::measure::Overrides {
                threads: (settings.threads != defaults.threads).then_some(settings.threads),
                runs: settings.runs,
                warmup: (settings.warmup != defaults.warmup).then_some(settings.warmup),
            };
            let (m, agent) = crate::measure::profile_through(target, &bytes, overrides)?;
            (m, Some(agent))
        }
        None => (profile(&bytes, &protocol)?, None),
    };
    Ok(ProfileReport {
        stats: m.stats,
        fingerprint: m.fingerprint,
        agent,
        model: path.to_path_buf(),
        warmup: protocol.warmup,
    })
}

impl ProfileReport {
    /// The report for a person.
    pub fn text(&self) -> String {
        let mut text = match &self.agent {
            Some(agent) => format!("{} (measured by agent {agent})\n", self.model.display()),
            None => format!("{}\n", self.model.display()),
        };
        let (f, s) = (&self.fingerprint, &self.stats);
        _ = writeln!(
            text,
            "  median {:.3} ms  (p10 {:.3}, p90 {:.3}, mean {:.3} ± {:.3})",
            s.median_ms, s.p10_ms, s.p90_ms, s.mean_ms, s.std_ms
        );
        _ = writeln!(
            text,
            "  {} timed runs after {} warm-up; median 95% CI ±{:.2}%",
            s.runs,
            self.warmup,
            s.median_rel_ci * 100.0
        );
        _ = write!(
            text,
            "  ONNX Runtime {} {} on {} ({} threads of {} cores{})",
            f.ort_version,
            f.execution_provider,
            f.cpu_model,
            f.threads,
            f.cores,
            f.governor
                .as_ref()
                .map(|g| format!(", governor {g}"))
                .unwrap_or_default()
        );
        text
    }
}

/// Writes the architecture `arch` of `space` as an ONNX model at `out` (random weights,
/// batch norm folded unless `fold` is false); says what was written.
pub fn export_model(
    space: &str,
    arch: &str,
    out: &Path,
    batch: usize,
    fold: bool,
) -> Result<String> {
    if batch == 0 || batch > 4096 {
        return Err(Error::plan(
            "batch",
            batch,
            "the model's batch must be 1 to 4096",
        ));
    }
    let options = ExportOptions {
        batch,
        fold_batch_norm: fold,
    };
    let bytes = encode(&export_arch(
        space,
        arch,
        &mut RandomWeights::new(0),
        options,
    )?);
    std::fs::write(out, &bytes).map_err(|e| Error::io("write", out, e))?;
    Ok(format!(
        "wrote {} ({} KiB, opset 17, random He weights)",
        out.display(),
        bytes.len() / 1024
    ))
}

/// The default measurement cache, or none with a warning to `observer` saying why.
pub fn open_cache(observer: &dyn Observer) -> Option<MeasurementCache> {
    hwnas_latency::cache::open_or_warn(&default_dir(), &|w| observer.warn(w))
}

/// Builds (or finishes building) this machine's lookup table of `space` (only ofa-mbv3 has
/// per-layer tables) for `target` (only `host`) at `resolutions` into `out`, calibrated on
/// `calibration` subnets measured end to end.
#[allow(clippy::too_many_arguments)]
pub fn build_lut(
    space: &str,
    target: &str,
    out: &Path,
    resolutions: &[u32],
    calibration: usize,
    settings: &ProtocolSettings,
    observer: &dyn Observer,
) -> Result<String> {
    if space.parse::<crate::SpaceKind>() != Ok(crate::SpaceKind::Ofa) {
        return Err(Error::plan(
            "space",
            space,
            "per-layer lookup tables exist for ofa-mbv3 (nb201 and darts are measured end to end)",
        ));
    }
    if target != "host" {
        return Err(Error::plan(
            "target",
            target,
            "lookup tables are built on this machine (`host`); on a board, run `hwnas lut build` there",
        ));
    }
    let allowed = hwnas_core::space::ofa::RESOLUTIONS;
    if let Some(bad) = resolutions.iter().find(|r| !allowed.contains(*r)) {
        return Err(Error::plan(
            "resolutions",
            bad,
            format!("outside {allowed:?}"),
        ));
    }
    if calibration == 1 || calibration > 1000 {
        return Err(Error::plan(
            "calibration",
            calibration,
            "0 (no calibration) or 2 to 1000 subnets (each is measured end to end; 30 is the default)",
        ));
    }
    let protocol = settings.protocol()?;
    let cache = open_cache(observer);
    observer.stage("lut build", 1);
    let progress =
        |done: usize, total: usize, what: &str| observer.progress(done as u64, total as u64, what);
    let warn = |w: &str| observer.warn(w);
    let lut = LayerLut::build(
        out,
        resolutions,
        &protocol,
        calibration,
        cache.as_ref(),
        &progress,
        &warn,
    )?;
    observer.finish();
    let mut text = format!(
        "{} layers at resolutions {:?} in {}",
        lut.entries.len(),
        lut.resolutions,
        out.display()
    );
    if let Some(c) = lut.calibration {
        _ = write!(
            text,
            "\ncalibration on {} subnets: measured = {:.3} x layer sum + {:.3} ms (fit RMSE {:.3} ms)",
            c.subnets, c.slope, c.intercept, c.fit_rmse_ms
        );
    }
    if let Some(r) = &lut.reference {
        _ = write!(
            text,
            "\neach measured beside the reference subnet (kernel 7, expand 6, depth 4, r {}: {:.3} ms)",
            r.config.r, r.ms
        );
    }
    if let Some(m) = &lut.model {
        _ = write!(
            text,
            "\nend-to-end model: {} (5-fold cross-validation on the calibration subnets:",
            m.kind
        );
        for k in &m.cross_validation {
            _ = write!(
                text,
                "\n  {:<18} RMSE {:.3} ms, within ±5% {:.0}%, within ±10% {:.0}%",
                k.kind,
                k.rmse_ms,
                k.within_5pct * 100.0,
                k.within_10pct * 100.0
            );
        }
        text.push(')');
    }
    Ok(text)
}

/// A lookup table judged on held-out subnets.
#[derive(Debug, Serialize)]
pub struct LutEvaluation {
    /// Against each subnet's latency at the reference's speed (measured beside the
    /// reference subnet in one interleaved run, so the machine's drift cancels); against
    /// the raw medians where the table has no reference.
    #[serde(flatten)]
    pub report: LutReport,
    /// Against the raw medians as measured.
    pub raw: LutReport,
    /// The model predictions came from.
    pub model: String,
    /// Whether `report` is judged beside the reference.
    pub beside_reference: bool,
}

/// Measures `samples` random subnets (never the calibration ones) end to end and compares
/// them with the table at `path`.
pub fn evaluate_lut(path: &Path, samples: usize, observer: &dyn Observer) -> Result<LutEvaluation> {
    if samples == 0 {
        return Err(Error::plan("samples", 0, "measure at least 1 subnet"));
    }
    if samples > MAX_LUT_SAMPLES {
        return Err(Error::plan(
            "samples",
            samples,
            format!("at most {MAX_LUT_SAMPLES} subnets (each is exported and profiled)"),
        ));
    }
    let lut = LayerLut::load(path)?;
    let here = Fingerprint::local(OrtRuntime::load()?, lut.protocol.threads);
    if let Some(warning) = lut.measured_elsewhere(&here) {
        observer.warn(&warning);
    }
    observer.stage("lut eval", samples as u64);
    let progress =
        |done: usize, total: usize, what: &str| observer.progress(done as u64, total as u64, what);
    let subnets = lut.measure_subnets(samples, 2, &lut.protocol, &progress)?;
    observer.finish();
    let predictor = LutPredictor::new(lut)?;
    let mut paired = Vec::with_capacity(samples);
    let mut raw = Vec::with_capacity(samples);
    for subnet in &subnets {
        let predicted = predictor.predict_ms(&subnet.config)?;
        paired.push((predicted, subnet.ms));
        raw.push((predicted, subnet.raw_ms));
    }
    Ok(LutEvaluation {
        report: report(&paired),
        raw: report(&raw),
        model: predictor.kind().to_string(),
        beside_reference: predictor.lut().reference.is_some(),
    })
}

/// A lookup table's error report for a person.
pub fn lut_report_text(evaluation: &LutEvaluation) -> String {
    let line = |what: &str, r: &LutReport| {
        format!(
            "\n  {what}: RMSE {:.3} ms, mean absolute error {:.2}%, within ±5%: {:.1}%, within ±10%: {:.1}%",
            r.rmse_ms,
            r.mape * 100.0,
            r.within_5pct * 100.0,
            r.within_10pct * 100.0
        )
    };
    let mut text = format!(
        "{} held-out subnets measured end to end vs the table's prediction ({} model):",
        evaluation.report.samples, evaluation.model
    );
    if evaluation.beside_reference {
        text.push_str(&line(
            "beside the reference (drift cancelled)",
            &evaluation.report,
        ));
    }
    text.push_str(&line("raw medians", &evaluation.raw));
    text
}
