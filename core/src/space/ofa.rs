//! The Once-for-All MobileNetV3 space: 5 stages of up to 4 MBConv blocks, each block with
//! kernel size {3, 5, 7} and expand ratio {3, 4, 6}, each stage with depth {2, 3, 4}, and the
//! input resolution; text is the Once-for-All code's arch dict as JSON,
//! `{"ks": [20 values], "e": [20 values], "d": [5 values], "r": [224]}`.
//!
//! Blocks past their stage's depth do not exist in the network: their kernel and expand
//! decisions are inactive (reset by [`SearchSpace::canonical`], never mutated alone).

use serde::{Deserialize, Serialize};

use super::{Arch, Decision, SearchSpace};
use crate::error::{Error, Result, excerpt};

/// Searchable stages.
pub const STAGES: usize = 5;
/// Blocks per stage at the largest depth.
pub const MAX_DEPTH: usize = 4;
/// Searchable blocks.
pub const BLOCKS: usize = STAGES * MAX_DEPTH;
/// Kernel sizes.
pub const KERNELS: [u32; 3] = [3, 5, 7];
/// Expand ratios.
pub const EXPANDS: [u32; 3] = [3, 4, 6];
/// Stage depths.
pub const DEPTHS: [u32; 3] = [2, 3, 4];
/// Input resolutions a subnet may take (Once-for-All trains 128-224; 28 is Fashion-MNIST's,
/// which a supernet trained on it runs at).
pub const RESOLUTIONS: std::ops::RangeInclusive<u32> = 16..=1024;

/// An Once-for-All subnet in the Once-for-All code's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfaConfig {
    /// Kernel size of each of the 20 blocks.
    pub ks: Vec<u32>,
    /// Expand ratio of each of the 20 blocks.
    pub e: Vec<u32>,
    /// Depth of each of the 5 stages.
    pub d: Vec<u32>,
    /// Input resolution (square).
    pub r: u32,
}

impl OfaConfig {
    /// The config of a subnet written as Once-for-All's `net.config` JSON (the published
    /// specialised subnets), at input resolution `r`. Blocks past a stage's depth take
    /// kernel 3 and expand 3 (they do not exist).
    pub fn from_net_config(text: &str, r: u32) -> Result<Self> {
        let bad = |problem: String| Error::Parse {
            space: "ofa-mbv3",
            input: excerpt(text),
            problem,
        };
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let blocks = json["blocks"]
            .as_array()
            .ok_or_else(|| bad("no `blocks` list".into()))?;
        let widths = [32u64, 48, 96, 136, 192];
        let mut per_stage: Vec<Vec<(u32, u32)>> = vec![Vec::new(); STAGES];
        for block in blocks.iter().skip(1) {
            let conv = &block["mobile_inverted_conv"];
            let out = conv["out_channels"]
                .as_u64()
                .ok_or_else(|| bad("a block without `out_channels`".into()))?;
            let stage = widths.iter().position(|&w| w == out).ok_or_else(|| {
                bad(format!(
                    "a block with {out} output channels; stages have {widths:?}"
                ))
            })?;
            let k = conv["kernel_size"].as_u64().unwrap_or(0) as u32;
            let e = conv["expand_ratio"].as_u64().unwrap_or(0) as u32;
            per_stage[stage].push((k, e));
        }
        let mut config = OfaConfig {
            ks: Vec::new(),
            e: Vec::new(),
            d: Vec::new(),
            r,
        };
        for stage in per_stage {
            config.d.push(stage.len() as u32);
            for i in 0..MAX_DEPTH {
                let (k, e) = stage.get(i).copied().unwrap_or((3, 3));
                config.ks.push(k);
                config.e.push(e);
            }
        }
        OfaSpace::new(vec![r])?.from_config(&config)?;
        Ok(config)
    }

    /// Whether block `block` (0..20) exists at this depth setting.
    pub fn block_active(&self, block: usize) -> bool {
        (block % MAX_DEPTH) < self.d[block / MAX_DEPTH] as usize
    }
}

/// The Once-for-All MobileNetV3 space over a set of resolutions.
#[derive(Debug, Clone)]
pub struct OfaSpace {
    resolutions: Vec<u32>,
    decisions: Vec<Decision>,
}

impl Default for OfaSpace {
    /// Resolutions 128 to 224 in steps of 4, as Once-for-All trains them.
    fn default() -> Self {
        Self::new((128..=224).step_by(4).collect()).expect("the default resolutions are valid")
    }
}

impl OfaSpace {
    /// The space over the given input resolutions (each within [`RESOLUTIONS`], no repeats).
    pub fn new(mut resolutions: Vec<u32>) -> Result<Self> {
        resolutions.sort_unstable();
        resolutions.dedup();
        if resolutions.is_empty() || resolutions.len() > 255 {
            return Err(Error::Setting {
                name: "resolutions".to_string(),
                problem: "give between 1 and 255 resolutions".to_string(),
            });
        }
        if let Some(bad) = resolutions.iter().find(|&&r| !RESOLUTIONS.contains(&r)) {
            return Err(Error::Setting {
                name: "resolutions".to_string(),
                problem: format!("resolution {bad} is outside {RESOLUTIONS:?}"),
            });
        }
        let mut decisions = Vec::new();
        for block in 0..BLOCKS {
            decisions.push(Decision::new(
                format!("block {block} kernel"),
                KERNELS.map(|k| k.to_string()),
            ));
        }
        for block in 0..BLOCKS {
            decisions.push(Decision::new(
                format!("block {block} expand"),
                EXPANDS.map(|e| e.to_string()),
            ));
        }
        for stage in 0..STAGES {
            decisions.push(Decision::new(
                format!("stage {stage} depth"),
                DEPTHS.map(|d| d.to_string()),
            ));
        }
        decisions.push(Decision::new(
            "resolution",
            resolutions.iter().map(|r| r.to_string()),
        ));
        Ok(OfaSpace {
            resolutions,
            decisions,
        })
    }

    /// The resolutions this space searches.
    pub fn resolutions(&self) -> &[u32] {
        &self.resolutions
    }

    /// The Once-for-All config of an architecture.
    pub fn config(&self, arch: &Arch) -> OfaConfig {
        let c = &arch.0;
        OfaConfig {
            ks: c[..BLOCKS]
                .iter()
                .map(|&i| KERNELS[usize::from(i)])
                .collect(),
            e: c[BLOCKS..2 * BLOCKS]
                .iter()
                .map(|&i| EXPANDS[usize::from(i)])
                .collect(),
            d: c[2 * BLOCKS..2 * BLOCKS + STAGES]
                .iter()
                .map(|&i| DEPTHS[usize::from(i)])
                .collect(),
            r: self.resolutions[usize::from(c[2 * BLOCKS + STAGES])],
        }
    }

    /// The architecture of a config; errors name the bad key and the allowed values.
    pub fn from_config(&self, config: &OfaConfig) -> Result<Arch> {
        let error = |problem: String| Error::Parse {
            space: "ofa-mbv3",
            input: excerpt(&serde_json::to_string(config).unwrap_or_default()),
            problem,
        };
        let lookup = |key: &str, values: &[u32], allowed: &[u32], want: usize| -> Result<Vec<u8>> {
            if values.len() != want {
                return Err(error(format!(
                    "`{key}` needs {want} values, found {}",
                    values.len()
                )));
            }
            values
                .iter()
                .map(|v| {
                    allowed
                        .iter()
                        .position(|a| a == v)
                        .map(|p| p as u8)
                        .ok_or_else(|| {
                            error(format!(
                                "`{key}` value {v} is not allowed; allowed: {allowed:?}"
                            ))
                        })
                })
                .collect()
        };
        let mut choices = lookup("ks", &config.ks, &KERNELS, BLOCKS)?;
        choices.extend(lookup("e", &config.e, &EXPANDS, BLOCKS)?);
        choices.extend(lookup("d", &config.d, &DEPTHS, STAGES)?);
        choices.extend(lookup("r", &[config.r], &self.resolutions, 1)?);
        Ok(Arch(choices))
    }
}

/// The arch dict as the Once-for-All code writes it (`r` is a one-element list).
#[derive(Serialize, Deserialize)]
struct ArchDict {
    ks: Vec<u32>,
    e: Vec<u32>,
    d: Vec<u32>,
    r: Resolution,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Resolution {
    List(Vec<u32>),
    One(u32),
}

/// Parses an arch dict into a config; the resolution is checked only to be within [`RESOLUTIONS`], so
/// subnets at resolutions outside a space's list can still be exported and measured.
pub fn parse_config(text: &str) -> Result<OfaConfig> {
    let error = |problem: String| Error::Parse {
        space: "ofa-mbv3",
        input: excerpt(text),
        problem,
    };
    let dict: ArchDict = serde_json::from_str(text).map_err(|e| {
        error(format!(
            "{e}; expected JSON {{\"ks\": [20 of 3/5/7], \"e\": [20 of 3/4/6], \"d\": [5 of 2/3/4], \"r\": [resolution]}}"
        ))
    })?;
    let r = match dict.r {
        Resolution::One(r) => r,
        Resolution::List(list) if list.len() == 1 => list[0],
        Resolution::List(list) => {
            return Err(error(format!(
                "`r` must hold one resolution, found {}",
                list.len()
            )));
        }
    };
    if !RESOLUTIONS.contains(&r) {
        return Err(error(format!("`r` value {r} is outside {RESOLUTIONS:?}")));
    }
    let config = OfaConfig {
        ks: dict.ks,
        e: dict.e,
        d: dict.d,
        r,
    };
    // Validates ks, e and d with the same messages as the space.
    OfaSpace::new(vec![r])?.from_config(&config)?;
    Ok(config)
}

impl SearchSpace for OfaSpace {
    /// The block sequence: each block's kernel and expand ratio joined, each block feeding
    /// the next, a stage's depth reaching its blocks, the resolution the first block.
    fn decision_graph(&self) -> Vec<(usize, usize)> {
        let (kernel, expand) = (|b: usize| b, |b: usize| BLOCKS + b);
        let depth = |s: usize| 2 * BLOCKS + s;
        let resolution = 2 * BLOCKS + STAGES;
        let mut edges = Vec::new();
        for b in 0..BLOCKS {
            edges.push((kernel(b), expand(b)));
            edges.push((expand(b), kernel(b)));
            if b + 1 < BLOCKS {
                edges.push((kernel(b), kernel(b + 1)));
                edges.push((expand(b), expand(b + 1)));
            }
            edges.push((depth(b / MAX_DEPTH), kernel(b)));
            edges.push((depth(b / MAX_DEPTH), expand(b)));
        }
        edges.push((resolution, kernel(0)));
        edges.push((resolution, expand(0)));
        edges
    }

    fn name(&self) -> &'static str {
        "ofa-mbv3"
    }

    fn decisions(&self) -> &[Decision] {
        &self.decisions
    }

    fn format(&self, arch: &Arch) -> String {
        let config = self.config(arch);
        let dict = ArchDict {
            ks: config.ks,
            e: config.e,
            d: config.d,
            r: Resolution::List(vec![config.r]),
        };
        serde_json::to_string(&dict).expect("plain integers serialise")
    }

    fn parse(&self, text: &str) -> Result<Arch> {
        self.from_config(&parse_config(text)?)
    }

    fn active(&self, arch: &Arch) -> Vec<bool> {
        let depths: Vec<usize> = arch.0[2 * BLOCKS..2 * BLOCKS + STAGES]
            .iter()
            .map(|&i| DEPTHS[usize::from(i)] as usize)
            .collect();
        let block_on = |block: usize| (block % MAX_DEPTH) < depths[block / MAX_DEPTH];
        (0..arch.0.len())
            .map(|i| {
                if i < BLOCKS {
                    block_on(i)
                } else if i < 2 * BLOCKS {
                    block_on(i - BLOCKS)
                } else {
                    true
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn arch_dict_round_trips() {
        let space = OfaSpace::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..300 {
            let arch = space.sample(&mut rng);
            assert_eq!(space.parse(&space.format(&arch)).unwrap(), arch);
        }
        let text = r#"{"ks": [7,7,7,7, 5,5,5,5, 3,3,3,3, 7,5,3,7, 7,7,7,7], "e": [6,6,6,6, 4,4,4,4, 3,3,3,3, 6,4,3,6, 6,6,6,6], "d": [4,3,2,4,4], "r": 224}"#;
        let arch = space.parse(text).unwrap();
        let config = space.config(&arch);
        assert_eq!(config.r, 224);
        assert_eq!(config.d, vec![4, 3, 2, 4, 4]);
        assert!(!config.block_active(7) && config.block_active(6));
    }

    #[test]
    fn errors_name_the_key_and_allowed_values() {
        let space = OfaSpace::default();
        let mut dict: serde_json::Value =
            serde_json::from_str(&space.format(&Arch(vec![0; 46]))).unwrap();
        dict["ks"][3] = 9.into();
        let error = space.parse(&dict.to_string()).unwrap_err().to_string();
        assert!(
            error.contains("`ks` value 9") && error.contains("[3, 5, 7]"),
            "{error}"
        );
        dict["ks"][3] = 3.into();
        dict["r"] = serde_json::json!([100]);
        let error = space.parse(&dict.to_string()).unwrap_err().to_string();
        assert!(error.contains("`r` value 100"), "{error}");
    }

    #[test]
    fn inactive_blocks_do_not_change_the_canonical_form() {
        let space = OfaSpace::default();
        let mut a = Arch(vec![0; 46]);
        let mut b = a.clone();
        b.0[3] = 2; // block 3 of stage 0 is past depth 2
        assert_eq!(space.canonical_hash(&a), space.canonical_hash(&b));
        a.0[2] = 2; // block 2 is past depth 2 as well
        b.0[40] = 2; // stage 0 at depth 4: blocks 2 and 3 now exist
        assert_ne!(space.canonical(&a), space.canonical(&b));
    }
}
