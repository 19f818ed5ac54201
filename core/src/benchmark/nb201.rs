//! The NAS-Bench-201 table: one row per cell with the trained accuracies of a dataset and
//! hardware costs. Any CSV (optionally gzip) of the same layout works: `index`, `arch_str`,
//! `<dataset>_val_12ep` (the search signal), `<dataset>_test_200ep` (what is reported),
//! optionally `<dataset>_train_time_12ep` (seconds, for simulated-time budgets), and any
//! number of cost columns (`lat_help_<device>`, `hwnb_c10_<device>_latency`, ...).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::evaluate::{Evaluation, Evaluator, LatencyModel};
use crate::space::nb201::Nb201Space;
use crate::space::{Arch, SearchSpace};

/// Environment variable with the table's path.
pub const TABLE_ENV: &str = "HWNAS_NB201_TABLE";
/// The real table's place inside the shared data folder.
pub const SHARED_TABLE: &str = "nas-bench-201/nb201_cifar10.csv.gz";

const CELLS: usize = 15_625;

/// A loaded NAS-Bench-201 table for one dataset.
#[derive(Debug, Clone)]
pub struct Nb201Table {
    path: PathBuf,
    dataset: String,
    space: Nb201Space,
    /// By cell code (mixed radix of the 6 edge ops, edge 0 least significant).
    validation: Vec<f64>,
    test: Vec<f64>,
    train_seconds: Option<Vec<f64>>,
    index_of_code: Vec<Option<u32>>,
    code_of_index: Vec<u32>,
    costs: BTreeMap<String, Vec<Option<f64>>>,
}

fn code(arch: &Arch) -> usize {
    arch.0
        .iter()
        .rev()
        .fold(0, |acc, &op| acc * 5 + usize::from(op))
}

fn arch_of_code(mut code: usize) -> Arch {
    let mut ops = Vec::with_capacity(6);
    for _ in 0..6 {
        ops.push((code % 5) as u8);
        code /= 5;
    }
    Arch(ops)
}

impl Nb201Table {
    /// The table at `path` (or `HWNAS_NB201_TABLE`, or the shared data folder's copy).
    pub fn locate(path: Option<&Path>) -> Result<PathBuf> {
        if let Some(path) = path {
            return Ok(path.to_path_buf());
        }
        crate::data::locate(TABLE_ENV, SHARED_TABLE).ok_or_else(|| Error::Setting {
            name: "table".to_string(),
            problem: format!(
                "no NAS-Bench-201 table given and none found; give the table file, set {TABLE_ENV}, or put the shared data at ../shared/data ({SHARED_TABLE})"
            ),
        })
    }

    /// Reads a table for `dataset` (`cifar10`, `cifar100`, `ImageNet16-120`, ...).
    pub fn load(path: &Path, dataset: &str) -> Result<Self> {
        let data_error = |problem: String| Error::Data {
            path: path.to_path_buf(),
            problem,
        };
        let file = crate::data::open_table(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = csv::Reader::from_reader(file);
        let headers = reader
            .headers()
            .map_err(|e| data_error(format!("no CSV header: {e}")))?
            .clone();
        let column = |name: &str| headers.iter().position(|h| h == name);
        let val_name = format!("{dataset}_val_12ep");
        let test_name = format!("{dataset}_test_200ep");
        let (Some(val_col), Some(test_col)) = (column(&val_name), column(&test_name)) else {
            let datasets: Vec<&str> = headers
                .iter()
                .filter_map(|h| h.strip_suffix("_val_12ep"))
                .collect();
            return Err(data_error(format!(
                "dataset `{dataset}` needs columns `{val_name}` and `{test_name}`; this table has datasets: {}",
                if datasets.is_empty() {
                    "none".to_string()
                } else {
                    datasets.join(", ")
                }
            )));
        };
        let arch_col =
            column("arch_str").ok_or_else(|| data_error("no `arch_str` column".into()))?;
        let index_col = column("index");
        let time_col = column(&format!("{dataset}_train_time_12ep"));
        let accuracy_like =
            |h: &str| h.contains("_val_") || h.contains("_test_") || h.contains("_train_");
        let cost_cols: Vec<(usize, String)> = headers
            .iter()
            .enumerate()
            .filter(|(_, h)| !matches!(*h, "index" | "arch_str") && !accuracy_like(h))
            .map(|(i, h)| (i, h.to_string()))
            .collect();

        let space = Nb201Space::new();
        let mut validation = vec![f64::NAN; CELLS];
        let mut test = vec![f64::NAN; CELLS];
        let mut train_seconds = time_col.map(|_| vec![f64::NAN; CELLS]);
        let mut index_of_code = vec![None; CELLS];
        let mut code_of_index = Vec::with_capacity(CELLS);
        let mut costs: BTreeMap<String, Vec<Option<f64>>> = cost_cols
            .iter()
            .map(|(_, name)| (name.clone(), vec![None; CELLS]))
            .collect();

        for (row_no, record) in reader.records().enumerate() {
            let line = row_no + 2;
            let record = record.map_err(|e| data_error(format!("line {line}: {e}")))?;
            let field = |col: usize| record.get(col).unwrap_or("").trim();
            // A number in `range`: NaN, infinities and values outside are refused by name.
            let checked = |col: usize, name: &str, range: (f64, f64)| -> Result<f64> {
                let text = field(col);
                match text.parse::<f64>() {
                    Ok(v) if v.is_finite() && v >= range.0 && v <= range.1 => Ok(v),
                    Ok(_) => Err(data_error(format!(
                        "line {line}: `{name}` is {text}, outside {} to {}; repair the table",
                        range.0, range.1
                    ))),
                    Err(_) => Err(data_error(format!(
                        "line {line}: `{name}` is `{text}`, not a number"
                    ))),
                }
            };
            let accuracy = |col: usize, name: &str| checked(col, name, (0.0, 100.0));
            let number = |col: usize, name: &str| checked(col, name, (0.0, f64::MAX));
            let arch = space
                .parse(field(arch_col))
                .map_err(|e| data_error(format!("line {line}: {e}")))?;
            let c = code(&arch);
            if index_of_code[c].is_some() {
                return Err(data_error(format!(
                    "line {line}: cell {} appears twice",
                    field(arch_col)
                )));
            }
            if let Some(col) = index_col {
                let index: usize = field(col).parse().map_err(|_| {
                    data_error(format!(
                        "line {line}: index `{}` is not a number",
                        field(col)
                    ))
                })?;
                if index != code_of_index.len() {
                    return Err(data_error(format!(
                        "line {line}: index {index} out of order (expected {})",
                        code_of_index.len()
                    )));
                }
            }
            index_of_code[c] = Some(code_of_index.len() as u32);
            code_of_index.push(c as u32);
            validation[c] = accuracy(val_col, &val_name)?;
            test[c] = accuracy(test_col, &test_name)?;
            if let (Some(col), Some(times)) = (time_col, train_seconds.as_mut()) {
                times[c] = number(col, "train time")?;
            }
            // Costs may be missing for a cell (HW-NAS-Bench's columns are), never wrong.
            for (col, name) in &cost_cols {
                if !field(*col).is_empty() {
                    costs.get_mut(name).expect("cost column registered")[c] =
                        Some(number(*col, name)?);
                }
            }
        }
        if code_of_index.is_empty() {
            return Err(data_error("the table has no rows".into()));
        }
        Ok(Nb201Table {
            path: path.to_path_buf(),
            dataset: dataset.to_string(),
            space,
            validation,
            test,
            train_seconds,
            index_of_code,
            code_of_index,
            costs,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dataset whose columns it serves.
    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    /// Rows in the table.
    pub fn len(&self) -> usize {
        self.code_of_index.len()
    }

    /// True when the table has no rows (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.code_of_index.is_empty()
    }

    /// The table's index of a cell (the official NAS-Bench-201 index for the real table).
    pub fn index_of(&self, arch: &Arch) -> Option<usize> {
        self.index_of_code[code(arch)].map(|i| i as usize)
    }

    /// The cell at a table index.
    pub fn arch_at(&self, index: usize) -> Option<Arch> {
        self.code_of_index
            .get(index)
            .map(|&c| arch_of_code(c as usize))
    }

    /// Every cell in the table, in index order.
    pub fn archs(&self) -> impl Iterator<Item = Arch> + '_ {
        self.code_of_index.iter().map(|&c| arch_of_code(c as usize))
    }

    /// Validation accuracy (the search signal) of a cell in the table.
    pub fn validation(&self, arch: &Arch) -> Option<f64> {
        self.index_of(arch).map(|_| self.validation[code(arch)])
    }

    /// Test accuracy (the reported figure) of a cell in the table.
    pub fn test(&self, arch: &Arch) -> Option<f64> {
        self.index_of(arch).map(|_| self.test[code(arch)])
    }

    /// The cell with the highest validation accuracy (ties to the lowest index).
    pub fn best_by_validation(&self) -> Arch {
        self.best_by(|arch| self.validation[code(arch)])
    }

    /// The cell with the highest test accuracy (ties to the lowest index).
    pub fn best_by_test(&self) -> Arch {
        self.best_by(|arch| self.test[code(arch)])
    }

    /// The cell with the highest validation accuracy among those `feasible` accepts (ties
    /// to the lowest index): the answer a perfect search of the table would give.
    pub fn best_feasible_by_validation(&self, feasible: impl Fn(&Arch) -> bool) -> Option<Arch> {
        self.archs().filter(|a| feasible(a)).max_by(|a, b| {
            self.validation[code(a)]
                .total_cmp(&self.validation[code(b)])
                .then(self.index_of(b).cmp(&self.index_of(a)))
        })
    }

    fn best_by(&self, key: impl Fn(&Arch) -> f64) -> Arch {
        let mut best = self.arch_at(0).expect("a loaded table has rows");
        for arch in self.archs() {
            if key(&arch) > key(&best) {
                best = arch;
            }
        }
        best
    }

    /// Names of the cost columns (latencies, energies, FLOPs).
    pub fn cost_columns(&self) -> impl Iterator<Item = &str> {
        self.costs.keys().map(String::as_str)
    }

    /// Devices with a latency column, by the names `table:<device>` accepts.
    pub fn latency_devices(&self) -> Vec<String> {
        let mut devices: Vec<String> = self
            .costs
            .keys()
            .filter_map(|c| {
                c.strip_prefix("lat_help_").map(str::to_string).or_else(|| {
                    c.strip_prefix("hwnb_c10_")
                        .and_then(|d| d.strip_suffix("_latency"))
                        .map(|d| format!("hwnb-{d}"))
                })
            })
            .collect();
        devices.sort();
        devices
    }

    /// The latency column of a device: `pixel3` reads `lat_help_pixel3`, `hwnb-raspi4` reads
    /// `hwnb_c10_raspi4_latency`, and an exact column name reads that column.
    pub fn latency_column(self: &Arc<Self>, device: &str) -> Result<TableLatency> {
        let candidates = [
            format!("lat_help_{device}"),
            device
                .strip_prefix("hwnb-")
                .map(|d| format!("hwnb_c10_{d}_latency"))
                .unwrap_or_default(),
            device.to_string(),
        ];
        let column = candidates
            .into_iter()
            .find(|c| self.costs.contains_key(c))
            .ok_or_else(|| Error::Setting {
                name: "target".to_string(),
                problem: format!(
                    "table {} has no latency column for `{device}`; devices: {}",
                    self.path.display(),
                    self.latency_devices().join(", ")
                ),
            })?;
        Ok(TableLatency {
            table: Arc::clone(self),
            device: device.to_string(),
            column,
        })
    }

    /// A cost column's value for a cell, if present.
    pub fn cost(&self, column: &str, arch: &Arch) -> Option<f64> {
        self.costs.get(column).and_then(|values| values[code(arch)])
    }
}

impl Evaluator for Nb201Table {
    fn name(&self) -> String {
        format!("nb201-table:{}", self.dataset)
    }

    fn evaluate(&self, arch: &Arch) -> Result<Evaluation> {
        let c = code(arch);
        if self.index_of_code.get(c).copied().flatten().is_none() {
            return Err(Error::Missing {
                source_name: self.path.display().to_string(),
                arch: self.space.format(arch),
                problem: "the cell is not in the table".to_string(),
            });
        }
        Ok(Evaluation {
            accuracy: self.validation[c],
            test_accuracy: Some(self.test[c]),
            cost_seconds: self.train_seconds.as_ref().map_or(0.0, |t| t[c]),
        })
    }

    fn has_cost(&self) -> bool {
        self.train_seconds.is_some()
    }
}

/// One device's latency column of a NAS-Bench-201 table, as a latency model.
#[derive(Debug, Clone)]
pub struct TableLatency {
    table: Arc<Nb201Table>,
    device: String,
    column: String,
}

impl TableLatency {
    /// The column it reads.
    pub fn column(&self) -> &str {
        &self.column
    }
}

impl LatencyModel for TableLatency {
    fn is_cheap(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        format!("table:{}", self.device)
    }

    fn latency_ms(&self, arch: &Arch) -> Result<f64> {
        self.table
            .cost(&self.column, arch)
            .ok_or_else(|| Error::Missing {
                source_name: format!("{} column {}", self.table.path.display(), self.column),
                arch: self.table.space.format(arch),
                problem: "no latency recorded for this cell".to_string(),
            })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a complete synthetic table (all 15,625 cells) whose accuracy rewards 3x3
    /// convolutions, with a latency column, and returns its path.
    #[test]
    fn numbers_out_of_range_are_refused_naming_line_column_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let header = "index,arch_str,toy_val_12ep,toy_test_200ep,lat_help_toyphone";
        let cell = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|";
        for (row, expected) in [
            (format!("0,{cell},NaN,50,1"), "`toy_val_12ep` is NaN"),
            (format!("0,{cell},1084,50,1"), "is 1084, outside 0 to 100"),
            (format!("0,{cell},50,inf,1"), "`toy_test_200ep` is inf"),
            (format!("0,{cell},50,50,-2"), "`lat_help_toyphone` is -2"),
            (format!("0,{cell},50,50,inf"), "`lat_help_toyphone` is inf"),
            (format!("0,{cell},50,50,fast"), "not a number"),
        ] {
            let path = dir.path().join("bad.csv");
            std::fs::write(&path, format!("{header}\n{row}\n")).unwrap();
            let error = Nb201Table::load(&path, "toy").unwrap_err().to_string();
            assert!(error.contains(expected), "{row}: {error}");
            assert!(error.contains("line 2"), "{error}");
        }
        let path = dir.path().join("good.csv");
        std::fs::write(&path, format!("{header}\n0,{cell},50,50,\n")).unwrap();
        assert_eq!(Nb201Table::load(&path, "toy").unwrap().len(), 1);
    }

    pub(crate) fn synthetic_table(dir: &Path) -> PathBuf {
        let path = dir.join("table.csv");
        hwnas_testkit::write_nb201_table(&path, "toy", "toyphone", |cell| {
            let val =
                60.0 + 5.0 * cell.count(3) - 2.0 * cell.count(0) + (cell.index % 7) as f64 * 0.01;
            (val, val + 3.0, 1.0 + cell.count(3) * 2.0 + cell.count(2))
        });
        path
    }

    #[test]
    fn reads_a_table_and_answers_queries() {
        let dir = tempfile::tempdir().unwrap();
        let table = Arc::new(Nb201Table::load(&synthetic_table(dir.path()), "toy").unwrap());
        assert_eq!(table.len(), CELLS);
        let best = table.best_by_validation();
        assert_eq!(best, Arch(vec![3; 6]));
        let answer = table.evaluate(&best).unwrap();
        assert!((answer.test_accuracy.unwrap() - answer.accuracy - 3.0).abs() < 1e-9);
        for index in [0, 17, 15_624] {
            let arch = table.arch_at(index).unwrap();
            assert_eq!(table.index_of(&arch), Some(index));
        }
        let latency = table.latency_column("toyphone").unwrap();
        assert_eq!(latency.latency_ms(&best).unwrap(), 13.0);
        assert_eq!(table.latency_devices(), vec!["toyphone".to_string()]);
    }

    #[test]
    fn errors_name_the_missing_dataset_and_device() {
        let dir = tempfile::tempdir().unwrap();
        let path = synthetic_table(dir.path());
        let error = Nb201Table::load(&path, "cifar100").unwrap_err().to_string();
        assert!(
            error.contains("cifar100_val_12ep") && error.contains("toy"),
            "{error}"
        );
        let table = Arc::new(Nb201Table::load(&path, "toy").unwrap());
        let error = table.latency_column("pixel9").unwrap_err().to_string();
        assert!(
            error.contains("pixel9") && error.contains("toyphone"),
            "{error}"
        );
    }

    #[test]
    fn a_damaged_row_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.csv");
        std::fs::write(
            &path,
            "index,arch_str,toy_val_12ep,toy_test_200ep\n0,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,abc,1\n",
        )
        .unwrap();
        let error = Nb201Table::load(&path, "toy").unwrap_err().to_string();
        assert!(error.contains("line 2") && error.contains("abc"), "{error}");
    }
}
