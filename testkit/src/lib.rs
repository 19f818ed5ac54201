//! Test support for the hwnas workspace.
//!
//! **Resources.** A test that needs something the machine may lack (a wgpu adapter, ONNX
//! Runtime, the shared data) asks [`require`]. Where the resource is there, the test runs.
//! Where it is missing, the test is skipped with a line on standard error — unless
//! `HWNAS_REQUIRE` names the resource (`all`, or a comma list of `gpu`, `ort`, `data`),
//! in which case the test fails, naming what is missing and why. CI sets
//! `HWNAS_REQUIRE=all`, so a green CI means every test ran.
//!
//! **Data.** [`write_nb201_table`] writes a complete synthetic NAS-Bench-201 table (all
//! 15,625 cells) with the accuracies and latency a test chooses.

use std::fmt::Display;
use std::io::Write;
use std::path::Path;

/// Something a test may need that a machine may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A wgpu adapter (a GPU, or Mesa's lavapipe).
    Gpu,
    /// The ONNX Runtime library.
    Ort,
    /// The shared data (`../shared/data`: tables, Once-for-All's files, Fashion-MNIST).
    Data,
    /// A Slurm cluster (`bash scripts/slurm.sh start` brings up a one-node one).
    Slurm,
}

impl Resource {
    /// The name `HWNAS_REQUIRE` uses.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Gpu => "gpu",
            Resource::Ort => "ort",
            Resource::Data => "data",
            Resource::Slurm => "slurm",
        }
    }
}

/// The resources `HWNAS_REQUIRE` names.
///
/// # Panics
/// On a name that is not `all`, `gpu`, `ort`, `data` or `slurm`: a typo must not let tests skip.
pub fn required() -> Vec<Resource> {
    parse_required(&std::env::var("HWNAS_REQUIRE").unwrap_or_default())
}

fn parse_required(text: &str) -> Vec<Resource> {
    let mut resources = Vec::new();
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match word {
            "all" => {
                return vec![
                    Resource::Gpu,
                    Resource::Ort,
                    Resource::Data,
                    Resource::Slurm,
                ];
            }
            "gpu" => resources.push(Resource::Gpu),
            "ort" => resources.push(Resource::Ort),
            "data" => resources.push(Resource::Data),
            "slurm" => resources.push(Resource::Slurm),
            other => {
                panic!(
                    "HWNAS_REQUIRE names `{other}`; use all, or a comma list of gpu, ort, data, slurm"
                )
            }
        }
    }
    resources
}

/// What a test does with `probe`, the attempt to get `resource` (`what` says what it is):
/// its value where it worked; `None` where it failed and the resource is not required (the
/// skip is printed to standard error, naming the test's thread).
///
/// # Panics
/// Where the probe failed and `HWNAS_REQUIRE` names the resource.
pub fn require<T, E: Display>(resource: Resource, what: &str, probe: Result<T, E>) -> Option<T> {
    match probe {
        Ok(value) => Some(value),
        Err(error) => {
            if required().contains(&resource) {
                panic!(
                    "HWNAS_REQUIRE requires {} but {what} is missing: {error}",
                    resource.name()
                );
            }
            let test = std::thread::current()
                .name()
                .unwrap_or("a test")
                .to_string();
            // Straight to the process's standard error: the test harness captures
            // `eprintln!` of passing tests, and a skip must be seen.
            let line = format!(
                "SKIPPED {test}: {what} is missing ({error}); set HWNAS_REQUIRE={} to make this a failure\n",
                resource.name()
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

/// NAS-Bench-201's operations in the order of its cell encoding.
pub const NB201_OPS: [&str; 5] = [
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
];

/// One cell of a synthetic table: its row index and its six operations (indices into
/// [`NB201_OPS`], edge order of the cell string).
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    /// The row (0 to 15,624).
    pub index: usize,
    /// The operation of each edge.
    pub ops: [usize; 6],
}

impl Cell {
    /// How many edges carry `op`.
    pub fn count(&self, op: usize) -> f64 {
        self.ops.iter().filter(|&&o| o == op).count() as f64
    }
}

/// Writes a complete synthetic NAS-Bench-201 table to `path`: every cell, with columns
/// `{dataset}_val_12ep`, `{dataset}_test_200ep` and `lat_help_{device}` from `row` (which
/// returns validation accuracy, test accuracy and latency).
///
/// # Panics
/// When the file cannot be written.
pub fn write_nb201_table(
    path: &Path,
    dataset: &str,
    device: &str,
    row: impl Fn(Cell) -> (f64, f64, f64),
) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(
        file,
        "index,arch_str,{dataset}_val_12ep,{dataset}_test_200ep,lat_help_{device}"
    )
    .unwrap();
    for index in 0..15_625usize {
        let mut ops = [0; 6];
        for (e, op) in ops.iter_mut().enumerate() {
            *op = (index / 5usize.pow(e as u32)) % 5;
        }
        let o = |e: usize| NB201_OPS[ops[e]];
        let text = format!(
            "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|",
            o(0),
            o(1),
            o(2),
            o(3),
            o(4),
            o(5)
        );
        let (val, test, latency) = row(Cell { index, ops });
        writeln!(file, "{index},{text},{val},{test},{latency}").unwrap();
    }
    file.flush().unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_lists_are_read_and_typos_refused() {
        assert_eq!(parse_required(""), vec![]);
        assert_eq!(parse_required("all").len(), 4);
        assert_eq!(
            parse_required("ort, data"),
            vec![Resource::Ort, Resource::Data]
        );
        assert!(std::panic::catch_unwind(|| parse_required("gpus")).is_err());
    }

    #[test]
    fn a_missing_resource_that_is_not_required_is_skipped() {
        // This test's process may run under HWNAS_REQUIRE=all (CI): only then must it fail.
        let outcome = std::panic::catch_unwind(|| {
            require::<(), _>(Resource::Gpu, "a test adapter", Err("absent"))
        });
        if required().contains(&Resource::Gpu) {
            assert!(outcome.is_err(), "a required resource must fail the test");
        } else {
            assert_eq!(outcome.unwrap(), None);
        }
    }

    #[test]
    fn the_synthetic_table_has_every_cell_once() {
        let dir = std::env::temp_dir().join(format!("hwnas-testkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.csv");
        write_nb201_table(&path, "toy", "toyphone", |c| (c.count(3), 1.0, 2.0));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 15_626);
        assert!(text.lines().nth(1).unwrap().starts_with("0,|none~0|"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
