//! A table of architectures measured on many devices (HELP's and HW-NAS-Bench's CSVs, or
//! hwnas's own NAS-Bench-201 table): one row per architecture, one latency column per device.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hwnas_core::SearchSpace;
use hwnas_core::space::ofa::{OfaSpace, parse_config};
use hwnas_core::space::space_by_name;

use crate::error::{Error, Result};

/// One device's latency column; `None` where the table has no positive value.
#[derive(Debug, Clone)]
pub struct DeviceColumn {
    /// The column's name in the file.
    pub name: String,
    /// Milliseconds per row.
    pub values: Vec<Option<f64>>,
}

impl DeviceColumn {
    /// Whether every row has a value.
    pub fn complete(&self) -> bool {
        self.values.iter().all(Option::is_some)
    }
}

/// A multi-device latency table with each architecture encoded as features.
#[derive(Debug, Clone)]
pub struct DeviceTable {
    /// The file it was read from.
    pub path: PathBuf,
    /// The architecture text of each row.
    pub archs: Vec<String>,
    /// The architecture's one-hot encoding of each row.
    pub arch_features: Vec<Vec<f64>>,
    /// The latency columns, in file order.
    pub columns: Vec<DeviceColumn>,
}

/// Columns that hold something other than a device's latency.
fn is_latency_column(name: &str) -> bool {
    const NOT_LATENCY: [&str; 9] = [
        "_val_",
        "_test_",
        "_train_",
        "energy",
        "flops",
        "params",
        "arithmetic_intensity",
        "accuracy",
        "index",
    ];
    !matches!(
        name,
        "arch_str" | "ops" | "op_idx_list" | "dataset" | "ks" | "e" | "d" | "r"
    ) && !NOT_LATENCY.iter().any(|marker| name.contains(marker))
}

/// The architecture spaces whose tables this reads: nb201 (its text format in `arch_str`),
/// ofa-mbv3 (HELP's columns `ks`, `e`, `d` as `-`-joined values and `r`), or `fbnet`,
/// HW-NAS-Bench's FBNet space (`ops`: 22 `|`-separated layer choices), which hwnas measures
/// through tables only.
pub const TABLE_SPACES: &str = "nb201, ofa-mbv3, fbnet";

/// The space a table's architecture texts are parsed in: for ofa-mbv3, over the table's
/// resolutions.
pub fn space_of(
    space: &str,
    archs: &[String],
) -> std::result::Result<Box<dyn SearchSpace>, String> {
    if space == "ofa-mbv3" || space == "ofa" {
        let mut resolutions = Vec::new();
        for text in archs {
            let config = parse_config(text).map_err(|e| e.to_string())?;
            if !resolutions.contains(&config.r) {
                resolutions.push(config.r);
            }
        }
        return Ok(Box::new(
            OfaSpace::new(resolutions).map_err(|e| e.to_string())?,
        ));
    }
    space_by_name(space).map_err(|e| format!("{e} (tables are read for spaces: {TABLE_SPACES})"))
}

impl DeviceTable {
    /// Reads the table at `path`, whose architectures are of `space` (see [`TABLE_SPACES`]).
    pub fn load(path: &Path, space: &str) -> Result<Self> {
        let data_error = |problem: String| Error::Data {
            path: path.to_path_buf(),
            problem,
        };
        let file = hwnas_core::data::open_table(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = csv::Reader::from_reader(file);
        let headers = reader
            .headers()
            .map_err(|e| data_error(format!("no CSV header: {e}")))?
            .clone();
        let ofa = space == "ofa-mbv3" || space == "ofa";
        let arch_name = match (space, ofa) {
            (_, true) => "ks",
            ("fbnet", _) => "ops",
            _ => "arch_str",
        };
        let column = |name: &str| {
            headers.iter().position(|h| h == name).ok_or_else(|| {
                data_error(format!(
                    "no `{name}` column, which a table of the {space} space has"
                ))
            })
        };
        let arch_col = column(arch_name)?;
        let ofa_cols = match ofa {
            true => Some([column("ks")?, column("e")?, column("d")?, column("r")?]),
            false => None,
        };
        let latency_cols: Vec<(usize, String)> = headers
            .iter()
            .enumerate()
            .filter(|(i, h)| *i != arch_col && is_latency_column(h))
            .map(|(i, h)| (i, h.to_string()))
            .collect();
        if latency_cols.len() < 2 {
            return Err(data_error(format!(
                "{} latency column(s); a few-shot fit needs the new device's and at least one other",
                latency_cols.len()
            )));
        }
        let mut archs = Vec::new();
        let mut columns: Vec<DeviceColumn> = latency_cols
            .iter()
            .map(|(_, name)| DeviceColumn {
                name: name.clone(),
                values: Vec::new(),
            })
            .collect();
        for (row, record) in reader.records().enumerate() {
            let record = record.map_err(|e| data_error(format!("row {}: {e}", row + 1)))?;
            archs.push(match ofa_cols {
                Some(cols) => {
                    let list = |i: usize| record.get(cols[i]).unwrap_or_default().replace('-', ",");
                    format!(
                        "{{\"ks\":[{}],\"e\":[{}],\"d\":[{}],\"r\":[{}]}}",
                        list(0),
                        list(1),
                        list(2),
                        list(3)
                    )
                }
                None => record.get(arch_col).unwrap_or_default().to_string(),
            });
            for ((col, name), column) in latency_cols.iter().zip(&mut columns) {
                let text = record.get(*col).unwrap_or_default().trim();
                let value = match text {
                    "" | "nan" | "NaN" => None,
                    _ => Some(text.parse::<f64>().map_err(|_| {
                        data_error(format!(
                            "row {}, column `{name}`: `{text}` is not a number",
                            row + 1
                        ))
                    })?),
                };
                // Non-positive values are the sources' markers of "not measured" (Edge TPU -1).
                column
                    .values
                    .push(value.filter(|v| v.is_finite() && *v > 0.0));
            }
        }
        if archs.is_empty() {
            return Err(data_error("no rows".to_string()));
        }
        let arch_features = encode(space, &archs).map_err(data_error)?;
        Ok(DeviceTable {
            path: path.to_path_buf(),
            archs,
            arch_features,
            columns,
        })
    }

    /// The column of `device`: its exact name, `lat_help_<device>`, or for `hwnb-<d>`
    /// HW-NAS-Bench's `hwnb_c10_<d>_latency`.
    pub fn column(&self, device: &str) -> Result<usize> {
        let candidates = [
            device.to_string(),
            format!("lat_help_{device}"),
            device
                .strip_prefix("hwnb-")
                .map(|d| format!("hwnb_c10_{d}_latency"))
                .unwrap_or_default(),
        ];
        candidates
            .iter()
            .find_map(|c| self.columns.iter().position(|col| col.name == *c))
            .ok_or_else(|| {
                Error::Setting(format!(
                    "--device: table {} has no latency column `{device}`; its columns: {}",
                    self.path.display(),
                    self.columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

/// One-hot features of each architecture text.
fn encode(space: &str, archs: &[String]) -> std::result::Result<Vec<Vec<f64>>, String> {
    if space == "fbnet" {
        return Ok(encode_tokens(archs));
    }
    let space = space_of(space, archs)?;
    archs
        .iter()
        .enumerate()
        .map(|(row, text)| {
            let arch = space
                .parse(text)
                .map_err(|e| format!("row {}: {e}", row + 1))?;
            Ok(space.one_hot(&arch).into_iter().map(f64::from).collect())
        })
        .collect()
}

/// Position-wise one-hot of `|`-separated choices, the vocabulary taken from the table.
fn encode_tokens(archs: &[String]) -> Vec<Vec<f64>> {
    let split: Vec<Vec<&str>> = archs.iter().map(|a| a.split('|').collect()).collect();
    let positions = split.iter().map(Vec::len).max().unwrap_or(0);
    let mut vocabulary: Vec<BTreeMap<&str, usize>> = vec![BTreeMap::new(); positions];
    for tokens in &split {
        for (position, token) in tokens.iter().enumerate() {
            let next = vocabulary[position].len();
            vocabulary[position].entry(token).or_insert(next);
        }
    }
    let offsets: Vec<usize> = vocabulary
        .iter()
        .scan(0, |offset, v| {
            let start = *offset;
            *offset += v.len();
            Some(start)
        })
        .collect();
    let width: usize = vocabulary.iter().map(BTreeMap::len).sum();
    split
        .iter()
        .map(|tokens| {
            let mut row = vec![0.0; width];
            for (position, token) in tokens.iter().enumerate() {
                row[offsets[position] + vocabulary[position][token]] = 1.0;
            }
            row
        })
        .collect()
}
