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
    /// The layer on `rows` inputs at once (`x` is `[rows, inputs]`): one matrix product,
    /// the predictor's whole cost in a search.
    fn apply(&self, x: &[f32], rows: usize, relu: bool) -> Vec<f32> {
        let outputs = self.bias.len();
        let mut y = vec![0.0; rows * outputs];
        hwnas_kernels::cpu::gemm::sgemm(
            rows,
            self.inputs,
            outputs,
            x,
            false,
            &self.weight,
            true,
            0.0,
            &mut y,
        );
        for row in y.chunks_exact_mut(outputs) {
            for (v, b) in row.iter_mut().zip(&self.bias) {
                *v += b;
                if relu {
                    *v = v.max(0.0);
                }
            }
        }
        y
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
        self.predict_many(std::slice::from_ref(config))[0]
    }

    /// Predicted top-1 of each config, as fractions: one matrix product per layer for all
    /// (the weights read once per round, ~10x less per config than alone). A config's
    /// prediction has the same bits alone and in any round (tested), so that a resumed
    /// search, asking the rest of an interrupted round, gets what the whole round got.
    /// Alone a product costs more than dot products would (a 5,000-query REA run here:
    /// 1.3-1.5 s against 0.8 s), but those sum in another order.
    pub fn predict_many(&self, configs: &[OfaConfig]) -> Vec<f64> {
        let mut x = Vec::with_capacity(configs.len() * Self::INPUTS);
        for config in configs {
            x.extend(Self::features(config));
        }
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.apply(&x, configs.len(), i != last);
        }
        x.into_iter().map(f64::from).collect()
    }
}

impl Evaluator for OfaPredictor {
    fn name(&self) -> String {
        "ofa-predictor".to_string()
    }

    fn evaluate(&self, arch: &Arch) -> Result<Evaluation> {
        Ok(self.evaluate_many(std::slice::from_ref(arch))?.remove(0))
    }

    fn evaluate_many(&self, archs: &[Arch]) -> Result<Vec<Evaluation>> {
        let configs: Vec<OfaConfig> = archs.iter().map(|a| self.space.config(a)).collect();
        Ok(self
            .predict_many(&configs)
            .into_iter()
            .map(|fraction| {
                let accuracy = 100.0 * fraction;
                Evaluation {
                    accuracy,
                    test_accuracy: Some(accuracy),
                    cost_seconds: 0.0,
                }
            })
            .collect())
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

/// The spatial size at the input of each stage at resolution `r` (only a stage's first
/// block strides).
fn stage_inputs(r: u32) -> [u32; 5] {
    let mut h = strided(r, 2);
    let mut inputs = [0; 5];
    for (stage, &(_, stride, _, _)) in STAGE_SETTINGS.iter().enumerate() {
        inputs[stage] = h;
        h = strided(h, stride);
    }
    inputs
}

/// The lookup-table key of a block of `stage` at resolution `r`: its first block (which
/// strides and changes the width) or a later one (all alike), expand ratio `e`, kernel `k`.
fn block_key(r: u32, stage: usize, first: bool, e: u32, k: u32) -> String {
    let (cout, stage_stride, se, hs) = STAGE_SETTINGS[stage];
    let h_in = stage_inputs(r)[stage];
    let (h, stride, cin) = if first {
        let cin = if stage == 0 {
            STEM_WIDTH
        } else {
            STAGE_SETTINGS[stage - 1].0
        };
        (h_in, stage_stride, cin)
    } else {
        (strided(h_in, stage_stride), 1, cout)
    };
    let out = strided(h, stride);
    format!(
        "expanded_conv-input:{h}x{h}x{cin}-output:{out}x{out}x{cout}-expand:{}-kernel:{k}-stride:{stride}-idskip:{}-se:{}-hs:{}",
        cin * e,
        u8::from(!first),
        u8::from(se),
        u8::from(hs)
    )
}

/// The keys before the blocks (the first conv, the fixed first block) and after them (the
/// head), at resolution `r`.
fn fixed_keys(r: u32) -> ([String; 2], [String; 4]) {
    let h = strided(r, 2);
    let last = STAGE_SETTINGS.len() - 1;
    let h_end = strided(stage_inputs(r)[last], STAGE_SETTINGS[last].1);
    let c_end = STAGE_SETTINGS[last].0;
    (
        [
            format!("Conv-input:{r}x{r}x3-output:{h}x{h}x{STEM_WIDTH}"),
            format!(
                "expanded_conv-input:{h}x{h}x{STEM_WIDTH}-output:{h}x{h}x{STEM_WIDTH}-expand:{STEM_WIDTH}-kernel:3-stride:1-idskip:1-se:0-hs:0"
            ),
        ],
        [
            format!("Conv_1-input:{h_end}x{h_end}x{c_end}-output:{h_end}x{h_end}x1152"),
            format!("AvgPool2D-input:{h_end}x{h_end}x1152-output:1x1x1152"),
            "Conv_2-input:1x1x1152-output:1x1x1536".to_string(),
            "Logits-input:1x1x1536-output:1000".to_string(),
        ],
    )
}

/// The lookup-table keys whose latencies add up to a subnet's latency, in network order.
pub fn note10_keys(config: &OfaConfig) -> Vec<String> {
    let (head, tail) = fixed_keys(config.r);
    let mut keys: Vec<String> = head.into();
    for stage in 0..STAGE_SETTINGS.len() {
        for depth in 0..config.d[stage] as usize {
            let block = stage * MAX_DEPTH + depth;
            keys.push(block_key(
                config.r,
                stage,
                depth == 0,
                config.e[block],
                config.ks[block],
            ));
        }
    }
    keys.extend(tail);
    keys
}

/// One resolution's table resolved for every block a subnet can hold, so that a query adds
/// numbers instead of building and hashing its keys; `None` where the table lacks the layer
/// (the query then names the missing key).
#[derive(Debug, Clone)]
struct ResolvedTable {
    head: [Option<f64>; 2],
    /// `[stage][first][expand index][kernel index]`.
    blocks: Vec<[[[Option<f64>; 3]; 3]; 2]>,
    tail: [Option<f64>; 4],
}

impl ResolvedTable {
    fn new(r: u32, table: &HashMap<String, f64>) -> Self {
        let (head, tail) = fixed_keys(r);
        let blocks = (0..STAGE_SETTINGS.len())
            .map(|stage| {
                [true, false].map(|first| {
                    EXPANDS.map(|e| {
                        KERNELS.map(|k| table.get(&block_key(r, stage, first, e, k)).copied())
                    })
                })
            })
            .collect();
        ResolvedTable {
            head: head.map(|k| table.get(&k).copied()),
            blocks,
            tail: tail.map(|k| table.get(&k).copied()),
        }
    }

    /// The sum of `config`'s layers in network order (the same sum as over its keys), or
    /// `None` when one is missing.
    fn latency_of(&self, config: &OfaConfig) -> Option<f64> {
        let mut total = 0.0;
        for v in self.head {
            total += v?;
        }
        for stage in 0..STAGE_SETTINGS.len() {
            for depth in 0..config.d[stage] as usize {
                let block = stage * MAX_DEPTH + depth;
                let e = EXPANDS.iter().position(|&e| e == config.e[block])?;
                let k = KERNELS.iter().position(|&k| k == config.ks[block])?;
                total += self.blocks[stage][usize::from(depth > 0)][e][k]?;
            }
        }
        for v in self.tail {
            total += v?;
        }
        Some(total)
    }
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
    resolved: HashMap<u32, ResolvedTable>,
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
        let resolved = tables
            .iter()
            .map(|(&r, table)| (r, ResolvedTable::new(r, table)))
            .collect();
        Ok(Note10Lut {
            space: OfaSpace::new(resolutions)?,
            tables,
            resolved,
            dir: dir.to_path_buf(),
        })
    }

    /// The Once-for-All space restricted to the resolutions the tables cover.
    pub fn space(&self) -> &OfaSpace {
        &self.space
    }

    /// Latency of a config in milliseconds: the sum of its layers' table entries, from the
    /// table resolved at load ([`Note10Lut::latency_by_keys`] where a layer is missing, to
    /// name it).
    pub fn latency_of(&self, config: &OfaConfig) -> Result<f64> {
        match self
            .resolved
            .get(&config.r)
            .and_then(|t| t.latency_of(config))
        {
            Some(ms) => Ok(ms),
            None => self.latency_by_keys(config),
        }
    }

    /// The same sum found by building and looking up each layer's key: the reference the
    /// resolved table is checked against, and what names a missing layer.
    pub fn latency_by_keys(&self, config: &OfaConfig) -> Result<f64> {
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
