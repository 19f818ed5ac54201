//! Once-for-All's published artefacts for its MobileNetV3 (w1.2) supernet: the ImageNet
//! accuracy predictor (a 4-layer MLP over a 128-value encoding) as an [`Evaluator`], and the
//! Samsung Note10 latency lookup tables as a [`LatencyModel`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::evaluate::{Evaluation, Evaluator, LatencyModel};
use crate::space::Arch;
use crate::space::ofa::{BLOCKS, EXPANDS, KERNELS, MAX_DEPTH, OfaConfig, OfaSpace};

/// Environment variable with the folder of Once-for-All's files.
pub const OFA_DIR_ENV: &str = "HWNAS_OFA_DIR";
/// Their place inside the shared data folder.
pub const SHARED_OFA_DIR: &str = "ofa-mobilenetv3";
/// The predictor's file name.
pub const PREDICTOR_FILE: &str = "acc_predictor_mbv3_w1.2.npz";
/// The Note10 lookup tables' folder name.
pub const NOTE10_DIR: &str = "latency_table@note10";

/// The folder holding Once-for-All's files: `dir`, `HWNAS_OFA_DIR`, or the shared data.
pub fn locate_ofa_dir(dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = dir {
        return Ok(dir.to_path_buf());
    }
    crate::data::locate(OFA_DIR_ENV, SHARED_OFA_DIR).ok_or_else(|| Error::Setting {
        name: "ofa-dir".to_string(),
        problem: format!(
            "Once-for-All's predictor and lookup tables were not found; give their folder, set {OFA_DIR_ENV}, or put the shared data at ../shared/data/{SHARED_OFA_DIR}"
        ),
    })
}

/// [`locate_ofa_dir`], where the folder also holds the accuracy predictor.
pub fn locate_ofa_files(dir: Option<&Path>) -> Result<PathBuf> {
    let dir = locate_ofa_dir(dir)?;
    if dir.join(PREDICTOR_FILE).is_file() {
        Ok(dir)
    } else {
        Err(Error::Data {
            path: dir.join(PREDICTOR_FILE),
            problem: "Once-for-All's accuracy predictor is missing from the folder".into(),
        })
    }
}

struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

impl Linear {
    fn apply(&self, x: &[f32], relu: bool) -> Vec<f32> {
        self.bias
            .iter()
            .enumerate()
            .map(|(o, &b)| {
                let row = &self.weight[o * self.inputs..(o + 1) * self.inputs];
                let v = row.iter().zip(x).map(|(w, x)| w * x).sum::<f32>() + b;
                if relu { v.max(0.0) } else { v }
            })
            .collect()
    }
}

/// Once-for-All's accuracy predictor: ImageNet top-1 of a subnet, in percent.
pub struct OfaPredictor {
    space: OfaSpace,
    layers: Vec<Linear>,
    path: PathBuf,
}

impl std::fmt::Debug for OfaPredictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfaPredictor")
            .field("path", &self.path)
            .finish()
    }
}

impl OfaPredictor {
    /// Encoding length the predictor reads.
    pub const INPUTS: usize = 128;

    /// Loads `acc_predictor_mbv3_w1.2.npz` (float32 `{0,2,4,6}_{weight,bias}`).
    pub fn load(path: &Path, space: OfaSpace) -> Result<Self> {
        let data_error = |problem: String| Error::Data {
            path: path.to_path_buf(),
            problem,
        };
        if let Some(bad) = space
            .resolutions()
            .iter()
            .find(|&&r| !(112..240).contains(&r))
        {
            return Err(Error::Setting {
                name: "resolutions".to_string(),
                problem: format!("the predictor encodes resolutions 112..=239 only, not {bad}"),
            });
        }
        let mut archive = npyz::npz::NpzArchive::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut read = |name: &str| -> Result<(Vec<f32>, Vec<u64>)> {
            let array = archive
                .by_name(name)
                .map_err(|e| data_error(format!("array `{name}`: {e}")))?
                .ok_or_else(|| data_error(format!("array `{name}` is missing")))?;
            let shape = array.shape().to_vec();
            let values = array
                .into_vec::<f32>()
                .map_err(|e| data_error(format!("array `{name}` is not float32: {e}")))?;
            Ok((values, shape))
        };
        let mut layers = Vec::new();
        let mut width = Self::INPUTS;
        for index in [0, 2, 4, 6] {
            let (weight, shape) = read(&format!("{index}_weight"))?;
            let (bias, _) = read(&format!("{index}_bias"))?;
            if shape.len() != 2 || shape[1] as usize != width || bias.len() != shape[0] as usize {
                return Err(data_error(format!(
                    "layer {index} has weight shape {shape:?} and {} biases; expected [_, {width}]",
                    bias.len()
                )));
            }
            width = shape[0] as usize;
            if weight.iter().chain(&bias).any(|v| !v.is_finite()) {
                return Err(data_error(format!(
                    "layer {index} holds a value that is not a finite number; the predictor is damaged"
                )));
            }
            layers.push(Linear {
                weight,
                bias,
                inputs: shape[1] as usize,
            });
        }
        if width != 1 {
            return Err(data_error(format!(
                "the last layer has {width} outputs, expected 1"
            )));
        }
        Ok(OfaPredictor {
            space,
            layers,
            path: path.to_path_buf(),
        })
    }

    /// The 128-value encoding Once-for-All's predictor reads.
    pub fn features(config: &OfaConfig) -> Vec<f32> {
        let mut x = vec![0.0; Self::INPUTS];
        for block in 0..BLOCKS {
            if !config.block_active(block) {
                continue;
            }
            let k = KERNELS
                .iter()
                .position(|&k| k == config.ks[block])
                .expect("valid kernel");
            let e = EXPANDS
                .iter()
                .position(|&e| e == config.e[block])
                .expect("valid expand");
            x[3 * block + k] = 1.0;
            x[3 * BLOCKS + 3 * block + e] = 1.0;
        }
        x[6 * BLOCKS + ((config.r - 112) / 16) as usize] = 1.0;
        x
    }

    /// Predicted top-1 of a config, as a fraction.
    pub fn predict(&self, config: &OfaConfig) -> f64 {
        let mut x = Self::features(config);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.apply(&x, i != last);
        }
        f64::from(x[0])
    }
}

impl Evaluator for OfaPredictor {
    fn name(&self) -> String {
        "ofa-predictor".to_string()
    }

    fn evaluate(&self, arch: &Arch) -> Result<Evaluation> {
        let accuracy = 100.0 * self.predict(&self.space.config(arch));
        Ok(Evaluation {
            accuracy,
            test_accuracy: Some(accuracy),
            cost_seconds: 0.0,
        })
    }
}

/// Per-stage settings of Once-for-All MobileNetV3: output width, stride, squeeze-excite,
/// h-swish.
pub const STAGE_SETTINGS: [(u32, u32, bool, bool); 5] = [
    (32, 2, false, false),
    (48, 2, true, false),
    (96, 2, false, true),
    (136, 1, true, true),
    (192, 2, true, true),
];

/// Width of the first conv and the fixed first block.
pub const STEM_WIDTH: u32 = 24;

/// Spatial size after a stride with "same" padding (ceil).
fn strided(size: u32, stride: u32) -> u32 {
    size.div_ceil(stride)
}

/// The lookup-table keys whose latencies add up to a subnet's latency, in network order.
pub fn note10_keys(config: &OfaConfig) -> Vec<String> {
    let r = config.r;
    let mut h = strided(r, 2);
    let mut keys = vec![format!("Conv-input:{r}x{r}x3-output:{h}x{h}x{STEM_WIDTH}")];
    keys.push(format!(
        "expanded_conv-input:{h}x{h}x{STEM_WIDTH}-output:{h}x{h}x{STEM_WIDTH}-expand:{STEM_WIDTH}-kernel:3-stride:1-idskip:1-se:0-hs:0"
    ));
    let mut cin = STEM_WIDTH;
    for (stage, &(cout, stage_stride, se, hs)) in STAGE_SETTINGS.iter().enumerate() {
        for depth in 0..config.d[stage] as usize {
            let block = stage * MAX_DEPTH + depth;
            let stride = if depth == 0 { stage_stride } else { 1 };
            let out = strided(h, stride);
            let mid = cin * config.e[block];
            keys.push(format!(
                "expanded_conv-input:{h}x{h}x{cin}-output:{out}x{out}x{cout}-expand:{mid}-kernel:{}-stride:{stride}-idskip:{}-se:{}-hs:{}",
                config.ks[block],
                u8::from(depth > 0),
                u8::from(se),
                u8::from(hs)
            ));
            h = out;
            cin = cout;
        }
    }
    keys.push(format!("Conv_1-input:{h}x{h}x{cin}-output:{h}x{h}x1152"));
    keys.push(format!("AvgPool2D-input:{h}x{h}x1152-output:1x1x1152"));
    keys.push("Conv_2-input:1x1x1152-output:1x1x1536".to_string());
    keys.push("Logits-input:1x1x1536-output:1000".to_string());
    keys
}

#[derive(Deserialize)]
struct LutEntry {
    mean: f64,
}

/// Once-for-All's Samsung Note10 lookup tables, one per resolution.
#[derive(Debug, Clone)]
pub struct Note10Lut {
    space: OfaSpace,
    tables: HashMap<u32, HashMap<String, f64>>,
    dir: PathBuf,
}

impl Note10Lut {
    /// Reads every `<R>_lookup_table.yaml` in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut tables = HashMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(resolution) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix("_lookup_table.yaml"))
                .and_then(|r| r.parse::<u32>().ok())
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            let table: HashMap<String, LutEntry> =
                serde_yaml_ng::from_str(&text).map_err(|e| Error::Data {
                    path: path.clone(),
                    problem: format!("not a lookup table ({{key: {{count, mean, std}}}}): {e}"),
                })?;
            if let Some((key, entry)) = table
                .iter()
                .find(|(_, v)| !(v.mean.is_finite() && v.mean >= 0.0))
            {
                return Err(Error::Data {
                    path: path.clone(),
                    problem: format!(
                        "layer `{key}` has latency {} ms: every mean must be a non-negative number; repair the table",
                        entry.mean
                    ),
                });
            }
            tables.insert(
                resolution,
                table.into_iter().map(|(k, v)| (k, v.mean)).collect(),
            );
        }
        if tables.is_empty() {
            return Err(Error::Data {
                path: dir.to_path_buf(),
                problem: "no <R>_lookup_table.yaml files in this folder".to_string(),
            });
        }
        let mut resolutions: Vec<u32> = tables.keys().copied().collect();
        resolutions.sort_unstable();
        Ok(Note10Lut {
            space: OfaSpace::new(resolutions)?,
            tables,
            dir: dir.to_path_buf(),
        })
    }

    /// The Once-for-All space restricted to the resolutions the tables cover.
    pub fn space(&self) -> &OfaSpace {
        &self.space
    }

    /// Latency of a config in milliseconds: the sum of its layers' table entries.
    pub fn latency_of(&self, config: &OfaConfig) -> Result<f64> {
        let table = self.tables.get(&config.r).ok_or_else(|| Error::Missing {
            source_name: self.dir.display().to_string(),
            arch: format!("resolution {}", config.r),
            problem: format!(
                "no lookup table for this resolution; tables: {:?}",
                self.space.resolutions()
            ),
        })?;
        note10_keys(config)
            .iter()
            .map(|key| {
                table.get(key).copied().ok_or_else(|| Error::Missing {
                    source_name: self.dir.display().to_string(),
                    arch: key.clone(),
                    problem: "layer missing from the lookup table".to_string(),
                })
            })
            .sum()
    }
}

impl LatencyModel for Note10Lut {
    fn is_cheap(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        "table:note10".to_string()
    }

    fn latency_ms(&self, arch: &Arch) -> Result<f64> {
        self.latency_of(&self.space.config(arch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(ks: u32, e: u32, d: u32, r: u32) -> OfaConfig {
        OfaConfig {
            ks: vec![ks; 20],
            e: vec![e; 20],
            d: vec![d; 5],
            r,
        }
    }

    #[test]
    fn encoding_marks_active_blocks_and_resolution() {
        let config = uniform(7, 6, 2, 224);
        let x = OfaPredictor::features(&config);
        assert_eq!(x.iter().sum::<f32>(), 10.0 + 10.0 + 1.0);
        assert_eq!(x[2], 1.0); // block 0, ks 7
        assert_eq!(x[3 * 2 + 2], 0.0); // block 2 is past depth 2
        assert_eq!(x[120 + 7], 1.0); // (224 - 112) / 16
    }

    #[test]
    fn note10_keys_follow_the_network() {
        let keys = note10_keys(&uniform(3, 3, 2, 164));
        assert_eq!(keys[0], "Conv-input:164x164x3-output:82x82x24");
        assert_eq!(keys.len(), 2 + 10 + 4);
        assert_eq!(
            keys[10],
            "expanded_conv-input:11x11x136-output:6x6x192-expand:408-kernel:3-stride:2-idskip:0-se:1-hs:1"
        );
        assert_eq!(keys[12], "Conv_1-input:6x6x192-output:6x6x1152");
    }
}
