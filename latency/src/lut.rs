//! Latency lookup tables for the user's own device: every distinct Once-for-All layer is
//! exported as its own small model and measured; a subnet's latency is predicted as the sum
//! of its layers, corrected by a line fitted on a few subnets measured end to end.

use std::collections::BTreeSet;
use std::path::Path;

use hwnas_core::space::ofa::{OfaConfig, OfaSpace};
use hwnas_core::space::{Arch, SearchSpace};
use hwnas_core::{LatencyModel, benchmark::ofa::STAGE_SETTINGS, benchmark::ofa::STEM_WIDTH};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::cache::MeasurementCache;
use crate::error::{Error, Result};
use crate::export::ExportOptions;
use crate::export::ofa::{OfaLayer, layer_model, layers};
use crate::lut_model::{EndToEndModel, Predictor, features};
use crate::measured::{export_for_profiling, profile_cached};
use crate::onnx::RandomWeights;
use crate::onnx::builder::encode;
use crate::profile::{Fingerprint, Protocol, Stats, profile, profile_interleaved};
use crate::runtime::OrtRuntime;

/// Format version of the lookup-table file.
pub const LUT_VERSION: u32 = 1;

/// One measured layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LutEntry {
    /// The layer.
    pub layer: OfaLayer,
    /// Its timings.
    pub stats: Stats,
}

/// The correction from the sum of layer latencies to end-to-end latency:
/// `predicted = slope * sum + intercept`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Multiplier of the layer sum.
    pub slope: f64,
    /// Fixed overhead in milliseconds.
    pub intercept: f64,
    /// Subnets measured end to end for the fit.
    pub subnets: usize,
    /// Root-mean-square error of the fit on those subnets, in milliseconds.
    pub fit_rmse_ms: f64,
}

/// A lookup table of Once-for-All MobileNetV3 layer latencies on one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerLut {
    /// File format version.
    pub version: u32,
    /// Where the layers were measured.
    pub fingerprint: Fingerprint,
    /// How they were measured.
    pub protocol: Protocol,
    /// Resolutions the table covers.
    pub resolutions: Vec<u32>,
    /// Measured layers.
    pub entries: Vec<LutEntry>,
    /// The end-to-end correction, once fitted.
    pub calibration: Option<Calibration>,
    /// The reference subnet the calibration subnets were measured beside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<LutReference>,
    /// The end-to-end model over the table's per-stage sums, chosen by cross-validation
    /// (tables without one predict by `calibration`'s line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<EndToEndModel>,
}

/// The subnet calibration and evaluation subnets are measured beside, in one interleaved
/// run each, so that the machine's drift between measurements cancels: a subnet's
/// latency is its share of the reference times the reference's own measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LutReference {
    /// The reference subnet.
    pub config: OfaConfig,
    /// Its latency, measured alone.
    pub ms: f64,
}

/// A subnet measured end to end for calibration or evaluation.
#[derive(Debug, Clone)]
pub struct MeasuredSubnet {
    /// The subnet.
    pub config: OfaConfig,
    /// Its features for the end-to-end model.
    pub features: Vec<f64>,
    /// The sum of its layers' medians.
    pub layer_sum_ms: f64,
    /// Its latency at the reference's measured speed (the raw median where the table has
    /// no reference).
    pub ms: f64,
    /// The median as measured.
    pub raw_ms: f64,
}

/// Subnets measured end to end to fit the end-to-end model when a table is built.
pub const DEFAULT_CALIBRATION_SUBNETS: usize = 30;

/// The reference of a table at `resolutions`: the largest subnet (kernel 7, expand 6, depth
/// 4) at the largest resolution, the network whose latency sets a search's default budget,
/// so that the table's predictions and the budget rest on the same measurement.
pub fn reference_config(resolutions: &[u32]) -> OfaConfig {
    OfaConfig {
        ks: vec![7; 20],
        e: vec![6; 20],
        d: vec![4; 5],
        r: resolutions.iter().copied().max().unwrap_or(224),
    }
}

/// Every distinct layer of the subnets at these resolutions.
pub fn distinct_layers(resolutions: &[u32]) -> Vec<OfaLayer> {
    let mut set = BTreeSet::new();
    for &r in resolutions {
        let mut h = r.div_ceil(2);
        set.insert(OfaLayer::FirstConv { r });
        set.insert(OfaLayer::FirstBlock { h });
        let mut cin = STEM_WIDTH;
        for &(cout, stage_stride, se, hswish) in &STAGE_SETTINGS {
            for position in 0..2 {
                let (stride, input_channels) = if position == 0 {
                    (stage_stride, cin)
                } else {
                    (1, cout)
                };
                let input_size = if position == 0 {
                    h
                } else {
                    h.div_ceil(stage_stride)
                };
                for kernel in [3, 5, 7] {
                    for expand in [3, 4, 6] {
                        set.insert(OfaLayer::MbConv {
                            h: input_size,
                            cin: input_channels,
                            cout,
                            mid: input_channels * expand,
                            kernel,
                            stride,
                            se,
                            hswish,
                        });
                    }
                }
            }
            h = h.div_ceil(stage_stride);
            cin = cout;
        }
        set.insert(OfaLayer::Head { h, cin });
    }
    set.into_iter().collect()
}

/// Progress of a long step: `(done, total, what)`.
pub type Progress<'a> = &'a dyn Fn(usize, usize, &str);

impl LayerLut {
    /// Reads a table written by [`LayerLut::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let lut: LayerLut = serde_json::from_str(&text).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            problem: format!("not an hwnas lookup table ({e}); build one with `hwnas lut build`"),
        })?;
        if lut.version != LUT_VERSION {
            return Err(Error::Data {
                path: path.to_path_buf(),
                problem: format!(
                    "lookup-table version {} (this hwnas reads {LUT_VERSION}); rebuild it with `hwnas lut build`",
                    lut.version
                ),
            });
        }
        lut.check().map_err(|problem| Error::Data {
            path: path.to_path_buf(),
            problem: format!("{problem}; rebuild it with `hwnas lut build`"),
        })?;
        Ok(lut)
    }

    /// Every number where it can be: timings finite and positive, the calibration a
    /// plausible line, the resolutions Once-for-All's, the protocol valid.
    fn check(&self) -> std::result::Result<(), String> {
        let allowed = hwnas_core::space::ofa::RESOLUTIONS;
        if let Some(r) = self.resolutions.iter().find(|r| !allowed.contains(*r)) {
            return Err(format!("resolution {r} is outside {allowed:?}"));
        }
        self.protocol.validate().map_err(|e| e.to_string())?;
        for entry in &self.entries {
            let s = entry.stats;
            let timings = [s.median_ms, s.p10_ms, s.p90_ms, s.mean_ms];
            let positive = timings.iter().all(|t| t.is_finite() && *t > 0.0);
            if !(positive && s.std_ms.is_finite() && s.std_ms >= 0.0) {
                return Err(format!(
                    "layer {} has timings {:?} ms (std {}): each must be a positive number",
                    entry.layer.label(),
                    timings,
                    s.std_ms
                ));
            }
        }
        if let Some(r) = &self.reference
            && !(r.ms.is_finite() && r.ms > 0.0)
        {
            return Err(format!(
                "the reference subnet measured {} ms: it must be a positive number",
                r.ms
            ));
        }
        if let Some(m) = &self.model {
            let sound = |(x, y): &(Vec<f64>, f64)| {
                x.len() == crate::lut_model::FEATURES.len()
                    && x.iter().all(|v| v.is_finite() && *v >= 0.0)
                    && y.is_finite()
                    && *y > 0.0
            };
            if !crate::lut_model::KINDS.contains(&m.kind.as_str())
                || !m.points.iter().all(sound)
                || m.points.len() < 2
            {
                return Err(format!(
                    "the end-to-end model ({}, {} calibration points) is not one hwnas fitted: its kind must be one of {:?} and every point {} non-negative features with a positive latency",
                    m.kind,
                    m.points.len(),
                    crate::lut_model::KINDS,
                    crate::lut_model::FEATURES.len()
                ));
            }
        }
        if let Some(c) = self.calibration {
            let plausible = c.slope.is_finite()
                && c.slope > 0.0
                && c.slope < 100.0
                && c.intercept.is_finite()
                && c.intercept.abs() < 1e6
                && c.fit_rmse_ms.is_finite()
                && c.fit_rmse_ms >= 0.0;
            if !plausible {
                return Err(format!(
                    "the calibration (slope {}, intercept {} ms, fit RMSE {} ms) is not a plausible line: the slope must be in (0, 100), the intercept and RMSE finite",
                    c.slope, c.intercept, c.fit_rmse_ms
                ));
            }
        }
        Ok(())
    }

    /// Why the table's measurements may not hold for `here` (another machine, runtime or
    /// thread count), or `None` where they were taken on such a machine.
    pub fn measured_elsewhere(&self, here: &Fingerprint) -> Option<String> {
        let f = &self.fingerprint;
        let mut differences = Vec::new();
        for (what, theirs, ours) in [
            ("CPU architecture", &f.arch, &here.arch),
            ("CPU", &f.cpu_model, &here.cpu_model),
            ("ONNX Runtime", &f.ort_version, &here.ort_version),
        ] {
            if theirs != ours {
                differences.push(format!("{what} {theirs} (here: {ours})"));
            }
        }
        if f.cores != here.cores {
            differences.push(format!("{} cores (here: {})", f.cores, here.cores));
        }
        (!differences.is_empty()).then(|| {
            format!(
                "the lookup table was measured on another machine: {}; its predictions may not hold here",
                differences.join(", ")
            )
        })
    }

    /// Writes the table as JSON (to a temporary file, then renamed into place).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Cache(e.to_string()))?;
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, text).map_err(|source| Error::Io {
            path: partial.clone(),
            source,
        })?;
        std::fs::rename(&partial, path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Builds (or resumes building) the table at `path`: measures every layer not yet in it,
    /// saving after each, then fits the calibration on `calibration_subnets` subnets.
    pub fn build(
        path: &Path,
        resolutions: &[u32],
        protocol: &Protocol,
        calibration_subnets: usize,
        cache: Option<&MeasurementCache>,
        progress: Progress<'_>,
        warn: &dyn Fn(&str),
    ) -> Result<Self> {
        let fingerprint = Fingerprint::local(OrtRuntime::load()?, protocol.threads);
        let mut lut = match path.exists() {
            true => {
                let existing = Self::load(path)?;
                if existing.fingerprint != fingerprint || existing.protocol != *protocol {
                    return Err(Error::Data {
                        path: path.to_path_buf(),
                        problem: "this table was measured elsewhere or by another protocol; give another -o FILE or delete it".to_string(),
                    });
                }
                existing
            }
            false => LayerLut {
                version: LUT_VERSION,
                fingerprint,
                protocol: *protocol,
                resolutions: Vec::new(),
                entries: Vec::new(),
                calibration: None,
                reference: None,
                model: None,
            },
        };
        let mut all: BTreeSet<u32> = lut.resolutions.iter().copied().collect();
        all.extend(resolutions);
        lut.resolutions = all.into_iter().collect();
        let todo: Vec<OfaLayer> = distinct_layers(resolutions)
            .into_iter()
            .filter(|layer| !lut.entries.iter().any(|e| e.layer == *layer))
            .collect();
        let total = todo.len();
        for (done, layer) in todo.into_iter().enumerate() {
            progress(done, total, &layer.label());
            let model = encode(&layer_model(
                &layer,
                &mut RandomWeights::new(0),
                ExportOptions::default(),
            ));
            let (measurement, _) = profile_cached(&model, protocol, cache, warn)?;
            lut.entries.push(LutEntry {
                layer,
                stats: measurement.stats,
            });
            lut.calibration = None;
            lut.model = None;
            lut.save(path)?;
        }
        progress(total, total, "layers measured");
        // Tables from before the end-to-end model are calibrated again to get one.
        let calibrated = lut.calibration.is_some()
            && lut.model.is_some()
            && lut
                .reference
                .as_ref()
                .is_some_and(|r| r.config == reference_config(&lut.resolutions));
        if !calibrated && calibration_subnets > 0 {
            lut.calibrate(calibration_subnets, protocol, cache, progress, warn)?;
            lut.save(path)?;
        }
        Ok(lut)
    }

    /// The space of subnets the table covers.
    pub fn space(&self) -> Result<OfaSpace> {
        OfaSpace::new(self.resolutions.clone()).map_err(|e| Error::Setting(e.to_string()))
    }

    /// The median of one layer of a subnet at resolution `r`.
    pub fn median_ms(&self, layer: &OfaLayer, r: u32) -> Result<f64> {
        self.entries
            .iter()
            .find(|e| e.layer == *layer)
            .map(|e| e.stats.median_ms)
            .ok_or_else(|| Error::Setting(format!(
                "the lookup table has no entry for {} (resolution {r} not built? run `hwnas lut build --resolutions {r}`)",
                layer.label()
            )))
    }

    /// The sum of a subnet's layer medians.
    pub fn layer_sum_ms(&self, config: &OfaConfig) -> Result<f64> {
        layers(config)
            .iter()
            .map(|layer| self.median_ms(layer, config.r))
            .sum()
    }

    /// Predicted end-to-end latency by the calibration's line over the layer sum (see
    /// [`LutPredictor`] for the end-to-end model).
    pub fn predict_ms(&self, config: &OfaConfig) -> Result<f64> {
        let sum = self.layer_sum_ms(config)?;
        Ok(match self.calibration {
            Some(c) => c.slope * sum + c.intercept,
            None => sum,
        })
    }

    /// Fits the calibration line and the end-to-end model on `count` random subnets
    /// (seed 1, so the evaluation's subnets, drawn with another seed, are held out), each
    /// measured beside the reference subnet.
    pub fn calibrate(
        &mut self,
        count: usize,
        protocol: &Protocol,
        cache: Option<&MeasurementCache>,
        progress: Progress<'_>,
        warn: &dyn Fn(&str),
    ) -> Result<Calibration> {
        let space = self.space()?;
        let config = reference_config(&self.resolutions);
        let model =
            export_for_profiling(&space, &space.from_config(&config).map_err(Error::Arch)?)?;
        let (measurement, _) = profile_cached(&model, protocol, cache, warn)?;
        self.reference = Some(LutReference {
            config,
            ms: measurement.stats.median_ms,
        });
        let subnets = self.measure_subnets(count, 1, protocol, progress)?;
        let calibration = fit_line(
            &subnets
                .iter()
                .map(|s| (s.layer_sum_ms, s.ms))
                .collect::<Vec<_>>(),
        );
        self.calibration = Some(calibration);
        self.model = Some(EndToEndModel::choose(
            subnets.into_iter().map(|s| (s.features, s.ms)).collect(),
        )?);
        Ok(calibration)
    }

    /// `count` random subnets drawn with `seed`, each measured end to end beside the
    /// table's reference subnet in one interleaved run (alone where it has none).
    pub fn measure_subnets(
        &self,
        count: usize,
        seed: u64,
        protocol: &Protocol,
        progress: Progress<'_>,
    ) -> Result<Vec<MeasuredSubnet>> {
        let space = self.space()?;
        let reference = match &self.reference {
            Some(r) => Some((
                export_for_profiling(&space, &space.from_config(&r.config).map_err(Error::Arch)?)?,
                r.ms,
            )),
            None => None,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut subnets = Vec::with_capacity(count);
        for i in 0..count {
            progress(i, count, "subnets measured end to end");
            let arch = space.sample(&mut rng);
            let config = space.config(&arch);
            let model = export_for_profiling(&space, &arch)?;
            let (ms, raw_ms) = match &reference {
                Some((reference, reference_ms)) => {
                    let both = profile_interleaved(&[&model, reference], protocol)?;
                    let raw = both[0].stats.median_ms;
                    (raw / both[1].stats.median_ms * reference_ms, raw)
                }
                None => {
                    let raw = profile(&model, protocol)?.stats.median_ms;
                    (raw, raw)
                }
            };
            subnets.push(MeasuredSubnet {
                features: features(self, &config)?,
                layer_sum_ms: self.layer_sum_ms(&config)?,
                config,
                ms,
                raw_ms,
            });
        }
        progress(count, count, "subnets measured end to end");
        Ok(subnets)
    }
}

/// A table's prediction of end-to-end latency: its end-to-end model, fitted once, or its
/// calibration line where it has none.
pub struct LutPredictor {
    lut: LayerLut,
    model: Option<Predictor>,
}

impl LutPredictor {
    /// The predictor of `lut`.
    pub fn new(lut: LayerLut) -> Result<Self> {
        let model = lut
            .model
            .as_ref()
            .map(EndToEndModel::predictor)
            .transpose()?;
        Ok(LutPredictor { lut, model })
    }

    /// The table.
    pub fn lut(&self) -> &LayerLut {
        &self.lut
    }

    /// Predicted end-to-end milliseconds of a subnet.
    pub fn predict_ms(&self, config: &OfaConfig) -> Result<f64> {
        match &self.model {
            Some(model) => model.predict_ms(&features(&self.lut, config)?),
            None => self.lut.predict_ms(config),
        }
    }

    /// The model kind predictions come from.
    pub fn kind(&self) -> &str {
        self.lut.model.as_ref().map_or("line", |m| m.kind.as_str())
    }
}

/// Least-squares line through `(x, y)` points.
pub fn fit_line(points: &[(f64, f64)]) -> Calibration {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let (slope, intercept) = if sxx > 0.0 {
        (sxy / sxx, my - sxy / sxx * mx)
    } else {
        (1.0, my - mx)
    };
    let rmse = (points
        .iter()
        .map(|p| (slope * p.0 + intercept - p.1).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    Calibration {
        slope,
        intercept,
        subnets: points.len(),
        fit_rmse_ms: rmse,
    }
}

/// Accuracy of predictions against measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LutReport {
    /// Subnets compared.
    pub samples: usize,
    /// Root-mean-square error in milliseconds.
    pub rmse_ms: f64,
    /// Mean absolute percentage error, as a share (0.05 = 5%).
    pub mape: f64,
    /// Share of subnets predicted within ±5%.
    pub within_5pct: f64,
    /// Share within ±10%.
    pub within_10pct: f64,
}

/// Compares `(predicted, measured)` pairs.
pub fn report(pairs: &[(f64, f64)]) -> LutReport {
    let n = pairs.len() as f64;
    let rel: Vec<f64> = pairs.iter().map(|(p, m)| (p - m).abs() / m).collect();
    LutReport {
        samples: pairs.len(),
        rmse_ms: (pairs.iter().map(|(p, m)| (p - m).powi(2)).sum::<f64>() / n).sqrt(),
        mape: rel.iter().sum::<f64>() / n,
        within_5pct: rel.iter().filter(|r| **r <= 0.05).count() as f64 / n,
        within_10pct: rel.iter().filter(|r| **r <= 0.10).count() as f64 / n,
    }
}

/// A lookup table as the search's latency model.
pub struct LutLatency {
    predictor: LutPredictor,
    space: OfaSpace,
}

impl LutLatency {
    /// The latency model of a table.
    pub fn new(lut: LayerLut) -> Result<Self> {
        let space = lut.space()?;
        Ok(LutLatency {
            predictor: LutPredictor::new(lut)?,
            space,
        })
    }

    /// The space the table covers.
    pub fn space(&self) -> &OfaSpace {
        &self.space
    }

    /// The table.
    pub fn lut(&self) -> &LayerLut {
        self.predictor.lut()
    }
}

impl LatencyModel for LutLatency {
    fn is_cheap(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        "lut:host".to_string()
    }

    fn latency_ms(&self, arch: &Arch) -> hwnas_core::Result<f64> {
        let config = self.space.config(arch);
        self.predictor
            .predict_ms(&config)
            .map_err(|e| hwnas_core::Error::Failed {
                source_name: "lookup table".to_string(),
                arch: self.space.format(arch),
                source: Box::new(e),
            })
    }
}

/// The lookup table for this machine, built on first use and kept in the cache folder
/// (`<cache>/lut/<fingerprint hash>.json`); later calls load it. An interrupted build
/// resumes.
pub fn host_lut(
    resolutions: &[u32],
    protocol: &Protocol,
    calibration_subnets: usize,
    progress: Progress<'_>,
    warn: &dyn Fn(&str),
) -> Result<(LayerLut, std::path::PathBuf)> {
    let fingerprint = Fingerprint::local(OrtRuntime::load()?, protocol.threads);
    let mut hasher = blake3::Hasher::new();
    hasher.update(fingerprint.key().as_bytes());
    hasher.update(&postcard::to_allocvec(protocol).expect("a protocol serialises"));
    for r in resolutions {
        hasher.update(&r.to_le_bytes());
    }
    let cache_root = crate::cache::default_dir();
    let dir = cache_root.parent().unwrap_or(&cache_root).join("lut");
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(format!(
        "ofa-mbv3-{}.json",
        &hasher.finalize().to_hex()[..16]
    ));
    // A damaged table in the cache is set aside and built again, not reported as the
    // user's to repair.
    if path.exists()
        && let Err(e) = LayerLut::load(&path)
    {
        let aside = path.with_extension("json.damaged");
        warn(&format!(
            "the cached lookup table is damaged ({e}); moved to {} and building it again",
            aside.display()
        ));
        std::fs::rename(&path, &aside).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
    }
    let cache = crate::cache::open_or_warn(&cache_root, warn);
    let lut = LayerLut::build(
        &path,
        resolutions,
        protocol,
        calibration_subnets,
        cache.as_ref(),
        progress,
        warn,
    )?;
    Ok((lut, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_layers_cover_every_subnet() {
        let layers_224 = distinct_layers(&[224]);
        assert_eq!(layers_224.len(), 2 + 5 * 2 * 9 + 1);
        let space = OfaSpace::new(vec![224]).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for _ in 0..200 {
            let config = space.config(&space.sample(&mut rng));
            for layer in layers(&config) {
                assert!(layers_224.contains(&layer), "{layer:?}");
            }
        }
    }

    #[test]
    fn line_fit_and_report() {
        let points = [(1.0, 3.0), (2.0, 5.0), (3.0, 7.0)];
        let c = fit_line(&points);
        assert!((c.slope - 2.0).abs() < 1e-12 && (c.intercept - 1.0).abs() < 1e-12);
        let r = report(&[(10.0, 10.0), (10.6, 10.0), (12.0, 10.0), (9.6, 10.0)]);
        assert_eq!(r.within_5pct, 0.5);
        assert_eq!(r.within_10pct, 0.75);
    }

    fn table() -> LayerLut {
        let stats = Stats {
            median_ms: 1.0,
            p10_ms: 0.9,
            p90_ms: 1.1,
            mean_ms: 1.0,
            std_ms: 0.1,
            runs: 50,
            median_rel_ci: 0.01,
        };
        LayerLut {
            version: LUT_VERSION,
            fingerprint: Fingerprint {
                ort_version: "1.31.1".into(),
                execution_provider: "CPUExecutionProvider".into(),
                cpu_model: "a cpu".into(),
                cores: 2,
                threads: 1,
                governor: None,
                arch: "x86_64".into(),
            },
            protocol: Protocol::default(),
            resolutions: vec![224],
            entries: vec![LutEntry {
                layer: OfaLayer::FirstConv { r: 224 },
                stats,
            }],
            calibration: Some(Calibration {
                slope: 1.1,
                intercept: 0.2,
                subnets: 12,
                fit_rmse_ms: 0.05,
            }),
            reference: None,
            model: None,
        }
    }

    #[test]
    fn tables_with_impossible_numbers_are_refused_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lut.json");
        table().save(&path).unwrap();
        LayerLut::load(&path).unwrap();
        let mut negative = table();
        negative.entries[0].stats.median_ms = -1.0;
        let mut steep = table();
        steep.calibration.as_mut().unwrap().slope = 1e300;
        let mut odd = table();
        odd.resolutions = vec![2000];
        for (bad, expected) in [
            (negative, "must be a positive number"),
            (steep, "not a plausible line"),
            (odd, "resolution 2000"),
        ] {
            bad.save(&path).unwrap();
            let error = LayerLut::load(&path).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn a_table_from_another_machine_is_named_as_such() {
        let lut = table();
        assert!(lut.measured_elsewhere(&lut.fingerprint).is_none());
        let mut board = lut.fingerprint.clone();
        board.arch = "aarch64".into();
        let warning = lut.measured_elsewhere(&board).unwrap();
        assert!(
            warning.contains("CPU architecture x86_64 (here: aarch64)"),
            "{warning}"
        );
    }
}
